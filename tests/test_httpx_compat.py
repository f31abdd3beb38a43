"""imginspect/_httpx_compat.py: the deadline backend under every connection, proxies from the
environment included, through httpx's public API; the start-up trim of httpx._main, and
its loud failure (IMGINSPECT_STRICT_COMPAT) when an httpx no longer tolerates it; the
plain headers of transport.Response."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imginspect import _httpx_compat as compat
from imginspect.errors import NetworkError
from imginspect.transport import HttpTransport, Response, Timeouts, deadline

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.lower() in _PROXY_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv(compat.STRICT_ENV, "1")
    return monkeypatch


# ---------------------------------------------------------------- a proxy that trickles


class _TricklingProxy:
    """A loopback HTTP proxy that reads a request (forward or CONNECT), records its request
    line, then answers one byte every 50 ms for up to ``seconds``: httpcore's read timeout
    restarts at every byte, so only the deadline backend can cut it short."""

    def __init__(self, seconds: float = 8.0) -> None:
        self.seconds = seconds
        self.requests: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.requests.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
            answer = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000
            ends = time.monotonic() + self.seconds
            try:
                for byte in answer:
                    if self._stop.is_set() or time.monotonic() > ends:
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(0.05)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def trickling_proxy() -> Iterator[_TricklingProxy]:
    proxy = _TricklingProxy()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.mark.parametrize(
    ("variable", "url", "request_line"),
    [
        # plain http: the proxy forwards the request (absolute URL in the request line)
        ("HTTP_PROXY", "http://registry.invalid/v2/", "GET http://registry.invalid/v2/ HTTP/1.1"),
        # https: a CONNECT tunnel, whose answer trickles
        ("HTTPS_PROXY", "https://registry.invalid/v2/", "CONNECT registry.invalid:443 HTTP/1.1"),
        ("ALL_PROXY", "http://registry.invalid/v2/", "GET http://registry.invalid/v2/ HTTP/1.1"),
    ],
)
def test_a_proxy_from_the_environment_gets_the_deadline_backend(
    clean_proxy_env: pytest.MonkeyPatch,
    trickling_proxy: _TricklingProxy,
    variable: str,
    url: str,
    request_line: str,
) -> None:
    clean_proxy_env.setenv(variable, trickling_proxy.url)
    transport = HttpTransport(timeouts=Timeouts(connect=5.0, read=5.0))
    started = time.monotonic()
    with transport, deadline(0.5), pytest.raises(NetworkError) as failure:
        transport.request("GET", url, max_bytes=1000, what="probe", retry=False)
    elapsed = time.monotonic() - started
    assert trickling_proxy.requests == [request_line]  # it went through the proxy
    assert "deadline" in failure.value.message, failure.value.message
    # The proxy trickles for 8 s, each byte within the 5 s read timeout: only the deadline
    # backend under the proxy's connection stops it at 0.5 s (generous margin for CI).
    assert elapsed < 4.0, elapsed


def test_no_proxy_connects_directly_through_the_backend(
    clean_proxy_env: pytest.MonkeyPatch, trickling_proxy: _TricklingProxy
) -> None:
    """A NO_PROXY host is reached directly: here the trickling server is the origin itself,
    and the deadline still holds (the direct transport has the backend too)."""
    clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # would refuse: not used
    clean_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    transport = HttpTransport(timeouts=Timeouts(connect=5.0, read=5.0))
    started = time.monotonic()
    with transport, deadline(0.5), pytest.raises(NetworkError) as failure:
        transport.request(
            "GET", f"{trickling_proxy.url}/v2/", max_bytes=1000, what="probe", retry=False
        )
    assert trickling_proxy.requests == ["GET /v2/ HTTP/1.1"]
    assert "deadline" in failure.value.message, failure.value.message
    assert time.monotonic() - started < 4.0


def test_environment_proxies_follow_httpx_rules(clean_proxy_env: pytest.MonkeyPatch) -> None:
    clean_proxy_env.setenv("HTTPS_PROXY", "proxy.example:3128")
    clean_proxy_env.setenv("HTTP_PROXY", "http://user:pw@proxy.example:8080")
    clean_proxy_env.setenv(
        "NO_PROXY", "localhost, 10.0.0.1,::1,.corp.example,registry.example,http://x.example"
    )
    assert compat.environment_proxies() == {
        "http://": "http://user:pw@proxy.example:8080",
        "https://": "http://proxy.example:3128",
        "all://localhost": None,
        "all://10.0.0.1": None,
        "all://[::1]": None,
        "all://*.corp.example": None,
        "all://*registry.example": None,
        "http://x.example": None,
    }
    clean_proxy_env.setenv("NO_PROXY", "registry.example,*")
    assert compat.environment_proxies() == {}


def test_an_unusable_proxy_is_a_network_error(clean_proxy_env: pytest.MonkeyPatch) -> None:
    clean_proxy_env.setenv("HTTPS_PROXY", "ftp://proxy.example:21")
    with HttpTransport() as transport, pytest.raises(NetworkError) as failure:
        transport.request("GET", "https://registry.invalid/v2/", max_bytes=10, what="probe")
    assert "proxy" in failure.value.message


# ---------------------------------------------------------------- the start-up trim


def _python(code: str, *, env: dict[str, str], pythonpath: str | None = None) -> str:
    full = {k: v for k, v in os.environ.items() if k != compat.STRICT_ENV}
    full.update(env)
    if pythonpath is not None:
        full["PYTHONPATH"] = pythonpath + os.pathsep + full.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    return f"rc={done.returncode}\n{done.stdout}{done.stderr}"


_PROBE = textwrap.dedent(
    """
    import sys
    from imginspect import _httpx_compat as compat
    httpx = compat.load_httpx()
    print("trimmed", compat.TRIMMED, "cli-loaded", "httpx._main" in sys.modules)
    import httpx._main  # still importable by anyone who wants it
    print("ok", httpx.Client)
    """
)


def test_the_trim_takes_effect_and_leaves_httpx_main_importable() -> None:
    out = _python(_PROBE, env={compat.STRICT_ENV: "1"})
    assert "rc=0" in out and "trimmed True cli-loaded False" in out and "ok " in out, out


@pytest.fixture
def httpx_without_the_guard(tmp_path: Path) -> str:
    """An httpx whose package __init__ imports httpx._main unguarded: the real httpx, with
    one more line first."""
    import httpx

    real = Path(httpx.__file__).parent
    package = tmp_path / "httpx"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            f"""
            __path__.append({str(real)!r})
            from ._main import main  # no `except ImportError` any more
            exec(compile(open({str(real / "__init__.py")!r}).read(), __file__, "exec"))
            """
        )
    )
    return str(tmp_path)


def test_strict_mode_fails_loudly_when_httpx_no_longer_tolerates_the_trim(
    httpx_without_the_guard: str,
) -> None:
    out = _python(_PROBE, env={compat.STRICT_ENV: "1"}, pythonpath=httpx_without_the_guard)
    assert "rc=1" in out and "CompatibilityError" in out and "httpx._main" in out, out


def test_without_strict_mode_httpx_is_imported_untrimmed(httpx_without_the_guard: str) -> None:
    out = _python(_PROBE, env={compat.STRICT_ENV: "0"}, pythonpath=httpx_without_the_guard)
    assert "rc=0" in out and "trimmed False cli-loaded True" in out and "ok " in out, out


# ---------------------------------------------------------------- plain headers


def test_response_headers_are_plain_pairs() -> None:
    headers = Response.header_pairs(
        [
            ("WWW-Authenticate", 'Basic realm="a"'),
            ("Content-Type", "x/y"),
            ("www-authenticate", "B"),
        ]
    )
    response = Response(401, headers, b"", "https://r/v2/")
    assert headers == (
        ("www-authenticate", 'Basic realm="a"'),
        ("content-type", "x/y"),
        ("www-authenticate", "B"),
    )
    assert response.header_list("Www-Authenticate") == ['Basic realm="a"', "B"]
    assert response.header("WWW-AUTHENTICATE") == 'Basic realm="a", B'
    assert response.header("content-type") == "x/y"
    assert response.header("location") is None and response.header_list("location") == []
    hash(response)  # immutable all the way down


def test_no_proxy_variables_means_no_urllib_request(clean_proxy_env: pytest.MonkeyPatch) -> None:
    """Without a *_proxy variable the answer is urllib's (empty), without importing
    urllib.request (http.client, email: a cold start's 15 ms); with one, urllib decides."""
    code = (
        "import sys\n"
        "from imginspect import _httpx_compat as c\n"
        "print(c.environment_proxies(), 'urllib.request' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "{} False"
    env["no_proxy"] = "example.com"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "{'all://*example.com': None} True"


# ---------------------------------------------------------------- review: proxy selection and use


class _AnsweringProxy:
    """A loopback HTTP proxy that records each request's head (forward or CONNECT) and
    answers it with ``status`` and an empty body, then closes."""

    def __init__(self, status: bytes) -> None:
        self.status = status
        self.heads: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://user:s3cret@127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.heads.append(data.split(b"\r\n\r\n", 1)[0].decode("latin-1"))
                conn.sendall(b"HTTP/1.1 " + self.status + b"\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def proxy_407() -> Iterator[_AnsweringProxy]:
    proxy = _AnsweringProxy(b"407 Proxy Authentication Required")
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.mark.parametrize(
    "url",
    ["https://registry.invalid/v2/", "http://registry.invalid:5000/v2/"],
    ids=["connect", "forward"],
)
def test_a_proxy_refusing_is_a_proxy_error_whatever_the_scheme(
    clean_proxy_env: pytest.MonkeyPatch, proxy_407: _AnsweringProxy, url: str
) -> None:
    """A 407 answer is the proxy's (RFC 9110: only a proxy sends it). To a CONNECT httpcore
    raised it (a network failure, exit 5); to a forwarded plain-http request it was taken for
    the registry's answer ("unexpected HTTP 407 from registry.invalid:5000", exit 1)."""
    clean_proxy_env.setenv("HTTP_PROXY", proxy_407.url)
    clean_proxy_env.setenv("HTTPS_PROXY", proxy_407.url)
    with HttpTransport() as transport, pytest.raises(NetworkError) as failure:
        transport.request("GET", url, max_bytes=1000, what="probe", retry=False)
    message = failure.value.message
    assert "proxy" in message and "407" in message, message
    assert "s3cret" not in message and "user" not in message, message
    assert int(failure.value.exit_code) == 5
    assert "Proxy-Authorization: Basic dXNlcjpzM2NyZXQ=" in proxy_407.heads[0]


@pytest.mark.parametrize(
    ("url", "request_line"),
    [
        ("https://[2001:db8::1]:5000/v2/", "CONNECT [2001:db8::1]:5000 HTTP/1.1"),
        ("http://[2001:db8::1]:5000/v2/", "GET http://[2001:db8::1]:5000/v2/ HTTP/1.1"),
        ("https://[2001:db8::1]/v2/", "CONNECT [2001:db8::1]:443 HTTP/1.1"),
    ],
)
def test_an_ipv6_registry_through_a_proxy_is_bracketed(
    clean_proxy_env: pytest.MonkeyPatch, proxy_407: _AnsweringProxy, url: str, request_line: str
) -> None:
    """RFC 9112's authority form: was ``CONNECT 2001:db8::1:5000``, which a proxy cannot
    split into host and port (Go sends ``[2001:db8::1]:5000``)."""
    clean_proxy_env.setenv("HTTP_PROXY", proxy_407.url)
    clean_proxy_env.setenv("HTTPS_PROXY", proxy_407.url)
    with HttpTransport() as transport, pytest.raises(NetworkError):
        transport.request("GET", url, max_bytes=1000, what="probe", retry=False)
    assert proxy_407.heads[0].split("\r\n")[0] == request_line
    if request_line.startswith("CONNECT"):
        assert f"Host: {request_line.split()[1]}" in proxy_407.heads[0]


def test_an_unusable_all_proxy_that_no_request_would_use_is_ignored(
    clean_proxy_env: pytest.MonkeyPatch, proxy_407: _AnsweringProxy
) -> None:
    """HTTP_PROXY and HTTPS_PROXY cover every request: an ALL_PROXY (a SOCKS proxy, as
    desktop settings export it) is never used, and Go's httpproxy does not read it at all.
    It refused every run ("cannot use the proxy the environment names", exit 5)."""
    clean_proxy_env.setenv("HTTP_PROXY", proxy_407.url)
    clean_proxy_env.setenv("HTTPS_PROXY", proxy_407.url)
    clean_proxy_env.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with HttpTransport() as transport, pytest.raises(NetworkError) as failure:
        transport.request(
            "GET", "https://registry.invalid/v2/", max_bytes=1000, what="probe", retry=False
        )
    assert "407" in failure.value.message, failure.value.message
    assert proxy_inspected(proxy_407) == ["CONNECT registry.invalid:443 HTTP/1.1"]
    # alone, it is still refused, clearly
    clean_proxy_env.delenv("HTTP_PROXY")
    with HttpTransport() as transport, pytest.raises(NetworkError) as failure:
        transport.request(
            "GET", "https://registry.invalid/v2/", max_bytes=1000, what="probe", retry=False
        )
    assert "socks5" in failure.value.message


def proxy_inspected(proxy: _AnsweringProxy) -> list[str]:
    return [head.split("\r\n")[0] for head in proxy.heads]


@pytest.mark.parametrize(
    ("no_proxy", "host", "direct"),
    [
        ("*.corp.example", "registry.corp.example", True),  # was proxied: pattern "**.corp..."
        ("*.corp.example", "a.b.corp.example", True),
        ("*.corp.example", "corp.example", False),  # as Go: "*.y.com" is ".y.com"
        ("*.corp.example", "notcorp.example", False),
        (".corp.example", "registry.corp.example", True),
        (".corp.example", "corp.example", False),
        ("corp.example", "corp.example", True),
        ("corp.example", "registry.corp.example", True),
        ("CORP.Example", "registry.corp.example", True),
        ("corp.example", "notcorp.example", False),
    ],
)
def test_no_proxy_domains_as_go(
    clean_proxy_env: pytest.MonkeyPatch, no_proxy: str, host: str, direct: bool
) -> None:
    from imginspect.connections import Target, proxy_for, proxy_rules

    clean_proxy_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    clean_proxy_env.setenv("NO_PROXY", f"other.example, {no_proxy}")
    rules = proxy_rules(compat.environment_proxies())
    proxy = proxy_for(rules, Target(f"https://{host}/v2/"))
    assert (proxy is None) == direct, (compat.environment_proxies(), host)
