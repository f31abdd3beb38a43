"""The CLI's process plumbing, without click: writing results to stdout with its failures
typed, error messages as lines, references read from a file, a closed stdout, SIGTERM, and
exiting without waiting for blocked threads. The CLI decides what to print and with which
exit code; this module only does the writing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
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


def write_outcome(
    outcome: Outcome,
    mode: OutputMode,
    style: TableStyle,
    *,
    batch: bool,
    template: Template | None = None,
) -> None:
    """Write one outcome's result to stdout (its error is the caller's to report);
    ``template`` is :attr:`OutputMode.TEMPLATE`'s."""
    with writing_stdout():
        if mode is OutputMode.TABLE:
            sys.stdout.flush()
            write_table(outcome, sys.stdout, style=style, batch=batch)
            sys.stdout.flush()
        else:
            sys.stdout.buffer.write(render(outcome, mode, batch=batch, template=template))
            sys.stdout.buffer.flush()


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


def read_references(arguments: tuple[str, ...], ref_file: IO[str] | None) -> Iterator[str]:
    """The command line's references, then the file's: one per line, '#' starts a comment."""
    yield from arguments
    if ref_file is not None:
        for line in ref_file:
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


def exit_now(code: int) -> NoReturn:
    """Exit without flushing stdout again (it failed, or its reader is gone) and without
    waiting for worker threads that may be blocked in network reads."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
    os._exit(code)
