"""Fake ``docker-credential-*`` helpers: real processes speaking the helper protocol.

Executables in this directory (put it first on ``PATH``):

* ``docker-credential-imginspect-fail`` -- fails (exit status 3, a message on stderr);
* ``docker-credential-imginspect-hang`` -- never answers;
* ``docker-credential-imginspect-garbage`` -- exits 0 with something that is not JSON;
* ``docker-credential-imginspect-leaky`` -- fails and prints a secret-looking JSON on stderr.

:func:`install_store_helper` writes a ``docker-credential-NAME`` wrapper that runs
``store_helper.py`` (a working helper backed by a JSON file) with this interpreter;
:func:`store_credentials` fills its store and :func:`helper_calls` reads its call log.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

HELPERS_DIR = Path(__file__).resolve().parent
STORE_HELPER = HELPERS_DIR / "store_helper.py"
#: The environment variable naming the directory of the stores and call logs.
HELPER_DIR_VARIABLE = "IMGINSPECT_HELPER_DIR"


def install_store_helper(bin_dir: Path, name: str) -> Path:
    """Create ``bin_dir/docker-credential-NAME`` (a working, JSON-backed helper)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    command = shlex.join([sys.executable, str(STORE_HELPER), name])
    path.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    path.chmod(0o755)
    return path


def store_credentials(store_dir: Path, name: str, entries: dict[str, tuple[str, str]]) -> None:
    """Make helper ``name`` answer ``(username, secret)`` for each server URL."""
    store_dir.mkdir(parents=True, exist_ok=True)
    document = {
        url: {"Username": user, "Secret": secret} for url, (user, secret) in entries.items()
    }
    (store_dir / f"{name}.json").write_text(json.dumps(document))


def helper_calls(store_dir: Path, name: str) -> list[str]:
    """Every call helper ``name`` received, as ``"ACTION SERVER_URL"`` lines."""
    log = store_dir / f"{name}.log"
    return log.read_text().splitlines() if log.exists() else []


def helper_path(bin_dir: Path) -> str:
    """A PATH with ``bin_dir`` and this directory first, then the current PATH."""
    return os.pathsep.join([str(bin_dir), str(HELPERS_DIR), os.environ.get("PATH", os.defpath)])
