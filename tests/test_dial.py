"""Opening a TCP connection as Go's dialer does (imginspect.dial): each address of a host gets
its share of the time left, and a host with addresses of two families gets Happy Eyeballs
(the other family joins after 300 ms, or at once when the first has failed; the first
connection wins, a later one is closed). Attempts are replaced through dial._attempt where
the order of events must be forced; the rest uses real sockets on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from imginspect import dial

V6 = (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("::1", 1, 0, 0))


def v4(port: int) -> tuple[Any, ...]:
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))


@pytest.fixture
def server() -> Iterator[socket.socket]:
    """A listener on 127.0.0.1 that accepts (the kernel completes the handshake)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener


def resolve_to(monkeypatch: pytest.MonkeyPatch, infos: list[tuple[Any, ...]]) -> list[Any]:
    """getaddrinfo answers ``infos`` for any name; the hosts it was asked for are kept."""
    asked: list[Any] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        asked.append(host)
        return infos

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def record_attempts(
    monkeypatch: pytest.MonkeyPatch, behave: Any
) -> list[tuple[tuple[Any, ...], float | None]]:
    """Replace dial._attempt with ``behave(info, timeout)``; each call is recorded first."""
    calls: list[tuple[tuple[Any, ...], float | None]] = []

    def attempt(info: tuple[Any, ...], timeout: float | None) -> socket.socket:
        calls.append((info, timeout))
        result: socket.socket = behave(info, timeout)
        return result

    monkeypatch.setattr(dial, "_attempt", attempt)
    return calls


def test_one_family_each_address_gets_its_share_of_the_time_left(
    monkeypatch: pytest.MonkeyPatch, server: socket.socket
) -> None:
    port = server.getsockname()[1]
    resolve_to(monkeypatch, [v4(1), v4(2), v4(port)])

    def behave(info: tuple[Any, ...], timeout: float | None) -> socket.socket:
        if info[4][1] != port:
            raise TimeoutError("timed out")  # as if its share ran out (at once, here)
        return socket.create_connection(info[4], timeout)

    calls = record_attempts(monkeypatch, behave)
    sock = dial.connect("registry.test", port, 9.0)
    with sock:
        assert sock.getpeername() == ("127.0.0.1", port)
        assert sock.gettimeout() == 9.0  # as socket.create_connection leaves it
    shares = [timeout for _, timeout in calls]
    assert [info[4][1] for info, _ in calls] == [1, 2, port]  # getaddrinfo's order
    assert shares[0] is not None and 2.0 < shares[0] <= 3.0  # 9 s over 3 addresses
    assert shares[1] is not None and 3.0 < shares[1] <= 4.5  # what is left over 2
    assert shares[2] is not None and 6.0 < shares[2] <= 9.0  # all that is left


def test_a_share_is_at_least_two_seconds_or_all_that_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolve_to(monkeypatch, [v4(1), v4(2), v4(3), v4(4)])

    def refuse(info: tuple[Any, ...], timeout: float | None) -> socket.socket:
        raise ConnectionRefusedError(111, "Connection refused")

    calls = record_attempts(monkeypatch, refuse)
    with pytest.raises(ConnectionRefusedError):
        dial.connect("registry.test", 1, 4.0)
    # 4 s over 4 addresses is 1 s each: too short, so 2 s (Go's saneMinimum); these fail at
    # once, so the last one finds all 4 s still there
    shares = [t for _, t in calls]
    assert shares[:3] == [2.0, 2.0, 2.0], calls
    assert shares[3] is not None and 3.0 < shares[3] <= 4.0, calls
    calls.clear()
    with pytest.raises(ConnectionRefusedError):
        dial.connect("registry.test", 1, 0.5)
    assert all(t is not None and t <= 0.5 for _, t in calls), calls
    calls.clear()
    with pytest.raises(ConnectionRefusedError):
        dial.connect("registry.test", 1, None)  # no timeout: the system's own
    assert [t for _, t in calls] == [None] * 4


def test_dead_addresses_end_at_the_timeout_not_once_each(
    monkeypatch: pytest.MonkeyPatch, blackholed_port: int
) -> None:
    """Six addresses that never answer: the connect gives up when the timeout is over
    (socket.create_connection gave each the whole timeout: six times as long)."""
    resolve_to(monkeypatch, [v4(blackholed_port)] * 6)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        dial.connect("registry.test", blackholed_port, 0.6)
    assert time.monotonic() - started < 2.4  # 3.6 s before: a wide margin for a loaded machine


def test_the_other_family_joins_while_the_first_hangs(
    monkeypatch: pytest.MonkeyPatch, server: socket.socket
) -> None:
    """Happy Eyeballs: an IPv6 address that does not answer does not hold the IPv4 one up
    for its share of the timeout; the IPv4 connection wins while the IPv6 one is still
    trying, and the IPv6 socket, connected later, is closed."""
    port = server.getsockname()[1]
    resolve_to(monkeypatch, [V6, v4(port)])
    v4_won = threading.Event()
    late: list[socket.socket] = []

    def behave(info: tuple[Any, ...], timeout: float | None) -> socket.socket:
        if info[0] == socket.AF_INET6:
            v4_won.wait(30)  # hangs until the IPv4 connection has won, then "connects"
            late.append(socket.create_connection(("127.0.0.1", port)))
            return late[0]
        return socket.create_connection(info[4], timeout)

    calls = record_attempts(monkeypatch, behave)
    sock = dial.connect("registry.test", port, 60.0)
    v4_won.set()
    with sock:
        assert sock.family == socket.AF_INET
        assert [info[0] for info, _ in calls] == [socket.AF_INET6, socket.AF_INET]
        # the loser's socket is closed by its own thread once it connects
        for _ in range(1000):
            if late and late[0].fileno() == -1:
                break
            time.sleep(0.01)
        assert late and late[0].fileno() == -1


def test_the_other_family_starts_at_once_when_the_first_failed(
    monkeypatch: pytest.MonkeyPatch, server: socket.socket
) -> None:
    port = server.getsockname()[1]
    resolve_to(monkeypatch, [V6, v4(port)])
    monkeypatch.setattr(dial, "FALLBACK_DELAY", 60.0)  # a wait for it would show

    def behave(info: tuple[Any, ...], timeout: float | None) -> socket.socket:
        if info[0] == socket.AF_INET6:
            raise OSError(101, "Network is unreachable")
        return socket.create_connection(info[4], timeout)

    record_attempts(monkeypatch, behave)
    done: list[socket.socket] = []
    thread = threading.Thread(target=lambda: done.append(dial.connect("r.test", port, 120.0)))
    thread.start()
    thread.join(30)
    assert done, "the fallback waited for FALLBACK_DELAY although the primary had failed"
    done[0].close()


def test_every_address_failing_raises_the_first_error(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_to(monkeypatch, [V6, v4(1)])

    def behave(info: tuple[Any, ...], timeout: float | None) -> socket.socket:
        if info[0] == socket.AF_INET6:
            raise OSError(101, "Network is unreachable")
        raise ConnectionRefusedError(111, "Connection refused")

    record_attempts(monkeypatch, behave)
    with pytest.raises(OSError, match="unreachable"):
        dial.connect("registry.test", 1, 10.0)


def test_ascii_names_reach_getaddrinfo_as_bytes(
    monkeypatch: pytest.MonkeyPatch, server: socket.socket
) -> None:
    """A str name would be encoded with the idna codec (stringprep, unicodedata: over a
    millisecond of start-up); an ASCII one goes as bytes."""
    port = server.getsockname()[1]
    asked = resolve_to(monkeypatch, [v4(port)])
    with dial.connect("registry.test", port, 5.0):
        pass
    assert asked == [b"registry.test"]


def test_real_dual_stack_localhost(server: socket.socket) -> None:
    """Without replacements: "localhost" (one or two families here) connects to the IPv4
    listener, whichever family getaddrinfo lists first."""
    port = server.getsockname()[1]
    with dial.connect("localhost", port, 10.0) as sock:
        assert sock.getpeername()[1] == port
