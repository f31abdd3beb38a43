"""What an inspection found: the target descriptor, its document, and derived views.

Pure module: the data model shared by the registry code that fills it and the JSON and
table renderers that present it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from imginspect._record import Record, record
from imginspect.manifest import (
    Child,
    Descriptor,
    Document,
    ImageManifest,
    Index,
    Platform,
    classify_child,
)
from imginspect.target import Target

if TYPE_CHECKING:
    from imginspect.imageconfig import ImageDetails


@record
class ImageSize(Record):
    """What pulling one image transfers: config plus layers, compressed as stored."""

    compressed: int
    layers: int

    @classmethod
    def of(cls, manifest: ImageManifest) -> ImageSize:
        return cls(manifest.compressed_size, len(manifest.layers))


@record
class RateLimit(Record):
    """Docker Hub's ``RateLimit-Limit: 100;w=21600`` / ``RateLimit-Remaining: 76;w=21600``."""

    limit: int | None
    remaining: int | None
    window: int | None

    @classmethod
    def from_headers(cls, limit: str | None, remaining: str | None) -> RateLimit | None:
        if limit is None and remaining is None:
            return None
        lim, window = _quota(limit)
        rem, window2 = _quota(remaining)
        return cls(lim, rem, window or window2)


def _quota(value: str | None) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    count, _, params = value.partition(";")
    window = None
    for param in params.split(";"):
        key, _, val = param.strip().partition("=")
        if key == "w" and _is_number(val):
            window = int(val)
    return (int(count) if _is_number(count.strip()) else None), window


def _is_number(text: str) -> bool:
    """ASCII digits, at most 19: ``str.isdigit()`` alone takes "²", which int() refuses (a
    crash, from one header), and int() refuses more than 4300 digits too."""
    return text.isascii() and text.isdigit() and len(text) <= 19


#: An index entry without a ``platform`` is reported as this, as the Docker Engine does.
EMPTY_PLATFORM = Platform()


@record
class InspectResult(Record):
    """The answer for one reference."""

    #: what was inspected: a registry reference, or an OCI layout target
    reference: Target
    #: the target: media type, digest and size of the bytes received, plus the document's
    #: own annotations and artifactType
    descriptor: Descriptor
    document: Document
    raw: bytes
    #: single-platform images: the platform read from the image config (None if it has none)
    config_platform: Platform | None = None
    #: with --sizes: per image digest, its compressed size and layer count
    sizes: Mapping[str, ImageSize] | None = None
    #: with --platform: the index this image was selected from
    selected_from: Descriptor | None = None
    #: Docker Hub's pull quota after this request, when the registry announced it
    rate_limit: RateLimit | None = None
    #: a single image: its config blob as received (verified), when it was read
    config_raw: bytes | None = None
    #: with --image-config: the configuration, layers and history of each image (a single
    #: image, or each image entry of an index, nested ones included), in index order
    images: tuple[ImageDetails, ...] | None = None
    #: with --image-config: the index entries left out (attestations unless asked for,
    #: artifacts, entries without a platform)
    images_skipped: tuple[Child, ...] = ()

    @property
    def is_index(self) -> bool:
        return isinstance(self.document, Index)

    @property
    def children(self) -> tuple[Child, ...]:
        if isinstance(self.document, Index):
            return tuple(classify_child(d) for d in self.document.manifests)
        return ()

    @property
    def platforms(self) -> tuple[Platform, ...]:
        """One platform per index entry, in order; or the config's platform for an image."""
        if isinstance(self.document, Index):
            return tuple(d.platform or EMPTY_PLATFORM for d in self.document.manifests)
        if isinstance(self.document, ImageManifest) and self.config_platform is not None:
            return (self.config_platform,)
        return ()
