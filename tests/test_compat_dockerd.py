"""Differential test against a real Docker Engine: for every corpus image, by tag and by
digest, `imginspect --compat docker` equals dockerd's `GET /distribution/{name}/json` byte for
byte, and `--json` differs only where we correct the daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.expected import expected_json
from tests.support.cli import run_imginspect
from tests.support.corpus import CORPUS_KEYS, PushedImage
from tests.support.dockerd import Dockerd, start_dockerd
from tests.support.registry import Registry

pytestmark = [pytest.mark.dockerd, pytest.mark.needs_tool("dockerd", "docker-registry")]


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    daemon = start_dockerd()
    yield daemon
    daemon.stop()


@pytest.mark.parametrize("by", ["tag", "digest"])
@pytest.mark.parametrize("key", CORPUS_KEYS)
@pytest.mark.parametrize("variant", ["plain", "token"])
def test_compat_docker_equals_dockerd(
    request: pytest.FixtureRequest, dockerd: Dockerd, variant: str, key: str, by: str
) -> None:
    registry: Registry = request.getfixturevalue(f"registry_{variant}")
    corpus: dict[str, PushedImage] = request.getfixturevalue(f"corpus_{variant}")
    image = corpus[key]
    ref = registry.ref(image.repo, image.tag if by == "tag" else image.digest)
    status, daemon_body = dockerd.distribution_inspect(ref)
    assert status == 200, daemon_body
    ours = run_imginspect("--compat", "docker", ref)
    assert ours.code == 0, ours.stderr
    assert ours.stdout == daemon_body
    # And the independent model of the daemon agrees with both.
    assert daemon_body == expected_json(image, compat_docker=True)


def test_json_corrects_the_daemon_only_where_documented(
    dockerd: Dockerd, registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    image = corpus_plain["oci-single"]
    ref = registry_plain.ref(image.repo, image.tag)
    _, daemon_body = dockerd.distribution_inspect(ref)
    daemon = json.loads(daemon_body)
    ours = json.loads(run_imginspect("--json", ref).stdout)
    assert daemon["Platforms"] is None
    assert ours["Platforms"] == [
        {k: v for k, v in (image.config_platform or {}).items() if k in ("architecture", "os")}
        | {k: v for k, v in (image.config_platform or {}).items() if k == "variant"}
    ]
    assert ours["Descriptor"]["annotations"] == image.document["annotations"]
    for key in ("mediaType", "digest", "size"):
        assert ours["Descriptor"][key] == daemon["Descriptor"][key]


def test_not_found_is_404_for_the_daemon_and_exit_4_for_us(
    dockerd: Dockerd, registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    ref = registry_plain.ref("corpus/oci-single", "no-such-tag")
    status, _ = dockerd.distribution_inspect(ref)
    assert status == 404
    assert run_imginspect("--compat", "docker", ref).code == 4
