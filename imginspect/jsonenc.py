"""The ``GET /distribution/{name}/json`` document, encoded exactly as the Docker Engine does.

The Engine encodes with Go's ``encoding/json``: compact, struct fields in declaration order,
map keys sorted, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped as ``\\u00XX``, one trailing
newline. We reproduce that byte for byte so ``--compat docker`` can be diffed against a real
daemon, and ``--json`` differs only where the daemon is wrong (see ``encode_inspect``).
Pure module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from imginspect import mediatypes as mt
from imginspect.manifest import ImageManifest, Platform
from imginspect.result import InspectResult

_HEX = "0123456789abcdef"


# Printable ASCII other than the characters Go escapes: the common case, quoted as is.
_PLAIN = re.compile(r"[\x20-\x7e]*")
_GO_ESCAPED = frozenset('"\\<>&')


def go_string(text: str) -> str:
    """Quote ``text`` as Go's encoding/json does (HTML-safe, UTF-8 kept as is)."""
    if _PLAIN.fullmatch(text) and _GO_ESCAPED.isdisjoint(text):
        return '"' + text + '"'
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or ch in "<>&" or code in (0x2028, 0x2029):
            out.append(
                "\\u00" + _HEX[code >> 4] + _HEX[code & 0xF] if code < 0x100 else f"\\u{code:04x}"
            )
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")  # Go replaces invalid UTF-8 (a lone surrogate here)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _go_map(values: Mapping[str, str]) -> str:
    # Go sorts map keys by their UTF-8 bytes. Its decoder made a lone surrogate (a JSON
    # "\ud800") U+FFFD in the key already: the key sorts as U+FFFD does, and keys that only
    # differ there are one key, the last in the document winning (Python kept them apart:
    # sorted before U+E000..U+FFFC, and printed twice as "\ufffd").
    go_keys: dict[str, str] = {}
    for key, value in values.items():
        go_keys[_SURROGATE.sub("\ufffd", key)] = value
    keys = sorted(go_keys, key=lambda k: k.encode("utf-8"))
    return "{" + ",".join(f"{go_string(k)}:{go_string(go_keys[k])}" for k in keys) + "}"


def _go_string_list(values: tuple[str, ...]) -> str:
    return "[" + ",".join(go_string(v) for v in values) + "]"


def encode_platform(platform: Platform) -> str:
    """An OCI ``Platform`` as the Engine's ``v1.Platform`` struct encodes it."""
    parts = [
        f'"architecture":{go_string(platform.architecture)}',
        f'"os":{go_string(platform.os)}',
    ]
    if platform.os_version:
        parts.append(f'"os.version":{go_string(platform.os_version)}')
    if platform.os_features:
        parts.append(f'"os.features":{_go_string_list(platform.os_features)}')
    if platform.variant:
        parts.append(f'"variant":{go_string(platform.variant)}')
    return "{" + ",".join(parts) + "}"


def _platforms(platforms: tuple[Platform, ...]) -> str:
    if not platforms:
        return "null"  # a nil Go slice, never []
    return "[" + ",".join(encode_platform(p) for p in platforms) + "]"


def encode_inspect(result: InspectResult, *, compat_docker: bool = False) -> bytes:
    """The endpoint's JSON for ``result``, with the trailing newline.

    ``--json`` (``compat_docker=False``) corrects two daemon shortcomings: a single OCI image
    reports the platform from its config (the daemon only does so for Docker schema2), and
    the Descriptor carries the document's ``annotations`` and ``artifactType``.
    ``compat_docker=True`` reproduces the Engine (API 1.41+) byte for byte.
    """
    desc = result.descriptor
    parts = []
    if desc.media_type:
        parts.append(f'"mediaType":{go_string(desc.media_type)}')
    parts.append(f'"digest":{go_string(desc.digest)}')
    parts.append(f'"size":{desc.size}')
    if not compat_docker:
        if desc.annotations:
            parts.append(f'"annotations":{_go_map(desc.annotations)}')
        if desc.artifact_type:
            parts.append(f'"artifactType":{go_string(desc.artifact_type)}')
    platforms = result.platforms
    if (
        compat_docker
        and isinstance(result.document, ImageManifest)
        and result.document.media_type != mt.DOCKER_MANIFEST
    ):
        platforms = ()
    text = '{"Descriptor":{' + ",".join(parts) + '},"Platforms":' + _platforms(platforms) + "}\n"
    return text.encode("utf-8")
