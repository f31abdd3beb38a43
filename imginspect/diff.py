"""Comparing two inspected targets: descriptor, platforms added or removed, per platform the
digest and size.

:func:`compare` is pure: it takes two :class:`~imginspect.result.InspectResult` objects (and,
for indexes, their image entries with nested indexes expanded, as
``Inspector.image_children`` lists them) and returns an :class:`ImageDiff`. Entries are
matched by platform (``os/arch[/variant]``, plus ``os.version`` when set); BuildKit
attestations are matched as ``attestation of <platform>``. A single image is one entry, its
config platform. No third-party imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imginspect import platforms
from imginspect.errors import ExitCode, ImginspectError
from imginspect.manifest import Child, ChildKind, Descriptor

if TYPE_CHECKING:
    from imginspect.inspector import Inspector
    from imginspect.result import InspectResult
    from imginspect.target import Target

SAME = "same"
CHANGED = "changed"
ADDED = "added"
REMOVED = "removed"


class ImagesDifferError(ImginspectError):
    """``imginspect diff``: the two targets differ (exit 9, a verdict like 7 and 8)."""

    exit_code = ExitCode.IMAGES_DIFFER
    code = "images-differ"


@dataclass(frozen=True)
class EntryDiff:
    """One platform (or attestation) in A, in B, or in both."""

    key: str
    a: Descriptor | None
    b: Descriptor | None
    #: compressed sizes (config + layers) when the results carry ``sizes``
    a_compressed: int | None = None
    b_compressed: int | None = None

    @property
    def status(self) -> str:
        if self.a is None:
            return ADDED
        if self.b is None:
            return REMOVED
        return SAME if self.a.digest == self.b.digest else CHANGED


@dataclass(frozen=True)
class ImageDiff:
    """The differences between two targets; ``differ`` is the verdict."""

    a: Descriptor
    b: Descriptor
    entries: tuple[EntryDiff, ...]

    @property
    def same_digest(self) -> bool:
        return self.a.digest == self.b.digest

    @property
    def media_type_changed(self) -> bool:
        return self.a.media_type != self.b.media_type

    @property
    def differ(self) -> bool:
        return not self.same_digest

    def with_status(self, status: str) -> tuple[EntryDiff, ...]:
        return tuple(e for e in self.entries if e.status == status)


def _key(child: Child, by_digest: dict[str, str]) -> str:
    descriptor = child.descriptor
    if child.kind is ChildKind.ATTESTATION:
        attested = by_digest.get(child.subject_digest or "", child.subject_digest or "?")
        return f"attestation of {attested}"
    if descriptor.platform is None or descriptor.platform.is_empty:
        return f"{child.kind.value} {descriptor.digest}"
    key = platforms.format_platform(descriptor.platform)
    if descriptor.platform.os_version:
        key += f" {descriptor.platform.os_version}"
    return key


def _entries(
    result: InspectResult, images: Sequence[Child] | None
) -> dict[str, tuple[Descriptor, int | None]]:
    sizes = result.sizes or {}
    out: dict[str, tuple[Descriptor, int | None]] = {}
    if not result.is_index:
        platform = result.config_platform
        key = platforms.format_platform(platform) if platform is not None else "image"
        if platform is not None and platform.os_version:
            key += f" {platform.os_version}"
        size = sizes.get(result.descriptor.digest)
        out[key] = (result.descriptor, size.compressed if size is not None else None)
        return out
    children = list(images) if images is not None else []
    children += [c for c in result.children if c.kind is ChildKind.ATTESTATION]
    if images is None:
        children = list(result.children)
    by_digest = {
        c.descriptor.digest: _key(c, {})
        for c in children
        if c.kind is ChildKind.IMAGE and c.descriptor.platform is not None
    }
    for child in children:
        key = _key(child, by_digest)
        n = 2
        unique = key
        while unique in out:  # the same platform twice: keep both, numbered
            unique = f"{key} #{n}"
            n += 1
        size = sizes.get(child.descriptor.digest)
        out[unique] = (child.descriptor, size.compressed if size is not None else None)
    return out


def compare(
    a: InspectResult,
    b: InspectResult,
    *,
    a_images: Sequence[Child] | None = None,
    b_images: Sequence[Child] | None = None,
) -> ImageDiff:
    """The differences between ``a`` and ``b``; entries in A's order, then those only in B."""
    left = _entries(a, a_images)
    right = _entries(b, b_images)
    entries = []
    for key, (descriptor, compressed) in left.items():
        other = right.get(key)
        entries.append(
            EntryDiff(
                key,
                descriptor,
                other[0] if other else None,
                compressed,
                other[1] if other else None,
            )
        )
    for key, (descriptor, compressed) in right.items():
        if key not in left:
            entries.append(EntryDiff(key, None, descriptor, None, compressed))
    return ImageDiff(a.descriptor, b.descriptor, tuple(entries))


def compare_targets(inspector: Inspector, targets: tuple[Target, Target]) -> ImageDiff:
    """`imginspect diff`: both targets inspected (an index with its images), compared."""
    results = [inspector.inspect(t) for t in targets]
    images = [inspector.image_children(r) if r.is_index else None for r in results]
    return compare(results[0], results[1], a_images=images[0], b_images=images[1])
