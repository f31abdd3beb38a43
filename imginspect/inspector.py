"""Inspecting references: the library entry point that ties registry I/O to the model.

An :class:`Inspector` holds what a run shares across references (one transport and
connection pool, one :class:`RegistryClient` with its tokens per registry) and turns a
:class:`Reference` into an :class:`InspectResult` with as few requests as possible: one GET
of the manifest or index (by tag it gives digest and bytes at once), plus, for a single
image, one GET of its config blob for the platform.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import difflib
import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from imginspect import mediatypes as mt
from imginspect.auth import Credential
from imginspect.cache import Cache
from imginspect.digest import verify_digest
from imginspect.errors import (
    ImginspectError,
    MalformedDocumentError,
    NotFoundError,
    TooLargeError,
)
from imginspect.manifest import (
    MAX_INDEX_DEPTH,
    Child,
    ChildKind,
    Descriptor,
    ImageManifest,
    Platform,
    decode_config_platform,
    decode_document,
)
from imginspect.reference import Reference, is_loopback_host
from imginspect.registry import (
    MAX_CONFIG_BYTES,
    FetchedManifest,
    MirroredRegistryClient,
    RegistryClient,
)
from imginspect.result import ImageSize, InspectResult

if TYPE_CHECKING:
    from imginspect.layout import ManifestSource
    from imginspect.settings import RegistrySettings

from imginspect.transport import HttpTransport, Logger, RetryPolicy, Timeouts

#: Finds the credential for (registry domain, repository path); None means anonymous.
CredentialProvider = Callable[[str, str], Credential | None]

#: Reference domains that name local OCI layouts rather than registries (imginspect.layout).
LAYOUT_PREFIXES = ("oci:", "oci-archive:")

#: How many tags one request lists when a tag is not found (to suggest the closest ones).
TAGS_LISTED = 1000

#: The entries of the nested indexes of an index (at any depth), by the nested index's digest.
IndexTree = dict[str, tuple[Child, ...]]


class Inspector:
    """Inspects references; reuse one instance for many references (connections, tokens)."""

    def __init__(
        self,
        *,
        insecure: bool = False,
        insecure_registries: frozenset[str] = frozenset(),
        credentials: CredentialProvider | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        log: Logger | None = None,
        cache: Cache | None = None,
        settings: RegistrySettings | None = None,
    ) -> None:
        self._insecure_all = insecure
        self._insecure_registries = insecure_registries
        self._credentials = credentials
        self._log = log
        self._cache = cache
        self._settings = settings
        self._transport = HttpTransport(
            timeouts=timeouts,
            log=log,
            retry=retry,
            ssl_context_for=settings.ssl_context_for if settings is not None else None,
        )
        self._clients: dict[str, ManifestSource] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._transport.close()
        if self._cache is not None:
            self._cache.flush()
        for client in self._clients.values():
            close = getattr(client, "close", None)
            if close is not None and not isinstance(client, RegistryClient):
                close()  # layouts: archives keep their file open

    def __enter__(self) -> Inspector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_insecure(self, host: str) -> bool:
        """Loopback registries are insecure by default, as in the Docker daemon."""
        if self._insecure_all or host in self._insecure_registries:
            return True
        if self._settings is not None:
            return self._settings.is_insecure(host)  # daemon.json, certs.d, loopback
        return is_loopback_host(host)

    def client_for(self, domain: str) -> ManifestSource:
        with self._lock:
            client = self._clients.get(domain)
            if client is None and domain.startswith(LAYOUT_PREFIXES):
                # oci:PATH / oci-archive:FILE: read files, no HTTP (imported only when used)
                from imginspect.layout import LayoutClient

                client = LayoutClient.for_domain(domain)
                self._clients[domain] = client
            if client is None:
                provider = self._credentials
                mirrors = self._settings.mirrors_for(domain) if self._settings else ()
                credentials = None if provider is None else functools.partial(provider, domain)
                if mirrors:
                    client = MirroredRegistryClient(
                        domain,
                        self._transport,
                        mirrors=[
                            RegistryClient(
                                domain,
                                self._transport,
                                endpoint=mirror.base_url,
                                # a mirror's own credentials, if the user has any for it
                                credentials=(
                                    None
                                    if provider is None
                                    else functools.partial(provider, mirror.host)
                                ),
                                insecure=self.is_insecure(mirror.host),
                                insecure_host=self.is_insecure,
                                cache=self._cache,
                            )
                            for mirror in mirrors
                        ],
                        credentials=credentials,
                        insecure=self.is_insecure(domain),
                        insecure_host=self.is_insecure,
                        cache=self._cache,
                        log=self._log,
                    )
                else:
                    client = RegistryClient(
                        domain,
                        self._transport,
                        credentials=credentials,
                        insecure=self.is_insecure(domain),
                        cache=self._cache,
                        insecure_host=self.is_insecure,
                    )
                self._clients[domain] = client
            return client

    def resolve_digest(self, reference: Reference) -> str:
        """The digest ``reference`` points to, with one HEAD where the registry allows.

        HEAD does not count against Docker Hub's pull limit. Registries that refuse HEAD or
        omit ``Docker-Content-Digest`` get a GET, and the digest is computed from the body.
        """
        client = self.client_for(reference.domain)
        try:
            head = client.head_manifest(reference.path, reference.target)
            if head is not None:
                return head.digest
            return client.get_manifest(reference.path, reference.target).digest
        except NotFoundError as error:
            raise self._not_found(client, reference, error) from None

    def inspect(
        self, reference: Reference, *, compat_docker: bool = False, read_config: bool = True
    ) -> InspectResult:
        """Resolve ``reference`` and describe what it points to.

        ``read_config=False`` skips the config blob of a single image (its platform stays
        unknown): for callers that only need the manifest, such as ``--raw``.
        """
        client = self.client_for(reference.domain)
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
        if (
            read_config
            and isinstance(document, ImageManifest)
            and _wants_config(document, compat_docker)
        ):
            config_platform = self._config_platform(client, reference, document.config)
        return InspectResult(
            reference=reference,
            descriptor=descriptor,
            document=document,
            raw=fetched.raw,
            config_platform=config_platform,
            rate_limit=fetched.rate_limit,
        )

    def _not_found(
        self, client: ManifestSource, reference: Reference, error: NotFoundError
    ) -> NotFoundError:
        """Say whether the repository, the tag or the digest is missing.

        Registries answer MANIFEST_UNKNOWN for a manifest of a repository that does not exist
        too (the CNCF registry does), so on this failure path only, one request lists the
        repository's tags: NAME_UNKNOWN means the repository is missing; otherwise the tag
        (with the closest existing tags as a hint) or the digest is. If the list cannot be
        had, the registry's own error stands.
        """
        if not isinstance(client, RegistryClient) or error.message.startswith("repository "):
            return error
        where = f"{reference.domain}/{reference.path}"
        try:
            tags = client.list_tags(reference.path, limit=TAGS_LISTED)
        except NotFoundError as listing:
            if listing.message.startswith("repository "):  # NAME_UNKNOWN
                return NotFoundError(f"repository not found: {where}")
            return error
        except ImginspectError:
            return error
        if reference.digest is not None:
            return NotFoundError(f"digest not found: {where}@{reference.digest}", hint=error.hint)
        tag = reference.tag or "latest"
        close = difflib.get_close_matches(tag, tags, n=5, cutoff=0.6)
        if close:
            hint = "closest existing tags: " + ", ".join(close)
        elif tags:
            hint = f"no tag of {where} is close to {tag!r}"
        else:
            hint = f"{where} has no tags"
        return NotFoundError(f"tag not found: {where}:{tag}", hint=hint)

    def _fetch_manifest(self, client: ManifestSource, reference: Reference) -> FetchedManifest:
        """The manifest ``reference`` names, from the cache where that is safe.

        By digest, a cached copy is the answer (content never changes). By tag, the tag is
        re-resolved with a HEAD only when the cache already holds what it pointed to last
        time (otherwise a GET by tag answers in one request); the HEAD's digest then finds
        the cached bytes, or they are fetched by that digest.
        """
        cache = self._cache
        repository = reference.path
        if cache is None or not isinstance(client, RegistryClient):  # local files: no gain
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
        client = self.client_for(result.reference.domain)

        def one(child: Child) -> tuple[str, ImageSize]:
            digest = child.descriptor.digest
            fetched = self._fetch_manifest(client, result.reference.with_digest(digest))
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

    def _config_platform(
        self, client: ManifestSource, reference: Reference, config: Descriptor
    ) -> Platform | None:
        if config.size > MAX_CONFIG_BYTES:
            raise TooLargeError(
                f"image config {config.digest} is {config.size} bytes, "
                f"more than the {MAX_CONFIG_BYTES} bytes accepted"
            )
        raw = _embedded_data(config)
        local = not isinstance(client, RegistryClient)
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
        return decode_config_platform(raw)


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
