"""Hostile and broken OCI layouts: what an adversarial review of imginspect.layout found.

Each test builds real files (tar headers written byte by byte where tarfile cannot write
them) and asserts what a user gets: one typed error, bounded memory (tracemalloc measures
what Python allocates), no traceback from the CLI, and nothing read or opened that is
outside the layout or not a regular file.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import lzma
import os
import random
import shutil
import tarfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imginspect import layout
from imginspect.errors import ExitCode, MalformedDocumentError, TooLargeError
from imginspect.files import read_bounded
from imginspect.layout import LayoutSource
from tests.support.cli import run_imginspect

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "multiarch"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
EMPTY_INDEX = b'{"schemaVersion":2,"manifests":[]}'
MIB = 1024 * 1024


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def assert_cli_one_line_error(target: str, fragment: str) -> None:
    result = run_imginspect(target)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.code == ExitCode.REGISTRY, result.stderr
    (first, *rest) = result.stderr.splitlines()
    assert first.startswith("error: ") and target in first and fragment in first, result.stderr
    assert all(line.startswith("hint: ") for line in rest), result.stderr


def copy_example(tmp_path: Path) -> Path:
    root = tmp_path / "layout"
    shutil.copytree(EXAMPLE, root)
    return root


def every_document(source: LayoutSource) -> Iterator[object]:
    """Reads what --image-config reads: the index, each manifest, each config."""
    top = source.get_manifest("x", "latest")
    yield top
    for entry in json.loads(top.raw)["manifests"]:
        manifest = source.get_manifest("x", entry["digest"])
        yield manifest
        config = json.loads(manifest.raw).get("config")
        if config:
            yield source.get_blob("x", config["digest"], max_bytes=config["size"], what="config")


# ============================================================================ directories


def test_blob_symlink_out_of_the_layout_is_refused(tmp_path: Path) -> None:
    """A blob that is a symbolic link was followed anywhere: a layout could make imginspect
    read any file (a blocking /proc or /sys one too), and the mismatch error printed the
    file's sha256. Links within the layout still work (debuerreotype writes them)."""
    root = copy_example(tmp_path)
    outside = tmp_path / "outside.json"
    outside.write_bytes(b'{"secret": true}')
    digest = sha256(outside.read_bytes())
    blob = root / "blobs" / "sha256" / digest.partition(":")[2]
    blob.symlink_to(outside)
    with LayoutSource(str(root), archive=False) as source:
        with pytest.raises(MalformedDocumentError) as info:
            source.get_blob("x", digest, max_bytes=100, what="config blob")
        assert "outside the layout" in info.value.message
    assert_cli_one_line_error(f"oci:{root}@{digest}", "outside the layout")


def test_blobs_directory_symlink_out_of_the_layout_is_refused(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    shutil.move(root / "blobs" / "sha256", tmp_path / "shared")
    (root / "blobs" / "sha256").symlink_to(tmp_path / "shared")
    with (
        LayoutSource(str(root), archive=False) as source,
        pytest.raises(MalformedDocumentError) as info,
    ):
        source.get_manifest("x", "latest")
    assert "outside the layout" in info.value.message


def test_symlinks_within_the_layout_are_followed(tmp_path: Path) -> None:
    real = copy_example(tmp_path)
    for blob in sorted((real / "blobs" / "sha256").iterdir()):
        named = real / "blobs" / f"{blob.name}.data"
        blob.rename(named)
        blob.symlink_to(Path("..") / named.name)
    root = tmp_path / "via-link"
    root.symlink_to(real)  # the layout itself may be reached through a link
    with LayoutSource(str(root), archive=False) as source:
        assert len(list(every_document(source))) > 4


def opened_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path os.open (which read_bounded uses) is called with, from now on."""
    calls: list[str] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        calls.append(os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return calls


def test_read_bounded_does_not_open_a_fifo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_bounded opened the FIFO (without blocking) to find it is one: opening releases a
    writer waiting on it, and opening a device can act (a tape rewinds, a watchdog arms)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    calls = opened_paths(monkeypatch)
    with pytest.raises(OSError) as info:
        read_bounded(fifo, 10)
    assert info.value.errno == errno.EINVAL
    assert str(fifo) not in calls
    regular = tmp_path / "file"
    regular.write_bytes(b"data")
    assert read_bounded(regular, 10) == b"data"
    assert str(regular) in calls  # the spy sees what is opened


def test_layout_does_not_open_a_fifo_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_example(tmp_path)
    digest = "sha256:" + "0" * 64
    fifo = root / "blobs" / "sha256" / digest.partition(":")[2]
    os.mkfifo(fifo)
    calls = opened_paths(monkeypatch)
    with (
        LayoutSource(str(root), archive=False) as source,
        pytest.raises(MalformedDocumentError) as info,
    ):
        source.get_blob("x", digest, max_bytes=10, what="config blob")
    assert "not a regular file" in info.value.message
    assert str(fifo) not in calls


# ============================================================================ tar archives


def header(name: str, type_: bytes, size: int) -> bytes:
    """One 512-byte tar header (tarfile writes the checksum)."""
    info = tarfile.TarInfo(name)
    info.type = type_
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def member(name: str, data: bytes) -> bytes:
    return header(name, tarfile.REGTYPE, len(data)) + padded(data)


def layout_members() -> bytes:
    return member("oci-layout", OCI_LAYOUT) + member("index.json", EMPTY_INDEX)


END = b"\0" * (2 * tarfile.BLOCKSIZE)


def pax_record(key: str, value: str) -> bytes:
    """``LEN key=value\\n``, LEN counting itself."""
    body = f" {key}={value}\n".encode()
    length = len(body)
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def with_checksum(block: bytearray) -> bytes:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def octal(value: int) -> bytes:
    return b"%011o\0" % value


def old_gnu_sparse(name: str, extended_blocks: int, *, truncated: bool = False) -> bytes:
    """A GNU sparse member (``tar --sparse``) whose map continues in ``extended_blocks``
    extension blocks (21 entries each), then its (empty) data; ``truncated``: the archive
    ends where the first extension block should be."""
    block = bytearray(header(name, tarfile.GNUTYPE_SPARSE, 0))
    for i in range(4):
        block[386 + 24 * i : 410 + 24 * i] = octal(1) + octal(1)
    block[482] = 1  # isextended
    block[483:495] = octal(1)  # realsize
    out = with_checksum(block)
    if truncated:
        return out
    extension = bytearray(tarfile.BLOCKSIZE)
    for i in range(21):
        extension[24 * i : 24 * i + 24] = octal(1) + octal(1)
    extension[504] = 1
    last = bytearray(extension)
    last[504] = 0
    return out + bytes(extension) * (extended_blocks - 1) + bytes(last)


def peak_allocated(call: Callable[[], object]) -> int:
    """The most Python allocated (bytes, tracemalloc) while ``call`` ran."""
    tracemalloc.start()
    try:
        call()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def load_archive(path: Path) -> Callable[[], object]:
    """Opening ``path`` as an oci-archive (what every command does first)."""

    def load() -> object:
        with LayoutSource(str(path), archive=True) as source:
            return source.tags()

    return load


def sparse_file(path: Path, head: bytes, hole: int, tail: bytes) -> Path:
    """``head``, ``hole`` bytes of zeros that take no disk, ``tail``."""
    with path.open("wb") as handle:
        handle.write(head)
        handle.seek(len(head) + hole)
        handle.write(tail)
    return path


@pytest.mark.parametrize(
    "type_",
    [tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE],
    ids=["gnu-longname", "gnu-longlink", "pax", "pax-global"],
)
def test_special_tar_header_is_bounded(tmp_path: Path, type_: bytes) -> None:
    """tarfile reads a GNU long name/link or a pax header whole, into one bytes object, of
    the size the header claims: a 40-byte claim of 3 GB in a sparse file was a MemoryError
    traceback (or the OOM killer). Go's archive/tar (skopeo, crane, regctl) refuses more
    than 1 MiB; so does imginspect now, before reading it."""
    size = 64 * MIB
    path = sparse_file(
        tmp_path / "x.tar",
        layout_members() + header("././@LongLink", type_, size),
        size,
        header("x", tarfile.REGTYPE, 0) + END,
    )
    errors: list[MalformedDocumentError] = []

    def load() -> None:
        with pytest.raises(MalformedDocumentError) as info:
            load_archive(path)()
        errors.append(info.value)

    assert peak_allocated(load) < 2 * MIB
    assert "bytes of headers" in errors[0].message


@pytest.mark.parametrize("first", [True, False], ids=["first-member", "later-member"])
def test_headers_before_one_member_are_bounded_in_all(tmp_path: Path, first: bool) -> None:
    """Each special header is processed by a recursive call for the next one: 5000 tiny
    GNU long names in a row (5 MB, a few KB gzipped) were a RecursionError traceback
    (tarfile.open reads the first member itself)."""
    link = header("././@LongLink", tarfile.GNUTYPE_LONGNAME, 4) + padded(b"abc\0")
    chain = link * 5000 + member("x", b"")
    path = tmp_path / "chain.tar"
    path.write_bytes((chain + layout_members() if first else layout_members() + chain) + END)
    with pytest.raises(MalformedDocumentError):
        load_archive(path)()
    assert_cli_one_line_error(f"oci-archive:{path}", "header")


def test_global_pax_headers_are_bounded_in_all(tmp_path: Path) -> None:
    """Global pax headers accumulate in tarfile for the rest of the archive (and are
    applied to every later member): forty of 900 KB each held 36 MB and went on costing."""
    chunks = [layout_members()]
    for n in range(40):
        records = b"".join(pax_record(f"k{n}.{i}", "v" * 1000) for i in range(900))
        chunks.append(header("pax_global_header", tarfile.XGLTYPE, len(records)))
        chunks.append(padded(records))
        chunks.append(member(f"file{n}", b""))
    path = tmp_path / "global.tar"
    path.write_bytes(b"".join(chunks) + END)
    with pytest.raises(MalformedDocumentError) as info:
        load_archive(path)()
    assert "global pax" in info.value.message


def test_scan_keeps_only_layout_members(tmp_path: Path) -> None:
    """The scan kept every member tarfile read (tarfile.members) and every name: long names
    that are no layout file (each under the header bound) added up without limit."""
    name_size = 512 * 1024
    chunks = [layout_members()]
    for n in range(48):
        name = (f"{n:02d}" + "a" * name_size).encode()
        chunks.append(header("././@LongLink", tarfile.GNUTYPE_LONGNAME, len(name) + 1))
        chunks.append(padded(name + b"\0"))
        chunks.append(header("x", tarfile.REGTYPE, 0))
    path = tmp_path / "names.tar"
    path.write_bytes(b"".join(chunks) + END)
    tracemalloc.start()
    try:
        with LayoutSource(str(path), archive=True) as source:
            assert source.tags() == []
            retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert retained < 4 * MIB


def test_sparse_member_chain_is_not_read(tmp_path: Path) -> None:
    """An old GNU sparse member's map goes on in extension blocks for as long as each says
    so, and tarfile keeps all of it: 2 MB of blocks (a few KB gzipped) made 10 MB of
    tuples (0.7 MB of gzip made 630 MB). OCI layouts have no sparse files; refused."""
    path = tmp_path / "sparse.tar"
    path.write_bytes(layout_members() + old_gnu_sparse("blobs/sha256/" + "0" * 64, 4096) + END)
    errors: list[MalformedDocumentError] = []

    def load() -> None:
        with pytest.raises(MalformedDocumentError) as info:
            load_archive(path)()
        errors.append(info.value)

    assert peak_allocated(load) < 2 * MIB
    assert "sparse" in errors[0].message


def test_sparse_pax_map_is_not_read(tmp_path: Path) -> None:
    """The pax form (GNU.sparse.major=1) keeps its map in the member's data, which tarfile
    reads number by number for as many as the first line announces."""
    records = b"".join(
        pax_record(key, value)
        for key, value in (
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.name", "blobs/sha256/" + "0" * 64),
            ("GNU.sparse.realsize", "1"),
        )
    )
    entries = 256 * 1024
    sparse_map = b"%d\n" % entries + b"1\n" * (2 * entries)
    path = tmp_path / "sparse-pax.tar"
    path.write_bytes(
        layout_members()
        + header("pax", tarfile.XHDTYPE, len(records))
        + padded(records)
        + member("GNUSparseFile.0/x", sparse_map)
        + END
    )
    errors: list[MalformedDocumentError] = []

    def load() -> None:
        with pytest.raises(MalformedDocumentError) as info:
            load_archive(path)()
        errors.append(info.value)

    assert peak_allocated(load) < 2 * MIB
    assert "sparse" in errors[0].message


def test_truncated_sparse_member_is_one_line(tmp_path: Path) -> None:
    """An archive ending inside a sparse member's map: tarfile raised IndexError, which
    nothing maps (a traceback)."""
    path = tmp_path / "truncated.tar"
    path.write_bytes(member("oci-layout", OCI_LAYOUT) + old_gnu_sparse("x", 1, truncated=True))
    with pytest.raises(MalformedDocumentError):
        load_archive(path)()
    assert_cli_one_line_error(f"oci-archive:{path}", "sparse")


def test_corrupt_xz_archive_is_one_line(tmp_path: Path) -> None:
    """lzma.LZMAError is no OSError, ValueError or TarError: corrupt xz data after the first
    header was a traceback (bzip2 and gzip corruption were already mapped)."""
    buffer = io.BytesIO()
    # Seeded, not os.urandom: where the flipped byte lands decides what fails first (random
    # data let it hit a tar header now and then, which reads as the archive's end instead).
    rng = random.Random(20261207)
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for n in range(20):
            data = rng.randbytes(20_000)
            info = tarfile.TarInfo(f"file{n}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = bytearray(lzma.compress(buffer.getvalue()))
    raw[len(raw) // 2] ^= 0xFF
    path = tmp_path / "corrupt.tar.xz"
    path.write_bytes(bytes(raw))
    with pytest.raises(MalformedDocumentError):
        load_archive(path)()
    assert_cli_one_line_error(f"oci-archive:{path}", "corrupt tar archive")


# ============================================================================ compressed archives


def example_tar_gz(path: Path) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for file in sorted(p for p in EXAMPLE.rglob("*") if p.is_file()):
            tar.add(file, arcname=file.relative_to(EXAMPLE).as_posix())
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return path


def test_compressed_archive_is_decompressed_once(tmp_path: Path) -> None:
    """A gzip stream cannot seek back: each read of a member before the current position
    decompressed the archive again from its start. A 270 KB archive (256 MB of zeros, then
    32 manifests in reverse order) took 11 s with --sizes; more zeros, more manifests: hours.
    The scan now keeps the small JSON members it passes. Shown here by overwriting the
    archive once it is open: nothing read after the scan comes from the file again."""
    path = example_tar_gz(tmp_path / "example.tar.gz")
    with LayoutSource(str(path), archive=True) as source:
        assert source.tags() == ["latest"]
        with path.open("r+b") as handle:  # the same inode the source has open
            handle.write(b"\0" * path.stat().st_size)
        documents = list(every_document(source))
    assert len(documents) > 4


def test_compressed_archive_rewinds_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the scan does not keep (beyond its budget) is read by decompressing again, a
    bounded number of times; then a typed error says what to do."""
    monkeypatch.setattr(layout, "MAX_ARCHIVE_CACHE_BYTES", 0)
    # Opening reads index.json, then oci-layout (the last members): two rewinds already.
    monkeypatch.setattr(layout, "MAX_ARCHIVE_REWINDS", 4)
    path = example_tar_gz(tmp_path / "example.tar.gz")
    blobs = sorted((EXAMPLE / "blobs" / "sha256").iterdir(), reverse=True)
    digests = ["sha256:" + p.name for p in blobs if p.stat().st_size < 4096][:4]
    with LayoutSource(str(path), archive=True) as source:
        source.tags()
        for digest in digests[:2]:  # each behind the one before: a rewind each
            source.get_blob("x", digest, max_bytes=4096, what="blob")
        with pytest.raises(TooLargeError) as info:
            source.get_blob("x", digests[2], max_bytes=4096, what="blob")
    assert "decompress" in (info.value.hint or "")


@pytest.mark.parametrize("archive", [False, True], ids=["dir", "tar"])
def test_generous_max_bytes_allocates_nothing_up_front(tmp_path: Path, archive: bool) -> None:
    """get_blob(max_bytes=N) read with read(N + 1): a buffered read allocates N + 1 bytes
    before it reads, so a library caller's "no limit" (2**44) was a MemoryError."""
    location = EXAMPLE
    if archive:
        location = tmp_path / "example.tar"
        with tarfile.open(location, "w") as tar:
            tar.add(EXAMPLE, arcname=".")
    config = sorted((EXAMPLE / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)[0]
    with LayoutSource(str(location), archive=archive) as source:
        data = source.get_blob("x", "sha256:" + config.name, max_bytes=2**44, what="blob")
    assert data == config.read_bytes()
