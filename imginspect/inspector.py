"""Inspecting targets: the library entry point that ties the sources to the model.

An :class:`Inspector` holds what a run shares across targets (one transport and connection
pool, one :class:`~imginspect.sources.Source` per registry host or layout, with its tokens)
and turns a :class:`~imginspect.target.Target` into an :class:`InspectResult` with as few
requests as possible: one GET of the manifest or index (by tag it gives digest and bytes at
once), plus, for a single image, one GET of its config blob for the platform. What it knows
about each registry host comes from one :class:`~imginspect.hosts.HostResolver`.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from imginspect import mediatypes as mt
from imginspect.cache import Cache
from imginspect.digest import verify_digest
from imginspect.errors import (
    ImginspectError,
    MalformedDocumentError,
    NotFoundError,
    TooLargeError,
)
from imginspect.hosts import HostResolver
from imginspect.manifest import (
    MAX_INDEX_DEPTH,
    Child,
    ChildKind,
    Descriptor,
    ImageManifest,
    decode_config_platform,
    decode_document,
)
from imginspect.registry import RegistryClient
from imginspect.result import ImageSize, InspectResult
from imginspect.sources import MAX_CONFIG_BYTES, FetchedManifest, Source
from imginspect.target import LayoutTarget, Target
from imginspect.transport import HttpTransport, Logger, RetryPolicy, Timeouts

if TYPE_CHECKING:
    from imginspect.imageconfig import ImageDetails

#: How many tags one request lists when a tag is not found (to suggest the closest ones).
TAGS_LISTED = 1000

#: The entries of the nested indexes of an index (at any depth), by the nested index's digest.
IndexTree = dict[str, tuple[Child, ...]]


class Inspector:
    """Inspects targets; reuse one instance for many targets (connections, tokens).

    ``hosts`` says how each registry host is reached and logged in to (default: anonymous,
    loopback registries insecure, every other one verified against the system trust store).
    """

    def __init__(
        self,
        hosts: HostResolver | None = None,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        log: Logger | None = None,
        cache: Cache | None = None,
    ) -> None:
        self.hosts = hosts if hosts is not None else HostResolver()
        self._log = log
        self._cache = cache
        self._transport = HttpTransport(
            timeouts=timeouts, log=log, retry=retry, ssl_context_for=self.hosts.tls_context
        )
        self._sources: dict[str, Source] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._transport.close()
        if self._cache is not None:
            self._cache.flush()
        for source in self._sources.values():
            source.close()  # layouts: archives keep their file open

    def __enter__(self) -> Inspector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def source_for(self, target: Target) -> Source:
        """The source ``target`` is read from: its layout, or its registry host's."""
        key = target.location if isinstance(target, LayoutTarget) else target.domain
        source = self._sources.get(key)
        if source is not None:
            return source
        with self._lock:
            source = self._sources.get(key)
            if source is None:
                if isinstance(target, LayoutTarget):
                    # oci:PATH / oci-archive:FILE: files, no HTTP (imported only when used)
                    from imginspect.layout import open_layout

                    source = open_layout(target)
                else:
                    source = self._registry_source(target.domain)
                self._sources[key] = source
        return source

    def _registry_source(self, domain: str) -> Source:
        config = self.hosts.config(domain)
        registry = RegistryClient(
            domain,
            self._transport,
            credentials=config.credentials,
            insecure=config.insecure,
            insecure_host=self.hosts.is_insecure,
            cache=self._cache,
        )
        if not config.mirrors:
            return registry
        from imginspect.mirrors import MirrorChain

        mirrors: list[tuple[str, Source]] = []
        for mirror in config.mirrors:
            mirror_config = self.hosts.config(mirror.host)
            client = RegistryClient(
                domain,
                self._transport,
                endpoint=mirror.base_url,
                # a mirror's own credentials, if the user has any for it; never the registry's
                credentials=mirror_config.credentials,
                insecure=mirror_config.insecure,
                insecure_host=self.hosts.is_insecure,
                cache=self._cache,
            )
            mirrors.append((mirror.base_url, client))
        return MirrorChain(registry, mirrors, log=self._log)

    def resolve_digest(self, reference: Target) -> str:
        """The digest ``reference`` points to, with one HEAD where the registry allows.

        HEAD does not count against Docker Hub's pull limit. Registries that refuse HEAD or
        omit ``Docker-Content-Digest`` get a GET, and the digest is computed from the body.
        """
        client = self.source_for(reference)
        try:
            head = client.head_manifest(reference.path, reference.target)
            if head is not None:
                return head.digest
            return client.get_manifest(reference.path, reference.target).digest
        except NotFoundError as error:
            raise self._not_found(client, reference, error) from None

    def inspect(
        self, reference: Target, *, compat_docker: bool = False, read_config: bool = True
    ) -> InspectResult:
        """Resolve ``reference`` and describe what it points to.

        ``read_config=False`` skips the config blob of a single image (its platform stays
        unknown): for callers that only need the manifest, such as ``--raw``.
        """
        client = self.source_for(reference)
        try:
            fetched = self._fetch_manifest(client, reference)
        except NotFoundError as error:
            raise self._not_found(client, reference, error) from None
        document = decode_document(fetched.raw, fetched.content_type)
        if self._log is not None:
            header_type = (fetched.content_type or "").split(";")[0].strip()
            if not header_type:
                self._log(
                    f"note: no Content-Type for {reference}; media type "
                    f"{document.media_type!r} taken from the document"
                )
            elif header_type != document.media_type:
                self._log(
                    f"note: Content-Type {header_type!r} differs from the document's media type "
                    f"{document.media_type!r}; trusting the document"
                )
        descriptor = Descriptor(
            media_type=document.media_type,
            digest=fetched.digest,
            size=fetched.size,
            annotations=document.annotations,
            artifact_type=document.artifact_type,
        )
        config_platform = None
        config_raw = None
        if (
            read_config
            and isinstance(document, ImageManifest)
            and _wants_config(document, compat_docker)
        ):
            config_raw = self._config_blob(client, reference, document.config)
            config_platform = decode_config_platform(config_raw)
        return InspectResult(
            reference=reference,
            descriptor=descriptor,
            document=document,
            raw=fetched.raw,
            config_platform=config_platform,
            rate_limit=fetched.rate_limit,
            config_raw=config_raw,
        )

    def _not_found(self, client: Source, reference: Target, error: NotFoundError) -> NotFoundError:
        """Say whether the repository, the tag or the digest is missing.

        Registries answer MANIFEST_UNKNOWN for a manifest of a repository that does not exist
        too (the CNCF registry does), so on this failure path only, one request lists the
        repository's tags: NAME_UNKNOWN means the repository is missing; otherwise the tag
        (with the closest existing tags as a hint) or the digest is. If the list cannot be
        had, the registry's own error stands.
        """
        if not client.remote or error.missing == "repository":
            return error
        where = f"{reference.domain}/{reference.path}"
        try:
            tags = client.list_tags(reference.path, limit=TAGS_LISTED)
        except NotFoundError as listing:
            if listing.missing == "repository":  # NAME_UNKNOWN
                return NotFoundError(f"repository not found: {where}", missing="repository")
            return error
        except ImginspectError:
            return error
        if reference.digest is not None:
            return NotFoundError(
                f"digest not found: {where}@{reference.digest}", hint=error.hint, missing="digest"
            )
        tag = reference.tag or "latest"
        import difflib  # only on this failure path

        close = difflib.get_close_matches(tag, tags, n=5, cutoff=0.6)
        if close:
            hint = "closest existing tags: " + ", ".join(close)
        elif tags:
            hint = f"no tag of {where} is close to {tag!r}"
        else:
            hint = f"{where} has no tags"
        return NotFoundError(f"tag not found: {where}:{tag}", hint=hint, missing="tag")

    def _fetch_manifest(self, client: Source, reference: Target) -> FetchedManifest:
        """The manifest ``reference`` names, from the cache where that is safe.

        By digest, a cached copy is the answer (content never changes). By tag, the tag is
        re-resolved with a HEAD only when the cache already holds what it pointed to last
        time (otherwise a GET by tag answers in one request); the HEAD's digest then finds
        the cached bytes, or they are fetched by that digest.
        """
        cache = self._cache
        repository = reference.path
        if cache is None or not client.remote:  # local files: no gain
            return client.get_manifest(repository, reference.target)
        if reference.digest is not None:
            cached = _from_cache(cache, reference.digest)
            if cached is not None:
                return cached
            fetched = client.get_manifest(repository, reference.digest)
            cache.put_manifest(fetched.digest, fetched.raw, fetched.content_type)
            return fetched
        tag = reference.tag or "latest"
        last = cache.get_tag(reference.name, tag)
        if last is not None and cache.has_content(last):
            head = client.head_manifest(repository, tag)
            if head is not None:
                cached = _from_cache(cache, head.digest)
                if cached is None:
                    cached = client.get_manifest(repository, head.digest)
                    cache.put_manifest(cached.digest, cached.raw, cached.content_type)
                if head.digest != last:
                    cache.put_tag(reference.name, tag, head.digest)
                return cached
        fetched = client.get_manifest(repository, tag)
        cache.put_manifest(fetched.digest, fetched.raw, fetched.content_type)
        if fetched.digest != last:
            cache.put_tag(reference.name, tag, fetched.digest)
        return fetched

    def inspect_child(
        self,
        parent: InspectResult,
        descriptor: Descriptor,
        *,
        read_config: bool = True,
        compat_docker: bool = False,
    ) -> InspectResult:
        """Inspect an index entry (by digest) of ``parent``'s repository."""
        child_ref = parent.reference.with_digest(descriptor.digest)
        result = self.inspect(child_ref, read_config=read_config, compat_docker=compat_docker)
        if result.descriptor.size != descriptor.size:
            raise MalformedDocumentError(
                f"index entry {descriptor.digest} says {descriptor.size} bytes, "
                f"the manifest is {result.descriptor.size}"
            )
        # The entry's media type is the parent's word on what it points to: an 'image' entry
        # that is an index was selected by --platform as the image (and an 'index' entry that
        # is an image hid its image from --require). containerd refuses both; a Docker type
        # for an OCI manifest, or the reverse, is the same shape and stays accepted.
        says_index = descriptor.media_type in mt.INDEX_TYPES
        says_image = descriptor.media_type in mt.IMAGE_MANIFEST_TYPES
        if (says_index and not result.is_index) or (says_image and result.is_index):
            raise MalformedDocumentError(
                f"index entry {descriptor.digest} says {descriptor.media_type}, "
                f"the manifest is {result.document.media_type}"
            )
        return result

    def image_children(self, result: InspectResult, tree: IndexTree | None = None) -> list[Child]:
        """Image entries of an index, nested indexes expanded (bounded depth, no cycles).

        Attestations, artifacts and entries without a platform are not images and are left
        out; so are the nested indexes themselves (their images are included). ``tree``: the
        nested indexes if :meth:`index_tree` already fetched them.
        """
        if tree is None:
            tree = self.index_tree(result)
        images: list[Child] = []

        def collect(children: Sequence[Child]) -> None:
            for child in children:
                if child.kind is ChildKind.IMAGE:
                    images.append(child)
                elif child.kind is ChildKind.INDEX and child.descriptor.digest in tree:
                    collect(tree[child.descriptor.digest])

        collect(result.children)
        return images

    def index_tree(self, result: InspectResult) -> IndexTree:
        """The entries of every index nested in ``result`` (fetched; bounded depth, no
        cycles), by digest: what the table shows under a nested index's row. No request
        unless ``result`` has nested indexes."""
        tree: IndexTree = {}
        self._walk(result, tree, depth=0, seen={result.descriptor.digest})
        return tree

    def _walk(self, result: InspectResult, tree: IndexTree, *, depth: int, seen: set[str]) -> None:
        for child in result.children:
            if child.kind is not ChildKind.INDEX:
                continue
            digest = child.descriptor.digest
            if digest in seen:
                raise MalformedDocumentError(f"index cycle: {digest} contains itself")
            if depth + 1 >= MAX_INDEX_DEPTH:
                raise MalformedDocumentError(f"indexes nested deeper than {MAX_INDEX_DEPTH} levels")
            if digest in tree:
                continue  # the same index twice: fetched once
            nested = self.inspect_child(result, child.descriptor, read_config=False)
            tree[digest] = nested.children
            self._walk(nested, tree, depth=depth + 1, seen=seen | {digest})

    def _fetch_entry(
        self, source: Source, parent: Target, descriptor: Descriptor
    ) -> FetchedManifest:
        """The manifest an index entry names, by digest, checked against the entry's size."""
        fetched = self._fetch_manifest(source, parent.with_digest(descriptor.digest))
        if fetched.size != descriptor.size:
            raise MalformedDocumentError(
                f"index entry {descriptor.digest} says {descriptor.size} bytes, "
                f"the manifest is {fetched.size}"
            )
        return fetched

    def image_sizes(
        self,
        result: InspectResult,
        children: Sequence[Child],
        *,
        concurrency: int = 8,
        on_done: Callable[[], None] | None = None,
    ) -> dict[str, ImageSize]:
        """Compressed size (config + layers) and layer count per image child, fetched
        concurrently with at most ``concurrency`` requests in flight."""
        client = self.source_for(result.reference)

        def one(child: Child) -> tuple[str, ImageSize]:
            digest = child.descriptor.digest
            fetched = self._fetch_entry(client, result.reference, child.descriptor)
            document = decode_document(fetched.raw, fetched.content_type)
            if not isinstance(document, ImageManifest):
                raise MalformedDocumentError(f"index entry {digest} is not an image manifest")
            if on_done is not None:
                on_done()
            return digest, ImageSize.of(document)

        if isinstance(result.document, ImageManifest):
            return {result.descriptor.digest: ImageSize.of(result.document)}
        if not children:
            return {}
        workers = max(1, min(concurrency, len(children)))
        if workers == 1:
            return dict(one(c) for c in children)
        from concurrent.futures import ThreadPoolExecutor

        # Each task runs in a copy of this context, so the caller's deadline applies there too.
        context = contextvars.copy_context()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sizes") as pool:
            return dict(pool.map(lambda child: context.copy().run(one, child), children))

    def image_details(
        self,
        result: InspectResult,
        *,
        attestations: bool = False,
        concurrency: int = 8,
        tree: IndexTree | None = None,
    ) -> InspectResult:
        """``result`` with :attr:`~InspectResult.images`: the configuration, layers and
        history of a single image, or of each image entry of an index (nested indexes
        included; attestations only with ``attestations``), and
        :attr:`~InspectResult.images_skipped`, the entries left out.

        One request per child manifest and one per config blob (none for what the cache
        holds: by digest, content never changes), ``concurrency`` at a time, each verified
        against its digest; config blobs are bounded by ``MAX_CONFIG_BYTES``. An artifact
        (a config media type that is not an image config) is reported as one, its config
        not read.
        """
        from imginspect.imageconfig import details_of, is_image_config

        client = self.source_for(result.reference)
        document = result.document
        if isinstance(document, ImageManifest):
            raw = result.config_raw
            if raw is None and is_image_config(document.config.media_type):
                raw = self._config_blob(client, result.reference, document.config)
            details = details_of(result.descriptor.digest, document, raw)
            return replace(result, images=(details,), images_skipped=())
        if tree is None:
            tree = self.index_tree(result)
        wanted: list[Child] = []
        skipped: list[Child] = []

        def collect(children: Sequence[Child]) -> None:
            for child in children:
                if child.kind is ChildKind.INDEX:
                    collect(tree.get(child.descriptor.digest, ()))
                elif child.kind is ChildKind.IMAGE or (
                    attestations and child.kind is ChildKind.ATTESTATION
                ):
                    wanted.append(child)
                else:
                    skipped.append(child)

        collect(result.children)

        def one(child: Child) -> ImageDetails:
            digest = child.descriptor.digest
            fetched = self._fetch_entry(client, result.reference, child.descriptor)
            manifest = decode_document(fetched.raw, fetched.content_type)
            if not isinstance(manifest, ImageManifest):
                raise MalformedDocumentError(f"index entry {digest} is not an image manifest")
            raw = None
            if is_image_config(manifest.config.media_type):
                raw = self._config_blob(client, result.reference, manifest.config)
            return details_of(digest, manifest, raw, entry_platform=child.descriptor.platform)

        workers = max(1, min(concurrency, len(wanted)))
        if workers == 1:
            images = [one(child) for child in wanted]
        else:
            from concurrent.futures import ThreadPoolExecutor

            # Each task runs in a copy of this context: the caller's deadline applies there.
            context = contextvars.copy_context()
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="configs") as pool:
                images = list(pool.map(lambda child: context.copy().run(one, child), wanted))
        return replace(result, images=tuple(images), images_skipped=tuple(skipped))

    def _config_blob(self, client: Source, reference: Target, config: Descriptor) -> bytes:
        """A config blob's bytes: embedded in the descriptor, cached, or fetched (bounded,
        verified against its digest and its descriptor's size)."""
        if config.size > MAX_CONFIG_BYTES:
            raise TooLargeError(
                f"image config {config.digest} is {config.size} bytes, "
                f"more than the {MAX_CONFIG_BYTES} bytes accepted"
            )
        raw = _embedded_data(config)
        local = not client.remote
        if raw is None and self._cache is not None and not local:
            raw = self._cache.get_content(config.digest, what="config blob")
        if raw is None:
            raw = client.get_blob(
                reference.path, config.digest, max_bytes=config.size, what="config blob"
            )
            if self._cache is not None and not local:
                self._cache.put_content(config.digest, raw)
        if len(raw) != config.size:
            raise MalformedDocumentError(
                f"config blob {config.digest} is {len(raw)} bytes, the manifest says {config.size}"
            )
        return raw


def _from_cache(cache: Cache, digest: str) -> FetchedManifest | None:
    hit = cache.get_manifest(digest)
    if hit is None:
        return None
    raw, content_type = hit
    return FetchedManifest(raw, content_type, digest, None)


def _wants_config(manifest: ImageManifest, compat_docker: bool) -> bool:
    """Read the config only where it holds a platform: an image config (never an artifact's)."""
    if manifest.config.media_type in mt.IMAGE_CONFIG_TYPES:
        return True
    # The daemon reads any schema2 manifest's config; --compat docker does the same.
    return compat_docker and manifest.media_type == mt.DOCKER_MANIFEST


def _embedded_data(descriptor: Descriptor) -> bytes | None:
    """A descriptor's ``data`` field, if present and valid, saves a request."""
    if descriptor.data is None:
        return None
    try:
        raw = base64.b64decode(descriptor.data, validate=True)
    except (binascii.Error, ValueError):
        return None
    verify_digest(raw, descriptor.digest, what="embedded config data")
    return raw
