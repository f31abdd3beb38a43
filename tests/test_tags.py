"""`imginspect tags`: Link pagination against the real CNCF registry (more tags than one
page), bounded totals, filters, the version order and its rules, --digests, and the exit
codes of listing denied (3) and unsupported (1)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imginspect.auth import Credential
from imginspect.errors import AuthError, RegistryError, UsageError
from imginspect.hosts import HostResolver
from imginspect.inspector import Inspector
from imginspect.reference import parse_reference
from imginspect.tags import (
    iter_tags,
    parse_version,
    sort_by_version,
    tag_digests,
    tag_filter,
    version_key,
)
from tests.support.cli import run_imginspect
from tests.support.corpus import PushedImage
from tests.support.registry import Registry
from tests.support.supplychain import (
    ReferrersProxy,
    RefusingRegistry,
    push_many_tags,
    referrers_proxy,
)

MANY = 250
MANY_TAGS = [f"t{i:03d}" for i in range(MANY)]


@pytest.fixture(scope="module")
def many(registry_plain: Registry) -> PushedImage:
    return push_many_tags(registry_plain, "tags/many", MANY_TAGS)


def _inspector(registry: Registry) -> Inspector:
    def credentials(host: str, repository: str) -> Credential | None:
        if registry.username and registry.password and host == registry.host:
            return Credential(registry.username, registry.password, source="test")
        return None

    return Inspector(HostResolver(credentials=credentials))


def _tag_list_requests(registry: Registry, mark: int) -> list[str]:
    return [e.query for e in registry.requests_since(mark) if e.path.endswith("/tags/list")]


# --------------------------------------------------------------------------- pagination


@pytest.fixture
def paging(registry_plain: Registry, many: PushedImage) -> Iterator[ReferrersProxy]:
    """The real registry's tags, paginated (``n``/``last``/``Link``) as distribution 3 does."""
    with referrers_proxy(registry_plain) as proxy:
        yield proxy


def _tag_queries(proxy: ReferrersProxy) -> list[str]:
    return [p.partition("?")[2] for m, p in proxy.requests if "/tags/list" in p]


def test_pages_follow_link_until_the_end(paging: ReferrersProxy) -> None:
    with Inspector() as inspector:
        source = inspector.source_for(parse_reference(paging.ref("tags/many", "x")))
        tags = list(iter_tags(source, "tags/many", page_size=100))
    assert tags == MANY_TAGS  # every page, in order, nothing twice
    queries = _tag_queries(paging)
    assert len(queries) == 3 and paging.tag_pages == 3  # 100 + 100 + 50
    assert queries[0] == "n=100"
    assert "last=t099" in queries[1] and "last=t199" in queries[2]


def test_limit_bounds_the_total_and_stops_requesting(paging: ReferrersProxy) -> None:
    with Inspector() as inspector:
        source = inspector.source_for(parse_reference(paging.ref("tags/many", "x")))
        tags = list(iter_tags(source, "tags/many", limit=120, page_size=100))
    assert tags == MANY_TAGS[:120]
    assert len(_tag_queries(paging)) == 2  # not a third page


def test_listing_streams_page_by_page(paging: ReferrersProxy) -> None:
    """The first tag is there before the second page is asked for (a generator, not a list)."""
    with Inspector() as inspector:
        source = inspector.source_for(parse_reference(paging.ref("tags/many", "x")))
        stream = iter_tags(source, "tags/many", page_size=100)
        assert next(stream) == "t000"
        assert len(_tag_queries(paging)) == 1
        stream.close()  # type: ignore[attr-defined]  # a generator, typed as an Iterator


def test_registry_ignoring_n_answers_in_one_request(
    registry_plain: Registry, many: PushedImage
) -> None:
    """Debian's distribution 2.8 sends every tag whatever ``n`` says, and no Link."""
    mark = registry_plain.mark()
    with Inspector() as inspector:
        source = inspector.source_for(parse_reference(registry_plain.ref("tags/many")))
        tags = list(iter_tags(source, "tags/many", page_size=100))
        limited = list(iter_tags(source, "tags/many", limit=7, page_size=100))
    assert sorted(tags) == MANY_TAGS
    assert len(limited) == 7 and set(limited) <= set(MANY_TAGS)
    assert len(_tag_list_requests(registry_plain, mark)) == 2


@pytest.mark.parametrize("variant", ["plain", "tls", "basic", "token"])
def test_tags_on_every_registry(request: pytest.FixtureRequest, variant: str) -> None:
    registry: Registry = request.getfixturevalue(f"registry_{variant}")
    corpus: dict[str, PushedImage] = request.getfixturevalue(f"corpus_{variant}")
    image = corpus["oci-index"]
    with _inspector(registry) as inspector:
        source = inspector.source_for(parse_reference(registry.ref(image.repo)))
        assert sorted(iter_tags(source, image.repo, page_size=1)) == sorted(image.tags)
        found = list(tag_digests(source, image.repo, image.tags))
    assert [f.digest for f in found] == [image.digest] * len(image.tags)


@pytest.mark.parametrize("variant", ["plain", "tls", "token"])
def test_cli_tags_json_is_ndjson(request: pytest.FixtureRequest, variant: str) -> None:
    registry: Registry = request.getfixturevalue(f"registry_{variant}")
    corpus: dict[str, PushedImage] = request.getfixturevalue(f"corpus_{variant}")
    image = corpus["buildkit"]
    result = run_imginspect("tags", "--json", "--digests", registry.ref(image.repo))
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.text.splitlines()]
    assert sorted(line["tag"] for line in lines) == sorted(image.tags)
    assert {line["digest"] for line in lines} == {image.digest}


def test_cli_basic_registry_with_password_stdin(
    registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    image = corpus_basic["schema2"]
    assert registry_basic.username and registry_basic.password
    ref = registry_basic.ref(image.repo)
    denied = run_imginspect("tags", "--anonymous", ref)
    assert denied.code == 3, denied.stderr
    result = run_imginspect(
        "tags",
        ref,
        "--username",
        registry_basic.username,
        "--password-stdin",
        input=registry_basic.password.encode(),
    )
    assert result.code == 0, result.stderr
    assert sorted(result.text.split()) == sorted(image.tags)


def test_cli_paged_sorted_filtered(paging: ReferrersProxy) -> None:
    ref = f"{paging.host}/tags/many"
    result = run_imginspect("tags", ref, "--match", "t1?5", "--sort", "version", "--reverse")
    assert result.code == 0, result.stderr
    # no t### is a version: text order, --reverse does not touch non-version tags
    assert result.text.split() == [f"t1{d}5" for d in range(10)]
    regex = run_imginspect("tags", ref, "--regex", "^t24[0-4]$", "--digests")
    assert regex.code == 0, regex.stderr
    digest = json.loads(run_imginspect("--json", f"{ref}:t000").text)["Descriptor"]["digest"]
    assert regex.text.splitlines() == [f"{digest}  t24{d}" for d in range(5)]
    assert paging.tag_pages == 2 * 1  # 250 tags: one page of 1000 for each run


def test_cli_not_found_and_usage(registry_plain: Registry, many: PushedImage) -> None:
    missing = run_imginspect("tags", registry_plain.ref("tags/no-such-repo"))
    assert missing.code == 4 and "repository not found" in missing.stderr
    tagged = run_imginspect("tags", registry_plain.ref("tags/many", "v1"))
    assert tagged.code == 2 and "give the repository only" in tagged.stderr
    bad = run_imginspect("tags", registry_plain.ref("tags/many"), "--regex", "(")
    assert bad.code == 2 and "invalid --regex" in bad.stderr
    reverse = run_imginspect("tags", registry_plain.ref("tags/many"), "--reverse")
    assert reverse.code == 2


def test_listing_denied_is_auth_with_a_hint() -> None:
    with RefusingRegistry(403, "DENIED") as server:
        result = run_imginspect("tags", f"{server.host}/team/app")
    assert result.code == 3, result.stderr
    assert "access denied" in result.stderr
    assert "refuses to list the tags" in result.stderr


def test_listing_unsupported_is_registry_error_with_a_hint() -> None:
    with RefusingRegistry(405, "UNSUPPORTED") as server, Inspector() as inspector:
        source = inspector.source_for(parse_reference(f"{server.host}/team/app"))
        with pytest.raises(RegistryError) as caught:
            list(iter_tags(source, "team/app"))
    assert caught.value.exit_code == 1
    assert caught.value.hint is not None and "does not support listing" in caught.value.hint


def test_denied_keeps_auth_type() -> None:
    with RefusingRegistry(403, "DENIED") as server, Inspector() as inspector:
        source = inspector.source_for(parse_reference(f"{server.host}/team/app"))
        with pytest.raises(AuthError):
            list(iter_tags(source, "team/app"))


# --------------------------------------------------------------------------- pure parts


def test_version_order_rules() -> None:
    tags = [
        "latest",
        "1.10.0",
        "1.2.0",
        "v1.9",
        "1.2.0-rc.1",
        "1.2.0-rc.10",
        "1.2.0-rc.2",
        "1.2.0-beta",
        "1.2",
        "2",
        "stable",
        "1.2.0+build.5",
        "01.2",
    ]
    assert sort_by_version(tags) == [
        "1.2.0-beta",  # alphanumeric identifiers sort after numeric ones: rc.x after... no:
        "1.2.0-rc.1",  # "beta" < "rc" as text, then rc.1 < rc.2 < rc.10 numerically
        "1.2.0-rc.2",
        "1.2.0-rc.10",
        "1.2",  # a release after its pre-releases; fewer numbers first on a tie
        "1.2.0",
        "1.2.0+build.5",
        "v1.9",
        "1.10.0",
        "2",
        "01.2",  # a leading zero is not a version: with the other words, in text order
        "latest",
        "stable",
    ]
    assert sort_by_version(tags, reverse=True)[:3] == ["2", "1.10.0", "v1.9"]
    assert sort_by_version(tags, reverse=True)[-3:] == ["01.2", "latest", "stable"]


def test_numeric_pre_release_identifiers_before_alphanumeric() -> None:
    assert version_key("1.0.0-1") < version_key("1.0.0-alpha") < version_key("1.0.0")
    assert version_key("1.0.0-alpha") < version_key("1.0.0-alpha.1")


def test_parse_version_bounds() -> None:
    assert parse_version("1.2.3.4") == ((1, 2, 3, 4), ())
    assert parse_version("1.2.3.4.5") is None
    assert parse_version("9" * 19) is None  # not a number worth comparing
    assert parse_version("") is None


tag_text = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(st.lists(tag_text, max_size=40), st.randoms())
def test_version_sort_is_a_total_order_independent_of_input_order(
    tags: list[str], rnd: random.Random
) -> None:
    ordered = sort_by_version(tags)
    assert sorted(ordered) == sorted(tags)  # a permutation
    shuffled = list(tags)
    rnd.shuffle(shuffled)
    assert sort_by_version(shuffled) == ordered
    flags = [parse_version(t) is None for t in ordered]
    assert flags == sorted(flags)  # every version tag before every other tag


def test_tag_filter() -> None:
    both = tag_filter("1.*", r"-alpine$")
    assert both("1.2-alpine") and not both("1.2") and not both("2.0-alpine")
    glob = tag_filter("v?")
    assert glob("v1") and not glob("v10") and not glob("xv1")
    assert tag_filter()("anything")
    with pytest.raises(UsageError):
        tag_filter(regex="[")
    with pytest.raises(UsageError):
        iter_tags(None, "x", limit=0).__next__()  # type: ignore[arg-type]
