"""The cache directory is untrusted input (issue 11): symlinks, FIFOs, oversized and forged
entries, foreign or shared directories. Real files, links and FIFOs; the CLI end to end
against the real registries where the attack is visible there."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest

from imginspect import cache as cache_module
from imginspect.cache import Cache, _key, usable_challenge
from imginspect.challenge import MAX_TOKEN_CHARS, usable_token
from imginspect.digest import compute_digest
from tests.expected import expected_json
from tests.support.cli import CliResult, run_imginspect
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

Corpus = dict[str, PushedImage]

#: A CLI run longer than this hangs (a FIFO read, a lock): a failure, never a wait.
HUNG = 30.0


def _cli(cache_dir: Path, *args: str) -> CliResult:
    try:
        return run_imginspect(*args, env={"IMGINSPECT_CACHE_DIR": str(cache_dir)}, timeout=HUNG)
    except subprocess.TimeoutExpired:
        pytest.fail(f"imginspect {' '.join(args)} hung on the cache in {cache_dir}")


def _entries(root: Path) -> list[Path]:
    """Everything under ``root``, links included but not followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        found += [Path(dirpath, name) for name in dirnames + filenames]
    return found


def _tree(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# ---------------------------------------------------------------------------- symlinks


def test_tag_entry_replaced_by_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    root = tmp_path / "c"
    digest = compute_digest(b"x")
    cache = Cache(root)
    cache.put_tag("example.com/a", "v1", digest)
    cache.flush()
    entry = root / "tags" / _key("example.com/a", "v1")
    entry.unlink()
    # a link to a file holding a valid digest: never followed on read
    decoy = tmp_path / "decoy"
    decoy.write_text(compute_digest(b"decoy"))
    entry.symlink_to(decoy)
    assert Cache(root).get_tag("example.com/a", "v1") is None
    assert not entry.is_symlink() and decoy.exists(), "the link is removed, not its target"
    # a link planted again, then a write: the link is replaced, its target untouched
    entry.symlink_to(victim)
    writer = Cache(root)
    writer.put_tag("example.com/a", "v1", digest)
    writer.flush()
    assert victim.read_bytes() == b"precious"
    assert not entry.is_symlink() and entry.read_text() == digest
    assert Cache(root).get_tag("example.com/a", "v1") == digest


@pytest.mark.timeout(60)
def test_tag_entry_linked_to_dev_zero(tmp_path: Path) -> None:
    root = tmp_path / "c"
    (root / "tags").mkdir(parents=True, mode=0o700)
    (root / "tags" / _key("example.com/a", "v1")).symlink_to("/dev/zero")
    assert Cache(root).get_tag("example.com/a", "v1") is None
    assert not (root / "tags" / _key("example.com/a", "v1")).is_symlink()


@pytest.mark.parametrize("linked", ["content", "content/sha256"])
def test_symlinked_content_directory(tmp_path: Path, linked: str) -> None:
    outside = tmp_path / "outside"
    (outside / "sha256").mkdir(parents=True)
    target = outside if linked == "content" else outside / "sha256"
    # files that look like cached content: old enough to be evicted first
    for i in range(5):
        blob = os.urandom(1000)
        path = outside / "sha256" / compute_digest(blob).split(":")[1]
        path.write_bytes(blob)
        os.utime(path, (i, i))
    before = _tree(outside / "sha256")
    root = tmp_path / "c"
    root.mkdir(mode=0o700)
    if linked == "content/sha256":
        (root / "content").mkdir(mode=0o700)
    (root / linked).symlink_to(target, target_is_directory=True)

    cache = Cache(root, max_bytes=4000)
    some = next(iter(before))
    assert cache.get_content(f"sha256:{some}", what="x") is None, "read through a link"
    assert Cache(root).stats().entries == 0, "counted through a link"
    for _ in range(10):  # well beyond max_bytes: eviction runs
        blob = os.urandom(1000)
        cache.put_content(compute_digest(blob), blob)
        cache.flush()
    assert _tree(outside / "sha256") == before, "nothing outside the cache deleted or added"
    assert not (root / linked).is_symlink()
    assert 0 < cache.stats().bytes <= 4000


def test_symlinked_tokens_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "c"
    root.mkdir(mode=0o700)
    (root / "tokens").symlink_to(outside, target_is_directory=True)
    cache = Cache(root)
    later = time.time() + 3600
    cache.put_token("realm", "svc", "scope", "id", token="t0k3n", expires_at=later)
    assert list(outside.iterdir()) == [], "no token written into another directory"
    assert not (root / "tokens").is_symlink()
    assert stat.S_IMODE((root / "tokens").stat().st_mode) == 0o700
    assert Cache(root).get_token("realm", "svc", "scope", "id") == ("t0k3n", later)


def test_group_writable_subdirectory_is_not_used(tmp_path: Path) -> None:
    root = tmp_path / "c"
    later = time.time() + 3600
    Cache(root).put_token("r", "s", "scope", "id", token="t0k3n", expires_at=later)
    (root / "tokens").chmod(0o777)  # anyone could have planted or swapped its files
    lines: list[str] = []
    assert Cache(root, log=lines.append).get_token("r", "s", "scope", "id") is None
    assert any("writable by other users" in line for line in lines)


def test_root_not_owned_by_the_user_is_caching_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "c"
    blob = b'{"a": 1}'
    digest = compute_digest(blob)
    ours = Cache(root)
    ours.put_content(digest, blob)
    ours.flush()
    before = _entries(root)
    # The same directory seen by another user: not theirs, so neither read nor written.
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 4242)
    lines: list[str] = []
    theirs = Cache(root, log=lines.append)
    assert theirs.get_content(digest, what="x") is None
    other = os.urandom(100)
    theirs.put_content(compute_digest(other), other)
    theirs.put_token("r", "s", "scope", "id", token="t", expires_at=time.time() + 60)
    theirs.flush()
    assert _entries(root) == before
    assert any("not owned by you: caching is off" in line for line in lines)


def test_existing_shared_root_is_not_chmodded(
    registry_token: Registry, corpus_token: Corpus, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    image = corpus_token["oci-index"]
    ref = registry_token.ref(image.repo, image.tag)
    assert _cli(shared, "--json", ref).code == 0
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777, "never chmod a directory we did not make"
    for sub in ("content", "tags", "hosts", "tokens"):
        assert stat.S_IMODE((shared / sub).stat().st_mode) == 0o700, sub
    assert registry_token.token_server is not None
    mark = registry_token.mark()
    warm = _cli(shared, "--json", ref)
    assert warm.stdout == expected_json(image)
    assert [(r.method, r.status) for r in registry_token.requests_since(mark)] == [("HEAD", 200)]


def test_cache_clear_removes_links_not_their_targets(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "dir" / "keep").write_bytes(b"keep")
    (outside / "file").write_bytes(b"file")
    root = tmp_path / "c"
    (root / "content" / "sha256").mkdir(parents=True)
    (root / "content" / "sha256" / "link-to-file").symlink_to(outside / "file")
    (root / "content" / "sha256" / "link-to-dir").symlink_to(outside / "dir")
    (root / "tags").symlink_to(outside / "dir", target_is_directory=True)
    (root / "hosts").symlink_to(outside / "file")
    os.mkfifo(root / "tokens")
    shown = _cli(root, "cache", "show")
    assert shown.code == 0 and "content:  0 entries" in shown.text
    cleared = _cli(root, "cache", "clear")
    assert cleared.code == 0, cleared.stderr
    assert (outside / "dir" / "keep").read_bytes() == b"keep"
    assert (outside / "file").read_bytes() == b"file"
    assert _entries(root) == [], "links removed themselves"


# ---------------------------------------------------------------------------- FIFOs


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["tag", "content", "type", "host", "token"])
def test_fifo_in_place_of_a_cache_file(
    registry_token: Registry, corpus_token: Corpus, tmp_path: Path, kind: str
) -> None:
    image = corpus_token["oci-index"]
    ref = registry_token.ref(image.repo, image.tag)
    assert _cli(tmp_path, "--json", ref).code == 0
    pattern = {
        "tag": "tags/*",
        "content": f"content/sha256/{image.digest.split(':')[1]}",
        "type": "content/sha256/*.type",
        "host": "hosts/*.json",
        "token": "tokens/*.json",
    }[kind]
    if kind == "content":  # by digest: the manifest is read from the cache directly
        ref = registry_token.ref(image.repo, image.digest)
    victims = list(tmp_path.glob(pattern))
    assert victims, pattern
    for path in victims:
        path.unlink()
        os.mkfifo(path, 0o600)
    # before: a FIFO hung the run (the hosts file under the lock every worker waits on)
    warm = _cli(tmp_path, "--json", ref)
    assert warm.code == 0, warm.stderr
    assert warm.stdout == expected_json(image)
    assert not [p for p in _entries(tmp_path) if stat.S_ISFIFO(p.lstat().st_mode)]


# ---------------------------------------------------------------------------- bounds


def test_huge_content_file_is_a_miss_without_reading_it(tmp_path: Path) -> None:
    blob = b'{"config": true}'
    digest = compute_digest(blob)
    cache = Cache(tmp_path)
    cache.put_content(digest, blob)
    cache.flush()
    path = tmp_path / "content" / "sha256" / digest.split(":")[1]
    os.truncate(path, 512 * 1024 * 1024)  # sparse: no disk used
    tracemalloc.start()
    try:
        assert Cache(tmp_path).get_content(digest, what="config blob") is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, f"{peak} bytes allocated for a miss"
    assert not path.exists(), "an entry over its bound is removed"


def test_manifest_reads_are_bounded_by_the_manifest_limit(tmp_path: Path) -> None:
    big = b'{"pad": "' + b"x" * cache_module.MAX_MANIFEST_BYTES + b'"}'
    digest = compute_digest(big)
    writer = Cache(tmp_path)
    writer.put_content(digest, big)  # a config blob may be this big
    writer.flush()
    assert Cache(tmp_path).get_content(digest, what="config blob") == big
    assert Cache(tmp_path).get_manifest(digest) is None


def test_limits_agree_with_the_sources() -> None:
    from imginspect import sources

    assert cache_module.MAX_MANIFEST_BYTES == sources.MAX_MANIFEST_BYTES
    assert cache_module.MAX_CONTENT_BYTES == sources.MAX_CONFIG_BYTES


# ---------------------------------------------------------------------------- forged entries


@pytest.mark.parametrize("token", ["t\u00f6ken", "abc\r\n", "a b", ""])
def test_unusable_cached_token_is_fetched_again(
    registry_token: Registry, corpus_token: Corpus, tmp_path: Path, token: str
) -> None:
    image = corpus_token["oci-index"]
    ref = registry_token.ref(image.repo, image.tag)
    assert _cli(tmp_path, "--digest", ref).code == 0
    files = list((tmp_path / "tokens").iterdir())
    assert files
    for path in files:
        path.write_text(json.dumps({"token": token, "expires_at": time.time() + 3600}))
    assert registry_token.token_server is not None
    tok_mark = registry_token.token_server.mark()
    warm = _cli(tmp_path, "--digest", ref)
    assert warm.code == 0, warm.stderr
    assert warm.stdout == (image.digest + "\n").encode()
    assert len(registry_token.token_server.requests_since(tok_mark)) == 1


@pytest.mark.parametrize(
    "stored",
    [
        {"token": "x" * (MAX_TOKEN_CHARS + 1), "expires_at": "LATER"},
        {"token": "ok", "expires_at": float("nan")},
        {"token": "ok", "expires_at": float("inf")},
        {"token": "ok", "expires_at": 10**400},
        {"token": "ok", "expires_at": 1e300},
        {"token": "ok", "expires_at": "4102444800"},
        {"token": "ok", "expires_at": True},
        {"token": ["ok"], "expires_at": "LATER"},
        ["ok"],
    ],
)
def test_forged_token_entries_are_misses(tmp_path: Path, stored: object) -> None:
    later = time.time() + 3600
    Cache(tmp_path).put_token("r", "s", "scope", "id", token="real", expires_at=later)
    path = tmp_path / "tokens" / f"{_key('r', 's', 'scope', 'id')}.json"
    text = json.dumps(stored).replace('"LATER"', repr(later))
    path.write_text(text)
    assert Cache(tmp_path).get_token("r", "s", "scope", "id") is None
    assert not path.exists()


def test_token_validation_matches_fresh_tokens() -> None:
    assert usable_token("eyJhbGciOi.x-y_z~+/=")
    for bad in ("", "a b", "a\tb", "abc\r\n", "t\u00f6ken", None, 5, "x" * (MAX_TOKEN_CHARS + 1)):
        assert not usable_token(bad), bad


GOOD_CHALLENGE = {"scheme": "bearer", "params": {"realm": "https://a/token", "service": "r"}}


@pytest.mark.parametrize(
    "stored",
    [
        {"challenge": {"scheme": 1, "params": {}}},
        {"challenge": {"scheme": "negotiate", "params": {}}},
        {"challenge": {"scheme": "bearer", "params": {"realm": 5}}},
        {"challenge": {"scheme": "bearer", "params": ["realm"]}},
        {"challenge": {"scheme": "bearer", "params": {"realm": "a\r\nb"}}},
        {"challenge": {"scheme": "bearer", "params": {"Realm X": "a"}}},
        {"challenge": {"scheme": "bearer", "params": {"realm": "x" * 5000}}},
        {"challenge": {"scheme": "bearer", "params": {f"k{i}": "v" for i in range(100)}}},
        {"challenge": "bearer"},
        {"scheme": "ftp"},
        {"scheme": ["https"]},
        {"scheme": "https", "challenge": None},
        [GOOD_CHALLENGE],
        "[" * 50_000,
        "x" * (cache_module.MAX_JSON_BYTES + 1),
    ],
)
def test_forged_host_entries_are_misses(tmp_path: Path, stored: object) -> None:
    Cache(tmp_path).update_host("example.com", scheme="https", challenge=GOOD_CHALLENGE)
    path = tmp_path / "hosts" / f"{_key('example.com')}.json"
    path.write_text(stored if isinstance(stored, str) else json.dumps(stored))
    assert Cache(tmp_path).get_host("example.com") is None
    assert not path.exists()


def test_valid_host_entry_round_trips(tmp_path: Path) -> None:
    assert usable_challenge(GOOD_CHALLENGE)
    Cache(tmp_path).update_host("example.com", scheme="http", challenge=GOOD_CHALLENGE)
    assert Cache(tmp_path).get_host("example.com") == {
        "scheme": "http",
        "challenge": GOOD_CHALLENGE,
    }


def test_deeply_nested_hosts_file_through_the_cli(
    registry_token: Registry, corpus_token: Corpus, tmp_path: Path
) -> None:
    image = corpus_token["oci-index"]
    ref = registry_token.ref(image.repo, image.tag)
    assert _cli(tmp_path, "--digest", ref).code == 0
    for path in (tmp_path / "hosts").iterdir():
        path.write_text("[" * 50_000)
    warm = _cli(tmp_path, "--digest", ref)
    assert warm.code == 0 and "Traceback" not in warm.stderr, warm.stderr
    assert warm.stdout == (image.digest + "\n").encode()


# ---------------------------------------------------------------------------- flush


@pytest.mark.timeout(120)
def test_flush_is_safe_in_a_signal_handler(tmp_path: Path) -> None:
    """A handler (as for SIGTERM) flushing at any moment, also inside a put or a flush on
    the thread it interrupts (the handler's own flush included), neither deadlocks nor
    loses anything. With a non-reentrant lock this deadlocks in most runs."""
    cache = Cache(tmp_path)
    handled = 0

    def handler(*_: object) -> None:
        nonlocal handled
        handled += 1
        cache.flush()

    blobs: list[bytes] = []
    tags: dict[str, str] = {}
    previous = signal.signal(signal.SIGPROF, handler)
    signal.setitimer(signal.ITIMER_PROF, 0.0001, 0.0001)  # every 100 us of CPU time
    try:
        i = 0
        while handled < 300 and i < 200_000:
            blob = os.urandom(64)
            if i % 10 == 0:
                blobs.append(blob)
                cache.put_content(compute_digest(blob), blob)
            tags[f"v{i % 10}"] = compute_digest(blob)
            cache.put_tag("example.com/a", f"v{i % 10}", tags[f"v{i % 10}"])
            i += 1
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, previous)
    assert handled > 0
    cache.flush()
    cache.flush()  # idempotent
    fresh = Cache(tmp_path)
    for blob in blobs:
        assert fresh.get_content(compute_digest(blob), what="x") == blob
    for tag, digest in tags.items():
        assert fresh.get_tag("example.com/a", tag) == digest


def test_flush_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    def explode(line: str) -> None:
        raise RuntimeError(line)

    cache = Cache(blocker / "sub", log=explode)
    cache.put_content(compute_digest(b"a"), b"a")
    cache.put_tag("example.com/a", "v1", compute_digest(b"a"))
    cache.flush()
    cache.flush()
    cache.close()
