"""What the user named: a registry reference or an OCI layout, from one parse.

:func:`parse_target` is the one place that tells them apart: ``oci:PATH[:IMAGE][@DIGEST]``
and ``oci-archive:FILE[:IMAGE][@DIGEST]`` are :class:`LayoutTarget` values (the semantics of
skopeo's ``oci:`` transport, plus digests), everything else is a registry
:class:`~imginspect.reference.Reference` (Docker's grammar and normalization). A
:class:`Target` is either; code that needs to know which asks ``isinstance``, never a prefix.

Layout targets:

* ``@DIGEST``: the last ``@``, when followed by ``sha256:``, ``sha384:`` or ``sha512:``,
  starts a digest, which must then be valid (otherwise ``@`` is part of PATH or IMAGE). A
  digest wins over an IMAGE given with it (which is then only displayed), as in Docker.
* The rest is split at its *first* ``:``, exactly as skopeo does (containers/image
  ``SplitPathAndImage``): PATH cannot contain ``:`` (reach such paths through a symlink).
* IMAGE (empty means none: ``oci:PATH:`` is ``oci:PATH``) is an
  ``org.opencontainers.image.ref.name`` value: OCI's grammar or Docker's tag grammar.

Pure module: parsing never touches the disk.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Final, Literal

from imginspect._record import Record, record
from imginspect.digest import DIGEST_HINT, is_valid_digest
from imginspect.errors import InvalidReferenceError
from imginspect.reference import Reference, is_valid_tag, parse_reference

__all__ = [
    "ARCHIVE_PREFIX",
    "DEFAULT_LAYOUT_TARGET",
    "LAYOUT_PREFIX",
    "LayoutTarget",
    "Target",
    "parse_target",
    "valid_image_name",
]

LAYOUT_PREFIX: Final = "oci:"
ARCHIVE_PREFIX: Final = "oci-archive:"

#: ``target`` of a layout target with neither IMAGE nor digest: "index.json's only entry, or
#: index.json itself". Neither a valid ref.name nor a digest, so it cannot collide with one.
DEFAULT_LAYOUT_TARGET: Final = "/index.json"

# The OCI ref.name grammar (image-spec annotations.md), as containers/image validates it.
_REF_NAME_COMPONENT: Final = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME_RE: Final = re.compile(rf"{_REF_NAME_COMPONENT}(?:/{_REF_NAME_COMPONENT})*", re.ASCII)
# What after the last '@' makes it a digest: a registered algorithm's name and ':'.
_DIGEST_LIKE_RE: Final = re.compile(r"(?:sha256|sha384|sha512):.*", re.ASCII | re.DOTALL)


@record
class LayoutTarget(Record):
    """An OCI image layout directory (``oci:``) or its tar form (``oci-archive:``).

    ``domain``, ``name``, ``tag``, ``target`` and :meth:`with_digest` mean what they mean on a
    :class:`~imginspect.reference.Reference`, so results and renderers treat both alike:
    ``domain`` and ``name`` are the layout (``oci:PATH``), ``path`` its normalized PATH or
    FILE, ``tag`` the IMAGE.
    """

    transport: Literal["oci", "oci-archive"]
    path: str  # normalized: "./a//b/" is "a/b"; ".." is kept
    image: str | None = None
    digest: str | None = None

    @property
    def is_archive(self) -> bool:
        return self.transport == "oci-archive"

    @property
    def location(self) -> str:
        """``oci:PATH`` / ``oci-archive:FILE``: the layout, without IMAGE or digest."""
        return f"{self.transport}:{self.path}"

    @property
    def domain(self) -> str:
        return self.location

    @property
    def name(self) -> str:
        return self.location

    @property
    def tag(self) -> str | None:
        return self.image

    @property
    def target(self) -> str:
        """The digest if there is one, else the IMAGE, else :data:`DEFAULT_LAYOUT_TARGET`."""
        return self.digest or self.image or DEFAULT_LAYOUT_TARGET

    def familiar_string(self) -> str:
        return str(self)

    def __str__(self) -> str:
        """``oci:PATH[:IMAGE][@DIGEST]``; parsing it gives back an equal value."""
        image = f":{self.image}" if self.image is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return f"{self.location}{image}{digest}"

    def with_digest(self, digest: str) -> LayoutTarget:
        """The same layout and IMAGE, pinned to ``digest``."""
        if not is_valid_digest(digest):
            raise InvalidReferenceError(f"invalid digest {digest!r}", hint=DIGEST_HINT)
        return replace(self, digest=digest)


#: What a user can name: an image in a registry, or one in an OCI layout.
Target = Reference | LayoutTarget


def parse_target(text: str) -> Target:
    """Parse what the user named. Raises :class:`InvalidReferenceError` (exit 2) if it is
    malformed."""
    layout = _parse_layout(text)
    return layout if layout is not None else parse_reference(text)


def _parse_layout(text: str) -> LayoutTarget | None:
    transport: Literal["oci", "oci-archive"]
    if text.startswith(ARCHIVE_PREFIX):
        prefix, transport = ARCHIVE_PREFIX, "oci-archive"
    elif text.startswith(LAYOUT_PREFIX):
        prefix, transport = LAYOUT_PREFIX, "oci"
    else:
        return None
    rest = text[len(prefix) :]
    what = "archive file" if transport == "oci-archive" else "layout directory"
    quoted = json.dumps(text, ensure_ascii=False)
    if any(ord(c) < 0x20 or c == "\x7f" for c in rest):
        raise InvalidReferenceError(f"invalid reference {quoted}: control character")

    digest: str | None = None
    head, at, tail = rest.rpartition("@")
    if at and _DIGEST_LIKE_RE.fullmatch(tail):
        if not is_valid_digest(tail):
            raise InvalidReferenceError(
                f"invalid reference {quoted}: invalid digest {tail!r}", hint=DIGEST_HINT
            )
        digest, rest = tail, head

    path, _, image = rest.partition(":")  # the FIRST ':', as skopeo splits
    if not path:
        raise InvalidReferenceError(
            f"invalid reference {quoted}: no {what}",
            hint=f"write {prefix}PATH[:TAG|@DIGEST], e.g. {prefix}./build/image:latest",
        )
    if image and not valid_image_name(image):
        raise InvalidReferenceError(
            f"invalid reference {quoted}: {image!r} is not a valid image name or tag",
            hint=(
                "after the first ':' comes an org.opencontainers.image.ref.name value "
                "(letters, digits, '.', '_', '-', ':', '@', '+', '/'); "
                f"the {what} itself cannot contain ':'"
            ),
        )
    return LayoutTarget(transport, _normalize_path(path), image=image or None, digest=digest)


def valid_image_name(text: str) -> bool:
    """An ``org.opencontainers.image.ref.name`` value (OCI's grammar) or a Docker tag
    (``_v1``, ``a..b``: buildx writes those too)."""
    return _REF_NAME_RE.fullmatch(text) is not None or is_valid_tag(text)


def _normalize_path(path: str) -> str:
    """``./a//b/`` -> ``a/b``; keeps ``..`` (normpath would change the meaning of symlinks)."""
    absolute = path.startswith("/")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    joined = "/".join(parts)
    if absolute:
        return "/" + joined
    return joined or "."
