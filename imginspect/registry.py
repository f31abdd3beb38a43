"""Registry client: the OCI distribution API calls imginspect makes, for one registry host.

It picks the scheme (https, or for insecure registries https without verification then
plain http, as the Docker daemon does), answers auth challenges through an
:class:`~imginspect.auth.Authenticator`, maps HTTP statuses to typed errors, and checks
every digest against the bytes received.
"""

from __future__ import annotations

import contextvars
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlencode, urljoin, urlsplit

from imginspect import mediatypes as mt
from imginspect.auth import Authenticator, CredentialLookup, scope_for
from imginspect.cache import Cache
from imginspect.digest import compute_digest, is_valid_digest, verify_digest
from imginspect.errors import (
    AuthError,
    ConnectionFailedError,
    DigestMismatchError,
    ImginspectError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
)
from imginspect.reference import DEFAULT_DOMAIN, DOCKER_HUB_API_HOST, is_valid_tag
from imginspect.result import RateLimit
from imginspect.sources import MAX_MANIFEST_BYTES, FetchedManifest, ManifestHead, ReferrersPage
from imginspect.transport import HttpTransport, Response, parse_retry_after, remaining_time

#: How long (seconds) a request waits for another request's scheme negotiation before it
#: negotiates on its own. The answer takes one TCP connect and one TLS handshake attempt (a
#: few round trips: milliseconds on a LAN, well under a second across the world); when the
#: https probe works, also the first answer. It takes longer only when that request hangs
#: (e.g. on its own repository): then the others lose at most this much, and probe as
#: every request did before negotiations were shared.
SCHEME_WAIT = 2.0


class RegistryClient:
    """Talks to one registry host: a :class:`~imginspect.sources.Source`. Thread-safe;
    shared by every reference of a run."""

    remote = True

    def __init__(
        self,
        domain: str,
        transport: HttpTransport,
        *,
        credentials: CredentialLookup | None = None,
        insecure: bool = False,
        insecure_host: Callable[[str], bool] | None = None,
        endpoint: str | None = None,
        cache: Cache | None = None,
    ) -> None:
        self.domain = domain
        self._cache = cache
        self.api_host = DOCKER_HUB_API_HOST if domain == DEFAULT_DOMAIN else domain
        # A mirror (``registry-mirrors``): requests for ``domain`` go to ``endpoint``, a URL
        # with scheme, host and optional path prefix, and only there.
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        if self._endpoint is not None:
            self.api_host = urlsplit(self._endpoint).netloc
        self._transport = transport
        self._insecure = insecure
        # Secure registries are https only; insecure ones try https (unverified), then http.
        self._scheme: str | None = None if insecure else "https"
        if self._endpoint is not None:
            self._scheme = urlsplit(self._endpoint).scheme
        #: the scheme came from the cache: if it stops working, negotiate again
        self._scheme_from_cache = False
        # One negotiation at a time (see _negotiate): the token of the request leading it, and
        # a condition notified whenever the scheme becomes known or a negotiation ends. Its
        # lock guards _scheme, _scheme_from_cache and _leader; it is never held across I/O.
        self._leader: object | None = None
        self._scheme_settled = threading.Condition(threading.Lock())
        if self._scheme is None and cache is not None:
            known = (cache.get_host(self.api_host) or {}).get("scheme")
            if known in ("https", "http"):
                self._scheme, self._scheme_from_cache = known, True
        self.auth = Authenticator(
            transport,
            self.api_host,
            credentials,
            # by default the built-in rules: loopback hosts (and this one if insecure)
            insecure_host=insecure_host
            or (lambda host: (host == self.api_host and insecure) or _default_insecure(host)),
            cache=cache,
            log=transport.log,
        )

    # ------------------------------------------------------------------ public API

    def get_manifest(self, repository: str, target: str) -> FetchedManifest:
        """GET a manifest or index by tag or digest; verify its digest against the bytes."""
        response = self._request(
            "GET",
            repository,
            f"/v2/{repository}/manifests/{target}",
            headers={"Accept": mt.MANIFEST_ACCEPT},
            max_bytes=MAX_MANIFEST_BYTES,
            what="manifest",
            follow_redirects=True,  # as Docker's client does; credentials stay home
            subject=_subject(repository, target),
        )
        raw = response.body
        header_digest = response.header("docker-content-digest")
        if header_digest is not None and not is_valid_digest(header_digest):
            header_digest = None  # unusable; the body's own hash is what counts
        if header_digest is not None:
            verify_digest(
                raw, header_digest, what=f"manifest {repository}:{target} (Docker-Content-Digest)"
            )
        if is_valid_digest(target):
            verify_digest(raw, target, what=f"manifest {repository}@{target}")
            digest = target
        else:
            digest = compute_digest(raw)
        return FetchedManifest(
            raw,
            response.header("content-type"),
            digest,
            header_digest,
            RateLimit.from_headers(
                response.header("ratelimit-limit"), response.header("ratelimit-remaining")
            ),
        )

    def head_manifest(self, repository: str, target: str) -> ManifestHead | None:
        """HEAD a manifest: its digest without its body (free on Docker Hub's pull limit).

        Returns ``None`` when the registry's answer cannot tell the digest (HEAD not
        supported, no ``Docker-Content-Digest``); callers then fall back to GET.
        """
        try:
            response = self._request(
                "HEAD",
                repository,
                f"/v2/{repository}/manifests/{target}",
                headers={"Accept": mt.MANIFEST_ACCEPT},
                max_bytes=0,
                what="manifest",
                follow_redirects=True,
                subject=_subject(repository, target),
            )
        except (NotFoundError, AuthError, RateLimitedError, ConnectionFailedError):
            raise
        except RegistryError:
            return None  # e.g. 405 Method Not Allowed, or a 5xx only HEAD triggers
        digest = response.header("docker-content-digest")
        if digest is None or not is_valid_digest(digest):
            return None
        if is_valid_digest(target) and digest != target:
            raise DigestMismatchError(
                f"registry answered digest {digest} for manifest {repository}@{target}"
            )
        length = response.header("content-length") or ""
        # ASCII digits, at most 19 (Go refuses more): "²" passes str.isdigit() and int()
        # refuses it, and past 4300 digits int() raises too, neither an HTTP error
        valid = length.isascii() and length.isdigit() and len(length) <= 19
        size = int(length) if valid else None
        content_type = response.header("content-type")
        return ManifestHead(
            digest, content_type.split(";")[0].strip() if content_type else None, size
        )

    def get_blob(self, repository: str, digest: str, *, max_bytes: int, what: str) -> bytes:
        """GET a blob (following redirects, e.g. to storage), verified against ``digest``."""
        response = self._request(
            "GET",
            repository,
            f"/v2/{repository}/blobs/{digest}",
            headers={},
            max_bytes=max_bytes,
            what=what,
            subject=f"{repository}@{digest}",
            follow_redirects=True,
        )
        verify_digest(response.body, digest, what=f"{what} {repository}@{digest}")
        return response.body

    def list_tags(self, repository: str, *, limit: int) -> list[str]:
        """GET the repository's tag list (its first ``limit`` tags; bounded, validated)."""
        response = self._request(
            "GET",
            repository,
            f"/v2/{repository}/tags/list?n={limit}",
            headers={"Accept": "application/json"},
            max_bytes=4096 + 256 * limit,  # tags are at most 128 characters
            what="tag list",
            subject=repository,
        )
        try:
            body = json.loads(response.body)
        except (ValueError, RecursionError):
            body = None
        tags = body.get("tags", ()) if isinstance(body, dict) else body
        if tags is None and isinstance(body, dict):  # CNCF: a repository without tags
            return []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise RegistryError(f"{self.domain} sent a malformed tag list for {repository}")
        return tags[:limit]

    def iter_tag_pages(self, repository: str, *, page_size: int, limit: int) -> Iterator[list[str]]:
        """The tag list a page at a time, following ``Link: <...>; rel="next"`` (distribution
        API pagination with ``n`` and ``last``), at most ``limit`` tags in all.

        Each page is bounded and validated (tag grammar); a ``next`` link must stay on this
        registry and this repository's tag list, and must move on (a repeated link is a
        protocol error, not an endless loop). 403 is an :class:`AuthError` whose hint says the
        registry may refuse listing; 405/501 or ``UNSUPPORTED`` a :class:`RegistryError`.
        """
        base = f"/v2/{repository}/tags/list"
        query = urlencode({"n": max(1, min(page_size, limit))})
        seen: set[str] = set()
        total = 0
        # a registry that ignores ``n`` may send everything at once: allow up to 20k tags
        max_bytes = 4096 + 256 * max(page_size, min(limit, 20_000))
        while total < limit:
            seen.add(query)
            response = self._list_request(repository, f"{base}?{query}", max_bytes)
            tags = _decode_tags(response.body, self.domain, repository)
            page = tags[: limit - total]
            total += len(page)
            if page:
                yield page
            query_next = _next_link(response, base, self.api_host, "tag list")
            if query_next is None or not tags:
                return
            if query_next in seen:
                raise RegistryError(
                    f"{self.domain} sent a tag-list Link that repeats itself for {repository}"
                )
            query = query_next

    def _list_request(self, repository: str, path: str, max_bytes: int) -> Response:
        try:
            return self._request(
                "GET",
                repository,
                path,
                headers={"Accept": "application/json"},
                max_bytes=max_bytes,
                what="tag list",
                subject=repository,
                # registry.k8s.io sends every listing to its backing registry (credentials
                # stay home: the transport drops them on the way to another host)
                follow_redirects=True,
            )
        except AuthError as error:
            if "HTTP 403" not in error.message:
                raise
            raise AuthError(
                error.message,
                hint="the registry refuses to list the tags of this repository (some allow "
                "pulls but not listing); check the credentials' permissions, or inspect a "
                "known tag",
            ) from None
        except NotFoundError:
            raise
        except RegistryError as error:
            if not any(f"HTTP {s}" in error.message for s in (400, 405, 501)) and (
                "UNSUPPORTED" not in error.message.upper()
            ):
                raise
            raise RegistryError(
                error.message,
                hint=f"{self.domain} does not support listing tags; inspect a known tag",
            ) from None

    def get_referrers(
        self, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> tuple[ReferrersPage, ...] | None:
        """GET the OCI 1.1 referrers API (``/v2/<name>/referrers/<digest>``), following
        ``Link`` pagination (at most 16 pages); None when the registry has no such API (404).

        ``artifact_type`` is sent as the ``artifactType`` filter; whether the registry applied
        it says each page's ``filters_applied`` (``OCI-Filters-Applied``).
        """
        if not is_valid_digest(digest):
            raise RegistryError(f"not a digest: {digest!r}")
        base = f"/v2/{repository}/referrers/{digest}"
        query = urlencode({"artifactType": artifact_type}) if artifact_type else ""
        pages: list[ReferrersPage] = []
        seen: set[str] = set()
        while len(pages) < 16:
            seen.add(query)
            try:
                response = self._request(
                    "GET",
                    repository,
                    f"{base}?{query}" if query else base,
                    headers={"Accept": mt.OCI_INDEX},
                    max_bytes=MAX_MANIFEST_BYTES,
                    what="referrers",
                    subject=f"{repository}@{digest}",
                    follow_redirects=True,  # as tag lists (registry.k8s.io)
                )
            except NotFoundError:
                if pages:
                    raise
                return None  # no referrers API: callers fall back to the tag schema
            except RegistryError as error:
                if pages or not any(f"HTTP {s}" in error.message for s in (400, 405, 501)):
                    raise
                return None
            applied = frozenset(
                f.strip()
                for f in (response.header("oci-filters-applied") or "").split(",")
                if f.strip()
            )
            content_type = response.header("content-type")
            pages.append(ReferrersPage(response.body, content_type, applied))
            query_next = _next_link(response, base, self.api_host, "referrers list")
            if query_next is None or query_next in seen:
                break
            query = query_next
        return tuple(pages)

    def close(self) -> None:
        """Nothing to release: connections belong to the run's transport."""

    # ------------------------------------------------------------------ plumbing

    def base_url(self, scheme: str) -> str:
        if self._endpoint is not None:
            return self._endpoint
        return f"{scheme}://{self.api_host}"

    def _is_own(self, url: str) -> bool:
        """Whether ``url`` is on the registry's host and port (either scheme: a registry
        without a port is spoken to on the scheme's own)."""
        try:
            there, here = urlsplit(url), urlsplit(self.base_url("https"))
            return (there.hostname, there.port) == (here.hostname, here.port)
        except ValueError:
            return False

    def _request(
        self,
        method: str,
        repository: str,
        path: str,
        *,
        headers: dict[str, str],
        max_bytes: int,
        what: str,
        subject: str,
        follow_redirects: bool = False,
    ) -> Response:
        scope = scope_for(repository)
        sent = self.auth.header(repository, scope)
        response = self._send(method, path, headers, sent, max_bytes, what, follow_redirects)
        if response.status == 401 and self._is_own(response.url):
            # Only the registry's own 401 is answered: one from a host it redirected to
            # (storage, a CDN) names that host's realm, which must get neither the registry's
            # credentials nor become its challenge in the cache (docker keys challenges by
            # the host that sent them). That 401 is reported as it is.
            retry_header = self.auth.respond_to(response, repository, scope, sent=sent)
            if retry_header is not None:
                sent = retry_header
                response = self._send(
                    method, path, headers, sent, max_bytes, what, follow_redirects
                )
        if response.status >= 300:
            raise self._error_for(
                response,
                method=method,
                what=what,
                repository=repository,
                subject=subject,
                sent=sent,
            )
        return response

    def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        authorization: str | None,
        max_bytes: int,
        what: str,
        follow_redirects: bool,
    ) -> Response:
        all_headers = dict(headers)
        if authorization is not None:
            all_headers["Authorization"] = authorization
        # The transport reads error bodies (to quote them) to its own small bound.
        limit = max_bytes if method != "HEAD" else 0
        lead: object | None = None
        for _attempt in range(2):
            scheme, from_cache, lead = self._scheme_or_lead()
            if scheme is None:
                break
            try:
                response = self._transport.request(
                    method,
                    self.base_url(scheme) + path,
                    headers=all_headers,
                    max_bytes=limit,
                    what=what,
                    verify=not self._insecure,
                    follow_redirects=follow_redirects,
                )
            except NetworkError as error:
                # The registry changed since it was cached (e.g. now speaks TLS): negotiate.
                # A cached https fails to connect then; a cached http is refused, or its
                # connection hung up on (TLS servers other than Go's and nginx's close it
                # rather than answer the 400 handled below), which would otherwise fail every
                # run on the cached http. Not once the deadline has passed: nothing to try.
                left = remaining_time()
                changed = isinstance(error, ConnectionFailedError) or scheme == "http"
                if not (from_cache and changed) or (left is not None and left <= 0):
                    raise
            else:
                if not (
                    scheme == "http"
                    and self._endpoint is None
                    and (
                        _speaks_tls_only(response, method)
                        or _redirects_to_https(response, self.api_host, path)
                    )
                ):
                    return response
                # The registry moved from http to https on the same port (Go and nginx say so
                # in a 400 to a plain request), or sends plain requests to https on the same
                # host (nginx's error_page 497, port 80 redirecting to 443): negotiate again,
                # https first. Staying on http, every request would send its credentials in
                # clear before the redirect, and those that do not follow redirects (tag
                # lists, referrers) would fail with it, run after run (the cache says http).
            self._forget_scheme(scheme, from_cache)
        # The scheme is unknown: this request leads the negotiation, or negotiates on its own
        # (another's said nothing within the bound, or two schemes in a row stopped working).
        try:
            return self._negotiate(method, path, all_headers, limit, what, follow_redirects)
        finally:
            if lead is not None:
                self._end_negotiation(lead)

    def _scheme_or_lead(self) -> tuple[str | None, bool, object | None]:
        """The scheme to use, or who finds it out: ``(scheme, from_cache, None)`` when it is
        known (now, or after waiting for another request's negotiation); ``(None, False,
        token)`` when this request leads the negotiation (it must pass ``token`` to
        :meth:`_end_negotiation` when done); ``(None, False, None)`` when it negotiates on
        its own, another request's negotiation having said nothing within the bound.

        The bound is :data:`SCHEME_WAIT` per leader (a new leader after one whose negotiation
        failed gets its own), and at most half of what is left of this request's deadline:
        the other half is left to try on its own.
        """
        scheme, from_cache = self._scheme, self._scheme_from_cache
        if scheme is not None:  # the usual case: no lock (a racing read = an earlier start)
            return scheme, from_cache, None
        waited_for: object | None = None
        until = waited = 0.0
        with self._scheme_settled:
            while True:
                if self._scheme is not None:
                    return self._scheme, self._scheme_from_cache, None
                leader = self._leader
                if leader is None:
                    self._leader = token = object()
                    return None, False, token
                now = time.monotonic()
                if leader is not waited_for:
                    left = remaining_time()
                    waited = SCHEME_WAIT if left is None else max(0.0, min(SCHEME_WAIT, left / 2))
                    waited_for, until = leader, now + waited
                if now >= until:
                    break
                self._scheme_settled.wait(until - now)
        if self._transport.log is not None:
            self._transport.log(
                f"scheme of {self.api_host}: still unknown after {waited:.2f} s of another "
                "request's negotiation; negotiating on its own"
            )
        return None, False, None

    def _end_negotiation(self, token: object) -> None:
        """The negotiation ``token`` leads is over, with a scheme or without (an error): the
        requests waiting for it use the scheme, or one of them leads the next negotiation."""
        with self._scheme_settled:
            if self._leader is token:
                self._leader = None
            self._scheme_settled.notify_all()

    def _settle_scheme(self, scheme: str) -> None:
        """The scheme is known (not yet remembered in the cache): waiting requests use it."""
        with self._scheme_settled:
            if self._scheme is None:
                self._scheme = scheme
                self._scheme_settled.notify_all()

    def _forget_scheme(self, scheme: str, from_cache: bool) -> None:
        """``scheme`` stopped working: negotiate again, unless another request has already
        replaced it (its failure is older news)."""
        with self._scheme_settled:
            if (self._scheme, self._scheme_from_cache) == (scheme, from_cache):
                self._scheme, self._scheme_from_cache = None, False
                # a negotiation still running settled the scheme forgotten now: the next one
                # need not wait for it to end
                self._leader = None

    def _negotiate(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        limit: int,
        what: str,
        follow_redirects: bool,
    ) -> Response:
        """A request to an insecure registry whose scheme is not known: https without
        verification, then plain http if TLS fails to connect (as the Docker daemon does).

        One negotiation at a time (single-flight): the first request that needs the scheme
        leads (:meth:`_scheme_or_lead`); requests that start meanwhile wait on a condition for
        its outcome, then use the scheme it found, so a batch of 8 workers sends one TLS probe
        and one speculative plain request, not 8 of each (8 handshakes to answer one question,
        and impolite to a real registry). No lock is held across the network: the leader only
        announces what it learns.

        The wait is bounded, because the leader's request may hang on its own repository long
        after the scheme question was answered, and each reference has its own deadline:

        * the scheme is announced as soon as it is known: https when its answer comes; http
          at once when the TLS probe failed for good (the host answered, not with TLS), while
          the leader still waits for its own plain answer (withdrawn if that fails);
        * a waiter waits at most :data:`SCHEME_WAIT` (and half its remaining deadline), then
          negotiates on its own, as every request did before;
        * a negotiation that ends without a scheme (an error) wakes the waiters: the first to
          wake leads the next one, the others wait for it in turn (no herd of probes; the
          transport's breaker makes a dead host fail them at once).
        """

        def send(scheme: str, *, retry: bool = True) -> Response:
            return self._transport.request(
                method,
                self.base_url(scheme) + path,
                headers=headers,
                max_bytes=limit,
                what=what,
                verify=False,
                follow_redirects=follow_redirects,
                retry=retry,
            )

        # Happy eyeballs for the scheme. Against a plain-HTTP registry the https probe takes a
        # connection and a round trip to fail, and the plain request used to start only then,
        # on a connection of its own: started together, the two overlap (2 round trips saved
        # on a cold run). https still wins whenever it works: the plain answer is then dropped
        # (the transport has returned or closed its connection; an error stays in its thread)
        # and is used only when https fails to connect, as before. Never with credentials:
        # they go out in clear text only once https has failed. Only with a port: without
        # one, plain http goes to port 80, another service, whose refused (and retried)
        # connections would trip the transport's breaker for the host, https included.
        plain = None
        if _has_port(self.api_host) and not any(k.lower() == "authorization" for k in headers):
            plain = _Background(lambda: send("http"))
            if self._transport.log is not None:
                self._transport.log(f"scheme of {self.api_host}: trying https and http at once")
        try:
            response = send("https", retry=False)  # refused or failed TLS: try plain http
        except ConnectionFailedError as failure:
            # As the Docker daemon does for insecure registries: fall back to plain HTTP.
            if failure.permanent:
                # The host answered, but not with TLS: requests waiting for this negotiation,
                # and those that start now, use http without waiting for this request's own
                # answer, which may hang (the scheme is remembered for good, in the cache,
                # once http has answered).
                self._settle_scheme("http")
            try:
                response = plain.result() if plain is not None else send("http")
            except BaseException:
                # http failed too: the negotiation found no scheme, so the http shared above
                # is withdrawn (the next request negotiates again, https first). Left in
                # place, it would send every later request of the run to http unconfirmed,
                # even once https works (a handshake cut short is a TLS failure "for good").
                if failure.permanent:
                    self._forget_scheme("http", False)
                raise
            if _speaks_tls_only(response, method) or _redirects_to_https(
                response, self.api_host, path
            ):
                # Nor is http the scheme when its answer says the port speaks TLS (https
                # failed by accident): not remembered, in the run or in the cache, and the
                # http shared above is withdrawn. Cached, it would send the next run's first
                # request in clear, credentials and all, to a port where https works.
                if failure.permanent:
                    self._forget_scheme("http", False)
                return response
            self._remember_scheme("http")
            return response
        self._remember_scheme("https")
        return response

    def _remember_scheme(self, scheme: str) -> None:
        with self._scheme_settled:
            self._scheme, self._scheme_from_cache = scheme, False
            self._scheme_settled.notify_all()
        if self._cache is not None:  # a file: written outside the lock
            self._cache.update_host(self.api_host, scheme=scheme)

    def _error_for(
        self,
        response: Response,
        *,
        method: str,
        what: str,
        repository: str,
        subject: str,
        sent: str | None,
    ) -> ImginspectError:
        status = response.status
        code, message = _registry_error(response)
        detail = f": {message}" if message else ""
        where = f"{self.domain}/{subject}"
        if status == 404:
            if code == "NAME_UNKNOWN":
                return NotFoundError(
                    f"repository not found: {self.domain}/{repository}{detail}",
                    missing="repository",
                )
            return NotFoundError(f"{what} not found: {where}{detail}")
        if status in (401, 403):
            anonymous = sent is None or self.auth.credential(repository) is None
            hint = (
                "the repository may not exist, or may be private and need credentials"
                if anonymous
                else "the credentials were refused or lack pull access to this repository"
            )
            verb = "authentication required" if status == 401 else "access denied"
            return AuthError(f"{verb} for {where} (HTTP {status}){detail}", hint=hint)
        if status == 429:
            return RateLimitedError(
                f"rate limited by {self.domain} (HTTP 429){detail}",
                hint=_retry_hint(response.header("retry-after")),
            )
        if status >= 500:
            return RegistryError(
                f"registry {self.domain} failed with HTTP {status} for {what} {subject}{detail}"
            )
        return RegistryError(
            f"unexpected HTTP {status} from {self.domain} for {method} {what} {subject}{detail}"
        )


class _Background:
    """``send()`` in a daemon thread, in a copy of the caller's context (the deadline of
    :func:`imginspect.transport.deadline` is a context variable). :meth:`result` waits for
    it and returns its response or raises its error; when nobody asks, the thread ends on
    its own (the request is bounded by the deadline and the timeouts) and never holds up
    the process's exit."""

    def __init__(self, send: Callable[[], Response]) -> None:
        self._send = send
        self._response: Response | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._run,),
            name="imginspect-plain-http",
            daemon=True,
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            self._response = self._send()
        except BaseException as error:  # kept for result(); never raised in this thread
            self._error = error

    def result(self) -> Response:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._response is not None
        return self._response


def _has_port(netloc: str) -> bool:
    try:
        return urlsplit(f"//{netloc}").port is not None
    except ValueError:
        return False


def _default_insecure(host: str) -> bool:
    from imginspect.settings import RegistrySettings

    return RegistrySettings.empty().is_insecure(host)


def _retry_hint(retry_after: str | None) -> str:
    wait = parse_retry_after(retry_after)
    if wait is None:
        return "the registry did not say when to retry; wait a while before trying again"
    when = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + wait))
    return f"the registry asks to retry in {wait:.0f} s (after {when}); see --max-wait"


def _registry_error(response: Response) -> tuple[str, str]:
    """The first ``errors[]`` entry of a registry error body: (code, message)."""
    try:
        body = json.loads(response.body)
    except (ValueError, RecursionError):
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return "", ""
    first = errors[0]
    code = first.get("code")
    message = first.get("message")
    return (
        code if isinstance(code, str) else "",
        _one_line(message) if isinstance(message, str) else "",
    )


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


#: What TLS servers answer (HTTP 400) to a plain-HTTP request: Go's net/http, nginx.
_TLS_ONLY_ANSWERS = (
    b"client sent an http request to an https server",
    b"the plain http request was sent to https port",
)


def _speaks_tls_only(response: Response, method: str) -> bool:
    """Whether a 400 answer says the port speaks TLS (a HEAD has no body: for a HEAD any
    400 from an insecure registry that answered plain HTTP before is taken as that)."""
    if response.status != 400:
        return False
    if method == "HEAD":
        return True
    body = response.body[:512].lower()
    return any(answer in body for answer in _TLS_ONLY_ANSWERS)


def _redirects_to_https(response: Response, host: str, path: str) -> bool:
    """Whether the answer to a plain-HTTP request for ``path`` on ``host`` sends it (or sent
    it: the redirect was followed) to the same URL over https: the registry itself speaks
    https there. (A redirect elsewhere, e.g. a blob to storage, says nothing about that.)"""
    url = response.url
    location = response.header("location")
    if response.status in (301, 302, 303, 307, 308) and location:
        try:
            url = urljoin(url, location)
        except ValueError:
            return False
    return url == f"https://{host}{path}"


#: One ``; name[=value]`` of a link: a token name, a quoted-string or token value.
_LINK_PARAM_RE = re.compile(r'\s*([^\s=;,"]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;,"]*)))?')


def _next_link(response: Response, path: str, host: str, what: str) -> str | None:
    """The query of the ``Link: <...>; rel="next"`` of ``response`` (a page of ``path`` on
    ``host``), or None: no next page.

    The link is resolved against the URL that answered (RFC 3986: a path or a query alone
    continues it; registry.k8s.io redirects every listing to its backing registry, whose
    links are that registry's). It continues the listing when it points where the page came
    from or where it was asked for; its query is then sent to ``path`` again (a redirect
    takes it on). A next page anywhere else is not followed, with the registry's credentials
    or without: a RegistryError, not a list that ends silently.
    """
    header = ", ".join(response.header_list("link"))
    if not header:
        return None
    for target, params in _parse_links(header[:8192]):
        if "next" not in params.get("rel", "").lower().split():
            continue
        try:
            there = urlsplit(urljoin(response.url, target))
            served, asked = urlsplit(response.url), urlsplit(f"//{host}{path}")
            places = {(served.netloc.lower(), served.path), (asked.netloc.lower(), asked.path)}
        except ValueError:
            raise RegistryError(f"the {what} of {host} has a malformed next link") from None
        if (there.netloc.lower(), there.path) not in places:
            raise RegistryError(
                f"the {what} of {host} continues at {target[:200]!r}, elsewhere: not followed",
                hint="the listing above is incomplete",
            )
        return there.query or None
    return None


def _parse_links(header: str) -> Iterator[tuple[str, dict[str, str]]]:
    """RFC 8288 ``Link`` values: ``<target>`` and its parameters (names in lower case, the
    first of a repeated name; quoted values unescaped), commas inside ``<...>`` and quoted
    strings included."""
    i, end = 0, len(header)
    while i < end:
        start = header.find("<", i)
        close = header.find(">", start + 1) if start >= 0 else -1
        if close < 0:
            return
        target, i = header[start + 1 : close], close + 1
        params: dict[str, str] = {}
        while True:
            while i < end and header[i] in " \t":
                i += 1
            if i >= end or header[i] != ";":
                break
            match = _LINK_PARAM_RE.match(header, i + 1)
            if match is None:
                break
            name, quoted, token = match.groups()
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else token or ""
            params.setdefault(name.lower(), value)
            i = match.end()
        yield target, params
        comma = header.find(",", i)
        if comma < 0:
            return
        i = comma + 1


def _decode_tags(raw: bytes, domain: str, repository: str) -> list[str]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and body.get("tags") is None and "tags" in body:
        return []  # CNCF: a repository without tags
    tags = body.get("tags") if isinstance(body, dict) else None
    if not isinstance(tags, list) or not all(isinstance(t, str) and is_valid_tag(t) for t in tags):
        raise RegistryError(f"{domain} sent a malformed tag list for {repository}")
    return tags


def _subject(repository: str, target: str) -> str:
    return f"{repository}@{target}" if ":" in target else f"{repository}:{target}"
