"""The manifest model: descriptors, platforms, image manifests and indexes, and their decoder.

``decode_document`` turns the exact bytes a registry sent into typed, validated objects;
anything that does not have the OCI/Docker shape becomes a :class:`MalformedDocumentError`
that says what was wrong. ``decode_config_platform`` reads the platform fields of an image
config. ``classify_child`` says what an index entry is (image, attestation, ...).
Pure module: json and the project's own pure modules only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any

from imginspect import mediatypes as mt
from imginspect._record import Record, record
from imginspect.digest import is_valid_digest
from imginspect.errors import MalformedDocumentError, UnsupportedManifestError

#: How deep indexes may nest before we call it abuse (a cycle is caught separately).
MAX_INDEX_DEPTH = 8
#: A descriptor's size is an int64 (OCI descriptor spec; Go's decoders refuse more).
MAX_SIZE = 2**63 - 1


@record
class Platform(Record):
    """The platform an image runs on (OCI image index ``platform`` / image config fields)."""

    os: str = ""
    architecture: str = ""
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    #: CPU features from an index entry; reserved by the OCI spec and not part of our output.
    features: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [self.os or "unknown", self.architecture or "unknown"]
        if self.variant:
            parts.append(self.variant)
        return "/".join(parts)

    @property
    def is_empty(self) -> bool:
        return not (self.os or self.architecture)


@record
class Descriptor(Record):
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] | None = None
    platform: Platform | None = None
    artifact_type: str | None = None
    data: str | None = None


@record
class ImageManifest(Record):
    """A single-platform image (or artifact) manifest: Docker schema2 or OCI."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] | None = None
    artifact_type: str | None = None
    subject: Descriptor | None = None
    #: True when the body itself declared ``mediaType`` (rather than the Content-Type header)
    declared_media_type: bool = True

    @property
    def compressed_size(self) -> int:
        """Config plus layers: what a pull of this image transfers."""
        return self.config.size + sum(layer.size for layer in self.layers)


@record
class Index(Record):
    """A multi-platform index: OCI image index or Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] | None = None
    artifact_type: str | None = None
    subject: Descriptor | None = None
    declared_media_type: bool = True


Document = ImageManifest | Index


class ChildKind(str, Enum):
    """What an index entry points at, as shown in the table and extended JSON."""

    IMAGE = "image"
    ATTESTATION = "attestation"
    ARTIFACT = "artifact"
    INDEX = "index"
    NO_PLATFORM = "no platform"


@record
class Child(Record):
    """An index entry with its classification."""

    descriptor: Descriptor
    kind: ChildKind
    #: for attestations: the digest of the image manifest they attest
    subject_digest: str | None = None


# --------------------------------------------------------------------------- decoding


def _fail(what: str, problem: str) -> MalformedDocumentError:
    return MalformedDocumentError(f"malformed {what}: {problem}")


def _parse_json_object(raw: bytes, what: str) -> dict[str, Any]:
    if not raw.strip():
        raise _fail(what, "empty body")
    if raw[:2] == b"\x1f\x8b":
        raise _fail(what, "body is gzip-compressed although no compression was asked for")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(what, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if text.lstrip()[:1] == "<":
        raise _fail(what, "body is HTML or XML, not JSON")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(
            what,
            f"invalid JSON ({exc.msg.removesuffix(' at')}: line {exc.lineno} column {exc.colno})",
        ) from None
    except RecursionError:
        raise _fail(what, "JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python will convert
        raise _fail(what, f"invalid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _fail(what, f"expected a JSON object, got {type(value).__name__}")
    return value


def _opt_str(obj: Mapping[str, Any], key: str, what: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(what, f"{key!r} must be a string")
    return value


def _str_list(obj: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(what, f"{key!r} must be an array of strings")
    return tuple(value)


def _annotations(obj: Mapping[str, Any], what: str) -> Mapping[str, str] | None:
    value = obj.get("annotations")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _fail(what, "'annotations' must be an object of strings")
    return dict(value)


def decode_platform(obj: object, what: str) -> Platform:
    """Decode an index entry's ``platform`` object."""
    if not isinstance(obj, dict):
        raise _fail(what, "'platform' must be an object")
    return Platform(
        os=_opt_str(obj, "os", what) or "",
        architecture=_opt_str(obj, "architecture", what) or "",
        variant=_opt_str(obj, "variant", what) or "",
        os_version=_opt_str(obj, "os.version", what) or "",
        os_features=_str_list(obj, "os.features", what),
        features=_str_list(obj, "features", what),
    )


def decode_descriptor(obj: object, what: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise _fail(what, "descriptor must be an object")
    media_type = obj.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise _fail(what, "descriptor 'mediaType' missing or not a string")
    digest = obj.get("digest")
    if not is_valid_digest(digest):
        raise _fail(what, f"descriptor digest {digest!r} is not a valid digest")
    assert isinstance(digest, str)
    size = obj.get("size")
    # bool is an int subclass in Python; JSON true is not a size.
    # Beyond int64 too: Python's int has no bound, so 2**64 was accepted and summed into a
    # compressed size no Go consumer of our output can read.
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise _fail(what, f"descriptor size {size!r} is not a non-negative integer")
    platform = obj.get("platform")
    data = _opt_str(obj, "data", what)
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=_str_list(obj, "urls", what),
        annotations=_annotations(obj, what),
        platform=None if platform is None else decode_platform(platform, what),
        artifact_type=_opt_str(obj, "artifactType", what),
        data=data,
    )


def _effective_media_type(body: Mapping[str, Any], content_type: str | None) -> tuple[str, bool]:
    """The document's type: its own ``mediaType`` wins over the header; else infer by shape."""
    declared = body.get("mediaType")
    if declared is not None:
        if not isinstance(declared, str):
            raise _fail("manifest", "'mediaType' must be a string")
        return declared, True
    header = (content_type or "").split(";", 1)[0].strip().lower()
    if header in mt.INDEX_TYPES or header in mt.IMAGE_MANIFEST_TYPES or header in mt.SCHEMA1_TYPES:
        return header, False
    # OCI allows omitting mediaType; a registry may send a generic Content-Type. Infer.
    if "manifests" in body:
        return mt.OCI_INDEX, False
    if "config" in body or "layers" in body:
        return mt.OCI_MANIFEST, False
    return header, False


def decode_document(raw: bytes, content_type: str | None = None) -> Document:
    """Decode manifest or index bytes. The body's ``mediaType`` is trusted over the header."""
    body = _parse_json_object(raw, "manifest")
    schema_version = body.get("schemaVersion")
    media_type, declared = _effective_media_type(body, content_type)
    if (schema_version == 1 and not isinstance(schema_version, bool)) or (
        media_type in mt.SCHEMA1_TYPES
    ):
        raise UnsupportedManifestError(
            "Docker schema1 manifests are not supported (deprecated since 2017)",
            hint="push the image again with a current client to get a schema2 or OCI manifest",
        )
    if schema_version != 2 or isinstance(schema_version, bool):
        raise _fail("manifest", f"'schemaVersion' is {schema_version!r}, expected 2")
    annotations = _annotations(body, "manifest")
    artifact_type = _opt_str(body, "artifactType", "manifest")
    subject_obj = body.get("subject")
    subject = None if subject_obj is None else decode_descriptor(subject_obj, "manifest subject")

    if media_type in mt.INDEX_TYPES:
        entries = body.get("manifests")
        if not isinstance(entries, list):
            raise _fail("index", "'manifests' must be an array")
        # CVE-2021-41190: a document with 'manifests' and 'config' or 'layers' is an index to
        # one client and an image to another, by Content-Type or by mediaType; containerd
        # refuses it ("expected index but found manifest"), as the image-manifest branch does.
        # Its test is ours: any 'config', 'layers' unless null or empty.
        for key in ("config", "layers"):
            if key in body and (key == "config" or body[key] not in (None, [])):
                raise _fail("index", f"an index ({media_type}) must not have {key!r}")
        manifests = tuple(
            decode_descriptor(entry, f"index entry {i}") for i, entry in enumerate(entries)
        )
        return Index(
            media_type=media_type,
            manifests=manifests,
            annotations=annotations,
            artifact_type=artifact_type,
            subject=subject,
            declared_media_type=declared,
        )
    if media_type in mt.IMAGE_MANIFEST_TYPES:
        if "manifests" in body:
            raise _fail("manifest", f"an image manifest ({media_type}) must not have 'manifests'")
        config = decode_descriptor(body.get("config"), "manifest config")
        layers_obj = body.get("layers", [])
        if not isinstance(layers_obj, list):
            raise _fail("manifest", "'layers' must be an array")
        layers = tuple(
            decode_descriptor(layer, f"manifest layer {i}") for i, layer in enumerate(layers_obj)
        )
        return ImageManifest(
            media_type=media_type,
            config=config,
            layers=layers,
            annotations=annotations,
            artifact_type=artifact_type,
            subject=subject,
            declared_media_type=declared,
        )
    raise UnsupportedManifestError(
        f"unsupported manifest media type {media_type or '(none)'!r}",
        hint="imginspect reads OCI image indexes and manifests and Docker schema2 manifests/lists",
    )


def decode_config_platform(raw: bytes) -> Platform | None:
    """Read architecture, os, variant, os.version and os.features from an image config.

    Returns ``None`` when neither os nor architecture is set, as the Docker Engine does.
    """
    body = _parse_json_object(raw, "image config")
    platform = Platform(
        os=_opt_str(body, "os", "image config") or "",
        architecture=_opt_str(body, "architecture", "image config") or "",
        variant=_opt_str(body, "variant", "image config") or "",
        os_version=_opt_str(body, "os.version", "image config") or "",
        os_features=_str_list(body, "os.features", "image config"),
    )
    return None if platform.is_empty else platform


def classify_child(descriptor: Descriptor) -> Child:
    """Say what an index entry is, from its media type, platform and annotations."""
    annotations = descriptor.annotations or {}
    if annotations.get(mt.ANNOTATION_REFERENCE_TYPE) == mt.ATTESTATION_MANIFEST:
        subject = annotations.get(mt.ANNOTATION_REFERENCE_DIGEST)
        return Child(
            descriptor,
            ChildKind.ATTESTATION,
            # Only a digest names the attested image: any other string went out as the
            # extended JSON's 'subject', which its schema says is a digest.
            subject_digest=subject if is_valid_digest(subject) else None,
        )
    if descriptor.media_type in mt.INDEX_TYPES:
        return Child(descriptor, ChildKind.INDEX)
    if descriptor.artifact_type:
        return Child(descriptor, ChildKind.ARTIFACT)
    if descriptor.platform is None or descriptor.platform.is_empty:
        return Child(descriptor, ChildKind.NO_PLATFORM)
    if descriptor.media_type not in mt.IMAGE_MANIFEST_TYPES:
        return Child(descriptor, ChildKind.ARTIFACT)
    return Child(descriptor, ChildKind.IMAGE)
