"""Platform selection (``--platform``) and the CI checks (``--require``, ``--require-only``,
``--expect-digest``), as library functions.

The checks are pure: given the image entries of an index (``Inspector.image_children``) or a
single image's config platform, they return a verdict -- the typed error the CLI reports
(exit 7 or 8), or None -- and raise nothing. Only :func:`select_platform` makes requests
(through the inspector it is given). No click, no rich, no httpx.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from imginspect import platforms
from imginspect.errors import DigestDriftError, MissingPlatformError, PlatformNotFoundError

if TYPE_CHECKING:
    from imginspect.inspector import Inspector
    from imginspect.manifest import Child, Platform
    from imginspect.result import InspectResult


def present_platforms(result: InspectResult, images: Sequence[Child] | None) -> list[Platform]:
    """The platforms ``result`` provides: its image entries' (``images``, nested indexes
    expanded; attestations are not images) for an index, else its config platform."""
    if images is not None:
        return [c.descriptor.platform for c in images if c.descriptor.platform is not None]
    return [result.config_platform] if result.config_platform is not None else []


def check_required(
    result: InspectResult,
    images: Sequence[Child] | None,
    required: Sequence[Platform],
    *,
    only: bool = False,
    given: str | None = None,
) -> MissingPlatformError | None:
    """``--require``: the verdict (exit 7) when a required platform is missing or, with
    ``only``, when another one is present; None when the image passes. ``images``: the
    image entries of an index (None for a single image); ``given``: the reference as the
    user wrote it, for the message (default: the canonical reference)."""
    present = present_platforms(result, images)
    missing = [w for w in required if not any(platforms.matches(w, p) for p in present)]
    extra = []
    if only:
        extra = [p for p in present if not any(platforms.matches(w, p) for w in required)]
    if not (missing or extra):
        return None
    has = ", ".join(dict.fromkeys(platforms.format_platform(p) for p in present)) or "none"
    problems = []
    if missing:
        problems.append("missing " + ", ".join(platforms.format_platform(p) for p in missing))
    if extra:
        names = dict.fromkeys(platforms.format_platform(p) for p in extra)
        problems.append("unexpected " + ", ".join(names))
    name = given if given is not None else str(result.reference)
    return MissingPlatformError(f"{name}: {'; '.join(problems)} (image has: {has})")


def check_expected_digest(digest: str, expected: str | None, given: str) -> DigestDriftError | None:
    """``--expect-digest``: the verdict (exit 8) when ``digest`` is not ``expected``; None
    when it is, or when nothing is expected."""
    if expected is None or digest == expected:
        return None
    return DigestDriftError(
        f"{given} points to {digest}, expected {expected}",
        hint="the tag was pushed again; update the pinned digest if that is intended",
    )


def select_platform(
    inspector: Inspector,
    result: InspectResult,
    wanted: Platform,
    images: Sequence[Child] | None = None,
    *,
    read_config: bool = True,
    compat_docker: bool = False,
) -> InspectResult:
    """``--platform``: the image of ``result`` for ``wanted`` (containerd's matching and
    preference order), with ``selected_from`` naming the index it came from; ``result``
    itself when it is a single image of that platform. Raises PlatformNotFoundError (exit 4)
    naming the platforms there are. ``images``: the index's image entries when already
    listed (nested indexes are then not fetched twice)."""
    if not result.is_index:
        present = result.config_platform
        if present is not None and platforms.matches(wanted, present):
            return result
        has = platforms.format_platform(present) if present else "no platform"
        raise PlatformNotFoundError(
            f"{result.reference} has no {platforms.format_platform(wanted)} image "
            f"(it is a single-platform image: {has})"
        )
    if images is None:
        images = inspector.image_children(result)
    candidates = [c.descriptor.platform for c in images]
    index = platforms.best_match(wanted, [p for p in candidates if p is not None])
    if index is None:
        available = ", ".join(
            sorted({platforms.format_platform(p) for p in candidates if p is not None})
        )
        raise PlatformNotFoundError(
            f"{result.reference} has no {platforms.format_platform(wanted)} image",
            hint=f"available platforms: {available or 'none'}",
        )
    chosen = [c for c in images if c.descriptor.platform is not None][index]
    child = inspector.inspect_child(
        result, chosen.descriptor, read_config=read_config, compat_docker=compat_docker
    )
    return replace(child, selected_from=result.descriptor)
