"""Review of the cache's write-behind: interleavings between the background writer, flush()
and close() forced with events at the module's own seams (Cache._write, Cache._finish, the
_Claim an entry's writer holds), never with timing. Real files in tmp dirs."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import imginspect.cache as cache_module
from imginspect.cache import Cache
from imginspect.digest import compute_digest
from tests.test_cache_writer import PATIENCE, WRITER, _blobs, _content, _tag, _wait_for, _writers

NAME, TAG = "example.com/a", "v1"
FIRST, SECOND = compute_digest(b"1"), compute_digest(b"2")


@pytest.fixture(autouse=True)
def _no_writer_left_behind() -> Iterator[None]:
    before = _writers()
    yield
    gc.collect()
    assert _wait_for(lambda: not (_writers() - before)), "a writer thread outlived its test"


class _Done:
    """A claim's ``done`` lock that tells the test when another thread waits on it."""

    def __init__(self, claim: Any, lock: Any, hooks: _ClaimHooks) -> None:
        self._claim, self._lock, self._hooks = claim, lock, hooks

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        waiter = threading.get_ident() != self._claim.owner
        if waiter:
            self._hooks.before_wait(self._claim)
        got = bool(self._lock.acquire(blocking, timeout))
        if waiter and got:
            self._hooks.after_wait(self._claim)
        return got

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return bool(self._lock.locked())


class _ClaimHooks:
    """Claims made by the background writer, in order; callbacks when another thread waits
    for one of them (before it waits, and once it has it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.by_writer: list[Any] = []
        self.before: dict[int, Callable[[], object]] = {}
        self.after: dict[int, Callable[[], object]] = {}
        hooks = self

        class Claim(cache_module._Claim):
            def __init__(self) -> None:
                super().__init__()
                self.done = _Done(self, self.done, hooks)  # type: ignore[assignment]
                if threading.current_thread().name == WRITER:
                    hooks.by_writer.append(self)

        monkeypatch.setattr(cache_module, "_Claim", Claim)

    def _index(self, claim: Any) -> int:
        return next((i for i, c in enumerate(self.by_writer) if c is claim), -1)

    def before_wait(self, claim: Any) -> None:
        self.before.get(self._index(claim), lambda: None)()

    def after_wait(self, claim: Any) -> None:
        self.after.get(self._index(claim), lambda: None)()


def _hold_tag_writes(
    monkeypatch: pytest.MonkeyPatch, holds: dict[str, tuple[threading.Event, threading.Event]]
) -> None:
    """The writer thread's write of tag digest ``d`` sets ``holds[d][0]``, then waits for
    ``holds[d][1]``."""
    original = Cache._write

    def write(cache: Cache, where: tuple[str, ...], name: str, data: bytes) -> bool:
        hold = holds.get(data.decode(errors="replace"))
        if threading.current_thread().name == WRITER and where == ("tags",) and hold:
            hold[0].set()
            hold[1].wait(PATIENCE)
        return original(cache, where, name, data)

    monkeypatch.setattr(Cache, "_write", write)


def test_flush_waits_for_a_moved_tag_the_writer_took_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tag moved while the writer wrote its old digest; flush() waits for that write,
    then for the writer's write of the new digest: it returns with the new one on disk
    (the CLI exits right after flush, the writer is a daemon)."""
    writing_first, release_first = threading.Event(), threading.Event()
    retaken, go = threading.Event(), threading.Event()
    _hold_tag_writes(monkeypatch, {FIRST: (writing_first, release_first), SECOND: (retaken, go)})
    claims = _ClaimHooks(monkeypatch)
    # flush waits for the write of FIRST: let it end; flush looks again only once the
    # writer has taken the tag again (for SECOND); flush waits for that: let it write.
    claims.before[0] = release_first.set
    claims.after[0] = lambda: retaken.wait(PATIENCE)
    claims.before[1] = go.set
    cache = Cache(tmp_path)
    try:
        cache.put_tag(NAME, TAG, FIRST)
        assert writing_first.wait(PATIENCE)
        cache.put_tag(NAME, TAG, SECOND)  # moved before the run ends
        cache.flush()
        on_disk = _tag(tmp_path, NAME, TAG).read_text()
    finally:
        release_first.set()
        go.set()
        cache.close()
    assert on_disk == SECOND, "flush returned before the tag's last digest was written"


def test_close_meets_no_claim_of_an_entry_whose_write_is_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() waits for the writer's write of a tag's old digest: when that wait ends, the
    entry is finished (its new digest pending), so close writes the new digest."""
    writing_first, release_first = threading.Event(), threading.Event()
    _hold_tag_writes(monkeypatch, {FIRST: (writing_first, release_first)})
    claims = _ClaimHooks(monkeypatch)
    claims.before[0] = release_first.set
    looked = threading.Event()  # close's flush looked at the entry again after its wait
    waited = threading.Event()
    claims.after[0] = waited.set
    original_pending = Cache._write_pending
    original_finish = Cache._finish

    def write_pending(cache: Cache, entry: Any, others: Any = None) -> None:
        original_pending(cache, entry, others)
        if threading.current_thread().name != WRITER and waited.is_set():
            looked.set()

    def finish(cache: Cache, entry: Any, *args: Any) -> None:
        claim = cache._claims.get(entry)
        writer = threading.current_thread().name == WRITER
        # Given up before its entry is finished: the worst case, close's flush looks now.
        if writer and claim is not None and not claim.done.locked():
            looked.wait(PATIENCE)
        original_finish(cache, entry, *args)

    monkeypatch.setattr(Cache, "_write_pending", write_pending)
    monkeypatch.setattr(Cache, "_finish", finish)
    cache = Cache(tmp_path)
    try:
        cache.put_tag(NAME, TAG, FIRST)
        assert writing_first.wait(PATIENCE)
        cache.put_tag(NAME, TAG, SECOND)
        cache.close()
    finally:
        release_first.set()
        looked.set()
    assert _tag(tmp_path, NAME, TAG).read_text() == SECOND


def test_pending_content_is_bounded_while_another_thread_flushes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer is stuck, so is the thread that went over PENDING_LIMIT (in its own
    flush, writing): what the other threads queue meanwhile is bounded too."""
    monkeypatch.setattr(cache_module, "PENDING_LIMIT", 5000)
    monkeypatch.setattr(cache_module, "FLUSH_WAIT", 0.05)
    free = threading.get_ident()  # this thread's writes are never held
    flusher_holding, release = threading.Event(), threading.Event()
    writer_holding = threading.Event()
    original = Cache._write

    def write(cache: Cache, *args: Any) -> bool:
        if threading.get_ident() != free and not release.is_set():
            (writer_holding if threading.current_thread().name == WRITER else flusher_holding).set()
            release.wait(PATIENCE)
        return original(cache, *args)

    monkeypatch.setattr(Cache, "_write", write)
    cache = Cache(tmp_path)
    blobs = _blobs(200, size=1000)

    def queue_until_over_the_limit() -> None:
        for digest, blob in blobs[1:7]:  # blobs[5] goes over it: this thread flushes
            cache.put_content(digest, blob)

    flusher = threading.Thread(target=queue_until_over_the_limit)
    try:
        cache.put_content(*blobs[0])
        assert writer_holding.wait(PATIENCE)
        flusher.start()
        assert flusher_holding.wait(PATIENCE)
        for digest, blob in blobs[7:]:  # this thread goes on: the other one flushes
            cache.put_content(digest, blob)
        unwritten = [
            d for d, _ in blobs if cache.has_content(d) and not _content(tmp_path, d).exists()
        ]
    finally:
        release.set()
        if flusher.ident is not None:
            flusher.join(PATIENCE)
        cache.close()
    assert len(unwritten) * 1000 <= 2 * 5000 + 1000, len(unwritten)
    fresh = Cache(tmp_path)
    for digest, blob in blobs:  # what was not queued is a miss, never a wrong answer
        assert fresh.get_content(digest, what="x") in (None, blob)
    assert all(_content(tmp_path, d).exists() for d in unwritten), "what was queued is written"


class _Signal(BaseException):
    """What a signal handler raises in the main thread (console.Terminated, Ctrl-C)."""


def test_a_claim_left_by_a_signal_is_waited_for_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal cut the main thread's _finish short: its claim stays, released. Another
    thread's flush waits for it once (it is released), looks again and returns: it does not
    go round until its deadline."""
    monkeypatch.setattr(cache_module, "FLUSH_WAIT", 2.0)
    original_finish = Cache._finish
    original_pending = Cache._write_pending
    looks: list[Any] = []
    cut: list[Any] = []

    def finish(cache: Cache, *args: Any) -> None:
        if not cut:
            cut.append(args[0])
            raise _Signal  # the handler runs at _finish's first instruction
        original_finish(cache, *args)

    def write_pending(cache: Cache, entry: Any, others: Any = None) -> None:
        looks.append(entry)
        original_pending(cache, entry, others)

    monkeypatch.setattr(Cache, "_finish", finish)
    monkeypatch.setattr(Cache, "_write_pending", write_pending)
    cache = Cache(tmp_path)
    cache._no_writer = True  # as when no thread could start: only flush() writes
    cache.put_tag(NAME, TAG, FIRST)
    with pytest.raises(_Signal):
        cache.flush()
    assert cut == [(NAME, TAG)] and _tag(tmp_path, NAME, TAG).read_text() == FIRST
    del looks[:]
    flusher = threading.Thread(target=cache.flush)
    flusher.start()
    flusher.join(PATIENCE)
    assert not flusher.is_alive()
    assert looks == [(NAME, TAG)] * 2, "waited for once, looked at again once"
    cache.close()
