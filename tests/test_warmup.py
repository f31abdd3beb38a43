"""imginspect/warmup.py: the first connection, opened while imginspect loads, is the one the
transport uses (the server sees one connection, not two); a socket the server closed before
it was used costs one retry, not a failure; proxies, other hosts and untaken sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from imginspect import warmup
from imginspect.errors import ImginspectError
from imginspect.transport import HttpTransport
from tests.support.badserver import BadServer, Reply, Scenario
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

BODY = b'{"schemaVersion":2}'


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[BadServer]:
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)
    with BadServer(scenarios=[Scenario("app", manifest=Reply(200, body=BODY))]) as bad:
        yield bad
    warmup.discard()


def _get(transport: HttpTransport, server: BadServer) -> bytes:
    response = transport.request(
        "GET", f"{server.url}/v2/app/manifests/x", max_bytes=1000, what="manifest"
    )
    assert response.status == 200
    return response.body


def test_the_transport_uses_the_warm_connection(server: BadServer) -> None:
    assert warmup.start(server.host, server.port)
    with HttpTransport() as transport:
        assert _get(transport, server) == BODY
        assert _get(transport, server) == BODY
    assert len(server.connections) == 1
    assert warmup.take(server.host, server.port, 0.1) is None  # taken once, and only once


def test_a_warm_connection_closed_before_use_costs_one_retry(server: BadServer) -> None:
    assert warmup.start(server.host, server.port)
    (attempt,) = warmup._attempts[(server.host, server.port)]
    assert attempt.done.wait(5) and attempt.sock is not None
    assert _wait_for(lambda: len(server.connections) == 1)
    server.drop_connections()  # the server's idle timeout fired before we sent anything
    with HttpTransport() as transport:
        assert _get(transport, server) == BODY
    assert len(server.connections) == 2


def test_nothing_is_opened_with_a_proxy_in_the_environment(
    server: BadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert not warmup.start(server.host, server.port)
    assert warmup.take(server.host, server.port, 0.1) is None


def test_another_host_or_port_is_connected_as_usual(server: BadServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as other:
        port = other.getsockname()[1]
        assert warmup.start("127.0.0.1", port)
        assert not warmup.start("127.0.0.1", port)  # once per host and port
        with HttpTransport() as transport:
            assert _get(transport, server) == BODY  # not the warm socket to `other`
        accepted, _ = other.accept()
        with accepted:
            warmup.discard()  # closes the untaken socket
            accepted.settimeout(5)
            assert accepted.recv(10) == b""  # nothing was ever sent on it
    assert len(server.connections) == 1


def test_a_failed_warm_connect_leaves_the_transport_to_report_it() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    assert warmup.start("127.0.0.1", port)
    assert warmup.take("127.0.0.1", port, 5) is None  # refused: the caller connects itself


def test_a_connect_still_under_way_is_not_waited_for_past_the_timeout() -> None:
    attempt = warmup._Attempt.__new__(warmup._Attempt)
    attempt.host, attempt.port, attempt.timeout = "192.0.2.1", 443, 0.5
    attempt.sock, attempt.done = None, threading.Event()
    warmup._attempts[("192.0.2.1", 443)] = [attempt]
    assert warmup.take("192.0.2.1", 443, 0.05) is None
    attempt.done.set()


def _wait_for(condition: object, seconds: float = 5.0) -> bool:
    import time

    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if callable(condition) and condition():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize(
    ("domain", "insecure", "known", "key"),
    [
        ("docker.io", False, False, ("registry-1.docker.io", 443, 1)),
        ("ghcr.io", True, False, ("ghcr.io", 443, 1)),  # no port: plain http would go to 80
        ("registry.example:5000", False, False, ("registry.example", 5000, 1)),
        # the https probe, and plain http
        ("registry.example:5000", True, False, ("registry.example", 5000, 2)),
        ("localhost:5000", False, False, ("localhost", 5000, 2)),  # loopback: insecure
        ("[::1]:5000", False, False, ("::1", 5000, 2)),
        ("localhost:5000", False, True, ("localhost", 5000, 1)),  # the cache knows the scheme
    ],
)
def test_the_host_and_port_of_a_domain(
    domain: str,
    insecure: bool,
    known: bool,
    key: tuple[str, int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[tuple[str, int, int]] = []

    def start(host: str, port: int, *, count: int = 1) -> bool:
        started.append((host, port, count))
        return True

    monkeypatch.setattr(warmup, "start", start)
    assert warmup.start_for_domain(domain, insecure=insecure, scheme_known=known)
    assert started == [key]


def test_an_insecure_registry_negotiates_on_two_warm_connections(server: BadServer) -> None:
    """The https probe and the plain request of a cold run each get one: the server sees
    exactly those two connections, the probe and the request."""
    assert warmup.start_for_domain(server.netloc, insecure=True)
    assert len(warmup._attempts[(server.host, server.port)]) == 2
    with HttpTransport() as transport:
        assert warmup.take(server.host, server.port, 5) is not None  # as the https probe
        assert _get(transport, server) == BODY  # the plain request: on the second
    assert warmup.take(server.host, server.port, 0.1) is None
    assert len(server.connections) == 2


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imginspect", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["IMGINSPECT_CACHE_DIR"] = str(tmp_path / "cache")
    env["DOCKER_CONFIG"] = str(tmp_path / "docker")
    return env


@pytest.mark.parametrize("registry_name", ["registry_plain", "registry_tls", "registry_token"])
def test_the_cli_sends_its_first_request_on_the_warm_connection(
    registry_name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    registry: Registry = request.getfixturevalue(registry_name)
    corpus: dict[str, PushedImage] = request.getfixturevalue(
        registry_name.replace("registry_", "corpus_")
    )
    image = corpus["oci-index"]
    env = _clean_env(tmp_path)
    args = ["--json", "--debug", f"{registry.host}/{image.repo}:{image.tag}"]
    if registry_name == "registry_tls":
        args.insert(0, "--insecure")
    run = _cli(*args, env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["Descriptor"]["digest"] == image.digest
    # Loopback registries are insecure: the https probe and the plain request each had a
    # warm connection; a failed TLS handshake (a plain-HTTP registry) logs no line.
    warm = run.stderr.count("on the connection opened while imginspect started")
    assert warm == (2 if registry_name == "registry_tls" else 1), run.stderr


def test_the_cli_opens_nothing_early_with_a_proxy_set(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage], tmp_path: Path
) -> None:
    image = corpus_plain["oci-index"]
    env = _clean_env(tmp_path)
    env["HTTPS_PROXY"] = "http://127.0.0.1:9"  # refused, were it used
    env["NO_PROXY"] = "127.0.0.1,localhost"
    run = _cli("--json", "--debug", f"{registry_plain.host}/{image.repo}:{image.tag}", env=env)
    assert run.returncode == 0, run.stderr
    assert "opened while imginspect started" not in run.stderr


def test_a_cached_scheme_means_one_warm_connection(tmp_path: Path) -> None:
    """Cold, an insecure registry's scheme is negotiated on two warm connections (the TLS
    probe and the plain request); once the cache knows the scheme, one request needs one:
    no second connection is opened only to be closed unused."""
    env = _clean_env(tmp_path)
    with BadServer() as server:
        ref = server.ref("good")
        first = _cli("--json", "--debug", ref, env=env)
        assert first.returncode == 0, first.stderr
        assert server.wait_idle()
        assert len(server.connections) == 2  # the TLS probe and the plain request
        assert server.tls_probes == 1
        second = _cli("--json", "--debug", ref, env=env)
        assert second.returncode == 0, second.stderr
        assert "on the connection opened while imginspect started" in second.stderr
        assert server.wait_idle()
        assert len(server.connections) == 3, server.connections
        assert server.tls_probes == 1


def test_no_proxy_star_means_direct_connections_so_a_warm_one(
    server: BadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transport's reading of the environment decides: NO_PROXY=* sends everything
    directly, so the warm connection is opened (and used)."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "*")
    assert warmup.start(server.host, server.port)
    with HttpTransport() as transport:
        assert _get(transport, server) == BODY
    assert len(server.connections) == 1
    assert warmup.take(server.host, server.port, 0.1) is None  # it was taken


# ---------------------------------------------------------------- the token service


def test_the_token_request_takes_a_connection_started_for_its_realm(
    registry_token: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A realm on another host or port than the registry's gets its own warm connection,
    and the token request (keyed by the realm's host and port) is sent on it."""
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)
    token_server = registry_token.token_server
    assert token_server is not None
    lines: list[str] = []
    try:
        assert warmup.start_for_realm(token_server.realm, registry_token.host)
        with HttpTransport(log=lines.append) as transport:
            response = transport.request(
                "GET",
                f"{token_server.realm}?service={token_server.service}",
                max_bytes=65536,
                what="token",
            )
        assert response.status == 200
        assert any("on the connection opened while imginspect started" in line for line in lines)
    finally:
        warmup.discard()


@pytest.mark.parametrize(
    ("realm", "registry_host"),
    [
        ("https://registry.example:5000/token", "registry.example:5000"),  # reused: same host
        ("https://registry.example/token", "registry.example"),  # 443 both
        ("http://registry.example:80/token", "registry.example:80"),
        ("ftp://auth.example/token", "registry.example"),
        ("https://[::1/token", "registry.example"),  # unusable, as the transport finds too
        ("/token", "registry.example"),
    ],
)
def test_no_realm_connection_where_none_would_be_used(
    realm: str, registry_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[str, int]] = []
    monkeypatch.setattr(warmup, "start", lambda host, port, **_: started.append((host, port)))
    assert not warmup.start_for_realm(realm, registry_host)
    assert started == []


def test_a_first_docker_hub_run_warms_its_token_service_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cold, Docker Hub's 401 will send the client to auth.docker.io: that connection is
    opened while imginspect starts, beside the registry's. Once the cache knows the
    challenge, a token may be cached as well: then only the registry's."""
    from imginspect.cache import Cache
    from imginspect.cli import _warm_up

    started: list[tuple[str, int]] = []

    def record(host: str, port: int, **_: object) -> bool:
        started.append((host, port))
        return True

    monkeypatch.setattr(warmup, "start", record)
    cache = Cache(tmp_path / "cache")
    assert _warm_up("docker.io", insecure=False, open_cache=lambda: cache) is cache
    assert started == [("registry-1.docker.io", 443), ("auth.docker.io", 443)]

    started.clear()
    _warm_up("ghcr.io", insecure=False, open_cache=lambda: cache)  # realm on its own host
    assert started == [("ghcr.io", 443)]

    started.clear()
    assert _warm_up("docker.io", insecure=False, open_cache=lambda: None) is None  # --no-cache
    assert started == [("registry-1.docker.io", 443), ("auth.docker.io", 443)]

    started.clear()
    cache.update_host(
        "registry-1.docker.io",
        challenge={
            "scheme": "bearer",
            "params": {"realm": warmup.DOCKER_HUB_REALM, "service": "registry.docker.io"},
        },
    )
    _warm_up("docker.io", insecure=False, open_cache=lambda: Cache(tmp_path / "cache"))
    assert started == [("registry-1.docker.io", 443)]

    started.clear()
    monkeypatch.setattr(warmup, "start", lambda host, port, **_: False)  # e.g. a proxy
    _warm_up("docker.io", insecure=False, open_cache=lambda: Cache(tmp_path / "other"))
    assert started == []


def test_an_https_registry_is_connected_to_before_the_cache_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the cache cannot change what to connect to (https only), the connection starts
    first: opening the cache (platformdirs, its directory) is 5-10 ms a distant registry's
    connect would otherwise wait for. An insecure or loopback registry's scheme may be
    cached (one connection then, two to negotiate): the cache is read first."""
    from imginspect.cache import Cache
    from imginspect.cli import _warm_up

    events: list[str] = []

    def record(host: str, port: int, *, count: int = 1, **_: object) -> bool:
        events.append(f"connect {host}:{port} x{count}")
        return True

    def open_cache() -> Cache:
        events.append("cache")
        return Cache(tmp_path / "cache")

    monkeypatch.setattr(warmup, "start", record)
    _warm_up("ghcr.io", insecure=False, open_cache=open_cache)
    assert events == ["connect ghcr.io:443 x1", "cache"]

    events.clear()
    _warm_up("localhost:5000", insecure=False, open_cache=open_cache)
    assert events == ["cache", "connect localhost:5000 x2"]  # scheme unknown: negotiate

    events.clear()
    Cache(tmp_path / "cache").update_host("localhost:5000", scheme="http")
    _warm_up("localhost:5000", insecure=False, open_cache=open_cache)
    assert events == ["cache", "connect localhost:5000 x1"]  # known: one connection

    events.clear()
    _warm_up("registry.internal:5000", insecure=True, open_cache=open_cache)
    assert events == ["cache", "connect registry.internal:5000 x2"]


def test_docker_hub_with_mirrors_warms_the_first_mirror_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """registry-mirrors in daemon.json: Docker Hub references go to the first mirror first,
    so that is the connection opened while imginspect starts; none to Docker Hub or its
    token service (a network that lets only the mirror through may never answer them).
    Other registries have no mirrors; a daemon.json that cannot be read changes nothing
    here (it is reported where it is used)."""
    from imginspect.cli import _warm_up
    from imginspect.settings import RegistrySettings

    started: list[tuple[str, int]] = []

    def record(host: str, port: int, **_: object) -> bool:
        started.append((host, port))
        return True

    monkeypatch.setattr(warmup, "start", record)
    daemon = tmp_path / "daemon.json"
    daemon.write_text(
        '{"registry-mirrors": ["http://10.0.0.5:5000/", "https://mirror.example.com"]}'
    )

    def settings(path: Path) -> RegistrySettings:
        return RegistrySettings(certs_dirs=(), daemon_config=path, warn=lambda _: None)

    for domain in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        started.clear()
        _warm_up(domain, insecure=False, open_cache=lambda: None, settings=lambda: settings(daemon))
        assert started == [("10.0.0.5", 5000)], domain

    started.clear()
    made: list[RegistrySettings] = []

    def made_now() -> RegistrySettings:
        made.append(settings(daemon))
        return made[-1]

    _warm_up("ghcr.io", insecure=False, open_cache=lambda: None, settings=made_now)
    assert started == [("ghcr.io", 443)]
    assert made == [], "another registry's connection does not wait for the settings"

    started.clear()
    broken = settings(tmp_path / "missing.json")
    _warm_up("docker.io", insecure=False, open_cache=lambda: None, settings=lambda: broken)
    assert started == [("registry-1.docker.io", 443), ("auth.docker.io", 443)]
    with pytest.raises(ImginspectError):
        broken.mirrors_for("docker.io")  # still reported where the settings are used


def test_start_for_url_takes_the_scheme_default_port() -> None:
    assert warmup._origin("https://mirror.example.com/prefix/") == ("mirror.example.com", 443)
    assert warmup._origin("http://mirror.example.com") == ("mirror.example.com", 80)
    assert warmup._origin("http://[::1]:5000/") == ("::1", 5000)
    assert warmup._origin("ftp://mirror.example.com") is None
    assert warmup._origin("https://host:badport") is None
