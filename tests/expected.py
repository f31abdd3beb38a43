"""An independent model of the expected output, computed from the pushed test images.

This is a second implementation of the contract (from the corpus documents, with Python's
json module), so a bug in imginspect's own encoder or decoder cannot hide in both.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.corpus import DOCKER_CONFIG, DOCKER_MANIFEST, OCI_CONFIG, PushedImage

_PLATFORM_ORDER = ("architecture", "os", "os.version", "os.features", "variant")


def platform_object(platform: dict[str, Any] | None) -> dict[str, Any]:
    platform = platform or {}
    out: dict[str, Any] = {
        "architecture": platform.get("architecture", ""),
        "os": platform.get("os", ""),
    }
    for key in _PLATFORM_ORDER[2:]:
        if platform.get(key):
            out[key] = platform[key]
    return out


def expected_platforms(image: PushedImage, *, compat_docker: bool) -> list[dict[str, Any]] | None:
    doc = image.document
    if image.is_index:
        platforms = [platform_object(m.get("platform")) for m in doc["manifests"]]
    else:
        config_type = doc["config"]["mediaType"]
        is_schema2 = image.media_type == DOCKER_MANIFEST
        reads_config = is_schema2 if compat_docker else config_type in (OCI_CONFIG, DOCKER_CONFIG)
        cfg = image.config_platform or {}
        has_platform = bool(cfg.get("os") or cfg.get("architecture"))
        platforms = [platform_object(cfg)] if reads_config and has_platform else []
    return platforms or None


def expected_document(image: PushedImage, *, compat_docker: bool = False) -> dict[str, Any]:
    doc = image.document
    descriptor: dict[str, Any] = {
        "mediaType": doc.get("mediaType") or image.media_type,
        "digest": image.digest,
        "size": image.size,
    }
    if not compat_docker:
        if doc.get("annotations"):
            descriptor["annotations"] = dict(sorted(doc["annotations"].items()))
        if doc.get("artifactType"):
            descriptor["artifactType"] = doc["artifactType"]
    return {
        "Descriptor": descriptor,
        "Platforms": expected_platforms(image, compat_docker=compat_docker),
    }


def expected_json(image: PushedImage, *, compat_docker: bool = False) -> bytes:
    """Exact bytes: compact, one newline (the corpus has no characters Go would escape)."""
    document = expected_document(image, compat_docker=compat_docker)
    return (json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
