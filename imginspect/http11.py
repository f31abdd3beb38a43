"""HTTP/1.1 on one client connection: the request written, the response read and framed.

The wire protocol of every direct (not proxied) request. :mod:`imginspect.connections` opens
the sockets, keeps idle connections and applies the deadline; :mod:`imginspect.transport`
decides what to send and what to accept. This module only speaks the protocol (RFC 9112) on a
connected socket, strictly where a mistake could desynchronise a reused connection, leniently
where servers are known to differ:

* the response head (status line and header fields, 100 KiB at most, as httpcore bounds it)
  may end its lines with CRLF or a bare LF; up to 16 ``1xx`` interim responses are skipped;
  obsolete line folding is unfolded;
* the body is framed as RFC 9112 section 6.3 says: none for ``HEAD``, ``204`` and ``304``;
  ``Transfer-Encoding: chunked`` before ``Content-Length`` (no other transfer coding is
  accepted: none is offered); conflicting or malformed lengths are refused; otherwise the
  body runs until the server closes;
* a connection is reused only when its response was read to its framed end, the server did
  not ask to close it (``Connection: close``, or HTTP/1.0 without keep-alive), its framing
  was not faulty (``Transfer-Encoding`` with ``Content-Length``, or in HTTP/1.0: RFC 9112
  6.1 and 6.3), and nothing arrived beyond the end of the response.

Exceptions carry httpcore's names and hierarchy (``ReadTimeout`` is a ``TimeoutException``,
``ReadError`` a ``NetworkError``...), so the transport maps failures the same way for direct
connections and for proxied ones (which go through httpcore, see :mod:`imginspect.proxied`).

Why not h11 through httpcore, as before: their per-request state machine, event objects and
header validation cost about 0.3 ms of CPU per request, more than everything else a batch
does per reference (bench/README.md). This module needs no import beyond the standard
library, and a typical manifest answer is one ``recv``.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable, Iterator

#: The status line and header fields together, at most (httpcore's bound for h11).
MAX_HEAD_BYTES = 100 * 1024
#: A chunk-size line (with any chunk extensions), at most.
MAX_CHUNK_LINE_BYTES = 4096
#: Interim (1xx) responses accepted before the final one (100 Continue, 103 Early Hints).
MAX_INTERIM_RESPONSES = 16
#: Bytes asked of the socket per read.
READ_SIZE = 64 * 1024

#: Caps a timeout (seconds or None) by what is left of the caller's deadline.
TimeoutCap = Callable[["float | None"], "float | None"]


class HTTPError(Exception):
    """Base of everything this module (and :mod:`imginspect.proxied`) raises."""

    #: Part of a response had come when it was raised: the request reached the server, and
    #: a connection's failure then is no idle timeout (see :meth:`Connection.request`).
    response_started = False


class TimeoutException(HTTPError):
    pass


class ConnectTimeout(TimeoutException):
    pass


class ReadTimeout(TimeoutException):
    pass


class WriteTimeout(TimeoutException):
    pass


class PoolTimeout(TimeoutException):
    pass


class NetworkError(HTTPError):
    pass


class ConnectError(NetworkError):
    pass


class ReadError(NetworkError):
    pass


class WriteError(NetworkError):
    pass


class ProtocolError(HTTPError):
    pass


class RemoteProtocolError(ProtocolError):
    """The server broke HTTP/1.1 (or closed the connection in the middle of a message)."""


class ProxyError(HTTPError):
    pass


class UnsupportedProtocol(HTTPError):
    pass


#: Field names already found valid (the same dozen come in every response): a set lookup
#: instead of a scan. Bounded: cleared when full, as a hostile server could send many.
_VALID_NAMES: set[bytes] = set()
_MAX_VALID_NAMES = 512


def is_token(name: bytes) -> bool:
    """Whether ``name`` is a valid header field name (an RFC 9110 token)."""
    if name in _VALID_NAMES:
        return True
    if not name or not _TOKEN_BYTES.issuperset(name):
        return False
    if len(_VALID_NAMES) >= _MAX_VALID_NAMES:
        _VALID_NAMES.clear()
    _VALID_NAMES.add(name)
    return True


def is_readable(sock: socket.socket) -> bool:
    """Whether a socket on which no response is awaited has something to read: the server
    closed it (EOF or a reset), or sent something unasked. True for a closed socket."""
    if sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _no_cap(timeout: float | None) -> float | None:
    return timeout


# Connection states.
_IDLE = 0  # ready for a request
_ACTIVE = 1  # a request was sent; its response is being read
_CLOSED = 2  # closed, or unusable (a response not read to its end, a protocol error)

_TOKEN_BYTES = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_HEX_BYTES = frozenset(b"0123456789abcdefABCDEF")


class Response:
    """A response whose head is read. ``stream`` yields the body's bytes (as framed; content
    codings are the caller's); :meth:`close` ends it, and the connection stays reusable only
    if the body was read to its end."""

    __slots__ = ("_connection", "headers", "status", "stream")

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        stream: Iterator[bytes],
        connection: Connection | None,
    ) -> None:
        self.status = status
        #: ``(name, value)`` as received (names in their original case)
        self.headers = headers
        self.stream = stream
        self._connection = connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection._response_closed()


class Connection:
    """One HTTP/1.1 connection over a connected socket (TLS already done), used by one thread
    at a time: a request, its response read to the end, then the next request."""

    __slots__ = ("_buffer", "_cap", "_keep_alive", "_received", "_sock", "_state")

    def __init__(self, sock: socket.socket, cap: TimeoutCap = _no_cap) -> None:
        self._sock = sock
        self._cap = cap
        self._buffer = b""
        self._state = _IDLE
        self._keep_alive = True
        self._received = False  # a byte of the current request's response came

    # ------------------------------------------------------------------ state

    def is_idle(self) -> bool:
        """Ready for another request."""
        return self._state == _IDLE

    def is_closed(self) -> bool:
        return self._state == _CLOSED

    def has_expired(self) -> bool:
        """Whether an idle connection went stale: the server closed it (or, against the
        protocol, sent something unasked), which makes its socket readable."""
        return self._state != _IDLE or is_readable(self._sock)

    def close(self) -> None:
        self._state = _CLOSED
        self._buffer = b""
        # socket.close() raises nothing for a socket already closed
        self._sock.close()

    def _response_closed(self) -> None:
        if self._state != _IDLE:
            self.close()

    # ------------------------------------------------------------------ the exchange

    def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        *,
        read_timeout: float | None,
        write_timeout: float | None,
    ) -> Response:
        """Send one request and read the head of its response. ``headers`` must hold
        ``Host`` (and ``Content-Length`` with a body); names and values are sent as given.
        Raises :class:`WriteError`/:class:`WriteTimeout` if sending failed,
        :class:`RemoteProtocolError` if the server closed the connection before any byte of
        a response, :class:`ReadError`/:class:`ReadTimeout`, or :class:`RemoteProtocolError`
        for a malformed head; each with ``response_started`` set once a byte of the response
        had come (a request sent again on a new connection only when none had: Go's rule)."""
        if self._state != _IDLE:
            raise RuntimeError("the connection is not idle")  # a bug of the caller
        self._state = _ACTIVE
        self._received = False
        lines = [f"{method} {target} HTTP/1.1".encode("ascii")]
        lines += [name + b": " + value for name, value in headers]
        data = b"\r\n".join(lines) + b"\r\n\r\n"
        if body:
            data += body
        try:
            self._write(data, write_timeout)
            status, fields, http10 = self._read_head(read_timeout)
            interim = 0
            while 100 <= status < 200:
                if status == 101:
                    raise RemoteProtocolError("the server switched protocols unasked (101)")
                interim += 1
                if interim > MAX_INTERIM_RESPONSES:  # each is bounded; their number too
                    raise RemoteProtocolError(
                        f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses"
                    )
                status, fields, http10 = self._read_head(read_timeout)
            stream = self._body(method, status, fields, http10, read_timeout)
        except BaseException as exc:
            self.close()
            if isinstance(exc, HTTPError):
                exc.response_started = self._received
            raise
        return Response(status, fields, stream, self)

    def _write(self, data: bytes, timeout: float | None) -> None:
        sock = self._sock
        try:
            sock.settimeout(self._cap(timeout))
            sock.sendall(data)
        except TimeoutError as exc:
            raise WriteTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise WriteError(str(exc) or type(exc).__name__) from exc

    def _recv(self, timeout: float | None) -> bytes:
        sock = self._sock
        try:
            sock.settimeout(self._cap(timeout))
            data = sock.recv(READ_SIZE)
        except TimeoutError as exc:
            raise ReadTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise ReadError(str(exc) or type(exc).__name__) from exc
        if data:
            self._received = True
        return data

    def _read_head(self, timeout: float | None) -> tuple[int, list[tuple[bytes, bytes]], bool]:
        """The status, the header fields and whether the response is HTTP/1.0."""
        buffer = self._buffer
        received_any = bool(buffer)
        searched = 0
        skipped = 0
        while True:
            # Empty lines before a status line are skipped (RFC 9112 section 2.2), and count
            # towards the bound: a server sending CRLFs without end is not read for ever.
            if buffer[:1] in (b"\r", b"\n"):
                stripped = buffer.lstrip(b"\r\n")
                skipped += len(buffer) - len(stripped)
                buffer = stripped
                searched = 0
            end = _head_end(buffer, searched)
            if end is not None:
                break
            if skipped + len(buffer) > MAX_HEAD_BYTES:
                raise RemoteProtocolError(f"the response head exceeds {MAX_HEAD_BYTES} bytes")
            searched = max(len(buffer) - 3, 0)
            data = self._recv(timeout)
            if not data:
                if not received_any:
                    raise RemoteProtocolError("Server disconnected without sending a response.")
                raise RemoteProtocolError(
                    "peer closed connection without sending a complete response head"
                )
            received_any = True
            buffer += data
        head_end, body_start = end
        if skipped + head_end > MAX_HEAD_BYTES:
            raise RemoteProtocolError(f"the response head exceeds {MAX_HEAD_BYTES} bytes")
        head = buffer[:head_end]
        self._buffer = buffer[body_start:]
        lines = head.split(b"\n")
        status_line = lines[0].rstrip(b"\r")
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if (
            len(version) != 8
            or not version.startswith(b"HTTP/")
            or version[5:6] != b"1"
            or version[6:7] != b"."
            or version[7:8] not in b"0123456789"
            or len(code) != 3
            or not code.isdigit()
            or rest[3:4] not in (b"", b" ")
        ):
            raise RemoteProtocolError(f"malformed status line {status_line[:100]!r}")
        fields: list[tuple[bytes, bytes]] = []
        for raw in lines[1:]:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            # Checked on the whole line, so that a folded continuation is checked too.
            if b"\r" in line or b"\x00" in line:
                raise RemoteProtocolError(f"malformed header line {line[:100]!r}")
            if line[:1] in (b" ", b"\t"):
                # obsolete line folding: a continuation of the previous field's value
                if not fields:
                    raise RemoteProtocolError("a header continuation line with no header")
                name, value = fields[-1]
                fields[-1] = (name, (value + b" " + line.strip(b" \t")).strip(b" \t"))
                continue
            name, colon, value = line.partition(b":")
            if not colon or not is_token(name):
                raise RemoteProtocolError(f"malformed header line {line[:100]!r}")
            fields.append((name, value.strip(b" \t")))
        return int(code), fields, version == b"HTTP/1.0"

    # ------------------------------------------------------------------ bodies

    def _body(
        self,
        method: str,
        status: int,
        fields: list[tuple[bytes, bytes]],
        http10: bool,
        timeout: float | None,
    ) -> Iterator[bytes]:
        transfer_codings: list[bytes] = []
        lengths: list[bytes] = []
        close = keep_alive = False
        for name, value in fields:
            lowered = name.lower()
            if lowered == b"connection":
                tokens = {token.strip().lower() for token in value.split(b",")}
                close = close or b"close" in tokens
                keep_alive = keep_alive or b"keep-alive" in tokens
            elif lowered == b"transfer-encoding":
                transfer_codings += [t.strip().lower() for t in value.split(b",") if t.strip()]
            elif lowered == b"content-length":
                lengths += [v.strip() for v in value.split(b",")]
        # Decided for each response (an earlier keep-alive does not carry over); "close" in
        # any Connection field wins over "keep-alive" in another.
        self._keep_alive = not close and (keep_alive or not http10)
        if method == "HEAD" or status in (204, 304):
            return self._fixed(0, timeout)
        if transfer_codings:
            if lengths or http10:
                # Transfer-Encoding with Content-Length, or in an HTTP/1.0 message: faulty
                # framing (perhaps a smuggling attempt by an intermediary). Transfer-Encoding
                # frames the body, then the connection is closed (RFC 9112 6.1 and 6.3).
                self._keep_alive = False
            if transfer_codings != [b"chunked"]:
                # A transfer coding we did not offer (no TE header is sent), e.g. "gzip,
                # chunked": its bytes cannot be used as they are. h11 refuses these too.
                raise RemoteProtocolError(
                    f"unsupported Transfer-Encoding {b', '.join(transfer_codings)[:100]!r}"
                )
            return self._chunked(timeout)
        if lengths:
            # At most 19 digits: int() raises ValueError (no HTTP error) past 4300 of them,
            # and no body is 10**19 bytes (Go's net/http refuses more than 2**63 - 1).
            if len(set(lengths)) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 19:
                raise RemoteProtocolError(f"invalid Content-Length {b', '.join(lengths)[:100]!r}")
            return self._fixed(int(lengths[0]), timeout)
        self._keep_alive = False
        return self._until_close(timeout)

    def _finished(self) -> None:
        """The response was read to its end: the connection is idle again if it may be."""
        if self._keep_alive and not self._buffer and self._state == _ACTIVE:
            self._state = _IDLE
        else:
            self.close()

    def _fixed(self, length: int, timeout: float | None) -> Iterator[bytes]:
        buffer = self._buffer
        if len(buffer) >= length:
            # The usual case: the whole body came with the head.
            self._buffer = buffer[length:]
            self._finished()
            return iter((buffer[:length],) if length else ())
        return self._fixed_reading(length, timeout)

    def _fixed_reading(self, length: int, timeout: float | None) -> Iterator[bytes]:
        left = length
        buffer, self._buffer = self._buffer, b""
        if buffer:
            left -= len(buffer)
            yield buffer
        while left > 0:
            data = self._recv(timeout)
            if not data:
                self.close()
                raise RemoteProtocolError(
                    "peer closed connection without sending complete message body: "
                    f"received {length - left} bytes, expected {length}"
                )
            if len(data) > left:
                self._buffer = data[left:]
                data = data[:left]
            left -= len(data)
            yield data
        self._finished()

    def _until_close(self, timeout: float | None) -> Iterator[bytes]:
        buffer, self._buffer = self._buffer, b""
        if buffer:
            yield buffer
        while True:
            # Over TLS, an EOF without close_notify (many servers) reads as b"" too: the
            # sockets are wrapped with suppress_ragged_eofs (the default).
            data = self._recv(timeout)
            if not data:
                break
            yield data
        self.close()

    def _chunked(self, timeout: float | None) -> Iterator[bytes]:
        while True:
            line = self._line(timeout, MAX_CHUNK_LINE_BYTES, "chunk size line")
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not size_text or not _HEX_BYTES.issuperset(size_text) or len(size_text) > 16:
                self.close()
                raise RemoteProtocolError(f"malformed chunk size line {line[:100]!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            while size > 0:
                if not self._buffer:
                    self._buffer = self._recv_some(timeout)
                data = self._buffer[:size]
                self._buffer = self._buffer[size:]
                size -= len(data)
                yield data
            # Exactly CRLF after the data, not a bare LF: "hell\r\n" sent as 5 bytes would
            # pass as "hell\r" and a server's miscount go unnoticed (h11 0.16 and Go's
            # net/http are as strict).
            while len(self._buffer) < 2:
                self._buffer += self._recv_some(timeout)
            if self._buffer[:2] != b"\r\n":
                self.close()
                raise RemoteProtocolError("a chunk does not end where its size says")
            self._buffer = self._buffer[2:]
        # Trailer fields, if any, up to the empty line that ends the message.
        total = 0
        while True:
            trailer = self._line(timeout, MAX_HEAD_BYTES, "trailer")
            if not trailer:
                break
            total += len(trailer)
            if total > MAX_HEAD_BYTES:
                self.close()
                raise RemoteProtocolError(f"the trailer exceeds {MAX_HEAD_BYTES} bytes")
        self._finished()

    def _recv_some(self, timeout: float | None) -> bytes:
        data = self._recv(timeout)
        if not data:
            self.close()
            raise RemoteProtocolError(
                "peer closed connection without sending complete message body: "
                "incomplete chunked read"
            )
        return data

    def _line(self, timeout: float | None, limit: int, what: str) -> bytes:
        """One line (CRLF or LF ended) of a chunked body, without its ending; longer than
        ``limit`` is an error, whether it arrived in one read or in several."""
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched)
            if end > limit:
                self.close()
                raise RemoteProtocolError(f"the {what} exceeds {limit} bytes")
            if end >= 0:
                line = self._buffer[:end]
                self._buffer = self._buffer[end + 1 :]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buffer) > limit:
                self.close()
                raise RemoteProtocolError(f"the {what} exceeds {limit} bytes")
            searched = len(self._buffer)
            self._buffer += self._recv_some(timeout)


def _head_end(buffer: bytes, start: int) -> tuple[int, int] | None:
    """Where the head in ``buffer`` ends (the line ending of its last line, kept out) and
    where the body starts: after the first empty line, CRLF or bare LF."""
    crlf = buffer.find(b"\n\r\n", start)
    # Up to crlf + 1: "\n\n\r\n" is a head ended by a bare LF whose body starts with CRLF.
    lf = buffer.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(buffer))
    if lf >= 0:
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return None
