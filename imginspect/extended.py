"""The extended JSON document (``--format extended-json``): everything the table shows.

Versioned and documented by a JSON Schema shipped in the package
(``imginspect/schemas/extended-v1.json``; version 2, ``--format extended-json-v2``, adds the
``images`` of ``--image-config``: ``imginspect/schemas/extended-v2.json``). Batch runs print
one document per line (NDJSON); a reference that failed gets an error document on its line
instead. Pure module.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from imginspect.errors import ImginspectError
from imginspect.manifest import Child, ChildKind, Descriptor, ImageManifest, Platform
from imginspect.output import utf8
from imginspect.result import InspectResult

if TYPE_CHECKING:
    from imginspect.imageconfig import ImageDetails

SCHEMA_VERSION = 1
#: ``--format extended-json-v2``: version 1 plus ``images`` and ``imagesSkipped``
SCHEMA_VERSION_2 = 2


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


def extended_document_v2(result: InspectResult, *, given: str) -> dict[str, Any]:
    """Version 2: version 1's fields, then ``images`` (null without ``--image-config``) and
    ``imagesSkipped``."""
    document = extended_document(result, given=given)
    document["schemaVersion"] = SCHEMA_VERSION_2
    document["images"] = None if result.images is None else [image_object(d) for d in result.images]
    document["imagesSkipped"] = [
        {"digest": c.descriptor.digest, "kind": c.kind.value} for c in result.images_skipped
    ]
    return document


def image_object(details: ImageDetails) -> dict[str, Any]:
    """One image of ``--image-config`` (schema v2, ``$defs/image``)."""
    config = details.config
    history = list(config.history) if config is not None else []
    layer_of_history: dict[int, int] = {}
    history_of_layer: dict[int, int] = {}
    unmatched_history: set[int] = set()
    position = {id(entry): n for n, entry in enumerate(history)}
    for step in details.steps:
        h = None if step.history is None else position[id(step.history)]
        if h is not None and step.index is not None:
            layer_of_history[h] = step.index
            history_of_layer[step.index] = h
        elif h is not None and step.unmatched is not None:
            unmatched_history.add(h)
    layers = []
    for n, layer in enumerate(details.manifest.layers):
        out = _descriptor_object(layer)
        if layer.urls:
            out["urls"] = list(layer.urls)
        out.pop("artifactType", None)
        diff_ids = config.diff_ids if config is not None else ()
        out["diffId"] = diff_ids[n] if n < len(diff_ids) else None
        out["history"] = history_of_layer.get(n)
        out["unmatched"] = config is not None and n not in history_of_layer
        layers.append(out)
    health = config.healthcheck if config is not None else None
    return {
        "digest": details.digest,
        "mediaType": details.manifest.media_type,
        "kind": details.kind,
        "platform": platform_object(details.platform),
        "compressedSize": details.compressed_size,
        "config": _descriptor_object(details.manifest.config),
        "created": config.created if config else None,
        "author": config.author if config else None,
        "user": config.user if config else None,
        "workingDir": config.working_dir if config else None,
        "entrypoint": _list_or_none(config.entrypoint) if config else None,
        "cmd": _list_or_none(config.cmd) if config else None,
        "env": list(config.env) if config else [],
        "exposedPorts": list(config.exposed_ports) if config else [],
        "volumes": list(config.volumes) if config else [],
        "labels": dict(config.labels) if config and config.labels is not None else None,
        "stopSignal": config.stop_signal if config else None,
        "healthcheck": None
        if health is None
        else {
            "test": list(health.test),
            "interval": health.interval,
            "timeout": health.timeout,
            "startPeriod": health.start_period,
            "startInterval": health.start_interval,
            "retries": health.retries,
        },
        "shell": _list_or_none(config.shell) if config else None,
        "layers": layers,
        "history": [
            {
                "created": entry.created,
                "createdBy": entry.created_by,
                "author": entry.author,
                "comment": entry.comment,
                "emptyLayer": entry.empty_layer,
                "layer": layer_of_history.get(n),
                "unmatched": n in unmatched_history,
            }
            for n, entry in enumerate(history)
        ],
    }


def _list_or_none(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)


def error_document(given: str, error: ImginspectError, *, version: int = 1) -> dict[str, Any]:
    return {
        "schemaVersion": version,
        "reference": given,
        "error": {
            "code": error.code,
            "exitCode": int(error.exit_code),
            "message": error.message,
            "hint": error.hint,
        },
    }


def encode_line(document: dict[str, Any]) -> bytes:
    """One compact JSON document and a newline (NDJSON). A lone surrogate (a registry's
    ``"\\ud800"``) is written as U+FFFD, as Go's encoding/json decodes it: ``encode()``
    refused it, a traceback instead of the document."""
    return utf8(json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n")
