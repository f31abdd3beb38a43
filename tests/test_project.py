"""The project's own set-up: the Hypothesis profile, the dependency floors scripts/test
tests, and no leftovers (merge backups, editor files) in the source tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
#: Directories that are not the product's source (environments, caches, build output).
_NOT_SOURCE = {".git", ".venv", ".venv-floor", "build", "dist", "__pycache__"}
_LEFTOVERS = (".orig", ".rej", ".bak", ".swp", "~")


def test_hypothesis_profile_has_no_deadline() -> None:
    """A slow example on a loaded CI machine is not a failure (tests/conftest.py)."""
    default = settings.default
    assert default is not None
    assert default.deadline is None
    assert HealthCheck.too_slow in default.suppress_health_check


def test_every_dependency_declares_a_tested_floor() -> None:
    """scripts/floors turns pyproject.toml's floors into the pins of scripts/test's second
    run; a dependency without a floor would make it fail."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "floors")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    pins = dict(line.split("==") for line in out.stdout.splitlines())
    assert set(pins) == {"click", "httpx", "httpcore", "rich", "platformdirs", "truststore"}
    assert all(version[0].isdigit() for version in pins.values()), pins


def test_no_leftover_files_in_the_source_tree() -> None:
    leftovers = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*")
        if not _NOT_SOURCE & set(path.relative_to(ROOT).parts[:-1])
        and not any(part.endswith((".egg-info", "_cache")) for part in path.parts)
        and path.name.endswith(_LEFTOVERS)
    ]
    assert leftovers == []
