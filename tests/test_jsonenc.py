"""The Go-exact JSON encoder, unit by unit (the daemon differential test covers the whole)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from imginspect import mediatypes as mt
from imginspect.digest import compute_digest
from imginspect.jsonenc import encode_inspect, encode_platform, go_string
from imginspect.manifest import Descriptor, Platform, decode_document
from imginspect.reference import parse_reference
from imginspect.result import InspectResult


def test_go_string_escapes_html_and_line_separators_like_go() -> None:
    # Values produced by Go's json.Marshal.
    assert go_string("<a&b>") == '"\\u003ca\\u0026b\\u003e"'
    assert go_string("x\u2028y\u2029") == '"x\\u2028y\\u2029"'
    assert go_string('q"\\') == '"q\\"\\\\"'
    assert go_string("\n\r\t\x01\x1f") == '"\\n\\r\\t\\u0001\\u001f"'
    assert go_string("héllo ✓") == '"héllo ✓"'


@given(st.text())
def test_go_string_is_valid_json_for_the_same_text(text: str) -> None:
    encoded = go_string(text)
    decoded = json.loads(encoded)
    assert decoded == "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def test_platform_key_order_and_omitempty() -> None:
    assert encode_platform(Platform()) == '{"architecture":"","os":""}'
    full = Platform(
        os="windows",
        architecture="amd64",
        variant="v1",
        os_version="10.0.1",
        os_features=("win32k",),
        features=("sse4",),
    )
    assert encode_platform(full) == (
        '{"architecture":"amd64","os":"windows","os.version":"10.0.1",'
        '"os.features":["win32k"],"variant":"v1"}'
    )


def _result(raw: bytes, config_platform: Platform | None = None) -> InspectResult:
    document = decode_document(raw)
    return InspectResult(
        reference=parse_reference("localhost:5000/x:y"),
        descriptor=Descriptor(
            media_type=document.media_type,
            digest=compute_digest(raw),
            size=len(raw),
            annotations=document.annotations,
            artifact_type=document.artifact_type,
        ),
        document=document,
        raw=raw,
        config_platform=config_platform,
    )


def _manifest(media_type: str, **extra: object) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": compute_digest(b"{}"), "size": 2},
        "layers": [],
        **extra,
    }
    return json.dumps(doc).encode()


def test_single_oci_image_json_vs_compat() -> None:
    raw = _manifest(mt.OCI_MANIFEST, annotations={"b": "2", "a": "<1>"})
    result = _result(raw, Platform(os="linux", architecture="arm64", variant="v8"))
    digest = compute_digest(raw)
    assert (
        encode_inspect(result)
        == (
            f'{{"Descriptor":{{"mediaType":"{mt.OCI_MANIFEST}","digest":"{digest}",'
            f'"size":{len(raw)},"annotations":{{"a":"\\u003c1\\u003e","b":"2"}}}},'
            '"Platforms":[{"architecture":"arm64","os":"linux","variant":"v8"}]}\n'
        ).encode()
    )
    assert (
        encode_inspect(result, compat_docker=True)
        == (
            f'{{"Descriptor":{{"mediaType":"{mt.OCI_MANIFEST}","digest":"{digest}",'
            f'"size":{len(raw)}}},"Platforms":null}}\n'
        ).encode()
    )


def test_schema2_compat_keeps_config_platform() -> None:
    raw = _manifest(mt.DOCKER_MANIFEST)
    result = _result(raw, Platform(os="linux", architecture="amd64"))
    assert encode_inspect(result, compat_docker=True).endswith(
        b'"Platforms":[{"architecture":"amd64","os":"linux"}]}\n'
    )


def test_index_platforms_in_order_with_empty_entries_and_null_when_empty() -> None:
    child = {"mediaType": mt.OCI_MANIFEST, "digest": compute_digest(b"c"), "size": 1}
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [
                {**child, "platform": {"os": "linux", "architecture": "s390x", "features": ["x"]}},
                child,
            ],
        }
    ).encode()
    assert encode_inspect(_result(raw)).endswith(
        b'"Platforms":[{"architecture":"s390x","os":"linux"},{"architecture":"","os":""}]}\n'
    )
    empty = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode()
    assert encode_inspect(_result(empty)).endswith(b'"Platforms":null}\n')


def test_artifact_type_only_outside_compat() -> None:
    raw = _manifest(mt.OCI_MANIFEST, artifactType="application/vnd.example+json")
    assert b'"artifactType":"application/vnd.example+json"' in encode_inspect(_result(raw))
    assert b"artifactType" not in encode_inspect(_result(raw), compat_docker=True)
