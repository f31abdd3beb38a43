"""skopeo, an independent client, must see the same digest and size as imginspect."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.support.cli import run_imginspect
from tests.support.corpus import CORPUS_KEYS, PushedImage
from tests.support.registry import Registry
from tests.support.tools import require_tool, tool_missing


def _skopeo_raw(registry: Registry, ref: str) -> bytes:
    args = ["skopeo", "inspect", "--raw", "--tls-verify=false"]
    if registry.username and registry.password and registry.token_server is None:
        args += ["--creds", f"{registry.username}:{registry.password}"]
    proc = subprocess.run([*args, f"docker://{ref}"], capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


@pytest.mark.needs_tool("skopeo", "docker-registry")
@pytest.mark.parametrize("key", CORPUS_KEYS)
@pytest.mark.parametrize("variant", ["plain", "tls"])
def test_digest_and_size_agree_with_skopeo(
    request: pytest.FixtureRequest, variant: str, key: str
) -> None:
    registry: Registry = request.getfixturevalue(f"registry_{variant}")
    corpus: dict[str, PushedImage] = request.getfixturevalue(f"corpus_{variant}")
    ref = registry.ref(corpus[key].repo, corpus[key].tag)
    raw = _skopeo_raw(registry, ref)
    ours = run_imginspect("--json", ref)
    assert ours.code == 0, ours.stderr
    descriptor = json.loads(ours.stdout)["Descriptor"]
    assert descriptor["digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert descriptor["size"] == len(raw)


# -- the policy for external programs (tests/conftest.py) -----------------------------------------


def test_a_missing_tool_fails_in_ci_and_is_skipped_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"skopeo is not installed.*required in CI"):
        require_tool("skopeo")
    for local in ("", "false", "0"):
        monkeypatch.setenv("CI", local)
        with pytest.raises(pytest.skip.Exception, match="skopeo is not installed"):
            require_tool("skopeo")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="docker-registry is not installed"):
        require_tool("docker-registry")


def test_a_present_tool_is_required_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    directory, name = os.path.split(sys.executable)
    monkeypatch.setenv("PATH", directory)
    monkeypatch.setenv("CI", "true")
    require_tool(name)
    assert tool_missing(name) is None
