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

from imginspect._record import Record, record
from imginspect.cache import Cache
from imginspect.challenge import (
    MAX_TOKEN_LIFETIME,
    Challenge,
    parse_challenges,
    preferred_challenge,
    usable_token,
)
from imginspect.errors import AuthError, ImginspectError, MalformedDocumentError, RegistryError

if TYPE_CHECKING:
    # Only annotations: importing Credential (credentials.py, `imginspect auth`) stays httpx-free.
    from imginspect.transport import HttpTransport, Response

#: Token responses are small JSON documents; anything bigger is not a token response.
MAX_TOKEN_RESPONSE = 256 * 1024
#: Refresh a token this long before the registry says it expires.
TOKEN_EXPIRY_MARGIN = 10.0
#: Docker's default when a token response gives no expires_in (distribution's spec says 60 s).
DEFAULT_TOKEN_LIFETIME = 60.0
CLIENT_ID = "imginspect"


@record
class Credential(Record):
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


#: What a token is cached under: (realm, service, scope, credential identity).
TokenKey = tuple[str, str, str, str]

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
        log: Callable[[str], None] | None = None,
    ) -> None:
        self._transport = transport
        self._cache = cache
        self._registry_host = registry_host
        self._lookup = credentials
        self._credentials: dict[str, Credential | None] = {}
        self._insecure_host = insecure_host
        self._challenge: Challenge | None = None
        self._tokens: dict[TokenKey, _Token] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[TokenKey, threading.Lock] = {}
        self._log = log
        if cache is not None:
            # What the registry asked for last time: lets the first request carry a token.
            known = (cache.get_host(registry_host) or {}).get("challenge")
            if isinstance(known, dict) and isinstance(known.get("scheme"), str):
                params = known.get("params")
                if isinstance(params, dict) and all(isinstance(v, str) for v in params.values()):
                    self._challenge = Challenge(known["scheme"], dict(params))

    def credential(self, repository: str) -> Credential | None:
        """The credential for ``repository`` (looked up once per repository and run).

        No lock across the lookup: it may run a credential helper, and the resolver itself
        runs each helper once while lookups for other repositories go on."""
        if repository in self._credentials:
            return self._credentials[repository]
        found = self._lookup(repository) if self._lookup is not None else None
        return self._credentials.setdefault(repository, found)

    def header(self, repository: str, scope: str) -> str | None:
        """The Authorization header to send now for ``scope``, if we know one.

        When the registry's challenge is known (from this run, or cached from an earlier one)
        and asks for a bearer token we do not hold, the token is fetched now: the request
        then goes out with it, instead of being refused first (registries such as Harbor
        refuse even an anonymous HEAD without a token). If that fetch fails, the request goes
        without, and the registry's own challenge decides.
        """
        cred = self.credential(repository)
        if cred is not None and cred.registry_token:
            return f"Bearer {cred.registry_token}"
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return cred.basic_header() if cred is not None and cred.has_password else None
        key = self._token_key(challenge, scope, cred)
        token = self._valid_token(key)
        if token is not None:
            return f"Bearer {token.value}"
        try:
            token = self._obtain_token(challenge, scope, cred, rejected=None)
        except ImginspectError as error:
            self._debug(f"auth: token for {scope} not obtained up front ({error.message})")
            return None
        return f"Bearer {token.value}"

    def _valid_token(self, key: TokenKey) -> _Token | None:
        """A token for ``key`` that has not expired: from this run, else from the cache."""
        token = self._tokens.get(key)
        if token is None and self._cache is not None:
            stored = self._cache.get_token(*key)
            if stored is not None:
                token = self._tokens[key] = _Token(*stored)
        if token is not None and token.expires_at > time.time():
            return token
        return None

    def _obtain_token(
        self, challenge: Challenge, scope: str, cred: Credential | None, *, rejected: str | None
    ) -> _Token:
        """A valid token for ``scope`` that is not ``rejected`` (a header value the registry
        refused): one fetch per token at a time (requests for one repository share it), and
        no lock across tokens: a token server hanging for one repository must not hold up the
        other references of a batch, each bound by its own deadline."""
        key = self._token_key(challenge, scope, cred)
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:
            cached = self._tokens.get(key)
            if (
                cached is not None
                and f"Bearer {cached.value}" != rejected
                and cached.expires_at > time.time()
            ):
                return cached
            token = self._fetch_token(challenge, scope, cred)
            self._tokens[key] = token
            if self._cache is not None:
                self._cache.put_token(*key, token=token.value, expires_at=token.expires_at)
        return token

    def forget(self, rejected: str, repository: str, scope: str) -> None:
        """Drop a bearer token the registry refused, from memory and from the cache."""
        challenge = self._challenge
        if challenge is None or challenge.scheme != "bearer":
            return
        key = self._token_key(challenge, scope, self.credential(repository))
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and f"Bearer {token.value}" == rejected:
                del self._tokens[key]
        if self._cache is not None:
            stored = self._cache.get_token(*key)
            if stored is not None and f"Bearer {stored[0]}" == rejected:
                # An expired entry is a miss: the refused token is never sent again. 1.0, a
                # moment long past, not 0.0: the cache stores no expiry that is not positive,
                # so 0.0 left the refused token there, valid, for later requests and runs.
                self._cache.put_token(*key, token=stored[0], expires_at=1.0)

    def _debug(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    def respond_to(
        self, response: Response, repository: str, scope: str, *, sent: str | None
    ) -> str | None:
        """After a 401, get what the challenge asks for and return a header to retry with.

        A 401 without a challenge to a request that carried a bearer token (Google Artifact
        Registry answers so for a revoked or expired token) drops that token and answers
        the challenge known from before. Returns ``None`` when retrying cannot help.
        """
        challenge = preferred_challenge(parse_challenges(response.header_list("www-authenticate")))
        if challenge is None:
            known = self._challenge
            if known is None or known.scheme != "bearer" or sent is None:
                return None
            if not sent.startswith("Bearer "):
                return None
            self._debug("auth: the registry refused the token without a challenge; a new one")
            self.forget(sent, repository, scope)
            challenge = known
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
        if sent is not None and sent.startswith("Bearer "):
            self.forget(sent, repository, scope)
        token = self._obtain_token(challenge, scope, cred, rejected=sent)
        header = f"Bearer {token.value}"
        return header if header != sent else None

    @staticmethod
    def _token_key(challenge: Challenge, scope: str, cred: Credential | None) -> TokenKey:
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
        # the registry's own rule (loopback, insecure-registries, certs.d) decides for the realm
        verify = not self._insecure_host(realm_host)
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
                # A realm that moved (or wants a trailing slash) redirects: docker, containerd
                # and go-containerregistry follow it. The transport drops the Basic header on
                # a redirect to another host or to plain http. (The POST above is not
                # followed: a 307 would send the refresh token in its body wherever it says.)
                follow_redirects=True,
            )
        has_secret = cred is not None and bool(cred.identity_token or cred.has_password)
        sent_secret = has_secret and may_send_secret
        if not has_secret:
            hint = "the repository may not exist, or may be private and need credentials"
        elif may_send_secret:
            hint = "check the username and password or token"
        else:
            hint = (
                f"credentials were not sent: the token realm {parts.scheme}://{realm_host} is "
                "plain HTTP on a host not declared insecure"
            )
        return _parse_token_response(response, realm, refused_hint=hint, sent_secret=sent_secret)


def _parse_token_response(
    response: Response, realm: str, *, refused_hint: str, sent_secret: bool
) -> _Token:
    origin = f"{urlsplit(realm).scheme}://{urlsplit(realm).netloc}"
    if response.status in (401, 403):
        # The server's own reason, as docker and skopeo print it ("incorrect username or
        # password", "denied", "... (or it may not exist)").
        reason = token_error_reason(response.body)
        detail = f": {reason}" if reason else ""
        if sent_secret:
            message = f"token server {origin} refused the credentials (HTTP {response.status})"
        else:
            message = f"token server {origin} refused anonymous access (HTTP {response.status})"
        raise AuthError(message + detail, hint=refused_hint)
    if response.status >= 400:
        reason = token_error_reason(response.body)
        detail = f": {reason}" if reason else ""
        raise RegistryError(f"token server {origin} answered HTTP {response.status}{detail}")
    try:
        body = json.loads(response.body)
    except (ValueError, RecursionError):
        raise MalformedDocumentError(f"token server {origin} did not answer JSON") from None
    if not isinstance(body, dict):
        raise MalformedDocumentError(f"token server {origin} answered a JSON {type(body).__name__}")
    value = body.get("token") or body.get("access_token")
    if not isinstance(value, str) or not value:
        raise MalformedDocumentError(f"token server {origin} answered no token")
    if not usable_token(value):
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


def token_error_reason(body: bytes) -> str:
    """The reason a token server gives for refusing: Docker Hub's ``{"details": ...}``, the
    distribution error format's ``errors[0].message``, OAuth2's ``error_description``, or
    the first line of a short plain-text body. One line, bounded, control characters
    dropped."""
    text = ""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        document = None
        if body and not body.lstrip().startswith((b"<", b"{", b"[")):
            lines = body.decode("utf-8", "replace").strip().splitlines()
            text = lines[0] if lines else ""
    if isinstance(document, dict):
        errors = document.get("errors")
        first = errors[0] if isinstance(errors, list) and errors else None
        for candidate in (
            document.get("details"),
            first.get("message") if isinstance(first, dict) else None,
            document.get("error_description"),
            document.get("message"),
            document.get("error"),
        ):
            if isinstance(candidate, str) and candidate.strip():
                text = candidate
                break
    flat = " ".join("".join(ch for ch in text if ch.isprintable() or ch.isspace()).split())
    return flat if len(flat) <= 200 else flat[:199] + "…"
