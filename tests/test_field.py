"""Faults real registries and machines produce, against real servers on loopback.

Connections (the pool race, keep-alive connections the server closed, a registry that moved
from http to https, a dead registry in a batch), 429 without Retry-After, cookies, tokens
(a stale cached token refused with a bare 401, token servers' own reasons, a token sent up
front when the challenge is known), the redirect policy's guards, and TLS trust (the
operating system's store; a registry's certs.d CA for the hosts it redirects to).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from imginspect.cache import Cache
from imginspect.errors import ImginspectError, NetworkError
from imginspect.hosts import HostResolver
from imginspect.inspector import Inspector
from imginspect.reference import parse_reference
from imginspect.settings import RegistrySettings
from imginspect.transport import HttpTransport
from tests.support.badserver import (
    GOOD_IMAGE,
    BadServer,
    Reply,
    Request,
    Scenario,
    closed_port,
    json_reply,
    manifest_reply,
    registry_error,
)
from tests.support.corpus import PushedImage
from tests.support.registry import Registry
from tests.test_faults import cli_env, run_cli

# --------------------------------------------------------------------------- a raw server


def _listen(handle: Callable[[socket.socket], None]) -> socket.socket:
    """A listening socket on 127.0.0.1 whose connections are each handled by ``handle`` in a
    thread of their own (the small servers below); close it to stop accepting."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener


def _read_head(conn: socket.socket) -> bytes | None:
    """The request head and whatever followed it, or None if the peer closed first."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    return buffer


@dataclass
class _Served:
    """What a :class:`_KeepAliveServer` connection saw."""

    requests: list[str] = field(default_factory=list)
    dropped: int = 0


class _KeepAliveServer:
    """A plain-HTTP registry serving :data:`GOOD_IMAGE`'s manifest with keep-alive, that can
    close a connection without a word: on its second request (``drop="reused"``: an idle
    timeout firing just as the client reuses it) or on its first (``drop="fresh"``)."""

    def __init__(self, drop: str | None) -> None:
        self.drop = drop
        self.connections: list[_Served] = []
        self._lock = threading.Lock()
        self._sock = _listen(self._serve)
        self.port = self._sock.getsockname()[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._sock.close()

    def _serve(self, conn: socket.socket) -> None:
        served = _Served()
        buffer = b""
        with conn:
            first = conn.recv(1, socket.MSG_PEEK)
            if first == b"\x16":  # a TLS probe (loopback is insecure: https first)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
                return
            with self._lock:
                self.connections.append(served)
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode()
                if (self.drop == "reused" and served.requests) or self.drop == "fresh":
                    served.dropped += 1
                    return  # closed without a response byte
                served.requests.append(line)
                method = line.split()[0]
                body = GOOD_IMAGE.manifest
                head_out = (
                    "HTTP/1.1 200 OK\r\n"
                    f"Content-Type: {GOOD_IMAGE.media_type}\r\n"
                    f"Docker-Content-Digest: {GOOD_IMAGE.digest}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                conn.sendall(head_out + (b"" if method == "HEAD" else body))


@pytest.fixture
def keepalive_server(request: pytest.FixtureRequest) -> Iterator[_KeepAliveServer]:
    server = _KeepAliveServer(request.param)
    yield server
    server.close()


@pytest.mark.parametrize("keepalive_server", ["reused"], indirect=True)
def test_reused_connection_closed_by_the_server_is_retried_once_on_a_new_one(
    keepalive_server: _KeepAliveServer,
) -> None:
    ref = parse_reference(f"{keepalive_server.host}/app:latest")
    with Inspector() as inspector:
        digests = [inspector.inspect(ref, read_config=False).descriptor.digest for _ in range(20)]
    assert digests == [GOOD_IMAGE.digest] * 20
    # Every reuse met a closed connection; each request then went out once more, on a new one.
    answered = [c for c in keepalive_server.connections if c.requests]
    assert len(answered) == 20 and all(len(c.requests) == 1 for c in answered)
    assert sum(c.dropped for c in keepalive_server.connections) == 19


@pytest.mark.parametrize("keepalive_server", ["fresh"], indirect=True)
def test_a_new_connection_closed_without_answer_is_not_sent_again(
    keepalive_server: _KeepAliveServer,
) -> None:
    ref = parse_reference(f"{keepalive_server.host}/app:latest")
    with Inspector() as inspector, pytest.raises(NetworkError) as failure:
        inspector.inspect(ref, read_config=False)
    assert "disconnected" in failure.value.message.lower()
    assert len(keepalive_server.connections) == 1  # the request went out once


# --------------------------------------------------------------------------- the pool race


@dataclass
class _ConnectionUse:
    """Who holds each connection, and every close of a connection while another thread
    was using it (the race httpcore's pool had: closing surplus or expired connections
    outside its lock, under a thread that had just been handed one)."""

    holders: dict[int, int] = field(default_factory=dict)  # id(connection) -> thread id
    foreign_closes: list[str] = field(default_factory=list)
    requests: int = 0
    opened: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def connection_use(monkeypatch: pytest.MonkeyPatch) -> _ConnectionUse:
    """Record, for every request, the thread that sends it; for every close, whether a
    request of another thread was still in flight on that connection. Each request is
    slowed a little once its head is read, so that any closing done by another thread
    (the pool, a sibling request) lands while it is in flight."""
    from imginspect import http11

    use = _ConnectionUse()
    original_init = http11.Connection.__init__
    original_request = http11.Connection.request
    original_close = http11.Connection.close

    def init(self: http11.Connection, *args: Any, **kwargs: Any) -> None:
        with use.lock:
            use.opened += 1
        original_init(self, *args, **kwargs)

    def request(self: http11.Connection, *args: Any, **kwargs: Any) -> http11.Response:
        with use.lock:
            use.holders[id(self)] = threading.get_ident()
            use.requests += 1
        response = original_request(self, *args, **kwargs)
        if use.requests % 50 == 0:
            time.sleep(0.002)
        return response

    def close(self: http11.Connection) -> None:
        with use.lock:
            holder = use.holders.get(id(self))
            if holder is not None and holder != threading.get_ident() and not self.is_idle():
                use.foreign_closes.append(f"{threading.get_ident()} closed {holder}'s")
        original_close(self)

    monkeypatch.setattr(http11.Connection, "__init__", init)
    monkeypatch.setattr(http11.Connection, "request", request)
    monkeypatch.setattr(http11.Connection, "close", close)
    return use


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_pool_race_stress_thousands_of_requests_at_64_in_flight(
    scheme: str,
    registry_plain: Registry,
    corpus_plain: dict[str, PushedImage],
    registry_tls: Registry,
    corpus_tls: dict[str, PushedImage],
    connection_use: _ConnectionUse,
) -> None:
    """2000 inspects (1000 over TLS) at 64 in flight on one Inspector: every one answered,
    no connection closed under the thread using it, and connections reused (far fewer
    opened than requests)."""
    registry, corpus = (
        (registry_plain, corpus_plain) if scheme == "http" else (registry_tls, corpus_tls)
    )
    images = [corpus[key] for key in ("oci-index", "schema2", "oci-single", "buildkit")]
    refs = [parse_reference(f"{registry.host}/{image.reference}") for image in images]
    errors: list[str] = []
    count = 2000 if scheme == "http" else 1000

    with Inspector() as inspector:

        def one(i: int) -> None:
            try:
                inspector.inspect(refs[i % len(refs)], read_config=False)
            except ImginspectError as error:
                errors.append(error.message)

        with ThreadPoolExecutor(64) as pool:
            list(pool.map(one, range(count)))
    assert errors == []
    assert connection_use.foreign_closes == []
    assert connection_use.requests >= count
    # reuse: about one connection per request in flight (64), plus the one scheme
    # negotiation's https probe and plain-http attempt (the other requests wait for it; a
    # few more only if one's wait ran out on a loaded machine); never one per request
    assert connection_use.opened <= 64 + 8, connection_use.opened


# --------------------------------------------------------------------------- schemes


def test_registry_that_moved_from_http_to_https_is_renegotiated(
    registry_tls: Registry, corpus_tls: dict[str, PushedImage], tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    Cache(cache_dir).update_host(registry_tls.host, scheme="http")  # it spoke http last time
    image = corpus_tls["oci-index"]
    run = run_cli(
        "--digest",
        f"{registry_tls.host}/{image.reference}",
        env={"IMGINSPECT_CACHE_DIR": str(cache_dir), "IMGINSPECT_NO_CACHE": ""},
    )
    assert (run.code, run.stdout.decode().strip(), run.stderr) == (0, image.digest, "")
    assert (Cache(cache_dir).get_host(registry_tls.host) or {}).get("scheme") == "https"


def test_dead_registry_in_a_batch_fails_fast_after_the_first_reference() -> None:
    port = closed_port()
    refs = [f"127.0.0.1:{port}/app/n{i}:v1" for i in range(6)]
    run = run_cli("--debug", "--concurrency", "1", "--digest", *refs)
    assert run.code == 5, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 6 and all("cannot connect" in line for line in errors), run.stderr
    assert all("not retried" in line for line in errors[1:]), run.stderr
    retries = [line for line in run.stderr.splitlines() if line.startswith("debug: retry ")]
    assert len(retries) == 2, run.stderr  # the first reference's retries, no one else's


def test_dead_registry_later_references_are_not_retried() -> None:
    port = closed_port()
    lines: list[str] = []
    with Inspector(log=lines.append) as inspector:
        for i in range(5):
            with pytest.raises(ImginspectError) as failure:
                inspector.resolve_digest(parse_reference(f"127.0.0.1:{port}/app/n{i}:v1"))
            if i:
                assert "not retried" in failure.value.message
    assert sum(line.startswith("retry ") for line in lines) == 2  # the first reference only


# --------------------------------------------------------------------------- 429 and cookies


def _always(reply: Reply) -> Callable[[Request], Reply]:
    return lambda request: reply


@pytest.fixture(scope="module")
def field_server() -> Iterator[BadServer]:
    rate_limit = (("RateLimit-Limit", "100;w=21600"), ("RateLimit-Remaining", "0;w=21600"))
    cookie = (("Set-Cookie", "sid=harbor-session; Path=/; HttpOnly"),)
    scenarios = [
        Scenario("busy", manifest=_always(registry_error(429, "TOOMANYREQUESTS", "slow down"))),
        Scenario(
            "counted",
            manifest=_always(
                registry_error(429, "TOOMANYREQUESTS", "pull limit", headers=rate_limit)
            ),
        ),
        Scenario(
            "cookies",
            manifest=lambda request: Reply(
                200,
                (
                    ("Content-Type", GOOD_IMAGE.media_type),
                    ("Docker-Content-Digest", GOOD_IMAGE.digest),
                    *cookie,
                ),
                GOOD_IMAGE.manifest,
            ),
            image=GOOD_IMAGE,
        ),
    ]
    with BadServer("127.0.0.1", scenarios) as server:
        yield server


def test_429_without_retry_after_is_retried_once_at_most(field_server: BadServer) -> None:
    field_server.clear()
    run = run_cli("--json", field_server.ref("busy"))
    assert run.code == 6, run.stderr
    assert len(field_server.requests_for("busy", "manifests")) == 2


def test_429_of_a_counted_get_is_not_retried(field_server: BadServer) -> None:
    field_server.clear()
    run = run_cli("--json", field_server.ref("counted"))
    assert run.code == 6, run.stderr
    gets = [r for r in field_server.requests_for("counted", "manifests") if r.method == "GET"]
    assert len(gets) == 1


def test_cookies_are_never_sent_back(field_server: BadServer) -> None:
    field_server.clear()
    ref = field_server.ref("cookies")
    run = run_cli("--json", ref, ref, f"{field_server.netloc}/cookies@{GOOD_IMAGE.digest}")
    assert run.code == 0, run.stderr
    requests = field_server.requests_for("cookies")
    assert len(requests) >= 3
    assert all(r.header("cookie") is None for r in requests)


# --------------------------------------------------------------------------- tokens


class _TokenRegistry:
    """A bearer-token registry (as Google Artifact Registry and Harbor behave): a request
    without a token gets a challenge; a revoked token gets a bare 401, no challenge."""

    def __init__(self, server: BadServer, name: str, *, lifetime: int = 300) -> None:
        self.name = name
        self.lifetime = lifetime
        self.valid: set[str] = set()
        self.issued = 0
        self.refuse_tokens: Reply | None = None
        server.add(Scenario(name, manifest=self.manifest, token=self.token, image=GOOD_IMAGE))
        self.server = server

    def token(self, request: Request) -> Reply:
        if self.refuse_tokens is not None:
            return self.refuse_tokens
        self.issued += 1
        value = f"{self.name}-token-{self.issued}"
        self.valid.add(value)
        return json_reply({"token": value, "expires_in": self.lifetime})

    def manifest(self, request: Request) -> Reply:
        presented = request.authorization
        if presented is None:
            challenge = (
                f'Bearer realm="{self.server.url}/token",service="field",'
                f'scope="repository:{self.name}:pull"'
            )
            return registry_error(
                401,
                "UNAUTHORIZED",
                "authentication required",
                headers=(("WWW-Authenticate", challenge),),
            )
        if presented.removeprefix("Bearer ") not in self.valid:
            return Reply(401, (("Content-Type", "application/json"),), b'{"errors":[]}')
        return manifest_reply(GOOD_IMAGE.manifest, GOOD_IMAGE.media_type)


@pytest.fixture
def token_server_cache(tmp_path: Path) -> dict[str, str]:
    return {"IMGINSPECT_CACHE_DIR": str(tmp_path / "cache"), "IMGINSPECT_NO_CACHE": ""}


def test_stale_cached_token_refused_with_a_bare_401_is_dropped(
    field_server: BadServer, token_server_cache: dict[str, str]
) -> None:
    registry = _TokenRegistry(field_server, "gar")
    ref = field_server.ref("gar")
    assert run_cli("--digest", ref, env=token_server_cache).code == 0
    registry.valid.clear()  # revoked: the cached token now gets a bare 401
    run = run_cli("--digest", ref, env=token_server_cache)
    assert (run.code, run.stderr) == (0, ""), run.stderr
    assert run.stdout.decode().strip() == GOOD_IMAGE.digest
    # ... and the next run uses the new token at once: one request.
    field_server.clear()
    assert run_cli("--digest", ref, env=token_server_cache).code == 0
    assert len(field_server.requests_for("gar")) == 1


def test_warm_run_with_an_expired_token_fetches_it_before_the_request(
    field_server: BadServer, token_server_cache: dict[str, str]
) -> None:
    """Harbor refuses even an anonymous HEAD without a token: with the challenge cached,
    a warm run sends the token on its first request (token + HEAD, not HEAD + token + HEAD)."""
    registry = _TokenRegistry(field_server, "harbor", lifetime=1)  # expires at once
    ref = field_server.ref("harbor")
    assert run_cli("--digest", ref, env=token_server_cache).code == 0
    time.sleep(1.1)
    field_server.clear()
    run = run_cli("--digest", ref, env=token_server_cache)
    assert run.code == 0, run.stderr
    kinds = [r.kind for r in field_server.requests_for("harbor")]
    assert kinds == ["token", "manifests"]
    assert registry.issued == 2


def test_token_server_reason_is_kept(
    field_server: BadServer, token_server_cache: dict[str, str]
) -> None:
    registry = _TokenRegistry(field_server, "denied")
    registry.refuse_tokens = json_reply({"details": "incorrect username or password"}, 401)
    run = run_cli("--digest", field_server.ref("denied"), env=token_server_cache)
    assert run.code == 3
    error = run.stderr.splitlines()[0]
    assert "incorrect username or password" in error
    # anonymous: not told that credentials were refused
    assert "refused anonymous access" in error and "credentials" not in error


# --------------------------------------------------------------------------- redirects


class _DualServer:
    """TLS and plain HTTP on one port (the first byte tells): for a same-host https -> http
    redirect. Records each request's path, scheme and Authorization."""

    def __init__(self, ca: trustme.CA, routes: dict[str, tuple[int, dict[str, str]]]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str, str | None]] = []
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(self._context)
        self._sock = _listen(self._serve)
        self.port = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()

    def _serve(self, raw: socket.socket) -> None:
        scheme = "http"
        conn: socket.socket = raw
        with contextlib.suppress(OSError, ssl.SSLError):
            if raw.recv(1, socket.MSG_PEEK) == b"\x16":
                conn = self._context.wrap_socket(raw, server_side=True)
                scheme = "https"
            buffer = _read_head(conn)
            if buffer is None:
                return
            head = buffer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            path = head[0].split()[1]
            auth = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in head[1:]
                    if line.lower().startswith("authorization:")
                ),
                None,
            )
            self.seen.append((scheme, path, auth))
            status, headers = self.routes.get(path, (404, {}))
            lines = [f"HTTP/1.1 {status} X", "Content-Length: 2", "Connection: close"]
            lines += [f"{k}: {v.format(port=self.port)}" for k, v in headers.items()]
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n{}").encode())
        with contextlib.suppress(OSError):
            conn.close()


@pytest.fixture(scope="module")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.parametrize(
    ("start", "location", "status", "keeps_auth"),
    [
        ("https", "https://127.0.0.1:{port}/final", 307, True),  # same origin
        ("https", "http://127.0.0.1:{port}/final", 307, False),  # same host, downgrade
        ("http", "http://127.0.0.1:{port}/final", 302, True),  # same origin, plain
        ("https", "https://localhost:{port}/final", 307, False),  # another host name
        ("https", "/final", 308, True),  # relative
    ],
)
def test_redirect_policy_keeps_authorization_only_on_the_same_host_and_never_in_clear(
    test_ca: trustme.CA, start: str, location: str, status: int, keeps_auth: bool
) -> None:
    server = _DualServer(test_ca, {"/start": (status, {"Location": location}), "/final": (200, {})})
    try:
        with HttpTransport() as transport:
            response = transport.request(
                "GET",
                f"{start}://127.0.0.1:{server.port}/start",
                headers={"Authorization": "Bearer secret-token"},
                max_bytes=1024,
                what="manifest",
                verify=False,
                follow_redirects=True,
            )
        assert response.status == 200
        (first, final) = server.seen
        assert first[2] == "Bearer secret-token"
        assert final[1] == "/final"
        assert (final[2] == "Bearer secret-token") is keeps_auth
    finally:
        server.close()


def _redirect_failure(server: _DualServer) -> ImginspectError:
    """The error of a GET of /start on ``server``, following its redirects."""
    with HttpTransport() as transport, pytest.raises(ImginspectError) as failure:
        transport.request(
            "GET",
            f"http://127.0.0.1:{server.port}/start",
            max_bytes=1024,
            what="manifest",
            verify=False,
            follow_redirects=True,
        )
    return failure.value


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("ftp://127.0.0.1/final", "non-HTTP"),
        ("file:///etc/passwd", "non-HTTP"),
        ("http://[::1", "invalid redirect"),
    ],
)
def test_redirect_policy_refuses_what_is_not_http(
    test_ca: trustme.CA, location: str, message: str
) -> None:
    server = _DualServer(test_ca, {"/start": (307, {"Location": location})})
    try:
        assert message in _redirect_failure(server).message
    finally:
        server.close()


def test_redirect_loop_is_cut_off(test_ca: trustme.CA) -> None:
    server = _DualServer(test_ca, {"/start": (307, {"Location": "/start"})})
    try:
        assert "too many redirects" in _redirect_failure(server).message
        assert len(server.seen) == 11
    finally:
        server.close()


# --------------------------------------------------------------------------- TLS trust


def test_certs_d_ca_of_a_registry_applies_to_its_redirect_target(
    test_ca: trustme.CA, tmp_path: Path
) -> None:
    """A registry behind a private CA whose blobs redirect to storage behind the same CA."""
    config = GOOD_IMAGE.blobs[json.loads(GOOD_IMAGE.manifest)["config"]["digest"]]
    blob_server = _BlobServer(test_ca, config)
    certs = tmp_path / "certs.d"
    registry_host = f"127.0.0.1:{blob_server.registry_port}"
    (certs / registry_host).mkdir(parents=True)
    test_ca.cert_pem.write_to_path(str(certs / registry_host / "ca.crt"))
    settings = RegistrySettings(certs_dirs=[certs], environ={"HOME": str(tmp_path)})
    try:
        with Inspector(HostResolver(settings=settings)) as inspector:
            result = inspector.inspect(parse_reference(f"{registry_host}/app:v1"))
        assert str(result.config_platform) == "linux/amd64"
        assert blob_server.blob_served
    finally:
        blob_server.close()


class _BlobServer:
    """Two TLS servers behind one CA: a registry answering the manifest of GOOD_IMAGE and
    redirecting its config blob to the other, which serves it."""

    def __init__(self, ca: trustme.CA, config: bytes) -> None:
        self.config = config
        self.blob_served = False
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(self._context)
        self._registry = _listen(lambda raw: self._serve(raw, self._registry_reply))
        self._storage = _listen(lambda raw: self._serve(raw, self._storage_reply))
        self.registry_port = self._registry.getsockname()[1]
        self.storage_port = self._storage.getsockname()[1]

    def close(self) -> None:
        self._registry.close()
        self._storage.close()

    def _serve(self, raw: socket.socket, handler: Callable[[str], bytes]) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            conn = self._context.wrap_socket(raw, server_side=True)
            with conn:
                buffer = _read_head(conn)
                if buffer is None:
                    return
                line = buffer.split(b"\r\n", 1)[0].decode()
                conn.sendall(handler(line.split()[1]))

    def _registry_reply(self, path: str) -> bytes:
        if "/manifests/" in path:
            body = GOOD_IMAGE.manifest
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {GOOD_IMAGE.media_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            return head.encode() + body
        location = f"https://127.0.0.1:{self.storage_port}/blob"
        return (
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n"
        ).encode()

    def _storage_reply(self, path: str) -> bytes:
        self.blob_served = True
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.config)}\r\nConnection: close\r\n\r\n"
        return head.encode() + self.config


def _can_bind_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


def test_os_trust_store_is_trusted_for_a_registry_without_certs_d(
    test_ca: trustme.CA, tmp_path: Path
) -> None:
    """A CA the administrator added to the system store (what update-ca-certificates writes
    to /etc/ssl/certs/ca-certificates.crt) is trusted, as docker and skopeo trust it. The
    system bundle is replaced inside a private mount namespace, never on the machine."""
    if not _can_bind_mount():
        # CI runs as root, where this must run; a developer's unprivileged shell cannot.
        assert not os.environ.get("CI"), "this test needs root and unshare(1) in CI"
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    system_bundle = Path(
        ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    )
    bundle = tmp_path / "ca-certificates.crt"
    bundle.write_bytes(system_bundle.read_bytes() + test_ca.cert_pem.bytes())
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 registry.corp.test localhost\n")
    server = _TlsManifestServer(test_ca, "registry.corp.test")
    env = cli_env({"SSL_CERT_FILE": "", "SSL_CERT_DIR": ""})
    env.pop("SSL_CERT_FILE")
    env.pop("SSL_CERT_DIR")
    script = (
        f"mount --bind {bundle} {system_bundle} && mount --bind {hosts} /etc/hosts && "
        f"exec {sys.executable} -m imginspect --digest registry.corp.test:{server.port}/app:v1"
    )
    try:
        proc = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == GOOD_IMAGE.digest


class _TlsManifestServer:
    """An https registry for ``name`` serving GOOD_IMAGE's manifest."""

    def __init__(self, ca: trustme.CA, name: str) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(name).configure_cert(self._context)
        self._sock = _listen(self._serve)
        self.port = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()

    def _serve(self, raw: socket.socket) -> None:
        with (
            contextlib.suppress(OSError, ssl.SSLError),
            self._context.wrap_socket(raw, server_side=True) as conn,
        ):
            buffer = _read_head(conn)
            if buffer is None:
                return
            body = GOOD_IMAGE.manifest
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {GOOD_IMAGE.media_type}\r\n"
                f"Docker-Content-Digest: {GOOD_IMAGE.digest}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            method = buffer.split(b" ", 1)[0]
            conn.sendall(head.encode() + (b"" if method == b"HEAD" else body))


def test_tls_hint_for_docker_hub_does_not_suggest_certs_d() -> None:
    from imginspect.transport import _connect_hint

    failure = ssl.SSLCertVerificationError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")
    hub = _connect_hint(failure, "registry-1.docker.io")
    other = _connect_hint(failure, "registry.corp.test:5000")
    assert hub is not None and "certs.d" not in hub and "trust store" in hub
    assert other is not None and "/etc/docker/certs.d/registry.corp.test:5000/ca.crt" in other
