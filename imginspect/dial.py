"""How a TCP connection to a host is opened: as Go's ``net.Dialer`` does, which docker,
skopeo, crane and regctl all use.

``socket.create_connection`` tries the host's addresses one after the other and gives each
the whole timeout. A registry name with an address that does not answer (an IPv6 route that
drops packets, one of several A records down) then costs the whole connect timeout before
the next address is tried, and several of them several times the deadline. Here, as in Go:

* Addresses of the family ``getaddrinfo`` lists first are the primaries, the others the
  fallbacks. The fallbacks start 300 ms after the primaries (RFC 6555 "Happy Eyeballs", Go's
  default ``FallbackDelay``), or at once when the primaries have all failed; the first
  connection made wins and the other is closed.
* Within each list, addresses are tried one at a time, each with an equal share of the time
  left (at least 2 s, or all that is left: Go's ``partialDeadline``), so the last address
  still gets its turn and the whole connect ends by the timeout.

Standard library only; the threads and the queue only for a host with addresses of two
families.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import queue

#: How long the primaries have before the fallbacks start alongside (Go's default).
FALLBACK_DELAY = 0.3
#: The shortest share of the time left an address gets, when that much is left (Go's).
SANE_MINIMUM = 2.0

_AddressInfo = tuple[int, int, int, str, tuple[object, ...]]


def connect(host: str, port: int, timeout: float | None) -> socket.socket:
    """A socket connected to ``host:port``, within ``timeout`` seconds (None: the system's
    own bound), its timeout then set to ``timeout`` (as ``socket.create_connection`` leaves
    it). An ASCII host name is passed to ``getaddrinfo`` as bytes: a str would be encoded
    with the "idna" codec, whose import (stringprep and unicodedata) costs more than a
    millisecond at start-up; any other name goes as it is (IDNA applies). Raises the
    ``OSError`` of the first address that failed (``TimeoutError`` when time ran out)."""
    name = host.encode("ascii") if host.isascii() else host
    # typeshed types the host as str; getaddrinfo takes bytes as well
    infos = cast(
        "list[_AddressInfo]", socket.getaddrinfo(cast("str", name), port, 0, socket.SOCK_STREAM)
    )
    if not infos:
        raise OSError(f"no address for {host}")
    ends = None if timeout is None else time.monotonic() + timeout
    primaries = [info for info in infos if info[0] == infos[0][0]]
    fallbacks = [info for info in infos if info[0] != infos[0][0]]
    sock = (
        _dial_parallel(primaries, fallbacks, ends)
        if fallbacks
        else _dial_serial(primaries, ends, None)
    )
    sock.settimeout(timeout)
    return sock


def _attempt(info: _AddressInfo, timeout: float | None) -> socket.socket:
    """One connect to one address (the seam tests replace)."""
    family, kind, proto, _, address = info
    sock = socket.socket(family, kind, proto)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _share(ends: float | None, addresses_left: int) -> float | None:
    """The time the next address gets: an equal share of what is left, at least
    :data:`SANE_MINIMUM` (or all that is left). Raises ``TimeoutError`` when nothing is."""
    if ends is None:
        return None
    left = ends - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    share = left / addresses_left
    return share if share >= SANE_MINIMUM else min(left, SANE_MINIMUM)


def _dial_serial(
    infos: list[_AddressInfo], ends: float | None, stop: threading.Event | None
) -> socket.socket:
    """The addresses one at a time, each with its share of the time left; stops early
    (with the error so far) once ``stop`` is set, another list having won."""
    first_error: OSError | None = None
    for index, info in enumerate(infos):
        if stop is not None and stop.is_set():
            break
        try:
            return _attempt(info, _share(ends, len(infos) - index))
        except OSError as error:
            first_error = first_error or error
            if isinstance(error, TimeoutError) and ends is not None and time.monotonic() >= ends:
                break
    raise first_error if first_error is not None else TimeoutError("timed out")


def _dial_parallel(
    primaries: list[_AddressInfo], fallbacks: list[_AddressInfo], ends: float | None
) -> socket.socket:
    """Happy Eyeballs: the primaries, then the fallbacks alongside after
    :data:`FALLBACK_DELAY` (or as soon as the primaries failed); the first socket connected
    wins, one connected later is closed."""
    import queue  # only for a host with addresses of two families

    results: queue.SimpleQueue[tuple[socket.socket | None, OSError | None]] = queue.SimpleQueue()
    lock = threading.Lock()
    stop = threading.Event()  # set (under the lock) once a winner is taken

    def race(infos: list[_AddressInfo]) -> None:
        try:
            sock = _dial_serial(infos, ends, stop)
        except OSError as error:
            results.put((None, error))
            return
        except BaseException as error:  # pragma: no cover - e.g. MemoryError in a thread
            results.put((None, OSError(str(error))))
            return
        with lock:
            if stop.is_set():  # the other list won meanwhile
                sock.close()
            else:
                results.put((sock, None))

    def start(infos: list[_AddressInfo]) -> None:
        threading.Thread(target=race, args=(infos,), name="imginspect-dial", daemon=True).start()

    start(primaries)
    running, fallbacks_started = 1, False
    first_error: OSError | None = None
    while True:
        try:
            sock, error = results.get(timeout=None if fallbacks_started else FALLBACK_DELAY)
        except queue.Empty:  # the primaries are still connecting: the fallbacks join in
            start(fallbacks)
            running, fallbacks_started = running + 1, True
            continue
        running -= 1
        if sock is not None:
            with lock:
                stop.set()
            while True:  # a loser that connected before stop was set
                try:
                    other, _ = results.get_nowait()
                except queue.Empty:
                    break
                if other is not None:
                    other.close()
            return sock
        first_error = first_error or error
        if not fallbacks_started:
            start(fallbacks)
            running, fallbacks_started = running + 1, True
        elif running == 0:
            assert first_error is not None
            raise first_error
