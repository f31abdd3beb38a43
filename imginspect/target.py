"""What a command-line target names: a registry reference, or a local OCI layout.

``oci:PATH[:TAG][@DIGEST]`` and ``oci-archive:FILE[:TAG]`` name layouts
(:mod:`imginspect.layout`, imported only for them); anything else is an image reference as
docker takes it (:mod:`imginspect.reference`).
"""

from __future__ import annotations

from imginspect.reference import Reference, parse_reference


def parse_target(text: str) -> Reference:
    """The :class:`Reference` ``text`` names; raises InvalidReferenceError (exit 2)."""
    from imginspect.inspector import LAYOUT_PREFIXES

    if text.startswith(LAYOUT_PREFIXES):
        from imginspect.layout import parse_source_reference

        ref = parse_source_reference(text)
        if ref is not None:
            return ref
    return parse_reference(text)
