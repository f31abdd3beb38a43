"""The extended JSON document (``--format extended-json``): everything the table shows.

Versioned and documented by a JSON Schema shipped in the package
(``imginspect/schemas/extended-v1.json``). Batch runs print one document per line (NDJSON); a
reference that failed gets an error document on its line instead. Pure module.
"""

from __future__ import annotations

import json
from typing import Any

from imginspect.errors import ImginspectError
from imginspect.manifest import Child, ChildKind, Descriptor, ImageManifest, Platform
from imginspect.result import InspectResult

SCHEMA_VERSION = 1


def platform_object(platform: Platform | None) -> dict[str, Any] | None:
    if platform is None:
        return None
    out: dict[str, Any] = {"os": platform.os, "architecture": platform.architecture}
    if platform.variant:
        out["variant"] = platform.variant
    if platform.os_version:
        out["os.version"] = platform.os_version
    if platform.os_features:
        out["os.features"] = list(platform.os_features)
    return out


def _descriptor_object(desc: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mediaType": desc.media_type,
        "digest": desc.digest,
        "size": desc.size,
    }
    if desc.annotations:
        out["annotations"] = dict(sorted(desc.annotations.items()))
    if desc.artifact_type:
        out["artifactType"] = desc.artifact_type
    return out


def _child_object(child: Child, result: InspectResult) -> dict[str, Any]:
    out = _descriptor_object(child.descriptor)
    platform = child.descriptor.platform
    out["platform"] = platform_object(platform) if platform and not platform.is_empty else None
    out["kind"] = child.kind.value
    out["subject"] = child.subject_digest if child.kind is ChildKind.ATTESTATION else None
    size = (result.sizes or {}).get(child.descriptor.digest)
    out["compressedSize"] = size.compressed if size else None
    out["layers"] = size.layers if size else None
    return out


def _kind(result: InspectResult) -> str:
    if result.is_index:
        return "index"
    if result.descriptor.artifact_type or (
        isinstance(result.document, ImageManifest) and result.config_platform is None
    ):
        return "artifact"
    return "image"


def extended_document(result: InspectResult, *, given: str) -> dict[str, Any]:
    ref = result.reference
    size = (result.sizes or {}).get(result.descriptor.digest)
    single = isinstance(result.document, ImageManifest)
    return {
        "schemaVersion": SCHEMA_VERSION,
        "reference": given,
        "canonical": str(ref),
        "registry": ref.domain,
        "repository": ref.path,
        "tag": ref.tag,
        "descriptor": _descriptor_object(result.descriptor),
        "kind": _kind(result),
        "platform": platform_object(result.config_platform) if single else None,
        "compressedSize": size.compressed if size else None,
        "layers": size.layers if size else None,
        "selectedFrom": (
            _descriptor_object(result.selected_from) if result.selected_from else None
        ),
        "children": [_child_object(c, result) for c in result.children],
        "rateLimit": (
            None
            if result.rate_limit is None
            else {
                "limit": result.rate_limit.limit,
                "remaining": result.rate_limit.remaining,
                "window": result.rate_limit.window,
            }
        ),
    }


def error_document(given: str, error: ImginspectError) -> dict[str, Any]:
    return {
        "schemaVersion": SCHEMA_VERSION,
        "reference": given,
        "error": {
            "code": error.code,
            "exitCode": int(error.exit_code),
            "message": error.message,
            "hint": error.hint,
        },
    }


def encode_line(document: dict[str, Any]) -> bytes:
    """One compact JSON document and a newline (NDJSON)."""
    return (json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
