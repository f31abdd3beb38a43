"""The manifest decoder and child classification: valid shapes, every malformed shape."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from imginspect import mediatypes as mt
from imginspect.digest import compute_digest
from imginspect.errors import ImginspectError, MalformedDocumentError, UnsupportedManifestError
from imginspect.manifest import (
    ChildKind,
    ImageManifest,
    Index,
    Platform,
    classify_child,
    decode_config_platform,
    decode_descriptor,
    decode_document,
)

D1 = compute_digest(b"one")
D2 = compute_digest(b"two")


def desc(media_type: str = mt.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": D1, "size": 3, **extra}


def enc(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_decode_index_with_platforms() -> None:
    raw = enc(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [desc(platform={"os": "linux", "architecture": "arm", "variant": "v7"})],
            "annotations": {"k": "v"},
        }
    )
    doc = decode_document(raw, mt.OCI_INDEX)
    assert isinstance(doc, Index)
    assert doc.manifests[0].platform == Platform(os="linux", architecture="arm", variant="v7")
    assert doc.annotations == {"k": "v"}


def test_decode_schema2_manifest() -> None:
    raw = enc(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": desc(mt.DOCKER_CONFIG),
            "layers": [desc("application/vnd.docker.image.rootfs.diff.tar.gzip", size=10)],
        }
    )
    doc = decode_document(raw)
    assert isinstance(doc, ImageManifest)
    assert doc.compressed_size == 13


def test_body_media_type_wins_over_content_type() -> None:
    raw = enc({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})
    doc = decode_document(raw, mt.OCI_MANIFEST)
    assert isinstance(doc, Index) and doc.declared_media_type


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ({"schemaVersion": 2, "manifests": []}, "application/json", mt.OCI_INDEX),
        ({"schemaVersion": 2, "manifests": []}, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST_LIST),
        ({"schemaVersion": 2, "config": desc(mt.OCI_CONFIG), "layers": []}, None, mt.OCI_MANIFEST),
    ],
)
def test_media_type_without_body_field(
    body: dict[str, Any], content_type: str | None, expected: str
) -> None:
    doc = decode_document(enc(body), content_type)
    assert doc.media_type == expected and not doc.declared_media_type


def test_schema1_is_unsupported() -> None:
    with pytest.raises(UnsupportedManifestError, match="schema1"):
        decode_document(enc({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}))
    with pytest.raises(UnsupportedManifestError):
        decode_document(b"{}", mt.DOCKER_MANIFEST_SCHEMA1_SIGNED)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty body"),
        (b"   \n", "empty body"),
        (b"<html><body>Bad gateway</body></html>", "HTML"),
        (gzip.compress(b'{"schemaVersion":2}', mtime=0), "gzip"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"schemaVersion": 2,', "invalid JSON"),
        (b"[1,2]", "expected a JSON object"),
        (b'"str"', "expected a JSON object"),
        (b"[" * 100000 + b"]" * 100000, "JSON"),
        (enc({"schemaVersion": 3, "mediaType": mt.OCI_INDEX, "manifests": []}), "schemaVersion"),
        (enc({"schemaVersion": True, "mediaType": mt.OCI_INDEX, "manifests": []}), "schemaVersion"),
        (enc({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": {}}), "'manifests'"),
        (enc({"schemaVersion": 2, "mediaType": mt.OCI_INDEX}), "'manifests'"),
        (enc({"schemaVersion": 2, "mediaType": 7, "manifests": []}), "'mediaType'"),
        (
            enc({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc(size=-1)]}),
            "size",
        ),
        (
            enc({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc(size=True)]}),
            "size",
        ),
        (
            enc({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc(size="3")]}),
            "size",
        ),
        (
            enc({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc(size=1.5)]}),
            "size",
        ),
        (
            enc({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc(digest="x")]}),
            "digest",
        ),
        (
            enc(
                {
                    "schemaVersion": 2,
                    "mediaType": mt.OCI_INDEX,
                    "manifests": [desc(digest="sha256:" + "A" * 64)],
                }
            ),
            "digest",
        ),
        (
            enc({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc(platform=[])]}),
            "platform",
        ),
        (
            enc(
                {
                    "schemaVersion": 2,
                    "mediaType": mt.OCI_INDEX,
                    "manifests": [desc(platform={"os": 1})],
                }
            ),
            "'os'",
        ),
        (
            enc({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [], "annotations": 1}),
            "annotations",
        ),
        (enc({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": []}), "descriptor"),
        (
            enc(
                {
                    "schemaVersion": 2,
                    "mediaType": mt.OCI_MANIFEST,
                    "config": desc(mt.OCI_CONFIG),
                    "layers": "x",
                }
            ),
            "'layers'",
        ),
        (
            enc({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "manifests": []}),
            "must not have 'manifests'",
        ),
    ],
)
def test_malformed(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedDocumentError, match=message):
        decode_document(raw)


def test_unknown_media_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedManifestError, match="application/x-foo"):
        decode_document(enc({"schemaVersion": 2, "mediaType": "application/x-foo"}))


def test_config_platform() -> None:
    raw = enc(
        {
            "architecture": "amd64",
            "os": "windows",
            "os.version": "10.0.20348.2340",
            "os.features": ["win32k"],
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    )
    assert decode_config_platform(raw) == Platform(
        os="windows", architecture="amd64", os_version="10.0.20348.2340", os_features=("win32k",)
    )
    assert decode_config_platform(b"{}") is None


@pytest.mark.parametrize(
    ("descriptor", "kind"),
    [
        (desc(platform={"os": "linux", "architecture": "amd64"}), ChildKind.IMAGE),
        (
            desc(mt.DOCKER_MANIFEST, platform={"os": "linux", "architecture": "amd64"}),
            ChildKind.IMAGE,
        ),
        (desc(), ChildKind.NO_PLATFORM),
        (desc(platform={"os": "", "architecture": ""}), ChildKind.NO_PLATFORM),
        (desc(mt.OCI_INDEX), ChildKind.INDEX),
        (desc(artifactType="application/spdx+json"), ChildKind.ARTIFACT),
        (
            desc(
                platform={"os": "unknown", "architecture": "unknown"},
                annotations={
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": D2,
                },
            ),
            ChildKind.ATTESTATION,
        ),
        (
            desc("application/x-other", platform={"os": "linux", "architecture": "amd64"}),
            ChildKind.ARTIFACT,
        ),
    ],
)
def test_classify(descriptor: dict[str, Any], kind: ChildKind) -> None:
    child = classify_child(decode_descriptor(descriptor, "test"))
    assert child.kind is kind
    if kind is ChildKind.ATTESTATION:
        assert child.subject_digest == D2


@settings(max_examples=1500)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_decoder_raises_only_project_errors_on_bytes(raw: bytes) -> None:
    with contextlib.suppress(ImginspectError):
        decode_document(raw)


_keys = st.sampled_from(
    [
        "schemaVersion",
        "mediaType",
        "manifests",
        "config",
        "layers",
        "annotations",
        "platform",
        "digest",
        "size",
        "subject",
        "artifactType",
        "os",
        "architecture",
        "urls",
        "variant",
    ]
)
_leaf = st.sampled_from(
    [None, True, 0, -1, 2, 1.5, "", "x", D1, mt.OCI_INDEX, mt.OCI_MANIFEST, mt.OCI_CONFIG]
)
_json = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=6),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(_keys, _json | st.lists(st.dictionaries(_keys, _json, max_size=6), max_size=3)),
    st.sampled_from([None, mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, "text/html"]),
)
def test_decoder_raises_only_project_errors_on_shapes(
    doc: dict[str, Any], ctype: str | None
) -> None:
    doc.setdefault("schemaVersion", 2)
    with contextlib.suppress(ImginspectError):
        decode_document(json.dumps(doc).encode(), ctype)


_DIGEST_GRAMMAR = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")


def _digest_by_the_grammar(value: str) -> bool:
    match = _DIGEST_GRAMMAR.fullmatch(value)
    if match is None:
        return False
    lengths = {"sha256": 64, "sha384": 96, "sha512": 128}
    encoded = match.group(2)
    return lengths.get(match.group(1)) == len(encoded) and set(encoded) <= set("0123456789abcdef")


@settings(deadline=None, max_examples=300)
@given(
    st.one_of(
        st.from_regex(r"sha256:[0-9a-fA-FxX:\n]{62,66}", fullmatch=True),
        st.from_regex(r"sha(256|384|512):[0-9a-f]{63,129}", fullmatch=True),
        st.text(max_size=80),
    )
)
@example("sha256:" + "a" * 64 + "\n")
@example("sha512:" + "a" * 128 + "\n")
def test_the_digest_fast_path_agrees_with_the_grammar(value: str) -> None:
    """sha256 digests skip the regular expression; the answer is the grammar's."""
    from imginspect.digest import is_valid_digest

    assert is_valid_digest(value) == _digest_by_the_grammar(value)
