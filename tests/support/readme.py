"""The README's examples, executable: extract ```console blocks and run their commands.

A ```console block holds `$ command` lines, each followed by the output it prints. The
commands run in bash from the repository root against a real registry that serves the demo
corpus; the README writes that registry as ``localhost:5000``. ``scripts/readme-examples``
rewrites the outputs after a deliberate change; ``tests/test_readme.py`` checks them.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
README = ROOT / "README.md"
README_REGISTRY = "localhost:5000"
_BLOCK = re.compile(r"^```console\n(.*?)^```\n", re.S | re.M)


@dataclass(frozen=True)
class Example:
    command: str
    output: str
    #: offsets of the output text in the README (for rewriting)
    start: int
    end: int


def examples(text: str) -> Iterator[Example]:
    for block in _BLOCK.finditer(text):
        body_start = block.start(1)
        body = block.group(1)
        lines = body.splitlines(keepends=True)
        offset = body_start
        current: tuple[str, int] | None = None
        output: list[str] = []
        for line in lines:
            if line.startswith("$ "):
                if current is not None:
                    yield Example(current[0], "".join(output), current[1], offset)
                current = (line[2:].rstrip("\n"), offset + len(line))
                output = []
            else:
                output.append(line)
            offset += len(line)
        if current is not None:
            yield Example(current[0], "".join(output), current[1], offset)


def run(
    command: str, registry_host: str, cache_dir: Path, stdin: str = "", cwd: Path = ROOT
) -> str:
    env = dict(os.environ)
    env.update(
        {
            "COLUMNS": "80",
            "IMGINSPECT_CACHE_DIR": str(cache_dir),
            "IMGINSPECT_NO_CACHE": "1",
            "NO_COLOR": "1",
            "DOCKER_CONFIG": str(cache_dir / "no-docker-config"),
        }
    )
    proc = subprocess.run(
        ["bash", "-c", command.replace(README_REGISTRY, registry_host)],
        cwd=cwd,
        env=env,
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # as a terminal shows them: interleaved, in order
        text=True,
        timeout=120,
        check=False,
    )
    text = proc.stdout
    text = "".join(line.rstrip() + "\n" for line in text.splitlines())
    return text.replace(registry_host, README_REGISTRY)


def rewrite(text: str, outputs: list[str]) -> str:
    found = list(examples(text))
    assert len(found) == len(outputs)
    for example, output in reversed(list(zip(found, outputs, strict=True))):
        text = text[: example.start] + output + text[example.end :]
    return text
