"""The persistent cache: immutable content by digest, plus what makes warm runs one request.

Layout under the user cache dir (platformdirs; ``IMGINSPECT_CACHE_DIR`` overrides it)::

    content/sha256/<hex>        manifests and config blobs, exactly as received
    content/sha256/<hex>.type   the Content-Type a manifest came with
    tags/<key>                  last digest seen for registry/repository:tag
    hosts/<key>.json            per registry: scheme that worked, last auth challenge
    tokens/<key>.json           bearer tokens until shortly before they expire

Content is immutable, so it is kept until evicted (oldest first, beyond ``max_bytes``) and
its digest is verified on every read: a corrupted or tampered file is a miss, never an
answer. Tags are only hints: a tag is always re-resolved with a HEAD request. Tokens are
secrets: the directory is 0700 and every file 0600. Writes are atomic (temp file + rename)
so concurrent runs never see half a file. Every failure to read or write the cache is a
miss, never an error: the cache can only make things faster.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imginspect.digest import compute_digest, is_valid_digest

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
#: Pending (not yet written) content beyond this is flushed at once, to bound memory.
PENDING_LIMIT = 16 * 1024 * 1024
_SAFE_TYPE = re.compile(r"^[\w.+/;= -]{1,200}$")


def default_cache_dir() -> Path:
    override = os.environ.get("IMGINSPECT_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("imginspect", appauthor=False))


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class CacheStats:
    path: Path
    entries: int
    bytes: int
    tokens: int
    tags: int


class Cache:
    """A content-addressed, size-bounded disk cache. Safe to share between processes."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root or default_cache_dir()
        self.max_bytes = max_bytes
        self._log = log
        self._ready = False
        # Bytes of content on disk: counted by one directory scan at the first write of a
        # process, then kept up to date, so a batch of hundreds of writes scans once.
        self._total: int | None = None
        self._made_dirs: set[Path] = set()
        # Write-behind: what a run learns is written by flush() (at the end of the run, or
        # when much is pending), not by the worker threads while they wait on the network;
        # their file system calls contend for the GIL and slow a batch down. Reads see it.
        self._lock = threading.Lock()
        self._pending_content: dict[str, tuple[bytes, str | None]] = {}
        self._pending_tags: dict[tuple[str, str], str] = {}
        self._pending_bytes = 0
        # Content read (and verified) from disk in this run, kept for the run's other
        # references: a batch of many tags of few images reads each file once.
        self._seen: dict[str, tuple[bytes, str | None]] = {}
        self._seen_bytes = 0

    # ------------------------------------------------------------------ content

    def _content_path(self, digest: str) -> Path | None:
        if not is_valid_digest(digest):
            return None
        algorithm, _, encoded = digest.partition(":")
        return self.root / "content" / algorithm / encoded

    def has_content(self, digest: str) -> bool:
        if digest in self._pending_content:
            return True
        path = self._content_path(digest)
        return path is not None and path.is_file()

    def get_content(self, digest: str, *, what: str) -> bytes | None:
        pending = self._pending_content.get(digest)
        if pending is not None:
            self._debug(f"cache hit: {what} {digest} ({len(pending[0])} bytes, this run)")
            return pending[0]
        path = self._content_path(digest)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if compute_digest(data, digest.split(":", 1)[0]) != digest:
            self._debug(f"cache: {what} {digest} is corrupted; dropping it")
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        self._debug(f"cache hit: {what} {digest} ({len(data)} bytes)")
        return data

    def put_content(self, digest: str, data: bytes) -> None:
        self._queue(digest, data, None)

    def put_manifest(self, digest: str, data: bytes, content_type: str | None) -> None:
        self._queue(digest, data, content_type)

    def put_tag(self, name: str, tag: str, digest: str) -> None:
        """Remember where a tag pointed (a hint: a tag is always re-checked with HEAD)."""
        if is_valid_digest(digest):
            with self._lock:
                self._pending_tags[(name, tag)] = digest

    def _queue(self, digest: str, data: bytes, content_type: str | None) -> None:
        if not is_valid_digest(digest) or len(data) > self.max_bytes:
            return
        if compute_digest(data, digest.split(":", 1)[0]) != digest:
            return  # never store what does not match its name
        with self._lock:
            if digest in self._pending_content:
                return
            self._pending_content[digest] = (data, content_type)
            self._pending_bytes += len(data)
            too_much = self._pending_bytes > PENDING_LIMIT
        if too_much:
            self.flush()

    def flush(self) -> None:
        """Write what this run learnt; called when the run ends (Inspector.close)."""
        with self._lock:
            content, self._pending_content = self._pending_content, {}
            tags, self._pending_tags = self._pending_tags, {}
            self._pending_bytes = 0
        for digest, (data, content_type) in content.items():
            if content_type is None:
                self._store_content(digest, data)
            else:
                self._store_manifest(digest, data, content_type)
        for (name, tag), digest in tags.items():
            self._store_tag(name, tag, digest)

    def _store_content(self, digest: str, data: bytes) -> None:
        path = self._content_path(digest)
        if path is None or len(data) > self.max_bytes or path.is_file():
            return  # content is immutable: what is there under this name is this content
        if compute_digest(data, digest.split(":", 1)[0]) != digest:
            return  # never store what does not match its name
        if not self._write(path, data):
            return
        if self._total is None:
            self._total = self._scan()[1]
        else:
            self._total += len(data)
        if self._total > self.max_bytes:
            self._evict()

    def get_manifest(self, digest: str) -> tuple[bytes, str | None] | None:
        known = self._pending_content.get(digest) or self._seen.get(digest)
        if known is not None:
            self._debug(f"cache hit: manifest {digest} ({len(known[0])} bytes, this run)")
            return known
        data = self.get_content(digest, what="manifest")
        if data is None:
            return None
        path = self._content_path(digest)
        content_type = None
        if path is not None:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                content_type = path.with_name(path.name + ".type").read_text().strip() or None
        with self._lock:
            if self._seen_bytes + len(data) <= PENDING_LIMIT:
                self._seen[digest] = (data, content_type)
                self._seen_bytes += len(data)
        return data, content_type

    def _store_manifest(self, digest: str, data: bytes, content_type: str) -> None:
        path = self._content_path(digest)
        if path is None or path.is_file():
            return
        if _SAFE_TYPE.match(content_type):
            self._write(path.with_name(path.name + ".type"), content_type.encode())
        self._store_content(digest, data)

    # ------------------------------------------------------------------ tags

    def get_tag(self, name: str, tag: str) -> str | None:
        pending = self._pending_tags.get((name, tag))
        if pending is not None:
            return pending
        try:
            digest = (self.root / "tags" / _key(name, tag)).read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return digest if is_valid_digest(digest) else None

    def _store_tag(self, name: str, tag: str, digest: str) -> None:
        # A hint only, so it is written in place, without the temp-file dance: a torn
        # write reads as an invalid digest, that is, a miss.
        if not self._ensure_root():
            return
        directory = self.root / "tags"
        try:
            if directory not in self._made_dirs:
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._made_dirs.add(directory)
            fd = os.open(directory / _key(name, tag), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, digest.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            self._debug(f"cache: cannot write tag hint: {exc}")

    # ------------------------------------------------------------------ hosts and tokens

    def get_host(self, host: str) -> dict[str, Any] | None:
        return self._read_json(self.root / "hosts" / f"{_key(host)}.json")

    def update_host(self, host: str, **fields: Any) -> None:
        """Merge ``fields`` into what is known about ``host`` (scheme, challenge)."""
        info = self.get_host(host) or {}
        merged = {**info, **fields}
        if merged != info:
            self._write(self.root / "hosts" / f"{_key(host)}.json", json.dumps(merged).encode())

    def get_token(self, *key: str) -> tuple[str, float] | None:
        """A cached token and its wall-clock expiry, if still valid."""
        data = self._read_json(self.root / "tokens" / f"{_key(*key)}.json")
        if data is None:
            return None
        token, expires = data.get("token"), data.get("expires_at")
        if not isinstance(token, str) or not isinstance(expires, (int, float)):
            return None
        if expires <= time.time():
            return None
        return token, float(expires)

    def put_token(self, *key: str, token: str, expires_at: float) -> None:
        payload = json.dumps({"token": token, "expires_at": expires_at}).encode()
        self._write(self.root / "tokens" / f"{_key(*key)}.json", payload)

    # ------------------------------------------------------------------ maintenance

    def stats(self) -> CacheStats:
        entries = size = 0
        for path in self._content_files():
            with contextlib.suppress(OSError):
                size += path.stat().st_size
                entries += 1
        return CacheStats(
            self.root,
            entries,
            size,
            tokens=_count(self.root / "tokens"),
            tags=_count(self.root / "tags"),
        )

    def clear(self) -> None:
        for sub in ("content", "tags", "hosts", "tokens"):
            shutil.rmtree(self.root / sub, ignore_errors=True)

    def _content_files(self) -> list[Path]:
        content = self.root / "content"
        if not content.is_dir():
            return []
        return [p for p in content.glob("*/*") if p.is_file() and not p.name.endswith(".type")]

    def _scan(self) -> tuple[list[tuple[float, int, Path]], int]:
        files = []
        total = 0
        for path in self._content_files():
            with contextlib.suppress(OSError):
                st = path.stat()
                files.append((st.st_mtime, st.st_size, path))
                total += st.st_size
        return files, total

    def _evict(self) -> None:
        """Delete the least recently used content until 90% of the bound is left."""
        files, total = self._scan()
        if total > self.max_bytes:
            total = self._delete_oldest(files, total)
        self._total = total

    def _delete_oldest(self, files: list[tuple[float, int, Path]], total: int) -> int:
        for _mtime, size, path in sorted(files):
            with contextlib.suppress(OSError):
                path.unlink()
                path.with_name(path.name + ".type").unlink(missing_ok=True)
                total -= size
            if total <= self.max_bytes * 0.9:  # evict a little more, so this runs rarely
                break
        return total

    # ------------------------------------------------------------------ plumbing

    def _ensure_root(self) -> bool:
        if self._ready:
            return True
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Tokens live here: keep the directory private even if it existed before.
            os.chmod(self.root, 0o700)
        except OSError:
            return False
        self._ready = True
        return True

    def _write(self, path: Path, data: bytes) -> bool:
        if not self._ensure_root():
            return False
        try:
            if path.parent not in self._made_dirs:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._made_dirs.add(path.parent)
            # mkstemp creates the file 0600: private from the first byte.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            self._debug(f"cache: cannot write {path}: {exc}")
            return False
        return True

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _debug(self, line: str) -> None:
        if self._log is not None:
            self._log(line)


def _count(directory: Path) -> int:
    try:
        return sum(1 for p in directory.iterdir() if p.is_file())
    except OSError:
        return 0
