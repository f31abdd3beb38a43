"""A small Docker-registry token server for tests (the registry's ``auth.token`` counterpart).

Runs a stdlib :class:`~http.server.ThreadingHTTPServer` in a daemon thread on 127.0.0.1 with a
free port and signs RS256 JWTs with an RSA key generated at start-up. The JWT header's ``kid`` is
the libtrust key id of that key, and :attr:`TokenServer.rootcertbundle` is a self-signed
certificate for the key, which is what the registry's ``auth.token.rootcertbundle`` needs.

Endpoints (both on ``/token``):

* ``GET /token?service=S&scope=repository:NAME:pull,push[&scope=...][&account=A]`` -- the Docker
  token protocol. No ``Authorization``: anonymous, granted only ``pull`` and only for
  repositories that are not private. ``Authorization: Basic`` with a configured user: granted
  every action the scope asks for, on any repository. Wrong credentials: 401 with a JSON error.
  ``offline_token=true`` with Basic credentials also returns a ``refresh_token``.
* ``POST /token`` (form encoded, OAuth2) -- ``grant_type=password`` with ``username`` and
  ``password`` (returns a ``refresh_token`` too), or ``grant_type=refresh_token`` with a
  ``refresh_token`` issued earlier; both take ``service``, ``scope`` (space separated, or given
  several times) and ``client_id``.

Every request is recorded (:attr:`TokenServer.requests`, :attr:`TokenServer.authorization_headers`)
so tests can count round trips and check which credentials were sent where.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

DEFAULT_SERVICE = "imginspect-test-registry"
DEFAULT_ISSUER = "imginspect-test-token-issuer"
DEFAULT_EXPIRES_IN = 300

_KEY_LOCK = threading.Lock()
_KEY_CACHE: dict[str, rsa.RSAPrivateKey] = {}


def b64url(data: bytes) -> str:
    """Base64url without padding (the JWT encoding)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url` (padding optional)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """The libtrust key id the registry uses to match a JWT ``kid`` against ``rootcertbundle``.

    SHA-256 of the DER SubjectPublicKeyInfo, first 30 bytes, base32 without padding, in twelve
    groups of four characters joined with ``:``.
    """
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def encode_jwt(claims: Mapping[str, Any], key: rsa.RSAPrivateKey, kid: str | None) -> str:
    """Encode and sign ``claims`` as an RS256 compact JWS."""
    header: dict[str, Any] = {"typ": "JWT", "alg": "RS256"}
    if kid is not None:
        header["kid"] = kid
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    )
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


def decode_jwt_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(header, claims)`` of a compact JWS without checking its signature."""
    header_b64, claims_b64, _signature = token.split(".")
    return json.loads(b64url_decode(header_b64)), json.loads(b64url_decode(claims_b64))


def _signing_key() -> rsa.RSAPrivateKey:
    # One key per process is enough (and saves ~50 ms per token server).
    with _KEY_LOCK:
        if "key" not in _KEY_CACHE:
            _KEY_CACHE["key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _KEY_CACHE["key"]


def _self_signed_cert(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Scope:
    """One parsed ``type:name:actions`` scope."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        parts = text.split(":")
        if len(parts) < 3:
            return None
        # The name may itself hold ':' (e.g. "registry:catalog:*" has none, a host:port would).
        return cls(parts[0], ":".join(parts[1:-1]), tuple(a for a in parts[-1].split(",") if a))


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    authorization: str | None
    headers: dict[str, str]
    status: int
    #: What was granted: ``[{"type","name","actions"}]`` (empty on errors).
    granted: list[dict[str, Any]] = field(default_factory=list)
    #: The authenticated user, ``""`` for anonymous, ``None`` when authentication failed.
    subject: str | None = None


class _AuthError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class TokenServer:
    """Token server for the registry's ``auth.token`` mode. Use :meth:`start`/:meth:`stop`.

    ``users`` maps user name to password. ``private`` holds repository names that anonymous
    clients may not pull; an entry also covers every repository below it (``"private"`` covers
    ``"private/app"``). Both are plain attributes and may be changed while the server runs.
    """

    def __init__(
        self,
        directory: Path,
        *,
        users: Mapping[str, str] | None = None,
        private: Iterable[str] = (),
        service: str = DEFAULT_SERVICE,
        issuer: str = DEFAULT_ISSUER,
        expires_in: int = DEFAULT_EXPIRES_IN,
    ) -> None:
        self.directory = Path(directory)
        self.users: dict[str, str] = dict(users or {})
        self.private: set[str] = set(private)
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.key = _signing_key()
        self.kid = libtrust_key_id(self.key.public_key())
        self.rootcertbundle = self.directory / "token-rootcertbundle.pem"
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self._refresh_tokens: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> TokenServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        cert = _self_signed_cert(self.key, "imginspect test token signer")
        self.rootcertbundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"token-server-{self.port}",
            daemon=True,
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
            self._thread = None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        """The value for the registry's ``auth.token.realm``."""
        return f"{self.url}/token"

    # -- records ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[TokenRequest]:
        """Every request served so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def authorization_headers(self) -> list[str | None]:
        """The ``Authorization`` header of every request (``None`` where there was none)."""
        return [r.authorization for r in self.requests]

    def mark(self) -> int:
        """A position in :attr:`requests`, for :meth:`requests_since`."""
        return self.request_count

    def requests_since(self, mark: int) -> list[TokenRequest]:
        return self.requests[mark:]

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # -- policy ----------------------------------------------------------------------------

    def is_private(self, repository: str) -> bool:
        return any(
            repository == p or repository.startswith(p.rstrip("/") + "/") for p in self.private
        )

    def grant(self, subject: str, scopes: Iterable[str]) -> list[dict[str, Any]]:
        """The ``access`` claim for ``subject`` (``""`` = anonymous) asking for ``scopes``."""
        access: list[dict[str, Any]] = []
        for text in scopes:
            scope = Scope.parse(text)
            if scope is None:
                continue
            if subject:
                actions = list(scope.actions)
            elif scope.type == "repository" and not self.is_private(scope.name):
                actions = [a for a in scope.actions if a == "pull"]
            else:
                actions = []
            access.append({"type": scope.type, "name": scope.name, "actions": actions})
        return access

    def issue_token(
        self,
        subject: str,
        access: list[dict[str, Any]],
        *,
        audience: str | None = None,
        expires_in: int | None = None,
        issuer: str | None = None,
    ) -> str:
        """Sign a registry token directly (tests can forge expired or foreign tokens with it)."""
        now = int(dt.datetime.now(dt.timezone.utc).timestamp())
        lifetime = self.expires_in if expires_in is None else expires_in
        claims = {
            "iss": self.issuer if issuer is None else issuer,
            "sub": subject,
            "aud": self.service if audience is None else audience,
            "exp": now + lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        return encode_jwt(claims, self.key, self.kid)

    def _check_password(self, username: str, password: str) -> str:
        expected = self.users.get(username)
        if expected is None or not secrets.compare_digest(expected, password):
            raise _AuthError(401, "UNAUTHORIZED", "authentication failed")
        return username

    def _basic_subject(self, authorization: str | None) -> str:
        """``""`` for anonymous, the user for valid Basic credentials; raises otherwise."""
        if not authorization:
            return ""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise _AuthError(401, "UNAUTHORIZED", f"unsupported authorization scheme {scheme!r}")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _AuthError(401, "UNAUTHORIZED", "malformed basic credentials") from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise _AuthError(401, "UNAUTHORIZED", "malformed basic credentials")
        return self._check_password(username, password)

    def _new_refresh_token(self, subject: str) -> str:
        token = "refresh-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[token] = subject
        return token

    def _token_body(
        self, subject: str, scopes: list[str], *, refresh: bool
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        access = self.grant(subject, scopes)
        token = self.issue_token(subject, access)
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": _rfc3339(dt.datetime.now(dt.timezone.utc)),
        }
        if scopes:
            body["scope"] = " ".join(scopes)
        if refresh and subject:
            body["refresh_token"] = self._new_refresh_token(subject)
        return body, access

    def handle_get(
        self, query: dict[str, list[str]], authorization: str | None
    ) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        subject = self._basic_subject(authorization)
        offline = query.get("offline_token", ["false"])[-1].lower() == "true"
        body, access = self._token_body(subject, _scopes(query), refresh=offline)
        return subject, body, access

    def handle_post(
        self, form: dict[str, list[str]], authorization: str | None
    ) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        grant_type = form.get("grant_type", [""])[-1]
        if grant_type == "password":
            subject = self._check_password(
                form.get("username", [""])[-1], form.get("password", [""])[-1]
            )
            body, access = self._token_body(subject, _scopes(form), refresh=True)
            return subject, body, access
        if grant_type == "refresh_token":
            presented = form.get("refresh_token", [""])[-1]
            with self._lock:
                found = self._refresh_tokens.get(presented)
            if found is None:
                raise _AuthError(401, "UNAUTHORIZED", "invalid refresh token")
            body, access = self._token_body(found, _scopes(form), refresh=False)
            return found, body, access
        raise _AuthError(400, "UNSUPPORTED", f"unsupported grant_type {grant_type!r}")


def _scopes(params: dict[str, list[str]]) -> list[str]:
    return [s for value in params.get("scope", []) for s in value.split(" ") if s]


def _make_handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "imginspect-test-token-server/1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="imginspect-test-token-server"')
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _serve(self, form: dict[str, list[str]]) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query, keep_blank_values=True)
            authorization = self.headers.get("Authorization")
            subject: str | None = None
            access: list[dict[str, Any]] = []
            status = 200
            try:
                if parts.path != "/token":
                    raise _AuthError(404, "NOT_FOUND", f"no such endpoint {parts.path!r}")
                if self.command == "GET":
                    subject, body, access = server.handle_get(query, authorization)
                elif self.command == "POST":
                    subject, body, access = server.handle_post(form, authorization)
                else:
                    raise _AuthError(405, "UNSUPPORTED", f"method {self.command} not allowed")
            except _AuthError as err:
                status = err.status
                body = {
                    "errors": [{"code": err.code, "message": err.message}],
                    "error": "invalid_grant" if err.status == 401 else "invalid_request",
                    "error_description": err.message,
                }
            server._record(
                TokenRequest(
                    method=self.command,
                    path=parts.path,
                    query=query,
                    form=form,
                    authorization=authorization,
                    headers=dict(self.headers.items()),
                    status=status,
                    granted=access,
                    subject=subject,
                )
            )
            self._reply(status, body)

        def do_GET(self) -> None:
            self._serve({})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            self._serve(parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True))

        def do_PUT(self) -> None:
            self._serve({})

        def do_DELETE(self) -> None:
            self._serve({})

    return Handler
