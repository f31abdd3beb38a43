"""A review of tag listing, the referrers API and `imginspect diff` against hostile and
real-world servers, on a real loopback server (:class:`PagingServer`: the fault-injection
:class:`~tests.support.badserver.BadServer` plus tag lists and the referrers API).

Tag lists: Links that go in circles with a new query each time, a ``last`` that goes
backwards, pages that overlap, a Link to another host (no credentials there). Referrers:
the ``sha256-<hex>`` tag resolving to the subject itself (GitLab), a tag that is no index,
the tag of a sha512 subject (the spec truncates it), an API answering 200 with no index,
pages that repeat themselves. Diff: Windows platforms (``os.version``).

In imginspect/registry.py: a registry that redirects tag lists and referrers
(registry.k8s.io) is followed, and the RFC 8288 Link forms the parser missed (each silently
ended the listing after its first page) continue it; a next page elsewhere is an error.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pytest

from imginspect.auth import Credential
from imginspect.diff import ADDED, REMOVED, SAME, compare_targets
from imginspect.errors import MalformedDocumentError, RegistryError
from imginspect.hosts import HostResolver
from imginspect.inspector import Inspector
from imginspect.reference import parse_reference
from imginspect.referrers import FOUND_API, FOUND_TAG_SCHEMA, discover, referrers_tag
from imginspect.sources import Source
from imginspect.tags import iter_tags
from imginspect.target import parse_target
from tests.support.badserver import (
    OCI_INDEX,
    BadServer,
    Image,
    Reply,
    Request,
    Scenario,
    build_image,
    json_reply,
    manifest_reply,
    redirect,
    registry_error,
    sha256_digest,
)
from tests.support.cli import run_imginspect

_TAGS_RE = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
_REFERRERS_RE = re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$")

Route = Callable[[Request], Reply]


class PagingServer(BadServer):
    """A :class:`BadServer` that also answers ``/v2/<name>/tags/list`` and
    ``/v2/<name>/referrers/<digest>`` for the repositories given a route in
    :attr:`tag_lists` / :attr:`referrer_lists` (others get the plain 404 of a registry
    without that API)."""

    def __init__(self, scenarios: Iterable[Scenario] = (), *, host: str = "127.0.0.1") -> None:
        super().__init__(host, scenarios=list(scenarios))
        self.tag_lists: dict[str, Route] = {}
        self.referrer_lists: dict[str, Route] = {}

    def __enter__(self) -> PagingServer:
        self.start()
        return self

    def _dispatch(self, request: Request) -> Reply:
        for pattern, routes in ((_TAGS_RE, self.tag_lists), (_REFERRERS_RE, self.referrer_lists)):
            found = pattern.match(request.path)
            if found is not None and found["name"] in routes:
                return routes[found["name"]](request)
        return super()._dispatch(request)

    def calls(self, path: str) -> list[Request]:
        """The requests for ``path`` (query aside), TLS probes not counted."""
        return [r for r in self.requests if r.path == path]


@pytest.fixture
def server() -> Iterator[PagingServer]:
    with PagingServer() as running:
        yield running


def _source(inspector: Inspector, server: BadServer, name: str) -> Source:
    return inspector.source_for(parse_reference(f"{server.netloc}/{name}"))


def _tag_page(name: str, tags: list[str], link: str | None = None) -> Reply:
    headers = (("Link", link),) if link is not None else ()
    return json_reply({"name": name, "tags": tags}, headers=headers)


def _lexical_pages(name: str, tags: list[str], *, inclusive: bool = False) -> Route:
    """Distribution's paging (``n``, ``last``, a Link to the next page) over ``tags``;
    ``inclusive``: a broken server whose page starts *at* ``last``, not after it, and that
    links on from every full page."""

    def respond(request: Request) -> Reply:
        n = int(request.query.get("n", ["2"])[0])
        last = request.query.get("last", [None])[0]
        rest = [t for t in tags if last is None or t > last or (inclusive and t == last)]
        page = rest[:n]
        more = len(rest) >= n if inclusive else len(rest) > n
        link = f'</v2/{name}/tags/list?n={n}&last={page[-1]}>; rel="next"' if more else None
        return _tag_page(name, page, link)

    return respond


# --------------------------------------------------------------------------- tag lists


def _circling(request: Request) -> Reply:
    """The same page for ever, each Link a new query (a counter the server adds)."""
    turn = int(request.query.get("turn", ["0"])[0])
    return _tag_page("circle", ["a", "b"], f"</v2/circle/tags/list?n=2&turn={turn + 1}>; rel=next")


def test_a_link_that_circles_with_a_new_query_each_time_ends_the_listing(
    server: PagingServer,
) -> None:
    """Only an identical Link was caught as a loop: a new query each time (a counter, a
    nonce) ran the listing to --limit, up to one request per tag (100,000 by default), each
    tag printed again and again. Now a registry that sends no new tag twice in a row is
    going in circles: a RegistryError after what it listed, each tag once."""
    server.tag_lists["circle"] = _circling
    got: list[str] = []
    with Inspector() as inspector:
        source = _source(inspector, server, "circle")
        with pytest.raises(RegistryError, match="goes in circles"):
            got.extend(iter_tags(source, "circle", limit=1000, page_size=2))
    assert got == ["a", "b"]
    assert len(server.calls("/v2/circle/tags/list")) == 3  # one page, then two of nothing new


def test_cli_tags_of_a_circling_registry_are_printed_once_and_fail(server: PagingServer) -> None:
    server.tag_lists["circle"] = _circling
    result = run_imginspect("tags", f"{server.netloc}/circle", "--limit", "40")
    assert result.code == 1 and "goes in circles" in result.stderr, result.stderr
    # each tag once (the CLI writes 1000 lines at a time: the error came before a write)
    printed = result.text.split()
    assert set(printed) <= {"a", "b"} and len(set(printed)) == len(printed)
    assert len(server.calls("/v2/circle/tags/list")) == 3


def test_overlapping_pages_list_each_tag_once(server: PagingServer) -> None:
    """A server whose ``last`` is inclusive starts each page with the previous page's last
    tag (its last page holds nothing new, and no Link): every tag once, no error."""
    server.tag_lists["overlap"] = _lexical_pages("overlap", ["a", "b", "c", "d"], inclusive=True)
    with Inspector() as inspector:
        source = _source(inspector, server, "overlap")
        assert list(iter_tags(source, "overlap", page_size=2)) == ["a", "b", "c", "d"]
    assert len(server.calls("/v2/overlap/tags/list")) == 4  # [a b] [b c] [c d] [d]


def test_a_last_that_goes_backwards_lists_each_tag_once(server: PagingServer) -> None:
    """The second page's Link goes back to ``last=a``: the third page repeats b and c (no
    new tag, once), the fourth brings e. Each tag once, no error."""
    tags = ["a", "b", "c", "d", "e"]
    lexical = _lexical_pages("back", tags)

    def respond(request: Request) -> Reply:
        if request.query.get("last") == ["b"]:
            return _tag_page("back", ["c", "d"], '</v2/back/tags/list?n=2&last=a>; rel="next"')
        return lexical(request)

    server.tag_lists["back"] = respond
    with Inspector() as inspector:
        source = _source(inspector, server, "back")
        assert list(iter_tags(source, "back", page_size=2)) == tags
    queries = [r.query.get("last") for r in server.calls("/v2/back/tags/list")]
    assert queries == [None, ["b"], ["a"], ["c"]]


def test_a_next_link_to_another_host_gets_no_credentials() -> None:
    """A registry that needs credentials links its next page to another host: its
    credentials are not sent there (docker's and go-containerregistry's clients follow
    such a link without them; imginspect does not follow it at all, and says so: the
    listing is incomplete)."""
    with PagingServer() as home, PagingServer(host="127.0.0.2") as elsewhere:
        elsewhere.tag_lists["team/app"] = lambda request: _tag_page("team/app", ["z"])

        def first_page(request: Request) -> Reply:
            if request.authorization != "Basic dXNlcjpzZWNyZXQ=":  # user:secret
                return registry_error(
                    401, "UNAUTHORIZED", "authentication required",
                    headers=(("WWW-Authenticate", 'Basic realm="home"'),),
                )  # fmt: skip
            link = f'<{elsewhere.url}/v2/team/app/tags/list?n=2&last=a>; rel="next"'
            return _tag_page("team/app", ["a"], link)

        home.tag_lists["team/app"] = first_page

        def credentials(host: str, repository: str) -> Credential | None:
            return Credential("user", "secret", source="test") if host == home.netloc else None

        listed: list[str] = []
        with Inspector(HostResolver(credentials=credentials)) as inspector:
            source = _source(inspector, home, "team/app")
            with pytest.raises(RegistryError, match="elsewhere: not followed"):
                listed.extend(iter_tags(source, "team/app", page_size=2))
        assert listed == ["a"]  # what came before the link, then the error (no silent end)
        assert [r.authorization for r in elsewhere.requests if r.authorization] == []
        assert [r.authorization for r in home.calls("/v2/team/app/tags/list")][-1] is not None


# ----------------------------------------------- tag lists: bugs left in registry.py


def _redirected(target: BadServer, prefix: str) -> Route:
    """registry.k8s.io (archeio): every /v2/ request but blobs answers 307 to the backing
    registry, on another host under a path prefix."""

    def respond(request: Request) -> Reply:
        return redirect(f"{target.url}/v2/{prefix}/{request.target.removeprefix('/v2/')}")

    return respond


def test_tags_of_a_registry_that_redirects_them() -> None:
    with PagingServer() as front, PagingServer() as backing:
        backing.tag_lists["prod/pause"] = lambda r: _tag_page("prod/pause", ["3.9", "3.10"])
        front.tag_lists["pause"] = _redirected(backing, "prod")
        result = run_imginspect("tags", f"{front.netloc}/pause")
    assert result.code == 0, result.stderr
    assert result.text.split() == ["3.9", "3.10"]


def test_referrers_of_a_registry_that_redirects_them() -> None:
    image = build_image()
    empty = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    with PagingServer([Scenario("pause", image=image)]) as front, PagingServer() as backing:
        backing.referrer_lists["prod/pause"] = lambda r: json_reply(empty, content_type=OCI_INDEX)
        front.referrer_lists["pause"] = _redirected(backing, "prod")
        result = run_imginspect("referrers", "--json", front.ref("pause"))
    assert result.code == 0, result.stderr


@pytest.mark.parametrize(
    "link",
    [
        '</v2/forms/tags/list?n=1&last=a>; rel="Next"',
        '<?n=1&last=a>; rel="next"',
        '<list?n=1&last=a>; rel="next"',
        '</v2/forms/tags/list?n=1&last=a>; title="a, b"; rel="next"',
    ],
    ids=["rel-case", "query-only", "relative-path", "quoted-comma"],
)
def test_rfc8288_link_forms(server: PagingServer, link: str) -> None:
    def respond(request: Request) -> Reply:
        if "last" in request.query:
            return _tag_page("forms", ["b"])
        return _tag_page("forms", ["a"], link)

    server.tag_lists["forms"] = respond
    with Inspector() as inspector:
        source = _source(inspector, server, "forms")
        assert list(iter_tags(source, "forms", page_size=1)) == ["a", "b"]


# --------------------------------------------------------------------------- referrers


def _index(entries: Iterable[tuple[bytes, str, Mapping[str, Any]]]) -> bytes:
    """An OCI index of ``(raw, media_type, extra descriptor fields)``."""
    manifests = [
        {"mediaType": media_type, "digest": sha256_digest(raw), "size": len(raw), **extra}
        for raw, media_type, extra in entries
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()


AMD64 = build_image()
ARM64 = build_image(architecture="arm64", layer_text=b"arm64 layer\n")
APP = _index(
    (image.manifest, image.media_type, {"platform": {"os": "linux", "architecture": arch}})
    for image, arch in ((AMD64, "amd64"), (ARM64, "arm64"))
)
SBOM_TYPE = "application/spdx+json"
SBOM = build_image(layer_text=b"an sbom\n", manifest_overrides={"artifactType": SBOM_TYPE})


def _documents(tags: Mapping[str, bytes], *, dash_is_digest: bool = False) -> Route:
    """Manifests by tag (``tags``) and by digest (every document of ``tags`` and the images
    above). ``dash_is_digest``: GitLab's registry, which resolves the tag ``sha256-<hex>``
    as the digest ``sha256:<hex>`` (oras-go#1396)."""
    known = [*tags.values(), APP, AMD64.manifest, ARM64.manifest, SBOM.manifest]
    by_digest = {sha256_digest(raw): raw for raw in known}

    def respond(request: Request) -> Reply:
        ref = request.ref or ""
        if dash_is_digest and re.fullmatch(r"sha256-[0-9a-f]{64}", ref):
            ref = ref.replace("-", ":", 1)
        raw = tags.get(ref) or by_digest.get(ref)
        if raw is None:
            return registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        return manifest_reply(raw, json.loads(raw)["mediaType"])

    return respond


def test_referrers_tag_that_resolves_to_the_subject_itself() -> None:
    """GitLab has no referrers API (404) and answers the tag ``sha256-<hex>`` with the
    manifest ``sha256:<hex>``: the subject itself. Its platform images were listed as
    referrers of the index, and each image, no index, failed the whole run (exit 1). The
    subject refers to no one through itself: no referrers."""
    gitlab = PagingServer([Scenario("app", manifest=_documents({"v1": APP}, dash_is_digest=True))])
    with gitlab, Inspector() as inspector:
        source = _source(inspector, gitlab, "app")
        assert discover(source, "app", sha256_digest(APP)) == (FOUND_TAG_SCHEMA, ())
        assert discover(source, "app", AMD64.digest) == (FOUND_TAG_SCHEMA, ())
        result = run_imginspect("referrers", "--json", gitlab.ref("app", "v1"))
    assert result.code == 0, result.stderr
    subjects = json.loads(result.text)["Subjects"]
    assert [(s["subject"], s["referrers"]) for s in subjects] == [
        ("index", []),
        ("linux/amd64", []),
        ("linux/arm64", []),
    ]


@pytest.mark.parametrize("content", ["image", "not-json"])
def test_referrers_tag_without_an_index_means_no_referrers(content: str) -> None:
    """The spec: a 404 from the API "and the tag schema does not return a valid image
    index": the client SHOULD assume there are no referrers (it was a MalformedDocumentError
    failing the reference)."""
    tag = referrers_tag(AMD64.digest)

    def manifests(request: Request) -> Reply:
        if request.ref == tag:
            if content == "image":
                return manifest_reply(ARM64.manifest)
            return Reply(200, (("Content-Type", "text/html"),), b"<html>not here</html>")
        return _documents({})(request)

    with PagingServer([Scenario("app", manifest=manifests)]) as server, Inspector() as inspector:
        source = _source(inspector, server, "app")
        assert discover(source, "app", AMD64.digest) == (FOUND_TAG_SCHEMA, ())


def test_referrers_tag_of_a_sha512_subject_is_truncated() -> None:
    """The spec's referrers tag is the algorithm (at most 32 characters), ``-`` and the
    encoded digest truncated to 64 characters (its table: ``sha512:aaa...`` has the tag
    ``sha512-`` and 64 ``a``), as regclient writes it. The whole 128 hex digits made a tag of
    135 characters, more than a tag may have, that no registry holds: no referrers found."""
    subject = "sha512:" + hashlib.sha512(AMD64.manifest).hexdigest()
    spec_tag = "sha512-" + subject[7:71]
    assert referrers_tag(subject) == spec_tag
    assert referrers_tag("sha512:" + "a" * 128) == "sha512-" + "a" * 64
    assert referrers_tag(AMD64.digest) == "sha256-" + AMD64.digest[7:]  # unchanged
    listing = _index([(SBOM.manifest, SBOM.media_type, {"artifactType": SBOM_TYPE})])
    scenario = Scenario("app", manifest=_documents({spec_tag: listing}))
    with PagingServer([scenario]) as server, Inspector() as inspector:
        method, found = discover(_source(inspector, server, "app"), "app", subject)
    assert method == FOUND_TAG_SCHEMA
    assert [(e.digest, e.kinds) for e in found] == [(SBOM.digest, ("sbom",))]


def test_referrers_api_answering_200_without_an_index_falls_back_to_the_tag_schema() -> None:
    """A 200 that is no image index (an HTML page: a catch-all route, or the login page a
    redirect ended on, oras-go#633) means the API is not there: go-containerregistry and
    oras-go fall back to the tag schema. It failed the reference."""
    listing = _index([(SBOM.manifest, SBOM.media_type, {"artifactType": SBOM_TYPE})])
    scenario = Scenario("app", manifest=_documents({referrers_tag(AMD64.digest): listing}))
    with PagingServer([scenario]) as server, Inspector() as inspector:
        server.referrer_lists["app"] = lambda request: Reply(
            200, (("Content-Type", "text/html"),), b"<html>sign in</html>"
        )
        method, found = discover(_source(inspector, server, "app"), "app", AMD64.digest)
        assert method == FOUND_TAG_SCHEMA
        assert [e.digest for e in found] == [SBOM.digest]
        # a body its Content-Type says is the index, broken: the registry's error, reported
        server.referrer_lists["app"] = lambda request: Reply(
            200, (("Content-Type", OCI_INDEX),), b"<html>sign in</html>"
        )
        with pytest.raises(MalformedDocumentError):
            discover(_source(inspector, server, "app"), "app", AMD64.digest)


def test_referrers_pages_that_repeat_themselves_list_each_referrer_once(
    server: PagingServer,
) -> None:
    """Pages linked with a new query each time, always the same referrer: the API is read
    up to its bound (16 pages), and the referrer was evidence 16 times."""

    def pages(request: Request) -> Reply:
        turn = int(request.query.get("turn", ["0"])[0])
        link = f"</v2/app/referrers/{AMD64.digest}?turn={turn + 1}>; rel=next"
        body = _index([(SBOM.manifest, SBOM.media_type, {"artifactType": SBOM_TYPE})])
        return Reply(200, (("Content-Type", OCI_INDEX), ("Link", link)), body)

    server.add(Scenario("app", manifest=_documents({})))
    server.referrer_lists["app"] = pages
    with Inspector() as inspector:
        method, found = discover(_source(inspector, server, "app"), "app", AMD64.digest)
    assert method == FOUND_API
    assert [e.digest for e in found] == [SBOM.digest]


# --------------------------------------------------------------------------- diff


def _windows(build: str, layer: bytes) -> tuple[Image, bytes]:
    image = build_image(os="windows", layer_text=layer)
    platform = {"os": "windows", "architecture": "amd64", "os.version": build}
    return image, _index([(image.manifest, image.media_type, {"platform": platform})])


def test_diff_windows_platform_names_its_os_version_once() -> None:
    """The platform names ``os/arch:os.version`` already (format_platform); diff added the
    version again after a space: ``windows/amd64:10.0.20348.2113 10.0.20348.2113`` in the
    table, the JSON and the one-line verdict."""
    old_image, old = _windows("10.0.20348.2113", b"old\n")
    new_image, new = _windows("10.0.20348.2113", b"new\n")
    tags = {"old": old, "new": new}
    by_digest = {sha256_digest(raw): raw for raw in (old, new, old_image.manifest)}
    by_digest[new_image.digest] = new_image.manifest

    def manifests(request: Request) -> Reply:
        raw = tags.get(request.ref or "") or by_digest.get(request.ref or "")
        if raw is None:
            return registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        return manifest_reply(raw, json.loads(raw)["mediaType"])

    with PagingServer([Scenario("win", manifest=manifests)]) as server:
        result = run_imginspect(
            "diff", "--json", server.ref("win", "old"), server.ref("win", "new")
        )
        one_line = run_imginspect("diff", server.ref("win", "old"), server.ref("win", "new"))
    assert result.code == 9, result.stderr
    platforms = json.loads(result.text)["Platforms"]
    assert [(p["platform"], p["status"]) for p in platforms] == [
        ("windows/amd64:10.0.20348.2113", "changed")
    ]
    assert "10.0.20348.2113 10.0.20348.2113" not in one_line.text + one_line.stderr


def _serve(documents: Mapping[str, bytes]) -> Route:
    """Manifests by tag (``documents``) and every document, and the images above, by digest."""
    known = [*documents.values(), AMD64.manifest, ARM64.manifest, GZIP.manifest, ZSTD.manifest]
    by_digest = {sha256_digest(raw): raw for raw in known}

    def respond(request: Request) -> Reply:
        raw = documents.get(request.ref or "") or by_digest.get(request.ref or "")
        if raw is None:
            return registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        return manifest_reply(raw, json.loads(raw)["mediaType"])

    return respond


#: the same platform twice in one index: gzip and zstd variants of one image
GZIP = build_image(layer_text=b"gzip variant\n")
ZSTD = build_image(layer_text=b"zstd variant\n")
LINUX_AMD64 = {"platform": {"os": "linux", "architecture": "amd64"}}
LINUX_ARM64 = {"platform": {"os": "linux", "architecture": "arm64"}}


def _entry(image: Image, extra: Mapping[str, Any]) -> tuple[bytes, str, Mapping[str, Any]]:
    return image.manifest, image.media_type, extra


def test_diff_pairs_a_platform_listed_twice_by_digest_first() -> None:
    """Indexes with linux/amd64 twice were paired by position: B dropping the gzip variant
    read "linux/amd64 changed" (gzip -> zstd: with --image-config, every layer different)
    and "linux/amd64 #2 removed" (the zstd image B still has); the same two in the other
    order, both "changed". The same digest pairs first."""
    both = _index(
        [_entry(GZIP, LINUX_AMD64), _entry(ZSTD, LINUX_AMD64), _entry(ARM64, LINUX_ARM64)]
    )
    zstd_only = _index([_entry(ZSTD, LINUX_AMD64), _entry(ARM64, LINUX_ARM64)])
    swapped = _index(
        [_entry(ZSTD, LINUX_AMD64), _entry(GZIP, LINUX_AMD64), _entry(ARM64, LINUX_ARM64)]
    )
    documents = {"both": both, "zstd": zstd_only, "swapped": swapped}
    server = PagingServer([Scenario("dup", manifest=_serve(documents))])
    with server, Inspector() as inspector:

        def diff(a: str, b: str) -> list[tuple[str, str | None, str | None, str]]:
            targets = (parse_target(server.ref("dup", a)), parse_target(server.ref("dup", b)))
            found = compare_targets(inspector, targets)
            return [
                (e.key, e.a.digest if e.a else None, e.b.digest if e.b else None, e.status)
                for e in found.entries
            ]

        dropped = diff("both", "zstd")
        reordered = diff("both", "swapped")
        added = diff("zstd", "both")
    gzip, zstd, arm = GZIP.digest, ZSTD.digest, ARM64.digest
    assert dropped == [
        ("linux/amd64", gzip, None, REMOVED),
        ("linux/amd64 #2", zstd, zstd, SAME),
        ("linux/arm64", arm, arm, SAME),
    ]
    assert reordered == [
        ("linux/amd64", gzip, gzip, SAME),
        ("linux/amd64 #2", zstd, zstd, SAME),
        ("linux/arm64", arm, arm, SAME),
    ]
    assert added == [
        ("linux/amd64", zstd, zstd, SAME),
        ("linux/arm64", arm, arm, SAME),
        ("linux/amd64 #2", None, gzip, ADDED),
    ]


def test_a_listing_cut_short_prints_what_it_listed_then_the_error() -> None:
    """The CLI writes tags 1000 lines at a time: the tags listed before a failure are
    printed before the error line (they were lost with it), and the exit says it failed."""
    with PagingServer() as server:
        link = '<https://elsewhere.example/v2/cut/tags/list?n=100&last=b>; rel="next"'
        server.tag_lists["cut"] = lambda request: _tag_page("cut", ["a", "b"], link)
        result = run_imginspect("tags", f"{server.netloc}/cut")
    assert result.text.split() == ["a", "b"]
    assert result.code == 1
    assert "elsewhere: not followed" in result.stderr
    assert "hint: the listing above is incomplete" in result.stderr
