"""Results of a batch into a pipe or a file are written in blocks, not one system call per
line, yet a reader sees each one within FLUSH_DELAY (also while a slow reference is awaited),
an error line follows the results before it, and SIGTERM still gets everything out. On a
terminal, each result is flushed as it is written (issue 15)."""

from __future__ import annotations

import io
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imginspect.batch import Outcome
from imginspect.console import ResultWriter
from imginspect.output import OutputMode, TableStyle
from tests.support.badserver import BadServer
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

Corpus = dict[str, PushedImage]
DIGEST = "sha256:" + "ab" * 32


class CountingRaw(io.RawIOBase):
    """A raw stream that records each write (each one a system call on a real file)."""

    def __init__(self, tty: bool) -> None:
        self.writes: list[bytes] = []
        self._tty = tty

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes.append(bytes(data))
        return len(data)

    def isatty(self) -> bool:
        return self._tty


def fake_stdout(monkeypatch: pytest.MonkeyPatch, *, tty: bool) -> CountingRaw:
    """Replace sys.stdout (in the test itself: pytest's capture sets it between phases)."""
    raw = CountingRaw(tty=tty)
    buffered = io.BufferedWriter(raw, 1 << 16)  # type: ignore[type-var]  # a RawIOBase
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffered))
    return raw


def _line(i: int) -> bytes:
    return f"{DIGEST}  example.com/app:{i}\n".encode()


def _write(writer: ResultWriter, i: int) -> None:
    writer.write(Outcome(f"example.com/app:{i}", digest=DIGEST))


def _wait_for(raw: CountingRaw, data: bytes) -> None:
    deadline = time.monotonic() + 30  # FLUSH_DELAY is 0.1 s: a loaded machine may be slow
    while b"".join(raw.writes) != data:
        assert time.monotonic() < deadline, raw.writes
        time.sleep(0.01)


def test_batch_off_a_terminal_is_written_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = fake_stdout(monkeypatch, tty=False)
    with ResultWriter(OutputMode.DIGEST, TableStyle(), batch=True) as writer:
        for i in range(200):
            _write(writer, i)
    assert b"".join(stdout.writes) == b"".join(_line(i) for i in range(200))
    # one block at the end, and any the helper thread flushed meanwhile (every 0.1 s at most)
    assert len(stdout.writes) < 20, len(stdout.writes)


def test_batch_on_a_terminal_is_flushed_line_by_line(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = fake_stdout(monkeypatch, tty=True)
    with ResultWriter(OutputMode.DIGEST, TableStyle(), batch=True) as writer:
        for i in range(20):
            _write(writer, i)
            assert stdout.writes[-1] == _line(i)
    assert stdout.writes == [_line(i) for i in range(20)]


def test_single_reference_off_a_terminal_is_flushed_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdout = fake_stdout(monkeypatch, tty=False)
    with ResultWriter(OutputMode.DIGEST, TableStyle(), batch=False) as writer:
        writer.write(Outcome("example.com/app:0", digest=DIGEST))
        assert stdout.writes == [f"{DIGEST}\n".encode()]


def test_buffered_results_reach_the_reader_while_the_next_is_awaited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdout = fake_stdout(monkeypatch, tty=False)
    with ResultWriter(OutputMode.DIGEST, TableStyle(), batch=True) as writer:
        _write(writer, 0)
        _wait_for(stdout, _line(0))  # no further result, no end of run: the helper flushed
        _write(writer, 1)
        _write(writer, 2)
        _wait_for(stdout, _line(0) + _line(1) + _line(2))  # and again, for later ones


def test_flush_before_an_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = fake_stdout(monkeypatch, tty=False)
    with ResultWriter(OutputMode.DIGEST, TableStyle(), batch=True) as writer:
        _write(writer, 0)
        writer.flush()
        assert stdout.writes == [_line(0)]


# ---------------------------------------------------------------------------- end to end


def _env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without PYTHONUNBUFFERED, which makes stdout unbuffered (the
    user's choice, respected): these tests are about the buffered default."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["IMGINSPECT_CACHE_DIR"] = str(tmp_path / "cache")
    return env


def test_error_lines_follow_the_results_before_them_in_one_stream(
    registry_plain: Registry, corpus_plain: Corpus, tmp_path: Path
) -> None:
    """`imginspect --digest -f refs 2>&1 | ...`: the error of a reference comes after the
    results of the references before it, though results are block-buffered."""
    good = [registry_plain.ref(corpus_plain[k].repo, corpus_plain[k].tag) for k in ("oci-index",)]
    missing = registry_plain.ref(corpus_plain["schema2"].repo, "no-such-tag")
    refs = [good[0], missing, good[0], missing, good[0]]
    listing = tmp_path / "refs.txt"
    listing.write_text("".join(f"{ref}\n" for ref in refs))
    proc = subprocess.run(
        [sys.executable, "-m", "imginspect", "--digest", "-f", str(listing)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_env(tmp_path),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 4, proc.stdout
    firsts = [line.split()[0] for line in proc.stdout.decode().splitlines()]
    digest = corpus_plain["oci-index"].digest
    assert [w for w in firsts if w != "hint:"] == [digest, "error:", digest, "error:", digest]


def test_batch_into_a_pipe_streams_while_a_reference_hangs_and_sigterm_flushes(
    registry_plain: Registry, corpus_plain: Corpus, tmp_path: Path
) -> None:
    good = [registry_plain.ref(corpus_plain[k].repo, corpus_plain[k].tag) for k in ("oci-index",)]
    with BadServer() as server:
        listing = tmp_path / "refs.txt"
        listing.write_text(f"{good[0]}\n{good[0]}\n{server.ref('hang')}\n{good[0]}\n")
        proc = subprocess.Popen(
            [sys.executable, "-m", "imginspect", "--json", "-f", str(listing)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(tmp_path),
        )
        assert proc.stdout is not None and proc.stderr is not None
        seen = b""
        deadline = time.monotonic() + 60
        while seen.count(b"\n") < 2:  # both results are out while the third hangs
            assert time.monotonic() < deadline, seen
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, proc.stderr.read()
                seen += chunk
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        seen += proc.stdout.read()
        stderr = proc.stderr.read().decode()
    assert code == 143, stderr
    assert stderr.splitlines() == ["error: terminated"], stderr
    assert seen.count(b"\n") == 2 and seen.startswith(b'{"Descriptor":'), seen
