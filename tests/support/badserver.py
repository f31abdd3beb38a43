"""A misbehaving OCI registry on loopback, over real sockets, for fault-injection tests.

:class:`BadServer` is a small HTTP/1.1 server (``socketserver.ThreadingTCPServer`` with a raw
handler: it writes status lines, headers and bodies byte by byte, so it can lie about
``Content-Length``, trickle, stall, truncate and stream chunked bodies without end). It binds
``127.0.0.1`` (or any loopback address, e.g. ``127.0.0.2`` for a second "host") on a free
port and runs in daemon threads; :meth:`BadServer.stop` (or leaving the ``with`` block) ends
every connection, stalled ones included, so it never hangs pytest.

**One scenario per repository name.** ``/v2/<name>/manifests/<ref>`` and
``/v2/<name>/blobs/<digest>`` are answered by the :class:`Scenario` called ``<name>``; an
unknown name gets ``404 NAME_UNKNOWN``. Scenarios are data: a name, optionally a valid
:class:`Image` to serve, and optionally a :class:`Reply` (or a function of the
:class:`Request` returning one) for manifests, blobs and the token endpoint. Adding a
behaviour is adding an entry to :func:`catalogue` (or ``server.add(Scenario(...))`` in a
test)::

    Scenario("teapot", manifest=Reply(418, body=b"short and stout"))
    Scenario("slow", image=GOOD_IMAGE, blob=Reply(200, body=b"x" * 10, chunk_size=1,
                                                   chunk_delay=0.5))

and using the reference ``f"{server.netloc}/teapot:latest"`` (:meth:`BadServer.ref`).

**Auth.** ``Scenario(auth="bearer")`` answers requests without a token it issued with
``401`` and ``WWW-Authenticate: Bearer realm="http://<this server>/token",service=...,
scope="repository:<name>:pull"``; ``GET /token?scope=repository:<name>:pull`` grants a token
(or answers the scenario's ``token`` reply). ``auth="bearer-refused"`` grants tokens but
refuses them anyway.

``Scenario(challenges=(...))`` replaces that challenge with the given ``WWW-Authenticate``
values (one header each: several challenges in one value, several values, a realm on
another server, unknown schemes, broken realms). A server accepts only tokens it issued
itself, or (after ``server.accept_tokens_from(other)``) tokens ``other`` issued.

**Stateful and structured replies.** :func:`sequence` answers with a list of replies in turn
(``503, 503, 200``); :func:`retry_after_date` a 429 whose ``Retry-After`` is an HTTP date;
:func:`redirect_chain` and :func:`redirect_ping_pong` redirect a blob N times or for ever;
:func:`nested_indexes` and :func:`serve_documents` serve an index nested to any depth.

**Recording.** Every request is recorded as a :class:`Request` (method, path, query,
headers including ``Authorization``, body) together with what the server did about it
(status sent, body bytes handed to the kernel, whether the client went away before the
reply was complete, when it arrived: ``received_at`` measures waits between retries, and when the
server was done with it: ``ended_at``). Read them with :attr:`BadServer.requests` /
:meth:`BadServer.requests_for`, after :meth:`BadServer.wait_idle` when the outcome matters.
Every connection is recorded too (:attr:`BadServer.connections`: when it was opened and
closed, TLS probe or not, its requests), so a client's deadlines can be measured on the
server's clock, where they happen, without the client's start-up.
TLS handshakes (clients try https first on loopback, then fall back to plain http) are not
requests; they are answered with a plain-text ``400`` (as a plain-HTTP registry would) and
only counted in :attr:`BadServer.tls_probes` (``BadServer(tls_probe="close"|"ignore")``
closes or ignores them instead).

Digests are always computed with hashlib from the exact bytes served, never typed.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import hashlib
import itertools
import json
import re
import select
import socket
import socketserver
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MiB = 1024 * 1024
#: The manifest bound imginspect documents (README, "Bounds").
MANIFEST_LIMIT = 4 * MiB
#: Service name in Bearer challenges.
SERVICE = "badserver"
#: How often blocked server threads look at the stop flag and the peer.
_POLL = 0.1
#: Never send more than this many body bytes for one reply (endless streams stop here).
DEFAULT_MAX_BODY_BYTES = 256 * MiB
_MAX_HEAD = 64 * 1024
_NAME_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_API_RE = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)$")


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class Image:
    """A single-platform image as exact bytes: manifest, config and layers."""

    manifest: bytes
    config: bytes
    layers: tuple[bytes, ...]
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config)

    @property
    def blobs(self) -> dict[str, bytes]:
        blobs = {sha256_digest(layer): layer for layer in self.layers}
        blobs[self.config_digest] = self.config
        return blobs


def build_image(
    *,
    os: str = "linux",
    architecture: str = "amd64",
    variant: str | None = None,
    layer_text: bytes = b"badserver layer\n",
    annotations: Mapping[str, str] | None = None,
    manifest_overrides: Mapping[str, Any] | None = None,
) -> Image:
    """An OCI image manifest + config (+ one tiny gzip layer), digests computed from bytes.

    ``manifest_overrides`` replaces top-level manifest keys (to build wrong shapes from a
    valid document).
    """
    config_doc: dict[str, Any] = {"architecture": architecture, "os": os}
    if variant:
        config_doc["variant"] = variant
    config_doc["rootfs"] = {"type": "layers", "diff_ids": [sha256_digest(layer_text)]}
    config = json.dumps(config_doc, separators=(",", ":")).encode()
    layer = gzip.compress(layer_text, mtime=0)
    manifest_doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256_digest(layer), "size": len(layer)}],
    }
    if annotations:
        manifest_doc["annotations"] = dict(annotations)
    manifest_doc.update(manifest_overrides or {})
    manifest = json.dumps(manifest_doc, indent=2).encode()
    return Image(manifest=manifest, config=config, layers=(layer,))


#: The image "good" paths serve (linux/amd64).
GOOD_IMAGE = build_image()


# --------------------------------------------------------------------------- requests


@dataclass
class Request:
    """One request as received, and what the server did about it."""

    #: ``host:port`` of the server that received it (``127.0.0.1:PORT``)
    server: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    #: repository name (= scenario name) for ``/v2/<name>/...`` and ``/token?scope=...``
    scenario: str | None = None
    #: ``"manifests"``, ``"blobs"``, ``"token"``, ``"ping"`` or ``None``
    kind: str | None = None
    #: tag or digest of a manifests/blobs request
    ref: str | None = None
    # -- outcome, filled in while answering
    status: int | None = None
    #: body bytes handed to the kernel (accepted by ``send``; not necessarily read by the peer)
    body_bytes_sent: int = 0
    #: the peer closed or reset the connection before the reply was complete
    client_gone: bool = False
    #: the server finished with this request (reply sent, abandoned, or server stopped)
    done: bool = False
    #: ``time.monotonic()`` when the request head had been read (waits between retries)
    received_at: float = 0.0
    #: ``time.monotonic()`` when the server finished with it (``done``): for a stalled or
    #: trickled reply whose client went away, when the client hung up
    ended_at: float | None = None
    #: the :class:`Connection` it arrived on
    connection: Connection | None = field(default=None, repr=False, compare=False)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    @property
    def base_url(self) -> str:
        return f"http://{self.server}"

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    @property
    def authorization(self) -> str | None:
        return self.header("authorization")


@dataclass
class Connection:
    """One accepted TCP connection, timed on the server's side (``time.monotonic()``): where
    a client's deadlines are measured without its own start-up in the way."""

    opened_at: float
    #: when the server closed its end (after the peer closed, a ``Connection: close`` reply,
    #: a TLS probe, or the server stopping); ``None`` while open
    closed_at: float | None = None
    #: the first bytes were a TLS handshake (a client trying https first)
    tls_probe: bool = False
    requests: tuple[Request, ...] = field(default=(), repr=False, compare=False)


# --------------------------------------------------------------------------- replies

Stall = Literal["before-headers", "after-headers", "after-body"]
Framing = Literal["length", "chunked", "close", "raw"]


@dataclass(frozen=True)
class Reply:
    """What to send, and how badly.

    Framing: ``"length"`` sends ``Content-Length`` (``content_length`` if given, which may
    lie, else the length of ``body``); ``"chunked"`` sends ``Transfer-Encoding: chunked``;
    ``"close"`` sends neither and closes after the body; ``"raw"`` adds no framing header at
    all (put your own, however broken, in ``headers``) and closes after the body.

    The body is ``body`` followed by whatever ``stream()`` yields (lazily; may be endless),
    cut into ``chunk_size`` pieces with ``chunk_delay`` seconds before each, and never more
    than ``max_body_bytes``. ``stall`` makes the server stop and wait (until the client goes
    away or the server stops) before the headers, after the headers, or after the body.
    ``head_byte_delay`` sends the status line and headers themselves one byte at a time.
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    stream: Callable[[], Iterable[bytes]] | None = None
    framing: Framing = "length"
    content_length: int | None = None
    chunk_size: int = 64 * 1024
    chunk_delay: float = 0.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    stall: Stall | None = None
    #: close the connection after this reply (no keep-alive)
    close: bool = False
    #: send the status line and headers one byte at a time, this many seconds apart (a
    #: slowloris in reverse: every read gets a byte, the headers never end in time)
    head_byte_delay: float = 0.0

    @property
    def reason(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return "Whatever"

    def pieces(self) -> Iterator[bytes]:
        """The body, in the pieces it is sent in."""
        sources: list[Iterable[bytes]] = [[self.body]]
        if self.stream is not None:
            sources.append(self.stream())
        for piece in itertools.chain.from_iterable(sources):
            for start in range(0, len(piece), self.chunk_size):
                yield piece[start : start + self.chunk_size]


Responder = Reply | Callable[[Request], Reply]


def json_reply(
    document: object,
    status: int = 200,
    *,
    content_type: str = "application/json",
    headers: Sequence[tuple[str, str]] = (),
) -> Reply:
    body = json.dumps(document).encode()
    return Reply(status, (("Content-Type", content_type), *headers), body)


def registry_error(
    status: int, code: str, message: str, *, headers: Sequence[tuple[str, str]] = ()
) -> Reply:
    """A distribution-spec error reply: ``{"errors":[{"code":...,"message":...}]}``."""
    return json_reply({"errors": [{"code": code, "message": message}]}, status, headers=headers)


def manifest_reply(
    raw: bytes,
    media_type: str = OCI_MANIFEST,
    *,
    digest_header: str | Literal["auto"] | None = "auto",
    headers: Sequence[tuple[str, str]] = (),
) -> Reply:
    """200 with a manifest body; ``Docker-Content-Digest`` computed unless told otherwise."""
    all_headers = [("Content-Type", media_type), *headers]
    digest = sha256_digest(raw) if digest_header == "auto" else digest_header
    if digest is not None:
        all_headers.append(("Docker-Content-Digest", digest))
    return Reply(200, tuple(all_headers), raw)


def blob_reply(raw: bytes) -> Reply:
    return Reply(
        200,
        (
            ("Content-Type", "application/octet-stream"),
            ("Docker-Content-Digest", sha256_digest(raw)),
        ),
        raw,
    )


def redirect(location: str, status: int = 307) -> Reply:
    return Reply(status, (("Location", location),))


def redirect_blobs_to(base_url: str, status: int = 307) -> Callable[[Request], Reply]:
    """A blob responder that redirects every blob to the same path on ``base_url``."""

    def respond(request: Request) -> Reply:
        return redirect(base_url.rstrip("/") + request.path, status)

    return respond


def filler(piece: bytes = b" " * (64 * 1024)) -> Callable[[], Iterator[bytes]]:
    """An endless stream of ``piece`` (for oversized bodies; the reply's cap stops it)."""
    return lambda: itertools.repeat(piece)


def sequence(*replies: Responder) -> Callable[[Request], Reply]:
    """A responder answering with ``replies`` in turn, then the last one for ever after.

    ``sequence(Reply(503), Reply(503), manifest_reply(raw))``: two failures, then success.
    Thread-safe; the count is per responder, so give each test its own.
    """
    if not replies:
        raise ValueError("sequence() needs at least one reply")
    calls = itertools.count()
    lock = threading.Lock()

    def respond(request: Request) -> Reply:
        with lock:
            index = min(next(calls), len(replies) - 1)
        return _resolve(replies[index], request)

    return respond


def retry_after_date(seconds: float, status: int = 429) -> Callable[[Request], Reply]:
    """``status`` with ``Retry-After`` as an HTTP date ``seconds`` after the request arrived.

    HTTP dates have a resolution of one second: the wait a client computes from it is
    between ``seconds - 1`` and ``seconds``.
    """

    def respond(request: Request) -> Reply:
        when = email.utils.formatdate(time.time() + seconds, usegmt=True)
        return registry_error(
            status, "TOOMANYREQUESTS", "slow down", headers=(("Retry-After", when),)
        )

    return respond


def redirect_chain(hops: int, final: Responder, *, status: int = 307) -> Callable[[Request], Reply]:
    """``hops`` redirects (same path, ``?hop=1`` ... ``?hop=N``), then ``final``."""

    def respond(request: Request) -> Reply:
        values = request.query.get("hop", ["0"])
        hop = int(values[0]) if values[0].isdigit() else 0
        if hop < hops:
            return redirect(f"{request.path}?hop={hop + 1}", status)
        return _resolve(final, request)

    return respond


def redirect_ping_pong(status: int = 307) -> Callable[[Request], Reply]:
    """A redirect loop through two URLs: ``PATH`` -> ``PATH?via=b`` -> ``PATH`` -> ..."""

    def respond(request: Request) -> Reply:
        if "via" in request.query:
            return redirect(request.path, status)
        return redirect(f"{request.path}?via=b", status)

    return respond


def nested_indexes(depth: int, leaf: Image = GOOD_IMAGE) -> list[tuple[bytes, str]]:
    """``depth`` OCI indexes, each one's only entry the next; the last one's is ``leaf``.

    Returns ``(raw, media_type)`` for every document, the outermost index first and the
    leaf image manifest last; serve them with :func:`serve_documents`.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    documents: list[tuple[bytes, str]] = [(leaf.manifest, leaf.media_type)]
    entry: dict[str, Any] = {
        "mediaType": leaf.media_type,
        "digest": leaf.digest,
        "size": len(leaf.manifest),
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    for level in range(depth, 0, -1):
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [entry],
            "annotations": {"badserver.level": str(level)},
        }
        raw = json.dumps(index, indent=2).encode()
        documents.append((raw, OCI_INDEX))
        entry = {"mediaType": OCI_INDEX, "digest": sha256_digest(raw), "size": len(raw)}
    documents.reverse()
    return documents


def serve_documents(documents: Sequence[tuple[bytes, str]]) -> Callable[[Request], Reply]:
    """A manifest responder: the first document for any tag, every document by its digest."""
    by_digest = {sha256_digest(raw): (raw, media_type) for raw, media_type in documents}

    def respond(request: Request) -> Reply:
        ref = request.ref or ""
        if ":" not in ref:
            raw, media_type = documents[0]
            return manifest_reply(raw, media_type)
        found = by_digest.get(ref)
        if found is None:
            return registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        return manifest_reply(*found)

    return respond


# --------------------------------------------------------------------------- scenarios

AuthMode = Literal["none", "bearer", "bearer-refused"]


@dataclass(frozen=True)
class Scenario:
    """The behaviour of repository ``name``.

    ``manifest``/``blob``: a :class:`Reply` or a function of the :class:`Request`; ``None``
    serves ``image`` (manifest by tag or by its digest, its blobs) and 404 for anything else.
    ``token``: what ``/token`` answers for this repository's scope; ``None`` grants a token.
    ``challenges``: the ``WWW-Authenticate`` headers of the 401 (default: a Bearer challenge).
    """

    name: str
    image: Image | None = None
    manifest: Responder | None = None
    blob: Responder | None = None
    auth: AuthMode = "none"
    token: Responder | None = None
    #: ``WWW-Authenticate`` values of the 401 (one header each) instead of the default Bearer
    #: challenge naming this server's ``/token``; only with ``auth`` other than ``"none"``.
    #: ``{url}`` is replaced by the server's base URL and ``{name}`` by the scenario's name.
    challenges: tuple[str, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"scenario name {self.name!r} is not a valid repository name")

    def answer_manifest(self, request: Request) -> Reply:
        if self.manifest is not None:
            return _resolve(self.manifest, request)
        image = self.image
        if image is not None and (request.ref == image.digest or ":" not in (request.ref or "")):
            return manifest_reply(image.manifest, image.media_type)
        return registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")

    def answer_blob(self, request: Request) -> Reply:
        if self.blob is not None:
            return _resolve(self.blob, request)
        blobs = self.image.blobs if self.image is not None else {}
        raw = blobs.get(request.ref or "")
        if raw is None:
            return registry_error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        return blob_reply(raw)


def _token_in(reply: Reply) -> str | None:
    """The ``token`` a token reply's body hands out, if it is one."""
    if reply.status != 200:
        return None
    try:
        document = json.loads(reply.body)
    except ValueError:
        return None
    token = document.get("token") if isinstance(document, dict) else None
    return token if isinstance(token, str) else None


def _resolve(responder: Responder, request: Request) -> Reply:
    return responder if isinstance(responder, Reply) else responder(request)


def _tamper(raw: bytes, old: bytes, new: bytes) -> bytes:
    """``raw`` with ``old`` replaced by ``new`` once (same length: a silent corruption)."""
    assert len(old) == len(new) and old in raw
    return raw.replace(old, new, 1)


def catalogue() -> list[Scenario]:
    """The built-in scenarios every :class:`BadServer` starts with. Add new ones here."""
    good = GOOD_IMAGE
    other = build_image(architecture="arm64")
    manifest_doc = json.loads(good.manifest)
    wrong_shape = dict(manifest_doc)
    wrong_shape["config"] = {**manifest_doc["config"], "size": str(len(good.config))}
    schema1 = {
        "schemaVersion": 1,
        "name": "schema1",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": sha256_digest(b"")}],
        "history": [{"v1Compatibility": "{}"}],
    }
    html = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Portal</body></html>\n"
    return [
        # -- good paths
        Scenario("good", image=good, description="valid OCI image, linux/amd64"),
        Scenario("good-bearer", image=good, auth="bearer", description="valid, token auth"),
        # -- digests
        Scenario(
            "digest-header-mismatch",
            manifest=manifest_reply(good.manifest, digest_header=sha256_digest(b"other")),
            description="Docker-Content-Digest does not match the body",
        ),
        Scenario(
            "digest-body-mismatch",
            manifest=manifest_reply(other.manifest, digest_header=None),
            description="whatever is asked, serve another manifest (no digest header)",
        ),
        Scenario(
            "config-digest-mismatch",
            image=good,
            blob=lambda request: (
                blob_reply(_tamper(good.config, b"amd64", b"arm64"))
                if request.ref == good.config_digest
                else registry_error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            ),
            description="config blob body altered (same length), digest no longer matches",
        ),
        # -- status codes
        Scenario(
            "manifest-unknown", manifest=registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        ),
        Scenario(
            "name-unknown",
            manifest=registry_error(404, "NAME_UNKNOWN", "repository name not known to registry"),
        ),
        Scenario("auth-token-refused", image=good, auth="bearer-refused"),
        Scenario(
            "auth-no-challenge",
            manifest=registry_error(401, "UNAUTHORIZED", "authentication required"),
            description="401 without WWW-Authenticate",
        ),
        Scenario("forbidden", manifest=registry_error(403, "DENIED", "requested access is denied")),
        Scenario("status-500", manifest=registry_error(500, "UNKNOWN", "unknown error")),
        Scenario(
            "status-502",
            manifest=Reply(502, (("Content-Type", "text/html"),), b"<html>Bad Gateway</html>"),
        ),
        Scenario(
            "status-503",
            manifest=Reply(503, (("Content-Type", "text/plain"),), b"Service Unavailable\n"),
        ),
        Scenario(
            "rate-limited",
            manifest=registry_error(
                429, "TOOMANYREQUESTS", "You have reached your pull rate limit"
            ),
        ),
        # -- malformed documents (all 200)
        Scenario("invalid-json", manifest=manifest_reply(good.manifest[:-40], digest_header=None)),
        Scenario("empty-body", manifest=manifest_reply(b"", digest_header=None)),
        Scenario(
            "html-200",
            manifest=Reply(200, (("Content-Type", "text/html; charset=utf-8"),), html),
            description="a captive portal / login page answering 200",
        ),
        Scenario("json-array", manifest=manifest_reply(b"[" + good.manifest + b"]")),
        Scenario(
            "wrong-shape",
            manifest=manifest_reply(json.dumps(wrong_shape).encode()),
            description="config size is a string",
        ),
        Scenario(
            "gzip-body",
            manifest=manifest_reply(gzip.compress(good.manifest, mtime=0), digest_header=None),
            description="gzip bytes without Content-Encoding",
        ),
        Scenario(
            "schema1",
            manifest=manifest_reply(json.dumps(schema1).encode(), DOCKER_SCHEMA1_SIGNED),
        ),
        # -- size bounds
        Scenario(
            "oversize-length",
            manifest=Reply(
                200,
                (("Content-Type", OCI_MANIFEST),),
                content_length=MANIFEST_LIMIT + MiB,
                stream=filler(),
                chunk_size=16 * 1024,
                chunk_delay=0.05,
            ),
            description="Content-Length 5 MiB, body trickled at ~320 KiB/s",
        ),
        Scenario(
            "oversize-chunked",
            manifest=Reply(
                200,
                (("Content-Type", OCI_MANIFEST),),
                body=b'{"schemaVersion":2,"pad":"',
                stream=filler(),
                framing="chunked",
                max_body_bytes=64 * MiB,
            ),
            description="chunked, no Content-Length, endless body (capped at 64 MiB)",
        ),
        # -- connections
        Scenario(
            "truncated-body",
            manifest=Reply(
                200,
                (("Content-Type", OCI_MANIFEST),),
                good.manifest,
                content_length=len(good.manifest) + 100,
                close=True,
            ),
            description="Content-Length longer than the body, then close",
        ),
        Scenario(
            "stall-after-headers",
            manifest=Reply(
                200,
                (("Content-Type", OCI_MANIFEST),),
                good.manifest,
                stall="after-headers",
            ),
        ),
        Scenario("hang", manifest=Reply(stall="before-headers"), description="never answers"),
        Scenario(
            "trickle-then-stall",
            manifest=Reply(
                200,
                (("Content-Type", OCI_MANIFEST),),
                good.manifest[:18],
                content_length=len(good.manifest),
                chunk_size=1,
                chunk_delay=0.1,
                stall="after-body",
            ),
            description="18 bytes of the manifest over 1.8 s, then nothing (Content-Length "
            "promises more)",
        ),
        Scenario(
            "trickle-headers",
            manifest=Reply(
                200,
                (("Content-Type", OCI_MANIFEST), *((f"X-Pad-{i}", "x" * 64) for i in range(64))),
                good.manifest,
                head_byte_delay=0.05,
            ),
            description="status line and ~5 KiB of headers, one byte every 50 ms (~4 min)",
        ),
        # -- redirects
        Scenario(
            "redirect-loop",
            image=good,
            blob=lambda request: redirect(request.path),
            description="config blob redirects to itself, forever",
        ),
        Scenario(
            "redirect-bad-port",
            image=good,
            blob=redirect("http://127.0.0.2:99999/blob"),
            description="config blob redirects to a URL with an out-of-range port",
        ),
        Scenario(
            "redirect-bad-bracket",
            image=good,
            blob=redirect("http://[::1/blob"),
            description="config blob redirects to a URL with an unclosed IPv6 bracket",
        ),
        Scenario(
            "redirect-ping-pong",
            image=good,
            blob=redirect_ping_pong(),
            description="config blob: PATH -> PATH?via=b -> PATH -> ... (a loop of two URLs)",
        ),
        Scenario(
            "redirect-chain-10",
            image=good,
            blob=redirect_chain(10, blob_reply(good.config)),
            description="config blob after 10 redirects (the most a client should follow)",
        ),
        Scenario(
            "redirect-chain-11",
            image=good,
            blob=redirect_chain(11, blob_reply(good.config)),
            description="config blob after 11 redirects (one too many)",
        ),
        Scenario(
            "redirect-ftp",
            image=good,
            blob=redirect("ftp://127.0.0.1/blob"),
            description="config blob redirects to ftp://",
        ),
        # -- more status codes (not worth a retry, or not soon enough)
        Scenario(
            "status-400", manifest=registry_error(400, "NAME_INVALID", "invalid repository name")
        ),
        Scenario(
            "retry-after-hour",
            manifest=registry_error(
                429, "TOOMANYREQUESTS", "come back later", headers=(("Retry-After", "3600"),)
            ),
            description="429 asking for an hour's wait",
        ),
        # -- slow servers
        Scenario(
            "trickle-body",
            manifest=Reply(
                200,
                (("Content-Type", OCI_MANIFEST),),
                good.manifest,
                chunk_size=1,
                chunk_delay=0.1,
            ),
            description="the manifest, one byte every 100 ms",
        ),
        # -- more size bounds
        Scenario(
            "huge-error-length",
            manifest=Reply(
                404,
                (("Content-Type", "application/json"),),
                body=b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"',
                stream=filler(),
                content_length=10 * MiB,
                chunk_size=16 * 1024,
                chunk_delay=0.01,
            ),
            description="404 with a 10 MiB body announced by Content-Length (~1.6 MiB/s)",
        ),
        Scenario(
            "huge-error-chunked",
            manifest=Reply(
                404,
                (("Content-Type", "application/json"),),
                body=b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"',
                stream=filler(),
                framing="chunked",
                max_body_bytes=10 * MiB,
                chunk_size=16 * 1024,
                chunk_delay=0.01,
            ),
            description="404 with a chunked 10 MiB body (~1.6 MiB/s)",
        ),
        Scenario(
            "config-larger-than-descriptor",
            image=good,
            blob=lambda request: (
                Reply(
                    200, (("Content-Type", "application/octet-stream"),), good.config + b" " * 100
                )
                if request.ref == good.config_digest
                else registry_error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            ),
            description="config blob 100 bytes longer than the manifest's descriptor says",
        ),
        Scenario(
            "config-endless",
            image=good,
            blob=Reply(
                200,
                (("Content-Type", "application/octet-stream"),),
                stream=filler(),
                framing="chunked",
                max_body_bytes=64 * MiB,
            ),
            description="config blob: a chunked body without end (capped at 64 MiB)",
        ),
        # -- Content-Type versus the body's mediaType
        Scenario(
            "content-type-missing",
            image=good,
            manifest=Reply(200, (("Docker-Content-Digest", good.digest),), good.manifest),
            description="the OCI manifest without a Content-Type header",
        ),
        Scenario(
            "content-type-contradicts",
            image=good,
            manifest=manifest_reply(good.manifest, DOCKER_MANIFEST_LIST),
            description="an OCI manifest labelled a Docker manifest list",
        ),
        # -- more malformed documents
        Scenario(
            "json-too-deep",
            manifest=manifest_reply(b"[" * 100_000 + b"]" * 100_000, digest_header=None),
            description="JSON nested 100000 levels deep",
        ),
        Scenario(
            "not-utf8",
            manifest=manifest_reply(b'{"schemaVersion":2,"x":"\xff\xfe"}', digest_header=None),
            description="bytes that are not UTF-8",
        ),
        Scenario(
            "huge-integer",
            manifest=manifest_reply(
                b'{"schemaVersion":2,"mediaType":"'
                + OCI_MANIFEST.encode()
                + b'","size":'
                + b"9" * 5000
                + b"}",
                digest_header=None,
            ),
            description="a 5000-digit number (beyond Python's int-to-str conversion limit)",
        ),
        Scenario(
            "schema-version-3",
            manifest=manifest_reply(
                json.dumps({**manifest_doc, "schemaVersion": 3}).encode(), digest_header=None
            ),
        ),
        # -- auth challenges (auth="bearer": every request without an accepted token gets them)
        Scenario(
            "challenge-no-realm",
            image=good,
            auth="bearer",
            challenges=(f'Bearer service="{SERVICE}",scope="repository:{{name}}:pull"',),
        ),
        Scenario(
            "challenge-empty-realm",
            image=good,
            auth="bearer",
            challenges=(f'Bearer realm="",service="{SERVICE}"',),
        ),
        Scenario(
            "challenge-ftp-realm",
            image=good,
            auth="bearer",
            challenges=(f'Bearer realm="ftp://127.0.0.1/token",service="{SERVICE}"',),
        ),
        Scenario(
            "challenge-unparsable-realm",
            image=good,
            auth="bearer",
            challenges=(f'Bearer realm="http://[::1/token",service="{SERVICE}"',),
            description="a realm urlsplit cannot parse (unclosed IPv6 bracket)",
        ),
        Scenario(
            "challenge-digest-only",
            image=good,
            auth="bearer",
            challenges=('Digest realm="badserver", qop="auth", nonce="abc123", algorithm=MD5',),
            description="only a scheme imginspect does not speak",
        ),
        Scenario(
            "challenge-basic-and-bearer",
            image=good,
            auth="bearer",
            challenges=(
                f'Basic realm="badserver", Bearer realm="{{url}}/token",service="{SERVICE}",'
                'scope="repository:{name}:pull"',
            ),
            description="Basic and Bearer in one header",
        ),
        Scenario(
            "challenge-two-headers",
            image=good,
            auth="bearer",
            challenges=(
                'Digest realm="badserver", nonce="abc"',
                'Basic realm="badserver"',
                f'Bearer realm="{{url}}/token",service="{SERVICE}",'
                'scope="repository:{name}:pull"',
            ),
            description="Digest, Basic and Bearer in three headers",
        ),
        # -- token endpoints that misbehave
        Scenario(
            "token-not-json",
            image=good,
            auth="bearer",
            token=Reply(200, (("Content-Type", "text/html"),), html),
        ),
        Scenario(
            "token-no-token",
            image=good,
            auth="bearer",
            token=json_reply({"expires_in": 300, "issued_at": "2024-01-01T00:00:00Z"}),
        ),
        Scenario(
            "token-500",
            image=good,
            auth="bearer",
            token=Reply(500, (("Content-Type", "text/plain"),), b"internal error\n"),
        ),
        Scenario("token-401", image=good, auth="bearer", token=registry_error(401, "DENIED", "no")),
        Scenario(
            "token-not-ascii",
            image=good,
            auth="bearer",
            token=json_reply({"token": "t\u00f6k\u00e9n", "expires_in": 300}),
            description="a token that cannot go into an Authorization header",
        ),
        Scenario(
            "token-absurd-lifetime",
            image=good,
            auth="bearer",
            token=Reply(
                200,
                (("Content-Type", "application/json"),),
                b'{"token":"badserver-absurd","expires_in":' + b"9" * 400 + b"}",
            ),
            description="expires_in a 400-digit number (float() of it overflows)",
        ),
        Scenario("token-hang", image=good, auth="bearer", token=Reply(stall="before-headers")),
        Scenario(
            "token-huge",
            image=good,
            auth="bearer",
            token=Reply(
                200,
                (("Content-Type", "application/json"),),
                body=b'{"token":"',
                stream=filler(b"A" * (64 * 1024)),
                content_length=10 * MiB,
                chunk_size=16 * 1024,
                chunk_delay=0.01,
            ),
            description="a 10 MiB token response announced by Content-Length",
        ),
        Scenario(
            "token-huge-chunked",
            image=good,
            auth="bearer",
            token=Reply(
                200,
                (("Content-Type", "application/json"),),
                body=b'{"token":"',
                stream=filler(b"A" * (64 * 1024)),
                framing="chunked",
                max_body_bytes=10 * MiB,
            ),
            description="a 10 MiB chunked token response",
        ),
    ]


# --------------------------------------------------------------------------- the server


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: BadServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.owner.errors.append(traceback.format_exc())


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        self.server.owner._serve_connection(self.request)


class _ClientGone(Exception):
    pass


#: What to do with a TLS ClientHello (a client trying https first): answer a plain-text 400
#: as Go's net/http does (the client's TLS layer then fails at once and it falls back to
#: http), close the connection, or ignore it (read it and never answer, until the client
#: gives up).
TlsProbe = Literal["reject", "close", "ignore"]


class BadServer:
    """A misbehaving registry on ``host`` (a loopback address), port picked by the kernel.

    Use as a context manager (``with BadServer() as server:``) or call :meth:`start` /
    :meth:`stop`. ``scenarios`` defaults to :func:`catalogue`; :meth:`add` adds more at any
    time (e.g. ones that need another server's URL).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        scenarios: Iterable[Scenario] | None = None,
        *,
        tls_probe: TlsProbe = "reject",
    ) -> None:
        self.host = host
        self.tls_probe = tls_probe
        self.port = 0
        self._scenarios: dict[str, Scenario] = {}
        self.add(*(catalogue() if scenarios is None else scenarios))
        self._requests: list[Request] = []
        self._tokens: dict[str, set[str]] = {}
        #: other servers whose tokens this one accepts (a token realm on another host)
        self._token_issuers: list[BadServer] = []
        self._token_counter = itertools.count(1)
        self._lock = threading.Condition()
        self._in_flight = 0
        self._connections: set[socket.socket] = set()
        self._connection_records: list[Connection] = []
        self._stopping = threading.Event()
        self._server: _TCPServer | None = None
        self._thread: threading.Thread | None = None
        self.tls_probes = 0
        #: tracebacks of unexpected exceptions in server threads (should stay empty)
        self.errors: list[str] = []

    # -------------------------------------------------------------- lifecycle

    def start(self) -> BadServer:
        server = _TCPServer((self.host, 0), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL},
            name=f"badserver-{self.netloc}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def drop_connections(self) -> None:
        """Close every open connection from the server's side, as an idle timeout would."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> BadServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- addressing

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}"

    def ref(self, scenario: str, tag: str = "latest") -> str:
        """An image reference to ``scenario`` on this server, by tag."""
        return f"{self.netloc}/{scenario}:{tag}"

    def ref_digest(self, scenario: str, digest: str) -> str:
        return f"{self.netloc}/{scenario}@{digest}"

    # -------------------------------------------------------------- scenarios

    def add(self, *scenarios: Scenario) -> None:
        for scenario in scenarios:
            self._scenarios[scenario.name] = scenario

    def __getitem__(self, name: str) -> Scenario:
        return self._scenarios[name]

    @property
    def scenario_names(self) -> list[str]:
        return sorted(self._scenarios)

    # -------------------------------------------------------------- records

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> list[Connection]:
        """Every connection accepted so far, in order (TLS probes included)."""
        with self._lock:
            return list(self._connection_records)

    def requests_for(self, scenario: str, kind: str | None = None) -> list[Request]:
        """Requests for ``scenario`` (token requests included), optionally of one ``kind``."""
        return [
            r for r in self.requests if r.scenario == scenario and (kind is None or r.kind == kind)
        ]

    def issued_tokens(self, scenario: str) -> set[str]:
        """Tokens this server's ``/token`` granted for ``scenario``."""
        with self._lock:
            return set(self._tokens.get(scenario, ()))

    def accept_tokens_from(self, issuer: BadServer) -> None:
        """Also accept tokens ``issuer`` grants (for a token realm on another server)."""
        with self._lock:
            self._token_issuers.append(issuer)

    def _accepted_tokens(self, scenario: str) -> set[str]:
        with self._lock:
            issuers = list(self._token_issuers)
        accepted = self.issued_tokens(scenario)
        for issuer in issuers:
            accepted |= issuer.issued_tokens(scenario)
        return accepted

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._connection_records.clear()
            self.tls_probes = 0

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being answered; False if that took longer than ``timeout``."""
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    # -------------------------------------------------------------- connection handling

    def _serve_connection(self, conn: socket.socket) -> None:
        conn.settimeout(_POLL)
        # Head and body go out in separate sends: without this, Nagle's algorithm and the
        # peer's delayed ACK add ~40 ms to every keep-alive request.
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        record = Connection(opened_at=time.monotonic())
        with self._lock:
            self._connections.add(conn)
            self._connection_records.append(record)
        try:
            buffer = b""
            first = True
            while not self._stopping.is_set():
                head, buffer = self._read_head(conn, buffer, first=first)
                if head is None:
                    return
                if head == b"TLS":
                    with self._lock:
                        self.tls_probes += 1
                        record.tls_probe = True
                    if self.tls_probe == "reject":
                        self._send_all(conn, _PLAIN_400)
                    elif self.tls_probe == "ignore":
                        self._wait_for_close(conn)
                    return
                first = False
                request, buffer, ok = self._parse_request(conn, head, buffer)
                if not ok:
                    self._send_all(conn, _PLAIN_400)
                    return
                request.connection = record
                with self._lock:
                    self._requests.append(request)
                    record.requests += (request,)
                    self._in_flight += 1
                try:
                    keep_alive = self._answer(conn, request)
                finally:
                    with self._lock:
                        request.done = True
                        request.ended_at = time.monotonic()
                        self._in_flight -= 1
                        self._lock.notify_all()
                if not keep_alive:
                    return
        except _ClientGone:
            return
        finally:
            with self._lock:
                self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                record.closed_at = time.monotonic()

    def _recv(self, conn: socket.socket) -> bytes | None:
        """Some bytes, or None when the peer closed or the server stops."""
        while not self._stopping.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return None
            return data or None
        return None

    def _read_head(
        self, conn: socket.socket, buffer: bytes, *, first: bool
    ) -> tuple[bytes | None, bytes]:
        while b"\r\n\r\n" not in buffer:
            if first and buffer[:1] == b"\x16":
                return b"TLS", b""
            if len(buffer) > _MAX_HEAD:
                return None, b""
            data = self._recv(conn)
            if data is None:
                return None, b""
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        return head, rest

    def _parse_request(
        self, conn: socket.socket, head: bytes, buffer: bytes
    ) -> tuple[Request, bytes, bool]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = tuple(
            (name.strip(), value.strip())
            for name, sep, value in (line.partition(":") for line in lines[1:])
            if sep
        )
        request = Request(self.netloc, "", "", headers, received_at=time.monotonic())
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return request, b"", False
        request.method, request.target = parts[0], parts[1]
        length = request.header("content-length")
        if length is not None and length.isdigit():
            while len(buffer) < int(length):
                data = self._recv(conn)
                if data is None:
                    raise _ClientGone
                buffer += data
            request.body, buffer = buffer[: int(length)], buffer[int(length) :]
        self._classify(request)
        return request, buffer, True

    @staticmethod
    def _classify(request: Request) -> None:
        path = request.path
        if path in ("/v2", "/v2/"):
            request.kind = "ping"
            return
        if path == "/token":
            request.kind = "token"
            for scope in request.query.get("scope", []):
                kind, _, rest = scope.partition(":")
                if kind == "repository":
                    request.scenario = rest.rpartition(":")[0]
            return
        match = _API_RE.match(path)
        if match:
            request.scenario = match["name"]
            request.kind = match["kind"]
            request.ref = match["ref"]

    # -------------------------------------------------------------- answering

    def _dispatch(self, request: Request) -> Reply:
        if request.kind == "ping":
            return json_reply({}, headers=(("Docker-Distribution-API-Version", "registry/2.0"),))
        scenario = self._scenarios.get(request.scenario or "")
        if request.kind == "token":
            if scenario is None:
                return json_reply({"details": "unknown scope"}, 400)
            if scenario.token is not None:
                reply = _resolve(scenario.token, request)
                granted = _token_in(reply)
                if granted is not None:  # a token it handed out itself: accept it later
                    with self._lock:
                        self._tokens.setdefault(scenario.name, set()).add(granted)
                return reply
            token = f"badserver-{scenario.name}-{next(self._token_counter)}"
            with self._lock:
                self._tokens.setdefault(scenario.name, set()).add(token)
            return json_reply({"token": token, "expires_in": 300})
        if request.kind not in ("manifests", "blobs"):
            return Reply(404, (("Content-Type", "text/plain"),), b"404 page not found\n")
        if scenario is None:
            return registry_error(404, "NAME_UNKNOWN", "repository name not known to registry")
        if scenario.auth != "none":
            accepted = self._accepted_tokens(scenario.name)
            presented = (request.authorization or "").removeprefix("Bearer ")
            if scenario.auth == "bearer-refused" or presented not in accepted:
                challenges = scenario.challenges
                if challenges is None:
                    challenges = (
                        f'Bearer realm="{{url}}/token",service="{SERVICE}",'
                        f'scope="repository:{{name}}:pull"',
                    )
                values = (
                    value.replace("{url}", self.url).replace("{name}", scenario.name)
                    for value in challenges
                )
                return registry_error(
                    401,
                    "UNAUTHORIZED",
                    "authentication required",
                    headers=tuple(("WWW-Authenticate", value) for value in values),
                )
        if request.kind == "manifests":
            return scenario.answer_manifest(request)
        return scenario.answer_blob(request)

    def _answer(self, conn: socket.socket, request: Request) -> bool:
        """Send the reply; True if the connection may serve another request."""
        reply = self._dispatch(request)
        request.status = reply.status
        if reply.stall == "before-headers":
            request.client_gone = self._wait_for_close(conn)
            return False
        close = reply.close or reply.framing in ("close", "raw") or reply.stall is not None
        close = close or (request.header("connection") or "").lower() == "close"
        head = [f"HTTP/1.1 {reply.status} {reply.reason}"]
        head += [f"{name}: {value}" for name, value in reply.headers]
        send_body = request.method != "HEAD"
        if reply.framing == "length":
            length = reply.content_length
            if length is None:
                if reply.stream is not None:
                    raise ValueError("a streamed reply with framing='length' needs content_length")
                length = len(reply.body)
            head.append(f"Content-Length: {length}")
        elif reply.framing == "chunked":
            head.append("Transfer-Encoding: chunked")
        if close:
            head.append("Connection: close")
        try:
            head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
            if reply.head_byte_delay:
                self._send_slowly(conn, head_bytes, reply.head_byte_delay)
            else:
                self._send_all(conn, head_bytes)
            if reply.stall == "after-headers":
                request.client_gone = self._wait_for_close(conn)
                return False
            if send_body:
                self._send_body(conn, request, reply)
            if reply.stall == "after-body":
                request.client_gone = self._wait_for_close(conn)
                return False
        except _ClientGone:
            request.client_gone = not self._stopping.is_set()
            return False
        return not close and not self._stopping.is_set()

    def _send_body(self, conn: socket.socket, request: Request, reply: Reply) -> None:
        chunked = reply.framing == "chunked"
        for piece in reply.pieces():
            if not piece:
                continue
            piece = piece[: reply.max_body_bytes - request.body_bytes_sent]
            if not piece:
                break
            if reply.chunk_delay:
                if self._stopping.wait(reply.chunk_delay):
                    raise _ClientGone
                if _peer_closed(conn):
                    raise _ClientGone
            framed = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
            self._send_all(conn, framed)
            request.body_bytes_sent += len(piece)
        if chunked:
            self._send_all(conn, b"0\r\n\r\n")

    def _send_slowly(self, conn: socket.socket, data: bytes, delay: float) -> None:
        for index in range(len(data)):
            if self._stopping.wait(delay) or _peer_closed(conn):
                raise _ClientGone
            self._send_all(conn, data[index : index + 1])

    def _send_all(self, conn: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._stopping.is_set():
                raise _ClientGone
            try:
                sent = conn.send(view)
            except TimeoutError:
                continue
            except OSError:
                raise _ClientGone from None
            view = view[sent:]

    def _wait_for_close(self, conn: socket.socket) -> bool:
        """Stall: wait until the peer closes (True) or the server stops (False)."""
        while not self._stopping.is_set():
            readable, _, _ = select.select([conn], [], [], _POLL)
            if not readable:
                continue
            try:
                if not conn.recv(65536):
                    return True
            except TimeoutError:
                continue
            except OSError:
                return True
        return False


def _peer_closed(conn: socket.socket) -> bool:
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


_PLAIN_400 = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    b"400 Bad Request: this is a plain HTTP server\n"
)


def loopback_alias_available(host: str = "127.0.0.2") -> bool:
    """Whether ``host`` can be bound (true on Linux for all of 127.0.0.0/8)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


def closed_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
