"""External programs the tests run, and the one policy for when one is missing: in CI
(``CI=true``) that is a failure, elsewhere a skip with the reason.

Modules say what they run with the ``needs_tool`` marker (registered in ``tests/conftest.py``,
checked before any fixture starts)::

    pytestmark = pytest.mark.needs_tool("skopeo", "docker-registry")

or call :func:`require_tool` first in a test or fixture (the registry fixtures do).
"""

from __future__ import annotations

import os
import shutil

import pytest

#: The external programs some tests run, and where they come from (for the skip reason).
TOOLS = {
    "docker-registry": "Debian package docker-registry (the CNCF distribution registry)",
    "skopeo": "Debian package skopeo",
    "dockerd": "Debian package docker.io, and root",
}


def in_ci() -> bool:
    """Whether this is a CI run (``CI=true``, as GitHub Actions, GitLab CI and most others
    set it): there every tool the suite uses must be present."""
    return os.environ.get("CI", "").lower() == "true"


def tool_missing(name: str) -> str | None:
    """Why ``name`` cannot run here (None: it can). ``dockerd`` also needs containerd and root
    (a private daemon is started for the differential tests)."""
    if name == "dockerd":
        from tests.support.dockerd import dockerd_available

        return None if dockerd_available() else f"dockerd cannot run here ({TOOLS[name]})"
    if shutil.which(name) is None:
        return f"{name} is not installed ({TOOLS.get(name, 'see scripts/test')})"
    return None


def require_tool(name: str) -> None:
    """In CI (``CI=true``) a missing ``name`` fails the test, elsewhere it is skipped
    with the reason."""
    reason = tool_missing(name)
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"{reason}: required in CI (CI=true)", pytrace=False)
    pytest.skip(reason)
