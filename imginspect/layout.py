"""Offline sources: OCI image layouts (``oci:``) and their tar form (``oci-archive:``).

A build can be checked before it is pushed: ``docker buildx build --output
type=oci,dest=app.tar`` (or ``type=oci,tar=false,dest=DIR``) writes an OCI image layout, and
``imginspect oci-archive:app.tar`` / ``imginspect oci:DIR`` read it with the same outputs and
the same checks as a registry: every manifest and blob is verified against its digest, and
the same size limits apply.

Targets are parsed by :func:`imginspect.target.parse_target` (``oci:PATH[:IMAGE][@DIGEST]``,
``oci-archive:FILE[:IMAGE][@DIGEST]``). IMAGE selects the first index.json entry whose
``org.opencontainers.image.ref.name`` equals it; failing that, the entry whose
``io.containerd.image.name`` equals it or, for a plain tag, whose ref.name or containerd
name is a full reference ending in ``:IMAGE`` (ambiguity there is an error). No IMAGE and no
digest: index.json's only entry if it has exactly one (skopeo), otherwise index.json itself,
reported as the image index (its exact bytes, digest = their sha256).

:class:`LayoutSource` is a :class:`~imginspect.sources.Source`, like the registry client;
this module imports neither the registry client nor httpx.

Errors: a missing directory, archive, tag, manifest or blob is :class:`NotFoundError` (exit 4;
a missing tag lists the tags there are); a path that exists but is not an OCI layout (no or
bad ``oci-layout``, no ``index.json``, not a tar, unsafe member paths) is
:class:`MalformedDocumentError` (exit 1: the content is wrong, not the command line); bytes
that do not hash to their digest are :class:`DigestMismatchError` (exit 1); a malformed
reference is :class:`InvalidReferenceError` (exit 2).

Tar archives (plain, or gzip/bzip2/xz-compressed) are read in place, member by member, never
extracted; absolute and ``..`` member paths are refused, and so are sparse members and
headers beyond tarfile's safe use (see :class:`_BoundedTarInfo`). A compressed stream cannot
seek back: the one pass that scans it keeps the small JSON members (what is read) in memory,
and anything else is read by decompressing again, a bounded number of times. In a directory,
symbolic links are followed only within the layout, and nothing that is not a regular file
is opened.
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import sys
import tarfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Protocol

from imginspect import mediatypes as mt
from imginspect._record import Record, record
from imginspect.digest import algorithm_of, compute_digest, is_valid_digest
from imginspect.errors import (
    DigestMismatchError,
    ImginspectError,
    InvalidReferenceError,
    MalformedDocumentError,
    NotFoundError,
    TooLargeError,
    UsageError,
)
from imginspect.files import read_bounded
from imginspect.manifest import Descriptor, Index, decode_document
from imginspect.reference import is_valid_tag
from imginspect.sources import (
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    FetchedManifest,
    ManifestHead,
    ReferrersPage,
)
from imginspect.target import DEFAULT_LAYOUT_TARGET, LayoutTarget, valid_image_name

__all__ = ["LayoutSource", "open_layout"]

ANNOTATION_REF_NAME: Final = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME: Final = "io.containerd.image.name"

#: The oci-layout file is one tiny JSON object.
MAX_OCI_LAYOUT_BYTES: Final = 64 * 1024
#: index.json is an image index: the manifest bound applies.
MAX_INDEX_JSON_BYTES: Final = MAX_MANIFEST_BYTES
#: A bound on the members of a tar archive (each blob is one), against pathological input.
MAX_ARCHIVE_MEMBERS: Final = 100_000
#: The pax and GNU long name/link headers before one member, in all (Go's archive/tar, which
#: skopeo, crane and regctl use, allows 1 MiB per header): tarfile reads each whole into memory.
MAX_TAR_HEADER_BYTES: Final = 1024 * 1024
#: Global pax headers apply to every later member: at most this many keys (and
#: MAX_TAR_HEADER_BYTES of text).
MAX_GLOBAL_PAX_KEYS: Final = 64
#: Compressed archives: the small JSON members the scan keeps, in all.
MAX_ARCHIVE_CACHE_BYTES: Final = 64 * 1024 * 1024
#: Compressed archives: reads that decompress again from the start, at most.
MAX_ARCHIVE_REWINDS: Final = 8
#: How many tags a "tag not found" hint lists.
MAX_LISTED_TAGS: Final = 20

_SUPPORTED_LAYOUT_MAJOR: Final = "1"

#: What tarfile and the decompressors raise for bytes that are not a (well-formed) archive.
#: OSErrors without an errno (gzip.BadGzipFile) are such errors too (see _ArchiveStore).
_ARCHIVE_ERRORS: Final = (tarfile.TarError, EOFError, ValueError, zlib.error)

_LAYOUT_HINT: Final = (
    "an OCI image layout holds oci-layout, index.json and blobs/<alg>/<hex>, as "
    "'docker buildx build --output type=oci,tar=false,dest=DIR' or 'skopeo copy ... oci:DIR' "
    "write it"
)


# ---------------------------------------------------------------------------------- storage


class _Store(Protocol):
    """Read access to the files of a layout, by slash-separated relative name."""

    def read(self, name: str, *, max_bytes: int, what: str, subject: str) -> bytes: ...

    def close(self) -> None: ...


class _DirectoryStore:
    def __init__(self, root: str) -> None:
        self._root = root
        # Symbolic links are followed only within the layout (debuerreotype links each blob
        # to a named file beside it). One that led out of it made imginspect read any file
        # the layout named, and a digest mismatch printed that file's sha256.
        self._real_root = os.path.realpath(root)

    def read(self, name: str, *, max_bytes: int, what: str, subject: str) -> bytes:
        path = os.path.realpath(os.path.join(self._root, *name.split("/")))
        if os.path.commonpath((self._real_root, path)) != self._real_root:
            raise MalformedDocumentError(
                f"{what} {subject}: {name} is a symbolic link that leads outside the layout",
                hint="imginspect follows links within the layout only",
            )
        try:
            # Not a regular file: refused before it is opened (a FIFO, a device), and a
            # regular file is read without blocking, chunk by chunk, to max_bytes.
            return read_bounded(Path(path), max_bytes)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"{what} not found: {subject} (no file {name})") from None
        except OSError as exc:
            if exc.errno == errno.EFBIG:
                raise TooLargeError(
                    f"{what} of {subject} is larger than the {max_bytes} bytes accepted"
                ) from None
            if exc.errno in (errno.EISDIR, errno.EINVAL):
                raise MalformedDocumentError(
                    f"{what} {subject}: {name} is not a regular file"
                ) from None
            raise MalformedDocumentError(
                f"cannot read {what} {subject}: {exc.strerror or exc}"
            ) from None

    def close(self) -> None:
        pass


class _RefusedArchive(Exception):
    """Raised while tarfile reads a header. Not a TarError: tarfile.open would take that
    for "not this compression" and try the next one."""


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's TarInfo, bounded (tarfile calls ``_proc_member`` for each header, to be
    overridden for this). tarfile reads a GNU long name or a pax header whole, of the size
    it claims (a 3 GB claim in a sparse file was a MemoryError), and each such header reads
    the next one recursively (5000 in a row were a RecursionError). Sparse members, which no
    OCI tool writes, carry maps tarfile reads block by block, or number by number, for as
    long as they go on: kept in memory, and the old format's IndexError when the archive
    ends inside one was not mapped."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _SPECIAL_HEADERS:
            # tarfile.offset stays where this member's first header is until it is done.
            if self.offset + self.size - archive.offset > MAX_TAR_HEADER_BYTES:
                raise _RefusedArchive(
                    f"has more than {MAX_TAR_HEADER_BYTES} bytes of headers (pax, GNU long "
                    f"names) for one member, at offset {archive.offset}"
                )
        elif self.type == tarfile.GNUTYPE_SPARSE:  # before tarfile reads its map
            raise _RefusedArchive(f"has a sparse member, at offset {self.offset}")
        proc = super()._proc_member  # type: ignore[misc]
        result: tarfile.TarInfo = proc(archive)
        return result

    def _proc_gnusparse_10(self, next: object, pax_headers: object, archive: object) -> None:
        # The pax form's map (GNU.sparse.major=1), read from the member's data.
        raise _RefusedArchive(f"has a sparse member, at offset {self.offset}")


_SPECIAL_HEADERS: Final = frozenset(
    (
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    )
)


class _ArchiveStore:
    """Members of a tar file, read in place (one handle, reads serialized by a lock)."""

    def __init__(self, file: str, display: str) -> None:
        self._lock = threading.Lock()
        self._display = display
        try:
            self._tar = tarfile.open(  # noqa: SIM115 - open until close()
                file, mode="r:*", tarinfo=_BoundedTarInfo
            )
        except (_RefusedArchive, RecursionError) as exc:
            raise _refused(display, exc) from None
        except (*_ARCHIVE_ERRORS, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise MalformedDocumentError(
                    f"cannot read {display}: {exc.strerror or exc}"
                ) from None
            raise MalformedDocumentError(
                f"{display} is not a tar archive (plain, gzip, bzip2 or xz)", hint=_LAYOUT_HINT
            ) from None
        # tarfile imports lzma for xz archives only; its LZMAError (corrupt data after the
        # first header) is none of the others, and was a traceback.
        lzma = sys.modules.get("lzma")
        self._errors: tuple[type[Exception], ...] = (
            *_ARCHIVE_ERRORS,
            OSError,
            *((lzma.LZMAError,) if lzma is not None else ()),
        )
        # A compressed stream seeks back by decompressing again from its start: each read
        # of a member behind the last one did, which made a small archive of zeros followed
        # by many manifests take hours. The scan keeps what imginspect reads (small JSON
        # members) as it passes them, within a budget; other reads go back a bounded number
        # of times.
        self._compressed = not isinstance(self._tar.fileobj, io.BufferedReader)
        self._kept: dict[str, bytes] = {}
        self._rewinds = 0
        try:
            self._members = self._scan(display)
        except BaseException:
            self._tar.close()
            raise

    def _scan(self, display: str) -> dict[str, tarfile.TarInfo]:
        members: dict[str, tarfile.TarInfo] = {}
        count = 0
        kept_bytes = 0
        try:
            while True:
                info = self._tar.next()
                # tarfile keeps each member it read (for getmembers()): names of any length,
                # without bound. Only layout files are kept, in a fresh TarInfo of their own.
                del self._tar.members[:]  # type: ignore[attr-defined]
                if info is None:
                    break
                count += 1
                if count > MAX_ARCHIVE_MEMBERS:
                    raise MalformedDocumentError(
                        f"{display} has more than {MAX_ARCHIVE_MEMBERS} members"
                    )
                globals_ = self._tar.pax_headers
                if len(globals_) > MAX_GLOBAL_PAX_KEYS or (
                    sum(len(k) + len(v) for k, v in globals_.items()) > MAX_TAR_HEADER_BYTES
                ):
                    raise _RefusedArchive("has global pax headers beyond what is accepted")
                if info.sparse is not None:
                    raise _RefusedArchive(f"has a sparse member, at offset {info.offset}")
                name = _member_name(info.name, display)
                if not _is_layout_name(name):
                    continue
                kept = tarfile.TarInfo(name)
                kept.type, kept.size = info.type, info.size
                kept.offset, kept.offset_data = info.offset, info.offset_data
                # A later member of the same name replaces an earlier one, as in extraction.
                members[name] = kept
                self._kept.pop(name, None)
                if (
                    self._compressed
                    and kept.isreg()
                    and kept.size <= MAX_CONFIG_BYTES
                    and kept_bytes + kept.size <= MAX_ARCHIVE_CACHE_BYTES
                ):
                    data = self._json_member(kept)
                    if data is not None:
                        self._kept[name] = data
                        kept_bytes += len(data)
        except (_RefusedArchive, RecursionError) as exc:
            raise _refused(display, exc) from None
        except self._errors as exc:
            raise MalformedDocumentError(f"{display} is a corrupt tar archive: {exc}") from None
        return members

    def _json_member(self, info: tarfile.TarInfo) -> bytes | None:
        """The data of ``info`` if it is a JSON object (read forward: the scan is there)."""
        handle = self._tar.extractfile(info)
        if handle is None:  # pragma: no cover - regular members always have data
            return None
        with handle:
            if handle.read(1) != b"{":
                return None
            data = b"{" + handle.read(info.size - 1)
        return data if len(data) == info.size else None

    def read(self, name: str, *, max_bytes: int, what: str, subject: str) -> bytes:
        info = self._members.get(name)
        if info is None:
            raise NotFoundError(f"{what} not found: {subject} (no member {name})")
        if not info.isreg():
            raise MalformedDocumentError(
                f"{what} {subject}: archive member {name} is not a regular file"
            )
        _check_size(info.size, max_bytes, what, subject)
        kept = self._kept.get(name)
        if kept is not None:
            return kept
        with self._lock:
            if self._compressed and info.offset_data < self._tar.fileobj.tell():
                self._rewinds += 1
                if self._rewinds > MAX_ARCHIVE_REWINDS:
                    raise TooLargeError(
                        f"cannot read {what} {subject}: {self._display} would be decompressed "
                        f"from its start more than {MAX_ARCHIVE_REWINDS} times",
                        hint="decompress it first (gunzip, bunzip2, unxz) and read the tar",
                    )
            try:
                handle = self._tar.extractfile(info)
                if handle is None:  # pragma: no cover - regular members always have data
                    raise MalformedDocumentError(f"{what} {subject}: no data for member {name}")
                with handle:
                    # Not max_bytes + 1: a buffered read allocates what it is asked for
                    # up front (get_blob(max_bytes=2**40) was a MemoryError); a member
                    # never has more than its size.
                    data = handle.read(info.size)
            except self._errors as exc:
                raise MalformedDocumentError(
                    f"cannot read {what} {subject} from the archive: {exc}"
                ) from None
        _check_size(len(data), max_bytes, what, subject)
        if len(data) != info.size:
            raise MalformedDocumentError(
                f"{what} {subject}: archive member {name} is truncated "
                f"({len(data)} of {info.size} bytes)"
            )
        return data

    def close(self) -> None:
        with self._lock:
            self._tar.close()


_TAR_HINT: Final = (
    "OCI archives hold plain members; pax and GNU long-name headers are accepted up to "
    f"{MAX_TAR_HEADER_BYTES} bytes per member, sparse members are not"
)


def _refused(display: str, exc: Exception) -> MalformedDocumentError:
    if isinstance(exc, RecursionError):  # tarfile reads the headers of a member recursively
        return MalformedDocumentError(
            f"{display} has too many headers (pax, GNU long names) in a row", hint=_TAR_HINT
        )
    return MalformedDocumentError(f"{display} {exc}", hint=_TAR_HINT)


def _member_name(raw: str, display: str) -> str:
    """A member's name relative to the layout root (``./`` stripped); unsafe names refused."""
    if raw.startswith("/"):
        raise MalformedDocumentError(
            f"{display} has a member with an absolute path: {raw!r}",
            hint="refusing archives with absolute or '..' member paths",
        )
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise MalformedDocumentError(
            f"{display} has a member path leaving the archive: {raw!r}",
            hint="refusing archives with absolute or '..' member paths",
        )
    return "/".join(parts)


def _is_layout_name(name: str) -> bool:
    """A name a read can ask for: oci-layout, index.json, blobs/ALG/HEX of a valid digest."""
    if name in ("oci-layout", "index.json"):
        return True
    parts = name.split("/")
    return len(parts) == 3 and parts[0] == "blobs" and is_valid_digest(f"{parts[1]}:{parts[2]}")


def _check_size(size: int, max_bytes: int, what: str, subject: str) -> None:
    if size > max_bytes:
        raise TooLargeError(f"{what} of {subject} is larger than the {max_bytes} bytes accepted")


# ---------------------------------------------------------------------------------- the client


@record
class _Opened(Record):
    """An opened layout: its store and its top-level index, as read and parsed."""

    store: _Store
    index_raw: bytes
    index_digest: str
    index_media_type: str
    entries: tuple[Descriptor, ...]


class LayoutSource:
    """Reads one OCI layout (directory or tar): a :class:`~imginspect.sources.Source`.

    The layout is opened on first use, so errors (missing, not a layout) surface from the
    first call, per reference. Thread-safe. ``repository`` arguments are accepted for the
    interface's sake and ignored: a source serves exactly one layout. Call :meth:`close`
    (archives keep their file open).
    """

    #: local files: nothing to gain from the persistent cache
    remote = False

    def __init__(self, location: str, *, archive: bool) -> None:
        self.location = location
        self.archive = archive
        self.domain = f"{'oci-archive' if archive else 'oci'}:{location}"
        self._lock = threading.Lock()
        self._opened: _Opened | None = None
        self._closed = False

    def __enter__(self) -> LayoutSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._opened is not None:
                self._opened.store.close()
                self._opened = None

    # ------------------------------------------------------------------ public API

    def get_manifest(self, repository: str, target: str) -> FetchedManifest:
        """The manifest or index ``target`` names (IMAGE, digest or the default target),
        verified against its digest."""
        opened = self._open()
        if target == DEFAULT_LAYOUT_TARGET:
            if len(opened.entries) == 1:
                return self._fetch_entry(opened, opened.entries[0], self.domain)
            return self._index_json(opened)
        if is_valid_digest(target):
            if compute_digest(opened.index_raw, algorithm_of(target)) == target:
                return self._index_json(opened)
            listed = next((d for d in opened.entries if d.digest == target), None)
            if listed is not None:
                return self._fetch_entry(opened, listed, f"{self.domain}@{target}")
            raw = self._read_blob(opened, target, MAX_MANIFEST_BYTES, "manifest")
            return FetchedManifest(raw, _declared_media_type(raw), target, None)
        if not valid_image_name(target):
            raise InvalidReferenceError(
                f"{self.domain}: {target!r} is neither a valid image name (tag) nor a digest"
            )
        entry = self._find_image(opened, target)
        return self._fetch_entry(opened, entry, f"{self.domain}:{target}")

    def head_manifest(self, repository: str, target: str) -> ManifestHead | None:
        """Digest, media type and size of ``target`` (the bytes are read and verified:
        locally that costs nothing, and a broken layout is caught here too)."""
        fetched = self.get_manifest(repository, target)
        media_type = fetched.content_type or _declared_media_type(fetched.raw)
        return ManifestHead(fetched.digest, media_type, fetched.size)

    def get_blob(self, repository: str, digest: str, *, max_bytes: int, what: str) -> bytes:
        """The blob ``digest`` (at most ``max_bytes``), verified against its digest."""
        if not is_valid_digest(digest):
            raise MalformedDocumentError(f"invalid digest {digest!r} for {what}")
        opened = self._open()
        return self._read_blob(opened, digest, max_bytes, what)

    def tags(self) -> list[str]:
        """The IMAGE names index.json offers (ref.name, else containerd name), in order."""
        return _tags(self._open().entries)

    def list_tags(self, repository: str, *, limit: int) -> list[str]:
        """:meth:`tags`, at most ``limit`` of them (the Source interface)."""
        return self.tags()[:limit]

    def iter_tag_pages(self, repository: str, *, page_size: int, limit: int) -> Iterator[list[str]]:
        """:meth:`tags` in pages of ``page_size``, at most ``limit`` (the Source interface)."""
        tags = self.tags()[:limit]
        for start in range(0, len(tags), max(1, page_size)):
            yield tags[start : start + max(1, page_size)]

    def get_referrers(
        self, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> tuple[ReferrersPage, ...] | None:
        """None: a layout has no referrers API (its ``sha256-<hex>`` tag schema index is
        found by name like any image)."""
        return None

    # ------------------------------------------------------------------ plumbing

    def _open(self) -> _Opened:
        with self._lock:
            if self._closed:
                raise UsageError(f"{self.domain}: client used after close()")
            if self._opened is None:
                self._opened = self._load()
            return self._opened

    def _load(self) -> _Opened:
        store = self._store()
        try:
            self._check_oci_layout(store)
            index_raw = self._read_layout_file(store, "index.json", MAX_INDEX_JSON_BYTES)
            try:
                document = decode_document(index_raw, mt.OCI_INDEX)
            except ImginspectError as error:
                raise MalformedDocumentError(
                    f"{self.domain}: index.json is not an image index: {error.message}"
                ) from None
            if not isinstance(document, Index):
                raise MalformedDocumentError(
                    f"{self.domain}: index.json is not an image index "
                    f"(mediaType {document.media_type})"
                )
            return _Opened(
                store=store,
                index_raw=index_raw,
                index_digest=compute_digest(index_raw),
                index_media_type=document.media_type,
                entries=document.manifests,
            )
        except BaseException:
            store.close()
            raise

    def _store(self) -> _Store:
        try:
            info = os.stat(self.location)
        except (FileNotFoundError, NotADirectoryError):
            kind = "OCI archive" if self.archive else "OCI layout directory"
            raise NotFoundError(f"{kind} not found: {self.location}") from None
        except OSError as exc:
            raise MalformedDocumentError(
                f"cannot read {self.location}: {exc.strerror or exc}"
            ) from None
        if self.archive:
            if stat.S_ISDIR(info.st_mode):
                raise MalformedDocumentError(
                    f"{self.domain}: {self.location} is a directory, not an archive",
                    hint=f"for a layout directory use oci:{self.location}",
                )
            if not stat.S_ISREG(info.st_mode):
                raise MalformedDocumentError(f"{self.domain}: not a regular file")
            return _ArchiveStore(self.location, self.domain)
        if not stat.S_ISDIR(info.st_mode):
            raise MalformedDocumentError(
                f"{self.domain}: {self.location} is not a directory",
                hint=f"for a tar archive use oci-archive:{self.location}",
            )
        return _DirectoryStore(self.location)

    def _read_layout_file(self, store: _Store, name: str, max_bytes: int) -> bytes:
        try:
            return store.read(name, max_bytes=max_bytes, what=name, subject=self.domain)
        except NotFoundError:
            raise MalformedDocumentError(
                f"{self.domain} is not an OCI image layout: it has no {name}", hint=_LAYOUT_HINT
            ) from None

    def _check_oci_layout(self, store: _Store) -> None:
        raw = self._read_layout_file(store, "oci-layout", MAX_OCI_LAYOUT_BYTES)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            body = None
        version = body.get("imageLayoutVersion") if isinstance(body, dict) else None
        if not isinstance(version, str):
            raise MalformedDocumentError(
                f"{self.domain}: oci-layout is not a JSON object with an imageLayoutVersion",
                hint=_LAYOUT_HINT,
            )
        if version.split(".")[0] != _SUPPORTED_LAYOUT_MAJOR:
            raise MalformedDocumentError(
                f"{self.domain}: unsupported imageLayoutVersion {version!r}",
                hint="imginspect reads OCI image layouts of version 1.x",
            )

    def _index_json(self, opened: _Opened) -> FetchedManifest:
        return FetchedManifest(opened.index_raw, opened.index_media_type, opened.index_digest, None)

    def _fetch_entry(self, opened: _Opened, entry: Descriptor, subject: str) -> FetchedManifest:
        raw = self._read_blob(opened, entry.digest, MAX_MANIFEST_BYTES, "manifest", subject)
        if len(raw) != entry.size:
            raise MalformedDocumentError(
                f"index.json of {self.domain} says {entry.size} bytes for {entry.digest}, "
                f"the blob is {len(raw)}"
            )
        return FetchedManifest(raw, entry.media_type, entry.digest, None)

    def _read_blob(
        self,
        opened: _Opened,
        digest: str,
        max_bytes: int,
        what: str,
        subject: str | None = None,
    ) -> bytes:
        algorithm, _, encoded = digest.partition(":")
        data = opened.store.read(
            f"blobs/{algorithm}/{encoded}",
            max_bytes=max_bytes,
            what=what,
            subject=subject or f"{self.domain}@{digest}",
        )
        actual = compute_digest(data, algorithm)
        if actual != digest:
            raise DigestMismatchError(
                f"digest mismatch for {what} {self.domain}@{digest}: "
                f"the blob's content hashes to {actual}",
                hint="the layout's blob file is corrupt or was modified after it was written",
            )
        return data

    def _find_image(self, opened: _Opened, image: str) -> Descriptor:
        entries = opened.entries
        for entry in entries:
            if (entry.annotations or {}).get(ANNOTATION_REF_NAME) == image:
                return entry  # the first exact ref.name, as skopeo picks
        plain_tag = is_valid_tag(image)
        matches: list[tuple[str, Descriptor]] = []
        for entry in entries:
            annotations = entry.annotations or {}
            for key in (ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME):
                value = annotations.get(key)
                if value is None:
                    continue
                if (key == ANNOTATION_CONTAINERD_NAME and value == image) or (
                    plain_tag and _tag_of(value) == image
                ):
                    matches.append((value, entry))
                    break
        if len({entry.digest for _, entry in matches}) > 1:
            names = ", ".join(dict.fromkeys(value for value, _ in matches))
            raise UsageError(
                f"{self.domain}: {image!r} matches several entries of index.json ({names})",
                hint=f"name one in full, e.g. {self.domain}:{matches[0][0]}, or select by digest",
            )
        if matches:
            return matches[0][1]
        tags = _tags(entries)
        if tags:
            shown = ", ".join(tags[:MAX_LISTED_TAGS])
            more = len(tags) - MAX_LISTED_TAGS
            hint = f"tags in this layout: {shown}" + (f" (and {more} more)" if more > 0 else "")
        else:
            hint = (
                f"index.json names no tags ({ANNOTATION_REF_NAME}); use {self.domain} "
                f"or {self.domain}@DIGEST"
            )
        raise NotFoundError(f"tag not found: {self.domain}:{image}", hint=hint)


def open_layout(target: LayoutTarget) -> LayoutSource:
    """The source for the layout ``target`` names (opened, and checked, on first use)."""
    return LayoutSource(target.path, archive=target.is_archive)


# ---------------------------------------------------------------------------------- helpers


def _tags(entries: tuple[Descriptor, ...]) -> list[str]:
    names: dict[str, None] = {}
    for entry in entries:
        annotations = entry.annotations or {}
        name = annotations.get(ANNOTATION_REF_NAME) or annotations.get(ANNOTATION_CONTAINERD_NAME)
        if name:
            names[name] = None
    return list(names)


def _tag_of(value: str) -> str | None:
    """The tag of a full reference (``example.com/app:v1`` -> ``v1``), ``@digest`` ignored."""
    value = value.split("@", 1)[0]
    name, colon, tag = value.rpartition(":")
    if not colon or not name or "/" in tag or not is_valid_tag(tag):
        return None
    return tag


def _declared_media_type(raw: bytes) -> str | None:
    """The ``mediaType`` a JSON document declares, if any (None when it is not JSON)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    value = body.get("mediaType") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None
