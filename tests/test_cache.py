"""The persistent cache and the round trips it saves, counted at the real registry and token
server: cold <= 2 registry requests + 1 token request; warm exactly one HEAD."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from imginspect.cache import Cache
from imginspect.digest import compute_digest
from tests.expected import expected_json
from tests.support.cli import run_imginspect
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

Corpus = dict[str, PushedImage]


def _counts(registry: Registry, reg_mark: int, tok_mark: int) -> tuple[list[tuple[str, int]], int]:
    assert registry.token_server is not None
    reqs = [(r.method, r.status) for r in registry.requests_since(reg_mark)]
    return reqs, len(registry.token_server.requests_since(tok_mark))


def _run(registry: Registry, cache: Path, *args: str) -> tuple[bytes, list[tuple[str, int]], int]:
    assert registry.token_server is not None
    reg_mark, tok_mark = registry.mark(), registry.token_server.mark()
    result = run_imginspect(*args, env={"IMGINSPECT_CACHE_DIR": str(cache)})
    assert result.code == 0, result.stderr
    reqs, tokens = _counts(registry, reg_mark, tok_mark)
    return result.stdout, reqs, tokens


def test_index_by_tag_cold_then_warm(
    registry_token: Registry, corpus_token: Corpus, tmp_path: Path
) -> None:
    image = corpus_token["oci-index"]
    ref = registry_token.ref(image.repo, image.tag)
    out, reqs, tokens = _run(registry_token, tmp_path, "--json", ref)
    assert out == expected_json(image)
    assert reqs == [("GET", 401), ("GET", 200)] and tokens == 1
    out, reqs, tokens = _run(registry_token, tmp_path, "--json", ref)
    assert out == expected_json(image)
    assert reqs == [("HEAD", 200)] and tokens == 0


def test_single_image_warm_is_one_request(
    registry_token: Registry, corpus_token: Corpus, tmp_path: Path
) -> None:
    image = corpus_token["oci-single"]
    ref = registry_token.ref(image.repo, image.tag)
    out, reqs, tokens = _run(registry_token, tmp_path, "--json", ref)
    assert reqs == [("GET", 401), ("GET", 200), ("GET", 200)] and tokens == 1  # + config
    out2, reqs, tokens = _run(registry_token, tmp_path, "--json", ref)
    assert out2 == out == expected_json(image)
    assert reqs == [("HEAD", 200)] and tokens == 0


def test_digest_warm_is_one_head(
    registry_token: Registry, corpus_token: Corpus, tmp_path: Path
) -> None:
    image = corpus_token["buildkit"]
    ref = registry_token.ref(image.repo, image.tag)
    _, reqs, tokens = _run(registry_token, tmp_path, "--digest", ref)
    assert reqs == [("HEAD", 401), ("HEAD", 200)] and tokens == 1
    out, reqs, tokens = _run(registry_token, tmp_path, "--digest", ref)
    assert out == (image.digest + "\n").encode()
    assert reqs == [("HEAD", 200)] and tokens == 0


def test_by_digest_warm_needs_no_request(
    registry_token: Registry, corpus_token: Corpus, tmp_path: Path
) -> None:
    image = corpus_token["windows"]
    ref = registry_token.ref(image.repo, image.digest)
    _run(registry_token, tmp_path, "--json", ref)
    out, reqs, tokens = _run(registry_token, tmp_path, "--json", ref)
    assert out == expected_json(image)
    assert reqs == [] and tokens == 0


def test_sizes_warm(registry_token: Registry, corpus_token: Corpus, tmp_path: Path) -> None:
    image = corpus_token["oci-index"]
    ref = registry_token.ref(image.repo, image.tag)
    _, reqs, _ = _run(registry_token, tmp_path, "--format", "extended-json", "--sizes", ref)
    assert len(reqs) == 2 + len(image.children)
    out, reqs, tokens = _run(registry_token, tmp_path, "--format", "extended-json", "--sizes", ref)
    assert reqs == [("HEAD", 200)] and tokens == 0
    sizes = [c["compressedSize"] for c in json.loads(out)["children"]]
    assert sizes == [c.compressed_size for c in image.children]


def test_moved_tag_is_noticed(
    registry_plain: Registry, corpus_plain: Corpus, tmp_path: Path
) -> None:
    a, b = corpus_plain["oci-single"], corpus_plain["schema2"]
    env = {"IMGINSPECT_CACHE_DIR": str(tmp_path)}
    with registry_plain.client() as client:

        def retag(image: PushedImage) -> None:
            response = client.put(
                f"/v2/{a.repo}/manifests/moving",
                content=image.raw,
                headers={"Content-Type": image.media_type},
            )
            assert response.status_code == 201, response.text
            # the manifest's blobs must be in a.repo: mount them from b's repository
            for blob in image.blobs():
                client.post(f"/v2/{a.repo}/blobs/uploads/?mount={blob.digest}&from={image.repo}")

        for blob in b.blobs():
            client.post(f"/v2/{a.repo}/blobs/uploads/?mount={blob.digest}&from={b.repo}")
        retag(a)
        ref = registry_plain.ref(a.repo, "moving")
        first = run_imginspect("--json", ref, env=env)
        assert first.stdout == expected_json(a)
        retag(b)
        mark = registry_plain.mark()
        second = run_imginspect("--json", ref, env=env)
        assert second.code == 0, second.stderr
        assert second.stdout == expected_json(b), "a moved tag must never be answered from cache"
        methods = [r.method for r in registry_plain.requests_since(mark)]
        assert methods[0] == "HEAD" and methods.count("GET") == 2  # manifest by digest + config


def test_corrupted_cache_entry_is_a_miss(
    registry_plain: Registry, corpus_plain: Corpus, tmp_path: Path
) -> None:
    image = corpus_plain["oci-index"]
    ref = registry_plain.ref(image.repo, image.digest)
    env = {"IMGINSPECT_CACHE_DIR": str(tmp_path)}
    assert run_imginspect("--json", ref, env=env).code == 0
    stored = tmp_path / "content" / "sha256" / image.digest.split(":")[1]
    stored.write_bytes(image.raw.replace(b"linux", b"LINUX"))
    result = run_imginspect("--json", ref, env=env)
    assert result.code == 0 and result.stdout == expected_json(image)
    assert stored.read_bytes() == image.raw, "refetched and stored again"


def test_no_cache_flag(registry_token: Registry, corpus_token: Corpus, tmp_path: Path) -> None:
    image = corpus_token["oci-index"]
    ref = registry_token.ref(image.repo, image.tag)
    _run(registry_token, tmp_path, "--json", ref)
    _, reqs, tokens = _run(registry_token, tmp_path, "--json", "--no-cache", ref)
    assert reqs == [("GET", 401), ("GET", 200)] and tokens == 1


def test_token_files_are_private(
    registry_token: Registry, corpus_token: Corpus, tmp_path: Path
) -> None:
    image = corpus_token["oci-index"]
    cache_dir = tmp_path / "c"
    _run(registry_token, cache_dir, "--digest", registry_token.ref(image.repo, image.tag))
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    tokens = list((cache_dir / "tokens").iterdir())
    assert tokens
    for path in tokens:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for path in cache_dir.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_cache_subcommand(registry_plain: Registry, corpus_plain: Corpus, tmp_path: Path) -> None:
    env = {"IMGINSPECT_CACHE_DIR": str(tmp_path)}
    image = corpus_plain["schema2"]
    assert run_imginspect("--json", registry_plain.ref(image.repo, image.tag), env=env).code == 0
    shown = run_imginspect("cache", env=env)
    assert shown.code == 0
    assert f"path:     {tmp_path}" in shown.text and "content:  2 entries" in shown.text
    cleared = run_imginspect("cache", "clear", env=env)
    assert cleared.code == 0
    assert "content:  0 entries" in run_imginspect("cache", "show", env=env).text


def test_debug_says_cache_hit(
    registry_plain: Registry, corpus_plain: Corpus, tmp_path: Path
) -> None:
    env = {"IMGINSPECT_CACHE_DIR": str(tmp_path)}
    ref = registry_plain.ref(corpus_plain["oci-single"].repo, corpus_plain["oci-single"].digest)
    run_imginspect("--json", ref, env=env)
    result = run_imginspect("--json", "--debug", ref, env=env)
    assert "cache hit: manifest" in result.stderr and "cache hit: config blob" in result.stderr


# ---------------------------------------------------------------------------- unit level


def test_eviction_keeps_the_bound(tmp_path: Path) -> None:
    cache = Cache(tmp_path, max_bytes=10_000)
    blobs = [os.urandom(1000) for _ in range(30)]
    for i, blob in enumerate(blobs):
        digest = compute_digest(blob)
        cache.put_content(digest, blob)
        cache.flush()
        os.utime(tmp_path / "content" / "sha256" / digest.split(":")[1], (i, i))
    assert cache.stats().bytes <= 10_000
    assert cache.get_content(compute_digest(blobs[-1]), what="x") == blobs[-1]
    assert cache.get_content(compute_digest(blobs[0]), what="x") is None


def test_content_never_stored_under_a_wrong_name(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.put_content(compute_digest(b"a"), b"b")
    cache.flush()
    assert cache.get_content(compute_digest(b"a"), what="x") is None


def test_reads_see_writes_at_once_and_flush_completes_them(tmp_path: Path) -> None:
    # Written behind by a thread: what is on disk before flush() depends on it (see
    # test_cache_writer.py); reads see every entry at once, flush() writes what is left.
    cache = Cache(tmp_path)
    data = b'{"schemaVersion":2}'
    digest = compute_digest(data)
    cache.put_manifest(digest, data, "application/vnd.oci.image.manifest.v1+json")
    cache.put_tag("example.com/a", "v1", digest)
    assert cache.get_manifest(digest) == (data, "application/vnd.oci.image.manifest.v1+json")
    assert cache.get_tag("example.com/a", "v1") == digest and cache.has_content(digest)
    cache.flush()
    fresh = Cache(tmp_path)
    assert fresh.get_manifest(digest) == (data, "application/vnd.oci.image.manifest.v1+json")
    assert fresh.get_tag("example.com/a", "v1") == digest


def test_expired_tokens_are_not_returned(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.put_token("realm", "svc", "scope", "id", token="t", expires_at=1.0)
    assert cache.get_token("realm", "svc", "scope", "id") is None
    later = time.time() + 3600
    cache.put_token("realm", "svc", "scope", "id", token="t", expires_at=later)
    assert cache.get_token("realm", "svc", "scope", "id") == ("t", later)


def test_unwritable_cache_is_not_an_error(
    registry_plain: Registry, corpus_plain: Corpus, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    image = corpus_plain["oci-single"]
    result = run_imginspect(
        "--json",
        registry_plain.ref(image.repo, image.tag),
        env={"IMGINSPECT_CACHE_DIR": str(blocker / "sub")},
    )
    assert result.code == 0 and result.stdout == expected_json(image)


@pytest.mark.parametrize("key", ["oci-index", "schema2"])
def test_warm_output_equals_cold_output(
    registry_plain: Registry, corpus_plain: Corpus, tmp_path: Path, key: str
) -> None:
    image = corpus_plain[key]
    ref = registry_plain.ref(image.repo, image.tag)
    env = {"IMGINSPECT_CACHE_DIR": str(tmp_path)}
    for args in (["--json"], ["--format", "extended-json"], ["--compat", "docker"], []):
        cold = run_imginspect(*args, ref)
        warm1 = run_imginspect(*args, ref, env=env)
        warm2 = run_imginspect(*args, ref, env=env)
        assert cold.stdout == warm1.stdout == warm2.stdout, args


def test_token_cache_is_per_password() -> None:
    from imginspect.auth import Credential

    a = Credential("user", "right").identity
    b = Credential("user", "wrong").identity
    assert a != b and "right" not in a and "wrong" not in b
    assert Credential().identity == ""


# ------------------------------------------------------------- where the cache lives

#: (XDG_CACHE_HOME, HOME, whether imginspect answers without platformdirs); None: unset.
CACHE_DIR_ENVIRONMENTS = [
    ("/xdg/cache", "/home/u", True),
    ("/xdg/cache/", "/home/u", True),
    ("/xdg cache ", "/home/u", True),
    ("/", "/home/u", True),
    (None, "/home/u", True),
    ("", "/home/u", True),
    (None, "/home/u/", True),
    (None, "/", True),
    ("relative/cache", "/home/u", False),
    ("  ", "/home/u", False),
    (" /xdg", "/home/u", False),
    (None, "relative/home", False),
    ("", "", False),
    (None, None, False),
]


@pytest.mark.parametrize(("xdg", "home", "common"), CACHE_DIR_ENVIRONMENTS)
def test_default_cache_dir_is_platformdirs_answer(
    monkeypatch: pytest.MonkeyPatch, xdg: str | None, home: str | None, common: bool
) -> None:
    """Without IMGINSPECT_CACHE_DIR the cache is where platformdirs puts it: in the common
    Linux cases imginspect computes it without importing platformdirs (4-5 ms of start-up),
    and gets the same answer as the installed platformdirs (the floor run checks the lowest
    version allowed); anything else is left to platformdirs."""
    import sys

    import platformdirs

    from imginspect import cache

    monkeypatch.delenv("IMGINSPECT_CACHE_DIR", raising=False)
    for name, value in (("XDG_CACHE_HOME", xdg), ("HOME", home)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    expected = Path(platformdirs.user_cache_dir("imginspect", appauthor=False))
    assert cache.default_cache_dir() == expected
    if sys.platform == "linux":
        shortcut = cache._common_linux_cache_dir()
        assert (shortcut is not None) == common
        if shortcut is not None:
            assert shortcut == expected
    monkeypatch.setenv("IMGINSPECT_CACHE_DIR", "/elsewhere")
    assert cache.default_cache_dir() == Path("/elsewhere")


@pytest.mark.parametrize(("xdg", "imported"), [("/xdg/cache", False), ("relative", True)])
def test_default_cache_dir_imports_platformdirs_only_when_needed(
    tmp_path: Path, xdg: str, imported: bool
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGINSPECT_")}
    env.update(XDG_CACHE_HOME=xdg, HOME=str(tmp_path))
    import subprocess
    import sys

    program = (
        "import sys; from imginspect.cache import default_cache_dir; "
        "print(default_cache_dir(), 'platformdirs' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True
    )
    path, seen = done.stdout.split()
    assert seen == str(imported)
    if not imported:
        assert path == "/xdg/cache/imginspect"
