"""Referrers and attestations: the referrers tag schema and cosign tags on the real CNCF
registry (distribution 2.8 has no referrers API) on every registry variant, the OCI 1.1
referrers API (server-side and client-side artifactType filtering, Link pagination) through
a real loopback server in front of it, BuildKit attestation predicates, the
--require-evidence verdict (exit 7), and the pure classification."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imginspect.auth import Credential
from imginspect.errors import PlatformNotFoundError, UsageError
from imginspect.hosts import HostResolver
from imginspect.inspector import Inspector
from imginspect.platforms import parse_platform
from imginspect.referrers import (
    FOUND_API,
    FOUND_BUILDKIT,
    FOUND_COSIGN_TAG,
    FOUND_TAG_SCHEMA,
    ReferrersQuery,
    check_evidence,
    classify,
    parse_required,
    predicate_kind,
    referrers_many,
    supply_chain,
)
from imginspect.target import parse_target
from tests.support.cli import run_imginspect
from tests.support.corpus import Pusher
from tests.support.registry import Registry
from tests.support.supplychain import (
    CYCLONEDX_TYPE,
    NOTARY,
    ReferrersProxy,
    SupplyChain,
    _referrer,
    build_supply_chain,
    push_supply_chain,
    push_to_registry,
    referrers_proxy,
)

ALL = ("sbom", "provenance", "signature")


def _inspector(registry: Registry) -> Inspector:
    def credentials(host: str, repository: str) -> Credential | None:
        if registry.username and registry.password and host == registry.host:
            return Credential(registry.username, registry.password, source="test")
        return None

    return Inspector(HostResolver(credentials=credentials))


@pytest.fixture(scope="module")
def chains(request: pytest.FixtureRequest) -> dict[str, tuple[Registry, SupplyChain]]:
    out = {}
    for variant in ("plain", "tls", "basic", "token"):
        registry: Registry = request.getfixturevalue(f"registry_{variant}")
        out[variant] = (registry, push_to_registry(registry, prefix="sc"))
    return out


@pytest.fixture(scope="module")
def api(registry_plain: Registry) -> Iterator[tuple[ReferrersProxy, SupplyChain]]:
    with referrers_proxy(registry_plain, page_size=1) as proxy:
        chain = build_supply_chain("api")
        with httpx.Client(base_url=proxy.base_url) as client:
            push_supply_chain(client, chain, tag_schema=False)
            extra = _referrer("x", chain.app.repo, chain.app, CYCLONEDX_TYPE, b"{}", "2024-06-01")
            Pusher(client).push(extra)  # a second referrer of the index: two API pages
        yield proxy, chain


@pytest.mark.parametrize("variant", ["plain", "tls", "basic", "token"])
def test_tag_schema_and_cosign_on_every_registry(
    chains: dict[str, tuple[Registry, SupplyChain]], variant: str
) -> None:
    registry, chain = chains[variant]
    with _inspector(registry) as inspector:
        report = supply_chain(inspector, parse_target(registry.ref(chain.app.repo, "v1")))
    by_label = {s.label: s for s in report.subjects}
    assert set(by_label) == {"index", "linux/amd64", "linux/arm64"}
    assert {s.method for s in report.subjects} == {FOUND_TAG_SCHEMA}
    index = by_label["index"]
    assert {(e.found_by, e.kinds) for e in index.evidence} == {
        (FOUND_TAG_SCHEMA, ("signature",)),
        (FOUND_COSIGN_TAG, ("signature",)),
    }
    notary = next(e for e in index.evidence if e.found_by == FOUND_TAG_SCHEMA)
    assert notary.artifact_type == NOTARY and notary.created == "2024-05-02T00:00:00Z"
    amd64 = by_label["linux/amd64"]
    assert [(e.found_by, e.predicate_types) for e in amd64.evidence] == [
        (FOUND_BUILDKIT, ("https://spdx.dev/Document", "https://slsa.dev/provenance/v1"))
    ]
    assert amd64.kinds == {"sbom", "provenance"}
    arm64 = by_label["linux/arm64"]
    assert arm64.kinds == {"provenance", "sbom"}  # BuildKit provenance + CycloneDX referrer
    assert report.kinds_for(arm64) == {"provenance", "sbom", "signature"}  # + the index's
    assert check_evidence(report, ALL) is None


def test_require_evidence_names_what_is_missing_for_which_platform(
    chains: dict[str, tuple[Registry, SupplyChain]],
) -> None:
    registry, chain = chains["plain"]
    with Inspector() as inspector:
        # arm64 alone has a CycloneDX referrer: without it, only its BuildKit provenance
        report = supply_chain(
            inspector,
            parse_target(registry.ref(chain.app.repo, "v1")),
            artifact_type="application/vnd.example.none",
        )
        assert {s.label for s in report.subjects} == {"index", "linux/amd64", "linux/arm64"}
        verdict = check_evidence(report, ("sbom",), given="app")
        assert verdict is not None and verdict.exit_code == 7
        assert verdict.message == "app: linux/amd64 has no sbom; linux/arm64 has no sbom"
        only = supply_chain(
            inspector,
            parse_target(registry.ref(chain.app.repo, "v1")),
            platform=parse_platform("linux/arm64"),
        )
        assert [s.label for s in only.subjects] == ["index", "linux/arm64"]
        with pytest.raises(PlatformNotFoundError):
            supply_chain(
                inspector,
                parse_target(registry.ref(chain.app.repo, "v1")),
                platform=parse_platform("linux/s390x"),
            )


@pytest.mark.parametrize("variant", ["plain", "tls", "token"])
def test_cli_require_evidence_exit_codes(
    chains: dict[str, tuple[Registry, SupplyChain]], variant: str
) -> None:
    registry, chain = chains[variant]
    ok = run_imginspect(
        "referrers", "--require-evidence", ",".join(ALL), registry.ref(chain.app.repo, "v1")
    )
    assert ok.code == 0, ok.stderr
    assert "linux/arm64: provenance, sbom, signature" in ok.text
    bare = registry.ref(chain.bare.repo, "v1")
    missing = run_imginspect("referrers", "--require-evidence", "sbom,signature", bare)
    assert missing.code == 7
    assert f"error: {bare}: linux/amd64 has no sbom, signature" in missing.stderr
    assert "cosign or notation" in missing.stderr
    usage = run_imginspect("referrers", "--require-evidence", "sbom,vibes", bare)
    assert usage.code == 2 and "unknown evidence kind vibes" in usage.stderr


def test_cli_json(chains: dict[str, tuple[Registry, SupplyChain]]) -> None:
    registry, chain = chains["plain"]
    result = run_imginspect("referrers", "--json", registry.ref(chain.app.repo, "v1"))
    assert result.code == 0, result.stderr
    document = json.loads(result.text)
    assert document["Descriptor"]["digest"] == chain.app.digest
    subjects = {s["subject"]: s for s in document["Subjects"]}
    assert subjects["linux/amd64"]["digest"] == chain.amd64.digest
    assert subjects["linux/amd64"]["evidence"] == ["provenance", "sbom", "signature"]
    cosign = [r for r in subjects["index"]["referrers"] if r["foundBy"] == FOUND_COSIGN_TAG]
    assert cosign[0]["tag"] == chain.app.digest.replace(":", "-") + ".sig"


def test_referrers_api_with_pagination(api: tuple[ReferrersProxy, SupplyChain]) -> None:
    proxy, chain = api
    start = len(proxy.requests)
    with Inspector() as inspector:
        report = supply_chain(inspector, parse_target(proxy.ref(chain.app.repo, "v1")))
    assert {s.method for s in report.subjects} == {FOUND_API}
    index = next(s for s in report.subjects if s.platform is None)
    api_found = [e for e in index.evidence if e.found_by == FOUND_API]
    assert sorted(e.artifact_type or "" for e in api_found) == sorted([NOTARY, CYCLONEDX_TYPE])
    paths = [p for _, p in proxy.requests[start:]]
    referrer_calls = [p for p in paths if f"/referrers/{chain.app.digest}" in p]
    assert len(referrer_calls) == 2 and "last=1" in referrer_calls[1]  # page size 1: Link
    # with the API present, the tag schema is not consulted
    assert not any(p.endswith(f"/manifests/{chain.app.digest.replace(':', '-')}") for p in paths)


@pytest.mark.parametrize("server_side", [True, False])
def test_artifact_type_filter_server_or_client_side(
    registry_plain: Registry, api: tuple[ReferrersProxy, SupplyChain], server_side: bool
) -> None:
    proxy, chain = api
    proxy.filters = server_side
    try:
        with Inspector() as inspector:
            report = supply_chain(
                inspector, parse_target(proxy.ref(chain.app.repo, "v1")), artifact_type=NOTARY
            )
    finally:
        proxy.filters = True
    index = next(s for s in report.subjects if s.platform is None)
    assert [e.artifact_type for e in index.evidence] == [NOTARY]  # no cosign tags either
    assert all(not s.evidence for s in report.subjects if s.platform is not None)


def test_classification_rules() -> None:
    assert predicate_kind("https://spdx.dev/Document/v2.3") == "sbom"
    assert predicate_kind("https://cyclonedx.org/bom/v1.5") == "sbom"
    assert predicate_kind("https://slsa.dev/provenance/v0.2") == "provenance"
    assert predicate_kind("https://slsa.dev/provenance/v1") == "provenance"
    assert predicate_kind("https://cosign.sigstore.dev/attestation/vuln/v1") == "attestation"
    assert classify(NOTARY) == ("signature",)
    assert classify("application/vnd.dev.cosign.artifact.sig.v1+json") == ("signature",)
    assert classify("application/spdx+json") == ("sbom",)
    assert classify("application/vnd.in-toto+json") == ("attestation",)
    assert classify("application/vnd.in-toto+json", ["https://slsa.dev/provenance/v1"]) == (
        "provenance",
    )
    assert classify(None, cosign_suffix=".att") == ("attestation",)
    assert classify(None, ["https://spdx.dev/Document"], cosign_suffix=".att") == ("sbom",)
    assert classify("application/x-unknown") == ("other",)


def test_parse_required() -> None:
    assert parse_required(" SBOM, provenance,sbom ") == ("sbom", "provenance")
    with pytest.raises(UsageError):
        parse_required("")
    with pytest.raises(UsageError):
        parse_required("sbom,signatures")


def test_cli_batch_of_references_and_file(
    chains: dict[str, tuple[Registry, SupplyChain]], tmp_path: Path
) -> None:
    registry, chain = chains["plain"]
    app, bare = registry.ref(chain.app.repo, "v1"), registry.ref(chain.bare.repo, "v1")
    gone = registry.ref(chain.bare.repo, "no-such-tag")
    required = ("--require-evidence", "sbom,signature")
    # NDJSON in input order, one error line per reference; a failure (4) outranks a verdict (7)
    listed = tmp_path / "refs.txt"
    listed.write_text(f"# release images\n{bare}\n\n{gone}  # typo\n")
    batch = run_imginspect("referrers", "--json", *required, app, "-f", str(listed))
    assert batch.code == 4, batch.stderr
    documents = [json.loads(line) for line in batch.text.splitlines()]
    assert [d["Descriptor"]["digest"] for d in documents] == [chain.app.digest, chain.bare.digest]
    errors = [x for x in batch.stderr.splitlines() if x.startswith("error: ")]
    assert errors[0] == f"error: {bare}: linux/amd64 has no sbom, signature"
    assert errors[1] == f"error: tag not found: {gone}" and len(errors) == 2
    # verdicts only: exit 7; tables one block per reference, a blank line apart
    verdicts = run_imginspect("referrers", *required, "--concurrency", "2", app, bare, app)
    assert verdicts.code == 7, verdicts.stderr
    blocks = verdicts.text.split("\n\nName      ")
    assert len(blocks) == 3 and blocks[0].startswith(f"Name      {app}\n")
    assert blocks[1].startswith(f"{bare}\n") and blocks[2].startswith(f"{app}\n")
    assert verdicts.stderr.count("error: ") == 1
    ok = run_imginspect("referrers", *required, app, app)
    assert ok.code == 0 and ok.stderr == ""
    # one reference keeps its indented document
    single = run_imginspect("referrers", "--json", app)
    assert single.text.startswith("{\n") and json.loads(single.text)["Name"] == app
    none = run_imginspect("referrers")
    assert none.code == 2 and "no reference given" in none.stderr
    both = run_imginspect(
        "referrers", "--password-stdin", "--username", "x", "-f", "-", input=b"pw\n"
    )
    assert both.code == 2 and "cannot both read standard input" in both.stderr


def test_referrers_many_in_order(chains: dict[str, tuple[Registry, SupplyChain]]) -> None:
    registry, chain = chains["plain"]
    refs = [
        registry.ref(chain.bare.repo, "v1"),
        "Not A Reference",
        registry.ref(chain.app.repo, "v1"),
    ]
    with Inspector() as inspector:
        found = list(
            referrers_many(inspector, iter(refs), ReferrersQuery(require=("sbom",)), concurrency=3)
        )
    assert [o.given for o in found] == refs
    assert found[0].exit_code == 7 and found[0].report is not None
    assert found[1].exit_code == 2 and found[1].report is None
    assert found[2].exit_code == 0 and found[2].error is None
    assert found[2].report is not None
    assert found[2].report.result.descriptor.digest == chain.app.digest
