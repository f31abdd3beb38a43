"""HTTP transport: connections, TLS, redirects, bounded reads, and network errors.

This is the only module that talks to httpx. It owns one connection pool per TLS mode,
built lazily (so a plain-HTTP run never builds a verifying TLS context), follows redirects
itself so that an ``Authorization`` header never reaches another host, reads every body
with a size bound (refusing by ``Content-Length`` before reading when it can), and turns
httpx exceptions into :class:`NetworkError`. It knows nothing about registries or auth.
"""

from __future__ import annotations

import contextvars
import datetime
import email.utils
import random
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

if "httpx" not in sys.modules:
    # httpx's package __init__ imports its own command-line tool (httpx._main), which pulls
    # in rich, click's extras and pygments: a third of a cold start. It guards that import
    # with ``except ImportError``; a None entry makes it fail at once, and httpx's API is
    # untouched.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpcore
import httpx

if "httpx._main" in sys.modules and sys.modules["httpx._main"] is None:
    del sys.modules["httpx._main"]  # leave `import httpx._main` working for anyone else

from imginspect import __version__
from imginspect.errors import (
    ConnectionFailedError,
    ImginspectError,
    NetworkError,
    RegistryError,
    TooLargeError,
)

USER_AGENT = f"imginspect/{__version__}"
MAX_REDIRECTS = 10
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
    """A fully read (and size-bounded) HTTP response."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        value: str | None = self.headers.get(name)
        return value


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

    # ------------------------------------------------------------------ clients

    def _client(self, verify: bool, url: str = "") -> httpx.Client:
        key: bool | str = verify
        context: ssl.SSLContext | None = None
        if verify and self._ssl_context_for is not None:
            parts = urlsplit(url)
            if parts.scheme == "https":
                host = parts.netloc.rpartition("@")[2]
                context = self._ssl_context_for(host)
                if context is not None:
                    key = host
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                if context is not None:
                    verify_arg: ssl.SSLContext | bool = context
                else:
                    verify_arg = verify
                client = httpx.Client(
                    verify=verify_arg,
                    timeout=self._timeouts.as_httpx(),
                    follow_redirects=False,
                    headers={"User-Agent": USER_AGENT},
                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
                )
                _enforce_deadlines(client)
                self._clients[key] = client
        return client

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
        On a redirect to another host, ``Authorization`` is dropped. GET and HEAD are
        retried (``retry``) on connection failures and on 408/429/5xx answers.
        """
        current_headers = dict(headers or {})
        current_url = url
        current_method = method
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._send_with_retry(
                current_method,
                current_url,
                current_headers,
                max_bytes=max_bytes,
                what=what,
                verify=verify,
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
                # Credentials belong to the registry, never to wherever it redirects.
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
        data: Mapping[str, str] | None,
        retry: bool,
    ) -> Response:
        policy = self._retry
        attempt = 0
        while True:
            attempt += 1
            last_try = not retry or attempt >= policy.tries
            response: Response | None = None
            started = time.monotonic()
            try:
                response = self._send_once(
                    method, url, headers, max_bytes=max_bytes, what=what, verify=verify, data=data
                )
            except ImginspectError as exc:
                if self._log is not None:
                    elapsed = (time.monotonic() - started) * 1000
                    self._log(f"{method} {url} -> failed ({elapsed:.1f} ms): {exc.message}")
                # A TLS handshake or name lookup failure will not heal in a second.
                if not isinstance(exc, ConnectionFailedError) or last_try or exc.permanent:
                    raise
                delay, reason = policy.backoff(attempt), exc.message
            else:
                if last_try or response.status not in RETRY_STATUSES:
                    return response
                wait = parse_retry_after(response.header("retry-after"))
                if wait is not None and wait > policy.max_wait:
                    return response  # longer than we may wait: the caller reports it
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

    def _send_once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        max_bytes: int,
        what: str,
        verify: bool,
        data: Mapping[str, str] | None,
    ) -> Response:
        client = self._client(verify, url)
        started = time.monotonic()
        left = remaining_time()
        if left is not None and left <= 0:
            raise _deadline_passed(what, url)
        timeout = self._timeouts.as_httpx(limit=left)
        try:
            request = client.build_request(method, url, headers=headers, data=data, timeout=timeout)
            response = client.send(request, stream=True)
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
                hint=_connect_hint(exc),
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
        return Response(response.status_code, response.headers, body, url)

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
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._inner.connect_unix_socket(path, _capped(timeout), socket_options)
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _capped(timeout: float | None) -> float | None:
    left = remaining_time()
    if left is None:
        return timeout
    left = max(left, 0.001)  # 0 would mean "non-blocking" to the socket layer
    return left if timeout is None else min(timeout, left)


def _enforce_deadlines(client: httpx.Client) -> None:
    """Put :class:`_DeadlineBackend` under the client's transports: the direct one and
    those for proxies from the environment (passing our own transport to httpx.Client would
    turn those off). httpx does not expose the backend; if its internals ever change,
    requests still work, each operation bounded by its timeout (and the body read loop
    still checks the deadline)."""
    transports = [getattr(client, "_transport", None)]
    transports += list(getattr(client, "_mounts", {}).values())
    for transport in transports:
        pool: Any = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend):
            pool._network_backend = _DeadlineBackend(backend)


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


def _connect_hint(exc: BaseException) -> str | None:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            "the registry's TLS certificate is not trusted; add its CA to "
            "/etc/docker/certs.d/HOST/ca.crt, or use --insecure for a test registry"
        )
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return "the registry may speak plain HTTP; use --insecure if that is intended"
    return None


def _debug_headers(headers: httpx.Headers) -> str:
    interesting = ("content-type", "content-length", "docker-content-digest", "location")
    parts = [f"{k}={headers[k]}" for k in interesting if k in headers]
    parts += [f"{k}=<redacted>" for k in headers if k.lower() in _SECRET_HEADERS]
    return (" " + " ".join(parts)) if parts else ""
