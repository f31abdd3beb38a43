"""Output that goes where it should (issue 10): results on stdout in every mode, progress
that never mixes with them, layout without split values, closed/full/broken stdout, NO_COLOR,
SIGTERM. Terminals are real pseudo-terminals with a set window size."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.support.badserver import BadServer
from tests.support.cli import run_imginspect
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ERASE = "\r\x1b[2K"


@dataclass(frozen=True)
class TtyRun:
    code: int
    tty: str  # what the terminal received (stdout and/or stderr), \r\n as sent
    other: bytes  # the stream that was not the terminal (pipe or file), if any


def run_on_tty(
    args: list[str],
    *,
    stdout: str = "pipe",  # "tty" | "pipe" | a file path
    stderr: str = "tty",  # "tty" | "pipe"
    columns: int = 100,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> TtyRun:
    """Run the CLI with stdout and/or stderr on a pseudo-terminal of ``columns`` columns."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    # the terminal shows "\n" as "\r\n"; keep it so (no other processing)
    full_env = dict(os.environ, TERM="xterm")
    for name in ("NO_COLOR", "COLUMNS", "LINES"):
        full_env.pop(name, None)
    full_env["IMGINSPECT_CACHE_DIR"] = tempfile.mkdtemp(prefix="imginspect-cache-")
    full_env.update(env or {})
    out_file = None
    if stdout == "tty":
        out_target: int | IO[bytes] = slave
    elif stdout == "pipe":
        out_target = subprocess.PIPE
    else:
        out_file = open(stdout, "wb")  # noqa: SIM115 - closed below
        out_target = out_file
    err_target = slave if stderr == "tty" else subprocess.PIPE
    proc = subprocess.Popen(
        [sys.executable, "-m", "imginspect", *args],
        stdin=subprocess.DEVNULL,
        stdout=out_target,
        stderr=err_target,
        env=full_env,
    )
    os.close(slave)
    if out_file is not None:
        out_file.close()
    other = bytearray()
    pipe = proc.stdout if stdout == "pipe" else proc.stderr if stderr == "pipe" else None
    reader = None
    if pipe is not None:
        reader = threading.Thread(target=lambda: other.extend(pipe.read()), daemon=True)
        reader.start()
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            received += chunk
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    if reader is not None:
        reader.join(timeout=30)
    os.close(master)
    return TtyRun(code, received.decode(errors="replace"), bytes(other))


def _refs(registry: Registry, corpus: dict[str, PushedImage], *keys: str) -> list[str]:
    return [registry.ref(corpus[k].repo, corpus[k].tag) for k in keys]


def _screen_lines(tty: str) -> list[str]:
    """What a terminal shows: each line after its last erase, styling removed."""
    return [ANSI.sub("", line.split(ERASE)[-1]).rstrip("\r") for line in tty.split("\n")]


# ------------------------------------------------------------------ results on stdout


def test_batch_tables_go_to_stdout_when_stderr_is_a_terminal(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    refs = _refs(registry_plain, corpus_plain, "buildkit", "oci-index", "schema2")
    run = run_on_tty(refs, stdout="pipe", stderr="tty")
    assert run.code == 0, run.tty
    out = run.other.decode()
    assert out.count("PLATFORM") == 3, (out, run.tty)
    for ref in refs:
        assert f"Name   {ref}" in out
    assert "PLATFORM" not in run.tty and "Name" not in run.tty


def test_file_batch_redirected_to_a_file_gets_the_results_and_a_progress_line(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage], tmp_path: Path
) -> None:
    refs = _refs(registry_plain, corpus_plain, "buildkit", "oci-index", "schema2")
    listing = tmp_path / "refs.txt"
    listing.write_text("\n".join(refs) + "\n")
    out = tmp_path / "out.txt"
    run = run_on_tty(["--digest", "-f", str(listing)], stdout=str(out), stderr="tty")
    assert run.code == 0, run.tty
    lines = out.read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == refs
    assert "inspecting" in run.tty, "stdout is a file: progress on the terminal"
    assert "?" not in run.tty
    assert run.tty.endswith(ERASE), "the progress line is erased at the end"
    # with every reference on the command line the total is known from the start
    run = run_on_tty(["--digest", *refs], stdout=str(out), stderr="tty")
    assert run.code == 0 and "inspecting 0/3" in run.tty, run.tty


def test_no_progress_when_stdout_is_a_pipe(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage], tmp_path: Path
) -> None:
    """`imginspect --json -f refs | jq .`: jq prints on the terminal our stderr is on."""
    refs = _refs(registry_plain, corpus_plain, "buildkit", "oci-index", "schema2") * 4
    listing = tmp_path / "refs.txt"
    listing.write_text("\n".join(refs) + "\n")
    run = run_on_tty(["--json", "--no-cache", "-f", str(listing)], stdout="pipe", stderr="tty")
    assert run.code == 0
    assert len(run.other.splitlines()) == len(refs)
    assert run.tty == "", run.tty


def test_progress_is_erased_before_each_result_on_the_same_terminal(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    refs = _refs(registry_plain, corpus_plain, "buildkit", "oci-index", "schema2") * 3
    run = run_on_tty(["--json", *refs], stdout="tty", stderr="tty", columns=300)
    assert run.code == 0, run.tty
    assert "inspecting" in run.tty
    shown = [line for line in _screen_lines(run.tty) if line]
    assert len(shown) == len(refs), shown
    assert all(line.startswith('{"Descriptor":') for line in shown), shown


# ------------------------------------------------------------------ layout


def test_output_off_a_terminal_never_splits_a_value(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    deep = corpus_plain["deep"]
    long_ref = registry_plain.ref(deep.repo, deep.digest)  # well over 80 characters
    assert len(long_ref) > 80
    result = run_imginspect(long_ref, env={"COLUMNS": "80"})
    assert result.code == 0, result.stderr
    assert f"Name   {long_ref}\n" in result.text
    buildkit = corpus_plain["buildkit"]
    result = run_imginspect("--no-trunc", registry_plain.ref(buildkit.repo, buildkit.tag))
    assert result.code == 0, result.stderr
    rows = [line.split() for line in result.text.splitlines() if line.startswith(("linux/", "u"))]
    assert [row[1] for row in rows] == [c.digest for c in buildkit.children]
    assert all(row[-3:-1] == ["attestation", "of"] for row in rows[2:]), rows


@pytest.mark.parametrize("columns", [60, 80])
@pytest.mark.parametrize("no_trunc", [False, True])
def test_narrow_terminal_keeps_every_value_whole(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage], columns: int, no_trunc: bool
) -> None:
    index = corpus_plain["buildkit"]
    ref = registry_plain.ref(index.repo, index.tag)
    args = ["--sizes", ref, *(["--no-trunc"] if no_trunc else [])]
    run = run_on_tty(args, stdout="tty", stderr="pipe", columns=columns)
    assert run.code == 0, run.other
    lines = _screen_lines(run.tty)
    text = "\n".join(lines)
    assert "…" not in text and "..." not in text
    assert f"Digest {index.digest}" in lines, "the summary's digest is one line"
    for child in index.children:
        digest = child.digest if no_trunc else child.digest[:19]
        assert any(digest in line.split() for line in lines), (digest, text)
    for needed in ("linux/amd64", "linux/arm64", "attestation of linux/amd64", "2.5 kB"):
        assert needed in text, text
    # table lines are as wide as the terminal, except a lone value wider on its own
    for line in lines[lines.index("") :]:
        assert len(line) <= columns or len(line.split()) == 1, (line, text)


# ------------------------------------------------------------------ stdout that fails


def test_closed_stdout_is_one_error_line(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    (ref,) = _refs(registry_plain, corpus_plain, "oci-index")
    proc = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m imginspect --no-cache --json "{ref}" >&-'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: standard output is closed"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("mode", [[], ["--json"], ["--digest"]])
def test_full_stdout_is_one_error_line(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage], mode: list[str]
) -> None:
    refs = _refs(registry_plain, corpus_plain, "oci-index", "buildkit")
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "imginspect", "--no-cache", *mode, *refs],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: cannot write to standard output: No space left on device"
    ], proc.stderr


def test_broken_pipe_is_quiet_with_141(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage], tmp_path: Path
) -> None:
    (ref,) = _refs(registry_plain, corpus_plain, "big-index")
    listing = tmp_path / "refs.txt"
    listing.write_text(f"{ref}\n" * 40)  # 40 lines of ~6 kB: more than a pipe holds
    proc = subprocess.run(
        [
            "bash",
            "-c",
            f'"{sys.executable}" -m imginspect --no-cache --json -f "{listing}" '
            '| head -1 > /dev/null; echo "status ${PIPESTATUS[0]}" >&2',
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stderr == "status 141\n", proc.stderr


# ------------------------------------------------------------------ colour


def test_no_color_means_no_ansi_styling_on_a_terminal(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    (ref,) = _refs(registry_plain, corpus_plain, "buildkit")
    styled = run_on_tty([ref], stdout="tty", stderr="pipe")
    assert styled.code == 0 and "\x1b[" in styled.tty, "styled by default on a terminal"
    for extra_env, args in (({"NO_COLOR": "1"}, []), ({}, ["--no-color"])):
        plain = run_on_tty([*args, ref], stdout="tty", stderr="pipe", env=extra_env)
        assert plain.code == 0
        assert "\x1b[" not in plain.tty, plain.tty
        assert "attestation of linux/amd64" in plain.tty


# ------------------------------------------------------------------ SIGTERM


def _cache_entries(cache_dir: Path) -> int:
    result = run_imginspect("cache", "show", env={"IMGINSPECT_CACHE_DIR": str(cache_dir)})
    assert result.code == 0, result.stderr
    match = re.search(r"content:\s+(\d+) entries", result.text)
    assert match, result.text
    return int(match.group(1))


def test_sigterm_flushes_pending_cache_writes_and_exits_143(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage], tmp_path: Path
) -> None:
    good = _refs(registry_plain, corpus_plain, "oci-index", "buildkit")
    cache_dir = tmp_path / "cache"
    env = dict(os.environ, IMGINSPECT_CACHE_DIR=str(cache_dir))
    env.pop("IMGINSPECT_NO_CACHE", None)
    with BadServer() as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imginspect", "--json", *good, server.ref("hang")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        seen = b""
        while seen.count(b"\n") < len(good):  # both results are out: now it waits
            chunk = proc.stdout.read1(4096)  # type: ignore[attr-defined]
            assert chunk, proc.stderr.read()
            seen += chunk
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        stderr = proc.stderr.read().decode()
    assert code == 143, stderr
    assert stderr.splitlines() == ["error: terminated"], stderr
    assert _cache_entries(cache_dir) > 0, "the pending cache writes were flushed"
