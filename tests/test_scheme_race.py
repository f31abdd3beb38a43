"""Scheme negotiation for insecure registries: https (unverified) and plain http at once.

A cold request to an insecure registry whose scheme is not known sends the https probe and
the plain-HTTP request concurrently (without credentials only), uses https whenever it
works, and the plain answer only when TLS failed to connect. One negotiation at a time per
registry client: the requests of a batch that start meanwhile wait for its outcome (at
most a bound, and never past half their deadline), so a batch sends one TLS probe.
Measured through a recording TCP proxy in front of the real registries: when each
connection started (the proxy's clock, not the client's start-up), whether it was TLS, and
what a plain one carried.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from imginspect import registry as registry_module
from imginspect.auth import Credential
from imginspect.batch import InspectRequest, inspect_many, inspect_one
from imginspect.cache import Cache
from imginspect.errors import ConnectionFailedError, NetworkError, NotFoundError
from imginspect.inspector import Inspector
from imginspect.output import OutputMode
from imginspect.reference import parse_reference
from imginspect.registry import SCHEME_WAIT, RegistryClient, _has_port
from imginspect.transport import HttpTransport, deadline
from tests.support.badserver import GOOD_IMAGE, BadServer, Reply, Scenario, closed_port
from tests.support.corpus import PushedImage
from tests.support.registry import Registry
from tests.test_faults import cli_env

REPO_ROOT = Path(__file__).resolve().parent.parent
#: added before a new connection's first bytes go upstream (a TCP handshake far away)
DELAY = 0.3
THREAD_NAME = "imginspect-plain-http"


@dataclass
class Link:
    """One client connection through the proxy, on the proxy's clock (``time.monotonic``)."""

    accepted_at: float
    tls: bool = False
    #: when the first upstream byte came back (the TLS probe's error, a plain answer)
    answered_at: float | None = None
    #: what the client sent (plain connections only; bounded)
    sent: bytes = b""
    #: the first bytes that came back
    answer: bytes = b""
    done: threading.Event = field(default_factory=threading.Event)


class RecordingProxy:
    """Loopback TCP proxy: records every connection, delays each new one by ``delay`` (and
    TLS ones by ``tls_delay`` more), and sends TLS connections to ``tls_upstream`` (default:
    ``upstream``), plain ones to ``upstream``. With ``stall_first_tls`` the first TLS
    connection goes nowhere: its handshake never completes (the client gives up)."""

    def __init__(
        self,
        upstream: str,
        *,
        delay: float = 0.0,
        tls_upstream: str | None = None,
        tls_delay: float = 0.0,
        stall_first_tls: bool = False,
    ) -> None:
        self._upstream = upstream
        self._tls_upstream = tls_upstream or upstream
        self._delay, self._tls_delay = delay, tls_delay
        self._stall_first_tls = stall_first_tls
        self.links: list[Link] = []
        #: set when the first TLS connection's first bytes arrived
        self.tls_seen = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.netloc = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> RecordingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def settled(self, timeout: float = 10.0) -> list[Link]:
        """Every connection so far, once each has ended (the client closes them)."""
        with self._lock:
            links = list(self.links)
        for link in links:
            link.done.wait(timeout)
        return links

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            link = Link(time.monotonic())
            with self._lock:
                self.links.append(link)
            threading.Thread(target=self._serve, args=(client, link), daemon=True).start()

    def _serve(self, client: socket.socket, link: Link) -> None:
        upstream: socket.socket | None = None
        try:
            with self._lock:
                self._sockets.add(client)
            first = client.recv(65536)
            if not first:
                return
            link.tls = first[:1] == b"\x16"
            if link.tls:
                with self._lock:
                    stall = self._stall_first_tls and not self.tls_seen.is_set()
                    self.tls_seen.set()
                if stall:
                    while client.recv(65536):  # until the client hangs up
                        pass
                    return
            time.sleep(self._delay + (self._tls_delay if link.tls else 0.0))
            host, _, port = (self._tls_upstream if link.tls else self._upstream).rpartition(":")
            upstream = socket.create_connection((host, int(port)), timeout=10)
            with self._lock:
                self._sockets.add(upstream)
            self._record(link, first)
            upstream.sendall(first)
            self._pump(client, upstream, link)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
            link.done.set()

    @staticmethod
    def _record(link: Link, data: bytes) -> None:
        if not link.tls and len(link.sent) < 65536:
            link.sent += data

    def _pump(self, client: socket.socket, upstream: socket.socket, link: Link) -> None:
        peers = {client: upstream, upstream: client}
        while True:
            readable, _, _ = select.select(list(peers), [], [], 30)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                if sock is upstream and link.answered_at is None:
                    link.answered_at = time.monotonic()
                    link.answer = data[:256]
                if sock is client:
                    self._record(link, data)
                peers[sock].sendall(data)


@pytest.fixture(autouse=True)
def _no_thread_left() -> Iterator[None]:
    """The speculative plain request's thread always ends (bounded by its timeouts)."""
    yield
    limit = time.monotonic() + 10
    while any(t.name == THREAD_NAME for t in threading.enumerate()):
        assert time.monotonic() < limit, "the plain-http thread did not end"
        time.sleep(0.02)


def _first(links: list[Link], *, tls: bool) -> Link:
    return next(link for link in links if link.tls is tls)


@pytest.mark.parametrize("variant", ["plain", "token"])
def test_cold_plain_registry_probes_both_schemes_at_once(
    request: pytest.FixtureRequest, variant: str
) -> None:
    registry: Registry = request.getfixturevalue(f"registry_{variant}")
    corpus: dict[str, PushedImage] = request.getfixturevalue(f"corpus_{variant}")
    image = corpus["oci-index"]
    with RecordingProxy(registry.host, delay=DELAY) as proxy:
        with Inspector() as inspector:
            digest = inspector.resolve_digest(parse_reference(f"{proxy.netloc}/{image.reference}"))
        links = proxy.settled()
    assert digest == image.digest
    probe, plain = _first(links, tls=True), _first(links, tls=False)
    # Both started together: the plain request did not wait for the TLS probe's error...
    assert abs(plain.accepted_at - probe.accepted_at) < DELAY / 2, links
    assert probe.answered_at is not None and plain.accepted_at < probe.answered_at, links
    # ... so the registry's first answer came after one connection delay, not two.
    assert plain.answered_at is not None
    assert plain.answered_at - probe.accepted_at < 2 * DELAY, links
    # one probe, one plain connection (reused for the rest)
    assert sorted(link.tls for link in links) == [False, True], links
    first_request = plain.sent.split(b"\r\n", 1)[0]
    assert first_request.startswith(b"HEAD /v2/" + image.repo.encode()), plain.sent[:200]


def test_credentials_never_go_out_in_clear_before_https_failed(registry_plain: Registry) -> None:
    """A first request carrying Authorization (here a registry token from the credentials)
    keeps the serial order: plain http only after the TLS probe has been answered."""
    secret = "never-in-clear-early"
    with RecordingProxy(registry_plain.host, delay=DELAY) as proxy:
        with HttpTransport() as transport:
            client = RegistryClient(
                proxy.netloc,
                transport,
                credentials=lambda repository: Credential(registry_token=secret),
                insecure=True,
            )
            with pytest.raises(NotFoundError):  # the request itself is not what is tested
                client.head_manifest("no/such-repository", "latest")
        links = proxy.settled()
    probe = _first(links, tls=True)
    assert probe.answered_at is not None, links
    plain_links = [link for link in links if not link.tls]
    assert plain_links, links
    assert all(link.accepted_at > probe.answered_at for link in plain_links), links
    assert b"authorization: bearer " + secret.encode() in plain_links[0].sent.lower()


@pytest.fixture
def not_found_server() -> Iterator[BadServer]:
    """A plain-HTTP server that answers every manifest request at once with 404."""
    with BadServer("127.0.0.1", scenarios=[]) as server:
        yield server


def test_https_wins_over_a_faster_plain_answer(
    registry_tls: Registry,
    corpus_tls: dict[str, PushedImage],
    not_found_server: BadServer,
    tmp_path: Path,
) -> None:
    """TLS connections go to the TLS registry, plain ones to a server that answers 404 (and
    sooner: TLS waits longer in the proxy). The https answer is used, the plain one dropped."""
    image = corpus_tls["oci-index"]
    cache = Cache(tmp_path / "cache")
    with RecordingProxy(
        not_found_server.netloc, tls_upstream=registry_tls.host, tls_delay=DELAY
    ) as proxy:
        with Inspector(cache=cache) as inspector:
            digest = inspector.resolve_digest(parse_reference(f"{proxy.netloc}/{image.reference}"))
        links = proxy.settled()
    assert digest == image.digest
    assert not_found_server.wait_idle()
    (speculative,) = not_found_server.requests  # sent, answered 404, dropped
    assert speculative.status == 404 and speculative.authorization is None
    plain, probe = _first(links, tls=False), _first(links, tls=True)
    assert plain.answered_at is not None and probe.answered_at is not None
    assert plain.answered_at < probe.answered_at, links  # the plain answer came first
    assert (Cache(tmp_path / "cache").get_host(proxy.netloc) or {}).get("scheme") == "https"


def test_tls_registry_with_insecure_gets_https(
    registry_tls: Registry, corpus_tls: dict[str, PushedImage], tmp_path: Path
) -> None:
    """The CLI with --insecure against the TLS registry: the real registry answers the plain
    request with a 400; the run uses https, and remembers it."""
    image = corpus_tls["schema2"]
    cache_dir = tmp_path / "cache"
    with RecordingProxy(registry_tls.host) as proxy:
        ref = f"{proxy.netloc}/{image.reference}"
        env = cli_env({"IMGINSPECT_CACHE_DIR": str(cache_dir), "IMGINSPECT_NO_CACHE": ""})
        run = subprocess.run(
            [sys.executable, "-m", "imginspect", "--insecure", "--debug", "--digest", ref],
            capture_output=True,
            env=env,
            cwd=REPO_ROOT,
            timeout=60,
            check=False,
        )
        links = proxy.settled()
    stderr = run.stderr.decode()
    assert (run.returncode, run.stdout.decode().strip()) == (0, image.digest), stderr
    assert "trying https and http at once" in stderr
    # --digest is one HEAD: the https one was used (a used 400 would have led to a GET)
    assert re.search(r"^debug: HEAD https://\S+ -> 200 ", stderr, re.MULTILINE), stderr
    assert "debug: GET " not in stderr, stderr
    (plain,) = [link for link in links if not link.tls]  # the speculative request only
    assert plain.answer.startswith(b"HTTP/1.0 400 Bad Request"), plain.answer
    assert b"Client sent an HTTP request to an HTTPS server" in plain.answer, plain.answer
    assert (Cache(cache_dir).get_host(proxy.netloc) or {}).get("scheme") == "https"


def test_token_realm_on_the_registry_reuses_its_connection() -> None:
    """A realm on the registry's own host:port and scheme costs no connection of its own:
    the 401, the token and the retried request share the one plain connection."""
    bearer = Scenario("bearer", image=GOOD_IMAGE, auth="bearer")
    with BadServer("127.0.0.1", [bearer]) as server:
        with Inspector() as inspector:
            digest = inspector.resolve_digest(parse_reference(server.ref("bearer")))
        assert server.wait_idle()
        connections = server.connections
    assert digest == GOOD_IMAGE.digest
    assert sum(c.tls_probe for c in connections) == 1, connections
    (plain,) = [c for c in connections if not c.tls_probe]
    assert [(r.kind, r.status) for r in plain.requests] == [
        ("manifests", 401),
        ("token", 200),
        ("manifests", 200),
    ]


def test_both_failing_raise_the_plain_error() -> None:
    port = closed_port()
    with Inspector() as inspector, pytest.raises(ConnectionFailedError) as failure:
        inspector.resolve_digest(parse_reference(f"127.0.0.1:{port}/app:v1"))
    assert failure.value.message.startswith(f"cannot connect to http://127.0.0.1:{port}")


def test_the_deadline_holds_in_the_plain_thread() -> None:
    """A plain registry that never answers: the plain request, in its own thread, still ends
    at the caller's deadline (a context variable, copied into the thread)."""
    hang = Scenario("hang", manifest=Reply(stall="before-headers"))
    with BadServer("127.0.0.1", [hang]) as server, HttpTransport() as transport:
        client = RegistryClient(server.netloc, transport, insecure=True)
        started = time.monotonic()
        with deadline(1.0), pytest.raises(NetworkError) as failure:
            client.get_manifest("hang", "latest")
        took = time.monotonic() - started
    assert "deadline passed" in failure.value.message
    assert failure.value.message.startswith(
        f"gave up fetching manifest from http://{server.netloc}"
    )
    assert took < 1.0 + 2.0, took


def test_only_hosts_with_a_port_race() -> None:
    assert _has_port("127.0.0.1:5000") and _has_port("[::1]:5000") and _has_port("r.io:443")
    assert not _has_port("registry.example") and not _has_port("[::1]")
    assert not _has_port("r.io:99999")  # not a port at all


# --------------------------------------------------------------------------- one negotiation
#
# A batch starts its workers before the scheme is known. They share one negotiation: the
# first request leads it, the others wait for its outcome (bounded), then use that scheme.

#: workers of the batches below (the CLI's default)
WORKERS = 8
#: the deadline of a request that hangs in the tests below: far longer than the others need
HANG_DEADLINE = 8.0


def _digest_request(timeout: float = 30.0) -> InspectRequest:
    return InspectRequest(mode=OutputMode.DIGEST, timeout=timeout)


def _batch_refs(netloc: str, corpus: dict[str, PushedImage], count: int) -> list[tuple[str, str]]:
    images = [corpus[key] for key in ("oci-index", "schema2", "oci-single", "buildkit")]
    return [
        (f"{netloc}/{images[i % len(images)].reference}", images[i % len(images)].digest)
        for i in range(count)
    ]


def _answered(logged: list[str]) -> list[tuple[str, str]]:
    """(scheme, status) of each answered HEAD in the debug log, in order."""
    pattern = re.compile(r"HEAD (\w+)://\S+ -> (\d{3}) ")
    return [(m.group(1), m.group(2)) for m in map(pattern.match, logged) if m]


def _batch_succeeds(
    inspector: Inspector, proxy: RecordingProxy, corpus: dict[str, PushedImage]
) -> None:
    """A batch of ``3 * WORKERS`` references through ``proxy``, ``WORKERS`` at a time: each
    answered with its digest."""
    expected = _batch_refs(proxy.netloc, corpus, 3 * WORKERS)
    outcomes = inspect_many(
        inspector, [given for given, _ in expected], _digest_request(), concurrency=WORKERS
    )
    assert [(o.given, o.digest, o.error) for o in outcomes] == [
        (given, digest, None) for given, digest in expected
    ]


@pytest.mark.parametrize("variant", ["plain", "token"])
def test_a_batch_against_a_plain_registry_sends_one_tls_probe(
    request: pytest.FixtureRequest, variant: str
) -> None:
    """Every worker starts while the TLS probe is still out (the proxy holds it DELAY s):
    one probe, not one per worker, and every reference answered over plain http."""
    registry: Registry = request.getfixturevalue(f"registry_{variant}")
    corpus: dict[str, PushedImage] = request.getfixturevalue(f"corpus_{variant}")
    logged: list[str] = []
    with RecordingProxy(registry.host, tls_delay=DELAY) as proxy:
        with Inspector(log=logged.append) as inspector:
            _batch_succeeds(inspector, proxy, corpus)
        links = proxy.settled()
    assert [link.tls for link in links].count(True) == 1, links
    # one connection per request in flight, and the leader's speculative plain request
    assert [link.tls for link in links].count(False) <= WORKERS + 1, links
    assert sum("trying https and http at once" in line for line in logged) == 1, logged
    assert {scheme for scheme, _ in _answered(logged)} == {"http"}, logged  # no https answer


def test_a_batch_against_a_tls_registry_negotiates_once_and_uses_https(
    registry_tls: Registry, corpus_tls: dict[str, PushedImage], tmp_path: Path
) -> None:
    """The TLS answer takes DELAY s (the proxy holds it): the workers that start meanwhile
    wait for it instead of sending a speculative plain request each. https is used and
    remembered."""
    logged: list[str] = []
    with RecordingProxy(registry_tls.host, tls_delay=DELAY) as proxy:
        with Inspector(log=logged.append, cache=Cache(tmp_path / "cache")) as inspector:
            _batch_succeeds(inspector, proxy, corpus_tls)
        links = proxy.settled()
    (plain,) = [link for link in links if not link.tls]  # the leader's speculative request
    assert plain.answer.startswith(b"HTTP/1.0 400 Bad Request"), plain.answer
    assert sum("trying https and http at once" in line for line in logged) == 1, logged
    answered = _answered(logged)
    assert answered.count(("https", "200")) == 3 * WORKERS, logged
    assert [a for a in answered if a[0] == "http"] == [("http", "400")], logged
    assert (Cache(tmp_path / "cache").get_host(proxy.netloc) or {}).get("scheme") == "https"


def test_the_scheme_is_shared_once_tls_failed_while_the_leaders_request_hangs() -> None:
    """The leader's own request hangs (its repository's manifest never comes), but its TLS
    probe failed for good after DELAY s, which settles the scheme: the references waiting
    for it go on over plain http then, without a probe of their own and without waiting for
    the leader's request."""
    hang = Scenario("hang", manifest=Reply(stall="before-headers"))
    good = Scenario("good", image=GOOD_IMAGE)
    with (
        BadServer("127.0.0.1", [hang, good]) as server,
        RecordingProxy(server.netloc, tls_delay=DELAY) as proxy,
        Inspector() as inspector,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        leader = pool.submit(
            inspect_one, inspector, f"{proxy.netloc}/hang:latest", _digest_request(HANG_DEADLINE)
        )
        assert proxy.tls_seen.wait(10)  # the leader's probe is out, and held for DELAY s
        others = [
            pool.submit(inspect_one, inspector, f"{proxy.netloc}/good:latest", _digest_request())
            for _ in range(WORKERS - 1)
        ]
        outcomes = [future.result(timeout=30) for future in others]
        leader_was_running = not leader.done()
        (hung,) = server.requests_for("hang")
        hung_was_running = not hung.done
        stalled = leader.result(timeout=30)
        inspector.close()  # its idle connections end: the proxy's links settle
        links = proxy.settled()
    assert [(o.digest, o.error) for o in outcomes] == [(GOOD_IMAGE.digest, None)] * (WORKERS - 1)
    assert leader_was_running and hung_was_running
    assert stalled.error is not None and "deadline passed" in stalled.error.message
    assert [link.tls for link in links].count(True) == 1, links
    assert server.tls_probes == 1


def test_waiting_for_the_scheme_is_bounded_when_the_leader_hangs_before_it_is_known(
    registry_tls: Registry, corpus_tls: dict[str, PushedImage]
) -> None:
    """The leader's TLS handshake never completes (the proxy holds the first TLS connection),
    so its negotiation says nothing until the leader's deadline. The references waiting for
    it give up waiting after a short bound, find https on their own, and are answered while
    the leader still hangs."""
    image = corpus_tls["schema2"]
    with (
        RecordingProxy(registry_tls.host, stall_first_tls=True) as proxy,
        Inspector() as inspector,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        given = f"{proxy.netloc}/{image.reference}"
        leader = pool.submit(inspect_one, inspector, given, _digest_request(HANG_DEADLINE))
        assert proxy.tls_seen.wait(10)
        others = [
            pool.submit(inspect_one, inspector, given, _digest_request())
            for _ in range(WORKERS - 1)
        ]
        outcomes = [future.result(timeout=30) for future in others]
        leader_was_running = not leader.done()
        stalled = leader.result(timeout=30)
        # once the scheme is known, nobody waits or probes any more
        later = inspect_one(inspector, given, _digest_request())
        inspector.close()  # its idle connections end: the proxy's links settle
        links = proxy.settled()
    assert [(o.digest, o.error) for o in outcomes] == [(image.digest, None)] * (WORKERS - 1)
    assert leader_was_running
    assert stalled.error is not None and "deadline passed" in stalled.error.message
    assert (later.digest, later.error) == (image.digest, None)
    assert sum(link.tls for link in links) >= 2, links  # the stalled one, and the waiters'


def test_a_waiter_keeps_half_its_deadline_to_negotiate_on_its_own(
    registry_tls: Registry, corpus_tls: dict[str, PushedImage]
) -> None:
    """A waiting reference whose deadline is shorter than the bound waits half of it, then
    finds the scheme on its own within the other half (were it to wait the full bound, its
    deadline would pass first)."""
    image = corpus_tls["schema2"]
    short = SCHEME_WAIT / 2
    logged: list[str] = []
    with (
        RecordingProxy(registry_tls.host, stall_first_tls=True) as proxy,
        Inspector(log=logged.append) as inspector,
        ThreadPoolExecutor(1) as pool,
    ):
        given = f"{proxy.netloc}/{image.reference}"
        leader = pool.submit(inspect_one, inspector, given, _digest_request(HANG_DEADLINE))
        assert proxy.tls_seen.wait(10)
        waiter = inspect_one(inspector, given, _digest_request(short))
        leader_was_running = not leader.done()
        stalled = leader.result(timeout=30)
        inspector.close()  # its idle connections end: the proxy's links settle
        proxy.settled()
    assert (waiter.digest, waiter.error) == (image.digest, None)
    assert leader_was_running
    assert stalled.error is not None and "deadline passed" in stalled.error.message
    (gave_up,) = [line for line in logged if "negotiating on its own" in line]
    waited = float(re.findall(r"after (\d+\.\d+) s", gave_up)[0])
    assert 0 < waited <= short / 2, gave_up


def test_after_a_leader_failed_one_waiter_leads_the_next_negotiation(
    registry_tls: Registry, corpus_tls: dict[str, PushedImage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader's handshake hangs and its deadline passes: its negotiation ends without a
    scheme. That wakes the references waiting for it (the bound is raised to a minute here:
    only the leader's end can wake them in time); one leads the next negotiation and the
    others wait for that one: two negotiations in all (two speculative plain requests), not
    one per waiter, and nobody gave up waiting."""
    monkeypatch.setattr(registry_module, "SCHEME_WAIT", 60.0)
    image = corpus_tls["schema2"]
    logged: list[str] = []
    with (
        RecordingProxy(registry_tls.host, stall_first_tls=True) as proxy,
        Inspector(log=logged.append) as inspector,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        given = f"{proxy.netloc}/{image.reference}"
        leader = pool.submit(inspect_one, inspector, given, _digest_request(1.0))
        assert proxy.tls_seen.wait(10)
        others = [
            pool.submit(inspect_one, inspector, given, _digest_request(60.0))
            for _ in range(WORKERS - 1)
        ]
        failed = leader.result(timeout=30)
        # (waiting out the bound, min(60 s, half of 60 s), would take far longer than this)
        outcomes = [future.result(timeout=10) for future in others]
        inspector.close()  # its idle connections end: the proxy's links settle
        links = proxy.settled()
    assert failed.error is not None and "deadline passed" in failed.error.message
    assert [(o.digest, o.error) for o in outcomes] == [(image.digest, None)] * (WORKERS - 1)
    assert sum("trying https and http at once" in line for line in logged) == 2, logged
    assert not any("negotiating on its own" in line for line in logged), logged
    assert [link.tls for link in links].count(False) == 2, links
