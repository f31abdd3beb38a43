"""The one interface every source of manifests and blobs implements, and what it returns.

A :class:`Source` is a registry (:class:`imginspect.registry.RegistryClient`), a chain of
mirrors in front of one (:class:`imginspect.mirrors.MirrorChain`) or an OCI layout
(:class:`imginspect.layout.LayoutSource`); the :class:`~imginspect.inspector.Inspector`,
their consumer, sees only this interface. The sources never import each other: the layout
source loads no HTTP library.

Pure module: dataclasses and a protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from imginspect._record import Record, record

if TYPE_CHECKING:
    from collections.abc import Iterator

    from imginspect.result import RateLimit

#: The OCI distribution spec lets registries refuse manifests over 4 MiB; so do we.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
#: Image configs are small JSON documents; a few MiB leaves room for long histories.
MAX_CONFIG_BYTES = 8 * 1024 * 1024


@record
class FetchedManifest(Record):
    """A manifest or index exactly as received, with its verified digest."""

    raw: bytes
    content_type: str | None
    digest: str
    #: the registry's ``Docker-Content-Digest`` header, if it sent one
    header_digest: str | None
    #: Docker Hub's pull limit as the response announced it (``RateLimit-*`` headers)
    rate_limit: RateLimit | None = None

    @property
    def size(self) -> int:
        return len(self.raw)


@record
class ReferrersPage(Record):
    """One page of the OCI 1.1 referrers API: an image index of referrer descriptors."""

    raw: bytes
    content_type: str | None
    #: the filters the registry applied itself (``OCI-Filters-Applied``, e.g. artifactType)
    filters_applied: frozenset[str] = frozenset()


@record
class ManifestHead(Record):
    """What a HEAD request tells about a manifest without its body."""

    digest: str
    media_type: str | None
    size: int | None


class Source(Protocol):
    """Where manifests and blobs of one registry host or one layout come from.

    Every method verifies what it returns against its digest; failures are
    :class:`~imginspect.errors.ImginspectError` subclasses. Thread-safe.
    """

    #: whether its content is worth the persistent cache (a registry's; not local files')
    remote: bool

    def get_manifest(self, repository: str, target: str) -> FetchedManifest:
        """The manifest or index ``target`` (tag or digest) names, bytes as received."""
        ...

    def head_manifest(self, repository: str, target: str) -> ManifestHead | None:
        """Its digest without its body; None when the source cannot tell that way."""
        ...

    def get_blob(self, repository: str, digest: str, *, max_bytes: int, what: str) -> bytes:
        """The blob ``digest``, at most ``max_bytes``."""
        ...

    def list_tags(self, repository: str, *, limit: int) -> list[str]:
        """Up to ``limit`` tags of ``repository``."""
        ...

    def iter_tag_pages(self, repository: str, *, page_size: int, limit: int) -> Iterator[list[str]]:
        """The repository's tags, a page at a time (``Link`` pagination), ``limit`` in all."""
        ...

    def get_referrers(
        self, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> tuple[ReferrersPage, ...] | None:
        """The referrers API's answer for ``digest``; None when the source has no such API."""
        ...

    def close(self) -> None:
        """Release what the source holds open (files; connections belong to the transport)."""
        ...
