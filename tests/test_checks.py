"""Unit tests of imginspect.checks: --require/--require-only and --expect-digest verdicts
(pure, typed, never raised), and --platform selection of a single image."""

from __future__ import annotations

import hashlib
import json

import pytest

from imginspect.checks import (
    check_expected_digest,
    check_required,
    present_platforms,
    select_platform,
)
from imginspect.errors import DigestDriftError, MissingPlatformError, PlatformNotFoundError
from imginspect.manifest import ChildKind, Descriptor, decode_document
from imginspect.platforms import parse_platform, parse_platform_list
from imginspect.reference import parse_reference
from imginspect.result import InspectResult

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def _digest(n: int) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def _index(*platforms: str, attestation: bool = False) -> InspectResult:
    manifests = []
    for n, text in enumerate(platforms):
        os_, arch, *variant = text.split("/")
        platform = {"os": os_, "architecture": arch}
        if variant:
            platform["variant"] = variant[0]
        manifests.append(
            {"mediaType": OCI_MANIFEST, "digest": _digest(n), "size": 400, "platform": platform}
        )
    if attestation:
        manifests.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": _digest(99),
                "size": 600,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": _digest(0),
                },
            }
        )
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    document = decode_document(raw, OCI_INDEX)
    descriptor = Descriptor(OCI_INDEX, "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw))
    return InspectResult(parse_reference("example.com/app:v1"), descriptor, document, raw)


def _images(result: InspectResult) -> list:  # type: ignore[type-arg]
    return [c for c in result.children if c.kind is ChildKind.IMAGE]


def _single(platform: str | None) -> InspectResult:
    index = _index("linux/amd64")
    # any decoded document will do: the checks read config_platform for a single image
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": D1,
                "size": 2,
            },
            "layers": [],
        }
    ).encode()
    document = decode_document(raw, OCI_MANIFEST)
    return InspectResult(
        index.reference,
        Descriptor(OCI_MANIFEST, D2, len(raw)),
        document,
        raw,
        config_platform=None if platform is None else parse_platform(platform),
    )


def test_required_platforms_present_is_no_verdict() -> None:
    result = _index("linux/amd64", "linux/arm64/v8", attestation=True)
    wanted = parse_platform_list(["linux/amd64,linux/arm64"])
    assert check_required(result, _images(result), wanted) is None


def test_missing_platform_is_a_typed_verdict_naming_what_is_there() -> None:
    result = _index("linux/amd64", attestation=True)
    verdict = check_required(
        result, _images(result), parse_platform_list(["linux/arm64"]), given="app:v1"
    )
    assert isinstance(verdict, MissingPlatformError)
    assert verdict.exit_code == 7
    # attestations (unknown/unknown) never count as platforms
    assert verdict.message == "app:v1: missing linux/arm64 (image has: linux/amd64)"


def test_require_only_reports_extra_platforms() -> None:
    result = _index("linux/amd64", "linux/s390x")
    wanted = parse_platform_list(["linux/amd64"])
    assert check_required(result, _images(result), wanted) is None
    verdict = check_required(result, _images(result), wanted, only=True, given="r")
    assert verdict is not None and verdict.message == (
        "r: unexpected linux/s390x (image has: linux/amd64, linux/s390x)"
    )


def test_missing_and_extra_together_and_default_name() -> None:
    result = _index("linux/s390x")
    verdict = check_required(result, _images(result), [parse_platform("linux/amd64")], only=True)
    assert verdict is not None
    assert verdict.message == (
        f"{result.reference}: missing linux/amd64; unexpected linux/s390x (image has: linux/s390x)"
    )


def test_single_image_is_checked_by_its_config_platform() -> None:
    wanted = [parse_platform("linux/riscv64")]
    assert check_required(_single("linux/riscv64"), None, wanted) is None
    none = check_required(_single(None), None, wanted, given="x")
    assert none is not None and none.message == "x: missing linux/riscv64 (image has: none)"
    assert present_platforms(_single(None), None) == []


def test_expected_digest() -> None:
    assert check_expected_digest(D1, None, "r") is None
    assert check_expected_digest(D1, D1, "r") is None
    verdict = check_expected_digest(D1, D2, "r")
    assert isinstance(verdict, DigestDriftError)
    assert verdict.exit_code == 8
    assert verdict.message == f"r points to {D1}, expected {D2}"
    assert verdict.hint is not None


def test_select_platform_of_a_single_image_needs_no_request() -> None:
    single = _single("linux/arm64/v8")
    # no inspector is used for a single image: it is the answer or it is not
    assert select_platform(None, single, parse_platform("linux/arm64")) is single  # type: ignore[arg-type]
    with pytest.raises(PlatformNotFoundError) as caught:
        select_platform(None, single, parse_platform("linux/amd64"))  # type: ignore[arg-type]
    assert "single-platform image: linux/arm64)" in caught.value.message
    assert caught.value.exit_code == 4
