"""The CLI's process plumbing, without click: writing results to stdout with its failures
typed, error messages as lines, references read from a file, a closed stdout, SIGTERM, and
exiting without waiting for blocked threads. The CLI decides what to print and with which
exit code; this module only does the writing.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, NoReturn

from imginspect.errors import ExitCode, ImginspectError, UsageError
from imginspect.output import OutputMode, TableStyle, render, write_table
from imginspect.progress import Counter

if TYPE_CHECKING:
    from imginspect.batch import Outcome
    from imginspect.template import Template


class OutputError(ImginspectError):
    """Standard output is closed or cannot be written (e.g. a full disk)."""

    exit_code = ExitCode.USAGE
    code = "output"


class ReaderGone(Exception):
    """stdout's reader went away (EPIPE). Not an OSError, which click would turn into
    exit 1 before main() sees it."""


def output_failed(error: OSError) -> OutputError:
    return OutputError(f"cannot write to standard output: {error.strerror or error}")


@contextlib.contextmanager
def writing_stdout() -> Iterator[None]:
    """Type the failures of writing to stdout: a reader gone away, or any other OSError."""
    try:
        yield
    except BrokenPipeError:
        raise ReaderGone from None
    except OSError as error:
        raise output_failed(error) from None


#: A result written to a pipe or a file waits at most this long (seconds) in stdout's buffer.
FLUSH_DELAY = 0.1


class ResultWriter:
    """Writes the results of a run to stdout (its errors are the caller's to report).

    To a terminal, or for a single reference, each result is flushed as it is written. A
    batch into a pipe or a file is block-buffered: results are written in large blocks, not
    one system call per line, and a helper thread flushes them at most :data:`FLUSH_DELAY`
    after they were written, so a reader still sees each one soon (also while a slow reference
    is awaited). What is left is flushed at the end of the run and before an exit (``main``:
    SIGTERM, Ctrl-C; not to a reader gone away). Tables are flushed one by one. ``template``
    is :attr:`OutputMode.TEMPLATE`'s."""

    def __init__(
        self,
        mode: OutputMode,
        style: TableStyle,
        *,
        batch: bool,
        template: Template | None = None,
    ) -> None:
        self._mode, self._style, self._batch, self._template = mode, style, batch, template
        self._flusher: DelayedFlush | None = None
        if batch and mode is not OutputMode.TABLE and not _isatty(sys.stdout):
            self._flusher = DelayedFlush(sys.stdout.buffer)

    def write(self, outcome: Outcome) -> None:
        with writing_stdout():
            if self._mode is OutputMode.TABLE:
                sys.stdout.flush()
                write_table(outcome, sys.stdout, style=self._style, batch=self._batch)
                sys.stdout.flush()
                return
            data = render(outcome, self._mode, batch=self._batch, template=self._template)
            sys.stdout.buffer.write(data)
            if self._flusher is None:
                sys.stdout.buffer.flush()
            else:
                self._flusher.wrote()

    def flush(self) -> None:
        """Flush what is buffered: before an error line on stderr, which may go to the same
        file or terminal as the results."""
        if self._flusher is not None:
            with writing_stdout():
                sys.stdout.buffer.flush()

    def close(self) -> None:
        """Stop the helper thread (what is still buffered: :meth:`flush`, or ``main``)."""
        if self._flusher is not None:
            self._flusher.stop()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close()
        if exc_type is None:
            self.flush()  # at the end of the run, before the cache is written


class DelayedFlush:
    """Flushes ``stream`` (a binary buffered stdout) at most ``delay`` seconds after it was
    written to, from a daemon thread. The writer calls :meth:`wrote` after each write: cheap,
    it wakes the thread only when the buffer goes from flushed to written. A buffered binary
    stream is safe to flush from another thread (it has a lock). A failure to flush is left
    to the writer's next write or final flush, which meet it again and report it."""

    def __init__(self, stream: IO[bytes], delay: float = FLUSH_DELAY) -> None:
        self._stream = stream
        self._delay = delay
        self._written = threading.Event()
        self._stopped = threading.Event()
        self._dirty = False
        thread = threading.Thread(target=self._run, name="imginspect-stdout", daemon=True)
        thread.start()

    def wrote(self) -> None:
        if not self._dirty:
            self._dirty = True
            self._written.set()

    def stop(self) -> None:
        self._stopped.set()
        self._written.set()

    def _run(self) -> None:
        while True:
            self._written.wait()
            if self._stopped.wait(self._delay):
                return
            # In this order: a write after the clear sets _dirty again and is flushed by the
            # next round (or by this flush, if it came before it).
            self._written.clear()
            self._dirty = False
            with contextlib.suppress(OSError, ValueError):
                self._stream.flush()


def _isatty(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


def error_lines(error: ImginspectError, given: str | None) -> list[str]:
    """The ``error:`` and ``hint:`` lines for ``error``, each on one line. In a batch
    (``given``), they say which reference failed, unless the message already names it."""
    prefix = f"{given}: " if given and given not in error.message else ""
    lines = [f"error: {one_line(prefix + error.message)}"]
    if error.hint:
        lines.append(f"hint: {one_line(error.hint)}")
    return lines


def one_line(text: str) -> str:
    return " ".join(text.split())


#: The longest line of a references file (``-f``), in characters, as Go's bufio.Scanner
#: (64 KiB): a line is read whole before it is looked at, so an unbounded one (a binary file
#: given by mistake) would be held in memory whole, then echoed as an invalid reference.
MAX_LINE = 65536


def read_references(arguments: tuple[str, ...], ref_file: IO[str] | None) -> Iterator[str]:
    """The command line's references, then the file's: one per line, '#' starts a comment.
    The file is UTF-8 (a byte order mark first is ignored), its lines at most
    :data:`MAX_LINE` characters long: else a UsageError, raised when that line is reached."""
    yield from arguments
    if ref_file is None:
        return
    name = getattr(ref_file, "name", None)
    where = "-f -" if name in (None, "<stdin>") else f"-f {name}"
    number = 0
    while True:
        number += 1
        try:
            # bounded: at most MAX_LINE characters and the line break are held
            line = ref_file.readline(MAX_LINE + 1)
        except UnicodeDecodeError:
            # the text layer's strict decoding: was a traceback (exit 1). It decodes a block
            # ahead of the line read, so the error cannot name the line
            raise UsageError(f"{where} is not UTF-8 text", hint="save it as UTF-8") from None
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith("\n"):
            raise UsageError(
                f"{where}: line {number} is longer than {MAX_LINE} characters",
                hint="give one reference per line",
            )
        if number == 1:
            # Notepad's UTF-8 starts with a BOM, which str.strip() keeps: the first reference
            # would be invalid
            line = line.removeprefix("\ufeff")
        text = line.split("#", 1)[0].strip()
        if text:
            yield text


def references_of_run(
    arguments: tuple[str, ...], ref_file: IO[str] | None
) -> tuple[str, Iterator[str], bool, Counter]:
    """The first reference, all of them in order (the file is read as they are consumed),
    whether they make a batch (more than one, or a file), and their counter (its total known
    once they are all read). No reference at all is a usage error."""
    counter = Counter(None if ref_file is not None else len(arguments))
    given = counter.count(read_references(arguments, ref_file))
    first = next(given, None)
    if first is None:
        raise UsageError("no reference given", hint="see 'imginspect --help'")
    second = next(given, None)
    batch = second is not None or ref_file is not None
    return first, _chain(first, second, given), batch, counter


def _chain(first: str, second: str | None, rest: Iterator[str]) -> Iterator[str]:
    yield first
    if second is not None:
        yield second
        yield from rest


def skip_async_frameworks() -> None:
    """The CLI is synchronous. httpcore imports trio and anyio eagerly when they are installed,
    only to support event loops we never run: a third of a cold start on some machines.
    A None entry makes those imports fail at once, which httpcore handles; this is done for
    the CLI process only, never for programs that use imginspect as a library."""
    for name in ("trio", "anyio"):
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C does: through the
    ``with Inspector(...)`` block, whose close() flushes the pending cache writes."""


def on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends us at once
    raise Terminated


def stdout_usable() -> bool:
    """False when stdout is closed (`>&-`): Python then has no sys.stdout, and the first file
    we opened would take descriptor 1 and receive the results."""
    if sys.stdout is None:
        return False
    try:
        os.fstat(sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):
        return False
    return True


def finish(code: int) -> NoReturn:
    """End the process after a run that completed, with ``code``: what ``sys.exit`` does
    that matters here, in its order (wait for non-daemon threads, run the ``atexit``
    handlers, flush stdout and stderr), then ``os._exit``. That skips the interpreter's
    teardown, which frees every module and object one by one: about 15 ms here, a seventh of
    a single ``--json`` run, for memory the kernel takes back at once anyway (mypy ends the
    same way). Nothing of ours needs it: files are closed where they are written, the cache
    is flushed before this, sockets die with the process. ``sys.exit`` still when a caller
    could go on after it: ``python -i``, or ``main`` run outside the main thread."""
    if sys.flags.inspect or threading.current_thread() is not threading.main_thread():
        sys.exit(code)  # the caller may go on
    # What the interpreter runs first at exit: the threading module's own exit hooks
    # (concurrent.futures wakes its idle workers there; a plain join would wait for them
    # forever), then a join of every non-daemon thread. Private, in CPython since 3.4:
    # where it is missing, the interpreter's own exit.
    shutdown = getattr(threading, "_shutdown", None)
    if not callable(shutdown):  # pragma: no cover - not on any supported CPython
        sys.exit(code)
    # The run is over and its output written: a SIGTERM from here on ends the process as the
    # signal does (143), instead of raising Terminated through what is left (a traceback).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    shutdown()
    atexit._run_exitfuncs()  # e.g. coverage's data file, warm-up sockets, temp directories
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(code)


def exit_now(code: int) -> NoReturn:
    """Exit without flushing stdout again (it failed, or its reader is gone) and without
    waiting for worker threads that may be blocked in network reads."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
    os._exit(code)
