"""Run the real imginspect CLI in a subprocess, as a user or a CI script would."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: bytes
    stderr: str
    elapsed: float

    @property
    def text(self) -> str:
        return self.stdout.decode()


def run_imginspect(
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 60.0,
) -> CliResult:
    full_env = dict(os.environ)
    full_env.pop("NO_COLOR", None)
    full_env.update(env or {})
    with tempfile.TemporaryDirectory(prefix="imginspect-cache-") as cold_cache:
        # Every run starts with an empty cache unless the test gives it one: request counts
        # and behaviour must not depend on what earlier tests left behind.
        full_env.setdefault("IMGINSPECT_CACHE_DIR", cold_cache)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "imginspect", *args],
            capture_output=True,
            env=full_env,
            input=input,
            timeout=timeout,
            check=False,
        )
    return CliResult(
        proc.returncode,
        proc.stdout,
        proc.stderr.decode(errors="replace"),
        time.monotonic() - started,
    )
