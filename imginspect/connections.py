"""Direct HTTP/1.1 connections: reuse per origin, the per-operation deadline, proxies.

transport.py decides *what* to send (retries, redirects, bounds, errors); this module sends
one request and hands back the streaming response. Direct requests speak HTTP/1.1 through
:mod:`imginspect.http11` on sockets opened here; ``httpx.Client`` and httpcore's pool added
URL merging, cookie, auth, redirect and decoder layers and a state machine per request, all of
which cost more CPU than the exchange (bench/README.md).

* **Direct connections** (no proxy) are kept per origin and TLS mode in a LIFO stack of idle
  connections: a request pops one (or opens a new one), and puts it back once its response
  is read. Taking and returning are O(1) under a lock held for a list operation; a
  connection is only ever touched by the thread that holds it, so none is closed while
  another thread uses it. At most :data:`MAX_IN_FLIGHT` requests are in flight.
* **Proxies** the environment names (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``,
  ``NO_PROXY``, by httpx's rules: see :mod:`imginspect._httpx_compat`) go through
  :mod:`imginspect.proxied` (httpcore's ``HTTPProxy`` pools), imported only then.
* **The deadline.** Every connect, TLS handshake, read and write is capped by what is left
  of the current :func:`deadline`: a timeout applies per socket read, so a server that
  trickles one byte now and then would otherwise never time out.
"""

from __future__ import annotations

import contextvars
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast
from urllib.parse import quote, urlsplit

from imginspect import http11, warmup

if TYPE_CHECKING:
    import ssl  # at run time only where TLS is used: a plain-HTTP run never loads it
    from collections.abc import Mapping

    from imginspect.proxied import ProxyPools

#: Requests in flight at once over direct connections (the CLI's --concurrency is at most
#: 64; --sizes fans out further), and idle connections kept per origin.
MAX_IN_FLIGHT = 64
MAX_IDLE_PER_ORIGIN = 64

# The per-reference deadline (--timeout). A context variable, so that each worker thread of a
# batch has its own; pools that fan out (e.g. --sizes) copy the context into their threads.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "imginspect_deadline", default=None
)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Every request made inside this block must finish within ``seconds`` from now."""
    token = _deadline.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining_time() -> float | None:
    """Seconds left before the current deadline, or None if there is none."""
    at = _deadline.get()
    return None if at is None else at - time.monotonic()


def _capped(timeout: float | None) -> float | None:
    left = remaining_time()
    if left is None:
        return timeout
    left = max(left, 0.001)  # 0 would mean "non-blocking" to the socket layer
    return left if timeout is None else min(timeout, left)


# ---------------------------------------------------------------------- requests


class InvalidURLError(ValueError):
    """A URL that cannot be requested (scheme, host or port)."""


#: Characters left as they are in a request target; everything else is percent-encoded
#: (as httpx does: a Location header may hold spaces or non-ASCII text).
_TARGET_SAFE = "!$&'()*+,;=:@/?%-._~[]"


class Target:
    """A parsed request URL: what a connection is keyed on, and the request line's target."""

    __slots__ = ("host", "host_header", "netloc", "port", "scheme", "target")

    def __init__(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidURLError(f"{exc}: {url[:200]!r}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise InvalidURLError(f"unsupported scheme {scheme!r}: {url[:200]!r}")
        host = parts.hostname or ""
        if not host:
            raise InvalidURLError(f"no host: {url[:200]!r}")
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise InvalidURLError(f"invalid host name: {url[:200]!r}") from None
        default = 443 if scheme == "https" else 80
        #: ``host[:port]`` as written, without user info (what certs.d and the breaker key on)
        self.netloc = parts.netloc.rpartition("@")[2]
        self.scheme = scheme
        self.host = host
        self.port = port if port is not None else default
        path = quote(parts.path or "/", safe=_TARGET_SAFE)
        query = quote(parts.query, safe=_TARGET_SAFE)
        self.target = f"{path}?{query}" if parts.query else path
        shown = f"[{host}]" if ":" in host else host
        self.host_header = shown if self.port == default else f"{shown}:{self.port}"


#: Per thread: connections opened since the current request started.
_opened = threading.local()


def opened_since_reset() -> int:
    """Connections this thread opened since :func:`reset_opened`."""
    return int(getattr(_opened, "count", 0))


def reset_opened() -> None:
    _opened.count = 0
    _opened.warm = None


def warm_taken_since_reset() -> str | None:
    """``host:port`` of the warm-up connection (:mod:`imginspect.warmup`) this thread took
    since :func:`reset_opened`, if it did."""
    taken: str | None = getattr(_opened, "warm", None)
    return taken


def _count_opened() -> None:
    _opened.count = opened_since_reset() + 1


class Request:
    """One request, ready for the wire: ``headers`` as bytes, ``Host`` first."""

    __slots__ = ("body", "connect_timeout", "headers", "method", "read_timeout", "target")

    def __init__(
        self,
        method: str,
        target: Target,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    @property
    def url(self) -> str:
        return f"{self.target.scheme}://{self.target.host_header}{self.target.target}"


def build_request(
    method: str,
    target: Target,
    headers: Iterable[tuple[str, str]],
    *,
    body: bytes | None,
    connect_timeout: float,
    read_timeout: float,
) -> Request:
    """A request with ``Host`` (and ``Content-Length`` for a body) set. Header values must
    be ASCII (UnicodeEncodeError otherwise: tokens and credentials are checked before they
    get here); a name or value with a line break is refused (ValueError), so nothing
    received can inject a header."""
    raw = [(b"Host", target.host_header.encode("ascii"))]
    raw += [(name.encode("ascii"), value.encode("ascii")) for name, value in headers]
    if body is not None:
        raw.append((b"Content-Length", str(len(body)).encode("ascii")))
    for name, value in raw:
        if b"\r" in value or b"\n" in value or not http11.is_token(name):
            raise ValueError(f"invalid header {name[:50]!r}")
    return Request(method, target, raw, body, connect_timeout, read_timeout)


def decode_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """``(name, value)`` pairs, names in lower case, decoded as httpx does: ASCII, else
    UTF-8, else Latin-1 (which decodes anything)."""
    pairs = list(raw)
    for encoding in ("ascii", "utf-8"):
        try:
            return tuple(
                [(name.decode(encoding).lower(), value.decode(encoding)) for name, value in pairs]
            )
        except UnicodeDecodeError:
            continue
    return tuple((name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in pairs)


# ---------------------------------------------------------------------- proxies

#: A proxy route pattern from the environment, as httpx reads it: ``scheme://host:port``
#: with ``all`` for any scheme, ``*`` or empty for any host, ``*.domain`` for subdomains,
#: ``*domain`` for the domain and its subdomains.
_PATTERN = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$")


class ProxyRule:
    """One ``mounts`` pattern of httpx (``httpx._utils.URLPattern``), matched on a parsed
    :class:`Target`; ``proxy`` None means: connect directly."""

    def __init__(self, pattern: str, proxy: str | None) -> None:
        match = _PATTERN.match(pattern)
        if match is None:
            raise ValueError(f"invalid proxy pattern {pattern!r}")
        scheme = match.group("scheme").lower()
        parts = urlsplit(f"{scheme}://{match.group('rest')}")
        self.scheme = "" if scheme == "all" else scheme
        host = (parts.hostname or "").lower()
        self.host = "" if host == "*" else host
        port = parts.port
        # httpx normalises the scheme's default port away, on patterns and URLs alike
        self.port = None if port == {"http": 80, "https": 443}.get(self.scheme) else port
        self.proxy = proxy
        self._host_regex: re.Pattern[str] | None
        if not self.host:
            self._host_regex = None
        elif self.host.startswith("*."):
            self._host_regex = re.compile(f"^.+\\.{re.escape(self.host[2:])}$")
        elif self.host.startswith("*"):
            self._host_regex = re.compile(f"^(.+\\.)?{re.escape(self.host[1:])}$")
        else:
            self._host_regex = re.compile(f"^{re.escape(self.host)}$")

    @property
    def priority(self) -> tuple[int, int, int]:
        # httpx's order: patterns with a port first, then longer hosts, then longer schemes
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def matches(self, target: Target) -> bool:
        if self.scheme and self.scheme != target.scheme:
            return False
        if self._host_regex is not None and not self._host_regex.match(target.host.lower()):
            return False
        if self.port is not None:
            default = 443 if target.scheme == "https" else 80
            port = None if target.port == default else target.port
            if self.port != port:
                return False
        return True


def proxy_rules(patterns: Mapping[str, str | None]) -> list[ProxyRule]:
    """Rules in httpx's matching order (the first that matches wins; none: direct)."""
    return sorted(
        (ProxyRule(pattern, proxy) for pattern, proxy in patterns.items()),
        key=lambda rule: rule.priority,
    )


def proxy_for(rules: list[ProxyRule], target: Target) -> str | None:
    for rule in rules:
        if rule.matches(target):
            return rule.proxy
    return None


# ---------------------------------------------------------------------- connections

#: (scheme, host, port, TLS mode) of a direct connection.
OriginKey = tuple[str, str, int, object]
#: Called once the response is read or abandoned: gives the connection back.
Release = Callable[[], None]


class Connections:
    """Every connection of a run: direct ones reused per origin and TLS mode, proxied ones
    through :mod:`imginspect.proxied`."""

    def __init__(self, proxies: Mapping[str, str | None] | None = None) -> None:
        """``proxies``: httpx mount patterns -> proxy URL or None (direct), e.g.
        :func:`imginspect._httpx_compat.environment_proxies`; invalid ones raise
        ValueError here."""
        self._rules = proxy_rules(proxies or {})
        self._proxy_pools: ProxyPools | None = None
        if any(rule.proxy is not None for rule in self._rules):
            from imginspect._httpx_compat import proxy_origin
            from imginspect.proxied import ProxyPools

            for rule in self._rules:
                if rule.proxy is not None:
                    proxy_origin(rule.proxy)  # refuse an unusable proxy now, not per request
            self._proxy_pools = ProxyPools(_capped, _count_opened, MAX_IN_FLIGHT)
        self._idle: dict[OriginKey, list[http11.Connection]] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._closed = False

    def send(
        self,
        request: Request,
        target: Target,
        *,
        tls_mode: object,
        ssl_context: Callable[[], ssl.SSLContext],
        pool_timeout: float | None,
        proxy_ssl_context: Callable[[], ssl.SSLContext] | None = None,
    ) -> tuple[http11.Response, Release]:
        """Send ``request`` (to ``target``) and return the response, whose body is still to
        be read, with the function that gives its connection back: call it once the body
        is read or given up (it closes the response). ``ssl_context`` is called only when an
        https connection is opened; ``tls_mode`` keys connections by it.
        ``proxy_ssl_context`` (default: ``ssl_context``) verifies an https proxy. Raises
        :mod:`imginspect.http11`'s exceptions."""
        if self._proxy_pools is not None:
            proxy = proxy_for(self._rules, target)
            if proxy is not None:
                return self._proxy_pools.send(
                    request,
                    target,
                    proxy,
                    tls_mode=tls_mode,
                    ssl_context=ssl_context,
                    proxy_ssl_context=proxy_ssl_context or ssl_context,
                )
        key: OriginKey = (target.scheme, target.host, target.port, tls_mode)
        if not self._slots.acquire(timeout=_capped(pool_timeout)):
            raise http11.PoolTimeout(f"no free connection within {pool_timeout} s")
        connection: http11.Connection | None = None
        try:
            connection = self._take(key)
            if connection is None:
                connection = self._open(target, ssl_context, request.connect_timeout)
            response = connection.request(
                request.method,
                target.target,
                request.headers,
                request.body,
                read_timeout=request.read_timeout,
                write_timeout=request.read_timeout,
            )
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise
        done = False

        def release() -> None:
            nonlocal done
            if done:
                return
            done = True
            try:
                response.close()
            finally:
                self._give_back(key, connection)
                self._slots.release()

        return response, release

    def _take(self, key: OriginKey) -> http11.Connection | None:
        """An idle connection to the origin, or None."""
        while True:
            with self._lock:
                stack = self._idle.get(key)
                connection = stack.pop() if stack else None
            if connection is None:
                return None
            # An idle connection the server has closed meanwhile reads as readable (EOF):
            # one poll of its socket, by the only thread that holds it.
            if not connection.has_expired():
                return connection
            connection.close()

    def _open(
        self, target: Target, ssl_context: Callable[[], ssl.SSLContext], timeout: float
    ) -> http11.Connection:
        """A new connection (the warm-up's, if one waits for this origin), TLS done for an
        https origin (only then is a TLS context built)."""
        host, port = target.host, target.port
        sock = warmup.take(host, port, _capped(timeout))
        if sock is not None and http11.is_readable(sock):
            # The server closed it while it waited (a timeout for connections that send
            # nothing, in servers and load balancers): connect anew, as for a pooled
            # connection gone stale. A TLS handshake on it would fail with an ssl.SSLError,
            # which the transport takes for a permanent failure: the request would fail.
            sock.close()
            sock = None
        if sock is not None:
            # Not counted as opened: it waited since start-up, so a request that fails on it
            # before any response byte is sent once more, as on a reused one.
            _opened.warm = f"{host}:{port}"
        else:
            try:
                sock = warmup.connect(host, port, _capped(timeout))
            except TimeoutError as exc:
                raise http11.ConnectTimeout(str(exc) or "timed out") from exc
            except OSError as exc:
                raise http11.ConnectError(str(exc) or type(exc).__name__) from exc
            _count_opened()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.scheme == "https":
                context = ssl_context()  # ALPN "http/1.1" is set where it is built
                sock.settimeout(_capped(timeout))
                # As ASCII bytes: ssl encodes a str name with the "idna" codec, whose import
                # (stringprep, unicodedata) costs over a millisecond. The host is ASCII (Target
                # applied IDNA to it), so OpenSSL is given the same name.
                sni = cast("str", host.encode("ascii"))  # typeshed: str only; bytes work
                sock = context.wrap_socket(sock, server_hostname=sni)
        except TimeoutError as exc:
            sock.close()
            raise http11.ConnectTimeout(str(exc) or "timed out") from exc
        except OSError as exc:  # ssl.SSLError included
            sock.close()
            raise http11.ConnectError(str(exc) or type(exc).__name__) from exc
        except BaseException:  # e.g. a certs.d directory that cannot be used (ssl_context)
            sock.close()
            raise
        return http11.Connection(sock, _capped)

    def _give_back(self, key: OriginKey, connection: http11.Connection) -> None:
        if connection.is_idle():
            with self._lock:
                if not self._closed:
                    stack = self._idle.setdefault(key, [])
                    if len(stack) < MAX_IDLE_PER_ORIGIN:
                        stack.append(connection)
                        return
        connection.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [c for stack in self._idle.values() for c in stack]
            self._idle.clear()
            pools = self._proxy_pools
        for connection in idle:
            connection.close()
        if pools is not None:
            pools.close()  # a later request through a proxy opens a new pool
