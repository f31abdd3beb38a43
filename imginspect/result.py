"""What an inspection found: the target descriptor, its document, and derived views.

Pure module: the data model shared by the registry code that fills it and the JSON and
table renderers that present it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from imginspect.manifest import (
    Child,
    Descriptor,
    Document,
    ImageManifest,
    Index,
    Platform,
    classify_child,
)
from imginspect.reference import Reference


@dataclass(frozen=True)
class ImageSize:
    """What pulling one image transfers: config plus layers, compressed as stored."""

    compressed: int
    layers: int

    @classmethod
    def of(cls, manifest: ImageManifest) -> ImageSize:
        return cls(manifest.compressed_size, len(manifest.layers))


#: An index entry without a ``platform`` is reported as this, as the Docker Engine does.
EMPTY_PLATFORM = Platform()


@dataclass(frozen=True)
class InspectResult:
    """The answer for one reference."""

    reference: Reference
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
    #: Docker Hub's pull quota after this request: (limit, remaining, window seconds)
    rate_limit: tuple[int | None, int | None, int | None] | None = None

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
