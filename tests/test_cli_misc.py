"""CLI conventions: completions (and their drift), help, version, colour, progress."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imginspect import __version__
from tests.support.cli import run_imginspect
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_completions_are_current(shell: str) -> None:
    result = run_imginspect("completion", shell)
    assert result.code == 0, result.stderr
    committed = (ROOT / "completions" / f"imginspect.{shell}").read_bytes()
    assert result.stdout == committed, (
        f"completions/imginspect.{shell} is stale: regenerate with "
        f"`imginspect completion {shell} > completions/imginspect.{shell}`"
    )


def _complete(words: str) -> list[str]:
    count = len(words.split())
    cword = count + 1 if words == "" or words.endswith(" ") else count
    result = run_imginspect(
        env={
            "_IMGINSPECT_COMPLETE": "bash_complete",
            "COMP_WORDS": f"imginspect {words}",
            "COMP_CWORD": str(cword),
        }
    )
    assert result.code == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.text.splitlines() if "," in line]


def test_completion_offers_options_choices_and_subcommands() -> None:
    assert "--platform" in _complete("--pl")
    assert _complete("--format ") == ["table", "json", "extended-json"]
    assert _complete("--compat ") == ["docker"]
    assert {"cache", "completion", "inspect"} <= set(_complete(""))
    assert _complete("cache ") == ["clear", "show"]
    assert "--no-cache" in _complete("--json --no-")
    # a reference completes nothing (and never touches the network)
    assert _complete("--json ubun") == []


def test_version_and_help() -> None:
    version = run_imginspect("--version")
    assert version.code == 0 and version.text == f"imginspect, version {__version__}\n"
    for args in (["--help"], ["inspect", "--help"]):
        result = run_imginspect(*args)
        assert result.code == 0
        assert "imginspect --json ubuntu:24.04 | jq" in result.text
        assert "imginspect --require linux/amd64,linux/arm64" in result.text
        assert "-f images.txt" in result.text and "--digest" in result.text
        assert "7 required platform missing" in result.text


def test_color_flags(registry_plain: Registry, corpus_plain: dict[str, PushedImage]) -> None:
    image = corpus_plain["buildkit"]
    ref = registry_plain.ref(image.repo, image.tag)
    assert not ANSI.search(run_imginspect(ref).text), "no colour into a pipe by default"
    assert ANSI.search(run_imginspect("--color", ref).text), "--color forces it"
    assert not ANSI.search(run_imginspect("--no-color", ref).text)


def _run_with_tty_stderr(args: list[str]) -> tuple[int, bytes, bytes]:
    """stdout to a pipe, stderr to a pseudo-terminal (as in `imginspect ... > out.json`)."""
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS="100", TERM="xterm")
    env.pop("NO_COLOR", None)
    with subprocess.Popen(
        [sys.executable, "-m", "imginspect", *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    ) as proc:
        os.close(slave)
        err = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                err += chunk
            elif proc.poll() is not None:
                break
        out = proc.stdout.read() if proc.stdout else b""
        code = proc.wait(timeout=30)
    os.close(master)
    return code, out, err


def test_progress_on_a_terminal_only(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    refs = [registry_plain.ref(img.repo, img.tag) for img in corpus_plain.values()]
    code, out, err = _run_with_tty_stderr(["--json", "--no-cache", *refs])
    assert code == 0
    assert len(out.splitlines()) == len(refs)
    assert b"inspecting" in err, err[-500:]
    plain = run_imginspect("--json", *refs)
    assert plain.code == 0 and plain.stderr == "", "nothing on stderr when it is not a terminal"
