"""Proof that the real-registry test infrastructure in ``tests/support`` works."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import ssl
import subprocess
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.corpus import (
    ACCEPT_ALL_MANIFESTS,
    BIG_INDEX_SIZE,
    CORPUS_KEYS,
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    IN_TOTO,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    PushedImage,
    build_corpus,
    push_corpus,
    sha256_digest,
)
from tests.support.registry import (
    Registry,
    RegistryStartError,
    parse_access_log,
    parse_challenge,
    start_plain_registry,
    start_registry,
)
from tests.support.tokenserver import (
    TokenServer,
    b64url_decode,
    decode_jwt_unverified,
    libtrust_key_id,
)

ALL_KEYS = list(CORPUS_KEYS)


def _get_manifest(client: httpx.Client, repo: str, ref: str) -> httpx.Response:
    return client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT_ALL_MANIFESTS})


# -- the registries -----------------------------------------------------------------------------


def test_registry_variant_starts(any_registry: Registry) -> None:
    registry = any_registry
    assert registry.running
    assert registry.host == f"127.0.0.1:{registry.port}"
    assert registry.base_url == f"{registry.scheme}://{registry.host}"
    assert registry.storage_dir.is_dir()
    mark = registry.mark()
    with registry.client() as client:
        response = client.get("/v2/")
        again = client.get("/v2/")
    assert response.status_code == again.status_code == 200
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    # The access log sees the auth round trips too: the first request is challenged once,
    # the client then reuses its credentials (a token is cached per repository; "/v2/" has none
    # and is challenged every time).
    statuses = [(e.method, e.path, e.status) for e in registry.requests_since(mark)]
    expected = {
        None: [200, 200],
        "basic": [401, 200, 200],
        "token": [401, 200, 200],
    }[registry.auth]
    assert statuses == [("GET", "/v2/", s) for s in expected]


def test_plain_and_tls_registries(registry_plain: Registry, registry_tls: Registry) -> None:
    assert registry_plain.scheme == "http" and registry_plain.ca_path is None
    assert registry_plain.username is None and registry_plain.token_server is None
    assert registry_tls.scheme == "https" and registry_tls.ca_path is not None
    assert registry_tls.ca_path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    # The server certificate is trusted through the test CA only...
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{registry_tls.base_url}/v2/", verify=ssl.create_default_context())
    # ... and is valid for localhost as well.
    ctx = ssl.create_default_context(cafile=str(registry_tls.ca_path))
    assert httpx.get(f"https://localhost:{registry_tls.port}/v2/", verify=ctx).status_code == 200


def test_basic_registry_requires_credentials(registry_basic: Registry) -> None:
    assert registry_basic.scheme == "https" and registry_basic.ca_path is not None
    assert registry_basic.username and registry_basic.password
    verify = registry_basic.ssl_context()
    anonymous = httpx.get(f"{registry_basic.base_url}/v2/", verify=verify)
    assert anonymous.status_code == 401
    assert parse_challenge(anonymous.headers["WWW-Authenticate"])[0] == "basic"
    wrong = httpx.get(
        f"{registry_basic.base_url}/v2/", verify=verify, auth=(registry_basic.username, "nope")
    )
    assert wrong.status_code == 401
    right = httpx.get(
        f"{registry_basic.base_url}/v2/",
        verify=verify,
        auth=(registry_basic.username, registry_basic.password),
    )
    assert right.status_code == 200


def test_token_registry_challenge(registry_token: Registry) -> None:
    server = registry_token.token_server
    assert server is not None
    response = httpx.get(f"{registry_token.base_url}/v2/corpus/x/manifests/latest")
    assert response.status_code == 401
    scheme, params = parse_challenge(response.headers["WWW-Authenticate"])
    assert scheme == "bearer"
    assert params == {
        "realm": server.realm,
        "service": server.service,
        "scope": "repository:corpus/x:pull",
    }


def test_request_counting(registry_plain: Registry) -> None:
    mark = registry_plain.mark()
    with registry_plain.client() as client:
        client.get("/v2/")
        client.head("/v2/counting/test/manifests/latest", headers={"Accept": ACCEPT_ALL_MANIFESTS})
    seen = registry_plain.requests_since(mark)
    assert [(e.method, e.path, e.status) for e in seen] == [
        ("GET", "/v2/", 200),
        ("HEAD", "/v2/counting/test/manifests/latest", 404),
    ]
    assert registry_plain.requests_since(registry_plain.mark()) == []


def test_parse_access_log() -> None:
    line = (
        '127.0.0.1 - - [26/Nov/2026:17:32:58 +0000] "GET /v2/a/b/tags/list?n=2 HTTP/1.1" '
        '200 42 "" "imginspect/0.1"'
    )
    (entry,) = parse_access_log(f"time=x level=info msg=other\n{line}\n")
    assert (entry.method, entry.path, entry.query, entry.status, entry.size) == (
        "GET",
        "/v2/a/b/tags/list",
        "n=2",
        200,
        42,
    )
    assert entry.user_agent == "imginspect/0.1"
    assert entry.target == "/v2/a/b/tags/list?n=2"


def test_stop_ends_the_process(tmp_path: Path) -> None:
    registry = start_plain_registry(tmp_path / "reg")
    assert httpx.get(f"{registry.base_url}/v2/").status_code == 200
    registry.stop()
    assert not registry.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{registry.base_url}/v2/")
    registry.stop()  # idempotent


def test_start_failure_carries_the_log(tmp_path: Path) -> None:
    with pytest.raises(RegistryStartError) as info:
        start_registry(tmp_path / "bad", extra_config={"storage": {"nosuchdriver": {}}})
    message = str(info.value)
    assert "exited with" in message
    assert "--- stderr ---" in message
    assert "nosuchdriver" in message


# -- the corpus, offline --------------------------------------------------------------------------


def _walk_all(corpus: dict[str, PushedImage]) -> list[PushedImage]:
    return [image for top in corpus.values() for image in top.walk()]


def test_corpus_is_deterministic_and_digests_are_computed() -> None:
    first, second = build_corpus(), build_corpus(prefix="elsewhere", tags=("x",))
    assert list(first) == ALL_KEYS
    for key in ALL_KEYS:
        a, b = first[key], second[key]
        assert [i.raw for i in a.walk()] == [i.raw for i in b.walk()]
        assert b.repo.startswith("elsewhere/") and b.tag == "x"
    for image in _walk_all(first):
        assert image.digest == "sha256:" + hashlib.sha256(image.raw).hexdigest()
        assert image.size == len(image.raw)
        assert json.loads(image.raw) == image.document
        assert image.document.get("mediaType") == image.media_type
        for blob in image.blobs():
            assert blob.digest == sha256_digest(blob.data) and blob.size == len(blob.data)
        if image.config is not None:
            assert image.compressed_size == sum(b.size for b in image.blobs())
            assert image.document["config"]["digest"] == image.config.digest
            assert [layer["digest"] for layer in image.document["layers"]] == [
                layer.digest for layer in image.layers
            ]
        else:
            assert image.compressed_size is None and image.config_platform is None
            assert [d["digest"] for d in image.document["manifests"]] == [
                c.digest for c in image.children
            ]
    # Not every document is compact JSON.
    styles = {(b"\n" in i.raw, b'": ' in i.raw, i.raw.endswith(b"\n")) for i in _walk_all(first)}
    assert len(styles) >= 3
    assert first["deep"].repo == "corpus/a/b/c/d/e/deep-path/image"


def test_corpus_layers_are_real_gzip_tars() -> None:
    corpus = build_corpus()
    for image in _walk_all(corpus):
        if image.config is None or image.config.media_type not in (OCI_CONFIG, DOCKER_CONFIG):
            continue
        config = json.loads(image.config.data)
        if config["os"] == "unknown":
            continue
        diff_ids = []
        for layer in image.layers:
            tar = gzip.decompress(layer.data)
            with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
                assert len(archive.getnames()) == 1
            diff_ids.append(sha256_digest(tar))
        assert config["rootfs"]["diff_ids"] == diff_ids


def test_corpus_shapes() -> None:
    corpus = build_corpus()
    expected_types = {
        "oci-index": OCI_INDEX,
        "buildkit": OCI_INDEX,
        "windows": DOCKER_MANIFEST_LIST,
        "schema2": DOCKER_MANIFEST,
        "oci-single": OCI_MANIFEST,
        "artifact": OCI_MANIFEST,
        "noplatform": OCI_INDEX,
        "nested": OCI_INDEX,
        "big-index": OCI_INDEX,
        "deep": OCI_MANIFEST,
    }
    assert {k: v.media_type for k, v in corpus.items()} == expected_types

    oci = corpus["oci-index"]
    platforms = [d["platform"] for d in oci.document["manifests"]]
    assert [
        "/".join(filter(None, (p["os"], p["architecture"], p.get("variant")))) for p in platforms
    ] == [
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/ppc64le",
        "linux/s390x",
    ]
    assert platforms[0]["features"] == ["sse4"]
    assert oci.document["annotations"]
    for platform, child in zip(platforms, oci.children, strict=True):
        assert child.media_type == OCI_MANIFEST
        assert child.config_platform == {k: v for k, v in platform.items() if k != "features"}
        assert 1 <= len(child.layers) <= 2

    buildkit = corpus["buildkit"]
    descriptors = buildkit.document["manifests"]
    assert len(descriptors) == 4
    for image_desc, attestation_desc, attestation in zip(
        descriptors[:2], descriptors[2:], buildkit.children[2:], strict=True
    ):
        assert attestation_desc["platform"] == {"architecture": "unknown", "os": "unknown"}
        assert attestation_desc["annotations"] == {
            "vnd.docker.reference.digest": image_desc["digest"],
            "vnd.docker.reference.type": "attestation-manifest",
        }
        assert attestation.config is not None and attestation.config.media_type == OCI_CONFIG
        assert {layer.media_type for layer in attestation.layers} == {IN_TOTO}
        assert all(
            "in-toto.io/predicate-type" in layer["annotations"]
            for layer in attestation.document["layers"]
        )

    windows = corpus["windows"]
    win_platforms = [d["platform"] for d in windows.document["manifests"]]
    assert [p["os"] for p in win_platforms] == ["linux", "windows", "windows"]
    assert [p.get("os.version") for p in win_platforms] == [
        None,
        "10.0.17763.5576",
        "10.0.20348.2340",
    ]
    assert win_platforms[2]["os.features"] == ["win32k"]
    for platform, child in zip(win_platforms, windows.children, strict=True):
        assert child.media_type == DOCKER_MANIFEST
        assert child.config is not None and child.config.media_type == DOCKER_CONFIG
        assert child.config_platform == platform

    assert corpus["schema2"].config_platform == {
        "architecture": "arm",
        "os": "linux",
        "variant": "v7",
    }
    assert corpus["oci-single"].document["annotations"]

    artifact = corpus["artifact"]
    assert artifact.document["artifactType"] == "application/vnd.example.sbom.v1+json"
    assert artifact.config is not None
    assert artifact.config.media_type == OCI_EMPTY and artifact.config.data == b"{}"
    # The well-known digest of the empty descriptor, as a cross-check of the computation.
    assert artifact.config.digest == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert artifact.document["config"]["digest"] == artifact.config.digest
    assert len(artifact.layers) == 1 and artifact.document["annotations"]
    assert artifact.config_platform is None

    noplatform = corpus["noplatform"]
    assert len(noplatform.children) == 2
    assert all("platform" not in d for d in noplatform.document["manifests"])
    assert all(c.config_platform for c in noplatform.children)

    nested = corpus["nested"]
    assert [c.media_type for c in nested.children] == [OCI_MANIFEST, OCI_INDEX]
    inner = nested.children[1]
    assert [c.media_type for c in inner.children] == [OCI_MANIFEST, OCI_MANIFEST]
    assert all("platform" in d for d in inner.document["manifests"])

    big = corpus["big-index"]
    assert len(big.children) == BIG_INDEX_SIZE
    assert len({c.digest for c in big.children}) == BIG_INDEX_SIZE
    assert len({c.config.digest for c in big.children if c.config}) == BIG_INDEX_SIZE
    assert len({c.layers[0].digest for c in big.children}) == 1
    assert all("platform" in d for d in big.document["manifests"])


# -- the corpus in every registry ---------------------------------------------------------------


def test_corpus_served_byte_for_byte(any_corpus: tuple[Registry, dict[str, PushedImage]]) -> None:
    registry, corpus = any_corpus
    assert list(corpus) == ALL_KEYS
    with registry.client() as client:
        for top in corpus.values():
            for tag in top.tags:
                response = _get_manifest(client, top.repo, tag)
                assert response.status_code == 200, (top.key, tag, response.text)
                assert response.content == top.raw, top.key
                assert response.headers["Docker-Content-Digest"] == top.digest
                assert response.headers["Content-Type"] == top.media_type
            for image in top.walk():
                response = _get_manifest(client, image.repo, image.digest)
                assert response.status_code == 200, (image.key, response.text)
                assert response.content == image.raw, image.key
                assert response.headers["Content-Type"] == image.media_type


def test_corpus_blobs_served(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    with registry_plain.client() as client:
        for image in _walk_all(corpus_plain):
            for blob in image.blobs():
                response = client.get(f"/v2/{image.repo}/blobs/{blob.digest}")
                assert response.status_code == 200
                assert response.content == blob.data


def test_corpus_push_is_idempotent(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    again = push_corpus(registry_plain, keys=["oci-index", "schema2"])
    for key, image in again.items():
        assert image.digest == corpus_plain[key].digest


# -- skopeo cross-check ---------------------------------------------------------------------------


def _skopeo_raw(registry: Registry, ref: str, home: Path) -> bytes:
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is not installed (Debian package skopeo)"
    command = [skopeo, "inspect", "--raw", "--tls-verify=false"]
    if registry.username is not None:
        command += ["--creds", f"{registry.username}:{registry.password}"]
    command.append(f"docker://{registry.ref(*ref.split(':', 1))}")
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run(command, capture_output=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


@pytest.mark.parametrize("key", ALL_KEYS)
def test_skopeo_sees_the_pushed_bytes(
    key: str, registry_plain: Registry, corpus_plain: dict[str, PushedImage], tmp_path: Path
) -> None:
    image = corpus_plain[key]
    raw = _skopeo_raw(registry_plain, f"{image.repo}:{image.tag}", tmp_path)
    assert sha256_digest(raw) == image.digest


@pytest.mark.parametrize("variant", ["basic", "token"])
def test_skopeo_with_credentials(
    variant: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    registry: Registry = request.getfixturevalue(f"registry_{variant}")
    corpus: dict[str, PushedImage] = request.getfixturevalue(f"corpus_{variant}")
    image = corpus["oci-index"]
    raw = _skopeo_raw(registry, f"{image.repo}:{image.tag}", tmp_path)
    assert sha256_digest(raw) == image.digest


# -- token server ---------------------------------------------------------------------------------


def _token(
    server: TokenServer, *scopes: str, auth: tuple[str, str] | None = None
) -> httpx.Response:
    params = [("service", server.service)] + [("scope", s) for s in scopes]
    return httpx.get(f"{server.realm}?{urlencode(params)}", auth=auth)


def _access(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    access: list[dict[str, Any]] = decode_jwt_unverified(body["token"])[1]["access"]
    return access


def test_token_server_policy(token_server: TokenServer, registry_token: Registry) -> None:
    user = (registry_token.username or "", registry_token.password or "")
    assert token_server.is_private("private/app") and not token_server.is_private("corpus/app")

    anonymous = _token(
        token_server, "repository:corpus/app:pull,push", "repository:private/app:pull"
    )
    assert anonymous.status_code == 200
    assert _access(anonymous) == [
        {"type": "repository", "name": "corpus/app", "actions": ["pull"]},
        {"type": "repository", "name": "private/app", "actions": []},
    ]
    granted = _token(token_server, "repository:private/app:pull,push", auth=user)
    assert _access(granted) == [
        {"type": "repository", "name": "private/app", "actions": ["pull", "push"]}
    ]
    wrong = _token(token_server, "repository:corpus/app:pull", auth=(user[0], "wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert "token" not in wrong.json()


def test_token_jwt_is_signed_by_the_bundle_key(token_server: TokenServer) -> None:
    response = _token(token_server, "repository:corpus/app:pull")
    token = response.json()["token"]
    header, claims = decode_jwt_unverified(token)
    cert = x509.load_pem_x509_certificate(token_server.rootcertbundle.read_bytes())
    public_key = cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert header == {"typ": "JWT", "alg": "RS256", "kid": libtrust_key_id(public_key)}
    kid_groups = header["kid"].split(":")
    assert len(kid_groups) == 12 and all(len(g) == 4 for g in kid_groups)
    signing_input, _, signature = token.rpartition(".")
    public_key.verify(
        b64url_decode(signature), signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert claims["iss"] == token_server.issuer and claims["aud"] == token_server.service
    assert claims["exp"] - claims["iat"] == 300 and claims["sub"] == ""


def test_token_oauth2_password_and_refresh(
    token_server: TokenServer, registry_token: Registry
) -> None:
    mark = token_server.mark()
    form = {
        "grant_type": "password",
        "username": registry_token.username or "",
        "password": registry_token.password or "",
        "service": token_server.service,
        "scope": "repository:private/app:pull",
        "client_id": "imginspect-tests",
    }
    first = httpx.post(token_server.realm, data=form)
    assert first.status_code == 200
    assert _access(first) == [{"type": "repository", "name": "private/app", "actions": ["pull"]}]
    refresh_token = first.json()["refresh_token"]
    refreshed = httpx.post(
        token_server.realm,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "service": token_server.service,
            "scope": "repository:private/other:pull,push",
            "client_id": "imginspect-tests",
        },
    )
    assert refreshed.status_code == 200
    assert _access(refreshed) == [
        {"type": "repository", "name": "private/other", "actions": ["pull", "push"]}
    ]
    bad = httpx.post(
        token_server.realm, data={"grant_type": "refresh_token", "refresh_token": "forged"}
    )
    assert bad.status_code == 401
    bad_password = httpx.post(token_server.realm, data={**form, "password": "wrong"})
    assert bad_password.status_code == 401
    seen = token_server.requests_since(mark)
    assert [(r.method, r.status) for r in seen] == [
        ("POST", 200),
        ("POST", 200),
        ("POST", 401),
        ("POST", 401),
    ]
    assert seen[0].form["client_id"] == ["imginspect-tests"]
    assert all(r.authorization is None for r in seen)


def test_token_get_offline_and_account(token_server: TokenServer, registry_token: Registry) -> None:
    user = (registry_token.username or "", registry_token.password or "")
    mark = token_server.mark()
    response = httpx.get(
        token_server.realm,
        params={
            "service": token_server.service,
            "scope": "repository:a:pull",
            "account": user[0],
            "offline_token": "true",
        },
        auth=user,
    )
    assert response.status_code == 200 and response.json()["refresh_token"]
    (seen,) = token_server.requests_since(mark)
    assert seen.query["account"] == [user[0]]
    assert seen.subject == user[0]
    expected = "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    assert seen.authorization == expected
    assert token_server.authorization_headers[-1] == expected


def test_token_registry_private_repository(
    registry_token: Registry, token_server: TokenServer
) -> None:
    private = push_corpus(registry_token, prefix="private/corpus", keys=["oci-single"])
    image = private["oci-single"]
    assert image.repo == "private/corpus/oci-single"
    with registry_token.client(authenticated=False) as anonymous:
        denied = _get_manifest(anonymous, image.repo, image.tag)
    assert denied.status_code == 401
    mark = token_server.mark()
    registry_mark = registry_token.mark()
    with registry_token.client() as client:
        allowed = _get_manifest(client, image.repo, image.tag)
    assert allowed.status_code == 200 and allowed.content == image.raw
    # One challenge, one token, one retry.
    assert [(r.status, r.subject) for r in token_server.requests_since(mark)] == [
        (200, registry_token.username)
    ]
    assert [e.status for e in registry_token.requests_since(registry_mark)] == [401, 200]
