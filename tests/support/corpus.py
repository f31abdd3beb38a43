"""The test image corpus: documents built from bytes, digests computed, pushed to a real registry.

Every document is a Python dict serialised with a per-document JSON style (some compact, some
indented with 2, 3 or a tab, some with a trailing newline), and its digest is the SHA-256 of
exactly those bytes. Layers are tiny deterministic tar files wrapped in gzip with *stored*
deflate blocks (no compressor in the loop), so every run, on every machine, produces the same
bytes and digests -- golden files can compare against them.

:func:`build_corpus` only builds; :func:`push_corpus` builds and pushes through the registry's
HTTP API (blobs: ``POST`` upload then monolithic ``PUT ...&digest=``; manifests: ``PUT`` with the
manifest's media type as ``Content-Type``, children before their index). Top-level images are
pushed by tag (every tag in ``tags``; :attr:`PushedImage.tag` is the first), children of indexes
by digest only (their ``tag`` is ``""``).

Corpus keys (repository ``<prefix>/<key>`` unless noted):

``oci-index``   OCI index, 6 linux platforms (amd64 with CPU ``features``, arm64/v8, arm/v7,
                arm/v6, ppc64le, s390x), index annotations.
``buildkit``    BuildKit-style OCI index: linux/amd64 and linux/arm64 images plus one attestation
                manifest for each (platform unknown/unknown, ``vnd.docker.reference.*``).
``windows``     Docker manifest list: linux/amd64 and two windows/amd64 (``os.version``; one with
                ``os.features: ["win32k"]``).
``schema2``     single Docker schema2 image, linux/arm/v7.
``oci-single``  single OCI image manifest (linux/riscv64) with manifest annotations.
``artifact``    OCI manifest with ``artifactType`` and the empty config descriptor.
``noplatform``  OCI index whose two entries have no ``platform``.
``nested``      OCI index of one image and one index (which holds two images).
``big-index``   OCI index of 150 distinct linux/amd64 images (one shared layer).
``deep``        single OCI image at ``<prefix>/a/b/c/d/e/deep-path/image``.

Config corpus keys (:data:`CONFIG_CORPUS_KEYS`; not in :data:`CORPUS_KEYS`, whose goldens
and README outputs must not change: pass ``keys=CONFIG_CORPUS_KEYS`` to build or push them):

``app``          OCI index: linux/amd64 and linux/arm64 images whose configs set labels, env,
                 entrypoint, cmd, user, working dir, exposed ports, volumes, stop signal,
                 healthcheck and a history with ``empty_layer`` entries (one layer annotated),
                 plus an attestation manifest for linux/amd64.
``app-docker``   single Docker schema2 image with ``Shell``, an author, and a history longer
                 than its layers (a non-empty entry left without a layer).
``layers-mixed`` single OCI image with a gzip, a zstd and a non-distributable layer and a
                 history shorter than its layers.
``windows-app``  Docker manifest list of two windows/amd64 images (``os.version``,
                 ``os.features``, a Windows ``Shell`` and ``User``).
``helm``         OCI manifest whose config has an unknown media type (an artifact).
``no-history``   single OCI image whose config has only its platform and rootfs.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import struct
import tarfile
import threading
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

if TYPE_CHECKING:
    from .registry import Registry

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SBOM_ARTIFACT_TYPE = "application/vnd.example.sbom.v1+json"

INDEX_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
ALL_MANIFEST_MEDIA_TYPES = (DOCKER_MANIFEST_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST)
ACCEPT_ALL_MANIFESTS = ", ".join(ALL_MANIFEST_MEDIA_TYPES)

DEFAULT_PREFIX = "corpus"
DEFAULT_TAGS = ("v1", "latest")
BIG_INDEX_SIZE = 150
CORPUS_KEYS = (
    "oci-index",
    "buildkit",
    "windows",
    "schema2",
    "oci-single",
    "artifact",
    "noplatform",
    "nested",
    "big-index",
    "deep",
)
DEEP_REPO_SUFFIX = "a/b/c/d/e/deep-path/image"
CONFIG_CORPUS_KEYS = ("app", "app-docker", "layers-mixed", "windows-app", "helm", "no-history")
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


@dataclass(frozen=True)
class PushedBlob:
    media_type: str
    digest: str
    size: int
    data: bytes

    @classmethod
    def of(cls, media_type: str, data: bytes) -> PushedBlob:
        return cls(media_type, sha256_digest(data), len(data), data)


@dataclass
class PushedImage:
    key: str  # corpus key, e.g. "oci-index"; children: "<parent key>/<n>"
    repo: str  # repository path in the registry, e.g. "corpus/oci-index"
    tag: str  # "" for children (pushed by digest only)
    digest: str
    media_type: str
    size: int
    raw: bytes  # exact manifest/index bytes pushed
    document: dict[str, Any]  # parsed raw
    config: PushedBlob | None  # single images: their config blob
    layers: list[PushedBlob]  # single images
    children: list[PushedImage]  # indexes: child images in order (nested index allowed)
    config_platform: dict[str, Any] | None  # single images: platform fields of the config
    compressed_size: int | None  # single images: config size + sum(layer sizes)
    tags: list[str] = field(default_factory=list)  # every tag pushed (first == tag)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def reference(self) -> str:
        """``repo:tag`` (``repo@digest`` for children), without the registry host."""
        return f"{self.repo}:{self.tag}" if self.tag else f"{self.repo}@{self.digest}"

    @property
    def by_digest(self) -> str:
        return f"{self.repo}@{self.digest}"

    def walk(self) -> Iterable[PushedImage]:
        """This image and every descendant, depth first, parents before children."""
        yield self
        for child in self.children:
            yield from child.walk()

    def blobs(self) -> list[PushedBlob]:
        return ([self.config] if self.config is not None else []) + list(self.layers)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- deterministic bytes ------------------------------------------------------------------------


def prng_bytes(seed: str, size: int) -> bytes:
    """``size`` random-looking bytes fully determined by ``seed`` (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def tar_bytes(files: Sequence[tuple[str, bytes]]) -> bytes:
    """A minimal ustar archive (no record padding beyond the two end blocks), fixed metadata."""
    out = io.BytesIO()
    for name, data in files:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        out.write(info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict"))
        out.write(data)
        out.write(b"\0" * (-len(data) % 512))
    out.write(b"\0" * 1024)
    return out.getvalue()


def gzip_stored(data: bytes) -> bytes:
    """Gzip with stored (uncompressed) deflate blocks: byte-identical everywhere."""
    out = bytearray(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # no name, mtime 0, OS unknown
    chunks = [data[i : i + 0xFFFF] for i in range(0, len(data), 0xFFFF)] or [b""]
    for n, chunk in enumerate(chunks):
        out.append(1 if n == len(chunks) - 1 else 0)  # BFINAL, BTYPE=00 (stored)
        out += struct.pack("<HH", len(chunk), len(chunk) ^ 0xFFFF)
        out += chunk
    out += struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    assert gzip.decompress(bytes(out)) == data
    return bytes(out)


def zstd_raw(data: bytes) -> bytes:
    """A zstd frame of raw (uncompressed) blocks: byte-identical everywhere, no compressor."""
    if not 256 <= len(data) < 65536 + 256:
        raise ValueError("zstd_raw takes 256 to 65791 bytes")
    out = bytearray(b"\x28\xb5\x2f\xfd")  # magic
    out.append(0x60)  # single segment, 2-byte frame content size, no checksum, no dictionary
    out += struct.pack("<H", len(data) - 256)
    chunks = [data[i : i + 0x20000] for i in range(0, len(data), 0x20000)]
    for n, chunk in enumerate(chunks):
        last = 1 if n == len(chunks) - 1 else 0
        header = last | (0 << 1) | (len(chunk) << 3)  # Raw_Block
        out += header.to_bytes(3, "little")
        out += chunk
    return bytes(out)


def dumps(document: dict[str, Any], style: str) -> bytes:
    """Serialise ``document`` in one of the corpus styles."""
    if style == "compact":
        text = json.dumps(document, separators=(",", ":"))
    elif style == "compact-nl":
        text = json.dumps(document, separators=(",", ":")) + "\n"
    elif style == "spaced":
        text = json.dumps(document)
    elif style == "indent2":
        text = json.dumps(document, indent=2)
    elif style == "indent3":
        text = json.dumps(document, indent=3)
    elif style == "indent3-nl":
        text = json.dumps(document, indent=3) + "\n"
    elif style == "tab":
        text = json.dumps(document, indent="\t")
    else:
        raise ValueError(f"unknown JSON style {style!r}")
    return text.encode("utf-8")


# -- building -----------------------------------------------------------------------------------

_PLATFORM_KEYS = ("architecture", "os", "os.version", "os.features", "variant", "features")
_CONFIG_PLATFORM_KEYS = ("architecture", "os", "variant", "os.version", "os.features")


def _platform(text: str, **extra: Any) -> dict[str, Any]:
    """``"linux/arm/v7"`` -> ``{"architecture": "arm", "os": "linux", "variant": "v7"}``."""
    os_name, arch, *variant = text.split("/")
    fields: dict[str, Any] = {"architecture": arch, "os": os_name, **extra}
    if variant:
        fields["variant"] = variant[0]
    return {k: fields[k] for k in _PLATFORM_KEYS if k in fields}


def _created(n: int) -> str:
    hours, minutes, seconds = n // 3600 % 24, n // 60 % 60, n % 60
    return f"2024-03-{1 + n // 86400:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}Z"


class _Builder:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.strip("/")

    def repo(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def layer(self, seed: str, media_type: str, size: int) -> tuple[PushedBlob, str]:
        """A gzip layer holding one file of ``size`` deterministic bytes; also its diff_id."""
        tar = tar_bytes([(f"imginspect/{seed.replace('/', '_')}.bin", prng_bytes(seed, size))])
        return PushedBlob.of(media_type, gzip_stored(tar)), sha256_digest(tar)

    def image(
        self,
        key: str,
        repo: str,
        *,
        platform: str | dict[str, Any],
        docker: bool = False,
        layer_sizes: Sequence[int] = (300,),
        style: str = "compact",
        config_style: str = "compact",
        annotations: dict[str, str] | None = None,
        created: int = 0,
        labels: dict[str, str] | None = None,
        shared_layer: tuple[PushedBlob, str] | None = None,
    ) -> PushedImage:
        """A runnable image: config with platform fields, one layer per ``layer_sizes`` entry."""
        plat = _platform(platform) if isinstance(platform, str) else dict(platform)
        layer_type = DOCKER_LAYER if docker else OCI_LAYER
        built = (
            [shared_layer]
            if shared_layer is not None
            else [self.layer(f"{key}/layer{i}", layer_type, n) for i, n in enumerate(layer_sizes)]
        )
        config_doc: dict[str, Any] = {
            "architecture": plat["architecture"],
            "os": plat["os"],
        }
        for extra in ("os.version", "os.features", "variant"):
            if extra in plat:
                config_doc[extra] = plat[extra]
        config_doc |= {
            "created": _created(created),
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
                "WorkingDir": "/",
                "Labels": {"org.example.corpus.key": key, **(labels or {})},
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in built]},
            "history": [
                {"created": _created(created), "created_by": f"ADD layer{i} / # {key}"}
                for i in range(len(built))
            ],
        }
        config = PushedBlob.of(
            DOCKER_CONFIG if docker else OCI_CONFIG, dumps(config_doc, config_style)
        )
        return self.manifest(
            key,
            repo,
            config=config,
            layers=[blob for blob, _ in built],
            docker=docker,
            style=style,
            annotations=annotations,
        )

    def manifest(
        self,
        key: str,
        repo: str,
        *,
        config: PushedBlob,
        layers: list[PushedBlob],
        docker: bool = False,
        style: str = "compact",
        annotations: dict[str, str] | None = None,
        artifact_type: str | None = None,
        layer_annotations: Sequence[dict[str, str] | None] | None = None,
        config_data: bool = False,
    ) -> PushedImage:
        media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        if artifact_type is not None:
            doc["artifactType"] = artifact_type
        doc["config"] = _descriptor(config, docker=docker)
        if config_data:
            doc["config"]["data"] = _b64(config.data)
        doc["layers"] = []
        for i, layer in enumerate(layers):
            desc = _descriptor(layer, docker=docker)
            if layer_annotations is not None and layer_annotations[i]:
                desc["annotations"] = dict(layer_annotations[i] or {})
            doc["layers"].append(desc)
        if annotations:
            doc["annotations"] = dict(annotations)
        raw = dumps(doc, style)
        try:
            parsed_config = json.loads(config.data)
        except ValueError:
            parsed_config = {}
        config_platform = None
        if isinstance(parsed_config, dict) and "architecture" in parsed_config:
            config_platform = {
                k: parsed_config[k] for k in _CONFIG_PLATFORM_KEYS if k in parsed_config
            }
        return PushedImage(
            key=key,
            repo=repo,
            tag="",
            digest=sha256_digest(raw),
            media_type=media_type,
            size=len(raw),
            raw=raw,
            document=json.loads(raw),
            config=config,
            layers=list(layers),
            children=[],
            config_platform=config_platform,
            compressed_size=config.size + sum(layer.size for layer in layers),
        )

    def index(
        self,
        key: str,
        repo: str,
        entries: Sequence[tuple[PushedImage, dict[str, Any] | None, dict[str, str] | None]],
        *,
        docker: bool = False,
        style: str = "compact",
        annotations: dict[str, str] | None = None,
    ) -> PushedImage:
        """An index over ``(child, platform or None, annotations or None)`` entries."""
        media_type = DOCKER_MANIFEST_LIST if docker else OCI_INDEX
        manifests = []
        for child, platform, child_annotations in entries:
            desc = _descriptor_of_image(child, docker=docker)
            if platform is not None:
                desc["platform"] = platform
            if child_annotations:
                desc["annotations"] = dict(child_annotations)
            manifests.append(desc)
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
        if annotations:
            doc["annotations"] = dict(annotations)
        raw = dumps(doc, style)
        return PushedImage(
            key=key,
            repo=repo,
            tag="",
            digest=sha256_digest(raw),
            media_type=media_type,
            size=len(raw),
            raw=raw,
            document=json.loads(raw),
            config=None,
            layers=[],
            children=[child for child, _, _ in entries],
            config_platform=None,
            compressed_size=None,
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _descriptor(blob: PushedBlob, *, docker: bool) -> dict[str, Any]:
    if docker:  # Docker writes size before digest
        return {"mediaType": blob.media_type, "size": blob.size, "digest": blob.digest}
    return {"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size}


def _descriptor_of_image(image: PushedImage, *, docker: bool) -> dict[str, Any]:
    if docker:
        return {"mediaType": image.media_type, "size": image.size, "digest": image.digest}
    return {"mediaType": image.media_type, "digest": image.digest, "size": image.size}


def _oci_index(b: _Builder) -> PushedImage:
    key, repo = "oci-index", b.repo("oci-index")
    specs: list[tuple[str, dict[str, Any], Sequence[int], str]] = [
        ("linux/amd64", {"features": ["sse4"]}, (512, 1024), "compact"),
        ("linux/arm64/v8", {}, (700,), "indent2"),
        ("linux/arm/v7", {}, (640, 128), "compact-nl"),
        ("linux/arm/v6", {}, (600,), "indent3"),
        ("linux/ppc64le", {}, (333,), "spaced"),
        ("linux/s390x", {}, (444, 222), "compact"),
    ]
    entries = []
    for n, (plat, extra, sizes, style) in enumerate(specs):
        child = b.image(
            f"{key}/{n}", repo, platform=plat, layer_sizes=sizes, style=style, created=n
        )
        entries.append((child, _platform(plat, **extra), None))
    return b.index(
        key,
        repo,
        entries,
        style="indent3",
        annotations={
            "org.opencontainers.image.created": "2024-03-01T00:00:00Z",
            "org.opencontainers.image.source": "https://example.invalid/imginspect/corpus",
            "org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
        },
    )


def _in_toto_statement(predicate_type: str, image: PushedImage, platform: str) -> bytes:
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [
            {
                "name": "pkg:docker/example.invalid/corpus/buildkit@v1?platform="
                + quote(platform, safe=""),
                "digest": {"sha256": image.digest.removeprefix("sha256:")},
            }
        ],
        "predicate": {"note": f"test predicate for {image.key}", "platform": platform},
    }
    return dumps(statement, "compact")


def _buildkit(b: _Builder) -> PushedImage:
    key, repo = "buildkit", b.repo("buildkit")
    images: list[tuple[PushedImage, str]] = []
    for n, plat in enumerate(("linux/amd64", "linux/arm64")):
        images.append(
            (
                b.image(f"{key}/{n}", repo, platform=plat, layer_sizes=(256 + n,), created=10 + n),
                plat,
            )
        )
    entries: list[tuple[PushedImage, dict[str, Any] | None, dict[str, str] | None]] = [
        (image, _platform(plat), None) for image, plat in images
    ]
    for n, (image, plat) in enumerate(images):
        predicate_types = ("https://spdx.dev/Document", "https://slsa.dev/provenance/v0.2")
        layers = [
            PushedBlob.of(IN_TOTO, _in_toto_statement(p, image, plat)) for p in predicate_types
        ]
        config_doc = {
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        }
        attestation = b.manifest(
            f"{key}/{len(images) + n}",
            repo,
            config=PushedBlob.of(OCI_CONFIG, dumps(config_doc, "compact")),
            layers=layers,
            style="compact",
            layer_annotations=[{"in-toto.io/predicate-type": p} for p in predicate_types],
        )
        entries.append(
            (
                attestation,
                {"architecture": "unknown", "os": "unknown"},
                {
                    "vnd.docker.reference.digest": image.digest,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            )
        )
    return b.index(key, repo, entries, style="compact")


def _windows(b: _Builder) -> PushedImage:
    key, repo = "windows", b.repo("windows")
    specs: list[dict[str, Any]] = [
        _platform("linux/amd64"),
        _platform("windows/amd64", **{"os.version": "10.0.17763.5576"}),
        _platform("windows/amd64", **{"os.version": "10.0.20348.2340", "os.features": ["win32k"]}),
    ]
    entries = []
    for n, plat in enumerate(specs):
        child = b.image(
            f"{key}/{n}",
            repo,
            platform=plat,
            docker=True,
            layer_sizes=(400 + 10 * n,),
            style="indent3",
            config_style="compact",
            created=20 + n,
        )
        entries.append((child, plat, None))
    return b.index(key, repo, entries, docker=True, style="indent3")


def _schema2(b: _Builder) -> PushedImage:
    return b.image(
        "schema2",
        b.repo("schema2"),
        platform="linux/arm/v7",
        docker=True,
        layer_sizes=(900, 300, 50),
        style="indent3",
        config_style="compact-nl",
        created=30,
    )


def _oci_single(b: _Builder) -> PushedImage:
    return b.image(
        "oci-single",
        b.repo("oci-single"),
        platform="linux/riscv64",
        layer_sizes=(1200,),
        style="tab",
        config_style="indent2",
        created=31,
        annotations={
            "org.opencontainers.image.title": "imginspect oci-single",
            "org.opencontainers.image.version": "1.2.3",
            "org.opencontainers.image.created": "2024-03-01T00:00:31Z",
        },
    )


def _artifact(b: _Builder) -> PushedImage:
    sbom = {
        "spdxVersion": "SPDX-2.3",
        "name": "imginspect-corpus-sbom",
        "packages": [{"name": "busybox", "versionInfo": "1.36.1"}],
    }
    return b.manifest(
        "artifact",
        b.repo("artifact"),
        config=PushedBlob.of(OCI_EMPTY, b"{}"),
        layers=[PushedBlob.of("application/spdx+json", dumps(sbom, "indent2"))],
        style="indent2",
        artifact_type=SBOM_ARTIFACT_TYPE,
        config_data=True,
        layer_annotations=[{"org.opencontainers.image.title": "sbom.spdx.json"}],
        annotations={
            "org.opencontainers.image.created": "2024-03-01T00:00:40Z",
            "org.example.sbom.format": "spdx",
        },
    )


def _noplatform(b: _Builder) -> PushedImage:
    key, repo = "noplatform", b.repo("noplatform")
    entries: list[tuple[PushedImage, dict[str, Any] | None, dict[str, str] | None]] = [
        (
            b.image(f"{key}/{n}", repo, platform=plat, layer_sizes=(150 + n,), created=50 + n),
            None,
            None,
        )
        for n, plat in enumerate(("linux/amd64", "linux/arm64/v8"))
    ]
    return b.index(key, repo, entries, style="spaced")


def _nested(b: _Builder) -> PushedImage:
    key, repo = "nested", b.repo("nested")
    inner_entries: list[tuple[PushedImage, dict[str, Any] | None, dict[str, str] | None]] = []
    for n, plat in enumerate(("linux/arm64/v8", "linux/arm/v7")):
        child = b.image(f"{key}/1/{n}", repo, platform=plat, layer_sizes=(210 + n,), created=60 + n)
        inner_entries.append((child, _platform(plat), None))
    inner = b.index(
        f"{key}/1",
        repo,
        inner_entries,
        style="indent2",
        annotations={"org.example.corpus.level": "inner"},
    )
    first = b.image(f"{key}/0", repo, platform="linux/amd64", layer_sizes=(200,), created=62)
    return b.index(
        key,
        repo,
        [(first, _platform("linux/amd64"), None), (inner, None, {"org.example.nested": "true"})],
        style="indent2",
        annotations={"org.example.corpus.level": "outer"},
    )


def _big_index(b: _Builder) -> PushedImage:
    key, repo = "big-index", b.repo("big-index")
    shared = b.layer(f"{key}/shared", OCI_LAYER, 64)
    entries: list[tuple[PushedImage, dict[str, Any] | None, dict[str, str] | None]] = []
    for n in range(BIG_INDEX_SIZE):
        child = b.image(
            f"{key}/{n}",
            repo,
            platform="linux/amd64",
            shared_layer=shared,
            created=3600 + n,
            labels={"org.example.corpus.entry": str(n)},
        )
        entries.append((child, _platform("linux/amd64"), {"org.example.entry": str(n)}))
    return b.index(key, repo, entries, style="compact")


def _deep(b: _Builder) -> PushedImage:
    return b.image(
        "deep",
        b.repo(DEEP_REPO_SUFFIX),
        platform="linux/amd64",
        layer_sizes=(100,),
        style="indent2",
        created=70,
    )


def _config_image(
    b: _Builder,
    key: str,
    repo: str,
    config_doc: dict[str, Any],
    layer_specs: Sequence[tuple[str, int]],
    *,
    docker: bool = False,
    config_style: str = "indent2",
    style: str = "compact",
    layer_annotations: Sequence[dict[str, str] | None] | None = None,
) -> PushedImage:
    """An image whose config is ``config_doc`` (``rootfs`` filled in from the layers built
    for ``layer_specs``: (media type, content size) each; gzip, zstd or as is)."""
    blobs: list[PushedBlob] = []
    diff_ids: list[str] = []
    for n, (media_type, size) in enumerate(layer_specs):
        seed = f"{key}/layer{n}"
        tar = tar_bytes([(f"imginspect/{seed.replace('/', '_')}.bin", prng_bytes(seed, size))])
        data = zstd_raw(tar) if media_type.endswith("+zstd") else gzip_stored(tar)
        blobs.append(PushedBlob.of(media_type, data))
        diff_ids.append(sha256_digest(tar))
    doc = dict(config_doc)
    doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config = PushedBlob.of(DOCKER_CONFIG if docker else OCI_CONFIG, dumps(doc, config_style))
    return b.manifest(
        key,
        repo,
        config=config,
        layers=blobs,
        docker=docker,
        style=style,
        layer_annotations=layer_annotations,
    )


def _app_config(arch: str, variant: str | None, n: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "created": _created(100 + n),
        "author": "imginspect corpus <corpus@example.invalid>",
        "architecture": arch,
        "os": "linux",
    }
    if variant:
        doc["variant"] = variant
    doc["config"] = {
        "User": "10001:10001",
        "ExposedPorts": {"8080/tcp": {}, "9090/udp": {}},
        "Env": [
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "APP_MODE=production",
            "GREETING=hello <world> & more",
        ],
        "Entrypoint": ["/usr/local/bin/app", "--config", "/etc/app/config.yaml"],
        "Cmd": ["serve"],
        "Volumes": {"/var/lib/app": {}, "/tmp/cache": {}},
        "WorkingDir": "/srv/app",
        "Labels": {
            "org.opencontainers.image.title": "app",
            "org.opencontainers.image.version": "2.4.1",
            "org.opencontainers.image.source": "https://example.invalid/app",
            "com.example.platform": f"linux/{arch}",
        },
        "StopSignal": "SIGTERM",
        "Healthcheck": {
            "Test": ["CMD", "/usr/local/bin/app", "health"],
            "Interval": 30_000_000_000,
            "Timeout": 5_000_000_000,
            "StartPeriod": 10_000_000_000,
            "Retries": 3,
        },
    }
    doc["history"] = [
        {"created": _created(90), "created_by": "/bin/sh -c #(nop) ADD file:rootfs in / "},
        {
            "created": _created(90),
            "created_by": '/bin/sh -c #(nop)  CMD ["/bin/sh"]',
            "empty_layer": True,
        },
        {
            "created": _created(100 + n),
            "created_by": "ENV APP_MODE=production",
            "comment": "buildkit.dockerfile.v0",
            "empty_layer": True,
        },
        {
            "created": _created(100 + n),
            "created_by": "COPY app /usr/local/bin/app # buildkit",
            "comment": "buildkit.dockerfile.v0",
        },
        {
            "created": _created(100 + n),
            "created_by": "EXPOSE map[8080/tcp:{} 9090/udp:{}]",
            "comment": "buildkit.dockerfile.v0",
            "empty_layer": True,
        },
    ]
    return doc


def _app(b: _Builder) -> PushedImage:
    key, repo = "app", b.repo("app")
    images = []
    for n, (plat, arch, variant) in enumerate(
        (("linux/amd64", "amd64", None), ("linux/arm64", "arm64", "v8"))
    ):
        image = _config_image(
            b,
            f"{key}/{n}",
            repo,
            _app_config(arch, variant, n),
            [(OCI_LAYER, 900 + n), (OCI_LAYER, 300)],
            layer_annotations=[None, {"org.opencontainers.image.title": "app-binary"}],
        )
        images.append((image, plat))
    entries: list[tuple[PushedImage, dict[str, Any] | None, dict[str, str] | None]] = [
        (image, _platform(plat), None) for image, plat in images
    ]
    amd64 = images[0][0]
    layer = PushedBlob.of(
        IN_TOTO, _in_toto_statement("https://slsa.dev/provenance/v0.2", amd64, "linux/amd64")
    )
    attestation = b.manifest(
        f"{key}/2",
        repo,
        config=PushedBlob.of(
            OCI_CONFIG,
            dumps(
                {
                    "architecture": "unknown",
                    "os": "unknown",
                    "config": {},
                    "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
                },
                "compact",
            ),
        ),
        layers=[layer],
        layer_annotations=[{"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}],
    )
    entries.append(
        (
            attestation,
            {"architecture": "unknown", "os": "unknown"},
            {
                "vnd.docker.reference.digest": amd64.digest,
                "vnd.docker.reference.type": "attestation-manifest",
            },
        )
    )
    return b.index(key, repo, entries, style="indent2")


def _app_docker(b: _Builder) -> PushedImage:
    doc: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "author": "corpus maintainers",
        "created": _created(120),
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["-c", "echo hello"],
            "Shell": ["/bin/bash", "-o", "pipefail", "-c"],
            "Labels": {"maintainer": "corpus@example.invalid"},
        },
        "history": [
            {"created": _created(110), "created_by": "ADD rootfs.tar /"},
            {
                "created": _created(120),
                "created_by": 'SHELL ["/bin/bash", "-o", "pipefail", "-c"]',
                "empty_layer": True,
            },
            {"created": _created(120), "created_by": "RUN make install"},
            {
                "created": _created(120),
                "created_by": "RUN rm -rf /tmp/*",
                "comment": "squashed away",
            },
        ],
    }
    return _config_image(
        b,
        "app-docker",
        b.repo("app-docker"),
        doc,
        [(DOCKER_LAYER, 700), (DOCKER_LAYER, 200)],
        docker=True,
        config_style="compact",
        style="indent3",
    )


def _layers_mixed(b: _Builder) -> PushedImage:
    doc: dict[str, Any] = {
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "created": _created(130),
        "config": {"Cmd": ["/app"], "Labels": {}},
        "history": [{"created": _created(130), "created_by": "COPY rootfs /"}],
    }
    return _config_image(
        b,
        "layers-mixed",
        b.repo("layers-mixed"),
        doc,
        [(OCI_LAYER, 500), (OCI_LAYER_ZSTD, 400), (OCI_LAYER_NONDISTRIBUTABLE, 300)],
        config_style="tab",
    )


def _windows_app(b: _Builder) -> PushedImage:
    key, repo = "windows-app", b.repo("windows-app")
    entries = []
    for n, (version, features) in enumerate(
        (("10.0.17763.5576", None), ("10.0.20348.2340", ["win32k"]))
    ):
        doc: dict[str, Any] = {"architecture": "amd64", "os": "windows", "os.version": version}
        if features:
            doc["os.features"] = features
        doc["created"] = _created(140 + n)
        doc["config"] = {
            "User": "ContainerUser",
            "Env": ["PATHEXT=.COM;.EXE;.BAT;.CMD"],
            "Cmd": ["cmd", "/S", "/C", "app.exe"],
            "Shell": ["powershell", "-Command"],
            "WorkingDir": "C:\\app",
        }
        doc["history"] = [
            {"created": _created(140), "created_by": "Apply image " + version},
            {
                "created": _created(140 + n),
                "created_by": "cmd /S /C #(nop) WORKDIR C:\\app",
                "empty_layer": True,
            },
            {"created": _created(140 + n), "created_by": "cmd /S /C copy app.exe C:\\app"},
        ]
        child = _config_image(
            b,
            f"{key}/{n}",
            repo,
            doc,
            [(DOCKER_LAYER, 800 + n), (DOCKER_LAYER, 100)],
            docker=True,
            config_style="compact",
            style="indent3",
        )
        plat: dict[str, Any] = {"architecture": "amd64", "os": "windows", "os.version": version}
        if features:
            plat["os.features"] = features
        entries.append((child, plat, None))
    return b.index(key, repo, entries, docker=True, style="indent3")


def _helm(b: _Builder) -> PushedImage:
    chart_config = {"name": "app", "version": "0.3.0", "apiVersion": "v2"}
    chart = gzip_stored(tar_bytes([("app/Chart.yaml", b"apiVersion: v2\nname: app\n")]))
    return b.manifest(
        "helm",
        b.repo("helm"),
        config=PushedBlob.of(HELM_CONFIG, dumps(chart_config, "compact")),
        layers=[PushedBlob.of(HELM_CHART, chart)],
        style="compact",
        annotations={"org.opencontainers.image.title": "app"},
    )


def _no_history(b: _Builder) -> PushedImage:
    return _config_image(
        b,
        "no-history",
        b.repo("no-history"),
        {"architecture": "s390x", "os": "linux"},
        [(OCI_LAYER, 260)],
        config_style="compact",
    )


_CONFIG_BUILDERS = {
    "app": _app,
    "app-docker": _app_docker,
    "layers-mixed": _layers_mixed,
    "windows-app": _windows_app,
    "helm": _helm,
    "no-history": _no_history,
}
assert tuple(_CONFIG_BUILDERS) == CONFIG_CORPUS_KEYS


_BUILDERS = {
    "oci-index": _oci_index,
    "buildkit": _buildkit,
    "windows": _windows,
    "schema2": _schema2,
    "oci-single": _oci_single,
    "artifact": _artifact,
    "noplatform": _noplatform,
    "nested": _nested,
    "big-index": _big_index,
    "deep": _deep,
}
assert tuple(_BUILDERS) == CORPUS_KEYS


def build_corpus(
    *,
    prefix: str = DEFAULT_PREFIX,
    tags: Sequence[str] = DEFAULT_TAGS,
    keys: Iterable[str] | None = None,
) -> dict[str, PushedImage]:
    """Build (without pushing) the corpus; the bytes do not depend on ``prefix`` or ``tags``."""
    if not tags:
        raise ValueError("at least one tag is needed")
    builder = _Builder(prefix)
    corpus = {}
    for key in CORPUS_KEYS if keys is None else keys:
        image = (_BUILDERS.get(key) or _CONFIG_BUILDERS[key])(builder)
        image.tag = tags[0]
        image.tags = list(tags)
        corpus[key] = image
    return corpus


# -- pushing ------------------------------------------------------------------------------------


class PushError(RuntimeError):
    pass


class Pusher:
    """Pushes :class:`PushedImage` trees through one httpx client (auth handled by it).

    Thread-safe: the children of an index are pushed by ``parallel`` threads.
    """

    def __init__(self, client: httpx.Client, *, parallel: int = 6) -> None:
        self.client = client
        self.parallel = parallel
        self._lock = threading.Lock()
        self._done: dict[tuple[str, str, str], threading.Event] = {}

    def _claim(self, kind: str, repo: str, ref: str) -> threading.Event | None:
        """An event to set when done if this thread should do the work, else None (after
        waiting for whoever does it)."""
        key = (kind, repo, ref)
        with self._lock:
            event = self._done.get(key)
            if event is None:
                event = self._done[key] = threading.Event()
                return event
        event.wait()
        return None

    def _check(self, response: httpx.Response, expected: int, what: str) -> None:
        if response.status_code != expected:
            raise PushError(
                f"{what}: HTTP {response.status_code} (expected {expected}): {response.text[:2000]}"
            )

    def push_blob(self, repo: str, blob: PushedBlob) -> None:
        event = self._claim("blob", repo, blob.digest)
        if event is None:
            return
        try:
            started = self.client.post(f"/v2/{repo}/blobs/uploads/")
            self._check(started, 202, f"start upload of {blob.digest} to {repo}")
            location = started.headers["Location"]
            sep = "&" if "?" in location else "?"
            finished = self.client.put(
                f"{location}{sep}digest={quote(blob.digest)}",
                content=blob.data,
                headers={"Content-Type": "application/octet-stream"},
            )
            self._check(finished, 201, f"upload of {blob.digest} to {repo}")
        finally:
            event.set()

    def push_manifest(self, repo: str, reference: str, image: PushedImage) -> None:
        event = self._claim("manifest", repo, reference)
        if event is None:
            return
        try:
            response = self.client.put(
                f"/v2/{repo}/manifests/{reference}",
                content=image.raw,
                headers={"Content-Type": image.media_type},
            )
            self._check(response, 201, f"manifest {image.key} to {repo}:{reference}")
            returned = response.headers.get("Docker-Content-Digest")
            if returned != image.digest:
                raise PushError(f"{image.key}: registry says {returned}, computed {image.digest}")
        finally:
            event.set()

    def push(self, image: PushedImage, *, _nested: bool = False) -> None:
        """Push ``image`` (blobs, children first) by digest, then under each of its tags."""
        if not _nested and self.parallel > 1 and len(image.children) > self.parallel:
            with ThreadPoolExecutor(self.parallel, thread_name_prefix="corpus-push") as pool:
                for future in [pool.submit(self.push, c, _nested=True) for c in image.children]:
                    future.result()
        else:
            for child in image.children:
                self.push(child, _nested=True)
        for blob in image.blobs():
            self.push_blob(image.repo, blob)
        for reference in image.tags or [image.digest]:
            self.push_manifest(image.repo, reference, image)


def push_corpus(
    registry: Registry,
    *,
    prefix: str = DEFAULT_PREFIX,
    tags: Sequence[str] = DEFAULT_TAGS,
    keys: Iterable[str] | None = None,
) -> dict[str, PushedImage]:
    """Build the corpus and push it into ``registry`` as its test user."""
    corpus = build_corpus(prefix=prefix, tags=tags, keys=keys)
    with registry.client(authenticated=True) as client:
        pusher = Pusher(client)
        for image in corpus.values():
            pusher.push(image)
    return corpus
