"""Docker Hub through ``registry-mirrors``: each mirror in turn, then the registry itself.

A :class:`MirrorChain` is a :class:`~imginspect.sources.Source` made of other sources, as in
the Docker daemon: any failure of a mirror (unreachable, refusing, not having the image,
sending bad content) moves on to the next one, and the registry's own answer is final. Each
mirror is a source of its own (its URL, TLS mode, auth state and credentials): the
registry's credentials are never sent to a mirror. Configuration errors
(:class:`~imginspect.errors.UsageError`) are raised, not skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from imginspect.errors import ImginspectError, UsageError
from imginspect.sources import FetchedManifest, ManifestHead, ReferrersPage, Source

T = TypeVar("T")


class MirrorChain:
    """Mirrors first, then ``upstream``; a :class:`~imginspect.sources.Source`."""

    remote = True

    def __init__(
        self,
        upstream: Source,
        mirrors: Sequence[tuple[str, Source]],
        *,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """``mirrors``: (URL for messages, source) pairs, in the order they are tried."""
        self.upstream = upstream
        self.mirrors = tuple(mirrors)
        self._log = log

    def _first_answer(self, call: Callable[[Source], T]) -> T:
        for url, mirror in self.mirrors:
            try:
                return call(mirror)
            except UsageError:
                raise
            except ImginspectError as error:
                if self._log is not None:
                    self._log(f"mirror {url} failed ({error.message}); next")
        return call(self.upstream)

    def get_manifest(self, repository: str, target: str) -> FetchedManifest:
        return self._first_answer(lambda source: source.get_manifest(repository, target))

    def head_manifest(self, repository: str, target: str) -> ManifestHead | None:
        return self._first_answer(lambda source: source.head_manifest(repository, target))

    def get_blob(self, repository: str, digest: str, *, max_bytes: int, what: str) -> bytes:
        return self._first_answer(
            lambda source: source.get_blob(repository, digest, max_bytes=max_bytes, what=what)
        )

    def list_tags(self, repository: str, *, limit: int) -> list[str]:
        return self._first_answer(lambda source: source.list_tags(repository, limit=limit))

    def iter_tag_pages(self, repository: str, *, page_size: int, limit: int) -> Iterator[list[str]]:
        """From the registry itself: a pull-through mirror lists only what it has cached."""
        return self.upstream.iter_tag_pages(repository, page_size=page_size, limit=limit)

    def get_referrers(
        self, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> tuple[ReferrersPage, ...] | None:
        """From the registry itself: a mirror knows only the referrers it happened to cache."""
        return self.upstream.get_referrers(repository, digest, artifact_type=artifact_type)

    def close(self) -> None:
        for _, mirror in self.mirrors:
            mirror.close()
        self.upstream.close()
