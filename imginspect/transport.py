"""HTTP transport: connections, TLS, redirects, bounded reads, and network errors.

This is the only module that talks to httpx (through :mod:`imginspect._httpx_compat`, which
holds every use of httpx beyond its documented API). It owns one connection pool per TLS mode,
built lazily (so a plain-HTTP run never builds a verifying TLS context), follows redirects
itself so that an ``Authorization`` header never reaches another host, reads every body
with a size bound (refusing by ``Content-Length`` before reading when it can), and turns
httpx exceptions into :class:`NetworkError`. It knows nothing about registries or auth.
"""

from __future__ import annotations

import contextvars
import datetime
import email.utils
import http.cookiejar
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from imginspect import __version__
from imginspect import _httpx_compat as compat

# Through the compatibility module, which imports them trimmed (see there).
from imginspect._httpx_compat import httpcore, httpx
from imginspect.errors import (
    ConnectionFailedError,
    ImginspectError,
    NetworkError,
    RegistryError,
    TooLargeError,
)
from imginspect.reference import is_docker_hub

USER_AGENT = f"imginspect/{__version__}"
MAX_REDIRECTS = 10
#: Connections per TLS mode (the CLI's --concurrency is at most 64).
MAX_CONNECTIONS = 64
#: After every try to connect to a host failed, further requests there fail at once for
#: this long (seconds); then one more request may try again.
UNREACHABLE_FOR = 30.0
#: Bodies of error answers and redirects are read only to quote them; never more than this.
MAX_QUOTED_BODY_BYTES = 64 * 1024
#: Headers never written to debug output.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 30.0

    def as_httpx(self, limit: float | None = None) -> httpx.Timeout:
        """httpx timeouts, each capped at ``limit`` seconds (what is left of a deadline)."""
        read, connect = self.read, self.connect
        if limit is not None:
            read, connect = min(read, max(limit, 0.001)), min(connect, max(limit, 0.001))
        return httpx.Timeout(read, connect=connect, pool=connect)


@dataclass(frozen=True)
class Response:
    """A fully read (and size-bounded) HTTP response. ``headers`` are ``(name, value)``
    pairs in the order received, names in lower case: plain values, no httpx types."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    url: str

    @staticmethod
    def header_pairs(items: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """``headers`` from ``(name, value)`` pairs, names of any case."""
        return tuple((name.lower(), value) for name, value in items)

    def header_list(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), in order."""
        key = name.lower()
        return [value for field, value in self.headers if field == key]

    def header(self, name: str) -> str | None:
        """Header ``name`` (any case); several fields are joined with ``", "``, as HTTP
        allows for a list-valued header (and as httpx does)."""
        values = self.header_list(name)
        return ", ".join(values) if values else None


Logger = Callable[[str], None]
#: The verifying TLS context for an https host (``host[:port]``); None: the default one.
SslContextForHost = Callable[[str], ssl.SSLContext | None]

#: Statuses worth another try: the server says it is busy or briefly broken.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Only these are retried: repeating them cannot change anything on the server.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})

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


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with jittered exponential backoff."""

    tries: int = 3
    #: longest single wait we accept, from Retry-After or backoff (--max-wait)
    max_wait: float = 5.0
    base_delay: float = 0.25

    def backoff(self, attempt: int) -> float:
        delay = self.base_delay * (2 ** (attempt - 1))
        return float(min(self.max_wait, delay * random.uniform(0.5, 1.5)))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    # ASCII digits only: str.isdigit() is also true for "²" (U+00B2), which float() refuses, or
    # for other scripts' digits HTTP does not mean (a header decoded as Latin-1 may hold them).
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing (httpx always has one)."""

    def __init__(self) -> None:
        super().__init__(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


#: Per thread: connections opened since the current request started (see _DeadlineBackend).
_connections = threading.local()


def _host_port(url: str) -> str:
    """``host[:port]`` of a URL, without user info: what certs.d and the breaker key on."""
    return urlsplit(url).netloc.rpartition("@")[2]


def _same_host(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.hostname, pa.port or _default_port(pa.scheme)) == (
        pb.hostname,
        pb.port or _default_port(pb.scheme),
    )


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class HttpTransport:
    """Sends requests with bounded bodies; one instance is shared by a whole run."""

    def __init__(
        self,
        *,
        timeouts: Timeouts | None = None,
        log: Logger | None = None,
        retry: RetryPolicy | None = None,
        ssl_context_for: SslContextForHost | None = None,
    ) -> None:
        """``ssl_context_for`` gives a host its own verifying context (certs.d: extra CAs,
        client certificate); hosts it answers None for share the default verifying client.
        It is asked for https URLs with verification only, and may raise an
        :class:`~imginspect.errors.ImginspectError` (e.g. a broken certs.d directory)."""
        self._timeouts = timeouts or Timeouts()
        self._retry = retry or RetryPolicy()
        self._log = log
        self._ssl_context_for = ssl_context_for
        # Keyed by TLS mode: True (default verification), False (none), or "host[:port]"
        # for a host with its own context.
        self._clients: dict[bool | str, httpx.Client] = {}
        self._clients_lock = threading.Lock()
        self._trust_context: ssl.SSLContext | None = None
        #: per host[:port]: when connecting there last failed for good, and how (the breaker)
        self._unreachable: dict[str, tuple[float, ConnectionFailedError]] = {}

    @property
    def log(self) -> Logger | None:
        """Where ``--debug`` lines go (None: nowhere)."""
        return self._log

    # ------------------------------------------------------------------ clients

    def _client(self, verify: bool, tls_host: str | None) -> httpx.Client:
        """The client for a TLS mode: no verification, the system trust store, or the
        context certs.d gives ``tls_host`` (``host[:port]`` of the registry the request is
        for: its redirects, e.g. to blob storage, are verified the same way, as docker does)."""
        key: bool | str = verify
        context: ssl.SSLContext | None = None
        if verify and tls_host is not None and self._ssl_context_for is not None:
            context = self._ssl_context_for(tls_host)
            if context is not None:
                key = tls_host
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                if context is None:
                    context = self._default_context() if verify else _unverified_context()
                client = _new_client(context, self._timeouts)
                self._clients[key] = client
        return client

    def _default_context(self) -> ssl.SSLContext:
        """The system trust store, loaded once per run, when a verified connection needs it."""
        if self._trust_context is None:
            from imginspect.trust import system_trust_context

            self._trust_context = system_trust_context()
        return self._trust_context

    def close(self) -> None:
        with self._clients_lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_bytes: int,
        what: str,
        verify: bool = True,
        follow_redirects: bool = False,
        data: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> Response:
        """Send one request (following redirects if asked) and read its body, bounded.

        ``what`` names the thing fetched, for error messages ("manifest", "config blob").
        On a redirect to another host, or from https to http, ``Authorization`` is dropped;
        every hop is verified with the TLS settings of the first URL's host. GET and HEAD
        are retried (``retry``) on connection failures and on 408/429/5xx answers.
        """
        current_headers = dict(headers or {})
        current_url = url
        current_method = method
        tls_host = _host_port(url)
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._send_with_retry(
                current_method,
                current_url,
                current_headers,
                max_bytes=max_bytes,
                what=what,
                verify=verify,
                tls_host=tls_host,
                data=data,
                retry=retry and current_method in IDEMPOTENT_METHODS,
            )
            if not (follow_redirects and response.status in (301, 302, 303, 307, 308)):
                return response
            location = response.header("location")
            if not location:
                return response
            try:
                next_url = urljoin(current_url, location)
                scheme = urlsplit(next_url).scheme
                cross_host = not _same_host(current_url, next_url)
            except ValueError:
                raise RegistryError(
                    f"registry sent an invalid redirect for {what}: {location[:200]!r}"
                ) from None
            if scheme not in ("http", "https"):
                raise RegistryError(f"refusing redirect of {what} to non-HTTP URL {scheme}:")
            if cross_host or (urlsplit(current_url).scheme == "https" and scheme == "http"):
                # Credentials belong to the registry, never to wherever it redirects, nor in
                # clear text on the wire.
                current_headers = {
                    k: v for k, v in current_headers.items() if k.lower() != "authorization"
                }
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                current_method = "GET"
                data = None
            current_url = next_url
        raise RegistryError(f"too many redirects fetching {what} (more than {MAX_REDIRECTS})")

    def _send_with_retry(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        max_bytes: int,
        what: str,
        verify: bool,
        tls_host: str,
        data: Mapping[str, str] | None,
        retry: bool,
    ) -> Response:
        policy = self._retry
        host = _host_port(url)
        self._check_reachable(host)
        attempt = 0
        retried_429 = False
        while True:
            attempt += 1
            last_try = not retry or attempt >= policy.tries
            response: Response | None = None
            started = time.monotonic()
            try:
                response = self._send_once(
                    method,
                    url,
                    headers,
                    max_bytes=max_bytes,
                    what=what,
                    verify=verify,
                    tls_host=tls_host,
                    data=data,
                    idempotent=method in IDEMPOTENT_METHODS,
                )
            except ImginspectError as exc:
                if self._log is not None:
                    elapsed = (time.monotonic() - started) * 1000
                    self._log(f"{method} {url} -> failed ({elapsed:.1f} ms): {exc.message}")
                unreachable = isinstance(exc, ConnectionFailedError) and not exc.permanent
                if unreachable and retry and last_try:
                    # Every try failed to connect: later requests to this host fail at once.
                    assert isinstance(exc, ConnectionFailedError)
                    self._mark_unreachable(host, exc)
                # A TLS handshake or name lookup failure will not heal in a second.
                if not unreachable or last_try:
                    raise
                delay, reason = policy.backoff(attempt), exc.message
            else:
                if last_try or response.status not in RETRY_STATUSES:
                    return response
                wait = parse_retry_after(response.header("retry-after"))
                if wait is not None and wait > policy.max_wait:
                    return response  # longer than we may wait: the caller reports it
                if response.status == 429 and wait is None:
                    # No Retry-After: one cheap retry at most, and none of a GET on a registry
                    # that counts pulls (RateLimit-* headers, Docker Hub): it would cost one.
                    counted = response.header("ratelimit-limit") is not None or (
                        response.header("ratelimit-remaining") is not None
                    )
                    if retried_429 or (counted and method == "GET"):
                        return response
                    retried_429 = True
                delay = wait if wait is not None else policy.backoff(attempt)
                reason = f"HTTP {response.status}"
            left = remaining_time()
            if left is not None and delay >= left:
                if response is not None:
                    return response  # what the server said is more useful than "no time"
                raise NetworkError(f"no time left to retry {what} from {_origin(url)}: {reason}")
            if self._log is not None:
                self._log(
                    f"retry {attempt}/{policy.tries - 1} of {method} {url} "
                    f"in {delay:.2f} s ({reason})"
                )
            time.sleep(delay)

    # ------------------------------------------------------------------ unreachable hosts

    def _check_reachable(self, host: str) -> None:
        """Fail at once for a host every try of an earlier request failed to connect to (a
        circuit breaker, as regclient keeps per-host backoff): in a batch, the references
        after the first ones to a dead registry fail in milliseconds, not retries later."""
        known = self._unreachable.get(host)
        if known is None:
            return
        since, failure = known
        if time.monotonic() - since > UNREACHABLE_FOR:
            self._unreachable.pop(host, None)  # worth another try
            return
        error = ConnectionFailedError(
            f"{failure.message} (not retried: connecting failed moments ago in this run)",
            hint=failure.hint,
        )
        error.permanent = True
        raise error

    def _mark_unreachable(self, host: str, failure: ConnectionFailedError) -> None:
        self._unreachable[host] = (time.monotonic(), failure)

    def _send_once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        max_bytes: int,
        what: str,
        verify: bool,
        tls_host: str,
        data: Mapping[str, str] | None,
        idempotent: bool,
    ) -> Response:
        client = self._client(verify, tls_host)
        started = time.monotonic()
        left = remaining_time()
        if left is not None and left <= 0:
            raise _deadline_passed(what, url)
        timeout = self._timeouts.as_httpx(limit=left)
        try:
            request = client.build_request(method, url, headers=headers, data=data, timeout=timeout)
            response = self._send_on_connection(client, request, idempotent=idempotent)
            try:
                body = self._read_bounded(response, max_bytes=max_bytes, what=what, url=url)
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            left = remaining_time()
            if left is not None and left <= 0.05:
                raise _deadline_passed(what, url) from None
            raise NetworkError(
                f"timed out fetching {what} from {_origin(url)} ({type(exc).__name__})",
                hint="the registry did not answer in time; check the network or retry later",
            ) from None
        except httpx.ConnectError as exc:
            failure = ConnectionFailedError(
                f"cannot connect to {_origin(url)}: {_reason(exc)}",
                hint=_connect_hint(exc, tls_host),
            )
            failure.permanent = _is_permanent_connect_failure(exc)
            raise failure from None
        except httpx.RemoteProtocolError as exc:
            if "location header" in str(exc).lower():
                raise RegistryError(
                    f"registry sent an invalid redirect for {what}: {_reason(exc)}"
                ) from None
            raise _connection_broke(what, url, exc) from None
        except httpx.InvalidURL as exc:
            raise RegistryError(f"invalid URL for {what}: {_reason(exc)}") from None
        except (httpx.ReadError, httpx.WriteError) as exc:
            raise _connection_broke(what, url, exc) from None
        except httpx.DecodingError as exc:
            raise RegistryError(
                f"cannot decode {what} from {_origin(url)}: {_reason(exc)}"
            ) from None
        except httpx.HTTPError as exc:
            raise NetworkError(
                f"HTTP error fetching {what} from {_origin(url)}: {_reason(exc)}"
            ) from None
        if self._log is not None:
            elapsed = (time.monotonic() - started) * 1000
            self._log(
                f"{method} {url} -> {response.status_code} "
                f"({len(body)} bytes, {elapsed:.1f} ms){_debug_headers(response.headers)}"
            )
        received = Response.header_pairs(response.headers.multi_items())
        return Response(response.status_code, received, body, url)

    def _send_on_connection(
        self, client: httpx.Client, request: httpx.Request, *, idempotent: bool
    ) -> httpx.Response:
        """``client.send``; a GET or HEAD whose *reused* keep-alive connection turns out to
        be closed before any response byte (the server's or a load balancer's idle timeout
        fired as we reused it) is sent once more, on a fresh connection, as Go's net/http,
        urllib3 and curl do. A failure on a fresh connection is never retried here."""
        _connections.opened = 0
        try:
            return client.send(request, stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            reused = _connections.opened == 0
            if not (idempotent and reused):
                raise
            if self._log is not None:
                self._log(
                    f"{request.method} {request.url}: reused connection was closed "
                    f"({_reason(exc)}); once more on a new connection"
                )
            return client.send(request, stream=True)

    @staticmethod
    def _read_bounded(response: httpx.Response, *, max_bytes: int, what: str, url: str) -> bytes:
        if response.request.method == "HEAD":
            # Content-Length describes the body a GET would have sent; there is none to
            # read, but reading the (empty) stream returns the connection to the pool.
            response.read()
            return b""
        # Error and redirect bodies are only ever quoted: a few KiB, whatever the caller
        # would accept for the document it asked for.
        quoted_only = response.status_code >= 300
        if quoted_only:
            max_bytes = MAX_QUOTED_BODY_BYTES
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            if not quoted_only:
                raise TooLargeError(
                    f"{what} from {_origin(url)} is {int(length)} bytes, "
                    f"more than the {max_bytes} bytes accepted"
                )
            return b""  # an oversized error body is not worth reading
        chunks: list[bytes] = []
        total = 0

        def too_slow() -> NetworkError:
            return NetworkError(
                f"gave up reading {what} from {_origin(url)}: the --timeout deadline passed "
                f"after {total} bytes",
                hint="the registry is sending very slowly; raise --timeout or retry later",
            )

        body = response.iter_bytes()
        while True:
            try:
                chunk = next(body, None)
            except httpx.TimeoutException:
                left = remaining_time()
                if left is not None and left <= 0.05:  # the deadline, not a read timeout
                    raise too_slow() from None
                raise
            if chunk is None:
                break
            left = remaining_time()
            if left is not None and left <= 0:
                raise too_slow()
            total += len(chunk)
            if total > max_bytes:
                if quoted_only:
                    break
                raise TooLargeError(
                    f"{what} from {_origin(url)} exceeds the {max_bytes} bytes accepted"
                )
            chunks.append(chunk)
        return b"".join(chunks)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the deadline.

    httpcore applies the read timeout to each socket read, so a server that sends one byte
    now and then (headers or body) is never timed out; here each operation's timeout is
    capped by what is left of the current deadline (:func:`deadline`), which makes the
    deadline hold whatever the server does.
    """

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


class _DeadlineBackend(httpcore.NetworkBackend):
    """Opens :class:`_DeadlineStream` connections (the connect itself is capped too)."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, _capped(timeout), local_address, socket_options
        )
        _connections.opened = getattr(_connections, "opened", 0) + 1
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, _capped(timeout), socket_options)
        _connections.opened = getattr(_connections, "opened", 0) + 1
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _capped(timeout: float | None) -> float | None:
    left = remaining_time()
    if left is None:
        return timeout
    left = max(left, 0.001)  # 0 would mean "non-blocking" to the socket layer
    return left if timeout is None else min(timeout, left)


#: httpcore closes idle connections it judges surplus (more than the keep-alive limit) or
#: expired (idle longer than the keep-alive expiry) outside its lock, possibly after another
#: thread has been handed one of them: that thread then fails with [Errno 9] Bad file
#: descriptor, or, when the close lands while it waits for the answer, blocks until its read
#: timeout. So: keep-alive limit = connection limit (never a surplus), and no client-side
#: expiry (a connection the server closed is still detected, and a reused one that fails
#: before any response byte is sent once more: see _send_on_connection).
_LIMITS = httpx.Limits(
    max_connections=MAX_CONNECTIONS,
    max_keepalive_connections=MAX_CONNECTIONS,
    keepalive_expiry=None,
)


def _new_client(context: ssl.SSLContext, timeouts: Timeouts) -> httpx.Client:
    """A client whose every connection, direct or through a proxy the environment names,
    is opened by :class:`_DeadlineBackend` (our own transports: httpx's ``HTTPTransport``
    takes no network backend). ``trust_env`` is off because we read the environment's
    proxies ourselves (a client given a transport ignores them) and TLS comes from
    ``context``."""
    backend = _DeadlineBackend(httpcore.SyncBackend())

    def pool(proxy: httpx.Proxy | None) -> compat.PoolTransport:
        return compat.PoolTransport(
            ssl_context=context, limits=_LIMITS, network_backend=backend, proxy=proxy
        )

    direct = pool(None)
    try:
        mounts = compat.environment_mounts(direct, pool)
    except ValueError as exc:  # a proxy URL httpx or we cannot use
        direct.close()
        raise NetworkError(
            f"cannot use the proxy the environment names: {exc}",
            hint="set HTTPS_PROXY/HTTP_PROXY/ALL_PROXY to an http:// or https:// proxy URL",
        ) from None
    return httpx.Client(
        transport=direct,
        mounts=mounts,
        trust_env=False,
        timeout=timeouts.as_httpx(),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        # A registry client needs no cookie jar: cookies (a load balancer's, or Harbor's
        # session) would only be replayed, and could follow a redirect to a CDN host.
        cookies=_NoCookies(),
    )


def _unverified_context() -> ssl.SSLContext:
    """TLS without verification (``--insecure``, an insecure-registries entry)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _deadline_passed(what: str, url: str) -> NetworkError:
    return NetworkError(
        f"gave up fetching {what} from {_origin(url)}: the --timeout deadline passed",
        hint="raise --timeout, or check the registry's health",
    )


def _connection_broke(what: str, url: str, exc: BaseException) -> NetworkError:
    return NetworkError(
        f"connection to {_origin(url)} failed while fetching {what}: {_reason(exc)}"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _is_permanent_connect_failure(exc: BaseException) -> bool:
    """TLS handshake and DNS failures: retrying at once cannot help."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, (ssl.SSLError, socket.gaierror)):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return "SSL" in text or "Name or service not known" in text or "nodename nor servname" in text


def _connect_hint(exc: BaseException, host: str) -> str | None:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        if is_docker_hub(host):
            # The daemon never reads certs.d for Docker Hub: a proxy that re-signs TLS is the
            # usual cause, and its CA belongs in the system store.
            return (
                "the certificate is not trusted: if a proxy inspects TLS here, add its CA to "
                "the operating system's trust store (e.g. update-ca-certificates)"
            )
        return (
            "the registry's TLS certificate is not trusted; add its CA to the operating "
            f"system's trust store or to /etc/docker/certs.d/{host}/ca.crt, or use "
            "--insecure for a test registry"
        )
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return "the registry may speak plain HTTP; use --insecure if that is intended"
    return None


def _debug_headers(headers: httpx.Headers) -> str:
    interesting = ("content-type", "content-length", "docker-content-digest", "location")
    parts = [f"{k}={headers[k]}" for k in interesting if k in headers]
    parts += [f"{k}=<redacted>" for k in headers if k.lower() in _SECRET_HEADERS]
    return (" " + " ".join(parts)) if parts else ""
