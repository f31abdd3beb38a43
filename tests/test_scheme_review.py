"""Scheme negotiation for insecure registries whose port speaks TLS, when http looks like it.

The https attempt can fail on a registry whose port does speak TLS: a connection closed
during the handshake (a server restarting, a balancer without a backend) reads as a TLS
failure for good. Then plain http is tried, as the Docker daemon does, and its answer tells
whether http is the scheme: a request it refuses, hangs up on, answers with "this port speaks
TLS" or redirects to the same URL over https must not leave http behind as the registry's
scheme, in the run or in the cache. And a registry that moved from http to https while the
cache still says http is negotiated again, whichever of those its plain answer is.

The registry is the real TLS registry behind :class:`TlsFront`, a loopback TCP front that can
drop the next TLS handshakes and chooses what a plain-HTTP connection gets.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from imginspect.auth import Credential
from imginspect.cache import Cache
from imginspect.errors import ImginspectError, NetworkError
from imginspect.registry import RegistryClient
from imginspect.transport import HttpTransport, deadline
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

THREAD_NAME = "imginspect-plain-http"

#: what a plain-HTTP connection to the front gets: passed to the TLS registry (Go answers it
#: with a 400 that says the port speaks TLS), hung up on at once (as TLS servers other than
#: Go's and nginx's do), or a 302 to the same URL over https on this same port (nginx's
#: ``error_page 497 https://$host:$server_port$request_uri``)
PlainMode = Literal["forward", "close", "redirect"]


class TlsFront:
    """Loopback TCP front for ``upstream`` (a TLS registry): TLS connections go through, but
    the next ``drop_tls`` ones are closed (FIN) as soon as their ClientHello arrived: the
    client's handshake meets EOF. Plain connections get ``plain`` (see :data:`PlainMode`)."""

    def __init__(self, upstream: str, *, plain: PlainMode, drop_tls: int = 0) -> None:
        self._upstream = upstream
        self._plain = plain
        self._lock = threading.Lock()
        self.drop_tls = drop_tls
        #: TLS connections seen, dropped ones included
        self.tls_connections = 0
        #: what each plain connection sent first
        self.plain_sent: list[bytes] = []
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.netloc = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> TlsFront:
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            with self._lock:
                self._sockets.add(client)
            first = client.recv(65536)
            if not first:
                return
            tls = first[:1] == b"\x16"
            with self._lock:
                if tls:
                    self.tls_connections += 1
                    drop, self.drop_tls = self.drop_tls > 0, max(0, self.drop_tls - 1)
                else:
                    self.plain_sent.append(first)
                    drop = self._plain == "close"
            if drop:
                return
            if not tls and self._plain == "redirect":
                target = first.split(b" ", 2)[1].decode("ascii")
                client.sendall(
                    b"HTTP/1.1 302 Found\r\nLocation: https://%s%s\r\n"
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                    % (self.netloc.encode(), target.encode())
                )
                return
            host, _, port = self._upstream.rpartition(":")
            upstream = socket.create_connection((host, int(port)), timeout=10)
            with self._lock:
                self._sockets.add(upstream)
            upstream.sendall(first)
            _pump(client, upstream)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()


def _pump(client: socket.socket, upstream: socket.socket) -> None:
    peers = {client: upstream, upstream: client}
    while True:
        readable, _, _ = select.select(list(peers), [], [], 30)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            peers[sock].sendall(data)


@pytest.fixture(autouse=True)
def _no_thread_left() -> Iterator[None]:
    """The speculative plain request's thread always ends."""
    yield
    for thread in threading.enumerate():
        if thread.name == THREAD_NAME:
            thread.join(10)
            assert not thread.is_alive(), "the plain-http thread did not end"


def test_a_failed_negotiation_leaves_no_unverified_http_behind(
    registry_tls: Registry, corpus_tls: dict[str, PushedImage]
) -> None:
    """The first handshake meets EOF (a TLS failure for good, so http is shared at once) and
    the plain request is hung up on: the negotiation fails, with no scheme found. The next
    request negotiates again and gets https, which works now; it is not sent over the http
    that nothing confirmed."""
    image = corpus_tls["schema2"]
    with (
        TlsFront(registry_tls.host, plain="close", drop_tls=1) as front,
        HttpTransport() as transport,
    ):
        client = RegistryClient(front.netloc, transport, insecure=True)
        with deadline(30), pytest.raises(NetworkError):
            client.get_manifest(image.repo, image.tag)  # both schemes failed
        with deadline(30):
            fetched = client.get_manifest(image.repo, image.tag)
        tls_connections = front.tls_connections
    assert fetched.digest == image.digest
    assert tls_connections == 2  # the dropped handshake, then the one that worked


@pytest.mark.parametrize("plain", ["forward", "redirect"])
def test_an_http_answer_that_says_the_port_speaks_tls_is_not_remembered(
    registry_tls: Registry, corpus_tls: dict[str, PushedImage], tmp_path: Path, plain: PlainMode
) -> None:
    """Run 1: the handshake meets EOF once, and the plain request sent alongside is answered
    with the registry's 400 "Client sent an HTTP request to an HTTPS server", or with a
    redirect to the same URL over https (followed: it succeeds). Neither makes http the
    scheme: the cache must not say http. Run 2 sends a registry token on every request: it
    must not go out in clear, since https (tried first) works."""
    image = corpus_tls["schema2"]
    secret = "never-in-clear-to-a-tls-port"
    cache_dir = tmp_path / "cache"
    with TlsFront(registry_tls.host, plain=plain, drop_tls=1) as front:
        with HttpTransport() as transport:
            client = RegistryClient(front.netloc, transport, insecure=True, cache=Cache(cache_dir))
            with deadline(30), contextlib.suppress(ImginspectError):  # this run's own outcome
                client.get_manifest(image.repo, image.tag)
        cached = (Cache(cache_dir).get_host(front.netloc) or {}).get("scheme")
        assert front.plain_sent, "the plain request was not sent: not what is tested"
        run_1_plain = len(front.plain_sent)
        with HttpTransport() as transport:
            client = RegistryClient(
                front.netloc,
                transport,
                credentials=lambda repository: Credential(registry_token=secret),
                insecure=True,
                cache=Cache(cache_dir),
            )
            with deadline(30):
                fetched = client.get_manifest(image.repo, image.tag)
        in_clear = [sent for sent in front.plain_sent[run_1_plain:] if secret.encode() in sent]
    assert fetched.digest == image.digest
    assert cached != "http"
    assert in_clear == []


def test_a_cached_http_that_redirects_to_https_on_the_same_port_is_negotiated_again(
    registry_tls: Registry, corpus_tls: dict[str, PushedImage], tmp_path: Path
) -> None:
    """The registry moved from http to https on its port, whose plain requests now get a 302
    to the same URL over https (nginx's error_page 497). The cache still says http (from when
    it spoke plain http): the first request learns otherwise from that redirect, and the run
    goes on over https, which the cache then says. Staying on http, a tag list (redirects not
    followed) failed with the 302 in every run, and every request sent its credentials in
    clear before the redirect."""
    image = corpus_tls["schema2"]
    secret = "only-once-in-clear-from-the-cache"
    cache_dir = tmp_path / "cache"
    with TlsFront(registry_tls.host, plain="redirect") as front:
        Cache(cache_dir).update_host(front.netloc, scheme="http")
        with HttpTransport() as transport:
            client = RegistryClient(
                front.netloc,
                transport,
                credentials=lambda repository: Credential(registry_token=secret),
                insecure=True,
                cache=Cache(cache_dir),
            )
            with deadline(30):
                fetched = client.get_manifest(image.repo, image.tag)
                tags = client.list_tags(image.repo, limit=10)
        plain_sent = list(front.plain_sent)
    assert fetched.digest == image.digest
    assert image.tag in tags
    assert len(plain_sent) == 1, plain_sent  # the cache's http, once
    assert (Cache(cache_dir).get_host(front.netloc) or {}).get("scheme") == "https"


def test_a_cached_http_on_a_port_that_now_hangs_up_on_plain_http_is_negotiated_again(
    registry_tls: Registry, corpus_tls: dict[str, PushedImage], tmp_path: Path
) -> None:
    """The registry moved from http to https on its port, behind a TLS server that hangs up
    on a plain request instead of answering it with a 400 (as TLS servers other than Go's
    and nginx's do). The cache still says http: the request negotiates again and gets https,
    which the cache then says, instead of failing on the cached http in every run."""
    image = corpus_tls["schema2"]
    cache_dir = tmp_path / "cache"
    with TlsFront(registry_tls.host, plain="close") as front:
        Cache(cache_dir).update_host(front.netloc, scheme="http")
        with HttpTransport() as transport:
            client = RegistryClient(front.netloc, transport, insecure=True, cache=Cache(cache_dir))
            with deadline(30):
                fetched = client.get_manifest(image.repo, image.tag)
        plain_sent = list(front.plain_sent)
    assert fetched.digest == image.digest
    assert plain_sent, "the cached http was not tried: not what is tested"
    assert (Cache(cache_dir).get_host(front.netloc) or {}).get("scheme") == "https"
