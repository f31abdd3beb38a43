"""HTTP/1.1 exchanges over httpcore: connection reuse, the per-operation deadline, proxies.

transport.py decides *what* to send (retries, redirects, bounds, errors); this module sends
one request and hands back httpcore's streaming response. Requests go to httpcore, httpx's
connection layer, directly: ``httpx.Client`` adds URL merging, cookie, auth, redirect and
decoder layers per request, all of which transport.py does itself, and they cost more CPU
than the exchange (0.45 ms of 1.0 ms per request in a batch, see bench/README.md).

* **Direct connections** (no proxy) are kept per origin and TLS mode in a LIFO stack of idle
  connections: a request pops one (or opens a new one), and puts it back once its response
  is read. Taking and returning are O(1) under a lock held for a list operation; a
  connection is only ever touched by the thread that holds it, so none is closed while
  another thread uses it (the race httpcore's pool has when it closes surplus or expired
  connections outside its lock). At most :data:`MAX_IN_FLIGHT` requests are in flight.
* **Proxies** the environment names (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``,
  ``NO_PROXY``, by httpx's rules: see :mod:`imginspect._httpx_compat`) each get an
  ``httpcore.HTTPProxy`` pool (forwarding for http, ``CONNECT`` tunnels for https).
* **The deadline.** Every connect, TLS handshake, read and write is capped by what is left
  of the current :func:`deadline`: httpcore applies its read timeout per socket read, so a
  server that trickles one byte now and then would otherwise never time out.
"""

from __future__ import annotations

import contextvars
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpcore

from imginspect import warmup

if TYPE_CHECKING:
    from collections.abc import Mapping

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


#: Per thread: connections opened since the current request started (see _DeadlineBackend).
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


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _capped(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, _capped(timeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _SocketStream(httpcore.NetworkStream):
    """An httpcore stream over a socket connected elsewhere (:mod:`imginspect.warmup`), with
    httpcore's exceptions (httpcore's own stream class is not public API)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self._sock.settimeout(timeout)
            return self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            while buffer:
                self._sock.settimeout(timeout)
                buffer = buffer[self._sock.send(buffer) :]
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        try:
            self._sock.settimeout(timeout)
            return _SocketStream(
                ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
            )
        except TimeoutError as exc:
            self.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:  # ssl.SSLError included
            self.close()
            raise httpcore.ConnectError(str(exc)) from exc

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object" and isinstance(self._sock, ssl.SSLSocket):
            return self._sock  # what httpcore asks of it (the ALPN protocol), it has
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return _readable(self._sock)
        return None


def _readable(sock: socket.socket) -> bool:
    """Whether reading would not block: data, or the peer closed (an idle connection that
    is readable is one the server closed)."""
    if sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class DeadlineBackend(httpcore.NetworkBackend):
    """Opens :class:`_DeadlineStream` connections (the connect itself is capped too), and
    counts them per thread (:func:`opened_since_reset`)."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if local_address is None and not socket_options:
            warm = warmup.take(host, port, _capped(timeout))
            if warm is not None:
                _opened.warm = f"{host}:{port}"
                # Not counted as opened: it waited since start-up, so a request that fails
                # on it before any response byte is sent once more, as on a reused one.
                return _DeadlineStream(_SocketStream(warm))
        stream = self._inner.connect_tcp(
            host, port, _capped(timeout), local_address, socket_options
        )
        _opened.count = opened_since_reset() + 1
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, _capped(timeout), socket_options)
        _opened.count = opened_since_reset() + 1
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


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

    def core_url(self) -> httpcore.URL:
        default = 443 if self.scheme == "https" else 80
        return httpcore.URL(
            scheme=self.scheme.encode(),
            host=self.host.encode(),
            # none for the default port, as httpx: a proxy's request line has no ":80"
            port=None if self.port == default else self.port,
            target=self.target.encode("ascii"),
        )


def build_request(
    method: str,
    target: Target,
    headers: Iterable[tuple[str, str]],
    *,
    body: bytes | None,
    connect_timeout: float,
    read_timeout: float,
) -> httpcore.Request:
    """An httpcore request with ``Host`` (and ``Content-Length`` for a body) set. Header
    values must be ASCII (UnicodeEncodeError otherwise: tokens and credentials are checked
    before they get here)."""
    raw = [(b"Host", target.host_header.encode("ascii"))]
    raw += [(name.encode("ascii"), value.encode("ascii")) for name, value in headers]
    if body is not None:
        raw.append((b"Content-Length", str(len(body)).encode("ascii")))
    return httpcore.Request(
        method=method.encode("ascii"),
        url=target.core_url(),
        headers=raw,
        content=body if body is not None else b"",
        extensions={
            "timeout": {
                "connect": connect_timeout,
                "read": read_timeout,
                "write": read_timeout,
                "pool": connect_timeout,
            }
        },
    )


def decode_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """``(name, value)`` pairs, names in lower case, decoded as httpx does: ASCII, else
    UTF-8, else Latin-1 (which decodes anything)."""
    pairs = list(raw)
    for encoding in ("ascii", "utf-8"):
        try:
            return tuple(
                (name.decode(encoding).lower(), value.decode(encoding)) for name, value in pairs
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


def _proxy_pool(
    proxy_url: str, ssl_context: ssl.SSLContext, backend: httpcore.NetworkBackend
) -> httpcore.HTTPProxy:
    from imginspect._httpx_compat import proxy_origin

    scheme, host, port, path, credentials = proxy_origin(proxy_url)
    return httpcore.HTTPProxy(
        proxy_url=httpcore.URL(scheme=scheme, host=host, port=port, target=path),
        proxy_auth=credentials,
        ssl_context=ssl_context,
        # Surplus or expired connections closed outside httpcore's lock race with the thread
        # handed them: keep-alive limit = connection limit, and no client-side expiry.
        max_connections=MAX_IN_FLIGHT,
        max_keepalive_connections=MAX_IN_FLIGHT,
        keepalive_expiry=None,
        network_backend=backend,
    )


# ---------------------------------------------------------------------- connections

#: (scheme, host, port, TLS mode) of a direct connection.
OriginKey = tuple[str, str, int, object]
#: Called once the response is read or abandoned: gives the connection back.
Release = Callable[[], None]


class Connections:
    """Every connection of a run: direct ones reused per origin and TLS mode, proxied ones
    through one httpcore pool per proxy and TLS mode."""

    def __init__(self, proxies: Mapping[str, str | None] | None = None) -> None:
        """``proxies``: httpx mount patterns -> proxy URL or None (direct), e.g.
        :func:`imginspect._httpx_compat.environment_proxies`; invalid ones raise
        ValueError here."""
        self.backend = DeadlineBackend()
        self._rules = proxy_rules(proxies or {})
        if any(rule.proxy is not None for rule in self._rules):
            from imginspect._httpx_compat import proxy_origin

            for rule in self._rules:
                if rule.proxy is not None:
                    proxy_origin(rule.proxy)  # refuse an unusable proxy now, not per request
        self._idle: dict[OriginKey, list[httpcore.HTTPConnection]] = {}
        self._proxy_pools: dict[tuple[str, object], httpcore.HTTPProxy] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._closed = False

    def send(
        self,
        request: httpcore.Request,
        target: Target,
        *,
        tls_mode: object,
        ssl_context: Callable[[], ssl.SSLContext],
        pool_timeout: float | None,
    ) -> tuple[httpcore.Response, Release]:
        """Send ``request`` (to ``target``) and return the response, whose body is still to
        be read, with the function that gives its connection back: call it once the body
        is read or given up (it closes the response). ``ssl_context`` is called only when an
        https connection is opened; ``tls_mode`` keys connections by it."""
        proxy = proxy_for(self._rules, target) if self._rules else None
        if proxy is not None:
            pool = self._proxy_pool(proxy, tls_mode, ssl_context)
            response = pool.handle_request(request)
            return response, response.close
        key: OriginKey = (target.scheme, target.host, target.port, tls_mode)
        if not self._slots.acquire(timeout=_capped(pool_timeout)):
            raise httpcore.PoolTimeout(f"no free connection within {pool_timeout} s")
        connection: httpcore.HTTPConnection | None = None
        try:
            connection = self._take(key, target, ssl_context)
            try:
                response = connection.handle_request(request)
            except httpcore.ConnectionNotAvailable:
                # Not idle after all (the server closed it as we took it): a new one.
                connection.close()
                connection = self._new(target, ssl_context)
                response = connection.handle_request(request)
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

    def _take(
        self, key: OriginKey, target: Target, ssl_context: Callable[[], ssl.SSLContext]
    ) -> httpcore.HTTPConnection:
        while True:
            with self._lock:
                stack = self._idle.get(key)
                connection = stack.pop() if stack else None
            if connection is None:
                return self._new(target, ssl_context)
            # An idle connection the server has closed meanwhile reads as readable (EOF):
            # one poll of its socket, by the only thread that holds it.
            if connection.is_idle() and not connection.has_expired():
                return connection
            connection.close()

    def _new(
        self, target: Target, ssl_context: Callable[[], ssl.SSLContext]
    ) -> httpcore.HTTPConnection:
        return httpcore.HTTPConnection(
            origin=httpcore.Origin(target.scheme.encode(), target.host.encode(), target.port),
            # Only an https origin uses it: a plain-HTTP run builds no TLS context.
            ssl_context=ssl_context() if target.scheme == "https" else None,
            network_backend=self.backend,
        )

    def _give_back(self, key: OriginKey, connection: httpcore.HTTPConnection) -> None:
        if connection.is_idle():
            with self._lock:
                if not self._closed:
                    stack = self._idle.setdefault(key, [])
                    if len(stack) < MAX_IDLE_PER_ORIGIN:
                        stack.append(connection)
                        return
        connection.close()

    def _proxy_pool(
        self, proxy: str, tls_mode: object, ssl_context: Callable[[], ssl.SSLContext]
    ) -> httpcore.HTTPProxy:
        key = (proxy, tls_mode)
        with self._lock:
            pool = self._proxy_pools.get(key)
            if pool is None:
                pool = _proxy_pool(proxy, ssl_context(), self.backend)
                self._proxy_pools[key] = pool
        return pool

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [c for stack in self._idle.values() for c in stack]
            self._idle.clear()
            pools = list(self._proxy_pools.values())
            self._proxy_pools.clear()
        for connection in idle:
            connection.close()
        for pool in pools:
            pool.close()
