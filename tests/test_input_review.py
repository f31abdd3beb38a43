"""Review of how a batch's references are read (console.read_references, ``-f FILE``/``-f -``):
a UTF-8 byte order mark, CRLF, comments and blank lines; text that is not UTF-8 and lines of
any length are typed usage errors, read with bounded memory."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from imginspect.console import MAX_LINE, read_references
from imginspect.errors import UsageError
from tests.support.cli import run_imginspect

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYOUT = f"oci:{REPO_ROOT / 'examples' / 'multiarch'}:latest"
DIGEST = "sha256:09ba42b5427d3b778b9825e2077eade628cbd4f41afad25deb363dbdc905b3e0"


@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
def test_a_byte_order_mark_crlf_comments_and_blank_lines(tmp_path: Path, stdin: bool) -> None:
    """A file saved by Notepad starts with a UTF-8 BOM and ends lines with CRLF: the first
    reference is the reference, not U+FEFF followed by it (an invalid reference, exit 2)."""
    data = f"\ufeff{LAYOUT}\r\n# a comment\r\n\r\n  {LAYOUT}\t # trailing\r\n".encode()
    if stdin:
        done = run_imginspect("--digest", "-f", "-", input=data)
    else:
        refs = tmp_path / "refs.txt"
        refs.write_bytes(data)
        done = run_imginspect("--digest", "-f", str(refs))
    assert done.code == 0, done.stderr
    assert [line.split()[0] for line in done.text.splitlines()] == [DIGEST, DIGEST]


@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
def test_text_that_is_not_utf8_is_a_usage_error(tmp_path: Path, stdin: bool) -> None:
    data = f"{LAYOUT}\noci:/a\xff\xfeb\n".encode("latin-1")
    if stdin:
        done = run_imginspect("--digest", "-f", "-", input=data)
    else:
        refs = tmp_path / "refs.txt"
        refs.write_bytes(data)
        done = run_imginspect("--digest", "-f", str(refs))
    # was a UnicodeDecodeError traceback, exit 1
    assert done.code == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "is not UTF-8 text" in done.stderr, done.stderr


def test_a_line_too_long_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """A file of one 10 MB line (a binary given by mistake): it was read whole (2.3 GB of
    memory for a 200 MB line) and echoed on stderr as an invalid reference."""
    refs = tmp_path / "refs.txt"
    refs.write_bytes(b"oci:/" + b"a" * 10_000_000 + b"\n")
    done = run_imginspect("--digest", "-f", str(refs))
    assert done.code == 2, done.stderr[:500]
    assert len(done.stderr) < 1000, done.stderr[:500]
    assert "line 1" in done.stderr and "longer than" in done.stderr


class _Endless(io.RawIOBase):
    """``size`` bytes of ``a`` without a line break, counting what was read of them."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = b"a" * n
        self.left -= n
        self.served += n
        return n


def test_reading_a_long_line_stops_at_the_bound() -> None:
    raw = _Endless(64 * 1024 * 1024)
    text = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8")
    with pytest.raises(UsageError) as failure:
        list(read_references(("x",), text))
    assert "line 1" in failure.value.message
    # read to the bound and a buffer past it, not the whole line
    assert raw.served < 4 * MAX_LINE, raw.served


def test_a_line_of_the_bound_itself_is_read() -> None:
    line = "r" * (MAX_LINE - 2)
    text = io.StringIO(f"{line}  \n# {line}\n{line}\r\n{line}  ")
    assert list(read_references((), text)) == [line, line, line]
