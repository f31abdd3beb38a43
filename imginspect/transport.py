"""HTTP transport: TLS modes, retries, redirects, bounded reads, and network errors.

Requests go out through :mod:`imginspect.connections` (HTTP/1.1 connections, reused per
origin and TLS mode; proxies from the environment). This module picks the TLS context per request
(built lazily: a plain-HTTP run never builds a verifying one), retries what may be retried,
follows redirects itself so that an ``Authorization`` header never reaches another host,
reads every body with a size bound (refusing by ``Content-Length`` before reading when it
can; compressed bodies are bounded after decoding), and turns network exceptions into
:class:`NetworkError`. It knows nothing about registries or auth.
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urljoin, urlsplit

from imginspect import __version__, http11
from imginspect._record import Record, record
from imginspect.connections import (
    Connections,
    InvalidURLError,
    Release,
    Request,
    Target,
    build_request,
    deadline,
    decode_headers,
    opened_since_reset,
    remaining_time,
    reset_opened,
    warm_taken_since_reset,
)
from imginspect.errors import (
    ConnectionFailedError,
    ImginspectError,
    NetworkError,
    RegistryError,
    TooLargeError,
)
from imginspect.reference import is_docker_hub

if TYPE_CHECKING:
    import ssl  # at run time only where TLS is used: a plain-HTTP run never loads it

__all__ = ["HttpTransport", "Response", "RetryPolicy", "Timeouts", "deadline", "remaining_time"]

USER_AGENT = f"imginspect/{__version__}"
MAX_REDIRECTS = 10
#: After every try to connect to a host failed, further requests there fail at once for
#: this long (seconds); then one more request may try again.
UNREACHABLE_FOR = 30.0
#: Bodies of error answers and redirects are read only to quote them; never more than this.
MAX_QUOTED_BODY_BYTES = 64 * 1024
#: Headers never written to debug output.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


@record
class Timeouts(Record):
    """Seconds to wait for a connection and for each read."""

    connect: float = 10.0
    read: float = 30.0

    def capped(self, limit: float | None = None) -> tuple[float, float]:
        """``(connect, read)``, each capped at ``limit`` seconds (what is left of a deadline)."""
        read, connect = self.read, self.connect
        if limit is not None:
            read, connect = min(read, max(limit, 0.001)), min(connect, max(limit, 0.001))
        return connect, read


@record
class Response(Record):
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
SslContextForHost = Callable[[str], "ssl.SSLContext | None"]

#: Statuses worth another try: the server says it is busy or briefly broken.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Only these are retried: repeating them cannot change anything on the server.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})


@record
class RetryPolicy(Record):
    """Bounded retries with jittered exponential backoff."""

    tries: int = 3
    #: longest single wait we accept, from Retry-After or backoff (--max-wait)
    max_wait: float = 5.0
    base_delay: float = 0.25

    def backoff(self, attempt: int) -> float:
        import random  # only a retry needs it (0.5-1 ms of start-up otherwise)

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
    import datetime
    import email.utils  # only for a date: most runs never see a Retry-After

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
        self._connections: Connections | None = None
        self._connections_lock = threading.Lock()
        # TLS contexts by mode: True (default verification), False (none), or "host[:port]"
        # for a host with its own context (certs.d).
        self._contexts: dict[bool | str, ssl.SSLContext] = {}
        self._contexts_lock = threading.Lock()
        #: per host[:port]: when connecting there last failed for good, and how (the breaker)
        self._unreachable: dict[str, tuple[float, ConnectionFailedError]] = {}

    @property
    def log(self) -> Logger | None:
        """Where ``--debug`` lines go (None: nowhere)."""
        return self._log

    # ------------------------------------------------------------------ connections

    def _tls_mode(
        self, verify: bool, tls_host: str | None
    ) -> tuple[bool | str, ssl.SSLContext | None]:
        """The TLS mode of a request: no verification, the system trust store, or the context
        certs.d gives ``tls_host`` (``host[:port]`` of the registry the request is for: its
        redirects, e.g. to blob storage, are verified the same way, as docker does)."""
        if verify and tls_host is not None and self._ssl_context_for is not None:
            context = self._ssl_context_for(tls_host)
            if context is not None:
                return tls_host, context
        return verify, None

    def _context(self, mode: bool | str, given: ssl.SSLContext | None) -> ssl.SSLContext:
        """The TLS context of ``mode``, built once, when an https connection needs it."""
        context = self._contexts.get(mode)
        if context is not None:
            return context
        with self._contexts_lock:
            context = self._contexts.get(mode)
            if context is None:
                if given is not None:
                    context = given
                elif mode is False:
                    context = _unverified_context()
                else:
                    from imginspect.trust import system_trust_context

                    context = system_trust_context()
                # Set once, before any connection uses it: OpenSSL must not see the
                # context change while another thread starts a handshake with it.
                context.set_alpn_protocols(["http/1.1"])
                self._contexts[mode] = context
        return context

    def _pool(self) -> Connections:
        connections = self._connections
        if connections is not None:
            return connections
        with self._connections_lock:
            if self._connections is None:
                self._connections = _new_connections()
            return self._connections

    def _dispatch(
        self, request: Request, target: Target, *, verify: bool, tls_host: str
    ) -> tuple[http11.Response, Release]:
        """Send one request on a connection (the seam tests replace to see the wire)."""
        mode, given = self._tls_mode(verify, tls_host)
        return self._pool().send(
            request,
            target,
            tls_mode=mode,
            ssl_context=lambda: self._context(mode, given),
            pool_timeout=request.connect_timeout,
            # an https proxy is verified against the system's store, whatever the registry's
            # TLS settings (--insecure and certs.d are about the registry)
            proxy_ssl_context=lambda: self._context(True, None),
        )

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, None
        if connections is not None:
            connections.close()

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
        tls_host: str | None = None
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                target = Target(current_url)  # parsed once per hop, here
            except InvalidURLError as exc:
                raise RegistryError(f"invalid URL for {what}: {exc}") from None
            if tls_host is None:
                tls_host = target.netloc  # every hop is verified as the first URL's host
            response = self._send_with_retry(
                current_method,
                current_url,
                target,
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
        target: Target,
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
        host = target.netloc
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
                    target,
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
        target: Target,
        headers: Mapping[str, str],
        *,
        max_bytes: int,
        what: str,
        verify: bool,
        tls_host: str,
        data: Mapping[str, str] | None,
        idempotent: bool,
    ) -> Response:
        started = time.monotonic()
        left = remaining_time()
        if left is not None and left <= 0:
            raise _deadline_passed(what, url)
        connect_timeout, read_timeout = self._timeouts.capped(limit=left)
        try:
            request = build_request(
                method,
                target,
                _request_headers(headers, form=data is not None),
                body=urlencode(data).encode("ascii") if data is not None else None,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            )
        except UnicodeEncodeError:
            raise RegistryError(
                f"cannot request {what} from {_origin(url)}: a header value is not ASCII"
            ) from None
        except ValueError as exc:  # a line break in a header value
            raise RegistryError(f"cannot request {what} from {_origin(url)}: {exc}") from None
        try:
            response, release = self._send_on_connection(
                request, target, verify=verify, tls_host=tls_host, idempotent=idempotent
            )
            try:
                received = decode_headers(response.headers)
                body = _read_bounded(
                    response, received, method=method, max_bytes=max_bytes, what=what, url=url
                )
            finally:
                release()
        except http11.TimeoutException as exc:
            left = remaining_time()
            if left is not None and left <= 0.05:
                raise _deadline_passed(what, url) from None
            raise NetworkError(
                f"timed out fetching {what} from {_origin(url)} ({type(exc).__name__})",
                hint="the registry did not answer in time; check the network or retry later",
            ) from None
        except (http11.ConnectError, http11.ProxyError) as exc:
            failure = ConnectionFailedError(
                f"cannot connect to {_origin(url)}: {_reason(exc)}",
                hint=_connect_hint(exc, tls_host),
            )
            failure.permanent = _is_permanent_connect_failure(exc)
            raise failure from None
        except (http11.RemoteProtocolError, http11.ReadError, http11.WriteError) as exc:
            raise _connection_broke(what, url, exc) from None
        except http11.UnsupportedProtocol as exc:
            raise RegistryError(f"invalid URL for {what}: {_reason(exc)}") from None
        except (http11.NetworkError, http11.ProtocolError) as exc:
            raise NetworkError(
                f"HTTP error fetching {what} from {_origin(url)}: {_reason(exc)}"
            ) from None
        if self._log is not None:
            elapsed = (time.monotonic() - started) * 1000
            self._log(
                f"{method} {url} -> {response.status} "
                f"({len(body)} bytes, {elapsed:.1f} ms){_debug_headers(received)}"
            )
        return Response(response.status, received, body, url)

    def _send_on_connection(
        self,
        request: Request,
        target: Target,
        *,
        verify: bool,
        tls_host: str,
        idempotent: bool,
    ) -> tuple[http11.Response, Release]:
        """Send; a GET or HEAD whose *reused* keep-alive connection turns out to be closed
        before any response byte (the server's or a load balancer's idle timeout fired as we
        reused it) is sent once more, on a fresh connection, as Go's net/http, urllib3 and
        curl do. A failure on a fresh connection is never retried here."""
        reset_opened()
        try:
            sent = self._dispatch(request, target, verify=verify, tls_host=tls_host)
            if self._log is not None and warm_taken_since_reset() is not None:
                self._log(
                    f"{request.method} {target.scheme}://{target.host_header}: on the "
                    "connection opened while imginspect started"
                )
            return sent
        except (http11.RemoteProtocolError, http11.ReadError, http11.WriteError) as exc:
            reused = opened_since_reset() == 0
            if not (idempotent and reused) or exc.response_started:
                # Part of a response came: the server had the request and answered it
                # (badly); no idle timeout, nothing to send again (Go retries only before the
                # first response byte).
                raise
            if self._log is not None:
                self._log(
                    f"{request.method} {request.url}: reused connection was closed "
                    f"({_reason(exc)}); once more on a new connection"
                )
            return self._dispatch(request, target, verify=verify, tls_host=tls_host)


#: Sent with every request unless the caller sets them (httpx's defaults, less
#: ``Connection: keep-alive``, which HTTP/1.1 implies).
_DEFAULT_HEADERS = (
    ("User-Agent", USER_AGENT),
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),
)


def _request_headers(headers: Mapping[str, str], *, form: bool) -> list[tuple[str, str]]:
    given = {name.lower() for name in headers}
    result = [(name, value) for name, value in _DEFAULT_HEADERS if name.lower() not in given]
    if form and "content-type" not in given:
        result.append(("Content-Type", "application/x-www-form-urlencoded"))
    result.extend(headers.items())
    return result


def _read_bounded(
    response: http11.Response,
    headers: tuple[tuple[str, str], ...],
    *,
    method: str,
    max_bytes: int,
    what: str,
    url: str,
) -> bytes:
    """The body, decoded (gzip, deflate) and bounded: at most ``max_bytes`` after decoding,
    the deadline checked between reads."""
    stream = response.stream
    if method == "HEAD":
        # Content-Length describes the body a GET would have sent; there is none to read,
        # but reading the (empty) stream lets the connection be reused.
        for _ in stream:
            pass
        return b""
    # Error and redirect bodies are only ever quoted: a few KiB, whatever the caller would
    # accept for the document it asked for.
    quoted_only = response.status >= 300
    if quoted_only:
        max_bytes = MAX_QUOTED_BODY_BYTES
    lengths = [value for name, value in headers if name == "content-length"]
    length = lengths[0].strip() if lengths else None
    if length is not None and not (length.isascii() and length.isdigit() and len(length) <= 19):
        length = None  # ASCII digits only ("²" passes isdigit()), at most 19 (as Go)
    if length is not None and int(length) > max_bytes:
        if not quoted_only:
            raise TooLargeError(
                f"{what} from {_origin(url)} is {int(length)} bytes, "
                f"more than the {max_bytes} bytes accepted"
            )
        return b""  # an oversized error body is not worth reading
    decoder = _Decoder.for_headers(headers)
    chunks: list[bytes] = []
    total = 0

    def too_slow() -> NetworkError:
        return NetworkError(
            f"gave up reading {what} from {_origin(url)}: the --timeout deadline passed "
            f"after {total} bytes",
            hint="the registry is sending very slowly; raise --timeout or retry later",
        )

    def add(data: bytes) -> bool:
        """Keep ``data``; False once the bound is reached (quoted bodies: enough)."""
        nonlocal total
        total += len(data)
        if total > max_bytes:
            if quoted_only:
                chunks.append(data[: max(0, max_bytes - (total - len(data)))])
                return False
            raise TooLargeError(
                f"{what} from {_origin(url)} exceeds the {max_bytes} bytes accepted"
            )
        chunks.append(data)
        return True

    body = iter(stream)
    try:
        while True:
            try:
                chunk = next(body, None)
            except http11.TimeoutException:
                left = remaining_time()
                if left is not None and left <= 0.05:  # the deadline, not a read timeout
                    raise too_slow() from None
                raise
            if chunk is None:
                if decoder is not None:
                    add(decoder.flush(max_bytes - total + 1))
                break
            left = remaining_time()
            if left is not None and left <= 0:
                raise too_slow()
            data = chunk if decoder is None else decoder.decode(chunk, max_bytes - total + 1)
            if not add(data):
                break
    except zlib.error as exc:
        raise RegistryError(f"cannot decode {what} from {_origin(url)}: {exc}") from None
    return b"".join(chunks)


class _Decoder:
    """Undoes ``Content-Encoding: gzip`` or ``deflate`` (zlib-wrapped, or raw as some servers
    send it), with the output of each step bounded: a small compressed body cannot expand
    into more memory than the caller accepts."""

    def __init__(self, encodings: list[str]) -> None:
        self._steps = [_Step(encoding) for encoding in reversed(encodings)]

    @classmethod
    def for_headers(cls, headers: Iterable[tuple[str, str]]) -> _Decoder | None:
        encodings = [
            token.strip().lower()
            for name, value in headers
            if name == "content-encoding"
            for token in value.split(",")
        ]
        # Like httpx: identity and encodings we did not ask for are left as they are (the
        # digest check then tells a body that was not what it claims).
        known = [e for e in encodings if e in ("gzip", "x-gzip", "deflate")]
        return cls(known) if known else None

    def decode(self, data: bytes, limit: int) -> bytes:
        for step in self._steps:
            data = step.decode(data, limit)
        return data

    def flush(self, limit: int) -> bytes:
        data = b""
        for step in self._steps:
            data = step.decode(data, limit) + step.flush(limit)
        return data


class _Step:
    def __init__(self, encoding: str) -> None:
        self._deflate = encoding == "deflate"
        # gzip: wbits 16+; deflate: the zlib wrapper first (32+ auto-detects it), raw below
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | (32 if self._deflate else 16))
        self._first = True
        #: input held back by the bound, decoded first next time: the output of a step before
        #: the last (``Content-Encoding: gzip, gzip``) may pass the bound although the body
        #: in the end does not (gzip of incompressible data is a little larger)
        self._tail = b""

    def decode(self, data: bytes, limit: int) -> bytes:
        if self._first and data and self._deflate:
            self._first = False
            try:
                return self._bounded(data, limit)
            except zlib.error:
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._bounded(data, limit)

    def _bounded(self, data: bytes, limit: int) -> bytes:
        limit = max(limit, 1)
        out = [self._inflate.decompress(self._tail + data if self._tail else data, limit)]
        size = len(out[0])
        # Input the bound held back is decoded only while the output stays within it; past
        # it, it is kept for the next call (a later step may still shrink this output).
        while self._inflate.unconsumed_tail and size <= limit:
            more = self._inflate.decompress(self._inflate.unconsumed_tail, limit - size + 1)
            out.append(more)
            size += len(more)
        self._tail = self._inflate.unconsumed_tail
        return b"".join(out)

    def flush(self, limit: int) -> bytes:
        return self._bounded(b"", limit) + self._inflate.flush(max(limit, 1))


def _new_connections() -> Connections:
    """The run's connections, with the proxies the environment names."""
    from imginspect._httpx_compat import environment_proxies

    try:
        return Connections(environment_proxies())
    except ValueError as exc:  # a proxy URL we cannot use
        raise NetworkError(
            f"cannot use the proxy the environment names: {exc}",
            hint="set HTTPS_PROXY/HTTP_PROXY/ALL_PROXY to an http:// or https:// proxy URL",
        ) from None


def _unverified_context() -> ssl.SSLContext:
    """TLS without verification (``--insecure``, an insecure-registries entry)."""
    import ssl

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
    import ssl  # loaded already when TLS was tried, cheap then

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


def _debug_headers(headers: tuple[tuple[str, str], ...]) -> str:
    interesting = ("content-type", "content-length", "docker-content-digest", "location")
    present = dict(headers)
    parts = [f"{k}={present[k]}" for k in interesting if k in present]
    parts += [f"{k}=<redacted>" for k, _ in headers if k in _SECRET_HEADERS]
    return (" " + " ".join(parts)) if parts else ""
