"""The persistent cache: immutable content by digest, plus what makes warm runs one request.

Layout under the user cache dir (platformdirs; ``IMGINSPECT_CACHE_DIR`` overrides it)::

    content/sha256/<hex>        manifests and config blobs, exactly as received
    content/sha256/<hex>.type   the Content-Type a manifest came with
    tags/<key>                  last digest seen for registry/repository:tag
    hosts/<key>.json            per registry: scheme that worked, last auth challenge
    tokens/<key>.json           bearer tokens until shortly before they expire

Content is immutable, so it is kept until evicted (least recently used first, beyond
``max_bytes``; a read marks a file used, to within :data:`TOUCH_INTERVAL`) and its digest
is verified on every read from disk: a corrupted or tampered file is a miss, never an
answer. Tags are only hints: a tag is always re-resolved with a HEAD request. Every failure
to read or write the cache is a miss, never an error: the cache can only make things faster.

A warm run costs the cache as little as possible: nothing is written unless something
changed, each content file is read (and verified) once per run however many references and
threads want it, a digest found on disk is not looked up again, and a missing directory is
not probed again for :data:`ABSENT_RECHECK`. What remains per reference is the read of its
tag file.

What a run learns (manifests, config blobs, tags) is written behind: queued in memory (reads
see it at once) and written by a background thread, started by the first entry queued (a warm
run that learns nothing starts none), while the run waits on the network. :meth:`Cache.flush`
writes what is still pending when the run ends, :meth:`Cache.close` also stops the thread.
Each entry is written once, by whichever thread takes it first. The thread is a daemon: a
write cut off by the process's exit leaves at most a temp file, which the next scan of the
content directories (or eviction, anywhere) removes once it is :data:`STALE_TMP_AGE` old.

Everything under the cache directory is untrusted input (another user, a crash or an attacker
may have changed any of it), so:

* The root must be a directory owned by the user, or caching is off (one ``--debug`` line).
  Its own path may go through symlinks (``~/.cache`` often does). imginspect creates it 0700
  when it does not exist, and never chmods an existing one (it may be a shared 1777
  directory): what keeps tokens private is the subdirectories.
* ``content/``, ``content/<algorithm>/``, ``tags/``, ``hosts/`` and ``tokens/`` are created
  0700 and used only if they are real directories (never followed through a symlink) owned by
  the user and not writable by group or others; otherwise that part of the cache is off. A
  symlink or file where one of them belongs is removed (the name, never what it points to)
  when the directory is next created. Each directory is opened once per process and every
  file operation is relative to the open directory, so a path component swapped later cannot
  redirect a read or a write.
* A file is read only if it is a regular file owned by the user (opened with ``O_NOFOLLOW``
  and ``O_NONBLOCK``: a symlink is never followed, a FIFO never waited on) and no larger than
  what it holds can be: content :data:`MAX_CONTENT_BYTES` (manifests
  :data:`MAX_MANIFEST_BYTES`), a tag :data:`MAX_TAG_BYTES`, host and token files
  :data:`MAX_JSON_BYTES`. What is read is validated like fresh data: content against its
  digest, tokens and challenges by :func:`usable_token` and :func:`usable_challenge`. Any
  entry that is not what it should be is a miss and is removed.
* Writes go to a new 0600 temp file (``O_EXCL``) in the checked directory, renamed over the
  name: a link found there is replaced, never followed. Eviction and ``clear`` never descend
  into a linked directory and unlink links themselves. Content is queued only if it matches
  its digest (checked once, when queued), and written only under that name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import re
import stat
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeGuard

from imginspect import sources
from imginspect._record import Record, record
from imginspect.challenge import MAX_TOKEN_LIFETIME, usable_token
from imginspect.digest import compute_digest, is_valid_digest

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
#: Pending (not yet written) content beyond this is flushed at once, to bound memory; beyond
#: twice this (that flush is behind too) content is not cached.
PENDING_LIMIT = 16 * 1024 * 1024
#: flush() and close() wait at most this long (seconds) for entries another thread (the
#: background writer) is writing: a stuck file system never hangs the end of a run.
FLUSH_WAIT = 5.0
#: A temp file older than this (seconds) is a write cut off by an exit (a write takes
#: milliseconds): it is removed when found by a scan of the content directories or eviction.
STALE_TMP_AGE = 600.0
#: The largest manifest read back: what a source accepts (``imginspect.sources``).
MAX_MANIFEST_BYTES = sources.MAX_MANIFEST_BYTES
#: The largest content of any kind: config blobs.
MAX_CONTENT_BYTES = sources.MAX_CONFIG_BYTES
#: A tag file holds one digest (sha512: 135 characters).
MAX_TAG_BYTES = 256
#: A ``.type`` file holds one Content-Type (at most 200 characters are stored).
MAX_TYPE_BYTES = 256
#: Host and token files are small JSON documents.
MAX_JSON_BYTES = 64 * 1024
#: A content file's modification time is its last use (eviction removes the oldest first).
#: A read sets it to now only when it is older than this (or in the future): a warm run does
#: not rewrite the metadata of every file it reads, and eviction order is kept to the hour.
TOUCH_INTERVAL = 3600.0
#: A directory found missing is not looked for again by reads for this long (seconds): a
#: cold run does not probe for ``tags/`` once per reference. Writes create it at once.
ABSENT_RECHECK = 1.0
#: At most this many digests are remembered as stored (``has_content`` without a ``stat``).
MAX_KNOWN_STORED = 100_000
#: Reads of the same content by concurrent threads are serialized on one of these locks (by
#: digest), so the file is read and verified once and the others take it from memory.
_READ_STRIPES = 16
#: A cached challenge has at most this many parameters, each value at most this long.
MAX_CHALLENGE_PARAMS = 16
MAX_CHALLENGE_VALUE_CHARS = 4096

_SAFE_TYPE = re.compile(r"[\w.+/;= -]{1,200}", re.ASCII)
# Parameter names as parse_challenges gives them: lower-cased RFC 7230 tokens.
_PARAM_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]{1,64}")
_CHALLENGE_SCHEMES = ("bearer", "basic")
_ALGORITHMS = ("sha256", "sha384", "sha512")
_SUBDIRS = ("content", "tags", "hosts", "tokens")
_TMP_PREFIX = ".tmp-"
#: ``clear`` removes at most this deep (the layout is two levels): a planted deep tree is
#: left rather than recursed into without bound.
_MAX_CLEAR_DEPTH = 8

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_ROOT_FLAGS = os.O_RDONLY | _DIRECTORY | _NONBLOCK | _CLOEXEC
_DIR_FLAGS = _ROOT_FLAGS | _NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC | getattr(os, "O_NOCTTY", 0)
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
#: Without these (e.g. on Windows) the cache cannot be used safely: caching is off.
_SUPPORTED = bool(_NOFOLLOW and _DIRECTORY) and os.open in os.supports_dir_fd


def default_cache_dir() -> Path:
    """``IMGINSPECT_CACHE_DIR``, else platformdirs' user cache directory for imginspect."""
    override = os.environ.get("IMGINSPECT_CACHE_DIR")
    if override:
        return Path(override)
    common = _common_linux_cache_dir()
    if common is not None:
        return common
    import platformdirs

    return Path(platformdirs.user_cache_dir("imginspect", appauthor=False))


def _common_linux_cache_dir() -> Path | None:
    """The user cache directory in the common Linux cases, where every platformdirs version
    allowed (3.0 to 4.14 at least) gives the same answer, the XDG Base Directory one:
    ``$XDG_CACHE_HOME/imginspect`` for an absolute ``XDG_CACHE_HOME``, else, with it unset or
    empty and an absolute ``HOME``, ``$HOME/.cache/imginspect``. None otherwise: a relative
    ``XDG_CACHE_HOME`` or ``HOME``, no ``HOME``, Android, another system are platformdirs' to
    decide, and its versions differ there. Importing platformdirs costs 4-5 ms of every run's
    start-up (since 4.x it loads tempfile, shutil, bz2, lzma and random); a test compares the
    two answers for each case, at the lowest and the newest platformdirs."""
    if sys.platform != "linux" or "ANDROID_DATA" in os.environ or "ANDROID_ROOT" in os.environ:
        return None
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg.startswith("/"):
        return Path(os.path.join(xdg, "imginspect"))
    home = os.environ.get("HOME", "")
    if xdg or not home.startswith("/"):
        return None
    return Path(os.path.join(os.path.expanduser("~/.cache"), "imginspect"))


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def usable_challenge(value: object) -> bool:
    """True if ``value`` is a challenge as stored: ``{"scheme": ..., "params": {...}}``.

    The scheme is one parse_challenges/preferred_challenge can give (``bearer``, ``basic``),
    the parameters a small dict of lower-cased token names to printable strings.
    """
    if not isinstance(value, dict) or set(value) != {"scheme", "params"}:
        return False
    scheme, params = value["scheme"], value["params"]
    if not isinstance(scheme, str) or scheme not in _CHALLENGE_SCHEMES:
        return False
    if not isinstance(params, dict) or len(params) > MAX_CHALLENGE_PARAMS:
        return False
    return all(
        isinstance(name, str)
        and _PARAM_NAME.fullmatch(name) is not None
        and isinstance(text, str)
        and len(text) <= MAX_CHALLENGE_VALUE_CHARS
        and text.isprintable()
        for name, text in params.items()
    )


def _usable_expiry(value: object, now: float) -> TypeGuard[float]:
    """A finite number of seconds since the epoch, not absurdly far away (may be past)."""
    # Comparisons first: NaN fails them, infinity and huge JSON integers fail the upper bound
    # without the OverflowError float() would raise.
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 < value < now + MAX_TOKEN_LIFETIME
    )


def _host_field_ok(name: str, value: object) -> bool:
    if name == "scheme":
        return isinstance(value, str) and value in ("http", "https")
    if name == "challenge":
        return usable_challenge(value)
    return False


def _copy_host_field(name: str, value: Any) -> Any:
    if name == "challenge":
        return {"scheme": value["scheme"], "params": dict(value["params"])}
    return value


@record
class CacheStats(Record):
    """What the cache at ``path`` holds: content files, their bytes, tokens and tags."""

    path: Path
    entries: int
    bytes: int
    tokens: int
    tags: int


def _close_all(fds: dict[tuple[str, ...], int]) -> None:
    for fd in list(fds.values()):
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


#: What is pending: content by digest, a tag by (name, tag).
_Entry = str | tuple[str, str]


class _Claim:
    """An entry being written by one thread; ``done`` is held until the write is over."""

    __slots__ = ("done", "owner")

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.done = threading.Lock()
        self.done.acquire()


class _Writer:
    """A background writer thread's state. The thread holds no reference to its Cache while
    it sleeps: a cache never closed is still collected, which stops its writer."""

    __slots__ = ("stopped", "thread", "wake")

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.wake = True  # something may be pending that the thread has not looked at
        self.stopped = False


def _write_behind(ref: weakref.ref[Cache], cond: threading.Condition, writer: _Writer) -> None:
    """The background writer: write what is pending, sleep until more is, end when told."""
    while True:
        with cond:
            while not writer.wake and not writer.stopped:
                cond.wait()
            if writer.stopped:
                return
        cache = ref()
        if cache is None:
            return
        with contextlib.suppress(Exception):  # _drain gives up no entry; nothing ends us
            cache._drain(writer)
        del cache


def _finalize(
    dirs: dict[tuple[str, ...], int], cond: threading.Condition, writers: set[_Writer]
) -> None:
    """A cache collected: its writer (asleep: it holds no reference) ends, its fds close."""
    with cond:
        for writer in writers:
            writer.stopped = True
        writers.clear()
        cond.notify_all()
    _close_all(dirs)


def _held_here(lock: object) -> bool:
    """True if this thread holds RLock ``lock`` (a signal handler interrupted it inside)."""
    is_owned = getattr(lock, "_is_owned", None)
    return bool(is_owned()) if is_owned is not None else False


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
        self._euid = os.geteuid() if hasattr(os, "geteuid") else -1
        # Bytes of content on disk: counted by one directory scan at the first write of a
        # process, then kept up to date, so a batch of hundreds of writes scans once.
        self._total: int | None = None
        # Checked directories, open for the life of this object (relative path -> fd): every
        # file operation is relative to one of them. Refused ones are logged once.
        self._dirs: dict[tuple[str, ...], int] = {}
        self._refused: set[tuple[str, ...]] = set()
        # Directories found missing by a read (relative path -> time.monotonic() of the look).
        self._absent: dict[tuple[str, ...], float] = {}
        self._dirs_lock = threading.RLock()
        # Write-behind: what a run learns is queued (reads see it) and written by a background
        # thread (see _write_behind) while the worker threads wait on the network; flush()
        # writes what is left. Each entry being written is claimed by its writer (_claims),
        # so no other thread writes it too. Re-entrant: flush() may run in a signal handler
        # on a thread that holds it.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._flushing = threading.Lock()
        self._pending_content: dict[str, tuple[bytes, str | None]] = {}
        self._pending_tags: dict[tuple[str, str], str] = {}
        self._pending_bytes = 0
        self._claims: dict[_Entry, _Claim] = {}
        self._writer: _Writer | None = None
        self._writers: set[_Writer] = set()  # running ones: stopped when this is collected
        self._no_writer = False  # no thread could be started: flush() writes everything
        self._finalizer = weakref.finalize(self, _finalize, self._dirs, self._cond, self._writers)
        # Not at exit: a writer may still be writing then (the process's end closes the fds).
        self._finalizer.atexit = False
        self._evicting = threading.Lock()
        # Temp file names: unique per process and object, no random bytes per file.
        self._tmp_tag = os.urandom(6).hex()
        self._tmp_seq = itertools.count()
        # Content read (and verified) from disk in this run, kept for the run's other
        # references: a batch of many tags of few images reads each file once.
        self._seen: dict[str, tuple[bytes, str | None]] = {}
        self._seen_blobs: dict[str, bytes] = {}  # config blobs (get_content)
        self._seen_bytes = 0
        self._read_locks = tuple(threading.Lock() for _ in range(_READ_STRIPES))
        # Digests whose content this process found (or put) on disk, so has_content does not
        # stat them again; dropped when this process removes the file. (Another process may
        # evict it meanwhile, as it may between any stat and read: then a read misses.)
        self._stored: set[str] = set()
        # Digests whose content a read found missing in this run: written without a stat
        # first (should another process have stored it meanwhile, the same bytes replace it).
        self._missing: set[str] = set()
        # Host entries read or written in this run (validated; {} for none).
        self._hosts: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        """Write what is pending and stop the background writer, then close the directories
        this object holds open (also done when it is garbage collected). Only when no other
        thread uses the cache any more. Waits at most :data:`FLUSH_WAIT` for an entry the
        writer is writing; should it still be writing then, its directories stay open."""
        deadline = time.monotonic() + FLUSH_WAIT
        writer = self._stop_writer()
        self._flush_until(deadline)
        if not self._ended(writer, deadline):
            return
        with self._dirs_lock:
            _close_all(self._dirs)
            self._refused.clear()

    # ------------------------------------------------------------------ content

    def _content_limit(self, limit: int | None = None) -> int:
        return min(MAX_CONTENT_BYTES if limit is None else limit, self.max_bytes)

    def has_content(self, digest: str) -> bool:
        if (
            digest in self._pending_content
            or digest in self._seen
            or digest in self._seen_blobs
            or digest in self._stored
        ):
            return True
        return self._is_stored(digest)

    def get_content(self, digest: str, *, what: str, limit: int | None = None) -> bytes | None:
        """The content named ``digest``, verified, if cached and at most ``limit`` bytes
        (default :data:`MAX_CONTENT_BYTES`)."""
        pending = self._pending_content.get(digest)
        data = pending[0] if pending is not None else self._seen_blobs.get(digest)
        if data is None:
            # Threads wanting the same content at once: one reads and verifies it, the others
            # wait for it and take it from memory (a batch of tags of one image starts together).
            with self._read_locks[hash(digest) % _READ_STRIPES]:
                data = self._seen_blobs.get(digest)
                if data is None:
                    data = self._read_content(digest, what, limit)
                    if data is not None:
                        self._remember(self._seen_blobs, digest, data, len(data))
                    return data
        if len(data) > self._content_limit(limit):
            return None
        if self._log is not None:
            self._debug(f"cache hit: {what} {digest} ({len(data)} bytes, this run)")
        return data

    def _remember(self, seen: dict[str, Any], digest: str, value: object, size: int) -> None:
        """Keep what was read for the run's other references, within :data:`PENDING_LIMIT`."""
        with self._lock:
            if digest not in seen and self._seen_bytes + size <= PENDING_LIMIT:
                seen[digest] = value
                self._seen_bytes += size

    def _read_content(self, digest: str, what: str, limit: int | None) -> bytes | None:
        if not is_valid_digest(digest):
            return None
        algorithm, _, name = digest.partition(":")
        where = ("content", algorithm)
        data = self._read(where, name, self._content_limit(limit), touch=True, missing=digest)
        if data is None:
            return None
        if compute_digest(data, algorithm) != digest:
            self._remove(where, name, "is corrupted")
            return None
        self._known_stored(digest)
        if self._log is not None:
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
                self._wake_writer()

    def _queue(self, digest: str, data: bytes, content_type: str | None) -> None:
        if digest in self._pending_content or digest in self._stored:
            return  # queued already, or on disk (found or written by this process)
        if not is_valid_digest(digest) or len(data) > self._content_limit():
            return
        if compute_digest(data, digest.split(":", 1)[0]) != digest:
            return  # never store what does not match its name (checked here only)
        with self._lock:
            if digest in self._pending_content:
                return
            if self._pending_bytes and self._pending_bytes + len(data) > 2 * PENDING_LIMIT:
                # The thread flushing beyond the limit (below) is behind as well, and the
                # others go on queueing: past twice the limit content is not cached (a
                # miss), so memory stays bounded however far the writes fall behind.
                return
            self._pending_content[digest] = (data, content_type)
            self._pending_bytes += len(data)
            too_much = self._pending_bytes > PENDING_LIMIT
            self._wake_writer()
        # Memory stays bounded should the writer fall behind: one queueing thread writes
        # too; the others go on.
        if too_much and self._flushing.acquire(blocking=False):
            try:
                self.flush()
            finally:
                self._flushing.release()

    # ------------------------------------------------------------------ writing behind

    def _wake_writer(self) -> None:
        """Something was queued (lock held): wake the writer, or start it the first time."""
        writer = self._writer
        if writer is None:
            if self._no_writer:
                return
            writer = _Writer()
            thread = threading.Thread(
                target=_write_behind,
                args=(weakref.ref(self), self._cond, writer),
                name="imginspect-cache-writer",
                daemon=True,  # never keeps the process alive
            )
            try:
                thread.start()
            except RuntimeError:  # at interpreter shutdown, or out of threads
                self._no_writer = True
                return
            writer.thread = thread
            self._writer = writer
            self._writers.add(writer)
            return  # it starts with a look at what is pending
        if not writer.wake:  # else it looks again anyway before it sleeps
            writer.wake = True
            self._cond.notify()

    def _stop_writer(self) -> _Writer | None:
        """Tell the writer to stop after the entry it is writing; returns it (or None)."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.stopped = True
                self._writers.discard(writer)
                self._cond.notify_all()
            return writer

    @staticmethod
    def _ended(writer: _Writer | None, deadline: float) -> bool:
        """Wait (until ``deadline``) for a stopped writer's thread to end."""
        if writer is None or writer.thread is None:
            return True
        writer.thread.join(max(0.0, deadline - time.monotonic()))
        return not writer.thread.is_alive()

    def _drain(self, writer: _Writer) -> None:
        """The writer's work: write what is pending until nothing is left to take."""
        while not writer.stopped:
            with self._lock:
                writer.wake = False  # what is queued from now on wakes it again
                claims = self._claims
                pending: list[_Entry] = [*self._pending_content, *self._pending_tags]
                entries = [entry for entry in pending if entry not in claims]
            if not entries:
                return
            for entry in entries:
                if writer.stopped:
                    return
                self._write_pending(entry)

    def flush(self) -> None:
        """Write what this run learnt; called when the run ends (Inspector.close).

        Safe to call at any time, from any thread and from a signal handler (also while
        another flush is under way): idempotent, never raises (only a BaseException a signal
        handler raises, such as KeyboardInterrupt, passes through). What is pending stays
        visible to reads, and pending, until it is written: a flush cut short by such an
        exception is completed by the next call. An entry another thread (the background
        writer) is writing is not written again: flush waits for it, at most
        :data:`FLUSH_WAIT` (not in a signal handler that interrupted this thread inside the
        cache: what it holds may be what that write needs).
        """
        self._flush_until()

    def _flush_until(self, *deadline: float) -> None:
        try:
            self._flush(*deadline)
        except Exception as exc:  # the cache can only make things faster
            self._debug(f"cache: flush failed: {exc!r}")

    def _flush(self, deadline: float | None = None) -> None:
        """Write what is pending; wait for the others' entries until ``deadline``
        (``time.monotonic()``; default: :data:`FLUSH_WAIT` from now)."""
        if deadline is None:
            deadline = time.monotonic() + FLUSH_WAIT
        with self._lock:
            entries: list[_Entry] = [*self._pending_content, *self._pending_tags]
        others: list[_Claim] = []
        for entry in entries:
            self._write_pending(entry, others)
        if _held_here(self._lock) or _held_here(self._dirs_lock):
            return
        waited: set[_Claim] = set()
        while others:
            for claim in others:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not claim.done.acquire(timeout=remaining):
                    return  # still writing: it completes on its own unless the process ends
                claim.done.release()
            waited.update(others)
            # What was given back unwritten (a flush cut short), or a tag moved meanwhile:
            # written here, or waited for again when another thread (the writer, going on)
            # has taken it meanwhile. Not returning then: the process may end right after.
            # A claim waited for already is not: a signal cut its owner's _finish short.
            others = []
            for entry in entries:
                self._write_pending(entry, others)
            others = [claim for claim in others if claim not in waited]

    def _write_pending(self, entry: _Entry, others: list[_Claim] | None = None) -> None:
        """Write pending ``entry``, unless it was written or another call is writing it
        (then its claim is added to ``others``; not a claim of this thread's: a flush that
        a signal handler's flush interrupted, which goes on when the handler returns)."""
        claim: _Claim | None = None
        content: tuple[bytes, str | None] | None = None
        digest: str | None = None
        written = False
        try:
            with self._lock:
                taken = self._claims.get(entry)
                if taken is not None:
                    if others is not None and taken.owner != threading.get_ident():
                        others.append(taken)
                    return
                if isinstance(entry, str):
                    content = self._pending_content.get(entry)
                else:
                    digest = self._pending_tags.get(entry)
                if content is None and digest is None:
                    return  # written meanwhile
                claim = _Claim()
                self._claims[entry] = claim
            try:
                if isinstance(entry, str):
                    if content is not None:
                        self._store(entry, *content)
                elif digest is not None:
                    self._write(("tags",), _key(*entry), digest.encode())
            except Exception as exc:  # the cache can only make things faster: a miss
                self._debug(f"cache: cannot write {entry}: {exc!r}")
            written = True
        finally:
            if claim is not None:
                # Released once the entry is finished (no longer claimed; no longer pending,
                # or pending again with a moved tag's digest): a flush woken by it then finds
                # the entry as it is, never this claim still in place. (_finish takes only
                # self._lock, and _flush never waits in a thread holding it.)
                try:
                    self._finish(entry, content, digest, written)
                finally:
                    claim.done.release()

    def _finish(
        self,
        entry: _Entry,
        content: tuple[bytes, str | None] | None,
        digest: str | None,
        written: bool,
    ) -> None:
        """The write of ``entry`` is over: it is no longer pending, unless it was cut short
        (by a signal: pending still, for the next flush) or a tag moved meanwhile."""
        with self._lock:
            self._claims.pop(entry, None)
            if not written:
                if self._writer is not None:
                    self._writer.wake = True
                    self._cond.notify()
            elif isinstance(entry, str):
                if content is not None and entry in self._pending_content:
                    del self._pending_content[entry]
                    self._pending_bytes -= len(content[0])
            elif self._pending_tags.get(entry) == digest:
                del self._pending_tags[entry]

    def _store(self, digest: str, data: bytes, content_type: str | None) -> None:
        """Write content as queued (name, size and digest checked by _queue) with a
        manifest's Content-Type first, unless it is stored already."""
        if digest in self._missing:
            with self._lock:
                self._missing.discard(digest)
        elif self._is_stored(digest):
            return  # content is immutable: what is there under this name is this content
        algorithm, _, name = digest.partition(":")
        where = ("content", algorithm)
        if content_type is not None and _SAFE_TYPE.fullmatch(content_type):
            self._write(where, name + ".type", content_type.encode())
        if not self._write(where, name, data):
            return
        self._known_stored(digest)
        with self._lock:
            total = self._total = None if self._total is None else self._total + len(data)
        if total is None:
            total = self._scan()[1]  # once per process: counts what was just written
            with self._lock:
                self._total = total
        if total > self.max_bytes and self._evicting.acquire(blocking=False):
            try:
                self._evict()
            finally:
                self._evicting.release()

    def _known_stored(self, digest: str) -> None:
        with self._lock:
            if len(self._stored) >= MAX_KNOWN_STORED:
                self._stored.clear()
            self._stored.add(digest)

    def _known_missing(self, digest: str) -> None:
        with self._lock:
            if len(self._missing) >= MAX_KNOWN_STORED:
                self._missing.clear()
            self._missing.add(digest)

    def _is_stored(self, digest: str) -> bool:
        """A regular file of ours, within the bound, is under this digest's name."""
        if digest in self._stored:
            return True
        if not is_valid_digest(digest):
            return False
        algorithm, _, name = digest.partition(":")
        dir_fd = self._dir(("content", algorithm))
        if dir_fd is None:
            return False
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return False
        if self._file_problem(st, self._content_limit()) is not None:
            return False
        self._known_stored(digest)
        return True

    def get_manifest(self, digest: str) -> tuple[bytes, str | None] | None:
        known = self._pending_content.get(digest) or self._seen.get(digest)
        if known is None:
            # Threads wanting the same manifest at once: one reads it, the others wait for
            # it and take it from memory (a batch of tags of one image starts together).
            with self._read_locks[hash(digest) % _READ_STRIPES]:
                known = self._seen.get(digest)
                if known is None:
                    return self._read_manifest(digest)
        if self._log is not None:
            self._debug(f"cache hit: manifest {digest} ({len(known[0])} bytes, this run)")
        return known

    def _read_manifest(self, digest: str) -> tuple[bytes, str | None] | None:
        data = self._read_content(digest, "manifest", MAX_MANIFEST_BYTES)
        if data is None:
            return None
        algorithm, _, name = digest.partition(":")
        content_type = None
        raw = self._read(("content", algorithm), name + ".type", MAX_TYPE_BYTES)
        if raw is not None:
            text = raw.decode("ascii", errors="replace").strip()
            if _SAFE_TYPE.fullmatch(text):
                content_type = text
            else:
                self._remove(("content", algorithm), name + ".type", "is not a media type")
        self._remember(self._seen, digest, (data, content_type), len(data))
        return data, content_type

    # ------------------------------------------------------------------ tags

    def get_tag(self, name: str, tag: str) -> str | None:
        pending = self._pending_tags.get((name, tag))
        if pending is not None:
            return pending
        key = _key(name, tag)
        raw = self._read(("tags",), key, MAX_TAG_BYTES)
        if raw is None:
            return None
        digest = raw.decode("ascii", errors="replace").strip()
        if not is_valid_digest(digest):
            self._remove(("tags",), key, "is not a digest")
            return None
        return digest

    # ------------------------------------------------------------------ hosts and tokens

    def get_host(self, host: str) -> dict[str, Any] | None:
        """What is known about ``host``: ``scheme`` ("http" or "https") and ``challenge``
        (see :func:`usable_challenge`), each only if present and valid."""
        info = self._hosts.get(host)
        if info is None:
            info = self._load_host(host)
            self._hosts[host] = info
        return dict(info) if info else None

    def _load_host(self, host: str) -> dict[str, Any]:
        name = f"{_key(host)}.json"
        data = self._read_json(("hosts",), name)
        if data is None:
            return {}
        if not all(_host_field_ok(field, value) for field, value in data.items()):
            self._remove(("hosts",), name, "holds an unusable entry")
            return {}
        return {field: _copy_host_field(field, value) for field, value in data.items()}

    def update_host(self, host: str, **fields: Any) -> None:
        """Merge ``fields`` into what is known about ``host`` (scheme, challenge); a field
        that would not be accepted when read back is not stored."""
        info = self.get_host(host) or {}
        merged = {
            field: _copy_host_field(field, value)
            for field, value in {**info, **fields}.items()
            if _host_field_ok(field, value)
        }
        if merged != info:
            self._hosts[host] = merged
            self._write(("hosts",), f"{_key(host)}.json", json.dumps(merged).encode())

    def get_token(self, *key: str) -> tuple[str, float] | None:
        """A cached token and its wall-clock expiry, if usable and still valid."""
        name = f"{_key(*key)}.json"
        data = self._read_json(("tokens",), name)
        if data is None:
            return None
        token, expires = data.get("token"), data.get("expires_at")
        now = time.time()
        if not usable_token(token) or not _usable_expiry(expires, now):
            self._remove(("tokens",), name, "holds an unusable token")
            return None
        if expires <= now:
            return None
        return token, float(expires)

    def put_token(self, *key: str, token: str, expires_at: float) -> None:
        if not usable_token(token) or not _usable_expiry(expires_at, time.time()):
            return
        payload = json.dumps({"token": token, "expires_at": expires_at}).encode()
        self._write(("tokens",), f"{_key(*key)}.json", payload)

    # ------------------------------------------------------------------ maintenance

    def stats(self) -> CacheStats:
        files = self._content_files()
        return CacheStats(
            self.root,
            len(files),
            sum(size for _mtime, size, _where, _name in files),
            tokens=len(self._files(("tokens",))),
            tags=len(self._files(("tags",))),
        )

    def clear(self) -> None:
        """Remove everything under the cache's four directories. Links are removed, never
        followed; a root that is not ours is left alone. Not while other threads use it."""
        root_fd = self._dir(())
        if root_fd is None:
            return
        # The writer's directories are closed: it stops first (what is pending stays so).
        writer = self._stop_writer()
        ended = self._ended(writer, time.monotonic() + FLUSH_WAIT)
        with self._dirs_lock:
            for where in [w for w in self._dirs if w]:
                fd = self._dirs.pop(where)
                if ended:  # else left open: the writer may still use it
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._refused = {w for w in self._refused if not w}
        for sub in _SUBDIRS:
            _remove_tree(root_fd, sub, 0)
        self._total = None
        self._hosts.clear()
        with self._lock:
            self._stored.clear()
            self._missing.clear()
            if self._pending_content or self._pending_tags:
                self._wake_writer()  # a new writer

    def _files(
        self, where: tuple[str, ...], *, sweep: bool = False
    ) -> list[tuple[str, os.stat_result]]:
        """The regular files of ours in directory ``where`` (no temp files, no links).
        ``sweep``: remove temp files older than :data:`STALE_TMP_AGE` (writes cut off)."""
        dir_fd = self._dir(where)
        if dir_fd is None:
            return []
        found = []
        stale = time.time() - STALE_TMP_AGE
        for name, st in _list_dir(dir_fd):
            if name.startswith(_TMP_PREFIX):
                if sweep and st.st_mtime < stale:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=dir_fd)  # the name: a link is not followed
            elif self._file_problem(st, None) is None:
                found.append((name, st))
        return found

    def _content_files(
        self, *, sweep: bool = False
    ) -> list[tuple[float, int, tuple[str, ...], str]]:
        found: list[tuple[float, int, tuple[str, ...], str]] = []
        for algorithm in _ALGORITHMS:
            where = ("content", algorithm)
            for name, st in self._files(where, sweep=sweep):
                if not name.endswith(".type"):
                    found.append((st.st_mtime, st.st_size, where, name))
        return found

    def _scan(self) -> tuple[list[tuple[float, int, tuple[str, ...], str]], int]:
        """The content files and their total size; stale temp files are removed."""
        files = self._content_files(sweep=True)
        return files, sum(size for _mtime, size, _where, _name in files)

    def _evict(self) -> None:
        """Delete the least recently used content until 90% of the bound is left, and
        stale temp files everywhere."""
        files, total = self._scan()
        if total > self.max_bytes:
            total = self._delete_oldest(files, total)
        with self._lock:
            self._total = total
        for sub in ("tags", "hosts", "tokens"):
            self._files((sub,), sweep=True)

    def _delete_oldest(
        self, files: list[tuple[float, int, tuple[str, ...], str]], total: int
    ) -> int:
        for _mtime, size, where, name in sorted(files):
            dir_fd = self._dir(where)
            if dir_fd is None:
                continue
            self._forget_stored(where, name)
            with contextlib.suppress(OSError):
                # By name in the checked directory: a link swapped in is itself removed.
                os.unlink(name, dir_fd=dir_fd)
                total -= size
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name + ".type", dir_fd=dir_fd)
            if total <= self.max_bytes * 0.9:  # evict a little more, so this runs rarely
                break
        return total

    # ------------------------------------------------------------------ plumbing

    def _show(self, where: tuple[str, ...], name: str | None = None) -> str:
        return str(self.root.joinpath(*where, *([name] if name else [])))

    def _dir(self, where: tuple[str, ...], *, create: bool = False) -> int | None:
        """The open, checked directory ``where`` (relative to the root), or None."""
        fd = self._dirs.get(where)
        if fd is not None:
            return fd
        if not create:
            looked = self._absent.get(where)
            if looked is not None and time.monotonic() - looked < ABSENT_RECHECK:
                return None
        with self._dirs_lock:
            fd = self._open_dir(where, create)
            if fd is None:
                if not create:
                    self._absent[where] = time.monotonic()
            else:
                self._absent.pop(where, None)
            return fd

    def _open_dir(self, where: tuple[str, ...], create: bool) -> int | None:
        fd = self._dirs.get(where)
        if fd is not None or where in self._refused:
            return fd
        if not where:
            fd = self._open_root(create)
        else:
            parent = self._open_dir(where[:-1], create)
            if parent is None:
                return None
            fd = self._open_subdir(parent, where, create)
        if fd is None:
            return None
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            return None
        if not stat.S_ISDIR(st.st_mode):
            problem = "is not a directory"
        elif st.st_uid != self._euid:
            problem = "is not owned by you"
        elif where and st.st_mode & 0o022:
            problem = "is writable by other users"
        else:
            self._dirs[where] = fd
            return fd
        os.close(fd)
        self._refused.add(where)
        off = "caching is off" if not where else "that part of the cache is not used"
        self._debug(f"cache: {self._show(where)} {problem}: {off}")
        return None

    def _open_root(self, create: bool) -> int | None:
        if not _SUPPORTED:
            return None
        try:
            # The root's own path may go through links: it is the user's choice.
            return os.open(self.root, _ROOT_FLAGS)
        except FileNotFoundError:
            if not create:
                return None
        except OSError as exc:
            self._refused.add(())
            self._debug(f"cache: cannot open {self.root}: {exc.strerror or exc}: caching is off")
            return None
        try:
            # Created private; an existing directory is never chmod'ed.
            self.root.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            self._refused.add(())
            self._debug(f"cache: cannot create {self.root}: {exc.strerror or exc}: caching is off")
            return None
        try:
            return os.open(self.root, _ROOT_FLAGS)
        except OSError:
            return None

    def _open_subdir(self, parent: int, where: tuple[str, ...], create: bool) -> int | None:
        name = where[-1]
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
        except OSError as exc:
            # ELOOP: a symlink; ENOTDIR: a file or FIFO. Never followed; when a directory
            # is needed, the name itself is removed (not what a link points to).
            if not create or exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                return None
            try:
                os.unlink(name, dir_fd=parent)
            except OSError:
                return None
            self._debug(f"cache: {self._show(where)} was not a directory: removed")
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            pass
        except OSError as exc:
            self._debug(f"cache: cannot create {self._show(where)}: {exc.strerror or exc}")
            return None
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError:
            return None

    def _file_problem(self, st: os.stat_result, limit: int | None) -> str | None:
        if not stat.S_ISREG(st.st_mode):
            return "is not a regular file"
        if st.st_uid != self._euid:
            return "is not owned by you"
        if limit is not None and st.st_size > limit:
            return f"is larger than {limit} bytes"
        return None

    def _read(
        self,
        where: tuple[str, ...],
        name: str,
        limit: int,
        *,
        touch: bool = False,
        missing: str | None = None,
    ) -> bytes | None:
        """The bytes of regular file ``name`` in ``where`` if it is ours and at most
        ``limit`` bytes; never follows a link nor waits on a FIFO. A content file found
        missing is remembered (``missing``: its digest), so that writing it needs no stat."""
        dir_fd = self._dir(where)
        if dir_fd is None:
            if missing is not None:
                self._known_missing(missing)
            return None
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            if missing is not None:
                self._known_missing(missing)
            return None
        except OSError as exc:
            # ELOOP: a symlink; ENXIO: a socket.
            if exc.errno in (errno.ELOOP, errno.ENXIO):
                self._remove(where, name, "is not a regular file")
            return None
        data: bytes | None = None
        try:
            st = os.fstat(fd)
            problem = self._file_problem(st, limit)
            if problem is None:
                data = _read_at_most(fd, st.st_size, limit)
                if data is None:
                    problem = f"is larger than {limit} bytes"
                elif touch and not _recently_used(st.st_mtime):
                    with contextlib.suppress(OSError):
                        os.utime(fd)  # recently used: evicted last
        except OSError:
            return None
        finally:
            os.close(fd)
        if problem is not None:
            self._remove(where, name, problem)
            return None
        return data

    def _remove(self, where: tuple[str, ...], name: str, problem: str) -> None:
        """Drop an entry that is not what it should be (a miss). Unlinking a name in a
        checked directory never touches what a link points to."""
        self._debug(f"cache: {self._show(where, name)} {problem}: removed")
        self._forget_stored(where, name)
        dir_fd = self._dir(where)
        if dir_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)

    def _forget_stored(self, where: tuple[str, ...], name: str) -> None:
        if len(where) == 2 and where[0] == "content":
            with self._lock:
                self._stored.discard(f"{where[1]}:{name}")

    def _write(self, where: tuple[str, ...], name: str, data: bytes) -> bool:
        dir_fd = self._dir(where, create=True)
        if dir_fd is None:
            return False
        # Unique without a random number per file: O_EXCL refuses a name that exists.
        tmp = f"{_TMP_PREFIX}{os.getpid()}-{self._tmp_tag}-{next(self._tmp_seq)}"
        try:
            # A new file (O_EXCL, never a link): 0600, private from the first byte.
            fd = os.open(tmp, _NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
        except OSError as exc:
            self._debug(f"cache: cannot write {self._show(where, name)}: {exc.strerror or exc}")
            return False
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            # Replaces whatever has the name (a link included) without following it.
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException as exc:  # also SIGTERM unwinding: no temp file left behind
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            if not isinstance(exc, OSError):
                raise
            self._debug(f"cache: cannot write {self._show(where, name)}: {exc.strerror or exc}")
            return False
        return True

    def _read_json(self, where: tuple[str, ...], name: str) -> dict[str, Any] | None:
        raw = self._read(where, name, MAX_JSON_BYTES)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            self._remove(where, name, "is not a JSON object")
            return None
        return data

    def _debug(self, line: str) -> None:
        if self._log is not None:
            with contextlib.suppress(Exception):
                self._log(line)


def _recently_used(mtime: float) -> bool:
    """Marked used within :data:`TOUCH_INTERVAL` (a time in the future is not: it is reset)."""
    now = time.time()
    return now - TOUCH_INTERVAL < mtime <= now + 60


def _read_at_most(fd: int, expected: int, limit: int) -> bytes | None:
    """Read ``fd`` to its end; None if that is more than ``limit`` bytes. ``expected`` is
    the size fstat gave (at most ``limit``): one read normally does."""
    chunks: list[bytes] = []
    total = 0
    size = expected + 1
    while True:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None
        if total == expected and len(chunk) < size:
            break  # a short read at the size fstat gave: the end of a regular file
        size = min(64 * 1024, limit + 1 - total)
    return b"".join(chunks)


def _list_dir(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """Names and lstat results in an open directory (links are not followed)."""
    try:
        # A descriptor of its own: scandir shares the offset of the descriptor it is given.
        fd = os.open(".", _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return []
    found = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    found.append((entry.name, entry.stat(follow_symlinks=False)))
    except OSError:
        pass
    finally:
        os.close(fd)
    return found


def _remove_tree(parent_fd: int, name: str, depth: int) -> None:
    """Remove ``name`` in ``parent_fd``: a directory with what it holds, anything else (a
    link included) by unlinking the name. Never follows a link."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=parent_fd)
        return
    try:
        if depth < _MAX_CLEAR_DEPTH:
            with os.scandir(fd) as entries:
                listed = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
            for entry, is_dir in listed:
                if is_dir:
                    _remove_tree(fd, entry, depth + 1)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry, dir_fd=fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=parent_fd)
