"""The transient progress line on stderr, and when the CLI shows it.

No click and no rich: a spinner and a counter written with ANSI erase sequences, only where
they cannot mix with results (see :func:`progress_wanted`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO


class Counter:
    """Counts the references read; the total is known once they have all been read."""

    def __init__(self, total: int | None) -> None:
        self.read = 0
        self.total = total

    def count(self, items: Iterator[str]) -> Iterator[str]:
        for item in items:
            self.read += 1
            yield item
        self.total = self.read


def progress_wanted() -> bool:
    """Progress goes to stderr, as docker, pip and cargo do, and only where it cannot mix
    with results: stderr is a terminal that can erase a line, and stdout is not a pipe, whose
    reader may print to that same terminal while we draw (`imginspect -f refs | jq .`). Into
    a file, or the terminal itself, the line is erased before each result is written."""
    if not _isatty(sys.stderr) or os.environ.get("TERM") == "dumb":
        return False
    try:
        mode = os.fstat(sys.stdout.fileno()).st_mode
    except (AttributeError, ValueError, OSError):
        return False
    return not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode))


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """A transient one-line counter on stderr (a terminal); does nothing when off.

    Thread-safe (``--sizes`` advances it from worker threads). ``cleared()`` erases the line
    while results or errors are written; the next ``advance`` draws it again."""

    _SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(
        self, enabled: bool, description: str, *, total: Callable[[], int | None] | None = None
    ) -> None:
        self._enabled = enabled
        self._description = description
        self._total = total
        self._done = 0
        self._shown = False
        self._lock = threading.Lock()

    @classmethod
    def for_run(
        cls, *, batch: bool, sizes: bool, debug: bool, total: Callable[[], int | None]
    ) -> Progress:
        """The CLI's line: a batch counts references (``total``: known when every reference
        is on the command line, else once the file is read), a single reference with
        ``--sizes`` counts the images whose size was fetched. Never with ``--debug``, whose
        lines would interleave, and only where :func:`progress_wanted`."""
        return cls(
            (batch or sizes) and not debug and progress_wanted(),
            "inspecting" if batch else "fetching sizes",
            total=total if batch else None,
        )

    def __enter__(self) -> Progress:
        with self._lock:
            self._draw()
        return self

    def advance(self) -> None:
        with self._lock:
            self._done += 1
            self._draw()

    def _draw(self) -> None:
        if not self._enabled:
            return
        total = self._total() if self._total is not None else None
        count = f"{self._done}/{total}" if total is not None else str(self._done)
        spinner = self._SPINNER[self._done % len(self._SPINNER)]
        line = f"{spinner} {self._description} {count}"
        try:
            columns = os.get_terminal_size(sys.stderr.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80  # a terminal that reports no size (0 columns) is not narrow
        # never longer than the terminal: a wrapped line could not be erased
        sys.stderr.write("\r\x1b[2K" + line[: max(columns - 1, 0)])
        sys.stderr.flush()
        self._shown = True

    def _erase(self) -> None:
        if self._shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            self._shown = False

    @contextlib.contextmanager
    def cleared(self) -> Iterator[None]:
        with self._lock:
            self._erase()
            yield

    def outcome_written(self, *, batch: bool) -> None:
        """A batch counts one more reference; a single reference's line is gone for good."""
        if batch:
            self.advance()
        else:
            self.close()

    def close(self) -> None:
        with self._lock:
            self._erase()
            self._enabled = False

    def __exit__(self, *exc: object) -> None:
        self.close()
