"""The cache's background writer: what a run learns is written while the run goes on, each
entry once, what is left by flush()/close(); a warm run starts no thread; a failed write is
a miss and the writer goes on. Real files in tmp dirs; waits are bounded polls, never timing
asserts."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import imginspect.cache as cache_module
from imginspect.cache import Cache, _key
from imginspect.digest import compute_digest
from imginspect.inspector import Inspector
from imginspect.target import parse_target
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

WRITER = "imginspect-cache-writer"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
#: Generous: a bounded wait for what the writer does on its own, never a timing assert.
PATIENCE = 30.0


def _writers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == WRITER}


def _wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _content(root: Path, digest: str) -> Path:
    return root / "content" / "sha256" / digest.split(":")[1]


def _tag(root: Path, name: str, tag: str) -> Path:
    return root / "tags" / _key(name, tag)


def _blobs(count: int, size: int = 200) -> list[tuple[str, bytes]]:
    blobs = [os.urandom(size) for _ in range(count)]
    return [(compute_digest(blob), blob) for blob in blobs]


class Held:
    """Holds the background writer in its next write until released (the test's threads
    are not held)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()
        original = Cache._write

        def write(cache: Cache, *args: Any) -> bool:
            if threading.current_thread().name == WRITER and not self.release.is_set():
                self.holding.set()
                self.release.wait(PATIENCE)
            return original(cache, *args)

        monkeypatch.setattr(Cache, "_write", write)


def _count_replaces(monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> Counter[str]:
    """Count the files each name was written as (os.replace of a temp file onto it)."""
    written: Counter[str] = Counter()
    lock = threading.Lock()
    original = os.replace

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        if delay:
            time.sleep(delay)  # writes overlap with what other threads do
        original(src, dst, **kwargs)
        with lock:
            written[str(dst)] += 1

    monkeypatch.setattr(os, "replace", replace)
    return written


@pytest.fixture(autouse=True)
def _no_writer_left_behind() -> Iterator[None]:
    before = _writers()
    yield
    gc.collect()  # a cache never closed ends its writer when collected
    assert _wait_for(lambda: not (_writers() - before)), "a writer thread outlived its test"


# ---------------------------------------------------------------------------- writing behind


def test_entries_are_written_while_the_cache_is_open(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    before = _writers()
    manifest = b'{"schemaVersion":2}'
    digest = compute_digest(manifest)
    (config_digest, config), *_ = _blobs(1)
    cache.put_manifest(digest, manifest, INDEX_TYPE)
    cache.put_content(config_digest, config)
    cache.put_tag("example.com/a", "v1", digest)
    assert len(_writers() - before) == 1, "the first entry queued starts the writer"
    tag = _tag(tmp_path, "example.com/a", "v1")
    assert _wait_for(tag.exists), "written with no flush, the cache still open"
    assert _wait_for(lambda: _content(tmp_path, config_digest).exists())
    assert _content(tmp_path, digest).read_bytes() == manifest
    assert Path(f"{_content(tmp_path, digest)}.type").read_text() == INDEX_TYPE
    fresh = Cache(tmp_path)
    assert fresh.get_manifest(digest) == (manifest, INDEX_TYPE)
    assert fresh.get_content(config_digest, what="x") == config
    assert fresh.get_tag("example.com/a", "v1") == digest
    cache.close()
    assert not (_writers() - before), "close ends the writer"


def test_pending_entries_are_read_until_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held(monkeypatch)
    cache = Cache(tmp_path)
    manifest = b'{"schemaVersion":2}'
    digest = compute_digest(manifest)
    cache.put_manifest(digest, manifest, INDEX_TYPE)
    cache.put_tag("example.com/a", "v1", digest)
    assert held.holding.wait(PATIENCE)
    assert not (tmp_path / "content").exists() and not (tmp_path / "tags").exists()
    assert cache.get_manifest(digest) == (manifest, INDEX_TYPE)
    assert cache.get_tag("example.com/a", "v1") == digest and cache.has_content(digest)
    held.release.set()
    cache.close()
    assert Cache(tmp_path).get_manifest(digest) == (manifest, INDEX_TYPE)


def test_close_waits_for_the_writers_entry_writes_the_rest_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held(monkeypatch)
    written = _count_replaces(monkeypatch)
    cache = Cache(tmp_path)
    before = _writers()
    blobs = _blobs(40)
    for i, (digest, blob) in enumerate(blobs):
        cache.put_content(digest, blob)
        cache.put_tag("example.com/a", f"v{i}", digest)
    assert held.holding.wait(PATIENCE), "the writer is writing the first entry"
    timer = threading.Timer(0.2, held.release.set)  # while close() writes the rest
    timer.start()
    try:
        cache.close()
    finally:
        timer.cancel()
        held.release.set()
    assert not (_writers() - before), "no thread left behind"
    expected = {digest.split(":")[1] for digest, _ in blobs}
    expected |= {_key("example.com/a", f"v{i}") for i in range(len(blobs))}
    assert set(written) == expected and set(written.values()) == {1}, "each entry once"
    assert not list(tmp_path.rglob(".tmp-*"))
    fresh = Cache(tmp_path)
    for i, (digest, blob) in enumerate(blobs):
        assert fresh.get_content(digest, what="x") == blob
        assert fresh.get_tag("example.com/a", f"v{i}") == digest


def test_close_does_not_wait_for_a_stuck_writer_without_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "FLUSH_WAIT", 0.2)
    held = Held(monkeypatch)
    cache = Cache(tmp_path)
    before = _writers()
    (digest, blob), (other, other_blob) = _blobs(2)
    cache.put_content(digest, blob)
    assert held.holding.wait(PATIENCE)
    cache.put_content(other, other_blob)
    stuck = _writers() - before
    try:
        cache.close()  # returns although the writer's entry is not written
        assert _content(tmp_path, other).read_bytes() == other_blob, "the rest is written"
        assert not _content(tmp_path, digest).exists()
        assert stuck and all(thread.daemon for thread in stuck), "never keeps the process"
        assert all(thread.is_alive() for thread in stuck)
    finally:
        held.release.set()
    for thread in stuck:
        thread.join(PATIENCE)
        assert not thread.is_alive(), "a stopped writer ends after its entry"
    assert _content(tmp_path, digest).read_bytes() == blob
    cache.close()  # its directories were left open for it: closed now


def test_flush_from_other_threads_while_the_writer_runs_writes_each_entry_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = _count_replaces(monkeypatch, delay=0.0005)
    cache = Cache(tmp_path)
    blobs = _blobs(120)
    manifests = _blobs(30)
    for i, (digest, blob) in enumerate(blobs):
        cache.put_content(digest, blob)
        cache.put_tag("example.com/a", f"v{i}", digest)
    for digest, blob in manifests:
        cache.put_manifest(digest, blob, INDEX_TYPE)
    start = threading.Barrier(3)

    def flush() -> None:
        start.wait()
        cache.flush()

    flushers = [threading.Thread(target=flush) for _ in range(2)]
    for thread in flushers:
        thread.start()
    start.wait()
    cache.flush()
    for thread in flushers:
        thread.join()
    expected = {digest.split(":")[1] for digest, _ in blobs + manifests}
    expected |= {f"{digest.split(':')[1]}.type" for digest, _ in manifests}
    expected |= {_key("example.com/a", f"v{i}") for i in range(len(blobs))}
    # Every flush has returned: everything is on disk, each file written once.
    assert set(written) == expected
    assert [name for name, count in written.items() if count != 1] == []
    fresh = Cache(tmp_path)
    for i, (digest, blob) in enumerate(blobs):
        assert fresh.get_content(digest, what="x") == blob
        assert fresh.get_tag("example.com/a", f"v{i}") == digest
    for digest, blob in manifests:
        assert fresh.get_manifest(digest) == (blob, INDEX_TYPE)
    cache.close()


def test_a_moved_tag_is_written_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = Held(monkeypatch)
    cache = Cache(tmp_path)
    first, second = compute_digest(b"1"), compute_digest(b"2")
    cache.put_tag("example.com/a", "v1", first)
    assert held.holding.wait(PATIENCE)  # writing `first`
    cache.put_tag("example.com/a", "v1", second)
    held.release.set()
    cache.close()
    assert Cache(tmp_path).get_tag("example.com/a", "v1") == second


def test_pending_limit_still_bounds_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "PENDING_LIMIT", 5000)
    monkeypatch.setattr(cache_module, "FLUSH_WAIT", 0.1)  # for the held entry
    held = Held(monkeypatch)
    cache = Cache(tmp_path)
    blobs = _blobs(30, size=1000)
    try:
        for i, (digest, blob) in enumerate(blobs):
            cache.put_content(digest, blob)
            if i == 0:
                assert held.holding.wait(PATIENCE)
            unwritten = [d for d, _ in blobs[: i + 1] if not _content(tmp_path, d).exists()]
            # the writer is held: the queueing thread writes what exceeds the bound
            assert len(unwritten) * 1000 <= 5000 + 1000, i
    finally:
        held.release.set()
    cache.close()
    assert all(_content(tmp_path, digest).exists() for digest, _ in blobs)


def test_a_cache_never_closed_ends_its_writer(tmp_path: Path) -> None:
    before = _writers()
    cache = Cache(tmp_path)
    (digest, blob), *_ = _blobs(1)
    cache.put_content(digest, blob)
    cache.flush()
    assert _content(tmp_path, digest).exists()
    started = _writers() - before
    assert len(started) == 1
    del cache
    gc.collect()
    for thread in started:
        thread.join(PATIENCE)
        assert not thread.is_alive()


# ---------------------------------------------------------------------------- warm runs


def _count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every digest the cache computes from now on: the bytes it hashed."""
    hashes: list[bytes] = []
    original = compute_digest

    def counting(data: bytes, algorithm: str = "sha256") -> str:
        hashes.append(data)
        return original(data, algorithm)

    monkeypatch.setattr(cache_module, "compute_digest", counting)
    return hashes


def test_reads_and_known_content_start_no_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = b'{"schemaVersion":2}'
    digest = compute_digest(manifest)
    writer = Cache(tmp_path)
    writer.put_manifest(digest, manifest, INDEX_TYPE)
    writer.put_tag("example.com/a", "v1", digest)
    writer.close()
    before = _writers()
    hashes = _count_hashes(monkeypatch)
    cache = Cache(tmp_path)
    assert cache.get_tag("example.com/a", "v1") == digest and cache.has_content(digest)
    assert cache.get_manifest(digest) == (manifest, INDEX_TYPE)
    assert cache.get_tag("example.com/a", "v2") is None
    assert cache.get_content(compute_digest(b"missing"), what="x") is None
    assert len(hashes) == 1, "the manifest read from disk is verified"
    cache.put_manifest(digest, manifest, INDEX_TYPE)  # found on disk in this run
    assert len(hashes) == 1, "and not hashed again to be queued: it is stored"
    assert not (_writers() - before), "nothing to write: no thread"
    cache.close()


def test_warm_inspections_start_no_writer(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage], tmp_path: Path
) -> None:
    images = [corpus_plain["oci-index"], corpus_plain["oci-single"], corpus_plain["schema2"]]
    refs = [registry_plain.ref(image.repo, image.tag) for image in images]
    refs += [registry_plain.ref(image.repo, image.digest) for image in images]

    def run() -> tuple[list[str], set[threading.Thread]]:
        before = _writers()
        cache = Cache(tmp_path / "cache")
        with Inspector(cache=cache) as inspector:
            digests = [inspector.inspect(parse_target(ref)).descriptor.digest for ref in refs]
        started = _writers() - before
        cache.close()
        return digests, started

    cold, started = run()
    assert len(started) == 1, "a cold run writes behind"
    files = sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())
    warm, started = run()
    assert warm == cold
    assert not started, "a warm run starts no writer thread"
    assert sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file()) == files


# ---------------------------------------------------------------------------- cheaper writes


def test_each_entry_is_hashed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashes = _count_hashes(monkeypatch)
    cache = Cache(tmp_path)
    manifest = b'{"schemaVersion":2}'
    digest = compute_digest(manifest)
    (config_digest, config), *_ = _blobs(1)
    for _ in range(3):  # tags of one image in a batch: queued once
        cache.put_manifest(digest, manifest, INDEX_TYPE)
    cache.put_content(config_digest, config)
    cache.put_content(compute_digest(b"a"), b"b")  # not what its name says: never queued
    cache.close()
    assert Counter(hashes) == Counter([manifest, config, b"b"])
    fresh = Cache(tmp_path)
    assert fresh.get_manifest(digest) == (manifest, INDEX_TYPE)
    assert fresh.get_content(compute_digest(b"a"), what="x") is None


def test_content_a_read_found_missing_is_written_without_a_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (Path(tmp_path) / "content" / "sha256").mkdir(parents=True, mode=0o700)
    stats: list[str] = []
    original = os.stat

    def counting(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        stats.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    cache = Cache(tmp_path)
    (missed, blob), (unknown, other) = _blobs(2)
    assert cache.get_content(missed, what="config blob") is None
    cache.put_content(missed, blob)
    cache.put_content(unknown, other)  # never looked for: is it there? one stat
    cache.close()
    assert missed.split(":")[1] not in stats
    assert stats.count(unknown.split(":")[1]) == 1
    fresh = Cache(tmp_path)
    assert fresh.get_content(missed, what="x") == blob
    assert fresh.get_content(unknown, what="x") == other


# ---------------------------------------------------------------------------- failures


@contextlib.contextmanager
def _read_only(directory: Path) -> Iterator[None]:
    """``directory`` refuses new files, also to root (chattr +i), until the block ends."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(0o700)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("root without chattr: no directory is read-only")
    made = subprocess.run([chattr, "+i", str(directory)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i refused: {made.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(directory)], check=True)


@pytest.mark.parametrize("failure", ["read-only directory", "directory in the way"])
def test_a_failed_write_is_a_miss_and_the_writer_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    content_dir = tmp_path / "content" / "sha256"
    content_dir.mkdir(parents=True, mode=0o700)
    lines: list[str] = []
    cache = Cache(tmp_path, log=lines.append)
    before = _writers()
    (refused, blob), (later, later_blob), (last, last_blob) = _blobs(3)
    blocker = _content(tmp_path, refused)
    if failure == "directory in the way":
        (blocker / "sub").mkdir(parents=True)  # a rename cannot replace it
        guard: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    else:
        guard = _read_only(content_dir)
    with guard:
        cache.put_content(refused, blob)
        cache.put_tag("example.com/a", "v1", refused)
        assert _wait_for(_tag(tmp_path, "example.com/a", "v1").exists), "the writer went on"
        assert any(f"cannot write {blocker}" in line for line in lines), lines
        assert cache.get_content(refused, what="x") is None, "a miss, no longer pending"
        assert not cache.has_content(refused)
    started = _writers() - before
    assert len(started) == 1
    cache.put_content(later, later_blob)
    assert _wait_for(_content(tmp_path, later).exists), "the same writer writes what follows"
    assert _writers() - before == started
    # an unexpected error in one write is a miss too
    original = cache._store

    def failing(digest: str, *args: Any) -> None:
        if digest == last:
            raise RuntimeError("boom")
        original(digest, *args)

    monkeypatch.setattr(cache, "_store", failing)
    cache.put_content(last, last_blob)
    cache.put_tag("example.com/a", "v2", later)
    assert _wait_for(_tag(tmp_path, "example.com/a", "v2").exists)
    assert any("boom" in line for line in lines) and _writers() - before == started
    assert cache.get_content(last, what="x") is None
    cache.close()
    assert not (_writers() - before)
    assert not [p for p in tmp_path.rglob(".tmp-*")], "no temp file left by a failed write"


# ---------------------------------------------------------------------------- temp files


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    """Writes cut off by an exit leave temp files: old ones go, recent ones (another
    process's write under way) stay."""
    content_dir = tmp_path / "content" / "sha256"
    content_dir.mkdir(parents=True, mode=0o700)
    (tmp_path / "tags").mkdir(mode=0o700)
    old = time.time() - cache_module.STALE_TMP_AGE - 60
    stale = [content_dir / ".tmp-123-abc-0", tmp_path / "tags" / ".tmp-123-abc-1"]
    for path in stale:
        path.write_bytes(b"x" * 3000)
        os.utime(path, (old, old))
    fresh = content_dir / ".tmp-456-def-0"
    fresh.write_bytes(b"y")
    cache = Cache(tmp_path, max_bytes=2500)
    (first, blob), (second, other) = _blobs(2, size=1000)
    cache.put_content(first, blob)
    cache.flush()  # the first write counts the content: a stale temp file goes
    assert not stale[0].exists() and stale[1].exists() and fresh.exists()
    cache.put_content(second, other)
    cache.put_tag("example.com/a", "v1", second)
    cache.flush()
    os.utime(_content(tmp_path, first), (old, old))
    third, third_blob = _blobs(1, size=1000)[0]
    cache.put_content(third, third_blob)
    cache.flush()  # beyond max_bytes: eviction, which looks everywhere
    assert not stale[1].exists() and fresh.exists()
    assert not _content(tmp_path, first).exists() and _content(tmp_path, third).exists()
    cache.clear()
    assert not list(tmp_path.rglob(".tmp-*")), "clear removes every temp file"
    cache.close()
