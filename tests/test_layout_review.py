"""Hostile and broken OCI layouts: what an adversarial review of imginspect.layout found.

Each test builds real files (tar headers written byte by byte where tarfile cannot write
them) and asserts what a user gets: one typed error, bounded memory (tracemalloc measures
what Python allocates), no traceback from the CLI, and nothing read or opened that is
outside the layout or not a regular file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from imginspect.errors import ExitCode, MalformedDocumentError
from imginspect.files import read_bounded
from imginspect.layout import LayoutSource
from tests.support.cli import run_imginspect

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "multiarch"


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
