"""`imginspect diff A B`: platforms added and removed, per platform digest and size, the
verdict exit 9 (and 0 when the same), table and JSON, registry and layout targets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imginspect.diff import ADDED, CHANGED, REMOVED, SAME, ImagesDifferError, compare
from imginspect.errors import ExitCode
from imginspect.inspector import Inspector
from imginspect.target import parse_target
from tests.support.cli import run_imginspect
from tests.support.corpus import Pusher, _Builder, _platform
from tests.support.registry import Registry
from tests.support.supplychain import SupplyChain, push_to_registry


@pytest.fixture(scope="module")
def releases(registry_plain: Registry) -> tuple[SupplyChain, str, str]:
    """v1: amd64 + arm64 (with attestations); v2 drops arm64; v3 rebuilds amd64."""
    chain = push_to_registry(registry_plain, prefix="diff")
    b = _Builder("diff")
    repo = chain.app.repo
    v2 = b.index("v2", repo, [(chain.amd64, _platform("linux/amd64"), None)])
    v2.tag, v2.tags = "v2", ["v2"]
    rebuilt = b.image("v3/0", repo, platform="linux/amd64", layer_sizes=(300,), created=99)
    v3 = b.index(
        "v3",
        repo,
        [(rebuilt, _platform("linux/amd64"), None), (chain.arm64, _platform("linux/arm64"), None)],
    )
    v3.tag, v3.tags = "v3", ["v3"]
    with registry_plain.client() as client:
        pusher = Pusher(client)
        pusher.push(v2)
        pusher.push(v3)
    return chain, rebuilt.digest, v3.digest


def _diff(registry: Registry, a: str, b: str) -> Any:
    with Inspector() as inspector:
        results = [
            inspector.inspect(parse_target(registry.ref("diff/supply/app", t))) for t in (a, b)
        ]
        images = [inspector.image_children(r) for r in results]
    return compare(results[0], results[1], a_images=images[0], b_images=images[1])


def test_dropped_platform(registry_plain: Registry, releases: tuple[SupplyChain, str, str]) -> None:
    chain, _, _ = releases
    found = _diff(registry_plain, "v1", "v2")
    assert found.differ and not found.media_type_changed
    status = {e.key: e.status for e in found.entries}
    assert status == {
        "linux/amd64": SAME,
        "linux/arm64": REMOVED,
        "attestation of linux/amd64": REMOVED,
        "attestation of linux/arm64": REMOVED,
    }
    arm = next(e for e in found.entries if e.key == "linux/arm64")
    assert arm.a is not None and arm.a.digest == chain.arm64.digest and arm.b is None
    back = _diff(registry_plain, "v2", "v1")
    assert next(e.key for e in back.with_status(ADDED)) == "linux/arm64"


def test_changed_platform(registry_plain: Registry, releases: tuple[SupplyChain, str, str]) -> None:
    _chain, rebuilt, _ = releases
    found = _diff(registry_plain, "v1", "v3")
    amd = next(e for e in found.entries if e.key == "linux/amd64")
    assert amd.status == CHANGED and amd.b is not None and amd.b.digest == rebuilt
    assert next(e for e in found.entries if e.key == "linux/arm64").status == SAME


def test_same_is_not_different(
    registry_plain: Registry, releases: tuple[SupplyChain, str, str]
) -> None:
    found = _diff(registry_plain, "v1", "v1")
    assert not found.differ and all(e.status == SAME for e in found.entries)


def test_cli_exit_codes_and_one_line(
    registry_plain: Registry, releases: tuple[SupplyChain, str, str]
) -> None:
    a = registry_plain.ref("diff/supply/app", "v1")
    b = registry_plain.ref("diff/supply/app", "v2")
    differ = run_imginspect("diff", a, b)
    assert differ.code == 9 == ExitCode.IMAGES_DIFFER == ImagesDifferError.exit_code
    assert "linux/arm64  removed" in differ.text
    assert f"error: {a} and {b} differ: linux/arm64 removed;" in differ.stderr
    same = run_imginspect("diff", a, a)
    assert same.code == 0 and same.stderr == ""
    as_json = run_imginspect("diff", "--json", a, b)
    assert as_json.code == 9
    document = json.loads(as_json.text)
    assert document["Same"] is False
    assert {p["platform"]: p["status"] for p in document["Platforms"]}["linux/arm64"] == REMOVED
    missing = run_imginspect("diff", a, registry_plain.ref("diff/supply/app", "nope"))
    assert missing.code == 4  # a failure is not a verdict


def test_cli_layouts() -> None:
    same = run_imginspect("diff", "oci:examples/multiarch", "oci:examples/multiarch")
    assert same.code == 0, same.stderr
    assert "linux/arm/v7" in same.text
