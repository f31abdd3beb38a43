"""Integrity checks, end to end: the real CLI in a subprocess against a misbehaving registry
(:class:`tests.support.badserver.BadServer`) and the real CNCF registry.

What is checked here is what a registry (or anything between it and us) can get wrong about
the bytes it serves: a descriptor's embedded ``data``, an index entry's size, a config's size
and its bound, ``Docker-Content-Digest`` on GET and HEAD, and how digest resolution falls back
from HEAD to GET (and when it must not). Request counts come from the server's own records.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from imginspect.digest import (
    algorithm_of,
    compute_digest,
    is_valid_digest,
    new_hasher,
    short_digest,
    verify_digest,
)
from imginspect.errors import DigestMismatchError, InvalidReferenceError, MalformedDocumentError
from imginspect.reference import host_without_port, is_docker_hub, is_valid_tag, parse_reference
from imginspect.sources import MAX_CONFIG_BYTES
from tests.expected import expected_json
from tests.support.badserver import (
    GOOD_IMAGE,
    OCI_INDEX,
    BadServer,
    Image,
    Reply,
    Request,
    Scenario,
    build_image,
    manifest_reply,
    redirect,
    registry_error,
    serve_documents,
    sha256_digest,
)
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

REPO_ROOT = Path(__file__).resolve().parent.parent
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@dataclass(frozen=True)
class Run:
    code: int
    stdout: bytes
    stderr: str


def cli(*args: str, env: Mapping[str, str] | None = None) -> Run:
    """``python -m imginspect ARGS``: no proxy, no docker config, no cache, no settings."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in _PROXY_VARIABLES and not k.startswith("IMGINSPECT_")
    }
    full_env["DOCKER_CONFIG"] = str(REPO_ROOT / "tests" / "support" / "no-such-docker-config")
    full_env["IMGINSPECT_NO_CACHE"] = "1"
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "imginspect", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))


def assert_error(run: Run, code: int, *fragments: str) -> None:
    context = f"exit {run.code}\nstdout={run.stdout!r}\nstderr:\n{run.stderr}"
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


def _methods(server: BadServer, name: str, kind: str) -> list[tuple[str, str]]:
    server.wait_idle()
    return [(r.method, r.ref or "") for r in server.requests_for(name, kind)]


def _config_descriptor(image: Image) -> dict[str, Any]:
    descriptor: dict[str, Any] = json.loads(image.manifest)["config"]
    return descriptor


def _with_config(**changes: Any) -> Image:
    """GOOD_IMAGE's manifest with its config descriptor changed (same config, same layer)."""
    config = {**_config_descriptor(GOOD_IMAGE), **changes}
    image = build_image(manifest_overrides={"config": config})
    assert image.config == GOOD_IMAGE.config
    return image


def _platforms(run: Run) -> object:
    assert run.code == 0, run.stderr
    return json.loads(run.stdout)["Platforms"]


# -- embedded descriptor data ---------------------------------------------------------------------


def test_valid_embedded_config_data_saves_the_blob_request(server: BadServer) -> None:
    image = _with_config(data=base64.b64encode(GOOD_IMAGE.config).decode())
    server.add(Scenario("embedded", image=image))
    assert _platforms(cli("--json", server.ref("embedded"))) == [
        {"architecture": "amd64", "os": "linux"}
    ]
    assert _methods(server, "embedded", "blobs") == []


def test_invalid_base64_data_is_ignored_and_the_blob_fetched(server: BadServer) -> None:
    image = _with_config(data="not base64 at all!")
    server.add(Scenario("bad-base64", image=image))
    assert _platforms(cli("--json", server.ref("bad-base64"))) == [
        {"architecture": "amd64", "os": "linux"}
    ]
    assert _methods(server, "bad-base64", "blobs") == [("GET", GOOD_IMAGE.config_digest)]


def test_embedded_data_that_does_not_match_the_digest_is_a_digest_mismatch(
    server: BadServer,
) -> None:
    other = GOOD_IMAGE.config.replace(b"amd64", b"arm64")
    image = _with_config(data=base64.b64encode(other).decode())
    server.add(Scenario("data-lies", image=image))
    assert_error(cli("--json", server.ref("data-lies")), 1, "digest mismatch", "embedded")
    assert _methods(server, "data-lies", "blobs") == []


def test_embedded_data_of_another_size_than_the_descriptor_says(server: BadServer) -> None:
    image = _with_config(
        data=base64.b64encode(GOOD_IMAGE.config).decode(), size=len(GOOD_IMAGE.config) + 1
    )
    server.add(Scenario("data-size", image=image))
    assert_error(cli("--json", server.ref("data-size")), 1, "the manifest says")


# -- sizes and bounds -----------------------------------------------------------------------------


def test_config_shorter_than_its_descriptor_is_malformed(server: BadServer) -> None:
    """The blob hashes to its digest, but the manifest announced one byte more."""
    image = _with_config(size=len(GOOD_IMAGE.config) + 1)
    server.add(Scenario("config-short", image=image))
    assert_error(
        cli("--json", server.ref("config-short")),
        1,
        f"is {len(GOOD_IMAGE.config)} bytes, the manifest says {len(GOOD_IMAGE.config) + 1}",
    )
    assert _methods(server, "config-short", "blobs") == [("GET", GOOD_IMAGE.config_digest)]


def test_config_over_its_limit_is_refused_before_download(server: BadServer) -> None:
    image = _with_config(size=MAX_CONFIG_BYTES + 1)
    server.add(Scenario("config-huge", image=image))
    assert_error(cli("--json", server.ref("config-huge")), 1, "more than the", "bytes accepted")
    assert _methods(server, "config-huge", "blobs") == []


def test_config_at_its_limit_is_fetched(server: BadServer) -> None:
    """The bound is inclusive: a descriptor of exactly MAX_CONFIG_BYTES is asked for (and
    then found short, since the blob is small)."""
    image = _with_config(size=MAX_CONFIG_BYTES)
    server.add(Scenario("config-limit", image=image))
    assert_error(cli("--json", server.ref("config-limit")), 1, "the manifest says")
    assert _methods(server, "config-limit", "blobs") == [("GET", GOOD_IMAGE.config_digest)]


def _index_of(image: Image, size: int) -> bytes:
    entry = {
        "mediaType": image.media_type,
        "digest": image.digest,
        "size": size,
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    return json.dumps(document, indent=2).encode()


@pytest.mark.parametrize("option", ["--platform", "--image-config", "--sizes"])
def test_index_entry_size_differs_from_the_manifest(server: BadServer, option: str) -> None:
    wrong = len(GOOD_IMAGE.manifest) + 1
    documents = [
        (_index_of(GOOD_IMAGE, wrong), OCI_INDEX),
        (GOOD_IMAGE.manifest, GOOD_IMAGE.media_type),
    ]
    server.add(Scenario("entry-size", image=GOOD_IMAGE, manifest=serve_documents(documents)))
    if option == "--platform":
        args: tuple[str, ...] = ("--json", "--platform", "linux/amd64")
    elif option == "--sizes":
        args = ("--format", "extended-json", "--sizes")
    else:
        args = ("--image-config",)
    run = cli(*args, server.ref("entry-size"))
    assert_error(run, 1, f"says {wrong} bytes", f"the manifest is {len(GOOD_IMAGE.manifest)}")


def test_index_entry_of_the_right_size_is_selected(server: BadServer) -> None:
    """The counterpart: the same index with the true size selects the image."""
    size = len(GOOD_IMAGE.manifest)
    documents = [
        (_index_of(GOOD_IMAGE, size), OCI_INDEX),
        (GOOD_IMAGE.manifest, GOOD_IMAGE.media_type),
    ]
    server.add(Scenario("entry-ok", image=GOOD_IMAGE, manifest=serve_documents(documents)))
    run = cli("--digest", "--platform", "linux/amd64", server.ref("entry-ok"))
    assert run.code == 0, run.stderr
    assert run.stdout.decode().strip() == GOOD_IMAGE.digest


# -- Docker-Content-Digest ------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["sha256:xyz", "md5:" + "0" * 32, "sha256:" + "A" * 64, ""])
def test_invalid_digest_header_on_get_is_ignored(server: BadServer, header: str) -> None:
    reply = manifest_reply(GOOD_IMAGE.manifest, digest_header=header)
    server.add(Scenario("bad-header", image=GOOD_IMAGE, manifest=reply))
    run = cli("--json", server.ref("bad-header"))
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["Descriptor"]["digest"] == sha256_digest(GOOD_IMAGE.manifest)


def _head_then(head: Reply) -> Any:
    def respond(request: Request) -> Reply:
        if request.method == "HEAD":
            return head
        return manifest_reply(GOOD_IMAGE.manifest)

    return respond


@pytest.mark.parametrize(
    "head",
    [
        Reply(405, (("Content-Type", "text/plain"),)),
        manifest_reply(b"", digest_header=None),
        manifest_reply(b"", digest_header="sha256:not-a-digest"),
    ],
    ids=["405", "no-digest-header", "invalid-digest-header"],
)
def test_digest_falls_back_to_exactly_one_get(server: BadServer, head: Reply) -> None:
    server.add(Scenario("head-fallback", image=GOOD_IMAGE, manifest=_head_then(head)))
    run = cli("--digest", server.ref("head-fallback", "v1"))
    assert run.code == 0, run.stderr
    assert run.stdout.decode().strip() == GOOD_IMAGE.digest
    assert _methods(server, "head-fallback", "manifests") == [("HEAD", "v1"), ("GET", "v1")]


def test_digest_is_one_head_when_the_registry_answers_it(server: BadServer) -> None:
    server.add(Scenario("head-ok", image=GOOD_IMAGE))
    run = cli("--digest", server.ref("head-ok", "v1"))
    assert run.code == 0, run.stderr
    assert run.stdout.decode().strip() == GOOD_IMAGE.digest
    assert _methods(server, "head-ok", "manifests") == [("HEAD", "v1")]


def test_a_redirected_head_is_followed(server: BadServer) -> None:
    """A HEAD answered with a redirect (a mirror, a CDN) is followed: still no GET."""
    server.add(
        Scenario("head-moved", manifest=redirect("/v2/head-target/manifests/v1")),
        Scenario("head-target", image=GOOD_IMAGE),
    )
    run = cli("--digest", server.ref("head-moved", "v1"))
    assert run.code == 0, run.stderr
    assert run.stdout.decode().strip() == GOOD_IMAGE.digest
    assert _methods(server, "head-moved", "manifests") == [("HEAD", "v1")]
    assert _methods(server, "head-target", "manifests") == [("HEAD", "v1")]


def test_head_404_is_not_found_without_a_get(server: BadServer) -> None:
    """A HEAD 404 is the answer (exit 4): never a second, silent GET."""
    server.add(
        Scenario(
            "head-404",
            manifest=lambda request: registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
        )
    )
    assert_error(cli("--digest", server.ref("head-404", "nope")), 4, "not found")
    assert _methods(server, "head-404", "manifests") == [("HEAD", "nope")]


def test_head_with_a_mismatching_digest_is_an_error(server: BadServer) -> None:
    """By digest, a HEAD naming another digest is a mismatch (exit 1), not a fallback."""
    other = sha256_digest(b"something else")
    head = manifest_reply(b"", digest_header=other)
    server.add(Scenario("head-lies", image=GOOD_IMAGE, manifest=_head_then(head)))
    run = cli("--digest", server.ref_digest("head-lies", GOOD_IMAGE.digest))
    assert_error(run, 1, f"registry answered digest {other}")
    assert _methods(server, "head-lies", "manifests") == [("HEAD", GOOD_IMAGE.digest)]


def test_get_with_a_mismatching_digest_header_is_an_error(server: BadServer) -> None:
    other = sha256_digest(b"something else")
    reply = manifest_reply(GOOD_IMAGE.manifest, digest_header=other)
    server.add(Scenario("get-lies", image=GOOD_IMAGE, manifest=reply))
    assert_error(cli("--json", server.ref("get-lies")), 1, "digest")


# -- the real registry ----------------------------------------------------------------------------


def test_digest_of_a_missing_tag_is_one_head_on_the_real_registry(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    image = corpus_plain["oci-single"]
    mark = registry_plain.mark()
    run = cli("--digest", registry_plain.ref(image.repo, "no-such-tag"))
    assert_error(run, 4, "not found")
    manifests = [
        (entry.method, entry.path)
        for entry in registry_plain.requests_since(mark)
        if "/manifests/" in entry.path
    ]
    assert manifests == [("HEAD", f"/v2/{image.repo}/manifests/no-such-tag")]


def test_insecure_overrides_a_certs_d_that_cannot_verify(
    registry_tls: Registry, corpus_tls: dict[str, PushedImage], tmp_path: Path
) -> None:
    """A certs.d directory for the loopback host makes it verified; with a CA that did not
    sign its certificate that fails (exit 5); ``--insecure`` then reaches it anyway."""
    image = corpus_tls["oci-index"]
    ref = registry_tls.ref(image.repo, image.tag)
    certs = tmp_path / "certs.d"
    (certs / registry_tls.host).mkdir(parents=True)
    trustme.CA().cert_pem.write_to_path(str(certs / registry_tls.host / "ca.crt"))
    refused = cli("--certs-dir", str(certs), "--json", ref)
    assert_error(refused, 5)
    run = cli("--certs-dir", str(certs), "--insecure", "--json", ref)
    assert run.code == 0, run.stderr
    assert run.stdout == expected_json(image)


# -- the digest grammar (pure) --------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "length"), [("sha256", 64), ("sha384", 96), ("sha512", 128)])
def test_digest_length_is_exact_per_algorithm(algorithm: str, length: int) -> None:
    assert is_valid_digest(f"{algorithm}:{'a' * length}")
    assert not is_valid_digest(f"{algorithm}:{'a' * (length - 1)}")
    assert not is_valid_digest(f"{algorithm}:{'a' * (length + 1)}")


@pytest.mark.parametrize("value", [None, 256, b"sha256:" + b"a" * 64, ["sha256:" + "a" * 64]])
def test_a_digest_that_is_not_a_string_is_invalid(value: object) -> None:
    assert is_valid_digest(value) is False


@pytest.mark.parametrize(
    "text", ["", "sha256", "sha256:", ":" + "a" * 64, "sha256:" + "a" * 63 + " "]
)
def test_text_outside_the_digest_grammar_is_invalid(text: str) -> None:
    assert is_valid_digest(text) is False


def test_algorithm_of_is_the_part_before_the_first_colon() -> None:
    assert algorithm_of("sha256:" + "a" * 64) == "sha256"
    assert algorithm_of("sha512:abc:def") == "sha512"


def test_an_unregistered_algorithm_is_refused() -> None:
    with pytest.raises(MalformedDocumentError, match="unsupported digest algorithm 'md5'"):
        new_hasher("md5")
    with pytest.raises(MalformedDocumentError):
        verify_digest(b"x", "md5:" + "0" * 32, what="blob")


def test_verify_digest_refuses_other_bytes() -> None:
    digest = compute_digest(b"the bytes")
    verify_digest(b"the bytes", digest, what="blob")
    with pytest.raises(DigestMismatchError, match=f"expected {digest}, received content hashes"):
        verify_digest(b"the bytez", digest, what="blob")
    sha512 = compute_digest(b"the bytes", "sha512")
    assert is_valid_digest(sha512)
    verify_digest(b"the bytes", sha512, what="blob")


# -- the reference grammar's small guards (pure) --------------------------------------------------


def test_is_valid_tag() -> None:
    assert is_valid_tag("v1.2-rc_3")
    assert is_valid_tag("a" * 128)
    assert not is_valid_tag("a" * 129)
    assert not is_valid_tag("-v1")
    assert not is_valid_tag("")


@pytest.mark.parametrize(
    ("domain", "hub"),
    [("docker.io", True), ("Index.Docker.IO", True), ("ghcr.io", False), ("localhost", False)],
)
def test_is_docker_hub(domain: str, hub: bool) -> None:
    assert is_docker_hub(domain) is hub


@pytest.mark.parametrize(
    ("domain", "host"),
    [
        ("[::1]:5000", "::1"),
        ("[::1]", "::1"),
        ("[]:5000", ""),
        ("[::1", "[::1"),  # no closing bracket: left as it is
        ("example.com:443", "example.com"),
        ("::1", "::1"),
    ],
)
def test_host_without_port(domain: str, host: str) -> None:
    assert host_without_port(domain) == host


@pytest.mark.parametrize("text", ["example.com/:ABC", "example.com/app:Bad Tag"])
def test_uppercase_beyond_the_repository_is_not_a_case_error(text: str) -> None:
    """Only the repository part (before the first ':') is checked for case, as Docker does;
    an invalid reference with uppercase elsewhere gets the grammar's own diagnosis."""
    with pytest.raises(InvalidReferenceError) as raised:
        parse_reference(text)
    assert "must be lowercase" not in str(raised.value)


def test_short_digest_keeps_twelve_hex_digits() -> None:
    digest = compute_digest(b"x")
    assert short_digest(digest) == digest[: len("sha256:") + 12]
    assert short_digest(digest, 4) == digest[: len("sha256:") + 4]
