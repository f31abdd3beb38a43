"""skopeo, an independent client, must see the same digest and size as imginspect."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from tests.support.cli import run_imginspect
from tests.support.corpus import CORPUS_KEYS, PushedImage
from tests.support.registry import Registry


def _skopeo_raw(registry: Registry, ref: str) -> bytes:
    args = ["skopeo", "inspect", "--raw", "--tls-verify=false"]
    if registry.username and registry.password and registry.token_server is None:
        args += ["--creds", f"{registry.username}:{registry.password}"]
    proc = subprocess.run([*args, f"docker://{ref}"], capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


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
