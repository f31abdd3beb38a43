"""A loopback TCP proxy that adds a fixed network latency, for benchmarks.

Every byte that goes through the proxy arrives ``latency_ms / 2`` later than it left, in both
directions, so one request/response exchange costs one extra round trip of ``latency_ms``.
Opening a connection costs one more round trip (the TCP handshake a real network would
need): the handshake counts as done ``latency_ms`` after the proxy accepted the connection,
and the first client->server chunk is not forwarded before that (a client that sends at once
waits the extra ``latency_ms``; one that opened its connection earlier, as a real client that
connects ahead of time would, has it done already). So,
roughly, a client pays ``(new connections + request/response exchanges) * latency_ms`` on top
of what it pays on loopback, which is what makes round trips visible.

Delays are pipelined, not serial: a chunk read at time t is written at t + delay (never
before the chunk read before it on the same direction), so bandwidth is not throttled and a
burst of small writes costs one delay, not one per write. Half-closes are forwarded (delayed
like data).

Bounded and self-stopping: at most ``max_connections`` open at once (extra ones are closed at
once), a connection idle for ``idle_seconds`` is closed, and the whole proxy stops after
``max_seconds``. Run it in-process (:class:`LatencyProxy`, a daemon thread with its own
asyncio loop; :meth:`LatencyProxy.stats` counts connections and exchanges) or standalone::

    python bench/latency_proxy.py --target 127.0.0.1:5000 --latency-ms 20 [--port 0]
        [--max-seconds 600]

which prints ``listening on 127.0.0.1:PORT`` and runs until Ctrl-C, SIGTERM, ``--max-seconds``
or the death of its parent process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

CHUNK = 64 * 1024


@dataclass
class ProxyStats:
    """Counters since start (or since a :meth:`LatencyProxy.stats` snapshot was taken)."""

    connections: int = 0  # accepted (and forwarded) client connections
    refused: int = 0  # closed at once: over max_connections or upstream unreachable
    exchanges: int = 0  # client->server bursts (one per request on HTTP/1.1 without pipelining)
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client

    def minus(self, other: ProxyStats) -> ProxyStats:
        return ProxyStats(
            self.connections - other.connections,
            self.refused - other.refused,
            self.exchanges - other.exchanges,
            self.bytes_up - other.bytes_up,
            self.bytes_down - other.bytes_down,
        )

    @property
    def round_trips(self) -> int:
        """Added round trips under the latency model: one per connection and per exchange."""
        return self.connections + self.exchanges


@dataclass
class _ConnState:
    last: str  # direction of the last chunk: "up" (client -> server) or "down"
    active: float  # time.monotonic() of the last chunk


class LatencyProxy:
    """``127.0.0.1:<port>`` -> ``target_host:target_port``, ``latency_ms`` added per round trip."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        latency_ms: float,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        handshake: bool = True,
        max_connections: int = 256,
        idle_seconds: float = 60.0,
        max_seconds: float = 3600.0,
    ) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        self.target_host = target_host
        self.target_port = target_port
        self.latency = latency_ms / 1000.0
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.handshake = handshake
        self.max_connections = max_connections
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self.port = 0
        self._stats = ProxyStats()
        self._stats_lock = threading.Lock()
        self._open = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- public API ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` -- what goes in an image reference."""
        return f"{self.listen_host}:{self.port}"

    def start(self, timeout: float = 10.0) -> LatencyProxy:
        """Run in a daemon thread; returns once the port is bound."""
        self._thread = threading.Thread(target=self._run_thread, name="latency-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("latency proxy did not start")
        if self._error is not None:
            raise RuntimeError(f"latency proxy failed to start: {self._error}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, end the thread. Idempotent."""
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def stats(self) -> ProxyStats:
        with self._stats_lock:
            s = self._stats
            return ProxyStats(s.connections, s.refused, s.exchanges, s.bytes_up, s.bytes_down)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop -----------------------------------------------------------------------------

    def _run_thread(self) -> None:
        try:
            asyncio.run(self.serve())
        except BaseException as exc:  # reported by start() if it happens before binding
            self._error = exc
        finally:
            self._ready.set()

    async def serve(self) -> None:
        """Serve until :meth:`stop`, ``max_seconds``, or cancellation."""
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                tasks.add(task)
            try:
                await self._handle(reader, writer)
            except asyncio.CancelledError:
                pass  # stopping: asyncio's stream callback must not see a cancelled task
            finally:
                if task is not None:
                    tasks.discard(task)

        server = await asyncio.start_server(
            on_client, self.listen_host, self.listen_port, reuse_address=True, backlog=512
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), self.max_seconds)
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            if tasks:
                await asyncio.wait(list(tasks), timeout=2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            for name, value in deltas.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)

    async def _handle(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        accepted = asyncio.get_running_loop().time()
        if self._open >= self.max_connections:
            self._count(refused=1)
            client_writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port), 10
            )
        except (OSError, asyncio.TimeoutError):
            self._count(refused=1)
            client_writer.close()
            return
        self._open += 1
        self._count(connections=1)
        # Shared by both directions: which way the last chunk went, for counting exchanges.
        state = _ConnState("down", time.monotonic())
        loop = asyncio.get_running_loop()
        one_way = self.latency / 2
        # The simulated TCP handshake ends one round trip after the connection was accepted.
        handshake_done = accepted + self.latency if self.handshake else 0.0

        async def pump(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
        ) -> None:
            queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

            async def read_side() -> None:
                release = 0.0
                not_before = handshake_done if direction == "up" else 0.0
                while True:
                    data = await reader.read(CHUNK)
                    now = loop.time()
                    state.active = time.monotonic()
                    release = max(release, max(now, not_before) + one_way)
                    if not data:
                        await queue.put((release, None))
                        return
                    if direction == "up":
                        if state.last != "up":
                            self._count(exchanges=1)
                        self._count(bytes_up=len(data))
                    else:
                        self._count(bytes_down=len(data))
                    state.last = direction
                    await queue.put((release, data))

            async def write_side() -> None:
                while True:
                    release, data = await queue.get()
                    wait = release - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if data is None:
                        with contextlib.suppress(OSError, RuntimeError):
                            if writer.can_write_eof():
                                writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()

            reading = asyncio.ensure_future(read_side())
            try:
                await write_side()
            finally:
                reading.cancel()
                with contextlib.suppress(BaseException):
                    await reading

        async def idle_watch() -> None:
            while True:
                await asyncio.sleep(min(1.0, self.idle_seconds))
                if time.monotonic() - state.active > self.idle_seconds:
                    return

        up = asyncio.ensure_future(pump(client_reader, up_writer, "up"))
        down = asyncio.ensure_future(pump(up_reader, client_writer, "down"))
        idle = asyncio.ensure_future(idle_watch())
        try:
            # Done when both directions have finished, or on an error/idle timeout.
            pending: set[asyncio.Future[None]] = {up, down, idle}
            while up in pending or down in pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if idle in done:
                    break
                if any(t.exception() is not None for t in done if not t.cancelled()):
                    break
        except (OSError, ConnectionError):
            pass
        finally:
            for task in (up, down, idle):
                task.cancel()
            for task in (up, down, idle):
                with contextlib.suppress(BaseException):
                    await task
            for w in (client_writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._open -= 1


def _parse_target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, type=_parse_target, help="HOST:PORT upstream")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added round-trip time")
    parser.add_argument("--listen", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    parser.add_argument("--no-handshake", action="store_true", help="no extra RTT per connection")
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop after this long")
    args = parser.parse_args(argv)
    proxy = LatencyProxy(
        args.target[0],
        args.target[1],
        latency_ms=args.latency_ms,
        listen_host=args.listen,
        listen_port=args.port,
        handshake=not args.no_handshake,
        max_connections=args.max_connections,
        idle_seconds=args.idle_seconds,
        max_seconds=args.max_seconds,
    ).start()
    print(f"listening on {proxy.host} -> {args.target[0]}:{args.target[1]}", flush=True)

    def on_signal(signum: int, frame: object) -> None:
        proxy.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    parent = os.getppid()
    try:
        while proxy._thread is not None and proxy._thread.is_alive():
            proxy._thread.join(0.5)
            if os.getppid() != parent:  # parent died: we were re-parented
                proxy.stop()
    except KeyboardInterrupt:
        proxy.stop()
    s = proxy.stats()
    print(
        f"stopped: {s.connections} connections, {s.exchanges} exchanges, "
        f"{s.bytes_up} bytes up, {s.bytes_down} bytes down",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
