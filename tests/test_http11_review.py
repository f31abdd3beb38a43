"""Bugs a review of the HTTP/1.1 client found outside http11.py and connections.py, each shown
with a real loopback server or real bytes: a reused connection is not sent the request again
once part of a response came (transport.py), a host's dead addresses end at the deadline
(dial.py), a body encoded twice decodes whole within the bound (transport.py)."""

from __future__ import annotations

import gzip
import os
import socket
import ssl
import threading
import time
from typing import Any

import pytest

from imginspect import connections, http11
from imginspect.connections import Connections, Target, deadline
from imginspect.errors import NetworkError
from imginspect.transport import HttpTransport

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.lower(), raising=False)
    return monkeypatch


def _read_request(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return b""
        data += more
    return data


def test_a_reused_connection_that_breaks_after_part_of_a_head_is_not_retried(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    """The stale-connection retry is for a connection the server closed while it was idle:
    nothing of a response came. Once part of one came, the server did get and answer the
    request; it is not sent again (Go's net/http retries only before the first byte), even
    with ``retry=False``."""
    requests: list[bytes] = []
    connections_seen: list[int] = []
    done = threading.Event()

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def serve() -> None:
            first, _ = listener.accept()
            connections_seen.append(1)
            with first:
                first.settimeout(5)
                requests.append(_read_request(first))
                first.sendall(OK)
                requests.append(_read_request(first))
                first.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")  # then the connection breaks
            listener.settimeout(0.05)
            while not done.is_set():  # a second connection, until the test is over
                try:
                    second, _ = listener.accept()
                    break
                except TimeoutError:
                    continue
            else:
                return
            connections_seen.append(2)
            with second:
                second.settimeout(5)
                requests.append(_read_request(second))
                second.sendall(OK)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v2/"
        with HttpTransport() as transport:
            assert transport.request("GET", url, max_bytes=100, what="probe").body == b"ok"
            try:
                with pytest.raises(NetworkError, match="complete response head"):
                    transport.request("GET", url, max_bytes=100, what="probe", retry=False)
            finally:
                done.set()
                thread.join(10)
    assert len(requests) == 2 and len(connections_seen) == 1


def test_connecting_to_a_host_with_several_dead_addresses_ends_at_the_deadline(
    blackholed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry name with several addresses (A records, or AAAA and A with a broken IPv6
    route), none of which answers: connecting gives up when the deadline passes, not once
    per address."""
    real = socket.getaddrinfo

    def three_addresses(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("three.test", b"three.test"):
            return real("127.0.0.1", port, *args, **kwargs) * 6
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", three_addresses)
    pool = Connections()
    target = Target(f"http://three.test:{blackholed_port}/v2/")
    request = connections.build_request(
        "GET", target, [], body=None, connect_timeout=10, read_timeout=10
    )
    started = time.monotonic()
    with deadline(0.5), pytest.raises(http11.ConnectTimeout):
        pool.send(request, target, tls_mode=None, ssl_context=_no_tls, pool_timeout=5)
    # 0.5 s for each of the 6 addresses was 3 s: a wide margin for a loaded machine
    assert time.monotonic() - started < 2.0
    pool.close()


def _no_tls() -> ssl.SSLContext:
    raise AssertionError("a plain-HTTP request must not build a TLS context")


def test_a_body_gzipped_twice_within_the_bound_decodes_whole() -> None:
    """``Content-Encoding: gzip, gzip`` of incompressible data a little under the bound: the
    outer step's output (the inner gzip stream) is a little larger than the data, passes the
    bound, and the input it held back was dropped: the body came out short, without error."""
    from imginspect.transport import _Decoder

    data = os.urandom(50_000)
    encoded = gzip.compress(gzip.compress(data))
    decoder = _Decoder.for_headers([("content-encoding", "gzip, gzip")])
    assert decoder is not None
    out = b""
    for start in range(0, len(encoded), 8192):
        out += decoder.decode(encoded[start : start + 8192], len(data) - len(out) + 1)
    out += decoder.flush(len(data) - len(out) + 1)
    assert out == data
