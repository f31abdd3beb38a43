"""Offline sources: ``oci:`` layout directories and ``oci-archive:`` tar files.

Library level: the target grammar (:func:`imginspect.target.parse_target`), :class:`LayoutSource`
on a directory, a tar and a tar.gz, every error path; the example generator
(``scripts/make-example-layout``) is deterministic and its output is a valid layout; skopeo
(when installed) resolves the same bytes. End to end through the CLI: every output mode
and check works on layouts as on registries.

Every expected digest and size is computed from the files, never typed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imginspect import mediatypes as mt
from imginspect.errors import (
    DigestMismatchError,
    ExitCode,
    InvalidReferenceError,
    MalformedDocumentError,
    NotFoundError,
    TooLargeError,
    UsageError,
)
from imginspect.layout import LayoutSource, open_layout
from imginspect.manifest import Index, decode_document
from imginspect.reference import Reference
from imginspect.sources import MAX_MANIFEST_BYTES, ManifestHead
from imginspect.target import DEFAULT_LAYOUT_TARGET as DEFAULT_TARGET
from imginspect.target import LayoutTarget, parse_target
from tests.support.cli import run_imginspect

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "multiarch"
SCRIPT = REPO / "scripts" / "make-example-layout"

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
D0 = "sha256:" + "0" * 64


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root``: relative posix path -> bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def blob_path(root: Path, digest: str) -> Path:
    algorithm, _, encoded = digest.partition(":")
    return root / "blobs" / algorithm / encoded


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


@dataclass(frozen=True)
class Example:
    """Facts about examples/multiarch, read from its files."""

    index_json: bytes
    top: dict[str, Any]  # index.json's entry
    top_raw: bytes  # the image index
    document: dict[str, Any]  # the image index, parsed
    by_platform: dict[str, dict[str, Any]]  # "linux/arm64/v8" -> index entry

    @property
    def top_digest(self) -> str:
        return str(self.top["digest"])

    def entry(self, platform: str) -> dict[str, Any]:
        return self.by_platform[platform]

    def raw(self, digest: str) -> bytes:
        return blob_path(EXAMPLE, digest).read_bytes()

    def config_descriptor(self, platform: str) -> dict[str, Any]:
        manifest = json.loads(self.raw(self.entry(platform)["digest"]))
        return dict(manifest["config"])


def _platform_text(platform: dict[str, Any]) -> str:
    parts = [platform.get("os", ""), platform.get("architecture", "")]
    if platform.get("variant"):
        parts.append(platform["variant"])
    return "/".join(parts)


@pytest.fixture(scope="session")
def example() -> Example:
    index_json = (EXAMPLE / "index.json").read_bytes()
    (top,) = json.loads(index_json)["manifests"]
    top_raw = blob_path(EXAMPLE, top["digest"]).read_bytes()
    document = json.loads(top_raw)
    by_platform = {_platform_text(m["platform"]): m for m in document["manifests"]}
    return Example(index_json, top, top_raw, document, by_platform)


@pytest.fixture(scope="session")
def example_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example as an oci-archive, written by the script."""
    path = tmp_path_factory.mktemp("archive") / "multiarch.tar"
    proc = run_script("--archive", str(path))
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.fixture(scope="session")
def example_archive_gz(example_archive: Path) -> Path:
    path = example_archive.with_name("multiarch.tar.gz")
    path.write_bytes(gzip.compress(example_archive.read_bytes(), mtime=0))
    return path


SOURCES = ("dir", "tar", "tar.gz")


@pytest.fixture(params=SOURCES)
def source(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """(location, is_archive) of the example in each form."""
    if request.param == "dir":
        return str(EXAMPLE), False
    fixture = "example_archive" if request.param == "tar" else "example_archive_gz"
    path: Path = request.getfixturevalue(fixture)
    return str(path), True


@pytest.fixture
def client(source: tuple[str, bool]) -> Iterator[LayoutSource]:
    location, archive = source
    with LayoutSource(location, archive=archive) as c:
        yield c


def copy_example(tmp_path: Path) -> Path:
    root = tmp_path / "layout"
    shutil.copytree(EXAMPLE, root)
    return root


def write_index(root: Path, manifests: list[dict[str, Any]], **extra: Any) -> bytes:
    raw = json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests, **extra}
    ).encode()
    (root / "index.json").write_bytes(raw)
    return raw


def descriptor(entry: dict[str, Any], **annotations: str) -> dict[str, Any]:
    out = {k: entry[k] for k in ("mediaType", "digest", "size")}
    if annotations:
        out["annotations"] = annotations
    return out


def make_tar(
    path: Path, members: list[tuple[str, bytes]], *, links: dict[str, str] | None = None
) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def tar_of_tree(path: Path, root: Path, *, replace: dict[str, bytes] | None = None) -> Path:
    files = tree(root) | (replace or {})
    return make_tar(path, sorted(files.items()))


# ================================================================================ references


DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest", "canonical"),
    [
        ("oci:examples/multiarch", "oci:examples/multiarch", "examples/multiarch", None, None,
         "oci:examples/multiarch"),
        ("oci:examples/multiarch:latest", "oci:examples/multiarch", "examples/multiarch",
         "latest", None, "oci:examples/multiarch:latest"),
        ("oci:./examples//multiarch/:v1", "oci:examples/multiarch", "examples/multiarch", "v1",
         None, "oci:examples/multiarch:v1"),
        ("oci:/srv/build/image:1.2.3", "oci:/srv/build/image", "/srv/build/image", "1.2.3", None,
         "oci:/srv/build/image:1.2.3"),
        (f"oci:build@{DIGEST}", "oci:build", "build", None, DIGEST, f"oci:build@{DIGEST}"),
        (f"oci:build:v1@{DIGEST}", "oci:build", "build", "v1", DIGEST, f"oci:build:v1@{DIGEST}"),
        ("oci:build:example.com/app:v1", "oci:build", "build", "example.com/app:v1", None,
         "oci:build:example.com/app:v1"),
        ("oci:build:", "oci:build", "build", None, None, "oci:build"),
        ("oci:../out", "oci:../out", "../out", None, None, "oci:../out"),
        ("oci:.", "oci:.", ".", None, None, "oci:."),
        ("oci:/", "oci:/", "/", None, None, "oci:/"),
        ("oci:/tmp/a@b:v1", "oci:/tmp/a@b", "/tmp/a@b", "v1", None, "oci:/tmp/a@b:v1"),
        ("oci:out:_v1", "oci:out", "out", "_v1", None, "oci:out:_v1"),  # Docker tag grammar
        ("oci-archive:build/app.tar", "oci-archive:build/app.tar", "build/app.tar", None, None,
         "oci-archive:build/app.tar"),
        ("oci-archive:app.tar:latest", "oci-archive:app.tar", "app.tar", "latest", None,
         "oci-archive:app.tar:latest"),
        (f"oci-archive:app.tar.gz@{DIGEST}", "oci-archive:app.tar.gz", "app.tar.gz", None,
         DIGEST, f"oci-archive:app.tar.gz@{DIGEST}"),
    ],
)  # fmt: skip
def test_parse_layout_target(
    text: str, domain: str, path: str, tag: str | None, digest: str | None, canonical: str
) -> None:
    ref = parse_target(text)
    assert isinstance(ref, LayoutTarget), "one parse tells layouts from registry references"
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert str(ref) == canonical
    assert ref.name == domain == ref.location
    assert ref.familiar_string() == canonical
    assert ref.target == (digest or tag or DEFAULT_TARGET)
    assert parse_target(str(ref)) == ref, "the canonical form parses back"
    assert ref.is_archive == text.startswith("oci-archive:")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ubuntu",
        "ubuntu:24.04",
        "docker.io/library/ubuntu:latest",
        "localhost:5000/oci:v1",
        "oci/app:v1",
        "OCI:dir",
        "oci-layout:dir",
        "docker://ubuntu",
        "ociarchive:x.tar",
        " oci:dir",
    ],
)
def test_other_strings_are_not_source_references(text: str) -> None:
    try:
        target = parse_target(text)
    except InvalidReferenceError:
        return  # not a layout, and not a valid registry reference either
    assert isinstance(target, Reference)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("oci:", "no layout directory"),
        ("oci::latest", "no layout directory"),
        ("oci-archive:", "no archive file"),
        (f"oci:@{DIGEST}", "no layout directory"),
        ("oci:dir:bad tag", "not a valid image name"),
        ("oci:dir:-v1", "not a valid image name"),
        ("oci:dir:v1/", "not a valid image name"),
        ("oci:dir@sha256:abc", "invalid digest"),
        ("oci:dir@sha256:" + "A" * 64, "invalid digest"),
        ("oci:dir@sha512:" + "a" * 64, "invalid digest"),
        ("oci:di\nr", "control character"),
    ],
)
def test_malformed_source_references(text: str, fragment: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_target(text)
    assert fragment in info.value.message
    assert info.value.exit_code == ExitCode.USAGE


def test_with_digest_keeps_layout_and_tag() -> None:
    ref = parse_target("oci:out:v1")
    assert isinstance(ref, LayoutTarget)
    pinned = ref.with_digest(DIGEST)
    assert isinstance(pinned, LayoutTarget)
    assert (pinned.domain, pinned.tag, pinned.digest, pinned.target) == (
        "oci:out",
        "v1",
        DIGEST,
        DIGEST,
    )
    assert str(pinned) == f"oci:out:v1@{DIGEST}"
    with pytest.raises(InvalidReferenceError):
        ref.with_digest("sha256:abc")


def test_open_layout_follows_the_target(example_archive: Path) -> None:
    for text, archive in ((f"oci:{EXAMPLE}", False), (f"oci-archive:{example_archive}", True)):
        ref = parse_target(text)
        assert isinstance(ref, LayoutTarget)
        with open_layout(ref) as c:
            assert c.archive is archive
            assert c.domain == ref.domain
            assert c.get_manifest(ref.path, ref.target).raw  # readable


# ================================================================================ the client


def test_default_target_is_the_only_entry(client: LayoutSource, example: Example) -> None:
    fetched = client.get_manifest("ignored", DEFAULT_TARGET)
    assert fetched.raw == example.top_raw
    assert fetched.digest == example.top_digest == sha256(fetched.raw)
    assert fetched.size == example.top["size"]
    assert fetched.content_type == example.top["mediaType"] == mt.OCI_INDEX
    assert fetched.header_digest is None
    assert fetched.rate_limit is None


@pytest.mark.parametrize(
    "target",
    ["latest", "example.invalid/imginspect/multiarch:latest"],
    ids=["ref.name", "containerd"],
)
def test_tag_selects_index_json_entry(client: LayoutSource, example: Example, target: str) -> None:
    fetched = client.get_manifest("ignored", target)
    assert (fetched.raw, fetched.digest) == (example.top_raw, example.top_digest)


def test_manifest_by_digest(client: LayoutSource, example: Example) -> None:
    entry = example.entry("linux/arm64/v8")
    fetched = client.get_manifest("ignored", entry["digest"])
    assert fetched.raw == example.raw(entry["digest"])
    assert fetched.digest == entry["digest"] == sha256(fetched.raw)
    # not listed in index.json: the document's own mediaType
    assert fetched.content_type == mt.OCI_MANIFEST
    document = decode_document(fetched.raw, fetched.content_type)
    assert document.media_type == mt.OCI_MANIFEST


def test_index_json_by_its_own_digest(client: LayoutSource, example: Example) -> None:
    fetched = client.get_manifest("ignored", sha256(example.index_json))
    assert fetched.raw == example.index_json
    assert fetched.content_type == mt.OCI_INDEX


def test_head_manifest(client: LayoutSource, example: Example) -> None:
    head = client.head_manifest("ignored", "latest")
    assert head == ManifestHead(example.top_digest, mt.OCI_INDEX, len(example.top_raw))
    child = example.entry("linux/amd64")["digest"]
    assert client.head_manifest("ignored", child) == ManifestHead(
        child, mt.OCI_MANIFEST, len(example.raw(child))
    )


def test_get_blob(client: LayoutSource, example: Example) -> None:
    config = example.config_descriptor("linux/arm/v7")
    raw = client.get_blob("ignored", config["digest"], max_bytes=config["size"], what="config blob")
    assert sha256(raw) == config["digest"]
    assert json.loads(raw)["variant"] == "v7"
    with pytest.raises(TooLargeError):
        client.get_blob(
            "ignored", config["digest"], max_bytes=config["size"] - 1, what="config blob"
        )


def test_missing_blob_and_manifest(client: LayoutSource) -> None:
    with pytest.raises(NotFoundError) as info:
        client.get_blob("ignored", D0, max_bytes=100, what="config blob")
    assert "config blob not found" in info.value.message and D0 in info.value.message
    with pytest.raises(NotFoundError):
        client.get_manifest("ignored", D0)


def test_missing_tag_lists_the_tags(client: LayoutSource) -> None:
    with pytest.raises(NotFoundError) as info:
        client.get_manifest("ignored", "v2")
    assert info.value.message.endswith(":v2")
    assert info.value.hint == "tags in this layout: latest"
    assert info.value.exit_code == ExitCode.NOT_FOUND


def test_concurrent_reads(client: LayoutSource, example: Example) -> None:
    digests = [m["digest"] for m in example.document["manifests"]] * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda d: client.get_manifest("x", d).digest, digests))
    assert results == digests


def test_inspector_pieces_decode(client: LayoutSource, example: Example) -> None:
    """What the Inspector does with the answers: an index of 4 entries, 3 of them images."""
    fetched = client.get_manifest("ignored", "latest")
    document = decode_document(fetched.raw, fetched.content_type)
    assert isinstance(document, Index)
    assert [str(d.platform) for d in document.manifests] == list(example.by_platform)


def test_closed_client_refuses(example_archive: Path) -> None:
    c = LayoutSource(str(example_archive), archive=True)
    c.get_manifest("x", "latest")
    c.close()
    c.close()  # idempotent
    with pytest.raises(UsageError):
        c.get_manifest("x", "latest")


# ---------------------------------------------------------------------------- selection rules


def test_several_entries_default_is_index_json_itself(tmp_path: Path, example: Example) -> None:
    root = copy_example(tmp_path)
    amd64, arm64 = example.entry("linux/amd64"), example.entry("linux/arm64/v8")
    raw = write_index(root, [descriptor(amd64, **{REF_NAME: "amd"}), descriptor(arm64)])
    with LayoutSource(str(root), archive=False) as c:
        fetched = c.get_manifest("x", DEFAULT_TARGET)
        assert fetched.raw == raw
        assert fetched.digest == sha256(raw)
        assert fetched.content_type == mt.OCI_INDEX
        assert c.get_manifest("x", "amd").digest == amd64["digest"]
        assert c.head_manifest("x", DEFAULT_TARGET) == ManifestHead(
            sha256(raw), mt.OCI_INDEX, len(raw)
        )


def test_index_json_without_media_type_or_entries(tmp_path: Path) -> None:
    """skopeo writes index.json without mediaType; an empty layout is an empty index."""
    root = copy_example(tmp_path)
    raw = b'{"schemaVersion":2,"manifests":[]}'
    (root / "index.json").write_bytes(raw)
    with LayoutSource(str(root), archive=False) as c:
        fetched = c.get_manifest("x", DEFAULT_TARGET)
        assert (fetched.raw, fetched.digest, fetched.content_type) == (
            raw,
            sha256(raw),
            mt.OCI_INDEX,
        )
        with pytest.raises(NotFoundError) as info:
            c.get_manifest("x", "latest")
        assert "names no tags" in (info.value.hint or "")


def test_tag_matching_rules(tmp_path: Path, example: Example) -> None:
    root = copy_example(tmp_path)
    amd64 = example.entry("linux/amd64")
    arm64 = example.entry("linux/arm64/v8")
    armv7 = example.entry("linux/arm/v7")
    write_index(
        root,
        [
            descriptor(amd64, **{REF_NAME: "example.com/app:v2"}),  # full name in ref.name
            descriptor(arm64, **{CONTAINERD_NAME: "docker.io/library/app:v3"}),  # containerd only
            descriptor(armv7, **{REF_NAME: "dup"}),
            descriptor(amd64, **{REF_NAME: "dup"}),  # exact duplicates: the first wins (skopeo)
            descriptor(arm64, **{REF_NAME: "v2"}),  # an exact ref.name beats a full name's tag
            descriptor(armv7, **{REF_NAME: "registry:5000/x:v4"}),
            descriptor(amd64, **{REF_NAME: "a.example/x:amb"}),
            descriptor(arm64, **{REF_NAME: "b.example/x:amb"}),
        ],
    )
    with LayoutSource(str(root), archive=False) as c:

        def resolve(target: str) -> str:
            return c.get_manifest("x", target).digest

        assert resolve("v2") == arm64["digest"]
        assert resolve("example.com/app:v2") == amd64["digest"]
        assert resolve("v3") == arm64["digest"]
        assert resolve("docker.io/library/app:v3") == arm64["digest"]
        assert resolve("dup") == armv7["digest"]
        assert resolve("v4") == armv7["digest"]
        with pytest.raises(NotFoundError):
            resolve("5000")  # a port is not a tag
        with pytest.raises(UsageError) as info:
            resolve("amb")
        assert "a.example/x:amb" in info.value.message and "b.example/x:amb" in info.value.message
        assert c.tags()[:3] == ["example.com/app:v2", "docker.io/library/app:v3", "dup"]


def test_many_tags_hint_is_bounded(tmp_path: Path, example: Example) -> None:
    root = copy_example(tmp_path)
    amd64 = example.entry("linux/amd64")
    write_index(root, [descriptor(amd64, **{REF_NAME: f"t{n:02d}"}) for n in range(25)])
    with LayoutSource(str(root), archive=False) as c, pytest.raises(NotFoundError) as info:
        c.get_manifest("x", "nope")
    assert info.value.hint is not None
    assert info.value.hint.startswith("tags in this layout: t00, t01,")
    assert info.value.hint.endswith("t19 (and 5 more)")


# ================================================================================ errors


def test_missing_directory_and_archive(tmp_path: Path) -> None:
    for archive, kind in ((False, "OCI layout directory"), (True, "OCI archive")):
        missing = tmp_path / "nowhere" / "image"
        with LayoutSource(str(missing), archive=archive) as c, pytest.raises(NotFoundError) as info:
            c.get_manifest("x", "latest")
        assert info.value.message == f"{kind} not found: {missing}"
        assert info.value.exit_code == ExitCode.NOT_FOUND


def test_not_a_layout(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with (
        LayoutSource(str(empty), archive=False) as c,
        pytest.raises(MalformedDocumentError) as info,
    ):
        c.get_manifest("x", "latest")
    assert "is not an OCI image layout: it has no oci-layout" in info.value.message
    assert info.value.exit_code == ExitCode.REGISTRY
    assert info.value.hint is not None and "index.json" in info.value.hint


@pytest.mark.parametrize(
    ("oci_layout", "fragment"),
    [
        (b'{"imageLayoutVersion":"2.0.0"}', "unsupported imageLayoutVersion '2.0.0'"),
        (b'{"imageLayoutVersion":1}', "not a JSON object with an imageLayoutVersion"),
        (b"not json", "not a JSON object with an imageLayoutVersion"),
        (b"[]", "not a JSON object with an imageLayoutVersion"),
    ],
)
def test_bad_oci_layout_file(tmp_path: Path, oci_layout: bytes, fragment: str) -> None:
    root = copy_example(tmp_path)
    (root / "oci-layout").write_bytes(oci_layout)
    with LayoutSource(str(root), archive=False) as c, pytest.raises(MalformedDocumentError) as info:
        c.get_manifest("x", "latest")
    assert fragment in info.value.message


def test_layout_version_1_x_accepted(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    (root / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.1.0","extra":true}')
    with LayoutSource(str(root), archive=False) as c:
        assert c.get_manifest("x", "latest").raw


@pytest.mark.parametrize(
    ("index_json", "fragment"),
    [
        (None, "it has no index.json"),
        (b"{", "index.json is not an image index: malformed manifest: invalid JSON"),
        (
            json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {}}).encode(),
            "index.json is not an image index",
        ),
        (b'{"schemaVersion":2,"manifests":[{"digest":"x"}]}', "index.json is not an image index"),
    ],
)
def test_bad_index_json(tmp_path: Path, index_json: bytes | None, fragment: str) -> None:
    root = copy_example(tmp_path)
    if index_json is None:
        (root / "index.json").unlink()
    else:
        (root / "index.json").write_bytes(index_json)
    with LayoutSource(str(root), archive=False) as c, pytest.raises(MalformedDocumentError) as info:
        c.get_manifest("x", "latest")
    assert fragment in info.value.message


def test_wrong_transport_for_the_path(tmp_path: Path, example_archive: Path) -> None:
    with (
        LayoutSource(str(example_archive), archive=False) as c,
        pytest.raises(MalformedDocumentError) as info,
    ):
        c.get_manifest("x", "latest")
    assert info.value.hint == f"for a tar archive use oci-archive:{example_archive}"
    with (
        LayoutSource(str(EXAMPLE), archive=True) as c,
        pytest.raises(MalformedDocumentError) as info,
    ):
        c.get_manifest("x", "latest")
    assert info.value.hint == f"for a layout directory use oci:{EXAMPLE}"


@pytest.mark.parametrize("content", [b"", b"not a tar at all" * 100, b"\x1f\x8b\x08garbage"])
def test_not_a_tar(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(content)
    with LayoutSource(str(path), archive=True) as c, pytest.raises(MalformedDocumentError) as info:
        c.get_manifest("x", "latest")
    assert "is not a tar archive" in info.value.message


def test_archive_without_layout_files(tmp_path: Path) -> None:
    path = make_tar(tmp_path / "x.tar", [("hello.txt", b"hi")])
    with LayoutSource(str(path), archive=True) as c, pytest.raises(MalformedDocumentError) as info:
        c.get_manifest("x", "latest")
    assert "it has no oci-layout" in info.value.message


def test_corrupted_blob_in_directory(tmp_path: Path, example: Example) -> None:
    root = copy_example(tmp_path)
    top = blob_path(root, example.top_digest)
    top.write_bytes(top.read_bytes().replace(b"linux", b"LINUX"))  # same size, other bytes
    config = example.config_descriptor("linux/amd64")
    blob = blob_path(root, config["digest"])
    blob.write_bytes(blob.read_bytes().replace(b"amd64", b"AMD64"))
    with LayoutSource(str(root), archive=False) as c:
        for call in (
            lambda: c.get_manifest("x", "latest"),
            lambda: c.get_manifest("x", DEFAULT_TARGET),
            lambda: c.head_manifest("x", "latest"),
            lambda: c.get_manifest("x", example.top_digest),
            lambda: c.get_blob("x", config["digest"], max_bytes=config["size"], what="config blob"),
        ):
            with pytest.raises(DigestMismatchError) as info:
                call()
            assert "digest mismatch" in info.value.message
            assert info.value.exit_code == ExitCode.REGISTRY
            assert "corrupt" in (info.value.hint or "")


def test_corrupted_blob_in_archive(tmp_path: Path, example: Example) -> None:
    name = blob_path(EXAMPLE, example.top_digest).relative_to(EXAMPLE).as_posix()
    path = tar_of_tree(
        tmp_path / "x.tar", EXAMPLE, replace={name: example.top_raw.replace(b"linux", b"LINUX")}
    )
    with LayoutSource(str(path), archive=True) as c, pytest.raises(DigestMismatchError):
        c.get_manifest("x", "latest")


def test_index_json_size_disagrees_with_blob(tmp_path: Path, example: Example) -> None:
    root = copy_example(tmp_path)
    entry = dict(example.top)
    entry["size"] += 1
    write_index(root, [entry])
    with LayoutSource(str(root), archive=False) as c, pytest.raises(MalformedDocumentError) as info:
        c.get_manifest("x", "latest")
    assert f"says {entry['size']} bytes for {entry['digest']}" in info.value.message


@pytest.mark.parametrize(
    "member",
    ["../evil", "blobs/../../evil", "/etc/passwd", "./../x"],
    ids=["dotdot", "nested", "abs", "dot-dotdot"],
)
def test_archive_path_traversal_refused(tmp_path: Path, member: str) -> None:
    members = [("oci-layout", OCI_LAYOUT), ("index.json", b'{"schemaVersion":2,"manifests":[]}')]
    path = make_tar(tmp_path / "x.tar", [*members, (member, b"x")])
    with LayoutSource(str(path), archive=True) as c, pytest.raises(MalformedDocumentError) as info:
        c.get_manifest("x", DEFAULT_TARGET)
    assert info.value.hint == "refusing archives with absolute or '..' member paths"
    assert repr(member) in info.value.message


def test_archive_dot_slash_members_and_links(tmp_path: Path, example: Example) -> None:
    """``./`` prefixes (GNU tar -C dir .) are fine; a blob that is a link is not a blob."""
    files = tree(EXAMPLE)
    top = blob_path(EXAMPLE, example.top_digest).relative_to(EXAMPLE).as_posix()
    del files[top]
    path = make_tar(
        tmp_path / "x.tar",
        [(f"./{name}", data) for name, data in sorted(files.items())],
        links={f"./{top}": "/etc/passwd"},
    )
    with LayoutSource(str(path), archive=True) as c:
        child = example.entry("linux/amd64")["digest"]
        assert c.get_manifest("x", child).digest == child
        with pytest.raises(MalformedDocumentError) as info:
            c.get_manifest("x", "latest")
        assert "is not a regular file" in info.value.message


def test_oversize_manifest_refused_unread(tmp_path: Path, example: Example) -> None:
    root = copy_example(tmp_path)
    big = blob_path(root, D0)
    with big.open("wb") as handle:
        handle.truncate(MAX_MANIFEST_BYTES + 1)  # sparse: nothing to read, nothing hashed
    write_index(
        root,
        [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": D0,
                "size": MAX_MANIFEST_BYTES + 1,
                "annotations": {REF_NAME: "big"},
            }
        ],
    )
    with LayoutSource(str(root), archive=False) as c:
        with pytest.raises(TooLargeError) as info:
            c.get_manifest("x", "big")
        assert f"larger than the {MAX_MANIFEST_BYTES} bytes accepted" in info.value.message
        with pytest.raises(TooLargeError):
            c.get_manifest("x", D0)


def test_oversize_index_json_refused(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    with (root / "index.json").open("r+b") as handle:
        handle.truncate(MAX_MANIFEST_BYTES + 1)
    with LayoutSource(str(root), archive=False) as c, pytest.raises(TooLargeError):
        c.get_manifest("x", "latest")


def test_oversize_manifest_in_archive(tmp_path: Path) -> None:
    members = [
        ("oci-layout", OCI_LAYOUT),
        ("index.json", b'{"schemaVersion":2,"manifests":[]}'),
        ("blobs/sha256/" + D0.partition(":")[2], b"\0" * (MAX_MANIFEST_BYTES + 1)),
    ]
    path = make_tar(tmp_path / "x.tar", members)
    with LayoutSource(str(path), archive=True) as c, pytest.raises(TooLargeError):
        c.get_manifest("x", D0)


def test_blob_that_is_a_directory(tmp_path: Path, example: Example) -> None:
    root = copy_example(tmp_path)
    blob_path(root, D0).mkdir()
    with LayoutSource(str(root), archive=False) as c, pytest.raises(MalformedDocumentError):
        c.get_manifest("x", D0)


def test_invalid_targets(client: LayoutSource) -> None:
    with pytest.raises(InvalidReferenceError):
        client.get_manifest("x", "bad tag")
    with pytest.raises(MalformedDocumentError):
        client.get_blob("x", "sha256:abc", max_bytes=10, what="config blob")


# ================================================================================ the example


def test_script_regenerates_identical_bytes(tmp_path: Path) -> None:
    """examples/multiarch is exactly what the script writes (commit both together)."""
    out = tmp_path / "multiarch"
    proc = run_script("--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert tree(out) == tree(EXAMPLE), "regenerate with scripts/make-example-layout"


def test_script_archive_is_deterministic_and_matches_directory(tmp_path: Path) -> None:
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    for path in (first, second):
        proc = run_script("--archive", str(path))
        assert proc.returncode == 0, proc.stderr
    assert first.read_bytes() == second.read_bytes()
    assert not (tmp_path / "multiarch").exists()
    with tarfile.open(first) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}  # type: ignore[union-attr]
    assert members == tree(EXAMPLE)


def test_script_refuses_to_replace_other_directories(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    proc = run_script("--output", str(precious))
    assert proc.returncode != 0
    assert "not replacing" in proc.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
    # but an existing layout is replaced (stale blobs removed)
    layout = tmp_path / "layout"
    assert run_script("--output", str(layout)).returncode == 0
    stale = blob_path(layout, D0)
    stale.write_bytes(b"stale")
    assert run_script("--output", str(layout)).returncode == 0
    assert not stale.exists()


def test_example_is_a_consistent_layout(example: Example) -> None:
    """Every blob is named by its digest, every descriptor's size is right, the example is
    tiny, and it has what it promises: 3 platforms and an attestation of the amd64 image."""
    files = tree(EXAMPLE)
    assert files["oci-layout"] == OCI_LAYOUT
    for name, data in files.items():
        if name.startswith("blobs/"):
            assert name == "blobs/" + sha256(data).replace(":", "/")

    def check(desc: dict[str, Any]) -> None:
        data = example.raw(desc["digest"])
        assert len(data) == desc["size"]
        if desc["mediaType"] in (mt.OCI_INDEX, mt.OCI_MANIFEST):
            doc = json.loads(data)
            for child in doc.get("manifests", []) + doc.get("layers", []):
                check(child)
            if "config" in doc:
                check(doc["config"])

    check(example.top)
    assert example.top["annotations"][REF_NAME] == "latest"
    assert list(example.by_platform) == [
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm/v7",
        "unknown/unknown",
    ]
    attestation = example.entry("unknown/unknown")["annotations"]
    assert attestation == {
        "vnd.docker.reference.digest": example.entry("linux/amd64")["digest"],
        "vnd.docker.reference.type": "attestation-manifest",
    }
    assert sum(len(d) for d in files.values()) < 16 * 1024


# ================================================================================ skopeo


# required in CI, skipped with the reason elsewhere (tests/support/tools.py)
needs_skopeo = pytest.mark.needs_tool("skopeo")


@needs_skopeo
@pytest.mark.parametrize("form", ["dir", "tar"])
def test_skopeo_resolves_the_same_bytes(form: str, example_archive: Path) -> None:
    location, archive = (str(EXAMPLE), False) if form == "dir" else (str(example_archive), True)
    transport = "oci-archive" if archive else "oci"
    proc = subprocess.run(
        ["skopeo", "inspect", "--raw", f"{transport}:{location}:latest"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    with LayoutSource(location, archive=archive) as c:
        ours = c.get_manifest("x", "latest")
        assert ours.digest == sha256(proc.stdout)
        assert ours.raw == proc.stdout
        assert c.get_manifest("x", DEFAULT_TARGET).digest == ours.digest


# ================================================================================ the CLI


@pytest.fixture(params=["dir", "archive"])
def cli_ref(request: pytest.FixtureRequest) -> str:
    if request.param == "dir":
        return f"oci:{EXAMPLE}"
    archive: Path = request.getfixturevalue("example_archive")
    return f"oci-archive:{archive}"


def _expected_platforms(example: Example) -> list[dict[str, Any]]:
    out = []
    for entry in example.document["manifests"]:
        p = entry["platform"]
        obj = {"architecture": p["architecture"], "os": p["os"]}
        if p.get("variant"):
            obj["variant"] = p["variant"]
        out.append(obj)
    return out


def test_cli_table(cli_ref: str, example: Example) -> None:
    result = run_imginspect("--no-trunc", cli_ref, env={"COLUMNS": "400"})  # no wrapping
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    text = result.text
    assert cli_ref in text
    assert example.top_digest in text
    for platform in ("linux/amd64", "linux/arm64", "linux/arm/v7"):
        assert platform in text
    assert "attestation" in text


@pytest.mark.parametrize("tag", ["", ":latest"])
def test_cli_json(cli_ref: str, example: Example, tag: str) -> None:
    result = run_imginspect("--json", cli_ref + tag)
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document == {
        "Descriptor": {
            "mediaType": mt.OCI_INDEX,
            "digest": example.top_digest,
            "size": len(example.top_raw),
            "annotations": example.document["annotations"],
        },
        "Platforms": _expected_platforms(example),
    }


def test_cli_require(cli_ref: str) -> None:
    ok = run_imginspect("--require", "linux/amd64,linux/arm64", cli_ref)
    assert ok.code == 0, ok.stderr
    missing = run_imginspect("--require", "linux/amd64,linux/s390x", cli_ref)
    assert missing.code == ExitCode.MISSING_PLATFORM
    assert "missing linux/s390x" in missing.stderr


def test_cli_platform(cli_ref: str, example: Example) -> None:
    result = run_imginspect("--json", "--platform", "linux/arm64", cli_ref)
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    entry = example.entry("linux/arm64/v8")
    assert document["Descriptor"]["digest"] == entry["digest"]
    assert document["Descriptor"]["size"] == entry["size"]
    assert document["Platforms"] == [{"architecture": "arm64", "os": "linux", "variant": "v8"}]


def test_cli_digest(cli_ref: str, example: Example) -> None:
    result = run_imginspect("--digest", cli_ref)
    assert result.code == 0, result.stderr
    assert result.text == example.top_digest + "\n"
    arm = run_imginspect("--digest", "--platform", "linux/arm/v7", cli_ref)
    assert arm.code == 0, arm.stderr
    assert arm.text == example.entry("linux/arm/v7")["digest"] + "\n"


def test_cli_raw(cli_ref: str, example: Example) -> None:
    result = run_imginspect("--raw", cli_ref)
    assert result.code == 0, result.stderr
    assert result.stdout == example.top_raw
    assert sha256(result.stdout) == example.top_digest


def test_cli_by_digest(cli_ref: str, example: Example) -> None:
    digest = example.entry("linux/amd64")["digest"]
    result = run_imginspect("--json", f"{cli_ref}@{digest}")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["Platforms"] == [{"architecture": "amd64", "os": "linux"}]


def test_cli_errors(cli_ref: str, tmp_path: Path) -> None:
    missing_tag = run_imginspect(f"{cli_ref}:v9")
    assert missing_tag.code == ExitCode.NOT_FOUND
    assert missing_tag.stderr.splitlines() == [
        f"error: tag not found: {cli_ref}:v9",
        "hint: tags in this layout: latest",
    ]
    transport = cli_ref.partition(":")[0]
    missing = run_imginspect(f"{transport}:{tmp_path / 'nothing'}")
    assert missing.code == ExitCode.NOT_FOUND
    assert str(tmp_path / "nothing") in missing.stderr
    bad = run_imginspect(f"{transport}:")
    assert bad.code == ExitCode.USAGE


@settings(max_examples=300, deadline=None)
@given(
    path=st.text(alphabet="abXY09._-/@ ", min_size=1, max_size=24).filter(
        lambda p: p.strip("/.") != "" or p.startswith("/")
    ),
    tag=st.none() | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}", fullmatch=True),
    digest=st.none() | st.just(DIGEST),
    archive=st.booleans(),
)
def test_parse_round_trip_property(
    path: str, tag: str | None, digest: str | None, archive: bool
) -> None:
    prefix = "oci-archive:" if archive else "oci:"
    text = prefix + path + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = parse_target(text)
    assert isinstance(ref, LayoutTarget)
    assert (ref.tag, ref.digest) == (tag, digest)
    assert ":" not in ref.path
    assert ref.domain == prefix + ref.path
    assert parse_target(str(ref)) == ref
