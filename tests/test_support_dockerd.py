"""Tests for ``tests/support/dockerd.py`` and the reference answers of Docker Engine 20.10.

A plain-HTTP ``docker-registry`` (CNCF distribution 2.8) is started by a small helper local to this
file, a corpus of manifests is pushed to it, and the private dockerd is asked
``GET /v1.41/distribution/{ref}/json`` for each. The expected bodies below are the exact bytes the
engine returned (digests and sizes are computed, never typed); they are the behaviour
``imginspect --compat docker`` has to reproduce. Run with ``-s`` to see them printed.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.dockerd import (
    Dockerd,
    api_path,
    child_subreaper,
    encode_registry_auth,
    go_path_clean,
    start_dockerd,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ARTIFACT_TYPE = "application/vnd.example.sbom.v1"

REPO = "corpus/dkd"

# required in CI, skipped with the reason elsewhere (tests/support/tools.py)
needs_engine = pytest.mark.needs_tool("dockerd", "docker-registry")


# ---------------------------------------------------------------------------------------------
# pure helpers (no daemon needed)


@pytest.mark.parametrize(
    ("ref", "target"),
    [
        (
            "127.0.0.1:5000/corpus/foo:tag",
            "/v1.41/distribution/127.0.0.1:5000/corpus/foo:tag/json",
        ),
        (
            "127.0.0.1:5000/corpus/foo@sha256:" + "a" * 64,
            "/v1.41/distribution/127.0.0.1:5000/corpus/foo@sha256:" + "a" * 64 + "/json",
        ),
        # What docker CLI 28.2 sent for these (`docker service create IMAGE` against a fake API).
        ("Foo/b ar?x#y%z", "/v1.41/distribution/Foo/b%20ar%3Fx%23y%25z/json"),
        (
            "a/./b/../c//d!*'()[]$&+,;=\u00e9~_-",
            "/v1.41/distribution/a/c/d%21%2A%27%28%29%5B%5D$&+,;=%C3%A9~_-/json",
        ),
        ("x/", "/v1.41/distribution/x/json"),
    ],
)
def test_api_path_matches_docker_cli(ref: str, target: str) -> None:
    assert api_path("/distribution/" + ref + "/json") == target


def test_api_path_version_and_clean() -> None:
    assert api_path("/distribution/a/json", "v1.30") == "/v1.30/distribution/a/json"
    assert go_path_clean("/a/../../b/./c/") == "/b/c"
    assert go_path_clean("a/../..") == ".."
    assert go_path_clean("") == "."


def test_encode_registry_auth() -> None:
    value = encode_registry_auth("user", "p?ss>")
    assert "+" not in value and "/" not in value
    assert json.loads(base64.urlsafe_b64decode(value)) == {"username": "user", "password": "p?ss>"}


# ---------------------------------------------------------------------------------------------
# a tiny local plain-HTTP registry


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Pushed:
    media_type: str
    digest: str
    size: int

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


class LocalRegistry:
    """``docker-registry serve`` on 127.0.0.1 (plain HTTP, free port, filesystem storage)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        config = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(directory / "data")}},
            "http": {"addr": "127.0.0.1:0", "secret": "dkd-test-secret"},
        }
        # YAML is a superset of JSON.
        (directory / "config.yml").write_text(json.dumps(config))
        self.log_path = directory / "registry.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["docker-registry", "serve", str(directory / "config.yml")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.port = self._wait_for_port()
            self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        except BaseException:
            self.stop()
            raise

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log_path.read_text())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("docker-registry did not start:\n" + self.log_path.read_text()[-3000:])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def push_blob(self, repo: str, data: bytes, media_type: str) -> Pushed:
        response = self.client.post(f"/v2/{repo}/blobs/uploads/")
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        digest = sha256(data)
        response = self.client.put(
            location + ("&" if "?" in location else "?") + "digest=" + digest,
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text
        return Pushed(media_type, digest, len(data))

    def push_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> Pushed:
        response = self.client.put(
            f"/v2/{repo}/manifests/{reference}", content=data, headers={"Content-Type": media_type}
        )
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == sha256(data)
        return Pushed(media_type, sha256(data), len(data))

    def stop(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass(frozen=True)
class Corpus:
    registry: LocalRegistry
    items: dict[str, Pushed]

    def ref(self, name: str, by: str = "tag") -> str:
        base = f"{self.registry.host}/{REPO}"
        return f"{base}:{name}" if by == "tag" else f"{base}@{self.items[name].digest}"


def _layer_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        data = b"hello from imginspect\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def push_corpus(registry: LocalRegistry) -> dict[str, Pushed]:
    """Push every object the reference answers are recorded for; returns them by tag."""
    tar = _layer_tar()
    layer = gzip.compress(tar, mtime=0)

    def config(arch: str, variant: str | None = None) -> bytes:
        obj: dict[str, object] = {"architecture": arch, "os": "linux"}
        if variant:
            obj["variant"] = variant
        obj["config"] = {}
        obj["rootfs"] = {"type": "layers", "diff_ids": [sha256(tar)]}
        return compact(obj)

    def image(cfg: Pushed, lyr: Pushed, media_type: str, **extra: object) -> bytes:
        return compact(
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                **extra,
                "config": cfg.descriptor(),
                "layers": [lyr.descriptor()],
            }
        )

    def index(media_type: str | None, children: list[dict[str, object]]) -> bytes:
        obj: dict[str, object] = {"schemaVersion": 2}
        if media_type is not None:
            obj["mediaType"] = media_type
        obj["manifests"] = children
        return compact(obj)

    amd64 = {"architecture": "amd64", "os": "linux"}
    arm64 = {"architecture": "arm64", "os": "linux", "variant": "v8"}
    push_blob, push_manifest = registry.push_blob, registry.push_manifest
    out: dict[str, Pushed] = {}

    oci_layer = push_blob(REPO, layer, OCI_LAYER)
    oci_cfg = push_blob(REPO, config("amd64"), OCI_CONFIG)
    oci_cfg_arm = push_blob(REPO, config("arm64", "v8"), OCI_CONFIG)
    out["oci-image"] = push_manifest(
        REPO, "oci-image", image(oci_cfg, oci_layer, OCI_MANIFEST), OCI_MANIFEST
    )
    arm_data = image(oci_cfg_arm, oci_layer, OCI_MANIFEST)
    oci_arm = push_manifest(REPO, sha256(arm_data), arm_data, OCI_MANIFEST)
    oci_image = out["oci-image"].descriptor()
    out["oci-index"] = push_manifest(
        REPO, "oci-index", index(OCI_INDEX, [{**oci_image, "platform": amd64}]), OCI_INDEX
    )
    out["oci-index-2"] = push_manifest(
        REPO,
        "oci-index-2",
        index(
            OCI_INDEX,
            [{**oci_image, "platform": amd64}, {**oci_arm.descriptor(), "platform": arm64}],
        ),
        OCI_INDEX,
    )
    out["oci-index-noplatform"] = push_manifest(
        REPO, "oci-index-noplatform", index(OCI_INDEX, [oci_image]), OCI_INDEX
    )
    # No top-level "mediaType" (allowed by the OCI spec); pushed with the index Content-Type.
    out["oci-index-nomediatype"] = push_manifest(
        REPO,
        "oci-index-nomediatype",
        index(None, [{**oci_image, "platform": amd64}]),
        OCI_INDEX,
    )

    d_layer = push_blob(REPO, layer, DOCKER_LAYER)
    d_cfg = push_blob(REPO, config("amd64"), DOCKER_CONFIG)
    d_cfg_arm = push_blob(REPO, config("arm64", "v8"), DOCKER_CONFIG)
    out["docker-image"] = push_manifest(
        REPO, "docker-image", image(d_cfg, d_layer, DOCKER_MANIFEST), DOCKER_MANIFEST
    )
    out["docker-image-arm64"] = push_manifest(
        REPO, "docker-image-arm64", image(d_cfg_arm, d_layer, DOCKER_MANIFEST), DOCKER_MANIFEST
    )
    out["docker-list"] = push_manifest(
        REPO,
        "docker-list",
        index(
            DOCKER_LIST,
            [
                {**out["docker-image"].descriptor(), "platform": amd64},
                {**out["docker-image-arm64"].descriptor(), "platform": arm64},
            ],
        ),
        DOCKER_LIST,
    )

    empty = push_blob(REPO, b"{}", OCI_EMPTY)
    sbom = push_blob(REPO, b'{"sbom":true}\n', ARTIFACT_TYPE + "+json")
    out["oci-artifact"] = push_manifest(
        REPO,
        "oci-artifact",
        image(empty, sbom, OCI_MANIFEST, artifactType=ARTIFACT_TYPE),
        OCI_MANIFEST,
    )
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    registry = LocalRegistry(tmp_path_factory.mktemp("registry"))
    try:
        yield Corpus(registry, push_corpus(registry))
    finally:
        registry.stop()


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    daemon = start_dockerd()
    try:
        yield daemon
    finally:
        daemon.stop()


# ---------------------------------------------------------------------------------------------
# reference answers


AMD64 = '{"architecture":"amd64","os":"linux"}'
ARM64_V8 = '{"architecture":"arm64","os":"linux","variant":"v8"}'

#: tag -> the Platforms part of the answer (raw JSON text).
PLATFORMS = {
    "oci-index": f"[{AMD64}]",
    "oci-index-2": f"[{AMD64},{ARM64_V8}]",
    # An index child without "platform" gives a zero platform, not a missing one.
    "oci-index-noplatform": '[{"architecture":"","os":""}]',
    "oci-index-nomediatype": f"[{AMD64}]",
    # Engine 20.10 does not look into OCI image manifests (only Docker schema2 configs).
    "oci-image": "null",
    "oci-artifact": "null",
    # Docker schema2: the platform comes from the config blob.
    "docker-image": f"[{AMD64}]",
    "docker-image-arm64": f"[{ARM64_V8}]",
    "docker-list": f"[{AMD64},{ARM64_V8}]",
}

#: Media type dockerd reports where it differs from the pushed one.
REPORTED_MEDIA_TYPE = {
    # Registry 2.8 serves it with Content-Type = the OCI index type; dockerd reports that.
    "oci-index-nomediatype": OCI_INDEX,
}


def expected_body(name: str, item: Pushed) -> bytes:
    media_type = REPORTED_MEDIA_TYPE.get(name, item.media_type)
    return (
        f'{{"Descriptor":{{"mediaType":"{media_type}","digest":"{item.digest}",'
        f'"size":{item.size}}},"Platforms":{PLATFORMS[name]}}}\n'
    ).encode()


@needs_engine
@pytest.mark.dockerd
@pytest.mark.parametrize("by", ["tag", "digest"])
@pytest.mark.parametrize("name", ["oci-image", "oci-index"])
def test_oci_image_and_index_digest(dockerd: Dockerd, corpus: Corpus, name: str, by: str) -> None:
    status, body = dockerd.distribution_inspect(corpus.ref(name, by))
    assert status == 200, body
    answer = json.loads(body)
    assert answer["Descriptor"]["digest"] == corpus.items[name].digest
    assert answer["Descriptor"]["size"] == corpus.items[name].size


@needs_engine
@pytest.mark.dockerd
@pytest.mark.parametrize("by", ["tag", "digest"])
@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_reference_bytes(dockerd: Dockerd, corpus: Corpus, name: str, by: str) -> None:
    ref = corpus.ref(name, by)
    status, headers, body = dockerd.distribution_inspect_response(ref)
    print(f"\n{ref}\n{status} {body!r}")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body == expected_body(name, corpus.items[name])


@needs_engine
@pytest.mark.dockerd
def test_oci_index_without_media_type_is_stored_verbatim(corpus: Corpus) -> None:
    """Registry 2.8 keeps the bytes and answers with the OCI index Content-Type."""
    response = corpus.registry.client.get(
        f"/v2/{REPO}/manifests/oci-index-nomediatype",
        headers={"Accept": ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert "mediaType" not in json.loads(response.content)
    assert sha256(response.content) == corpus.items["oci-index-nomediatype"].digest


NOT_FOUND = b'{"message":"manifest unknown: manifest unknown"}\n'


@needs_engine
@pytest.mark.dockerd
@pytest.mark.parametrize(
    "suffix",
    [
        ":no-such-tag",  # unknown tag in an existing repository
        "@sha256:" + "0" * 64,  # unknown digest
        "",  # no tag: "latest" is looked up
        "-nothere:latest",  # repository that does not exist
    ],
)
def test_not_found(dockerd: Dockerd, corpus: Corpus, suffix: str) -> None:
    status, headers, body = dockerd.distribution_inspect_response(
        f"{corpus.registry.host}/{REPO}{suffix}"
    )
    print(f"\n{suffix!r}: {status} {body!r}")
    assert (status, headers["Content-Type"], body) == (404, "application/json", NOT_FOUND)


@needs_engine
@pytest.mark.dockerd
def test_invalid_reference(dockerd: Dockerd, corpus: Corpus) -> None:
    status, body = dockerd.distribution_inspect(f"{corpus.registry.host}/Corpus/X:t")
    assert (status, body) == (
        400,
        b'{"message":"invalid reference format: repository name must be lowercase"}\n',
    )


@needs_engine
@pytest.mark.dockerd
def test_credentials_ignored_by_anonymous_registry(dockerd: Dockerd, corpus: Corpus) -> None:
    status, body = dockerd.distribution_inspect(
        corpus.ref("oci-index"), username="someone", password="secret"
    )
    assert (status, body) == (200, expected_body("oci-index", corpus.items["oci-index"]))


# ---------------------------------------------------------------------------------------------
# how the engine talks to an insecure (127.0.0.0/8) registry


class _Sniffer:
    """A TCP listener recording the first bytes of every connection and answering plain HTTP:
    ``GET /v2/`` gets 200 ``{}``, everything else 404 with ``error_body``."""

    def __init__(self, error_body: bytes) -> None:
        self.error_body = error_body
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.server.settimeout(0.05)
        self.first_bytes: list[bytes] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    data = conn.recv(65536)
                except OSError:
                    continue
                self.first_bytes.append(data)
                if data.startswith(b"GET /v2/ "):
                    status, body = b"200 OK", b"{}"
                else:
                    status, body = b"404 Not Found", self.error_body
                conn.sendall(
                    b"HTTP/1.1 " + status + b"\r\n"
                    b"Content-Type: application/json; charset=utf-8\r\n"
                    b"Docker-Distribution-Api-Version: registry/2.0\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                    b"Connection: close\r\n\r\n" + (b"" if data.startswith(b"HEAD ") else body)
                )

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.server.close()


@needs_engine
@pytest.mark.dockerd
def test_loopback_registry_https_first_then_http(dockerd: Dockerd) -> None:
    sniffer = _Sniffer(REGISTRY_ERRORS[0][0])
    try:
        dockerd.distribution_inspect(f"127.0.0.1:{sniffer.port}/a/b:c")
    finally:
        sniffer.close()
    requests = [data.split(b"\r\n", 1)[0] for data in sniffer.first_bytes]
    assert sniffer.first_bytes[0][:3] == b"\x16\x03\x01"  # a TLS ClientHello comes first
    assert requests[1:] == [
        b"GET /v2/ HTTP/1.1",  # then plain HTTP
        b"HEAD /v2/a/b/manifests/c HTTP/1.1",
        b"GET /v2/a/b/manifests/c HTTP/1.1",  # after a 404 on HEAD, the tag is tried with GET
    ]


#: Registry error body on GET manifests/<tag> -> what dockerd answers.
REGISTRY_ERRORS: list[tuple[bytes, tuple[int, bytes]]] = [
    # What registry 2.8 sends (it has a "detail"): "<code text>: <message>".
    (
        b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown",'
        b'"detail":{"Tag":"c"}}]}\n',
        (404, b'{"message":"manifest unknown: manifest unknown"}\n'),
    ),
    # No detail and the code's own message: only the code text.
    (
        b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}',
        (404, b'{"message":"manifest unknown"}\n'),
    ),
    (
        b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no such thing"}]}',
        (404, b'{"message":"manifest unknown: no such thing"}\n'),
    ),
    (
        b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}',
        (404, b'{"message":"name unknown"}\n'),
    ),
]


@needs_engine
@pytest.mark.dockerd
@pytest.mark.parametrize(("error_body", "answer"), REGISTRY_ERRORS)
def test_registry_error_translation(
    dockerd: Dockerd, error_body: bytes, answer: tuple[int, bytes]
) -> None:
    sniffer = _Sniffer(error_body)
    try:
        result = dockerd.distribution_inspect(f"127.0.0.1:{sniffer.port}/a/b:c")
    finally:
        sniffer.close()
    print(f"\n{error_body!r} -> {result!r}")
    assert result == answer


# ---------------------------------------------------------------------------------------------
# life cycle of the helper


def _cmdlines_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text.encode() in cmdline and state != "Z":
            pids.append(int(entry))
    return pids


@needs_engine
@pytest.mark.dockerd
def test_second_instance_coexists_and_stop_cleans_up(dockerd: Dockerd) -> None:
    other = start_dockerd()
    try:
        assert other.socket_path != dockerd.socket_path
        assert len(other.socket_path) < 100
        assert other.ping() and dockerd.ping()
        # dockerd plus its own containerd, both with paths under the private directory.
        assert len(_cmdlines_mentioning(other.directory)) == 2
    finally:
        other.stop()
    assert _cmdlines_mentioning(other.directory) == []
    assert not os.path.exists(other.directory)
    assert dockerd.ping()


@needs_engine
@pytest.mark.dockerd
def test_stop_after_sigkill_cleans_up() -> None:
    daemon = start_dockerd()
    containerd = [
        pid for pid in _cmdlines_mentioning(daemon.directory) if pid != daemon.process.pid
    ]
    assert len(containerd) == 1
    with child_subreaper():  # so that the orphaned containerd is ours to reap
        os.kill(daemon.process.pid, signal.SIGKILL)
        daemon.stop()
        daemon.stop()  # idempotent
    assert not Path(f"/proc/{containerd[0]}").exists()  # dead and reaped, not even a zombie
    assert _cmdlines_mentioning(daemon.directory) == []
    assert daemon.directory not in Path("/proc/self/mountinfo").read_text()
    assert not os.path.exists(daemon.directory)
