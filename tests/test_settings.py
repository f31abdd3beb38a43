"""Registry settings: certs.d (extra CAs and client certificates, per host), daemon.json
(insecure-registries, registry-mirrors) and proxies from the environment.

TLS is checked for real: the htpasswd registry (TLS, trustme CA) verified through a certs.d
directory, and a small TLS server that requires a client certificate. Mirrors are real
registries. The proxy test runs the CLI through a real CONNECT proxy."""

from __future__ import annotations

import json
import os
import select
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from imginspect.auth import Credential
from imginspect.errors import (
    CertsDirError,
    ConfigError,
    ExitCode,
    ImginspectError,
    NetworkError,
    NotFoundError,
)
from imginspect.mirrors import MirrorChain
from imginspect.registry import RegistryClient
from imginspect.settings import (
    Mirror,
    RegistrySettings,
    default_certs_dirs,
    validate_mirror,
)
from imginspect.transport import HttpTransport
from tests.expected import expected_json
from tests.support.corpus import PushedImage, build_corpus, push_corpus
from tests.support.registry import Registry

REPO_ROOT = Path(__file__).resolve().parent.parent


def _settings(tmp_path: Path, **kwargs: Any) -> RegistrySettings:
    """Settings isolated from the machine: no default certs.d, a daemon.json under tmp."""
    kwargs.setdefault("certs_dirs", [])
    environ = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    kwargs.setdefault("environ", environ)
    if "daemon_config" not in kwargs:
        # default locations: $XDG_CONFIG_HOME/docker/daemon.json first (absent here), then
        # /etc/docker/daemon.json -- point XDG at an empty daemon.json so /etc is not read.
        daemon = tmp_path / "xdg" / "docker" / "daemon.json"
        if not daemon.exists():
            daemon.parent.mkdir(parents=True, exist_ok=True)
            daemon.write_text("{}")
    return RegistrySettings(**kwargs)


def _host_dir(root: Path, host: str) -> Path:
    directory = root / host
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _write_ca(directory: Path, ca: trustme.CA, name: str = "ca.crt") -> None:
    ca.cert_pem.write_to_path(str(directory / name))


@pytest.fixture(scope="module")
def private_token_image(registry_token: Registry) -> PushedImage:
    """An image the token server refuses to anonymous clients (under ``private/``)."""
    return push_corpus(registry_token, prefix="private/settings", keys=["oci-single"])["oci-single"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------- certs.d lookup


def test_default_certs_dirs() -> None:
    roots = default_certs_dirs({"HOME": "/home/u"})
    assert roots == (
        Path("/etc/docker/certs.d"),
        Path("/home/u/.config/docker/certs.d"),
        Path("/etc/containers/certs.d"),
    )
    assert default_certs_dirs({"HOME": "/h", "XDG_CONFIG_HOME": "/x"})[1] == Path(
        "/x/docker/certs.d"
    )


def test_certs_dir_search_order(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _host_dir(second, "registry.example.com:5000")
    settings = _settings(tmp_path, certs_dirs=[first, second])
    assert (
        settings.certs_dir_for("registry.example.com:5000") == second / "registry.example.com:5000"
    )
    _host_dir(first, "registry.example.com:5000")
    assert (
        settings.certs_dir_for("registry.example.com:5000") == first / "registry.example.com:5000"
    )
    assert settings.certs_dir_for("registry.example.com") is None  # the port is part of the name


@pytest.mark.parametrize("host", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_certs_d_not_used_for_docker_hub(tmp_path: Path, host: str) -> None:
    _write_ca(_host_dir(tmp_path / "certs.d", host), trustme.CA())
    settings = _settings(tmp_path, certs_dirs=[tmp_path / "certs.d"])
    assert settings.certs_dir_for(host) is None and settings.ssl_context_for(host) is None


@pytest.mark.parametrize("host", ["..", ".", "", "a/b"])
def test_unsafe_host_names_never_reach_the_file_system(tmp_path: Path, host: str) -> None:
    (tmp_path / "certs.d" / "inner").mkdir(parents=True)
    settings = _settings(tmp_path, certs_dirs=[tmp_path / "certs.d" / "inner"])
    assert settings.certs_dir_for(host) is None


def test_ssl_context_built_once_per_host(tmp_path: Path) -> None:
    roots = tmp_path / "certs.d"
    _write_ca(_host_dir(roots, "127.0.0.1:1234"), trustme.CA())
    logged: list[str] = []
    settings = _settings(tmp_path, certs_dirs=[roots], log=logged.append)
    assert settings.ssl_context_for("127.0.0.1:9999") is None
    context = settings.ssl_context_for("127.0.0.1:1234")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert settings.ssl_context_for("127.0.0.1:1234") is context
    assert len(logged) == 1 and "127.0.0.1:1234" in logged[0]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["client.cert"], "missing key client.key for client certificate client.cert"),
        (["client.key"], "missing client certificate client.cert for key client.key"),
        (["ca.cert"], "CA certificates must use the extension .crt"),
    ],
)
def test_lone_cert_or_key_is_a_config_error(tmp_path: Path, files: list[str], message: str) -> None:
    directory = _host_dir(tmp_path / "certs.d", "registry.example.com")
    for name in files:
        (directory / name).write_text("-----BEGIN NOTHING-----\n")
    settings = _settings(tmp_path, certs_dirs=[tmp_path / "certs.d"])
    for _ in range(2):  # every time, not only the first
        with pytest.raises(CertsDirError) as caught:
            settings.ssl_context_for("registry.example.com")
        error = caught.value
        assert error.exit_code == ExitCode.USAGE
        assert int(error.exit_code) == 2
        assert message in f"{error.message} {error.hint}"
        assert str(directory) in error.message


def test_unreadable_ca_is_a_config_error(tmp_path: Path) -> None:
    directory = _host_dir(tmp_path / "certs.d", "registry.example.com")
    (directory / "ca.crt").write_text("not a certificate")
    settings = _settings(tmp_path, certs_dirs=[tmp_path / "certs.d"])
    with pytest.raises(CertsDirError, match="cannot load CA certificate"):
        settings.ssl_context_for("registry.example.com")


def test_encrypted_client_key_fails_without_prompting(tmp_path: Path) -> None:
    directory = _host_dir(tmp_path / "certs.d", "registry.example.com")
    leaf = trustme.CA().issue_cert("client")
    leaf.cert_chain_pems[0].write_to_path(str(directory / "client.cert"))
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    (directory / "client.key").write_bytes(encrypted)
    settings = _settings(tmp_path, certs_dirs=[tmp_path / "certs.d"])
    with pytest.raises(CertsDirError, match="cannot load client certificate"):
        settings.ssl_context_for("registry.example.com")


def test_several_client_certificates_warn(tmp_path: Path) -> None:
    directory = _host_dir(tmp_path / "certs.d", "registry.example.com")
    ca = trustme.CA()
    for name in ("a", "b"):
        leaf = ca.issue_cert(f"client-{name}")
        leaf.cert_chain_pems[0].write_to_path(str(directory / f"{name}.cert"))
        leaf.private_key_pem.write_to_path(str(directory / f"{name}.key"))
    warnings: list[str] = []
    settings = _settings(tmp_path, certs_dirs=[tmp_path / "certs.d"], warn=warnings.append)
    assert settings.ssl_context_for("registry.example.com") is not None
    assert warnings == [f"{directory}: several client certificates; using a.cert, ignoring b.cert"]


# ---------------------------------------------------------------------- certs.d for real


def _basic_client(
    registry: Registry, settings: RegistrySettings, transport: HttpTransport
) -> RegistryClient:
    assert registry.username and registry.password
    credential = Credential(registry.username, registry.password, source="test")
    return RegistryClient(
        registry.host, transport, credentials=lambda repository: credential, insecure=False
    )


def test_certs_d_ca_verifies_the_tls_registry(
    tmp_path: Path, registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    assert registry_basic.ca_path is not None
    roots = tmp_path / "certs.d"
    directory = _host_dir(roots, registry_basic.host)
    (directory / "ca.crt").write_bytes(registry_basic.ca_path.read_bytes())
    settings = _settings(tmp_path, certs_dirs=[roots])
    assert not settings.is_insecure(registry_basic.host)  # loopback, but certs.d says how
    image = corpus_basic["oci-index"]
    with HttpTransport(ssl_context_for=settings.ssl_context_for) as transport:
        fetched = _basic_client(registry_basic, settings, transport).get_manifest(
            image.repo, image.tag
        )
    assert fetched.digest == image.digest and fetched.raw == image.raw


def test_tls_registry_unverifiable_without_or_with_a_wrong_ca(
    tmp_path: Path, registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    image = corpus_basic["oci-single"]
    wrong_roots = tmp_path / "wrong"
    _write_ca(_host_dir(wrong_roots, registry_basic.host), trustme.CA())
    for roots in ([], [wrong_roots]):
        settings = _settings(tmp_path, certs_dirs=roots)
        with HttpTransport(ssl_context_for=settings.ssl_context_for) as transport:
            client = _basic_client(registry_basic, settings, transport)
            with pytest.raises(NetworkError) as caught:
                client.get_manifest(image.repo, image.tag)
        assert caught.value.exit_code == ExitCode.NETWORK
        assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message


def test_transport_asks_for_contexts_only_for_verified_https(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    asked: list[str] = []

    def context_for(host: str) -> ssl.SSLContext | None:
        asked.append(host)
        return None

    image = corpus_plain["oci-single"]
    with HttpTransport(ssl_context_for=context_for) as transport:
        client = RegistryClient(registry_plain.host, transport, insecure=True)
        assert client.get_manifest(image.repo, image.tag).digest == image.digest
    assert asked == []  # unverified https, then plain http: no verifying context needed


class _ManifestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    document: PushedImage

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        image = self.document
        if self.path == f"/v2/{image.repo}/manifests/{image.tag}":
            body = image.raw
            self.send_response(200)
            self.send_header("Content-Type", image.media_type)
            self.send_header("Docker-Content-Digest", image.digest)
        else:
            body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def mtls_server(tmp_path: Path) -> Iterator[tuple[str, trustme.CA, trustme.CA, PushedImage]]:
    """A TLS registry stand-in that requires a client certificate from ``client_ca``."""
    server_ca, client_ca = trustme.CA(), trustme.CA()
    image = build_corpus(keys=["oci-index"])["oci-index"]
    handler = type("Handler", (_ManifestHandler,), {"document": image})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ca.issue_cert("127.0.0.1").configure_cert(context)
    client_ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", server_ca, client_ca, image
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_certs_d_client_certificate(
    tmp_path: Path, mtls_server: tuple[str, trustme.CA, trustme.CA, PushedImage]
) -> None:
    host, server_ca, client_ca, image = mtls_server
    roots = tmp_path / "certs.d"
    directory = _host_dir(roots, host)
    _write_ca(directory, server_ca)
    settings = _settings(tmp_path, certs_dirs=[roots])
    # CA only: the server refuses the handshake.
    with (
        HttpTransport(ssl_context_for=settings.ssl_context_for) as transport,
        pytest.raises(NetworkError),
    ):
        RegistryClient(host, transport).get_manifest(image.repo, image.tag)
    # With client.cert + client.key, it answers.
    leaf = client_ca.issue_cert("imginspect-client")
    (directory / "client.cert").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(directory / "client.key"))
    settings = _settings(tmp_path, certs_dirs=[roots])
    with HttpTransport(ssl_context_for=settings.ssl_context_for) as transport:
        fetched = RegistryClient(host, transport).get_manifest(image.repo, image.tag)
    assert fetched.digest == image.digest


# ---------------------------------------------------------------------- daemon.json


def _daemon(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "daemon.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_insecure_registries(tmp_path: Path) -> None:
    daemon = _daemon(
        tmp_path,
        {
            "insecure-registries": [
                "myhost:5000",
                "http://plainprefix.example.com:5000",
                "10.0.0.0/8",
                "fd00::/8",
                "bare.example.com",
            ]
        },
    )
    settings = _settings(tmp_path, daemon_config=daemon)
    table = {
        "myhost:5000": True,
        "MYHOST:5000": True,
        "myhost:5001": False,
        "myhost": False,
        "plainprefix.example.com:5000": True,
        "10.1.2.3:5000": True,
        "10.1.2.3": True,
        "11.0.0.1:5000": False,
        "[fd00::1]:5000": True,
        "bare.example.com": True,
        "bare.example.com:443": False,
        "registry.example.com": False,
        "127.0.0.1:5000": True,  # loopback, as in the daemon
        "localhost:5000": True,
        "[::1]:5000": True,
    }
    assert {host: settings.is_insecure(host) for host in table} == table
    assert settings.daemon_config_path == daemon


def test_loopback_with_certs_d_is_verified_unless_listed(tmp_path: Path) -> None:
    roots = tmp_path / "certs.d"
    _host_dir(roots, "localhost:5000")
    plain = _settings(tmp_path, certs_dirs=[roots], daemon_config=_daemon(tmp_path, {}))
    assert not plain.is_insecure("localhost:5000")
    assert plain.is_insecure("localhost:5001")
    # A CIDR entry matches names through resolution, as in the daemon.
    listed = _settings(
        tmp_path,
        certs_dirs=[roots],
        daemon_config=_daemon(tmp_path, {"insecure-registries": ["127.0.0.0/8"]}),
    )
    assert listed.is_insecure("localhost:5000")
    assert "CIDR" in (listed.insecure_reason("localhost:5000") or "")


def test_registry_mirrors(tmp_path: Path) -> None:
    daemon = _daemon(
        tmp_path,
        {"registry-mirrors": ["https://mirror.example.com", "http://10.0.0.5:5000/prefix/"]},
    )
    settings = _settings(tmp_path, daemon_config=daemon)
    assert settings.mirrors == (
        Mirror("https://mirror.example.com/"),
        Mirror("http://10.0.0.5:5000/prefix/"),
    )
    mirror = settings.mirrors[1]
    assert (mirror.scheme, mirror.host, mirror.base_url) == (
        "http",
        "10.0.0.5:5000",
        "http://10.0.0.5:5000/prefix",
    )
    for hub in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert settings.mirrors_for(hub) == settings.mirrors
    assert settings.mirrors_for("ghcr.io") == ()
    lines = settings.explain_host("docker.io")
    assert any("mirror.example.com" in line for line in lines)


@pytest.mark.parametrize(
    "entry",
    ["mirror.example.com", "ftp://mirror.example.com", "https://m.example.com/?q=1", "https://"],
)
def test_invalid_mirrors(tmp_path: Path, entry: str) -> None:
    with pytest.raises(ValueError):
        validate_mirror(entry)
    daemon = _daemon(tmp_path, {"registry-mirrors": [entry]})
    with pytest.raises(ConfigError, match="invalid registry mirror"):
        _ = _settings(tmp_path, daemon_config=daemon).mirrors


def test_mirror_with_credentials_in_url_is_refused_without_echoing(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as caught:
        validate_mirror("https://user:hunter2@mirror.example.com")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{nope", "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"insecure-registries": "10.0.0.0/8"}', "must be a list"),
        ('{"insecure-registries": ["ftp://x"]}', "must not contain '://'"),
        ('{"insecure-registries": ["10.0.0.0/99"]}', "neither host[:port] nor a CIDR"),
        ('{"registry-mirrors": "https://m"}', "must be a list"),
    ],
)
def test_explicit_daemon_config_errors(tmp_path: Path, document: str, message: str) -> None:
    settings = _settings(tmp_path, daemon_config=_daemon(tmp_path, document))
    for _ in range(2):
        with pytest.raises(ConfigError) as caught:
            settings.is_insecure("registry.example.com")
        assert message in caught.value.message and caught.value.exit_code == 2


def test_explicit_daemon_config_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        _ = _settings(tmp_path, daemon_config=tmp_path / "nope.json").mirrors


def test_default_daemon_config_broken_only_warns(tmp_path: Path) -> None:
    daemon = tmp_path / "xdg" / "docker" / "daemon.json"
    daemon.parent.mkdir(parents=True)
    daemon.write_text("{broken")
    warnings: list[str] = []
    settings = _settings(tmp_path, warn=warnings.append)
    assert settings.mirrors == () and not settings.is_insecure("registry.example.com")
    assert len(warnings) == 1 and str(daemon) in warnings[0] and "ignoring it" in warnings[0]


def test_default_daemon_config_read(tmp_path: Path) -> None:
    daemon = tmp_path / "xdg" / "docker" / "daemon.json"
    daemon.parent.mkdir(parents=True)
    daemon.write_text(json.dumps({"insecure-registries": ["myhost:5000"]}))
    settings = _settings(tmp_path)
    assert settings.is_insecure("myhost:5000") and settings.daemon_config_path == daemon


def test_explain_host(tmp_path: Path) -> None:
    roots = tmp_path / "certs.d"
    directory = _host_dir(roots, "registry.example.com")
    _write_ca(directory, trustme.CA())
    settings = _settings(tmp_path, certs_dirs=[roots])
    assert settings.explain_host("registry.example.com") == (
        f"tls: verified against the operating system's trust store, with {directory} (CA ca.crt)",
    )
    assert settings.explain_host("other.example.com") == (
        "tls: verified against the operating system's trust store",
    )
    assert settings.explain_host("127.0.0.1:5000")[0].startswith("tls: insecure")


# ---------------------------------------------------------------------- mirrors for real


def _mirror(transport: HttpTransport, endpoint: str, *, insecure: bool = True) -> RegistryClient:
    return RegistryClient("docker.io", transport, endpoint=endpoint, insecure=insecure)


def _chain(
    host: str,
    transport: HttpTransport,
    *,
    mirrors: list[RegistryClient],
    insecure: bool = False,
    credentials: Any = None,
    log: Any = None,
) -> MirrorChain:
    """Docker Hub's composition: the mirrors in order, then the registry itself."""
    upstream = RegistryClient(host, transport, insecure=insecure, credentials=credentials)
    return MirrorChain(upstream, [(m.base_url("https"), m) for m in mirrors], log=log)


def _manifest_requests(registry: Registry, mark: int) -> list[str]:
    return [e.path for e in registry.requests_since(mark) if "/manifests/" in e.path]


def test_mirror_serves_and_upstream_is_not_contacted(
    registry_plain: Registry,
    corpus_plain: dict[str, PushedImage],
    registry_tls: Registry,
    corpus_tls: dict[str, PushedImage],
) -> None:
    image = corpus_plain["oci-single"]
    assert image.config is not None
    upstream_mark, mirror_mark = registry_plain.mark(), registry_tls.mark()
    logged: list[str] = []
    with HttpTransport() as transport:
        client = _chain(
            registry_plain.host,
            transport,
            insecure=True,
            mirrors=[_mirror(transport, f"https://{registry_tls.host}")],
            log=logged.append,
        )
        fetched = client.get_manifest(image.repo, image.tag)
        config = client.get_blob(
            image.repo, image.config.digest, max_bytes=image.config.size, what="config blob"
        )
    assert fetched.digest == image.digest and config == image.config.data
    assert _manifest_requests(registry_plain, upstream_mark) == []
    assert _manifest_requests(registry_tls, mirror_mark) == [
        f"/v2/{image.repo}/manifests/{image.tag}"
    ]
    assert logged == []


def test_mirrors_tried_in_order_then_upstream(
    registry_plain: Registry,
    corpus_plain: dict[str, PushedImage],
    registry_tls: Registry,
    corpus_tls: dict[str, PushedImage],
) -> None:
    image = corpus_plain["oci-index"]
    dead = f"http://127.0.0.1:{_free_port()}"
    logged: list[str] = []
    with HttpTransport() as transport:
        # A dead mirror, then a working one: the working one answers.
        mark = registry_plain.mark()
        client = _chain(
            registry_plain.host,
            transport,
            insecure=True,
            mirrors=[_mirror(transport, dead), _mirror(transport, f"https://{registry_tls.host}")],
            log=logged.append,
        )
        assert client.get_manifest(image.repo, image.tag).digest == image.digest
        assert _manifest_requests(registry_plain, mark) == []
        assert len(logged) == 1 and dead in logged[0]
        # A dead mirror and one without the image (wrong prefix): the registry answers.
        logged.clear()
        client = _chain(
            registry_plain.host,
            transport,
            insecure=True,
            mirrors=[
                _mirror(transport, dead),
                _mirror(transport, f"https://{registry_tls.host}/no/such/prefix"),
            ],
            log=logged.append,
        )
        assert client.get_manifest(image.repo, image.tag).digest == image.digest
        assert len(_manifest_requests(registry_plain, mark)) == 1
        assert len(logged) == 2
        # When everything fails, the registry's own error is what is reported.
        with pytest.raises(NotFoundError) as caught:
            client.get_manifest(image.repo, "no-such-tag")
        assert registry_plain.host in caught.value.message


def test_registry_credentials_never_sent_to_a_mirror(
    registry_token: Registry, private_token_image: PushedImage
) -> None:
    server = registry_token.token_server
    assert server is not None and registry_token.username and registry_token.password
    credential = Credential(registry_token.username, registry_token.password, source="test")
    image = private_token_image
    mark = server.mark()
    with HttpTransport() as transport:
        client = _chain(
            registry_token.host,
            transport,
            credentials=lambda repository: credential,
            insecure=True,
            mirrors=[_mirror(transport, f"http://{registry_token.host}")],
        )
        assert client.get_manifest(image.repo, image.tag).digest == image.digest
    requests = server.requests_since(mark)
    assert requests[0].authorization is None  # the mirror's attempt: anonymous, refused
    assert requests[0].granted[0]["actions"] == []
    assert any((r.authorization or "").startswith("Basic ") for r in requests[1:])


def test_config_errors_of_a_mirror_are_not_skipped(
    tmp_path: Path, registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    mirror_host = f"127.0.0.1:{_free_port()}"
    (_host_dir(tmp_path / "certs.d", mirror_host) / "client.cert").write_text("x")
    settings = _settings(tmp_path, certs_dirs=[tmp_path / "certs.d"])
    image = corpus_plain["oci-single"]
    with HttpTransport(ssl_context_for=settings.ssl_context_for) as transport:
        client = _chain(
            registry_plain.host,
            transport,
            insecure=True,
            mirrors=[_mirror(transport, f"https://{mirror_host}", insecure=False)],
        )
        with pytest.raises(CertsDirError):
            client.get_manifest(image.repo, image.tag)


# ---------------------------------------------------------------------- proxies


class _ConnectProxy(socketserver.ThreadingTCPServer):
    """A real HTTP CONNECT proxy on 127.0.0.1 that records what it was asked to tunnel."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _ConnectHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ConnectHandler(socketserver.StreamRequestHandler):
    server: _ConnectProxy

    def handle(self) -> None:
        request_line = self.rfile.readline(8192).decode("latin-1").strip()
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass
        self.server.requests.append(request_line)
        method, _, rest = request_line.partition(" ")
        if method != "CONNECT":
            self.wfile.write(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = rest.split(" ")[0].rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        client = self.connection
        with upstream:
            while True:
                readable, _, _ = select.select([client, upstream], [], [], 30)
                if not readable:
                    return
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)


@pytest.fixture
def connect_proxy() -> Iterator[_ConnectProxy]:
    proxy = _ConnectProxy()
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=5)


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    full = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "imginspect", *args],
        capture_output=True,
        env=full,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )


def test_https_proxy_and_no_proxy_from_the_environment(
    connect_proxy: _ConnectProxy, registry_tls: Registry, corpus_tls: dict[str, PushedImage]
) -> None:
    """httpx honours HTTPS_PROXY and NO_PROXY (trust_env): nothing for imginspect to do."""
    image = corpus_tls["oci-index"]
    ref = registry_tls.ref(image.repo, image.tag)
    through = _run_cli("--json", ref, env={"HTTPS_PROXY": connect_proxy.url})
    assert through.returncode == 0, through.stderr.decode()
    assert through.stdout == expected_json(image)
    assert f"CONNECT {registry_tls.host} HTTP/1.1" in connect_proxy.requests
    seen = len(connect_proxy.requests)
    bypass = _run_cli(
        "--json", ref, env={"HTTPS_PROXY": connect_proxy.url, "NO_PROXY": "127.0.0.1"}
    )
    assert bypass.returncode == 0, bypass.stderr.decode()
    assert len(connect_proxy.requests) == seen


def test_certs_dir_errors_are_typed_imginspect_errors() -> None:
    assert issubclass(CertsDirError, ConfigError)
    assert issubclass(ConfigError, ImginspectError)


def test_config_files_are_read_without_blocking_on_a_fifo(tmp_path: Path) -> None:
    """A FIFO planted where daemon.json or config.json belongs is an unreadable file (a
    warning), never a hang: files are opened non-blocking and must be regular."""
    from imginspect.credentials import CredentialResolver
    from imginspect.files import read_bounded

    fifo = tmp_path / "daemon.json"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        read_bounded(fifo, 1024)
    warned: list[str] = []
    settings = RegistrySettings(
        certs_dirs=[],
        daemon_config=None,
        environ={"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path)},
        warn=warned.append,
    )
    (tmp_path / "docker").mkdir()
    os.mkfifo(tmp_path / "docker" / "daemon.json")
    assert settings.mirrors == ()
    assert any("not a regular file" in w for w in warned)
    docker_dir = tmp_path / "dockercfg"
    docker_dir.mkdir()
    os.mkfifo(docker_dir / "config.json")
    resolver = CredentialResolver(
        environ={"DOCKER_CONFIG": str(docker_dir), "HOME": str(tmp_path)}, warn=warned.append
    )
    assert resolver.lookup("registry.example.com", "app") is None
    assert any("config.json" in w and "not a regular file" in w for w in warned)


def test_config_file_over_its_bound_is_refused(tmp_path: Path) -> None:
    from imginspect.files import read_bounded

    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2049)
    with pytest.raises(OSError, match="larger than 2048 bytes"):
        read_bounded(big, 2048)
    assert read_bounded(big, 4096) == b" " * 2049


def test_auth_names_the_trust_store() -> None:
    """`imginspect auth` says what verified connections trust: the operating system's store,
    or the CA files OpenSSL is pointed at."""
    from imginspect.trust import describe_trust_store, system_trust_context

    assert describe_trust_store({}) == "the operating system's trust store"
    assert describe_trust_store({"SSL_CERT_FILE": "/corp/ca.pem"}) == (
        "the CAs in SSL_CERT_FILE=/corp/ca.pem (as OpenSSL reads them)"
    )
    both = describe_trust_store({"SSL_CERT_FILE": "/a.pem", "SSL_CERT_DIR": "/certs"})
    assert "SSL_CERT_FILE=/a.pem" in both and "SSL_CERT_DIR=/certs" in both
    context = system_trust_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert type(context).__module__.startswith("truststore")  # not certifi's bundle
