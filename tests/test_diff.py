"""`imginspect diff A B`: platforms added and removed, per platform digest and size, the
verdict exit 9 (and 0 when the same), table and JSON, registry and layout targets."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from imginspect.auth import Credential
from imginspect.diff import (
    ADDED,
    CHANGED,
    REMOVED,
    SAME,
    ConfigChange,
    ImagesDifferError,
    LayerChanges,
    compare,
    compare_targets,
    config_changes,
    layer_changes,
)
from imginspect.errors import ExitCode
from imginspect.hosts import HostResolver
from imginspect.imageconfig import ImageConfig
from imginspect.inspector import Inspector
from imginspect.manifest import Descriptor
from imginspect.target import parse_target
from tests.support.cli import run_imginspect
from tests.support.corpus import (
    OCI_LAYER,
    PushedImage,
    Pusher,
    _app_config,
    _Builder,
    _config_image,
    _platform,
    build_corpus,
)
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
    assert differ.code == 9
    assert differ.code == ExitCode.IMAGES_DIFFER == ImagesDifferError.exit_code
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


# --------------------------------------------------------------------------- --image-config


def _app_v2_config() -> dict[str, Any]:
    doc = _app_config("amd64", None, 0)
    doc["created"] = "2024-05-01T00:00:00Z"
    config = doc["config"]
    config["User"] = "0"
    config["Env"] = ["PATH=/usr/local/bin:/usr/bin:/bin", "APP_MODE=staging", "DEBUG=1"]
    config["Entrypoint"] = ["/usr/local/bin/app"]
    config["ExposedPorts"] = {"8080/tcp": {}, "7070/tcp": {}}
    labels = dict(config["Labels"])
    labels["org.opencontainers.image.version"] = "2.5.0"
    del labels["org.opencontainers.image.source"]
    labels["org.example.new"] = "yes\x1b[31m"
    config["Labels"] = labels
    config["Healthcheck"] = dict(config["Healthcheck"], Retries=5)
    return doc


@pytest.fixture(scope="module")
def app_releases(registry_plain: Registry) -> tuple[PushedImage, PushedImage, PushedImage]:
    """v1: the config corpus's ``app``; v2: its linux/amd64 image rebuilt with another config
    and layers (layer 0 kept, layer 1 rebuilt, one more), linux/arm64 kept."""
    v1 = build_corpus(prefix="diffcfg", tags=["v1"], keys=["app"])["app"]
    b = _Builder("diffcfg")
    amd64, arm64 = v1.children[0], v1.children[1]
    rebuilt = _config_image(
        b,
        "app/0",
        v1.repo,
        _app_v2_config(),
        [(OCI_LAYER, 900), (OCI_LAYER, 301), (OCI_LAYER, 500)],
    )
    v2 = b.index(
        "v2",
        v1.repo,
        [(rebuilt, _platform("linux/amd64"), None), (arm64, _platform("linux/arm64"), None)],
    )
    v2.tag, v2.tags = "v2", ["v2"]
    with registry_plain.client() as client:
        pusher = Pusher(client)
        pusher.push(v1)
        pusher.push(v2)
    assert amd64.layers[0].digest == rebuilt.layers[0].digest
    return v1, v2, rebuilt


def test_image_config_changes(
    registry_plain: Registry, app_releases: tuple[PushedImage, PushedImage, PushedImage]
) -> None:
    v1, _v2, rebuilt = app_releases
    targets = [parse_target(registry_plain.ref(v1.repo, t)) for t in ("v1", "v2")]
    with Inspector() as inspector:
        plain = compare_targets(inspector, (targets[0], targets[1]))
        found = compare_targets(inspector, (targets[0], targets[1]), image_config=True)
    assert not plain.compared and all(e.config is None for e in plain.entries)
    assert found.compared and found.differ
    by_key = {e.key: e for e in found.entries}
    amd = by_key["linux/amd64"]
    assert amd.status == CHANGED and amd.config is not None and amd.layers is not None
    changes = {c.field: c for c in amd.config}
    assert list(changes) == [
        "Created",
        "User",
        "Env",
        "Entrypoint",
        "Healthcheck",
        "Labels",
        "ExposedPorts",
    ]
    assert changes["User"].a == "10001:10001" and changes["User"].b == "0"
    assert changes["Entrypoint"].b == ["/usr/local/bin/app"]
    env = changes["Env"]
    assert env.added == ("DEBUG=1",) and env.removed == ("GREETING=hello <world> & more",)
    assert env.changed == (("APP_MODE", "production", "staging"),)
    labels = changes["Labels"]
    assert labels.removed == ("org.opencontainers.image.source=https://example.invalid/app",)
    assert labels.changed == (("org.opencontainers.image.version", "2.4.1", "2.5.0"),)
    assert changes["ExposedPorts"].added == ("7070/tcp",)
    assert changes["ExposedPorts"].removed == ("9090/udp",)
    assert changes["Healthcheck"].a["Retries"] == 3 and changes["Healthcheck"].b["Retries"] == 5
    old_layers = v1.children[0].layers
    assert [d.digest for d in amd.layers.removed] == [old_layers[1].digest]
    assert [d.digest for d in amd.layers.added] == [b.digest for b in rebuilt.layers[1:]]
    assert not amd.layers.reordered
    arm = by_key["linux/arm64"]
    assert arm.status == SAME and arm.config == () and arm.layers == LayerChanges()
    # attestations are not images: not compared
    assert by_key["attestation of linux/amd64"].config is None


def test_cli_image_config(
    registry_plain: Registry, app_releases: tuple[PushedImage, PushedImage, PushedImage]
) -> None:
    v1, _v2, rebuilt = app_releases
    a, b = registry_plain.ref(v1.repo, "v1"), registry_plain.ref(v1.repo, "v2")
    table = run_imginspect("diff", "--image-config", a, b)
    assert table.code == 9, table.stderr
    lines = table.text.splitlines()
    assert "CONFIG (A -> B)" in lines and "LAYERS" in lines
    assert any(re.fullmatch(r"linux/amd64\s+User\s+10001:10001 -> 0", x) for x in lines)
    assert any(re.fullmatch(r"linux/amd64\s+Env\s+\+ DEBUG=1", x) for x in lines)
    assert any(
        re.fullmatch(r"linux/amd64\s+Env\s+~ APP_MODE: production -> staging", x) for x in lines
    )
    assert "\x1b" not in table.text and "yes\\x1b[31m" in table.text  # escaped, not a colour
    added = rebuilt.layers[2]
    assert any(
        re.fullmatch(rf"linux/amd64\s+added\s+{added.digest[:19]}\s+{added.size}", x) for x in lines
    )
    assert "linux/arm64" not in table.text.split("CONFIG (A -> B)")[1]
    assert (
        "linux/amd64 changed (Created, User, Env, Entrypoint, Healthcheck, Labels, "
        "ExposedPorts, layers +2 -1)" in table.stderr
    )
    document = json.loads(run_imginspect("diff", "--json", "--image-config", a, b).text)
    amd = next(p for p in document["Platforms"] if p["platform"] == "linux/amd64")
    fields = {c["field"]: c for c in amd["config"]}
    assert fields["User"] == {"field": "User", "a": "10001:10001", "b": "0"}
    assert fields["Env"]["changed"] == [{"key": "APP_MODE", "a": "production", "b": "staging"}]
    assert fields["ExposedPorts"] == {
        "field": "ExposedPorts",
        "added": ["7070/tcp"],
        "removed": ["9090/udp"],
    }
    assert [d["digest"] for d in amd["layers"]["added"]] == [x.digest for x in rebuilt.layers[1:]]
    assert amd["layers"]["reordered"] is False
    arm = next(p for p in document["Platforms"] if p["platform"] == "linux/arm64")
    assert arm["config"] == [] and arm["layers"]["added"] == arm["layers"]["removed"] == []
    same = run_imginspect("diff", "--image-config", a, a)
    assert same.code == 0 and same.stderr == ""
    assert "no config field changed" in same.text and "no layer changed" in same.text
    # single images (by digest) compare their configs too
    single = run_imginspect(
        "diff",
        "--image-config",
        registry_plain.ref(v1.repo, v1.children[0].digest),
        registry_plain.ref(v1.repo, rebuilt.digest),
    )
    assert single.code == 9
    assert "linux/amd64 changed (Created, User, Env" in single.stderr


def _layer(n: int) -> Descriptor:
    return Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", f"sha256:{n:064x}", n)


def test_layer_changes_in_order_with_duplicates_and_reordering() -> None:
    one, two, three, four = (_layer(n) for n in (1, 2, 3, 4))
    found = layer_changes([one, two, two, three], [two, four, one, one])
    assert found.removed == (two, three) and found.added == (four, one)
    assert found.reordered  # common: [1, 2] in A, [2, 1] in B
    assert layer_changes([one, two], [one, two]) == LayerChanges()
    assert not layer_changes([one, two], [one, two]).any
    kept = layer_changes([one, two], [one, three, two])
    assert kept.added == (three,) and not kept.reordered and kept.any


def test_config_changes_artifact_and_unchanged() -> None:
    config = ImageConfig(user="1", env=("A=1", "A=2"), labels={"x": "y"})
    assert config_changes(config, config) == ()
    assert config_changes(None, None) == ()
    assert config_changes(config, None) == (ConfigChange("Config", "image", None),)
    # the last of a key wins, as at run time
    later = ImageConfig(user="1", env=("A=2",), labels={"x": "y"})
    assert config_changes(config, later) == ()
    unset = ImageConfig(env=("A=2",), labels={"x": "y"}, volumes=("/v",))
    assert config_changes(config, unset) == (
        ConfigChange("User", "1", None),
        ConfigChange("Volumes", added=("/v",)),
    )


@pytest.mark.parametrize("variant", ["plain", "tls", "basic", "token"])
def test_diff_on_every_registry(request: pytest.FixtureRequest, variant: str) -> None:
    """Two images of the corpus, on each registry of the suite (plain, TLS, Basic, token),
    with the per-platform configs: an index against itself is the same, against another
    index its platforms differ."""
    registry: Registry = request.getfixturevalue(f"registry_{variant}")
    corpus: dict[str, PushedImage] = request.getfixturevalue(f"corpus_{variant}")
    oci_index, buildkit = corpus["oci-index"], corpus["buildkit"]

    def credentials(host: str, repository: str) -> Credential | None:
        if registry.username and registry.password and host == registry.host:
            return Credential(registry.username, registry.password, source="test")
        return None

    a = parse_target(registry.ref(oci_index.repo, oci_index.tag))
    b = parse_target(registry.ref(buildkit.repo, buildkit.tag))
    with Inspector(HostResolver(credentials=credentials)) as inspector:
        same = compare_targets(inspector, (a, a), image_config=True)
        other = compare_targets(inspector, (a, b))
    assert not same.differ and same.compared
    assert all(
        e.status == SAME and not e.config and not e.layers.any for e in same.entries if e.layers
    )
    assert other.differ
    statuses = {e.key: e.status for e in other.entries}
    assert statuses["linux/arm/v7"] == REMOVED, statuses  # oci-index has it, buildkit not
