"""Small loopback simulations of how the big public registries answer.

:class:`SimServer` is a plain ``http.server`` (HTTP/1.1, keep-alive) on one loopback address
(``127.0.0.1`` or ``127.0.0.2``, so that a token host or a CDN is a different *host*, not
just another port) that answers each request with the first of its :attr:`SimServer.routes`
that returns a :class:`Resp`. Every request is recorded as a :class:`Seen` (method, path,
query, headers with ``Authorization``, the status sent).

:class:`SimRegistry` adds the distribution API over a :class:`Repo` store: ``/v2/``,
``HEAD``/``GET`` manifests by tag or digest, blobs, ``tags/list`` with ``n``/``last`` and
``Link`` pagination. Its knobs are the public registries' habits: a ``gate`` (auth) run
before the API, extra headers on GET or HEAD, a ``Content-Type`` override for manifests, a
blob redirect to a CDN, no ``Docker-Content-Digest`` on HEAD. Tokens are random strings the
simulated token service records in :attr:`SimServer.issued`; a registry accepts a token when
its ``accepts`` says so.

Documents are built with :func:`image` and :func:`index`; digests are computed with hashlib
from the exact bytes served.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INTOTO = "application/vnd.in-toto+json"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class Doc:
    """One manifest or index as exact bytes, with the blobs it refers to."""

    raw: bytes
    media_type: str
    blobs: Mapping[str, bytes] = field(default_factory=dict)
    children: tuple[Doc, ...] = ()

    @property
    def digest(self) -> str:
        return sha256_digest(self.raw)

    def descriptor(self, platform: Mapping[str, str] | None = None, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.raw),
        }
        out.update(extra)
        if platform is not None:
            out["platform"] = dict(platform)
        return out


def image(
    architecture: str,
    *,
    os: str = "linux",
    variant: str | None = None,
    docker: bool = False,
    cmd: Sequence[str] = ("/bin/sh",),
    label: str = "sim",
) -> Doc:
    """A single-platform image (Docker schema2 media types when ``docker``)."""
    layer = gzip.compress(f"layer of {label} {os}/{architecture}\n".encode(), mtime=0)
    config_doc: dict[str, Any] = {"architecture": architecture, "os": os}
    if variant:
        config_doc["variant"] = variant
    config_doc["created"] = "2024-03-01T00:00:00Z"
    config_doc["config"] = {"Cmd": list(cmd), "Labels": {"org.example.sim": label}}
    config_doc["rootfs"] = {"type": "layers", "diff_ids": [sha256_digest(layer)]}
    config_doc["history"] = [{"created": "2024-03-01T00:00:00Z", "created_by": f"ADD {label}"}]
    config = json.dumps(config_doc, separators=(",", ":")).encode()
    media = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media,
        "config": {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            "digest": sha256_digest(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                "digest": sha256_digest(layer),
                "size": len(layer),
            }
        ],
    }
    raw = json.dumps(manifest, indent=3).encode()
    return Doc(raw, media, {sha256_digest(config): config, sha256_digest(layer): layer})


def attestation(subject: Doc) -> Doc:
    """A BuildKit attestation manifest (``unknown/unknown`` in the index) for ``subject``."""
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1"}).encode()
    config = b'{"architecture":"unknown","os":"unknown","rootfs":{"type":"layers","diff_ids":[]}}'
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [
            {
                "mediaType": INTOTO,
                "digest": sha256_digest(statement),
                "size": len(statement),
                "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
            }
        ],
    }
    raw = json.dumps(manifest, indent=2).encode()
    return Doc(raw, OCI_MANIFEST, {sha256_digest(config): config})


def platform_of(arch: str, variant: str | None = None, os: str = "linux") -> dict[str, str]:
    out = {"architecture": arch, "os": os}
    if variant:
        out["variant"] = variant
    return out


def index(
    entries: Iterable[tuple[Doc, Mapping[str, Any]]],
    *,
    docker: bool = False,
    with_attestations: bool = False,
) -> Doc:
    """An index (Docker manifest list when ``docker``) of ``(doc, descriptor extras)``."""
    descriptors: list[dict[str, Any]] = []
    children: list[Doc] = []
    images = list(entries)
    for doc, extra in images:
        descriptors.append(doc.descriptor(**extra))
        children.append(doc)
    if with_attestations:
        for doc, _extra in images:
            att = attestation(doc)
            descriptors.append(
                att.descriptor(
                    platform={"architecture": "unknown", "os": "unknown"},
                    annotations={
                        "vnd.docker.reference.digest": doc.digest,
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                )
            )
            children.append(att)
    media = DOCKER_LIST if docker else OCI_INDEX
    raw = json.dumps(
        {"schemaVersion": 2, "mediaType": media, "manifests": descriptors}, indent=3
    ).encode()
    return Doc(raw, media, {}, tuple(children))


@dataclass
class Repo:
    """One repository's content: manifests by digest, tags, blobs, and tag names to list."""

    manifests: dict[str, Doc] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    #: listed by tags/list after the real tags (tags that exist only as names)
    extra_tag_names: list[str] = field(default_factory=list)

    def put(self, doc: Doc, *tags: str) -> Doc:
        self.manifests[doc.digest] = doc
        self.blobs.update(doc.blobs)
        for child in doc.children:
            self.put(child)
        for tag in tags:
            self.tags[tag] = doc.digest
        return doc

    def tag_names(self) -> list[str]:
        return sorted(set(self.tags) | set(self.extra_tag_names))


# --------------------------------------------------------------------------- server


@dataclass
class Seen:
    """One request as received, and the status it got."""

    server: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int = 0
    #: ``time.monotonic()`` when the request head had been read
    at: float = 0.0

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def authorization(self) -> str | None:
        return self.header("authorization")


@dataclass
class Resp:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


Route = Callable[[Seen], "Resp | None"]


def json_resp(doc: object, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Resp:
    return Resp(status, [("Content-Type", "application/json"), *headers], json.dumps(doc).encode())


def registry_error(status: int, code: str, message: str, *headers: tuple[str, str]) -> Resp:
    return json_resp({"errors": [{"code": code, "message": message}]}, status, headers)


class SimServer:
    """An HTTP/1.1 server on one loopback address; :attr:`routes` answer, in order."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: list[Route] = []
        self.issued: list[str] = []
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # lifecycle
    def start(self) -> SimServer:
        server = ThreadingHTTPServer((self.host, 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}"

    # records
    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def requests(self, method: str | None = None, contains: str = "") -> list[Seen]:
        return [
            s for s in self.seen if (method is None or s.method == method) and contains in s.path
        ]

    def new_token(self, prefix: str = "tok") -> str:
        token = f"{prefix}-{secrets.token_hex(12)}"
        with self._lock:
            self.issued.append(token)
        return token

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def answer(self, seen: Seen) -> Resp:
        for route in self.routes:
            resp = route(seen)
            if resp is not None:
                return resp
        return registry_error(404, "NOT_FOUND", f"no route for {seen.path}")


def _handler_for(owner: SimServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "publicsim/1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen = Seen(
                server=owner.netloc,
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                at=time.monotonic(),
            )
            try:
                resp = owner.answer(seen)
            except Exception as exc:  # a bug in a simulation: say so, loudly
                resp = Resp(599, [("Content-Type", "text/plain")], repr(exc).encode())
            seen.status = resp.status
            owner._record(seen)
            self.send_response(resp.status)
            names = {k.lower() for k, _ in resp.headers}
            for key, value in resp.headers:
                self.send_header(key, value)
            if "content-length" not in names:
                self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.body)

        do_GET = _serve
        do_HEAD = _serve
        do_POST = _serve

    return Handler


# --------------------------------------------------------------------------- registry


def bearer_of(seen: Seen) -> str | None:
    value = seen.authorization or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class SimRegistry(SimServer):
    """The distribution API over :attr:`repos`, with the knobs public registries differ in."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.repos: dict[str, Repo] = {}
        #: run before the API for every /v2/ request; a Resp refuses it (401, 429, ...)
        self.gate: Route | None = None
        #: extra headers on GET (resp. HEAD) of manifests
        self.get_headers: Callable[[], list[tuple[str, str]]] = list
        self.head_headers: Callable[[], list[tuple[str, str]]] = list
        #: Content-Type sent for a manifest (default: its media type)
        self.content_type: Callable[[Doc], str] = lambda doc: doc.media_type
        self.digest_on_head = True
        self.digest_on_get = True
        #: tags/list: the page size when the client gives no ``n`` (None: everything)
        self.page_size: int | None = None
        #: tags/list honours the client's ``n`` (MCR does not paginate at all)
        self.honour_n = True
        #: tags/list: the largest page whatever ``n`` asks (Quay caps ``n``)
        self.max_page: int | None = None
        #: blobs: a Location to redirect to instead of serving (digest -> URL)
        self.blob_location: Callable[[str], str] | None = None
        self.routes.append(self._api)

    def repo(self, name: str) -> Repo:
        return self.repos.setdefault(name, Repo())

    def ref(self, name: str, tag: str = "latest") -> str:
        return f"{self.netloc}/{name}:{tag}"

    def _api(self, seen: Seen) -> Resp | None:
        if not seen.path.startswith("/v2/"):
            return None
        if self.gate is not None:
            refused = self.gate(seen)
            if refused is not None:
                return refused
        if seen.path in ("/v2/", "/v2"):
            return json_resp({})
        rest = seen.path[len("/v2/") :]
        for kind in ("/manifests/", "/blobs/"):
            name, sep, ref = rest.rpartition(kind)
            if sep and "/" not in ref:
                break
        else:
            if rest.endswith("/tags/list"):
                return self._tags(rest[: -len("/tags/list")], seen)
            return registry_error(404, "NOT_FOUND", "unknown endpoint")
        repo = self.repos.get(name)
        if repo is None:
            return registry_error(404, "NAME_UNKNOWN", "repository name not known to registry")
        if kind == "/blobs/":
            blob = repo.blobs.get(ref)
            if blob is None:
                return registry_error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            if self.blob_location is not None:
                return Resp(307, [("Location", self.blob_location(ref))])
            return Resp(
                200,
                [("Content-Type", "application/octet-stream"), ("Docker-Content-Digest", ref)],
                blob,
            )
        digest = ref if ref.startswith("sha256:") else repo.tags.get(ref)
        doc = repo.manifests.get(digest or "")
        if doc is None:
            return registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        headers = [("Content-Type", self.content_type(doc))]
        if self.digest_on_head if seen.method == "HEAD" else self.digest_on_get:
            headers.append(("Docker-Content-Digest", doc.digest))
        headers += self.head_headers() if seen.method == "HEAD" else self.get_headers()
        return Resp(200, headers, doc.raw)

    def _tags(self, name: str, seen: Seen) -> Resp:
        repo = self.repos.get(name)
        if repo is None:
            return registry_error(404, "NAME_UNKNOWN", "repository name not known to registry")
        names = repo.tag_names()
        last = seen.query.get("last", [""])[-1]
        if last:
            names = [t for t in names if t > last]
        n_text = seen.query.get("n", [""])[-1]
        size = int(n_text) if n_text.isdigit() and self.honour_n else self.page_size
        if self.max_page is not None:
            size = self.max_page if size is None else min(size, self.max_page)
        headers: list[tuple[str, str]] = []
        if size is not None and len(names) > size:
            names = names[:size]
            query = urlencode({"n": str(size), "last": names[-1]})
            headers.append(("Link", f'</v2/{name}/tags/list?{query}>; rel="next"'))
        return json_resp({"name": name, "tags": names}, headers=headers)


def bearer_gate(
    registry: SimRegistry,
    challenge: Callable[[Seen], str],
    accepts: Callable[[str], bool],
) -> Route:
    """A gate that answers 401 + ``challenge(seen)`` unless the request's bearer is accepted."""

    def gate(seen: Seen) -> Resp | None:
        token = bearer_of(seen)
        if token is not None and accepts(token):
            return None
        return registry_error(
            401,
            "UNAUTHORIZED",
            "authentication required",
            ("WWW-Authenticate", challenge(seen)),
        )

    del registry
    return gate


def repo_scope(seen: Seen) -> str:
    """``repository:NAME:pull`` for a /v2/NAME/... request (``""`` for /v2/ itself)."""
    rest = seen.path[len("/v2/") :]
    for marker in ("/manifests/", "/blobs/", "/tags/list"):
        if marker in rest:
            return f"repository:{rest.split(marker)[0]}:pull"
    return ""
