"""What a warm run costs the cache: nothing rewritten, each file read once per run, no file
system call where the answer is already known (issue 15: a warm batch must not cost more
than one without the cache)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import imginspect.cache as cache_module
from imginspect.cache import TOUCH_INTERVAL, Cache
from imginspect.digest import compute_digest
from tests.expected import expected_json
from tests.support.cli import run_imginspect
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

Corpus = dict[str, PushedImage]
MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}'
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def _files(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``root``: (inode, size, mtime in ns)."""
    found = {}
    for path in root.rglob("*"):
        st = path.lstat()
        if path.is_file():
            found[str(path.relative_to(root))] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return found


def _count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[tuple[Any, ...]]:
    """Record the arguments of every call of ``owner.name`` (still called through)."""
    calls: list[tuple[Any, ...]] = []
    original: Callable[..., Any] = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def _stored_manifest(root: Path, data: bytes = MANIFEST) -> str:
    digest = compute_digest(data)
    writer = Cache(root)
    writer.put_manifest(digest, data, INDEX_TYPE)
    writer.put_tag("example.com/a", "v1", digest)
    writer.flush()
    return digest


# ---------------------------------------------------------------------------- end to end


def test_warm_batch_rewrites_nothing(
    registry_plain: Registry, corpus_plain: Corpus, tmp_path: Path
) -> None:
    """A warm batch (tags unchanged) reads the cache and writes nothing: no file replaced,
    no modification time set (content read again within TOUCH_INTERVAL is not touched)."""
    index, single = corpus_plain["oci-index"], corpus_plain["oci-single"]
    refs = [registry_plain.ref(index.repo, index.tag), registry_plain.ref(single.repo, single.tag)]
    listing = tmp_path / "refs.txt"
    listing.write_text("".join(f"{ref}\n" for ref in refs * 6))
    cache = tmp_path / "cache"
    env = {"IMGINSPECT_CACHE_DIR": str(cache)}
    cold = run_imginspect("--json", "-f", str(listing), env=env)
    assert cold.code == 0, cold.stderr
    before = _files(cache)
    assert any(name.startswith("tags/") for name in before)
    mark = registry_plain.mark()
    warm = run_imginspect("--json", "-f", str(listing), env=env)
    assert warm.code == 0, warm.stderr
    assert warm.stdout == cold.stdout
    assert warm.stdout.splitlines()[0] == expected_json(index).rstrip(b"\n")
    assert [r.method for r in registry_plain.requests_since(mark)] == ["HEAD"] * 12
    assert _files(cache) == before


# ---------------------------------------------------------------------------- unit level


def test_read_marks_used_only_when_not_recent(tmp_path: Path) -> None:
    data = os.urandom(100)
    digest = compute_digest(data)
    writer = Cache(tmp_path)
    writer.put_content(digest, data)
    writer.flush()
    path = tmp_path / "content" / "sha256" / digest.split(":")[1]
    now = time.time()
    # used a minute ago: eviction order is kept to TOUCH_INTERVAL, the file is not rewritten
    os.utime(path, (now - 60, now - 60))
    assert Cache(tmp_path).get_content(digest, what="x") == data
    assert path.stat().st_mtime == pytest.approx(now - 60, abs=1)
    # used long ago: marked used now, so it is evicted after what was not read
    os.utime(path, (now - 2 * TOUCH_INTERVAL, now - 2 * TOUCH_INTERVAL))
    assert Cache(tmp_path).get_content(digest, what="x") == data
    assert path.stat().st_mtime == pytest.approx(time.time(), abs=60)
    # a time in the future (a clock set wrong) would keep it from eviction: reset
    os.utime(path, (now + 86400, now + 86400))
    assert Cache(tmp_path).get_content(digest, what="x") == data
    assert path.stat().st_mtime == pytest.approx(time.time(), abs=60)


@pytest.mark.parametrize("kind", ["manifest", "config"])
def test_concurrent_reads_of_one_digest_read_the_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    digest = _stored_manifest(tmp_path)
    opens = _count_calls(monkeypatch, os, "open")
    original_read = cache_module._read_at_most

    def slow_read(*args: Any) -> bytes | None:
        time.sleep(0.05)  # every thread is waiting for the file by now
        return original_read(*args)

    monkeypatch.setattr(cache_module, "_read_at_most", slow_read)
    cache = Cache(tmp_path)
    start = threading.Barrier(8)
    results: list[object] = []

    def read() -> None:
        start.wait()
        if kind == "manifest":
            results.append(cache.get_manifest(digest))
        else:
            results.append(cache.get_content(digest, what="config blob"))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = (MANIFEST, INDEX_TYPE) if kind == "manifest" else MANIFEST
    assert results == [expected] * 8
    assert [args[0] for args in opens].count(digest.split(":")[1]) == 1


def test_content_read_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = _stored_manifest(tmp_path)
    opens = _count_calls(monkeypatch, os, "open")
    cache = Cache(tmp_path)
    for _ in range(5):
        assert cache.get_manifest(digest) == (MANIFEST, INDEX_TYPE)
        assert cache.get_content(digest, what="x") == MANIFEST
    names = [args[0] for args in opens]
    hex_name = digest.split(":")[1]
    # once as a manifest (with its .type), once as content (a config blob)
    assert names.count(hex_name) == 2 and names.count(f"{hex_name}.type") == 1
    assert cache.get_content(digest, what="x", limit=len(MANIFEST) - 1) is None


def test_has_content_stats_a_digest_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = _stored_manifest(tmp_path)
    cache = Cache(tmp_path)
    stats = _count_calls(monkeypatch, os, "stat")
    assert all(cache.has_content(digest) for _ in range(10))
    assert len(stats) == 1
    missing = compute_digest(b"missing")
    assert not cache.has_content(missing) and not cache.has_content(missing)
    assert len(stats) == 3, "a miss is looked up again (another process may store it)"


def test_content_removed_by_this_process_is_no_longer_known(tmp_path: Path) -> None:
    digest = _stored_manifest(tmp_path)
    cache = Cache(tmp_path)
    assert cache.has_content(digest)
    path = tmp_path / "content" / "sha256" / digest.split(":")[1]
    path.write_bytes(b"x" * len(MANIFEST))  # corrupted: the next read removes it
    assert cache.get_content(digest, what="x") is None
    assert not path.exists()
    assert not cache.has_content(digest)


def test_eviction_forgets_what_it_removed(tmp_path: Path) -> None:
    cache = Cache(tmp_path, max_bytes=5000)
    blobs = [os.urandom(1000) for _ in range(4)]
    for i, blob in enumerate(blobs):
        cache.put_content(compute_digest(blob), blob)
        cache.flush()
        path = tmp_path / "content" / "sha256" / compute_digest(blob).split(":")[1]
        os.utime(path, (i + 1, i + 1))  # the oldest first
    assert all(cache.has_content(compute_digest(blob)) for blob in blobs)
    extra = os.urandom(2000)
    cache.put_content(compute_digest(extra), extra)
    cache.flush()  # over the bound: the oldest are evicted
    assert not cache.has_content(compute_digest(blobs[0]))
    assert cache.has_content(compute_digest(extra))


def test_missing_directory_is_not_probed_per_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "c"
    cache = Cache(root)
    opens = _count_calls(monkeypatch, os, "open")
    assert all(cache.get_tag("example.com/a", f"v{i}") is None for i in range(50))
    assert len(opens) == 1
    # a write creates it at once, and reads see it
    digest = compute_digest(b"x")
    cache.put_tag("example.com/a", "v1", digest)
    cache.flush()
    assert Cache(root).get_tag("example.com/a", "v1") == digest
    assert cache.get_tag("example.com/a", "v1") == digest


def test_directory_created_by_another_process_is_found_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "c"
    reader = Cache(root)
    assert reader.get_tag("example.com/a", "v1") is None
    digest = _stored_manifest(root)  # another process fills the cache
    later = time.monotonic() + cache_module.ABSENT_RECHECK + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert reader.get_tag("example.com/a", "v1") == digest
    assert reader.get_manifest(digest) == (MANIFEST, INDEX_TYPE)
