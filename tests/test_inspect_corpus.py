"""End to end: `imginspect --json` for every corpus image, by tag and by digest, on the plain,
TLS and token-auth registries; Basic auth through the library; golden files; the table.

The oracle is the independent model in ``tests/expected.py``. ``tests/golden/*.json`` are a
readable snapshot of the CLI's ``--json`` output (indented), for review in diffs: they are
written by ``pytest tests/test_inspect_corpus.py --regenerate-goldens``, and only from output
that equals the model, so a golden cannot hide a bug the model catches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from imginspect.auth import Credential
from imginspect.hosts import HostResolver
from imginspect.inspector import Inspector
from imginspect.jsonenc import encode_inspect
from imginspect.reference import parse_reference
from tests.expected import expected_json
from tests.support.cli import run_imginspect
from tests.support.corpus import CORPUS_KEYS, PushedImage
from tests.support.registry import Registry

GOLDEN = Path(__file__).parent / "golden"


def golden_text(stdout: bytes) -> str:
    """The readable form of a ``--json`` line: the same document, indented, keys in order."""
    return json.dumps(json.loads(stdout), indent=2, ensure_ascii=False) + "\n"


def _setup(request: pytest.FixtureRequest, variant: str) -> tuple[Registry, dict[str, PushedImage]]:
    registry: Registry = request.getfixturevalue(f"registry_{variant}")
    corpus: dict[str, PushedImage] = request.getfixturevalue(f"corpus_{variant}")
    return registry, corpus


@pytest.mark.parametrize("by", ["tag", "digest"])
@pytest.mark.parametrize("key", CORPUS_KEYS)
@pytest.mark.parametrize("variant", ["plain", "tls", "token"])
def test_json_matches_expected(
    request: pytest.FixtureRequest, variant: str, key: str, by: str
) -> None:
    registry, corpus = _setup(request, variant)
    image = corpus[key]
    ref = registry.ref(image.repo, image.tag if by == "tag" else image.digest)
    result = run_imginspect("--json", ref)
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == expected_json(image)


@pytest.mark.parametrize("key", CORPUS_KEYS)
def test_golden_json(
    request: pytest.FixtureRequest,
    corpus_plain: dict[str, PushedImage],
    registry_plain: Registry,
    key: str,
) -> None:
    """The CLI's output equals the model byte for byte (checked first: a golden is never
    written from output the model refuses), then the golden equals that output."""
    image = corpus_plain[key]
    result = run_imginspect("--json", registry_plain.ref(image.repo, image.tag))
    assert result.code == 0, result.stderr
    assert result.stdout == expected_json(image), "the CLI disagrees with tests/expected.py"
    golden = GOLDEN / f"{key}.json"
    if request.config.getoption("--regenerate-goldens"):
        golden.write_text(golden_text(result.stdout))
    assert golden.read_text() == golden_text(result.stdout), (
        f"{golden} is out of date: review the change, then run "
        "pytest tests/test_inspect_corpus.py -k golden --regenerate-goldens"
    )


def test_every_golden_is_a_corpus_image() -> None:
    """No stale snapshot: one golden per corpus key, nothing else."""
    assert sorted(path.stem for path in GOLDEN.glob("*.json")) == sorted(CORPUS_KEYS)
    assert sorted(path.name for path in GOLDEN.iterdir()) == sorted(
        f"{k}.json" for k in CORPUS_KEYS
    )


def test_tag_and_digest_resolves_by_digest(
    corpus_plain: dict[str, PushedImage], registry_plain: Registry
) -> None:
    index, single = corpus_plain["oci-index"], corpus_plain["oci-single"]
    # The tag names one image, the digest another: the digest wins, as in Docker.
    ref = f"{registry_plain.host}/{index.repo}:{index.tag}@{index.digest}"
    result = run_imginspect("--json", ref)
    assert result.code == 0 and result.stdout == expected_json(index)
    wrong_tag = f"{registry_plain.host}/{single.repo}:does-not-exist@{single.digest}"
    result = run_imginspect("--json", wrong_tag)
    assert result.code == 0 and result.stdout == expected_json(single)


@pytest.mark.parametrize("key", ["oci-index", "windows", "schema2", "oci-single", "artifact"])
def test_basic_auth_through_the_library(
    corpus_basic: dict[str, PushedImage], registry_basic: Registry, key: str
) -> None:
    image = corpus_basic[key]
    assert registry_basic.username and registry_basic.password
    credential = Credential(registry_basic.username, registry_basic.password, source="test")
    with Inspector(HostResolver(credentials=lambda domain, repository: credential)) as inspector:
        result = inspector.inspect(parse_reference(registry_basic.ref(image.repo, image.tag)))
    assert encode_inspect(result) == expected_json(image)


def test_basic_auth_registry_refuses_anonymous(
    corpus_basic: dict[str, PushedImage], registry_basic: Registry
) -> None:
    image = corpus_basic["oci-single"]
    result = run_imginspect("--json", registry_basic.ref(image.repo, image.tag))
    assert result.code == 3
    assert result.stdout == b""
    assert result.stderr.startswith("error: authentication required")
    hint = result.stderr.splitlines()[1]
    assert f"no credentials found for {registry_basic.host} (looked in " in hint
    assert "config.json" in hint and "docker login" in hint


def test_private_repository_on_token_registry_is_an_auth_error(
    registry_token: Registry, corpus_token: dict[str, PushedImage]
) -> None:
    result = run_imginspect("--json", registry_token.ref("private/secret", "v1"))
    assert result.code == 3, result.stderr
    assert "error: " in result.stderr and "Traceback" not in result.stderr


def test_not_found_tag_and_repository(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    image = corpus_plain["oci-single"]
    for ref in (registry_plain.ref(image.repo, "nope"), registry_plain.ref("no/such/repo", "v1")):
        result = run_imginspect("--json", ref)
        assert result.code == 4, result.stderr
        lines = result.stderr.splitlines()
        assert lines[0].startswith("error: ") and "not found" in lines[0]


_ANSI = re.compile(r"\x1b\[")


def test_table_for_buildkit_index(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    image = corpus_plain["buildkit"]
    result = run_imginspect(registry_plain.ref(image.repo, image.tag), env={"COLUMNS": "80"})
    assert result.code == 0, result.stderr
    text = result.text
    assert not _ANSI.search(text), "no colour when stdout is not a terminal"
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert f"{registry_plain.host}/{image.repo}:{image.tag}" in text
    assert image.digest in text
    assert "application/vnd.oci.image.index.v1+json" in text
    rows = [line.split() for line in text.splitlines() if line.startswith(("linux/", "unknown/"))]
    platforms = [row[0] for row in rows]
    assert platforms == ["linux/amd64", "linux/arm64", "unknown/unknown", "unknown/unknown"]
    assert "attestation of linux/amd64" in text and "attestation of linux/arm64" in text
    for child in image.children:
        assert child.digest[:19] in text  # sha256: + 12 hex


def test_table_wide_terminal_shows_full_digests_and_windows_versions(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    image = corpus_plain["windows"]
    result = run_imginspect(registry_plain.ref(image.repo, image.tag), env={"COLUMNS": "200"})
    assert result.code == 0, result.stderr
    for entry in image.document["manifests"]:
        assert entry["digest"] in result.text
        if entry["platform"].get("os.version"):
            assert entry["platform"]["os.version"] in result.text


def test_table_single_image_shows_config_platform(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    image = corpus_plain["schema2"]
    result = run_imginspect(registry_plain.ref(image.repo, image.tag), "--no-trunc")
    assert result.code == 0, result.stderr
    cfg = image.config_platform or {}
    expected = "/".join(
        p for p in (cfg.get("os"), cfg.get("architecture"), cfg.get("variant")) if p
    )
    assert expected in result.text
    assert image.digest in result.text


def test_json_has_nothing_else_on_stdout(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    image = corpus_plain["big-index"]
    result = run_imginspect("--json", registry_plain.ref(image.repo, image.tag))
    assert result.code == 0
    doc = json.loads(result.stdout)
    assert len(doc["Platforms"]) == len(image.document["manifests"]) == 150
    assert result.stdout.count(b"\n") == 1 and result.stdout.endswith(b"\n")
