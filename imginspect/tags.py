"""Listing a repository's tags: paged streaming, filters, version order, digests per tag.

:func:`iter_tags` streams the tags of a :class:`~imginspect.sources.Source` page by page
(``Link`` pagination), holding one page and the tags already listed (each is listed once);
:func:`tag_filter` builds the ``--match GLOB`` / ``--regex`` predicate;
:func:`sort_by_version` orders tags semver-aware (the rules are :func:`version_key`'s);
:func:`tag_digests` resolves tags to digests with one HEAD each, concurrently, in order.

Pure except :func:`iter_tags` and :func:`tag_digests`, which call the source; standard
library only (no httpx, click or rich).
"""

from __future__ import annotations

import contextvars
import fnmatch
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from imginspect._record import Record, record
from imginspect.errors import RegistryError, UsageError

if TYPE_CHECKING:
    from imginspect.cache import Cache
    from imginspect.inspector import Inspector
    from imginspect.sources import Source
    from imginspect.target import Target

#: ``--limit`` default: the most tags one listing returns.
DEFAULT_LIMIT = 100_000
#: tags asked for per request (``n``); registries may cap it lower (Docker Hub: 100 or 1000)
PAGE_SIZE = 1000
#: concurrent HEAD requests of ``--digests``
DIGEST_WORKERS = 8
#: the longest ``--regex`` accepted (patterns come from the command line, but stay sane)
MAX_PATTERN = 1024


def iter_tags(
    source: Source, repository: str, *, limit: int = DEFAULT_LIMIT, page_size: int = PAGE_SIZE
) -> Iterator[str]:
    """The tags of ``repository`` in the registry's order, at most ``limit``, streamed, each
    once. A :class:`~imginspect.errors.RegistryError` ends a listing whose pages go in
    circles (two pages in a row without a tag not listed before)."""
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    # A registry lists each tag once. The source stops a Link that repeats itself exactly,
    # but one with a new query each time (a counter, a `last` going backwards) served the
    # same tags until --limit: up to one request per tag, each printed again and again. A
    # tag seen before is skipped (pages that overlap, e.g. an inclusive `last`, are fine);
    # a page with nothing new once can be a detour (a `last` gone back), twice in a row is
    # a loop. The set holds at most `limit` tags.
    seen: set[str] = set()
    stale = 0
    for page in source.iter_tag_pages(repository, page_size=page_size, limit=limit):
        fresh = [tag for tag in dict.fromkeys(page) if tag not in seen]
        stale = 0 if fresh else stale + 1
        if stale >= 2:
            raise RegistryError(
                f"the tag list of {repository} goes in circles: two pages in a row with no "
                "tag it had not sent already"
            )
        seen.update(fresh)
        yield from fresh


def tag_filter(glob: str | None = None, regex: str | None = None) -> Callable[[str], bool]:
    """A predicate: the tag matches the shell glob ``glob`` (whole tag, case-sensitive,
    ``*``, ``?``, ``[...]``) and the regular expression ``regex`` (searched anywhere in the
    tag: anchor it with ``^...$``). Either may be None; both must match when both are given.
    An invalid regex is a :class:`~imginspect.errors.UsageError`."""
    pattern: re.Pattern[str] | None = None
    if regex is not None:
        if len(regex) > MAX_PATTERN:
            raise UsageError(f"--regex is longer than {MAX_PATTERN} characters")
        try:
            pattern = re.compile(regex)
        except re.error as error:
            raise UsageError(f"invalid --regex {regex!r}: {error}") from None
    glob_re = re.compile(fnmatch.translate(glob)) if glob is not None else None

    def matches(tag: str) -> bool:
        if glob_re is not None and glob_re.match(tag) is None:
            return False
        return pattern is None or pattern.search(tag) is not None

    return matches


_VERSION_RE = re.compile(
    r"[vV]?(?P<core>0|[1-9]\d{0,17}(?:\.(?:0|[1-9]\d{0,17})){0,3})"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?",
    re.ASCII,
)
_PRE_NUMERIC = re.compile(r"0|[1-9]\d{0,17}", re.ASCII)

#: a sort key: (0, numbers, release flag, pre-release identifiers, number of parts, tag) for
#: version tags, (1, tag) for the others
VersionKey = tuple[object, ...]


def parse_version(tag: str) -> tuple[tuple[int, ...], tuple[str, ...]] | None:
    """``(numbers, pre-release identifiers)`` if ``tag`` is a version tag, else None."""
    found = _VERSION_RE.fullmatch(tag)
    if found is None:
        return None
    numbers = tuple(int(part) for part in found.group("core").split("."))
    pre = tuple(found.group("pre").split(".")) if found.group("pre") else ()
    return numbers, pre


def version_key(tag: str) -> VersionKey:
    """The order of ``--sort version``.

    A version tag is ``[v]MAJOR[.MINOR[.PATCH[.FOURTH]]][-PRERELEASE][+BUILD]`` with numbers
    without leading zeros (semver 2.0 extended to 1-4 numbers and an optional ``v``). Version
    tags come first, ordered as semver orders them: by the numbers (a missing one counts as
    0), then a release after its pre-releases (``1.2.0-rc.1`` < ``1.2.0``), pre-releases by
    their dot-separated identifiers (numeric ones numerically and before alphanumeric ones,
    which compare as text; fewer identifiers first). Ties (``1.2`` and ``1.2.0``, ``v1`` and
    ``1``, build metadata) are broken by fewer numbers first, then the tag as text. Every
    other tag (``latest``, ``stable``, ``2024-01-02``...) comes after all version tags, in
    text order. Suffixes such as ``-alpine`` are pre-release identifiers to semver: write
    ``--match '*-alpine'`` to compare those among themselves.
    """
    parsed = parse_version(tag)
    if parsed is None:
        return (1, tag)
    numbers, pre = parsed
    padded = numbers + (0,) * (4 - len(numbers))
    pre_key = tuple(
        (0, int(ident), "") if _PRE_NUMERIC.fullmatch(ident) else (1, 0, ident) for ident in pre
    )
    return (0, padded, 0 if pre else 1, pre_key, len(numbers), tag)


def sort_by_version(tags: Iterable[str], *, reverse: bool = False) -> list[str]:
    """``tags`` in :func:`version_key` order; ``reverse`` puts the newest version first,
    the non-version tags still after them."""
    versions: list[str] = []
    others: list[str] = []
    for tag in tags:
        (versions if parse_version(tag) is not None else others).append(tag)
    versions.sort(key=version_key, reverse=reverse)
    others.sort()
    return versions + others


@record
class TagDigest(Record):
    """A tag and the digest it points to (None when the registry would not say by HEAD)."""

    tag: str
    digest: str | None
    media_type: str | None = None
    size: int | None = None


def tag_digests(
    source: Source,
    repository: str,
    tags: Iterable[str],
    *,
    workers: int = DIGEST_WORKERS,
    cache: Cache | None = None,
    cache_name: str | None = None,
) -> Iterator[TagDigest]:
    """One HEAD per tag, ``workers`` at a time, results in the order of ``tags``.

    At most ``2 * workers`` requests are in flight or waiting to be yielded, so an endless
    stream of tags is handled in bounded memory. A tag the registry answers HEAD for without
    ``Docker-Content-Digest`` gets a GET of its manifest. Each digest found is remembered in
    ``cache`` (as ``cache_name:tag``, a hint that later runs re-check with HEAD). The first
    failure is raised (after the requests in flight finish).
    """

    def one(tag: str) -> TagDigest:
        head = source.head_manifest(repository, tag)
        if head is None:
            fetched = source.get_manifest(repository, tag)
            found = TagDigest(tag, fetched.digest, fetched.content_type, fetched.size)
        else:
            found = TagDigest(tag, head.digest, head.media_type, head.size)
        if cache is not None and cache_name is not None and found.digest is not None:
            cache.put_tag(cache_name, tag, found.digest)
        return found

    window: deque[Future[TagDigest]] = deque()
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="imginspect-tags") as pool:
        try:
            for tag in tags:
                # each thread runs in a copy of this context: the --timeout deadline applies
                window.append(pool.submit(contextvars.copy_context().run, one, tag))
                if len(window) >= 2 * max(1, workers):
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()


# ------------------------------------------------------------------ queries


@record
class TagsQuery(Record):
    """What `imginspect tags` lists: the repository, a filter, an order, a limit, and
    whether each tag's digest is resolved (``workers`` HEAD requests at a time)."""

    target: Target
    keep: Callable[[str], bool]
    version_order: bool = False
    reverse: bool = False
    limit: int = 100_000
    digests: bool = False
    workers: int = 8


def query_tags(
    inspector: Inspector, query: TagsQuery, *, cache: Cache | None = None
) -> Iterator[str | TagDigest]:
    """The tags ``query`` asks for, streamed unless sorted; with ``digests``, each resolved
    (one HEAD per tag, in order; ``cache`` records what they point to)."""
    source = inspector.source_for(query.target)
    path = query.target.path
    listed: Iterator[str] = (t for t in iter_tags(source, path, limit=query.limit) if query.keep(t))
    if query.version_order:
        listed = iter(sort_by_version(listed, reverse=query.reverse))
    if not query.digests:
        return listed
    return tag_digests(
        source, path, listed, workers=query.workers, cache=cache, cache_name=query.target.name
    )
