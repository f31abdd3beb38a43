"""Review of how manifests, indexes and image configs are decoded and checked (hostile and
unusual documents).

Pure cases call the decoders; the others run the real CLI in a subprocess against a loopback
:class:`tests.support.badserver.BadServer` and check the one-line error and its exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]  # no stubs
import pytest

from imginspect import mediatypes as mt
from imginspect.errors import MalformedDocumentError, TooLargeError
from imginspect.imageconfig import MAX_HISTORY_ENTRIES, decode_image_config
from imginspect.manifest import ChildKind, classify_child, decode_descriptor, decode_document
from tests.support.badserver import (
    GOOD_IMAGE,
    BadServer,
    Reply,
    Request,
    Scenario,
    blob_reply,
    registry_error,
    serve_documents,
    sha256_digest,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
D1 = "sha256:" + "a" * 64
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def enc(document: object) -> bytes:
    return json.dumps(document).encode()


@dataclass(frozen=True)
class Run:
    code: int
    stdout: bytes
    stderr: str


def cli(*args: str) -> Run:
    """``python -m imginspect ARGS``: no proxy, no docker config, no cache, no settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in _PROXY_VARIABLES and not k.startswith("IMGINSPECT_")
    }
    env["DOCKER_CONFIG"] = str(REPO_ROOT / "tests" / "support" / "no-such-docker-config")
    env["IMGINSPECT_NO_CACHE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "imginspect", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))


def assert_one_line_error(run: Run, code: int, *fragments: str) -> None:
    context = f"exit {run.code}\nstdout={run.stdout[:2000]!r}\nstderr:\n{run.stderr[:2000]}"
    assert run.code == code, context
    assert run.stdout == b"", context
    assert "Traceback" not in run.stderr, context
    first = run.stderr.splitlines()[0]
    assert first.startswith("error: "), context
    for fragment in fragments:
        assert fragment in first, context


@pytest.fixture
def server() -> Iterator[BadServer]:
    with BadServer(scenarios=[]) as bad:
        yield bad


def _good_blobs(request: Request) -> Reply:
    raw = GOOD_IMAGE.blobs.get(request.ref or "")
    if raw is None:
        return registry_error(404, "BLOB_UNKNOWN", "blob unknown to registry")
    return blob_reply(raw)


def _entry(raw: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(raw), "size": len(raw), **extra}


def _index(*entries: dict[str, Any]) -> bytes:
    return enc({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": list(entries)})


AMD64 = {"architecture": "amd64", "os": "linux"}


# -- sizes are int64 ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2**63, 2**64, 10**30])
def test_a_size_beyond_int64_is_malformed(size: int) -> None:
    """OCI descriptors' size is an int64 (Go's decoders refuse more); a layer of 2**64 bytes
    was accepted and summed into a compressed size no Go consumer of the output can read."""
    layer = {"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": size}
    raw = enc(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 2},
            "layers": [layer],
        }
    )
    with pytest.raises(MalformedDocumentError, match="manifest layer 0: descriptor size"):
        decode_document(raw)


def test_the_largest_int64_size_is_accepted() -> None:
    descriptor = decode_descriptor({"mediaType": "x", "digest": D1, "size": 2**63 - 1}, "entry")
    assert descriptor.size == 2**63 - 1


# -- documents that are both an index and a manifest ---------------------------------------------


@pytest.mark.parametrize("key", ["config", "layers"])
@pytest.mark.parametrize("content_type", [None, mt.OCI_INDEX, mt.OCI_MANIFEST])
def test_an_index_with_image_manifest_fields_is_ambiguous(
    key: str, content_type: str | None
) -> None:
    """CVE-2021-41190 (GHSA-77vh-xpmg-72qh): a document with 'manifests' and 'config' or
    'layers' is an index to one client and an image to another (containerd refuses it:
    "expected index but found manifest"). An image manifest with 'manifests' was refused;
    an index with 'layers' was read as an index whatever Content-Type said."""
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    descriptor = {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 2}
    body[key] = descriptor if key == "config" else [descriptor]
    with pytest.raises(MalformedDocumentError, match=f"must not have '{key}'"):
        decode_document(enc(body), content_type)


@pytest.mark.parametrize("layers", [[], None])
def test_an_index_with_empty_layers_is_still_an_index(layers: object) -> None:
    """containerd's test (len(layers) != 0) lets an empty or null 'layers' through."""
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [], "layers": layers}
    assert decode_document(enc(body)).media_type == mt.OCI_INDEX


# -- an index entry's media type is what it points to ------------------------------------------


def test_a_platform_entry_that_is_an_index_is_not_selected(server: BadServer) -> None:
    """An entry says 'image manifest, linux/amd64' but its digest is an index: --platform
    printed the index's digest as the selected image (exit 0). containerd refuses it."""
    inner = _index(_entry(GOOD_IMAGE.manifest, mt.OCI_MANIFEST, platform=AMD64))
    outer = _index(_entry(inner, mt.OCI_MANIFEST, platform=AMD64))
    documents = [
        (outer, mt.OCI_INDEX),
        (inner, mt.OCI_INDEX),
        (GOOD_IMAGE.manifest, mt.OCI_MANIFEST),
    ]
    server.add(Scenario("entry-index", manifest=serve_documents(documents), blob=_good_blobs))
    for option in ("--digest", "--json"):
        run = cli("--platform", "linux/amd64", option, server.ref("entry-index"))
        assert_one_line_error(run, 1, sha256_digest(inner), mt.OCI_MANIFEST, mt.OCI_INDEX)


def test_a_nested_index_entry_that_is_an_image_is_refused(server: BadServer) -> None:
    """An entry says 'index' but its digest is an image manifest: its images were taken for
    none (--require: 'image has: none', exit 7, for an image that is there)."""
    outer = _index(_entry(GOOD_IMAGE.manifest, mt.OCI_INDEX))
    documents = [(outer, mt.OCI_INDEX), (GOOD_IMAGE.manifest, mt.OCI_MANIFEST)]
    server.add(Scenario("entry-image", manifest=serve_documents(documents), blob=_good_blobs))
    run = cli("--require", "linux/amd64", server.ref("entry-image"))
    assert_one_line_error(run, 1, GOOD_IMAGE.digest, mt.OCI_INDEX, mt.OCI_MANIFEST)


def test_a_docker_entry_for_an_oci_manifest_is_still_selected(server: BadServer) -> None:
    """Only index against image is refused, as containerd does: a manifest list entry of the
    Docker type for an OCI manifest (same shape) is selected as before."""
    outer = _index(_entry(GOOD_IMAGE.manifest, mt.DOCKER_MANIFEST, platform=AMD64))
    documents = [(outer, mt.OCI_INDEX), (GOOD_IMAGE.manifest, mt.OCI_MANIFEST)]
    server.add(Scenario("entry-docker", manifest=serve_documents(documents), blob=_good_blobs))
    run = cli("--platform", "linux/amd64", "--digest", server.ref("entry-docker"))
    assert (run.code, run.stdout.decode().strip()) == (0, GOOD_IMAGE.digest), run.stderr


# -- attestation subjects -------------------------------------------------------------------------


SCHEMA = json.loads((REPO_ROOT / "imginspect" / "schemas" / "extended-v1.json").read_text())


@pytest.mark.parametrize("subject", ["\x1b]0;pwned\x07", "sha256:abc", ""])
def test_an_attestation_subject_that_is_no_digest_is_none(subject: str) -> None:
    """BuildKit's vnd.docker.reference.digest names the attested image; whatever string an
    index put there became extended JSON's 'subject', which the schema says is a digest."""
    annotations = {
        mt.ANNOTATION_REFERENCE_TYPE: mt.ATTESTATION_MANIFEST,
        mt.ANNOTATION_REFERENCE_DIGEST: subject,
    }
    entry = {"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 3, "annotations": annotations}
    child = classify_child(decode_descriptor(entry, "index entry 0"))
    assert child.kind is ChildKind.ATTESTATION
    assert child.subject_digest is None


def test_an_attestation_subject_in_extended_json_follows_the_schema(server: BadServer) -> None:
    annotations = {
        mt.ANNOTATION_REFERENCE_TYPE: mt.ATTESTATION_MANIFEST,
        mt.ANNOTATION_REFERENCE_DIGEST: "not-a-digest",
    }
    good = _entry(GOOD_IMAGE.manifest, mt.OCI_MANIFEST, platform=AMD64)
    attestation = _entry(
        GOOD_IMAGE.manifest,
        mt.OCI_MANIFEST,
        platform={"architecture": "unknown", "os": "unknown"},
        annotations=annotations,
    )
    index = _index(good, attestation)
    documents = [(index, mt.OCI_INDEX), (GOOD_IMAGE.manifest, mt.OCI_MANIFEST)]
    server.add(Scenario("attested", manifest=serve_documents(documents), blob=_good_blobs))
    run = cli("--format", "extended-json", server.ref("attested"))
    assert run.code == 0, run.stderr
    document = json.loads(run.stdout)
    jsonschema.validate(document, SCHEMA)
    assert [c["subject"] for c in document["children"]] == [None, None]


# -- history entries are bounded ------------------------------------------------------------------


def _config_with_history(entries: int) -> bytes:
    return b'{"history":[' + b",".join([b"{}"] * entries) + b"]}"


def test_history_at_its_bound_is_decoded() -> None:
    config = decode_image_config(_config_with_history(MAX_HISTORY_ENTRIES))
    assert len(config.history) == MAX_HISTORY_ENTRIES


def test_a_config_of_millions_of_history_entries_is_refused_cheaply() -> None:
    """8 MiB (the config bound) of '{},' is 2.8 million history entries: decoding took 10 s
    and 830 MB (tracemalloc: 560 MB), and the table of --image-config 110 us more a row."""
    raw = _config_with_history((8 * 1024 * 1024 - 16) // 3)
    tracemalloc.start()
    try:
        with pytest.raises(TooLargeError, match="history entries"):
            decode_image_config(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # json.loads itself holds about 200 MB of empty dicts; the records were 360 MB more
    assert peak < 300 * 1024 * 1024


def test_a_config_with_too_many_history_entries_is_one_line_exit_1(server: BadServer) -> None:
    history = [{"created_by": f"RUN step {n}", "empty_layer": True} for n in range(20_001)]
    config = enc({"architecture": "amd64", "os": "linux", "history": history})
    manifest = json.loads(GOOD_IMAGE.manifest)
    manifest["config"] = _entry(config, mt.OCI_CONFIG)
    raw = enc(manifest)
    blobs = {**GOOD_IMAGE.blobs, sha256_digest(config): config}

    def blob(request: Request) -> Reply:
        return blob_reply(blobs[request.ref or ""])

    server.add(Scenario("history", manifest=serve_documents([(raw, mt.OCI_MANIFEST)]), blob=blob))
    assert_one_line_error(cli("--image-config", server.ref("history")), 1, "history entries")
    # without --image-config only the platform is read: no bound needed, none applied
    run = cli("--json", server.ref("history"))
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["Platforms"] == [AMD64]
