"""imginspect/connections.py and the request path of transport.py over real loopback
servers: connection reuse (one per thread at most, none closed under another thread), the
in-flight cap, a server that closed an idle connection, Content-Encoding decoded within the
bound (a small gzip bomb stays small), request targets and Host headers, and the proxy
routing rules, checked against httpx's own routing of the same patterns."""

from __future__ import annotations

import gzip
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imginspect import connections, http11
from imginspect.connections import Connections, InvalidURLError, Target, proxy_for, proxy_rules
from imginspect.errors import NetworkError, RegistryError, TooLargeError
from imginspect.transport import HttpTransport, Timeouts
from tests.support.badserver import BadServer, Reply, Scenario

DOCUMENT = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}' * 20


def _encoded(name: str, body: bytes, encoding: str) -> Scenario:
    return Scenario(name, manifest=Reply(200, headers=(("Content-Encoding", encoding),), body=body))


@pytest.fixture
def server() -> Iterator[BadServer]:
    scenarios = [
        Scenario("plain", manifest=Reply(200, body=DOCUMENT)),
        _encoded("gzipped", gzip.compress(DOCUMENT), "gzip"),
        _encoded("deflated", zlib.compress(DOCUMENT), "deflate"),
        _encoded("rawdeflate", _raw_deflate(DOCUMENT), "deflate"),
        _encoded("twice", gzip.compress(gzip.compress(DOCUMENT)), "gzip, gzip"),
        _encoded("unknown", DOCUMENT, "br"),
        _encoded("bomb", gzip.compress(b"\0" * (64 * 1024 * 1024)), "gzip"),
        _encoded("broken", b"\x1f\x8b\x08\x00garbage-not-gzip", "gzip"),
        Scenario("closing", manifest=Reply(200, body=DOCUMENT, close=True)),
        Scenario(
            "errbomb",
            manifest=Reply(
                500,
                headers=(("Content-Encoding", "gzip"),),
                body=gzip.compress(b"E" * (8 * 1024 * 1024)),
            ),
        ),
    ]
    with BadServer(scenarios=scenarios) as bad:
        yield bad


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _get(transport: HttpTransport, server: BadServer, name: str, max_bytes: int = 1 << 20) -> bytes:
    response = transport.request(
        "GET", f"{server.url}/v2/{name}/manifests/x", max_bytes=max_bytes, what="manifest"
    )
    assert response.status == 200, response
    return response.body


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("name", ["plain", "gzipped", "deflated", "rawdeflate", "twice"])
def test_content_encodings_are_decoded(server: BadServer, name: str) -> None:
    with HttpTransport() as transport:
        assert _get(transport, server, name) == DOCUMENT
    (request,) = server.requests_for(name)
    assert request.header("accept-encoding") == "gzip, deflate"


def test_an_encoding_not_asked_for_is_left_as_it_is(server: BadServer) -> None:
    with HttpTransport() as transport:
        assert _get(transport, server, "unknown") == DOCUMENT


def test_a_gzip_bomb_is_refused_at_the_bound_after_decoding(server: BadServer) -> None:
    """64 MiB of zeros in ~64 KiB of gzip: refused once the decoded bytes pass the bound,
    without inflating the rest."""
    with HttpTransport() as transport, pytest.raises(TooLargeError) as failure:
        _get(transport, server, "bomb", max_bytes=100_000)
    assert "100000 bytes" in failure.value.message


def test_an_error_body_is_quoted_only_up_to_its_small_bound(server: BadServer) -> None:
    with HttpTransport() as transport:
        response = transport.request(
            "GET",
            f"{server.url}/v2/errbomb/manifests/x",
            max_bytes=1 << 30,
            what="manifest",
            retry=False,
        )
    assert response.status == 500
    assert 0 < len(response.body) <= 64 * 1024


def test_a_body_that_is_not_what_its_encoding_says_is_a_registry_error(
    server: BadServer,
) -> None:
    with HttpTransport() as transport, pytest.raises(RegistryError) as failure:
        _get(transport, server, "broken")
    assert "cannot decode manifest" in failure.value.message


@settings(deadline=None, max_examples=60)
@given(
    st.binary(max_size=5000),
    st.sampled_from(["gzip", "deflate", "rawdeflate"]),
    st.integers(min_value=1, max_value=6000),
)
def test_decoder_output_is_the_input_or_refused_at_the_bound(
    data: bytes, encoding: str, limit: int
) -> None:
    """Every chunking of the encoded body decodes to the original, and the bound holds."""
    from imginspect.transport import _Decoder

    encoded = {
        "gzip": gzip.compress(data),
        "deflate": zlib.compress(data),
        "rawdeflate": _raw_deflate(data),
    }[encoding]
    decoder = _Decoder.for_headers([("content-encoding", encoding.replace("raw", ""))])
    assert decoder is not None
    out = b""
    for start in range(0, len(encoded), 7):
        out += decoder.decode(encoded[start : start + 7], limit - len(out) + 1)
        if len(out) > limit:
            break
    else:
        out += decoder.flush(limit - len(out) + 1)
    if len(data) <= limit:
        assert out == data
    else:
        assert len(out) > limit and data.startswith(out[:limit])


# ---------------------------------------------------------------- connection reuse


def test_sequential_requests_share_one_connection(server: BadServer) -> None:
    with HttpTransport() as transport:
        for _ in range(20):
            assert _get(transport, server, "plain") == DOCUMENT
    assert len(server.connections) == 1


def test_concurrent_requests_never_open_more_connections_than_threads(server: BadServer) -> None:
    with HttpTransport() as transport, ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: _get(transport, server, "plain"), range(400)))
    assert bodies == [DOCUMENT] * 400
    assert 1 <= len(server.connections) <= 8, len(server.connections)
    assert len(server.requests_for("plain")) == 400


def test_a_connection_the_server_closes_is_not_reused(server: BadServer) -> None:
    """``Connection: close`` replies: every request gets a fresh connection, none fails."""
    with HttpTransport() as transport:
        for _ in range(5):
            assert _get(transport, server, "closing") == DOCUMENT
    assert len(server.connections) == 5


def test_an_idle_connection_closed_by_the_server_is_replaced(server: BadServer) -> None:
    with HttpTransport() as transport:
        assert _get(transport, server, "plain") == DOCUMENT
        assert server.wait_idle()
        # What an idle timeout on the server (or a load balancer) does.
        server.drop_connections()
        assert _get(transport, server, "plain") == DOCUMENT
    assert len(server.connections) == 2


def test_in_flight_requests_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every slot taken, a request waits for one, and gives up after its pool timeout
    (a NetworkError through the transport)."""
    monkeypatch.setattr(connections, "MAX_IN_FLIGHT", 1)
    with BadServer(scenarios=[Scenario("plain", manifest=Reply(200, body=DOCUMENT))]) as bad:
        pool = Connections()
        target = Target(f"{bad.url}/v2/plain/manifests/x")

        def send() -> tuple[http11.Response, connections.Release]:
            request = connections.build_request(
                "GET", target, [], body=None, connect_timeout=5, read_timeout=5
            )
            return pool.send(request, target, tls_mode=None, ssl_context=_no_tls, pool_timeout=0.2)

        held, release = send()
        with pytest.raises(http11.PoolTimeout):
            send()
        assert b"".join(held.stream) == DOCUMENT  # read to the end: the connection can be reused
        release()
        again, release_again = send()  # the slot is free again, and the connection reused
        assert again.status == 200
        release_again()
        pool.close()
        assert len(bad.connections) == 1


def _no_tls() -> ssl.SSLContext:
    raise AssertionError("a plain-HTTP request must not build a TLS context")


def test_a_slot_timeout_through_the_transport_is_a_network_error(
    monkeypatch: pytest.MonkeyPatch, server: BadServer
) -> None:
    monkeypatch.setattr(connections, "MAX_IN_FLIGHT", 1)
    release_server, arrived = threading.Event(), threading.Event()

    def hold(request: object) -> Reply:
        arrived.set()
        release_server.wait(10)
        return Reply(200, body=DOCUMENT)

    server.add(Scenario("held", manifest=hold))
    with HttpTransport(timeouts=Timeouts(connect=0.3, read=10)) as transport:
        holder = threading.Thread(target=lambda: _get(transport, server, "held"), daemon=True)
        holder.start()
        assert arrived.wait(10)
        try:
            with pytest.raises(NetworkError) as failure:
                transport.request(
                    "GET",
                    f"{server.url}/v2/plain/manifests/x",
                    max_bytes=1000,
                    what="manifest",
                    retry=False,
                )
            assert "PoolTimeout" in failure.value.message
        finally:
            release_server.set()
            holder.join(10)


# ---------------------------------------------------------------- request targets


@pytest.mark.parametrize(
    ("url", "host_header", "target"),
    [
        ("http://r.example/v2/", "r.example", "/v2/"),
        ("https://r.example:443/v2/", "r.example", "/v2/"),
        (
            "https://r.example:5000/v2/a/tags/list?n=10&last=b",
            "r.example:5000",
            "/v2/a/tags/list?n=10&last=b",
        ),
        ("http://[::1]:5000/v2/", "[::1]:5000", "/v2/"),
        ("http://R.Example", "r.example", "/"),
        # a Location header's spaces and non-ASCII text are percent-encoded, %XX kept
        ("https://cdn.example/a b/é?x=1 2&y=%41", "cdn.example", "/a%20b/%C3%A9?x=1%202&y=%41"),
        ("https://bücher.example/", "xn--bcher-kva.example", "/"),
    ],
)
def test_targets(url: str, host_header: str, target: str) -> None:
    parsed = Target(url)
    assert (parsed.host_header, parsed.target) == (host_header, target)


@pytest.mark.parametrize(
    "url", ["ftp://r.example/", "http:///v2/", "http://r.example:99999/", "http://r.example:x/"]
)
def test_invalid_urls(url: str) -> None:
    with pytest.raises(InvalidURLError):
        Target(url)


def test_an_invalid_redirect_target_is_a_registry_error(server: BadServer) -> None:
    server.add(Scenario("badloc", manifest=Reply(307, headers=(("Location", "http://x:99999/"),))))
    with HttpTransport() as transport, pytest.raises(RegistryError):
        transport.request(
            "GET",
            f"{server.url}/v2/badloc/manifests/x",
            max_bytes=1000,
            what="manifest",
            follow_redirects=True,
        )


# ---------------------------------------------------------------- proxy routing

_PATTERNS = st.lists(
    st.tuples(
        st.sampled_from(["http", "https", "all"]),
        st.sampled_from(
            ["", "r.example", "*r.example", "*.r.example", "*", "127.0.0.1", "[::1]", "x.y"]
        ),
        st.sampled_from([None, 80, 443, 5000]),
    ),
    max_size=5,
    unique=True,
)
_URLS = st.tuples(
    st.sampled_from(["http", "https"]),
    st.sampled_from(["r.example", "a.r.example", "xr.example", "127.0.0.1", "[::1]", "x.y"]),
    st.sampled_from([None, 80, 443, 5000]),
)


class _Recorder(httpx.BaseTransport):
    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(self.name)
        return httpx.Response(204)


@settings(deadline=None, max_examples=300)
@given(_PATTERNS, _URLS)
def test_proxy_routing_is_httpx_routing(
    patterns: list[tuple[str, str, int | None]], url: tuple[str, str, int | None]
) -> None:
    """Which proxy (or none) a URL goes to, as httpx's Client decides for the same mounts
    (public API: the mounted transport that receives the request tells)."""
    keys = [f"{s}://{h}" + (f":{p}" if p is not None and h else "") for s, h, p in patterns]
    mounts = {key: f"http://proxy{i}.example" for i, key in enumerate(keys)}
    scheme, host, port = url
    full = f"{scheme}://{host}" + (f":{port}" if port is not None else "") + "/v2/"
    seen: list[str] = []
    with httpx.Client(
        transport=_Recorder("direct", seen),
        mounts={key: _Recorder(proxy, seen) for key, proxy in mounts.items()},
        trust_env=False,
    ) as client:
        client.get(full)
    ours = proxy_for(proxy_rules(mounts), Target(full)) or "direct"
    assert seen == [ours]


# ---------------------------------------------------------------- streams and headers


def test_socket_failures_become_the_errors_the_transport_maps() -> None:
    """What the transport catches is what a connection raises, on a warm-up socket as on one
    opened here: a read timeout, a reset peer, a TLS handshake with a server that does not
    speak TLS (a ConnectError, chained to the ssl error the transport's hints read)."""
    import ssl

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        connection = http11.Connection(socket.create_connection(("127.0.0.1", port)))
        peer, _ = listener.accept()
        with pytest.raises(http11.ReadTimeout):
            connection.request(
                "GET", "/", [(b"Host", b"x")], None, read_timeout=0.05, write_timeout=5
            )
        assert connection.is_closed()
        peer.close()

        connection = http11.Connection(socket.create_connection(("127.0.0.1", port)))
        peer, _ = listener.accept()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        peer.close()  # a reset, not a clean close
        with pytest.raises((http11.ReadError, http11.WriteError, http11.RemoteProtocolError)):
            connection.request(
                "GET",
                "/",
                [(b"Host", b"x"), (b"X", b"y" * 65536)],
                None,
                read_timeout=5,
                write_timeout=5,
            )

        pool = Connections()
        answer = threading.Thread(target=lambda: _answer_not_tls(listener), daemon=True)
        answer.start()
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        target = Target(f"https://127.0.0.1:{port}/v2/")
        request = connections.build_request(
            "GET", target, [], body=None, connect_timeout=5, read_timeout=5
        )
        with pytest.raises(http11.ConnectError) as failure:
            pool.send(request, target, tls_mode=False, ssl_context=lambda: context, pool_timeout=5)
        assert isinstance(failure.value.__cause__, ssl.SSLError)
        answer.join(5)
        pool.close()


def _answer_not_tls(listener: socket.socket) -> None:
    plain, _ = listener.accept()
    with plain:
        plain.settimeout(5)
        plain.recv(4096)
        plain.sendall(b"HTTP/1.1 400 Bad\r\n\r\n")


def test_header_values_with_line_breaks_are_never_sent() -> None:
    target = Target("http://127.0.0.1:1/v2/")
    for name, value in (("X-A", "a\r\nInjected: 1"), ("X A", "b"), ("", "c"), ("X-B", "d\ne")):
        with pytest.raises(ValueError, match="invalid header"):
            connections.build_request(
                "GET", target, [(name, value)], body=None, connect_timeout=1, read_timeout=1
            )


def test_response_headers_decode_as_httpx_decodes_them() -> None:
    from imginspect.connections import decode_headers

    assert decode_headers([(b"Content-Type", b"a/b")]) == (("content-type", "a/b"),)
    assert decode_headers([(b"X-Name", "é".encode())]) == (("x-name", "é"),)
    assert decode_headers([(b"X-Name", b"\xe9")]) == (("x-name", "é"),)  # Latin-1


def test_a_proxy_pattern_without_a_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid proxy pattern"):
        proxy_rules({"example.com": None})


def test_a_tls_context_that_cannot_be_built_closes_the_socket_and_frees_the_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The TLS context is built when the first https connection opens; when that fails (a
    certs.d directory that cannot be used raises a ConfigError), the connected socket is
    closed, not leaked, and the request's slot is given back."""
    monkeypatch.setattr(connections, "MAX_IN_FLIGHT", 1)
    pool = Connections()

    def broken() -> ssl.SSLContext:
        raise RegistryError("certs.d is broken")

    with socket.create_server(("127.0.0.1", 0)) as listener:
        target = Target(f"https://127.0.0.1:{listener.getsockname()[1]}/v2/")
        request = connections.build_request(
            "GET", target, [], body=None, connect_timeout=5, read_timeout=5
        )
        for _ in range(2):  # the second would wait for the slot if the first kept it
            with pytest.raises(RegistryError, match="is broken") as failure:
                pool.send(request, target, tls_mode=True, ssl_context=broken, pool_timeout=0.5)
            peer, _ = listener.accept()
            with peer:
                peer.settimeout(2)
                # closed by the client, nothing sent: not left to the garbage collector
                # (the traceback kept here still holds the frame that opened it)
                assert peer.recv(10) == b""
            assert failure.traceback
    pool.close()


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [("X-Token", "a\r\nInjected: 1", "invalid header"), ("X-Token", "é", "not ASCII")],
)
def test_a_header_that_cannot_be_sent_is_a_registry_error(
    name: str, value: str, reason: str
) -> None:
    """Nothing goes on the wire (no server here: a connect would fail differently)."""
    with HttpTransport() as transport, pytest.raises(RegistryError, match=reason):
        transport.request(
            "GET", "http://127.0.0.1:9/v2/", headers={name: value}, max_bytes=100, what="probe"
        )


def test_a_proxied_body_cut_short_is_a_network_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a proxy (httpcore's pool), a failure while the body is read is mapped like a
    direct one: the connection broke, a NetworkError naming what was fetched."""
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.lower(), raising=False)
    seen: list[bytes] = []

    def proxy(listener: socket.socket) -> None:
        peer, _ = listener.accept()
        with peer:
            peer.settimeout(5)
            seen.append(peer.recv(65536).split(b"\r\n", 1)[0])
            peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")

    with socket.create_server(("127.0.0.1", 0)) as listener:
        thread = threading.Thread(target=proxy, args=(listener,), daemon=True)
        thread.start()
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{listener.getsockname()[1]}")
        with HttpTransport() as transport, pytest.raises(NetworkError) as failure:
            transport.request(
                "GET", "http://registry.invalid/v2/", max_bytes=1000, what="probe", retry=False
            )
        thread.join(5)
    assert seen == [b"GET http://registry.invalid/v2/ HTTP/1.1"]
    assert "while fetching probe" in failure.value.message, failure.value.message


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.lower(), raising=False)
    return monkeypatch


def _answer_once(listener: socket.socket, seen: list[bytes], wrap: ssl.SSLContext | None) -> None:
    peer, _ = listener.accept()
    try:
        if wrap is not None:
            peer = wrap.wrap_socket(peer, server_side=True)
        peer.settimeout(5)
        seen.append(peer.recv(65536).split(b"\r\n", 1)[0])
        peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    except OSError:
        pass  # the client refused the handshake: nothing seen
    finally:
        peer.close()


def test_an_https_proxy_is_verified_against_the_system_store(
    no_proxy_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A corporate https:// proxy whose CA the operating system trusts is verified with the
    system's store (truststore: the macOS and Windows verifiers too), not with httpcore's
    default context (certifi's bundle and OpenSSL's paths, which do not have it: here they
    point at nothing); a proxy the system's store does not trust is refused."""
    import trustme

    import imginspect.trust

    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    (tmp_path / "empty").mkdir()
    no_proxy_env.setenv("SSL_CERT_FILE", str(tmp_path / "empty" / "none.pem"))
    no_proxy_env.setenv("SSL_CERT_DIR", str(tmp_path / "empty"))
    for trusted in (True, False):

        def system_store(trusted: bool = trusted) -> ssl.SSLContext:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if trusted:
                ca.configure_trust(context)  # the corporate CA, installed in the OS store
            return context

        no_proxy_env.setattr(imginspect.trust, "system_trust_context", system_store)
        seen: list[bytes] = []
        with socket.create_server(("127.0.0.1", 0)) as listener:
            thread = threading.Thread(
                target=_answer_once, args=(listener, seen, server_context), daemon=True
            )
            thread.start()
            no_proxy_env.setenv("HTTP_PROXY", f"https://127.0.0.1:{listener.getsockname()[1]}")
            with HttpTransport() as transport:
                if trusted:
                    response = transport.request(
                        "GET", "http://registry.invalid/v2/", max_bytes=100, what="probe"
                    )
                    assert (response.status, response.body) == (200, b"ok")
                else:
                    with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
                        transport.request(
                            "GET", "http://registry.invalid/v2/", max_bytes=100, what="probe"
                        )
            thread.join(5)
        assert seen == ([b"GET http://registry.invalid/v2/ HTTP/1.1"] if trusted else [])


def test_a_plain_http_target_through_an_http_proxy_builds_no_tls_context(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    """Forwarded in the clear: neither the system's store nor any TLS context is loaded."""
    import imginspect.trust

    def refuse() -> ssl.SSLContext:
        raise AssertionError("a TLS context was built for a plain-HTTP request")

    no_proxy_env.setattr(imginspect.trust, "system_trust_context", refuse)
    seen: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        thread = threading.Thread(target=_answer_once, args=(listener, seen, None), daemon=True)
        thread.start()
        no_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{listener.getsockname()[1]}")
        with HttpTransport() as transport:
            response = transport.request(
                "GET", "http://registry.invalid/v2/", max_bytes=100, what="probe", retry=False
            )
        thread.join(5)
    assert (response.status, response.body) == (200, b"ok")
    assert seen == [b"GET http://registry.invalid/v2/ HTTP/1.1"]


def test_a_warm_tls_socket_the_server_closed_before_use_is_replaced(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    """A server (or load balancer) that closes a connection on which nothing was sent for a
    while closed the warm-up's socket before the first request: the request goes on a new
    connection. A TLS handshake on the closed one fails with an ssl.SSLError, which the
    transport takes for a permanent failure and does not retry: the whole request failed."""
    import select

    import trustme

    from imginspect import warmup

    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_context)
    seen: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        assert warmup.start("127.0.0.1", port)
        try:
            (attempt,) = warmup._attempts[("127.0.0.1", port)]
            assert attempt.done.wait(5) and attempt.sock is not None
            first, _ = listener.accept()
            first.close()  # its timeout for a connection that sends nothing fired
            # the client's side has seen the close
            assert select.select([attempt.sock], [], [], 5)[0]
            thread = threading.Thread(
                target=_answer_once, args=(listener, seen, server_context), daemon=True
            )
            thread.start()
            pool = Connections()
            target = Target(f"https://127.0.0.1:{port}/v2/")
            request = connections.build_request(
                "GET", target, [], body=None, connect_timeout=5, read_timeout=5
            )
            connections.reset_opened()
            response, release = pool.send(
                request, target, tls_mode=True, ssl_context=lambda: client_context, pool_timeout=5
            )
            assert (response.status, b"".join(response.stream)) == (200, b"ok")
            release()
            pool.close()
            thread.join(5)
            # a connection opened for the request: a failure on it is not taken for a stale one
            assert connections.opened_since_reset() == 1
            assert connections.warm_taken_since_reset() is None
        finally:
            warmup.discard()
    assert seen == [b"GET /v2/ HTTP/1.1"]
