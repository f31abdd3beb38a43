"""``imginspect.http11.Connection`` against real loopback servers that write exact bytes.

Each server is a plain ``socket.create_server`` listener whose thread accepts one connection,
reads requests and writes the raw bytes a test chose, in the pieces the test chose. Between
two pieces the server waits until the client's socket has received everything sent so far
(``tcpi_bytes_received`` of its ``TCP_INFO``) and the client has read it (``FIONREAD`` is 0),
so a response split in pieces reaches the client in as many reads, whatever the load.

Every test checks what the client returns and whether the connection may carry another
request (``is_idle``, and a second request on the same connection where it should work).
"""

from __future__ import annotations

import array
import fcntl
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imginspect import http11

#: Long enough never to fire in a passing test on a loaded machine.
TIMEOUT = 10.0
HOST = [(b"Host", b"registry.test")]
#: The answer to every "second request" that shows a connection was reusable.
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

Pieces = bytes | tuple[bytes, ...]


class Peer:
    """The server's side of the accepted connection, as a handler uses it."""

    def __init__(self, sock: socket.socket, server: RawServer) -> None:
        self.sock = sock
        self.server = server
        self._buffer = b""

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except OSError:  # a reset, or the server's own timeout
            return b""

    def read_request(self) -> bytes:
        """The next request (head and ``Content-Length`` body), recorded in
        ``server.requests``; b"" if the client closed (or went quiet) first."""
        while b"\r\n\r\n" not in self._buffer:
            data = self._recv()
            if not data:
                return b""
            self._buffer += data
        head_end = self._buffer.index(b"\r\n\r\n") + 4
        length = 0
        for line in self._buffer[:head_end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        while len(self._buffer) < head_end + length:
            data = self._recv()
            if not data:
                return b""
            self._buffer += data
        request = self._buffer[: head_end + length]
        self._buffer = self._buffer[head_end + length :]
        self.server.requests.append(request)
        return request

    def send(self, pieces: Pieces) -> bool:
        """Write ``pieces``, each reaching the client in a read of its own; False if the
        client had gone."""
        if isinstance(pieces, bytes):
            pieces = (pieces,)
        for index, piece in enumerate(pieces):
            try:
                self.sock.sendall(piece)
            except OSError:
                return False
            self.server.sent += len(piece)
            if index < len(pieces) - 1:
                self.server.wait_drained()
        return True

    def wait_eof(self) -> bool:
        """Read until the client closes; True if it sent nothing more."""
        extra = b""
        while True:
            data = self._recv()
            if not data:
                return not extra
            extra += data

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), not a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


Handler = Callable[[Peer], None]


class RawServer:
    """A listener on 127.0.0.1 whose thread accepts one connection and runs ``handler`` on
    it. Use as a context manager: leaving it closes the client socket, joins the thread,
    closes the listener and re-raises what the handler raised."""

    def __init__(self, handler: Handler, *, rcvbuf: int | None = None) -> None:
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        if rcvbuf is not None:  # inherited by the accepted socket
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.port: int = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.sent = 0  # bytes written to the client so far
        self.client: socket.socket | None = None
        self.stop = threading.Event()
        self.signal = threading.Event()  # a test's "go on" to its handler
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.listener.settimeout(0.1)
            while True:
                try:
                    sock, _ = self.listener.accept()
                    break
                except TimeoutError:
                    if self.stop.is_set():
                        return
            with sock:
                sock.settimeout(TIMEOUT)
                # no Nagle: a piece would wait for the client's (delayed) ACK of the last one
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.handler(Peer(sock, self))
        except BaseException as exc:  # re-raised in the test's thread
            self.errors.append(exc)

    def connect(self, cap: http11.TimeoutCap | None = None) -> http11.Connection:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = sock
        return http11.Connection(sock) if cap is None else http11.Connection(sock, cap)

    def wait_drained(self, limit: float = 5.0) -> None:
        """Wait (``limit`` seconds at most: a client that stopped reading) until the client's
        socket received all that was sent so far and the client read it."""
        count = array.array("i", [0])
        until = time.monotonic() + limit
        while time.monotonic() < until:
            client = self.client
            if client is None or client.fileno() < 0:
                return
            try:
                info = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
                fcntl.ioctl(client.fileno(), termios.FIONREAD, count)
            except OSError:
                return
            # struct tcp_info: __u64 tcpi_bytes_received at offset 128 (Linux 4.1+)
            (received,) = struct.unpack_from("Q", info, 128)
            if received >= self.sent and count[0] == 0:
                return
            time.sleep(0.0002)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop.set()
        self.signal.set()
        if self.client is not None:
            self.client.close()
        self.thread.join(TIMEOUT)
        self.listener.close()
        assert not self.thread.is_alive(), "the server's thread did not end"
        if self.errors and kind is None:
            raise self.errors[0]


def script(*responses: Pieces, close: bool = False) -> Handler:
    """A handler answering one request with each response in turn; then it closes
    (``close``) or waits until the client closes."""

    def handler(peer: Peer) -> None:
        for response in responses:
            if not peer.read_request() or not peer.send(response):
                return
        if not close:
            peer.wait_eof()

    return handler


def serve(*responses: Pieces, close: bool = False) -> RawServer:
    return RawServer(script(*responses, close=close))


def request(
    connection: http11.Connection,
    method: str = "GET",
    *,
    read_timeout: float | None = TIMEOUT,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes | None = None,
) -> tuple[http11.Response, bytes]:
    """One exchange: the response and its whole body (the response closed after)."""
    response = connection.request(
        method,
        "/v2/",
        HOST if headers is None else headers,
        body,
        read_timeout=read_timeout,
        write_timeout=TIMEOUT,
    )
    try:
        body = b"".join(response.stream)
    finally:
        response.close()
    return response, body


def assert_reused(connection: http11.Connection, server: RawServer) -> None:
    """The connection is idle and carries a second request (answered with ``OK``)."""
    assert connection.is_idle()
    assert not connection.has_expired()
    before = len(server.requests)
    response, body = request(connection)
    assert (response.status, body) == (200, b"ok")
    assert connection.is_idle()
    assert len(server.requests) == before + 1


def assert_not_reused(connection: http11.Connection, server: RawServer) -> None:
    """The connection is closed (its socket too) and refuses another request."""
    assert connection.is_closed()
    assert not connection.is_idle()
    assert connection.has_expired()
    assert server.client is not None and server.client.fileno() == -1
    with pytest.raises(RuntimeError):
        request(connection)


# ---------------------------------------------------------------- Content-Length


def test_content_length_body_with_the_head() -> None:
    with serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello", OK) as server:
        connection = server.connect()
        response, body = request(connection)
        assert response.status == 200
        assert response.headers == [(b"Content-Length", b"5"), (b"X-A", b"1")]
        assert body == b"hello"
        assert_reused(connection, server)


def test_content_length_body_byte_by_byte() -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"
    with serve(tuple(wire[i : i + 1] for i in range(len(wire))), OK) as server:
        connection = server.connect()
        response, body = request(connection)
        assert (response.status, body) == (200, b"hello world")
        assert_reused(connection, server)


def test_content_length_body_in_its_own_reads() -> None:
    """Head alone, then the body in pieces: the stream yields each piece as it comes."""
    pieces = (b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", b"ab", b"cd", b"ef")
    with serve(pieces, OK) as server:
        connection = server.connect()
        response = connection.request(
            "GET", "/", HOST, None, read_timeout=TIMEOUT, write_timeout=TIMEOUT
        )
        assert not connection.is_idle()  # the body is still to be read
        assert list(response.stream) == [b"ab", b"cd", b"ef"]
        assert connection.is_idle()
        response.close()
        assert_reused(connection, server)


def test_content_length_zero() -> None:
    with serve(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", OK) as server:
        connection = server.connect()
        response, body = request(connection)
        assert (response.status, body) == (200, b"")
        assert_reused(connection, server)


def test_content_length_body_larger_than_a_read() -> None:
    payload = bytes(range(256)) * (3 * http11.READ_SIZE // 256) + b"tail"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload)
    with serve(head + payload, OK) as server:
        connection = server.connect()
        _, body = request(connection)
        assert body == payload
        assert_reused(connection, server)


@pytest.mark.parametrize("sent", [b"", b"hello"])
def test_content_length_truncated_body(sent: bytes) -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    with serve((wire, sent) if sent else wire, close=True) as server:
        connection = server.connect()
        response = connection.request(
            "GET", "/", HOST, None, read_timeout=TIMEOUT, write_timeout=TIMEOUT
        )
        with pytest.raises(http11.RemoteProtocolError) as failure:
            b"".join(response.stream)
        assert f"received {len(sent)} bytes, expected 10" in str(failure.value)
        response.close()
        assert_not_reused(connection, server)


@pytest.mark.parametrize(
    ("pieces", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", b"ok"),
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no", b"kEXTRA"), b"ok"),
        (b"HTTP/1.1 204 No Content\r\n\r\nEXTRA", b""),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\r\n", b""),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", b""),
    ],
)
def test_bytes_beyond_the_response_are_not_a_next_response(pieces: Pieces, body: bytes) -> None:
    """Whatever follows the framed end of a response is no answer to a later request: the
    connection is closed, not reused."""
    with serve(pieces) as server:
        connection = server.connect()
        _, received = request(connection)
        assert received == body
        assert_not_reused(connection, server)


def test_bytes_after_an_idle_connection_make_it_expired() -> None:
    def handler(peer: Peer) -> None:
        peer.read_request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        peer.server.signal.wait(TIMEOUT)
        peer.send(b"HTTP/1.1 200 OK\r\n")  # unasked
        peer.wait_eof()

    with RawServer(handler) as server:
        connection = server.connect()
        request(connection)
        assert connection.is_idle() and not connection.has_expired()
        server.signal.set()
        assert wait_for(connection.has_expired)


@pytest.mark.parametrize(
    "value",
    [
        b"5, 6",
        b"abc",
        b"-5",
        b"+5",
        b"5.0",
        b"",
        b"0x5",
        b"5 5",
        # int() refuses more than 4300 digits with a ValueError, which is no HTTP error
        pytest.param(b"1" * 5000, id="5000 digits"),
        pytest.param(b"1" * 20, id="20 digits"),
    ],
)
def test_invalid_content_length_is_refused(value: bytes) -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\nhello"
    with serve(wire) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError, match="Content-Length"):
            request(connection)
        assert_not_reused(connection, server)


def test_differing_content_length_fields_are_refused() -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    with serve(wire) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError, match="Content-Length"):
            request(connection)
        assert_not_reused(connection, server)


@pytest.mark.parametrize(
    "fields",
    [b"Content-Length: 5, 5\r\n", b"Content-Length: 5\r\ncontent-length: 5\r\n"],
)
def test_identical_content_lengths_are_one(fields: bytes) -> None:
    with serve(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\nhello", OK) as server:
        connection = server.connect()
        _, body = request(connection)
        assert body == b"hello"
        assert_reused(connection, server)


# ---------------------------------------------------------------- chunked


def test_chunked_body() -> None:
    wire = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\nhello\r\n1;ext=1\r\n \r\n5;a=b;c="d e"\r\nworld\r\n0\r\n\r\n'
    )
    with serve(wire, OK) as server:
        connection = server.connect()
        response, body = request(connection)
        assert (response.status, body) == (200, b"hello world")
        assert_reused(connection, server)


def test_chunk_sizes_in_upper_and_lower_case_hex() -> None:
    data = (bytes(range(256)) * 3)[: 255 + 0x1AB]
    wire = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"Ff\r\n"
        + data[:255]
        + b"\r\n"
        + b"1aB\r\n"
        + data[255:]
        + b"\r\n"
        + b"000\r\n\r\n"
    )
    assert len(data) - 255 == 0x1AB
    with serve(wire, OK) as server:
        connection = server.connect()
        _, body = request(connection)
        assert body == data
        assert_reused(connection, server)


def test_chunked_trailers_are_read_to_the_end() -> None:
    wire = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n"
    )
    with serve(wire, OK) as server:
        connection = server.connect()
        _, body = request(connection)
        assert body == b"abc"
        assert_reused(connection, server)


def test_chunked_body_larger_than_a_read() -> None:
    data = bytes(range(256)) * (2 * http11.READ_SIZE // 256 + 1)
    wire = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(data)
        + data
        + b"\r\n10\r\n"
        + data[:16]
        + b"\r\n0\r\n\r\n"
    )
    with serve(wire, OK) as server:
        connection = server.connect()
        _, body = request(connection)
        assert body == data + data[:16]
        assert_reused(connection, server)


CHUNKED = (
    b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;x=y\r\nWiki\r\n5\npedia\r\n0\r\nT: v\n\r\n"
)


def test_chunked_split_at_every_byte_position() -> None:
    """The same response split in two at each position in turn, on one connection: each
    answer is read whole and leaves the connection idle for the next."""
    splits = range(1, len(CHUNKED))

    def handler(peer: Peer) -> None:
        for at in splits:
            if not peer.read_request() or not peer.send((CHUNKED[:at], CHUNKED[at:])):
                return
        peer.wait_eof()

    with RawServer(handler) as server:
        connection = server.connect()
        for at in splits:
            _, body = request(connection)
            assert body == b"Wikipedia", at
            assert connection.is_idle(), at
        assert len(server.requests) == len(splits)


@pytest.mark.parametrize(
    "size_line",
    [b"zz", b"-1", b"0x5", b"", b"5 5", b"1" * 17, b"5\x00", b";ext"],
)
def test_malformed_chunk_size_is_refused(size_line: bytes) -> None:
    wire = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + size_line
        + b"\r\nhello\r\n0\r\n\r\n"
    )
    with serve(wire) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError, match="chunk size"):
            request(connection)
        assert_not_reused(connection, server)


@pytest.mark.parametrize("split", [False, True])
def test_overlong_chunk_size_line_is_refused_however_it_arrives(split: bool) -> None:
    """A chunk-size line longer than MAX_CHUNK_LINE_BYTES is refused whether it arrives in
    one read or in several (the bound does not depend on how the bytes were segmented)."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    line = b"5;ext=" + b"a" * http11.MAX_CHUNK_LINE_BYTES + b"\r\n"
    rest = b"hello\r\n0\r\n\r\n"
    pieces = (head, line[:100], line[100:] + rest) if split else (head + line + rest,)
    with serve(pieces) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError, match="exceeds"):
            request(connection)
        assert_not_reused(connection, server)


def test_a_chunk_size_line_at_the_limit_is_read() -> None:
    line = b"5;ext=" + b"a" * (http11.MAX_CHUNK_LINE_BYTES - 8) + b"\r\n"
    assert len(line) == http11.MAX_CHUNK_LINE_BYTES
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serve((head + line[:10], line[10:] + b"hello\r\n0\r\n\r\n"), OK) as server:
        connection = server.connect()
        assert request(connection)[1] == b"hello"
        assert_reused(connection, server)


def test_endless_trailers_are_refused() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
    with RawServer(_flood(head, b"X-Trailer: value\r\n" * 1000)) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError, match="trailer exceeds"):
            request(connection)
        assert_not_reused(connection, server)


@pytest.mark.parametrize(
    "chunks",
    [
        b"5\r\nhelloXX\r\n0\r\n\r\n",  # data longer than its size
        b"5\r\nhell\r\n0\r\n\r\n",  # shorter: the CRLF is taken as data
        b"5\r\nhello0\r\n\r\n",  # no CRLF after the data
        b"5\r\nhello\n0\r\n\r\n",  # a bare LF after the data
        b"5\r\nhello\r0\r\n\r\n",  # a bare CR
    ],
)
def test_chunk_data_not_ending_where_its_size_says(chunks: bytes) -> None:
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    with serve(wire) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError):
            request(connection)
        assert_not_reused(connection, server)


@pytest.mark.parametrize(
    "chunks",
    [b"5\r\nhel", b"5", b"5\r\nhello", b"5\r\nhello\r\n", b"5\r\nhello\r\n0\r\n", b"0\r\nT: v\r\n"],
)
def test_eof_inside_a_chunked_body(chunks: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serve((head, chunks), close=True) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError, match="incomplete chunked read"):
            request(connection)
        assert_not_reused(connection, server)


def test_transfer_encoding_wins_over_content_length_and_the_connection_closes() -> None:
    """RFC 9112 section 6.3: Transfer-Encoding overrides Content-Length; such a message
    "ought to be handled as an error" and the connection closed after it (it may be a
    request smuggling attempt through an intermediary): the body is read as chunked, then
    the connection is not reused."""
    wire = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    with serve(wire, OK) as server:
        connection = server.connect()
        _, body = request(connection)
        assert body == b"hello"
        assert_not_reused(connection, server)


@pytest.mark.parametrize(
    "coding", [b"gzip", b"gzip, chunked", b"chunked, gzip", b"identity", b"chunked, chunked"]
)
def test_a_transfer_coding_other_than_chunked_is_refused(coding: bytes) -> None:
    """No TE header is sent, so chunked is the only transfer coding a server may use; the
    bytes of another could not be used as they are (h11 refuses them too)."""
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + coding + b"\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    with serve(wire, close=True) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError, match="unsupported Transfer-Encoding"):
            request(connection)
        assert connection.is_closed()


def test_http10_with_transfer_encoding_is_not_reused() -> None:
    """RFC 9112 section 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing;
    the connection is closed after it, even if it says keep-alive."""
    wire = (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    )
    with serve(wire, OK) as server:
        connection = server.connect()
        _, body = request(connection)
        assert body == b"ok"
        assert_not_reused(connection, server)


# ---------------------------------------------------------------- persistence


def test_no_framing_reads_until_close() -> None:
    with serve((b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nsome", b" body"), close=True) as server:
        connection = server.connect()
        _, body = request(connection)
        assert body == b"some body"
        assert_not_reused(connection, server)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 2\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 2\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: 2\r\n",
    ],
)
def test_the_server_asking_to_close(head: bytes) -> None:
    with serve(head + b"\r\nok", OK) as server:
        connection = server.connect()
        _, body = request(connection)
        assert body == b"ok"
        assert_not_reused(connection, server)


def test_http10_keep_alive_with_content_length_is_reused() -> None:
    first = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 5\r\n\r\nhello"
    with serve(first, first, OK) as server:
        connection = server.connect()
        for _ in range(2):
            _, body = request(connection)
            assert body == b"hello"
            assert connection.is_idle()
        assert_reused(connection, server)


def test_a_keep_alive_answer_does_not_carry_over_to_the_next() -> None:
    """Whether a connection persists is decided for each response: an HTTP/1.0 keep-alive
    answer, then a plain HTTP/1.0 one, closes."""
    first = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\na"
    second = b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb"
    with serve(first, second, OK) as server:
        connection = server.connect()
        assert request(connection)[1] == b"a"
        assert connection.is_idle()
        assert request(connection)[1] == b"b"
        assert_not_reused(connection, server)


@pytest.mark.parametrize(
    ("method", "wire"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 404 Not Found\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b'HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: "x"\r\n\r\n'),
        ("DELETE", b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ],
)
def test_responses_without_a_body(method: str, wire: bytes) -> None:
    with serve(wire, OK) as server:
        connection = server.connect()
        response, body = request(connection, method)
        assert body == b""
        assert response.status == int(wire[9:12])
        assert_reused(connection, server)


# ---------------------------------------------------------------- interim responses


def test_interim_responses_are_skipped() -> None:
    wire = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\nLocation: /x\r\n\r\ndone"
    )
    with serve(wire, OK) as server:
        connection = server.connect()
        response, body = request(
            connection, "PUT", body=b"data", headers=[*HOST, (b"Content-Length", b"4")]
        )
        assert response.status == 201
        assert response.headers == [(b"Content-Length", b"4"), (b"Location", b"/x")]
        assert body == b"done"
        assert_reused(connection, server)


def test_interim_responses_in_their_own_reads() -> None:
    pieces = (
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n",
        b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )
    with serve(pieces, OK) as server:
        connection = server.connect()
        response, body = request(connection)
        assert (response.status, body) == (200, b"ok")
        assert_reused(connection, server)


def test_endless_interim_responses_are_refused() -> None:
    """Each interim head is bounded; so is their number (a server answering 100 Continue
    forever is not read forever)."""
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    just_enough = (
        interim * http11.MAX_INTERIM_RESPONSES + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    with serve(just_enough) as server:
        response, body = request(server.connect())
        assert (response.status, body) == (200, b"ok")
    with serve(interim * (http11.MAX_INTERIM_RESPONSES + 1), close=True) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError, match="interim"):
            request(connection)
        assert connection.is_closed()


def test_a_close_after_an_interim_response() -> None:
    with serve(b"HTTP/1.1 100 Continue\r\n\r\n", close=True) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError):
            request(connection)
        assert_not_reused(connection, server)


def test_switching_protocols_is_refused() -> None:
    with serve(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n") as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError, match="101"):
            request(connection)
        assert_not_reused(connection, server)


# ---------------------------------------------------------------- the head


@pytest.mark.parametrize(
    ("wire", "headers", "body"),
    [
        (b"HTTP/1.1 200 OK\nContent-Length: 5\nX: 1\n\nhello", [(b"X", b"1")], b"hello"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\nX: 1\r\n\nhello", [(b"X", b"1")], b"hello"),
        # a head ended by a bare LF, whose body starts with CRLF
        (b"HTTP/1.1 200 OK\nContent-Length: 4\nX: 1\n\n\r\nab", [(b"X", b"1")], b"\r\nab"),
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\n\r\n", [], b"\r\n"),
        (b"\r\n\r\n\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", [], b"ok"),
        (b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", [], b"ok"),
        (b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok", [], b"ok"),
        (b"HTTP/1.1 200 A reason: with colon\r\nContent-Length: 2\r\n\r\nok", [], b"ok"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Folded: a\r\n  b\r\n\tc \r\n\r\nok",
            [(b"X-Folded", b"a b c")],
            b"ok",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX:\r\nY:  v \t\r\n\r\nok",
            [(b"X", b""), (b"Y", b"v")],
            b"ok",
        ),
    ],
)
def test_lenient_heads(wire: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    with serve(wire, OK) as server:
        connection = server.connect()
        response, received = request(connection)
        assert response.status == 200
        assert [h for h in response.headers if h[0] != b"Content-Length"] == headers
        assert received == body
        assert_reused(connection, server)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/2 200 OK\r\n",
        b"HTTP/2.0 200 OK\r\n",
        b"ICY 200 OK\r\n",
        b"HTTP/1.1 20 OK\r\n",
        b"HTTP/1.1 2000 OK\r\n",
        b"HTTP/1.1 2x0 OK\r\n",
        b"HTTP/1.1  200 OK\r\n",
        b"http/1.1 200 OK\r\n",
        b"HTTP/1.1\r\n",
        b"garbage\x00\xff\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n",
        b"HTTP/1.1 200 OK\r\nName : value\r\n",
        b"HTTP/1.1 200 OK\r\n: no name\r\n",
        b"HTTP/1.1 200 OK\r\nBad\x01Name: v\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n",
        b"HTTP/1.1 200 OK\r\n folded first\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n b\rc\r\n",
    ],
)
def test_malformed_heads_are_refused(head: bytes) -> None:
    with serve(head + b"Content-Length: 2\r\n\r\nok") as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError, match=r"malformed|continuation"):
            request(connection)
        assert_not_reused(connection, server)


def _flood(first: bytes, filler: bytes) -> Handler:
    """Sends ``first`` then ``filler`` without end (until the client goes, 64 MiB at most)."""

    def handler(peer: Peer) -> None:
        peer.read_request()
        if not peer.send(first):
            return
        for _ in range(64 * 1024 * 1024 // len(filler)):
            if peer.server.stop.is_set() or not peer.send(filler):
                return

    return handler


@pytest.mark.parametrize(
    ("first", "filler"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Big: ", b"a" * 16384),
        (b"HTTP/1.1 200 OK\r\n", b"X-Many: value\r\n" * 1000),
        (b"", b"\r\n" * 8192),  # empty lines before a status line that never comes
    ],
)
def test_an_endless_head_is_refused(first: bytes, filler: bytes) -> None:
    with RawServer(_flood(first, filler)) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError, match=f"exceeds {http11.MAX_HEAD_BYTES}"):
            request(connection)
        assert_not_reused(connection, server)


def test_a_head_at_the_limit_is_read() -> None:
    field = b"X-Big: " + b"a" * (http11.MAX_HEAD_BYTES - 200) + b"\r\n"
    wire = b"HTTP/1.1 200 OK\r\n" + field + b"Content-Length: 2\r\n\r\nok"
    with serve(wire, OK) as server:
        connection = server.connect()
        response, body = request(connection)
        assert body == b"ok"
        assert response.headers[0][1] == b"a" * (http11.MAX_HEAD_BYTES - 200)
        assert_reused(connection, server)


def test_server_closing_without_a_byte() -> None:
    def handler(peer: Peer) -> None:
        peer.read_request()

    with RawServer(handler) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError) as failure:
            request(connection)
        assert str(failure.value) == "Server disconnected without sending a response."
        assert_not_reused(connection, server)


@pytest.mark.parametrize("partial", [b"HTTP/1.1 200 OK\r\nContent-Le", b"H", b"\r\n"])
def test_server_closing_in_the_head(partial: bytes) -> None:
    with serve(partial, close=True) as server:
        connection = server.connect()
        with pytest.raises(http11.RemoteProtocolError) as failure:
            request(connection)
        assert "complete response head" in str(failure.value)
        assert_not_reused(connection, server)


# ---------------------------------------------------------------- timeouts and failures


def test_a_server_that_never_answers_times_out() -> None:
    def handler(peer: Peer) -> None:
        peer.read_request()
        peer.wait_eof()

    with RawServer(handler) as server:
        connection = server.connect()
        with pytest.raises(http11.ReadTimeout):
            request(connection, read_timeout=0.1)
        assert_not_reused(connection, server)


def _trickle(first: bytes, rest: bytes, gap: float = 0.25) -> Handler:
    """Sends ``first``, then ``rest`` one byte every ``gap`` seconds."""

    def handler(peer: Peer) -> None:
        peer.read_request()
        if not peer.send(first):
            return
        for index in range(len(rest)):
            if peer.server.stop.wait(gap) or not peer.send(rest[index : index + 1]):
                return
        peer.wait_eof()

    return handler


class RecordingCap:
    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.asked: list[float | None] = []

    def __call__(self, timeout: float | None) -> float | None:
        self.asked.append(timeout)
        return self.cap


def test_the_cap_bounds_each_read_of_the_head() -> None:
    """A cap of 0.05 s times out a server trickling its head every 0.25 s although the
    request's read timeout is 30 s (without the cap the head is complete in 2 s)."""
    cap = RecordingCap(0.05)
    with RawServer(_trickle(b"HTTP/1.1 200 OK\r\n", b"X: 1\r\n\r\n")) as server:
        connection = server.connect(cap)
        with pytest.raises(http11.ReadTimeout):
            connection.request("GET", "/", HOST, None, read_timeout=30, write_timeout=7)
        assert cap.asked[0] == 7  # the write
        assert cap.asked[1:] and set(cap.asked[1:]) == {30}
        assert_not_reused(connection, server)


def test_the_cap_bounds_each_read_of_the_body() -> None:
    cap = RecordingCap(0.05)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nh"
    with RawServer(_trickle(head, b"ello")) as server:
        connection = server.connect(cap)
        response = connection.request("GET", "/", HOST, None, read_timeout=30, write_timeout=30)
        stream = iter(response.stream)
        assert next(stream) == b"h"
        with pytest.raises(http11.ReadTimeout):
            next(stream)
        assert set(cap.asked) == {30}
        assert not connection.is_idle()
        response.close()
        assert_not_reused(connection, server)


def test_a_slow_body_within_the_timeout_is_read() -> None:
    """The control of the two tests above: the same trickle, without a cap, is read."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
    with RawServer(_trickle(head, b"abc", gap=0.02)) as server:
        connection = server.connect()
        _, body = request(connection)
        assert body == b"abc"
        assert connection.is_idle()


def test_a_blocked_write_times_out() -> None:
    """The server reads nothing; its receive buffer and the client's send buffer are small:
    sending a large body raises WriteTimeout."""

    def handler(peer: Peer) -> None:
        peer.server.stop.wait(TIMEOUT)

    with RawServer(handler, rcvbuf=4096) as server:
        connection = server.connect()
        assert server.client is not None
        server.client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        with pytest.raises(http11.WriteTimeout):
            connection.request(
                "PUT",
                "/",
                [*HOST, (b"Content-Length", b"%d" % (8 << 20))],
                b"x" * (8 << 20),
                read_timeout=TIMEOUT,
                write_timeout=0.1,
            )
        assert_not_reused(connection, server)


def test_a_reset_before_the_response() -> None:
    def handler(peer: Peer) -> None:
        peer.read_request()
        peer.reset()

    with RawServer(handler) as server:
        connection = server.connect()
        with pytest.raises((http11.ReadError, http11.WriteError)):
            request(connection)
        assert_not_reused(connection, server)


def test_a_reset_in_the_body() -> None:
    def handler(peer: Peer) -> None:
        peer.read_request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        peer.server.wait_drained()
        peer.reset()

    with RawServer(handler) as server:
        connection = server.connect()
        response = connection.request(
            "GET", "/", HOST, None, read_timeout=TIMEOUT, write_timeout=TIMEOUT
        )
        with pytest.raises(http11.ReadError):
            b"".join(response.stream)
        response.close()
        assert_not_reused(connection, server)


def test_a_reset_while_sending() -> None:
    def handler(peer: Peer) -> None:
        peer.sock.recv(1)  # the client is sending (a reset before would fail its connect)
        peer.reset()

    with RawServer(handler) as server:
        connection = server.connect()
        body = b"x" * (8 << 20)
        with pytest.raises((http11.ReadError, http11.WriteError)):
            request(
                connection,
                "PUT",
                body=body,
                headers=[*HOST, (b"Content-Length", b"%d" % len(body))],
            )
        assert_not_reused(connection, server)


def wait_for(condition: Callable[[], bool], limit: float = TIMEOUT) -> bool:
    until = time.monotonic() + limit
    while not condition():
        if time.monotonic() > until:
            return False
        time.sleep(0.005)
    return True


def test_has_expired_once_the_server_closes_an_idle_connection() -> None:
    def handler(peer: Peer) -> None:
        peer.read_request()
        peer.send(OK)
        peer.server.signal.wait(TIMEOUT)

    with RawServer(handler) as server:
        connection = server.connect()
        request(connection)
        assert connection.is_idle()
        time.sleep(0.05)  # quiet, still open
        assert not connection.has_expired()
        server.signal.set()
        assert wait_for(connection.has_expired)


# ---------------------------------------------------------------- the request


def test_the_request_bytes_on_the_wire() -> None:
    with serve(OK, OK, OK) as server:
        connection = server.connect()
        headers = [
            (b"Host", b"registry.test:5000"),
            (b"User-Agent", b"imginspect/1"),
            (b"Accept", b"a/b, c/d"),
            (b"X-Twice", b"1"),
            (b"X-Twice", b"2"),
            (b"Content-Length", b"5"),
        ]
        response = connection.request(
            "PUT",
            "/v2/a/b/blobs/uploads/?digest=sha256%3Aab&x=%20",
            headers,
            b"hello",
            read_timeout=TIMEOUT,
            write_timeout=TIMEOUT,
        )
        assert b"".join(response.stream) == b"ok"
        response.close()
        request(connection, "GET", headers=[(b"Host", b"h")], body=None)
        request(connection, "POST", headers=[(b"Host", b"h"), (b"Content-Length", b"0")], body=b"")
        assert server.requests == [
            b"PUT /v2/a/b/blobs/uploads/?digest=sha256%3Aab&x=%20 HTTP/1.1\r\n"
            b"Host: registry.test:5000\r\nUser-Agent: imginspect/1\r\nAccept: a/b, c/d\r\n"
            b"X-Twice: 1\r\nX-Twice: 2\r\nContent-Length: 5\r\n\r\nhello",
            b"GET /v2/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"POST /v2/ HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        ]
        assert connection.is_idle()


def test_a_large_request_body_is_sent_whole() -> None:
    body = bytes(range(256)) * 4096
    with serve(OK) as server:
        connection = server.connect()
        _, received = request(
            connection, "PUT", body=body, headers=[*HOST, (b"Content-Length", b"%d" % len(body))]
        )
        assert received == b"ok"
        assert server.requests[0].endswith(b"\r\n\r\n" + body)


def test_a_request_while_a_response_is_open_is_a_caller_bug() -> None:
    with serve((b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"ok")) as server:
        connection = server.connect()
        response = connection.request(
            "GET", "/", HOST, None, read_timeout=TIMEOUT, write_timeout=TIMEOUT
        )
        with pytest.raises(RuntimeError):
            connection.request("GET", "/", HOST, None, read_timeout=1, write_timeout=1)
        response.close()


# ---------------------------------------------------------------- closing a response early


@pytest.mark.parametrize(
    "pieces",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"hello"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", b"llo"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil close",),
    ],
)
def test_closing_a_response_before_its_body_is_read(pieces: Pieces) -> None:
    with serve(pieces, OK) as server:
        connection = server.connect()
        response = connection.request(
            "GET", "/", HOST, None, read_timeout=TIMEOUT, write_timeout=TIMEOUT
        )
        response.close()
        response.close()  # twice is harmless
        assert_not_reused(connection, server)


def test_closing_a_response_half_read() -> None:
    with serve((b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", b"cd"), OK) as server:
        connection = server.connect()
        response = connection.request(
            "GET", "/", HOST, None, read_timeout=TIMEOUT, write_timeout=TIMEOUT
        )
        assert next(iter(response.stream)) == b"ab"
        response.close()
        assert_not_reused(connection, server)


def test_a_body_that_came_with_its_head_is_read_already() -> None:
    """The usual answer (a manifest in the head's read): its framed end was received with
    the head, so closing the response unread still leaves the connection reusable."""
    with serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", OK) as server:
        connection = server.connect()
        response = connection.request(
            "GET", "/", HOST, None, read_timeout=TIMEOUT, write_timeout=TIMEOUT
        )
        response.close()
        assert_reused(connection, server)


# ---------------------------------------------------------------- properties


def _split(wire: bytes, points: list[int]) -> tuple[bytes, ...]:
    cuts = sorted({p for p in points if 0 < p < len(wire)})
    return tuple(wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True))


@settings(max_examples=50, deadline=None)
@given(
    body=st.binary(max_size=300),
    crlf=st.booleans(),
    points=st.lists(st.integers(min_value=1, max_value=400), max_size=8),
)
def test_content_length_reassembles_however_split(
    body: bytes, crlf: bool, points: list[int]
) -> None:
    head = b"HTTP/1.1 200 OK\nContent-Length: %d\nX: y\n\n" % len(body)
    if crlf:
        head = head.replace(b"\n", b"\r\n")
    wire = head + body
    with serve(_split(wire, points), OK) as server:
        connection = server.connect()
        response, received = request(connection)
        assert received == body
        assert response.headers == [(b"Content-Length", b"%d" % len(body)), (b"X", b"y")]
        assert_reused(connection, server)


_EXTENSIONS = [b"", b";x", b";x=1", b';name="quoted; value"', b" ;x", b"\t;a=b;c=d"]


@st.composite
def chunked_wires(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A chunked response (sizes in either case, with leading zeros or not, extensions,
    trailers) and the body it carries."""
    chunks = draw(st.lists(st.binary(min_size=1, max_size=80), max_size=6))
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for chunk in chunks:
        size = b"%x" % len(chunk)
        if draw(st.booleans()):
            size = size.upper()
        size = b"0" * draw(st.integers(0, 3)) + size
        wire += size + draw(st.sampled_from(_EXTENSIONS)) + b"\r\n" + chunk + b"\r\n"
    wire += b"0" + draw(st.sampled_from(_EXTENSIONS)) + b"\r\n"
    for name in draw(st.lists(st.sampled_from([b"X-T", b"Digest", b"Y"]), max_size=3)):
        wire += name + b": v\r\n"
    wire += b"\r\n"
    return wire, b"".join(chunks)


@settings(max_examples=50, deadline=None)
@given(case=chunked_wires(), data=st.data())
def test_chunked_reassembles_however_split(case: tuple[bytes, bytes], data: st.DataObject) -> None:
    wire, body = case
    points = data.draw(st.lists(st.integers(1, len(wire) - 1), max_size=10))
    with serve(_split(wire, points), OK) as server:
        connection = server.connect()
        _, received = request(connection)
        assert received == body
        assert_reused(connection, server)


def _iter_pieces(wire: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(wire), size):
        yield wire[start : start + size]


@settings(max_examples=20, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=2000),
    chunk=st.integers(1, 700),
    piece=st.integers(1, 97),
)
def test_chunked_and_sized_answers_alternate_on_one_connection(
    body: bytes, chunk: int, piece: int
) -> None:
    """Four answers on one connection (chunked, sized, chunked, sized), each sent in pieces
    of ``piece`` bytes: every body is exact and the connection stays idle between them."""
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for part in _iter_pieces(body, chunk):
        chunked += b"%x\r\n" % len(part) + part + b"\r\n"
    chunked += b"0\r\n\r\n"
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    answers = [tuple(_iter_pieces(w, piece)) for w in (chunked, sized, chunked, sized)]
    with serve(*answers) as server:
        connection = server.connect()
        for _ in answers:
            assert request(connection)[1] == body
            assert connection.is_idle()


# ---------------------------------------------------------------- TLS


def test_a_tls_body_read_to_close_ends_at_an_eof_without_close_notify() -> None:
    """Many TLS servers close without close_notify. For a body framed by the close, that is
    its end (sockets wrapped with suppress_ragged_eofs, the default, as connections.py
    wraps them); for a Content-Length body that stops short it is still a truncation."""
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server_context)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_context)

    def answer(listener: socket.socket, wire: bytes) -> None:
        raw, _ = listener.accept()
        with server_context.wrap_socket(raw, server_side=True) as tls:
            tls.settimeout(5)
            tls.recv(4096)
            tls.sendall(wire)
            # close() sends no close_notify: the client sees an EOF TLS calls unexpected

    for wire, expected in (
        (b"HTTP/1.1 200 OK\r\n\r\nto the end", b"to the end"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nshort", None),
    ):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            thread = threading.Thread(target=answer, args=(listener, wire), daemon=True)
            thread.start()
            sock = socket.create_connection(listener.getsockname(), timeout=5)
            tls_sock = client_context.wrap_socket(sock, server_hostname="localhost")
            connection = http11.Connection(tls_sock)
            response = connection.request(
                "GET", "/", [(b"Host", b"localhost")], None, read_timeout=5, write_timeout=5
            )
            if expected is not None:
                assert b"".join(response.stream) == expected
            else:
                with pytest.raises((http11.ReadError, http11.RemoteProtocolError)):
                    b"".join(response.stream)
            assert connection.is_closed()
            response.close()
            thread.join(5)
