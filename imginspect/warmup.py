"""The first connection of a run, opened while the rest of imginspect loads.

A cold run spends about 100 ms importing its HTTP stack and reading configuration before it
sends anything; on a real network the DNS lookup and TCP handshake to the registry take a
round trip or more. The CLI calls :func:`start` as soon as it has parsed the first
reference, and :mod:`imginspect.connections` calls :func:`take` when it opens a
connection: if that is to exactly the host and port started here, it gets this socket
(waiting for the handshake if it is still under way) instead of connecting again, so the
handshake overlaps the imports. The same is done for a token service on another host
(:func:`start_for_realm`; the CLI asks it for Docker Hub's on a first run). Nothing is ever
sent on the socket before the transport takes it; one that is not taken (a mirror or
hosts.toml sent the request elsewhere) is closed at exit. Never when a proxy is configured:
then connections go to the proxy.

Standard library only (socket, threading; the proxy check reads the environment through
:mod:`imginspect._httpx_compat`, without httpx): importing it costs nothing measurable, which
is the point.
"""

from __future__ import annotations

import atexit
import socket
import threading

from imginspect import dial


class _Attempt:
    """One connect, in a daemon thread."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, name="imginspect-warmup", daemon=True).start()

    def _run(self) -> None:
        try:
            sock = connect(self.host, self.port, self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = sock
        except (OSError, ValueError):
            self.sock = None  # the transport connects itself, and reports the failure
        finally:
            self.done.set()


def connect(host: str, port: int, timeout: float | None) -> socket.socket:
    """A connection to ``host:port`` as Go's dialer opens one (:func:`imginspect.dial.connect`:
    Happy Eyeballs, each address its share of the timeout)."""
    return dial.connect(host, port, timeout)


_lock = threading.Lock()
_attempts: dict[tuple[str, int], list[_Attempt]] = {}


def proxied() -> bool:
    """Whether connections may go through a proxy (then nothing is opened here): the same
    reading of the environment (and, on macOS and Windows, the system settings) as the
    transport's."""
    from imginspect._httpx_compat import environment_proxies

    return any(proxy is not None for proxy in environment_proxies().values())


def start(host: str, port: int, *, count: int = 1, timeout: float = 10.0) -> bool:
    """Start ``count`` connections to ``host:port`` in the background; whether they were
    started (once per host and port)."""
    if proxied():
        return False
    key = (host.lower(), port)
    with _lock:
        if key in _attempts:
            return False
        if not _attempts:
            atexit.register(discard)
        _attempts[key] = [_Attempt(host, port, timeout) for _ in range(count)]
    return True


def start_for_domain(domain: str, *, insecure: bool = False, scheme_known: bool = False) -> bool:
    """:func:`start` for a reference's registry domain (``docker.io``: Docker Hub's API host),
    on its port, or 443: https comes first for every registry, insecure ones too. An insecure
    registry (``insecure``, or a loopback host) with a port whose scheme is not known yet
    gets two: its scheme is negotiated with an https attempt and a plain-http request at once,
    to that same port (see registry.py)."""
    from urllib.parse import urlsplit

    from imginspect.reference import DEFAULT_DOMAIN, DOCKER_HUB_API_HOST, is_loopback_host

    host = DOCKER_HUB_API_HOST if domain == DEFAULT_DOMAIN else domain
    try:
        parts = urlsplit(f"//{host}")
        name, explicit_port = parts.hostname, parts.port
    except ValueError:
        return False
    negotiates = (insecure or is_loopback_host(domain)) and not scheme_known
    count = 2 if negotiates and explicit_port is not None else 1
    return bool(name) and start(str(name), explicit_port or 443, count=count)


#: Docker Hub's token service, as its registry's challenge names it
#: (``Bearer realm="https://auth.docker.io/token",service="registry.docker.io"``).
DOCKER_HUB_REALM = "https://auth.docker.io/token"


def start_for_realm(realm: str, registry_host: str) -> bool:
    """:func:`start` for a token realm on another host than the registry's: its token is
    the run's first or second request (first when the challenge is known and the token is
    not), and connecting there would otherwise wait until then. An http(s) realm only;
    nothing for a realm on the registry's own host and port (that connection is reused)."""
    from urllib.parse import urlsplit

    origin = _origin(realm)
    if origin is None:
        return False
    registry = urlsplit(f"//{registry_host}")
    try:
        same = (registry.hostname, registry.port or 443) == origin
    except ValueError:
        return False
    return not same and start(*origin)


def start_for_url(url: str) -> bool:
    """:func:`start` for the host and port of an http(s) URL (a registry mirror's)."""
    origin = _origin(url)
    return origin is not None and start(*origin)


def _origin(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of an http(s) URL, the port defaulting to the scheme's; None for
    another scheme or a URL that does not parse."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not name:
        return None
    return name, port or (443 if parts.scheme == "https" else 80)


def take(host: str, port: int, timeout: float | None) -> socket.socket | None:
    """A socket started for ``host:port``, connected (waiting up to ``timeout`` seconds for
    its handshake), or None: nothing was started there, all are taken already, or it failed
    or is still connecting after ``timeout``."""
    with _lock:
        waiting = _attempts.get((host.lower(), port))
        attempt = waiting.pop(0) if waiting else None
    if attempt is None:
        return None
    if not attempt.done.wait(timeout):
        # Still connecting: let it finish on its own and close it then; the caller connects.
        threading.Thread(target=_close_when_done, args=(attempt,), daemon=True).start()
        return None
    return attempt.sock


def _close_when_done(attempt: _Attempt) -> None:
    attempt.done.wait(attempt.timeout + 1)
    if attempt.sock is not None:
        attempt.sock.close()


def discard() -> None:
    """Close every socket started here and not taken (at exit, or in tests)."""
    with _lock:
        left = [attempt for attempts in _attempts.values() for attempt in attempts]
        _attempts.clear()
    for attempt in left:
        if attempt.done.is_set() and attempt.sock is not None:
            attempt.sock.close()
