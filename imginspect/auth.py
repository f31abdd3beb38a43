"""Registry authentication: credentials, challenges, and bearer tokens.

A :class:`Credential` is what a user has for one registry (found by a credential provider,
see ``credentials.py`` in later work, or given on the command line). An
:class:`Authenticator` keeps, for one registry, what the registry asked for (Basic or a
Bearer token from a realm) and the tokens obtained, so that every later request of the run
carries the right ``Authorization`` header at once, without another 401 round trip.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from imginspect.cache import Cache
from imginspect.challenge import Challenge, parse_challenges, preferred_challenge
from imginspect.errors import AuthError, MalformedDocumentError, RegistryError
from imginspect.reference import is_loopback_host

if TYPE_CHECKING:
    # Only annotations: importing Credential (credentials.py, `imginspect auth`) stays httpx-free.
    from imginspect.transport import HttpTransport, Response

#: Token responses are small JSON documents; anything bigger is not a token response.
MAX_TOKEN_RESPONSE = 256 * 1024
#: Refresh a token this long before the registry says it expires.
TOKEN_EXPIRY_MARGIN = 10.0
#: Docker's default when a token response gives no expires_in (distribution's spec says 60 s).
DEFAULT_TOKEN_LIFETIME = 60.0
#: An ``expires_in`` beyond this (about 31 years) is not believed.
MAX_TOKEN_LIFETIME = 1e9
CLIENT_ID = "imginspect"


@dataclass(frozen=True)
class Credential:
    """A secret for one registry. Exactly one of the three forms is normally set."""

    username: str = ""
    password: str = ""
    #: OAuth2 refresh token (docker config ``identitytoken``), exchanged at the token realm.
    identity_token: str = ""
    #: A bearer token sent to the registry as is (docker config ``registrytoken``).
    registry_token: str = ""
    #: Where it came from, for explanations; never contains the secret.
    source: str = ""

    @property
    def has_password(self) -> bool:
        return bool(self.username and self.password)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    @property
    def identity(self) -> str:
        """Who this credential is, for token cache keys.

        It includes a short hash of the secret, so that a token obtained with one password is
        never reused for another (a changed or mistyped password must reach the token
        server). Cache file names hash this again; the secret itself is never stored.
        """
        secret = self.registry_token or self.identity_token or self.password
        fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:16] if secret else ""
        if self.registry_token or self.identity_token:
            return "token:" + fingerprint
        return f"user:{self.username}:{fingerprint}" if self.username else ""

    def __repr__(self) -> str:  # never show secrets, even in a traceback or debugger
        return f"Credential(username={self.username!r}, source={self.source!r}, secret=<redacted>)"


@dataclass
class _Token:
    value: str
    expires_at: float


#: Finds the credential for a repository of one registry (None: anonymous).
CredentialLookup = Callable[[str], Credential | None]


def scope_for(repository: str, actions: str = "pull") -> str:
    return f"repository:{repository}:{actions}"


class Authenticator:
    """Authentication state for one registry host, shared by every request to it."""

    def __init__(
        self,
        transport: HttpTransport,
        registry_host: str,
        credentials: CredentialLookup | None,
        *,
        insecure_host: Callable[[str], bool],
        cache: Cache | None = None,
    ) -> None:
        self._transport = transport
        self._cache = cache
        self._registry_host = registry_host
        self._lookup = credentials
        self._credentials: dict[str, Credential | None] = {}
        self._insecure_host = insecure_host
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, str, str, str], _Token] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[tuple[str, str, str, str], threading.Lock] = {}
        if cache is not None:
            # What the registry asked for last time: lets the first request carry a token.
            known = (cache.get_host(registry_host) or {}).get("challenge")
            if isinstance(known, dict) and isinstance(known.get("scheme"), str):
                params = known.get("params")
                if isinstance(params, dict) and all(isinstance(v, str) for v in params.values()):
                    self._challenge = Challenge(known["scheme"], dict(params))

    def credential(self, repository: str) -> Credential | None:
        """The credential for ``repository`` (looked up once per repository and run)."""
        if repository not in self._credentials:
            with self._lock:
                if repository not in self._credentials:
                    found = self._lookup(repository) if self._lookup is not None else None
                    self._credentials[repository] = found
        return self._credentials[repository]

    def header(self, repository: str, scope: str) -> str | None:
        """The Authorization header to send now for ``scope``, if we know one."""
        cred = self.credential(repository)
        if cred is not None and cred.registry_token:
            return f"Bearer {cred.registry_token}"
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return cred.basic_header() if cred is not None and cred.has_password else None
        key = self._token_key(challenge, scope, cred)
        token = self._tokens.get(key)
        if token is None and self._cache is not None:
            stored = self._cache.get_token(*key)
            if stored is not None:
                token = self._tokens[key] = _Token(*stored)
        if token is not None and token.expires_at > time.time():
            return f"Bearer {token.value}"
        return None

    def respond_to(
        self, response: Response, repository: str, scope: str, *, sent: str | None
    ) -> str | None:
        """After a 401, get what the challenge asks for and return a header to retry with.

        Returns ``None`` when retrying cannot help (nothing new to offer).
        """
        challenge = preferred_challenge(
            parse_challenges(response.headers.get_list("www-authenticate"))
        )
        if challenge is None:
            return None
        if challenge != self._challenge and self._cache is not None:
            self._cache.update_host(
                self._registry_host,
                challenge={"scheme": challenge.scheme, "params": challenge.params},
            )
        self._challenge = challenge
        cred = self.credential(repository)
        if challenge.scheme == "basic":
            header = cred.basic_header() if cred is not None and cred.has_password else None
            return header if header != sent else None
        key = self._token_key(challenge, scope, cred)
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        # One fetch per token at a time (requests for one repository share it), and no lock
        # across tokens: a token server hanging for one repository must not hold up the
        # other references of a batch, each bound by its own deadline.
        with fetch_lock:
            cached = self._tokens.get(key)
            if (
                cached is not None
                and f"Bearer {cached.value}" != sent
                and cached.expires_at > time.time()
            ):
                return f"Bearer {cached.value}"
            token = self._fetch_token(challenge, scope, cred)
            self._tokens[key] = token
            if self._cache is not None:
                self._cache.put_token(*key, token=token.value, expires_at=token.expires_at)
        header = f"Bearer {token.value}"
        return header if header != sent else None

    @staticmethod
    def _token_key(
        challenge: Challenge, scope: str, cred: Credential | None
    ) -> tuple[str, str, str, str]:
        identity = cred.identity if cred is not None else ""
        return (challenge.realm, challenge.params.get("service", ""), scope, identity)

    # ------------------------------------------------------------------ token flow

    def _fetch_token(self, challenge: Challenge, scope: str, cred: Credential | None) -> _Token:
        realm = challenge.realm
        try:
            parts = urlsplit(realm)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:  # e.g. an unclosed IPv6 bracket: the registry's string, not ours
            usable = False
        if not usable:
            raise AuthError(
                f"registry {self._registry_host} sent an unusable token realm {realm!r}",
                hint="the registry's auth configuration is broken",
                credentials_may_help=False,
            )
        service = challenge.params.get("service", "")
        realm_host = parts.netloc
        verify = not (self._insecure_host(realm_host) or is_loopback_host(realm_host))
        # Never send a secret in clear text to a host that is not local or declared insecure.
        may_send_secret = parts.scheme == "https" or not verify
        if cred is not None and cred.identity_token and may_send_secret:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": cred.identity_token,
                "client_id": CLIENT_ID,
                "scope": scope,
            }
            if service:
                form["service"] = service
            response = self._transport.request(
                "POST",
                realm,
                data=form,
                max_bytes=MAX_TOKEN_RESPONSE,
                what="token",
                verify=verify,
            )
        else:
            query = {"scope": scope}
            if service:
                query = {"service": service, "scope": scope}
            headers: dict[str, str] = {}
            if cred is not None and cred.has_password and may_send_secret:
                headers["Authorization"] = cred.basic_header()
                query["account"] = cred.username
            separator = "&" if parts.query else "?"
            response = self._transport.request(
                "GET",
                realm + separator + urlencode(query),
                headers=headers,
                max_bytes=MAX_TOKEN_RESPONSE,
                what="token",
                verify=verify,
            )
        has_secret = cred is not None and bool(cred.identity_token or cred.has_password)
        if not has_secret:
            hint = "the repository may not exist, or may be private and need credentials"
        elif may_send_secret:
            hint = "check the username and password or token"
        else:
            hint = (
                f"credentials were not sent: the token realm {parts.scheme}://{realm_host} is "
                "plain HTTP on a host not declared insecure"
            )
        return _parse_token_response(response, realm, refused_hint=hint)


def _parse_token_response(response: Response, realm: str, *, refused_hint: str) -> _Token:
    origin = f"{urlsplit(realm).scheme}://{urlsplit(realm).netloc}"
    if response.status in (401, 403):
        raise AuthError(
            f"token server {origin} refused the credentials (HTTP {response.status})",
            hint=refused_hint,
        )
    if response.status >= 400:
        raise RegistryError(f"token server {origin} answered HTTP {response.status}")
    try:
        body = json.loads(response.body)
    except (ValueError, RecursionError):
        raise MalformedDocumentError(f"token server {origin} did not answer JSON") from None
    if not isinstance(body, dict):
        raise MalformedDocumentError(f"token server {origin} answered a JSON {type(body).__name__}")
    value = body.get("token") or body.get("access_token")
    if not isinstance(value, str) or not value:
        raise MalformedDocumentError(f"token server {origin} answered no token")
    if not (value.isascii() and value.isprintable()) or " " in value:
        # It goes into an Authorization header: printable ASCII only, or the next request
        # fails in the HTTP library instead of here.
        raise MalformedDocumentError(f"token server {origin} answered an unusable token")
    lifetime = body.get("expires_in")
    # Not a number, not positive, NaN, infinite or absurd (float() of a huge JSON integer
    # overflows): the default lifetime.
    if (
        not isinstance(lifetime, (int, float))
        or isinstance(lifetime, bool)
        or not 0 < lifetime < MAX_TOKEN_LIFETIME
    ):
        lifetime = DEFAULT_TOKEN_LIFETIME
    # Wall-clock time: tokens outlive this process in the cache.
    expires_at = time.time() + max(float(lifetime) - TOKEN_EXPIRY_MARGIN, 1.0)
    return _Token(value, expires_at)
