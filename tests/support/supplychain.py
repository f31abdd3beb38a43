"""Supply-chain test images and a real OCI 1.1 referrers endpoint.

* :func:`build_supply_chain` builds, under a prefix, ``supply/app`` (an OCI index of
  linux/amd64 and linux/arm64 with BuildKit attestation manifests: SPDX SBOM plus SLSA
  provenance v1 for amd64, SLSA provenance v0.2 only for arm64), referrer artifacts with a
  ``subject`` (a CycloneDX SBOM of the arm64 image, a Notary signature of the index), and a
  cosign-style ``sha256-<hex>.sig`` tag on the index; ``supply/bare`` (one image, nothing
  attached).
* :func:`push_supply_chain` pushes them; with ``tag_schema`` (registries without the
  referrers API, such as distribution 2.8) it also pushes the ``sha256-<hex>`` referrers
  tag-schema indexes, as oras and cosign do on such registries.
* :class:`ReferrersProxy`: a small real HTTP server in front of a plain registry that
  forwards everything, paginates tag lists as distribution 3 does (Debian's 2.8 ignores
  ``n`` and always sends the whole list), and implements
  ``GET /v2/<name>/referrers/<digest>`` from the
  manifests with a ``subject`` pushed through it (``artifactType`` filter applied and
  announced in ``OCI-Filters-Applied`` when ``filters`` is set; ``Link`` pagination with
  ``page_size``), as a registry implementing OCI distribution 1.1 does.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.support.corpus import (
    IN_TOTO,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    PushedBlob,
    PushedImage,
    Pusher,
    _Builder,
    _platform,
    dumps,
    sha256_digest,
)
from tests.support.registry import Registry

SPDX = "https://spdx.dev/Document"
CYCLONEDX_TYPE = "application/vnd.cyclonedx+json"
SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
NOTARY = "application/vnd.cncf.notary.signature"
COSIGN_SIG = "application/vnd.dev.cosign.simplesigning.v1+json"
EMPTY_JSON = PushedBlob.of(OCI_EMPTY, b"{}")


@dataclass
class SupplyChain:
    app: PushedImage  # the index
    amd64: PushedImage
    arm64: PushedImage
    bare: PushedImage
    #: referrer artifacts (with ``subject``), by subject digest
    referrers: dict[str, list[PushedImage]] = field(default_factory=dict)
    #: cosign-style tagged manifests: (tag, image)
    cosign: list[tuple[str, PushedImage]] = field(default_factory=list)

    def images(self) -> list[PushedImage]:
        return [self.app, self.bare]


def _statement(predicate_type: str, image: PushedImage) -> bytes:
    return dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "predicateType": predicate_type,
            "subject": [{"name": image.repo, "digest": {"sha256": image.digest[7:]}}],
            "predicate": {},
        },
        "compact",
    )


def _attestation(b: _Builder, key: str, image: PushedImage, predicates: list[str]) -> PushedImage:
    layers = [PushedBlob.of(IN_TOTO, _statement(p, image)) for p in predicates]
    config = PushedBlob.of(
        OCI_CONFIG,
        dumps(
            {
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [x.digest for x in layers]},
            },
            "compact",
        ),
    )
    return b.manifest(
        key,
        image.repo,
        config=config,
        layers=layers,
        layer_annotations=[{"in-toto.io/predicate-type": p} for p in predicates],
    )


def _referrer(
    key: str,
    repo: str,
    subject: PushedImage,
    artifact_type: str,
    payload: bytes,
    created: str,
) -> PushedImage:
    """An OCI 1.1 artifact manifest with ``artifactType`` and ``subject``."""
    blob = PushedBlob.of(artifact_type, payload)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON.digest, "size": 2},
        "layers": [{"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size}],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
        "annotations": {"org.opencontainers.image.created": created},
    }
    return _artifact_image(key, repo, doc, EMPTY_JSON, blob)


def _artifact_image(
    key: str, repo: str, doc: dict[str, Any], config: PushedBlob, blob: PushedBlob
) -> PushedImage:
    """An OCI manifest of one layer, pushed by digest only (referrers and cosign tags)."""
    raw = dumps(doc, "compact")
    return PushedImage(
        key=key,
        repo=repo,
        tag="",
        digest=sha256_digest(raw),
        media_type=OCI_MANIFEST,
        size=len(raw),
        raw=raw,
        document=json.loads(raw),
        config=config,
        layers=[blob],
        children=[],
        config_platform=None,
        compressed_size=None,
    )


def _cosign_signature(key: str, repo: str, subject: PushedImage) -> PushedImage:
    payload = dumps({"critical": {"image": {"docker-manifest-digest": subject.digest}}}, "compact")
    blob = PushedBlob.of(COSIGN_SIG, payload)
    config = PushedBlob.of(OCI_CONFIG, dumps({"architecture": "", "os": ""}, "compact"))
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
        "layers": [
            {
                "mediaType": blob.media_type,
                "digest": blob.digest,
                "size": blob.size,
                "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="},
            }
        ],
    }
    return _artifact_image(key, repo, doc, config, blob)


def cosign_tag(digest: str, suffix: str) -> str:
    return digest.replace(":", "-") + suffix


def build_supply_chain(prefix: str = "corpus") -> SupplyChain:
    b = _Builder(prefix)
    repo = b.repo("supply/app")
    amd64 = b.image("supply/app/0", repo, platform="linux/amd64", layer_sizes=(200,), created=20)
    arm64 = b.image("supply/app/1", repo, platform="linux/arm64", layer_sizes=(201,), created=21)
    att_amd64 = _attestation(b, "supply/app/2", amd64, [SPDX, SLSA_V1])
    att_arm64 = _attestation(b, "supply/app/3", arm64, [SLSA_V02])
    entries: list[tuple[PushedImage, dict[str, Any] | None, dict[str, str] | None]] = [
        (amd64, _platform("linux/amd64"), None),
        (arm64, _platform("linux/arm64"), None),
    ]
    for att, image in ((att_amd64, amd64), (att_arm64, arm64)):
        entries.append(
            (
                att,
                {"architecture": "unknown", "os": "unknown"},
                {
                    "vnd.docker.reference.digest": image.digest,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            )
        )
    app = b.index("supply/app", repo, entries)
    app.tag, app.tags = "v1", ["v1"]
    bare_repo = b.repo("supply/bare")
    bare = b.image("supply/bare", bare_repo, platform="linux/amd64", layer_sizes=(99,), created=3)
    bare.tag, bare.tags = "v1", ["v1"]
    chain = SupplyChain(app=app, amd64=amd64, arm64=arm64, bare=bare)
    sbom = _referrer(
        "supply/sbom",
        repo,
        arm64,
        CYCLONEDX_TYPE,
        b'{"bomFormat":"CycloneDX"}',
        "2024-05-01T00:00:00Z",
    )
    signature = _referrer(
        "supply/notary", repo, app, NOTARY, b"notary-signature", "2024-05-02T00:00:00Z"
    )
    chain.referrers = {arm64.digest: [sbom], app.digest: [signature]}
    chain.cosign = [(cosign_tag(app.digest, ".sig"), _cosign_signature("supply/sig", repo, app))]
    return chain


def tag_schema_index(referrers: list[PushedImage]) -> bytes:
    """The referrers tag-schema index listing ``referrers`` (OCI distribution 1.1)."""
    manifests = []
    for image in referrers:
        desc: dict[str, Any] = {
            "mediaType": image.media_type,
            "digest": image.digest,
            "size": image.size,
        }
        if "artifactType" in image.document:
            desc["artifactType"] = image.document["artifactType"]
        if image.document.get("annotations"):
            desc["annotations"] = image.document["annotations"]
        manifests.append(desc)
    return dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}, "compact")


def push_supply_chain(client: httpx.Client, chain: SupplyChain, *, tag_schema: bool) -> None:
    """Push ``chain`` through ``client``; ``tag_schema``: also the ``sha256-<hex>`` indexes."""
    pusher = Pusher(client)
    for image in chain.images():
        pusher.push(image)
    for referrers in chain.referrers.values():
        for referrer in referrers:
            pusher.push(referrer)
    for tag, image in chain.cosign:
        image.tag, image.tags = tag, [tag]
        pusher.push(image)
    if tag_schema:
        for subject, referrers in chain.referrers.items():
            raw = tag_schema_index(referrers)
            response = client.put(
                f"/v2/{chain.app.repo}/manifests/{subject.replace(':', '-')}",
                content=raw,
                headers={"Content-Type": OCI_INDEX},
            )
            assert response.status_code == 201, response.text


def push_to_registry(registry: Registry, prefix: str = "corpus") -> SupplyChain:
    """Build and push into a registry without the referrers API (tag schema included)."""
    chain = build_supply_chain(prefix)
    with registry.client(authenticated=True) as client:
        push_supply_chain(client, chain, tag_schema=True)
    return chain


def push_many_tags(registry: Registry, repo: str, tags: list[str]) -> PushedImage:
    """One small image under each of ``tags`` (blobs once, then one PUT per tag)."""
    b = _Builder("x")
    image = b.image(repo, repo, platform="linux/amd64", layer_sizes=(50,))
    with registry.client(authenticated=True) as client:
        pusher = Pusher(client)
        for blob in image.blobs():
            pusher.push_blob(repo, blob)
        for tag in tags:
            response = client.put(
                f"/v2/{repo}/manifests/{tag}",
                content=image.raw,
                headers={"Content-Type": image.media_type},
            )
            assert response.status_code == 201, response.text
    return image


# --------------------------------------------------------------------------- referrers API


class ReferrersProxy:
    """A loopback HTTP server forwarding to ``backend`` (a plain-HTTP registry) that adds the
    OCI 1.1 referrers API. ``requests``: (method, path with query) of every request seen."""

    def __init__(self, backend: Registry, *, filters: bool = True, page_size: int = 100) -> None:
        assert backend.scheme == "http" and backend.auth is None
        self.backend = backend
        self.filters = filters
        self.page_size = page_size
        self.referrers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        #: tag-list pages served
        self.tag_pages = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                parts = urlsplit(self.path)
                segments = parts.path.split("/")
                if (
                    self.command == "GET"
                    and len(segments) >= 5
                    and segments[1] == "v2"
                    and segments[-2] == "referrers"
                ):
                    repo = "/".join(segments[2:-2])
                    self._referrers(repo, segments[-1], parse_qs(parts.query))
                    return
                if self.command == "GET" and parts.path.endswith("/tags/list"):
                    self._tags(parts.path, parse_qs(parts.query))
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, answer = proxy._forward(
                    self.command, self.path, dict(self.headers.items()), body
                )
                if (
                    self.command == "PUT"
                    and status == 201
                    and len(segments) >= 5
                    and segments[-2] == "manifests"
                ):
                    subject = proxy._record("/".join(segments[2:-2]), body, self.headers)
                    if subject is not None:
                        headers["OCI-Subject"] = subject
                self._reply(status, answer, headers)

            def _tags(self, path: str, query: dict[str, list[str]]) -> None:
                """Tag-list pagination as distribution 3 does it (lexical order, ``n``,
                ``last``, ``Link: <...>; rel="next"``) over the backend's complete list:
                distribution 2.8 (Debian's registry) ignores ``n``."""
                status, headers, answer = proxy._forward(
                    "GET", path, dict(self.headers.items()), b""
                )
                if status != 200:
                    self._reply(status, answer, headers)
                    return
                document = json.loads(answer)
                tags = sorted(document.get("tags") or [])
                last = query.get("last", [None])[0]
                if last is not None:
                    tags = [t for t in tags if t > last]
                n = int(query.get("n", ["0"])[0]) or len(tags)
                page, more = tags[:n], len(tags) > n
                out = {"Content-Type": "application/json"}
                if more and page:
                    params = urlencode({"n": n, "last": page[-1]})
                    out["Link"] = f'<{path}?{params}>; rel="next"'
                with proxy._lock:
                    proxy.tag_pages += 1
                body = json.dumps({"name": document.get("name"), "tags": page}).encode()
                self._reply(200, body, out)

            def _referrers(self, repo: str, digest: str, query: dict[str, list[str]]) -> None:
                with proxy._lock:
                    found = list(proxy.referrers.get((repo, digest), []))
                headers = {"Content-Type": OCI_INDEX}
                wanted = query.get("artifactType", [None])[0]
                if wanted is not None and proxy.filters:
                    found = [d for d in found if d.get("artifactType") == wanted]
                    headers["OCI-Filters-Applied"] = "artifactType"
                start = int(query.get("last", ["0"])[0])
                page = found[start : start + proxy.page_size]
                if start + proxy.page_size < len(found):
                    params = {"last": str(start + proxy.page_size)}
                    if wanted is not None:
                        params["artifactType"] = wanted
                    link = f"/v2/{repo}/referrers/{digest}?{urlencode(params)}"
                    headers["Link"] = f'<{link}>; rel="next"'
                body = json.dumps(
                    {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": page}
                ).encode()
                self._reply(200, body, headers)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    def ref(self, repository: str, tag_or_digest: str) -> str:
        sep = "@" if ":" in tag_or_digest else ":"
        return f"{self.host}/{repository}{sep}{tag_or_digest}"

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.backend.host, timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in ("connection",)}
            connection.request(method, path, body=body or None, headers=sent)
            response = connection.getresponse()
            answer = response.read()
            out = {
                k: v
                for k, v in response.getheaders()
                if k.lower() not in ("content-length", "connection", "transfer-encoding")
            }
            return response.status, out, answer
        finally:
            connection.close()

    def _record(self, repo: str, body: bytes, headers: Any) -> str | None:
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        subject = doc.get("subject") if isinstance(doc, dict) else None
        if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
            return None
        descriptor: dict[str, Any] = {
            "mediaType": doc.get("mediaType") or headers.get("Content-Type"),
            "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
            "size": len(body),
        }
        artifact_type = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
        if artifact_type:
            descriptor["artifactType"] = artifact_type
        if doc.get("annotations"):
            descriptor["annotations"] = doc["annotations"]
        with self._lock:
            self.referrers.setdefault((repo, subject["digest"]), []).append(descriptor)
        return str(subject["digest"])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def referrers_proxy(backend: Registry, **kwargs: Any) -> Iterator[ReferrersProxy]:
    proxy = ReferrersProxy(backend, **kwargs)
    try:
        yield proxy
    finally:
        proxy.close()


class RefusingRegistry:
    """A loopback HTTP server that answers ``/v2/`` with 200 and every tag list with
    ``status`` and a distribution error body (``code``): a registry that denies listing
    (403 ``DENIED``, as registries with pull-only policies do) or does not implement it
    (405 ``UNSUPPORTED``). The CNCF registry answers neither way."""

    def __init__(self, status: int, code: str) -> None:
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                if self.path == "/v2/":
                    status, body = 200, b"{}"
                elif urlsplit(self.path).path.endswith("/tags/list"):
                    status = owner_status
                    body = json.dumps(
                        {"errors": [{"code": code, "message": "listing is not allowed"}]}
                    ).encode()
                else:
                    status, body = 404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        owner_status = status
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RefusingRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
