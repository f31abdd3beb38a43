"""Reliability below the CLI: properties of the parsers, and the auth flow under faults.

* Hypothesis properties: the functions that read what users and registries send
  (``parse_reference``, ``parse_challenges``, ``parse_platform``, ``decode_document``,
  ``decode_config_platform``, ``parse_retry_after``, ``Authenticator.respond_to`` with any
  challenge and any token response) raise nothing but :class:`ImginspectError` subclasses,
  with a one-line message, whatever the input. ``IMGINSPECT_HYPOTHESIS_EXAMPLES`` sets the
  number of examples per property (default 2000, what CI runs; the two properties beyond
  the four parsers run a share of it); the ``slow``-marked variants run ten times more.
* :class:`~imginspect.auth.Authenticator` with a fake transport and with
  ``httpx.MockTransport`` under a real :class:`~imginspect.transport.HttpTransport`: where
  credentials go, token requests that hang, broken realms, and what the errors say.

The end-to-end fault scenarios (the real CLI against a misbehaving registry) are in
``test_faults.py``.
"""

from __future__ import annotations

import base64
import copy
import email.utils
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imginspect import http11
from imginspect import mediatypes as mt
from imginspect.auth import Authenticator, Credential
from imginspect.challenge import Challenge, parse_challenges
from imginspect.connections import Request, Target
from imginspect.errors import AuthError, ImginspectError
from imginspect.hosts import HostResolver
from imginspect.manifest import decode_config_platform, decode_document
from imginspect.platforms import parse_platform
from imginspect.reference import parse_reference
from imginspect.transport import HttpTransport, Response, parse_retry_after

#: Examples per property (CI: the default); the slow variants run LONG_EXAMPLES.
EXAMPLES = int(os.environ.get("IMGINSPECT_HYPOTHESIS_EXAMPLES", "2000"))
LONG_EXAMPLES = 10 * EXAMPLES  # 20000 by default


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,  # a loaded CI machine must not turn a slow example into a failure
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _only_imginspect_errors(call: Callable[[], object], *, one_line: bool = True) -> object:
    """Run ``call``; an :class:`ImginspectError` is fine if its message and hint are one
    line each (the CLI prints them as ``error: ...`` / ``hint: ...``); anything else is not."""
    try:
        return call()
    except ImginspectError as error:
        assert error.message.strip(), "an error needs a message"
        if one_line:
            for text in (error.message, error.hint or ""):
                assert "\n" not in text and "\r" not in text, repr(text)
        return None


# --------------------------------------------------------------------------- strategies

_REFERENCE_ALPHABET = "abcxyzABCZ0129._-/:@+ \t\n\u00e9\u0130[]%"
_HEX = "0123456789abcdef"


# Built from pieces (st.from_regex would cost several times more per example).
_WORDS = ["a", "b0", "ubuntu", "x9y", "team", "app", "library", "42"]
_COMPONENT = st.builds(
    lambda first, separator, second: first + separator + second if separator else first,
    st.sampled_from(_WORDS),
    st.sampled_from(["", ".", "_", "__", "-", "--", "___", ".."]),
    st.sampled_from(_WORDS),
)
_DOMAIN = st.sampled_from(
    [
        "",
        "docker.io/",
        "index.docker.io/",
        "localhost/",
        "localhost:5000/",
        "[::1]:5000/",
        "[::1/",
        "127.0.0.1:1/",
        "ghcr.io/",
        "Registry.Example.com:443/",
        "foo_bar.com/",
        "host:99999999/",
        "-bad-.io/",
    ]
)
_TAG = st.sampled_from(["latest", "v1.2.3", "_x", "A-b.C", "a" * 128, "a" * 129, ".x", "-x", ""])
_DIGEST = st.sampled_from(
    [
        "sha256:" + "a" * 64,
        "sha512:" + "b" * 128,
        "sha384:" + "c" * 96,
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:",
        "md5:" + "0" * 32,
        "sha256+b64:" + "a" * 64,
        ":" + "a" * 64,
    ]
)


@st.composite
def _reference_like(draw: st.DrawFn) -> str:
    """Mostly valid references (domain, path, tag, digest), some slightly wrong: the
    parser's later stages, and the success path, get exercised too."""
    text = draw(_DOMAIN) + "/".join(draw(st.lists(_COMPONENT, min_size=1, max_size=3)))
    if draw(st.booleans()):
        text += ":" + draw(_TAG)
    if draw(st.integers(0, 3)) == 0:
        text += "@" + draw(_DIGEST)
    if draw(st.integers(0, 4)) == 0:  # one character changed, inserted or dropped
        position = draw(st.integers(0, len(text)))
        text = (
            text[:position]
            + draw(st.sampled_from(["", "A", "/", ":", "@", " ", "é", "\n"]))
            + text[position + draw(st.integers(0, 1)) :]
        )
    return text


_REFERENCES = st.text() | st.text(_REFERENCE_ALPHABET, max_size=80) | _reference_like()

_CHALLENGE_ALPHABET = ' \t,="\\abcBearerBasicDigestrealmservicescope=:/.-_~+!#\u00e9'
_CHALLENGE_VALUES = st.text() | st.text(_CHALLENGE_ALPHABET, max_size=120)
_CHALLENGES = st.lists(_CHALLENGE_VALUES, max_size=4)

_PLATFORM_ALPHABET = "linuxwindowsdarwinamd64arm64v78x86_-./:()+%*, \tLINUXé"
_PLATFORMS = (
    st.text()
    | st.text(_PLATFORM_ALPHABET, max_size=40)
    | st.builds(
        lambda parts, version: "/".join(parts) + version,
        st.lists(
            st.sampled_from(["linux", "windows", "arm64", "arm", "amd64", "v7", "8", "", "*"]),
            max_size=4,
        ),
        st.sampled_from(["", ":10.0.17763", ":%zz", ":", "(10.0)", "(+gpu)"]),
    )
)

_KEYS = st.sampled_from(
    [
        "schemaVersion",
        "mediaType",
        "manifests",
        "config",
        "layers",
        "digest",
        "size",
        "platform",
        "annotations",
        "artifactType",
        "subject",
        "urls",
        "data",
        "os",
        "architecture",
        "variant",
        "os.version",
        "os.features",
        "features",
    ]
) | st.text(max_size=8)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        [
            2,
            1,
            mt.OCI_INDEX,
            mt.OCI_MANIFEST,
            mt.DOCKER_MANIFEST,
            mt.DOCKER_MANIFEST_LIST,
            mt.DOCKER_MANIFEST_SCHEMA1_SIGNED,
            mt.OCI_CONFIG,
            "sha256:" + "a" * 64,
            "sha256:" + "A" * 64,
            "sha512:" + "0" * 128,
        ]
    )
)
#: JSON values, at most two levels deep: nesting beyond that adds generation cost, not paths
#: (deep nesting has its own end-to-end scenario, ``json-too-deep``).
_SHALLOW_JSON = (
    _SCALARS
    | st.lists(_SCALARS, max_size=3)
    | st.dictionaries(_KEYS, _SCALARS, max_size=3)
    | st.sampled_from([[], {}, [{}], {"mediaType": mt.OCI_MANIFEST}])
)


def _descriptor(media_type: str, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": "sha256:" + "a" * 64, "size": 1, **extra}


_VALID_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": mt.OCI_MANIFEST,
    "config": _descriptor(mt.OCI_CONFIG),
    "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip")],
}
_VALID_INDEX = {
    "schemaVersion": 2,
    "mediaType": mt.OCI_INDEX,
    "manifests": [_descriptor(mt.OCI_MANIFEST, platform={"os": "linux", "architecture": "amd64"})],
}


@st.composite
def _mutated_document(draw: st.DrawFn) -> bytes:
    """A valid manifest or index with some values replaced, removed or added: most of the
    decoder's checks are only reached by documents that are nearly right."""
    document: Any = json.loads(json.dumps(draw(st.sampled_from([_VALID_MANIFEST, _VALID_INDEX]))))
    for _ in range(draw(st.integers(1, 3))):
        # Walk to a random container inside the document, then change one of its entries.
        node = document
        while True:
            children = [
                v
                for v in (node.values() if isinstance(node, dict) else node)
                if v and isinstance(v, (dict, list))
            ]
            if not children or draw(st.booleans()):
                break
            node = draw(st.sampled_from(children))
        if isinstance(node, dict):
            key = draw(st.sampled_from(sorted(node)) | _KEYS) if node else draw(_KEYS)
            if draw(st.integers(0, 4)) == 0:
                node.pop(key, None)
            else:
                node[key] = copy.deepcopy(draw(_SHALLOW_JSON))  # drawn values may be shared
        elif node:
            node[draw(st.integers(0, len(node) - 1))] = copy.deepcopy(draw(_SHALLOW_JSON))
    return json.dumps(document).encode()


_DOCUMENTS = (
    st.binary(max_size=200)
    | _SHALLOW_JSON.map(lambda value: json.dumps(value).encode())
    | _mutated_document()
)
_CONTENT_TYPES = (
    st.none()
    | st.sampled_from(sorted(mt.INDEX_TYPES | mt.IMAGE_MANIFEST_TYPES | mt.SCHEMA1_TYPES))
    | st.sampled_from(["application/json", "text/html; charset=utf-8", ""])
    | st.text(max_size=30)
)

_RETRY_AFTER = (
    st.none()
    | st.text(max_size=40)
    | st.integers(min_value=0, max_value=10**30).map(str)
    | st.floats(min_value=0, max_value=2.5e11).map(
        lambda seconds: email.utils.formatdate(seconds, usegmt=True)
    )
    | st.sampled_from(
        [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 99999 07:28:00 GMT",
            "Wed, 21 Oct 2015 07:28:00 +9999",
            "Wed, 21 Oct 2015 25:61:61 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "-1",
            "1.5",
            "\u0661",  # Arabic-Indic digit one: isdigit(), and float() accepts it
            "\u00b2",  # superscript two: isdigit(), but float() refuses it
        ]
    )
)


# --------------------------------------------------------------------------- properties


def check_parse_reference(text: str) -> None:
    # one_line=False: see test_reference_error_quotes_a_newline below.
    result = _only_imginspect_errors(lambda: parse_reference(text), one_line=False)
    if result is not None:
        reparsed = parse_reference(str(result))  # what it prints, it parses back to itself
        assert reparsed == result, (text, result, reparsed)


def check_parse_challenges(values: list[str]) -> None:
    # Stronger than the others: the challenge parser never raises at all.
    challenges = parse_challenges(values)
    assert all(isinstance(c, Challenge) for c in challenges)
    assert all(c.scheme == c.scheme.lower() and c.scheme for c in challenges)


def check_parse_platform(text: str) -> None:
    _only_imginspect_errors(lambda: parse_platform(text))


def check_decode_document(raw: bytes, content_type: str | None) -> None:
    _only_imginspect_errors(lambda: decode_document(raw, content_type))
    _only_imginspect_errors(lambda: decode_config_platform(raw))


def check_parse_retry_after(value: str | None) -> None:
    # Never raises: a header it cannot read means "no advice" (None), never a crash.
    wait = parse_retry_after(value, now=1_700_000_000.0)
    assert wait is None or wait >= 0, wait


def test_reference_error_quotes_a_newline() -> None:
    with pytest.raises(ImginspectError) as caught:
        parse_reference("A\n")
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("decode", [decode_document, decode_config_platform])
def test_huge_json_integer_is_a_malformed_document(decode: Callable[[bytes], object]) -> None:
    raw = b'{"schemaVersion": ' + b"1" * 5000 + b"}"
    with pytest.raises(ImginspectError):
        decode(raw)


def test_parse_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("1", now=now) == 1.0
    assert parse_retry_after(" 3600 ", now=now) == 3600.0
    assert parse_retry_after(email.utils.formatdate(now + 2, usegmt=True), now=now) == 2.0
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    for unreadable in (None, "", "soon", "-1", "1.5", "\u00b2", "\u0661"):
        assert parse_retry_after(unreadable, now=now) is None, unreadable


# --------------------------------------------------------------------------- the auth flow

REGISTRY = "registry.example.com"
SCOPE = "repository:team/app:pull"


def _challenge(*values: str) -> Response:
    # Bytes, as they come off the wire (httpx decodes them as ASCII, UTF-8 or Latin-1).
    headers = httpx.Headers([(b"WWW-Authenticate", value.encode()) for value in values])
    pairs = Response.header_pairs(headers.multi_items())
    return Response(401, pairs, b"", f"https://{REGISTRY}/v2/team/app/manifests/v1")


def _bearer(realm: str) -> Response:
    return _challenge(f'Bearer realm="{realm}",service="{REGISTRY}",scope="{SCOPE}"')


def _token_response(token: str = "issued-token", status: int = 200) -> Response:
    body = json.dumps({"token": token, "expires_in": 300}).encode()
    return Response(status, (("content-type", "application/json"),), body, "x")


class _FakeTransport:
    """Answers every request with ``answer(method, url, kwargs)``; records the calls."""

    log = None

    def __init__(self, answer: Callable[[str, str, dict[str, Any]], Response] | None = None):
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self._answer = answer or (lambda method, url, kwargs: _token_response())
        self._lock = threading.Lock()

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        with self._lock:
            self.calls.append((method, url, kwargs))
        return self._answer(method, url, kwargs)


_RULES = HostResolver()


def _authenticator(
    transport: object,
    credential: Credential | None = None,
    *,
    insecure: frozenset[str] = frozenset(),
) -> Authenticator:
    return Authenticator(
        cast(HttpTransport, transport),
        REGISTRY,
        (lambda repository: credential) if credential is not None else None,
        # the run's one rule (loopback hosts are insecure), plus what the test declares
        insecure_host=lambda host: host in insecure or _RULES.is_insecure(host),
    )


class _MockedHttpTransport(HttpTransport):
    """A real HttpTransport (headers, redirects, bounded reads, logging) whose requests go
    to an ``httpx.MockTransport`` handler: what would go on the wire, without a network."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        super().__init__()
        self._handler = handler

    def _dispatch(
        self, request: Request, target: Target, *, verify: bool, tls_host: str
    ) -> tuple[http11.Response, Callable[[], None]]:
        sent = httpx.Request(
            request.method,
            f"{target.scheme}://{target.host_header}{target.target}",
            headers=request.headers,
            content=request.body or b"",
        )
        answer = self._handler(sent)
        body = answer.read()
        response = http11.Response(
            answer.status_code, list(answer.headers.raw), iter((body,) if body else ()), None
        )
        return response, response.close


PASSWORD = "clear-text-secret"
ALICE = Credential("alice", PASSWORD, source="test")


@pytest.mark.parametrize(
    ("realm", "insecure", "sent"),
    [
        # A realm on another host, over plain HTTP: the registry's password stays home.
        ("http://auth.example.com/token", frozenset(), False),
        ("http://registry.example.com:8080/token", frozenset(), False),
        ("http://127.0.0.1.example.com/token", frozenset(), False),
        # Where it may go: TLS, loopback, or a host the user declared insecure.
        ("https://auth.example.com/token", frozenset(), True),
        ("http://127.0.0.2:5001/token", frozenset(), True),
        ("http://auth.example.com/token", frozenset({"auth.example.com"}), True),
    ],
)
def test_basic_credential_never_in_clear_text_to_a_remote_realm(
    realm: str, insecure: frozenset[str], sent: bool
) -> None:
    """What actually goes on the wire (httpx.MockTransport) for the token request."""
    wire: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        wire.append(request)
        return httpx.Response(200, json={"token": "issued-token", "expires_in": 300})

    with _MockedHttpTransport(handler) as transport:
        authenticator = _authenticator(transport, ALICE, insecure=insecure)
        header = authenticator.respond_to(_bearer(realm), "team/app", SCOPE, sent=None)
    assert header == "Bearer issued-token"
    (request,) = wire
    assert request.url.host == urlsplit(realm).hostname  # the token was fetched there
    basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    everything = str(request.url) + repr(request.headers.raw) + request.content.decode()
    if sent:
        assert request.headers.get("authorization") == basic
        assert parse_qs(request.url.query.decode())["account"] == ["alice"]
    else:
        assert "authorization" not in request.headers
        assert PASSWORD not in everything and basic.split()[1] not in everything
        assert "account" not in parse_qs(request.url.query.decode())


def test_identity_token_never_posted_to_a_plain_http_remote_realm() -> None:
    secret = "refresh-secret"
    transport = _FakeTransport()
    credential = Credential(identity_token=secret)
    _authenticator(transport, credential).respond_to(
        _bearer("http://auth.example.com/token"), "team/app", SCOPE, sent=None
    )
    ((method, url, kwargs),) = transport.calls
    assert method == "GET" and secret not in url and secret not in json.dumps(kwargs, default=str)


def test_token_hanging_for_one_repository_does_not_block_another() -> None:
    """Token fetches hold no lock across repositories: a batch's other references go on."""
    release = threading.Event()

    def answer(method: str, url: str, kwargs: dict[str, Any]) -> Response:
        if "stuck" in url:
            release.wait(10)
        return _token_response()

    authenticator = _authenticator(_FakeTransport(answer))
    stuck_scope = "repository:stuck:pull"
    stuck = threading.Thread(
        target=authenticator.respond_to,
        args=(_bearer("https://auth.example.com/token"), "stuck", stuck_scope),
        kwargs={"sent": None},
        daemon=True,
    )
    stuck.start()
    try:
        time.sleep(0.1)
        started = time.monotonic()
        header = authenticator.respond_to(
            _bearer("https://auth.example.com/token"), "team/app", SCOPE, sent=None
        )
        assert header == "Bearer issued-token"
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
        stuck.join(5)


def test_concurrent_requests_for_one_repository_share_one_token_fetch() -> None:
    def slow_token(method: str, url: str, kwargs: dict[str, Any]) -> Response:
        time.sleep(0.2)
        return _token_response()

    transport = _FakeTransport(slow_token)
    authenticator = _authenticator(transport)
    headers: list[str | None] = []
    threads = [
        threading.Thread(
            target=lambda: headers.append(
                authenticator.respond_to(
                    _bearer("https://auth.example.com/token"), "team/app", SCOPE, sent=None
                )
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert headers == ["Bearer issued-token"] * 4
    assert len(transport.calls) == 1


@pytest.mark.parametrize(
    "realm",
    ["", "ftp://auth.example.com/token", "http://[::1/token", "https:///token", "token", "//x/y"],
)
def test_unusable_realm_is_an_auth_error(realm: str) -> None:
    transport = _FakeTransport()
    with pytest.raises(AuthError, match="unusable token realm"):
        _authenticator(transport).respond_to(_bearer(realm), "team/app", SCOPE, sent=None)
    assert transport.calls == []


@pytest.mark.parametrize(
    ("credential", "realm", "hint"),
    [
        (None, "https://auth.example.com/token", "may be private and need credentials"),
        (ALICE, "https://auth.example.com/token", "check the username and password"),
        (ALICE, "http://auth.example.com/token", "credentials were not sent"),
    ],
)
def test_token_refusal_hint_says_why(credential: Credential | None, realm: str, hint: str) -> None:
    transport = _FakeTransport(lambda m, u, k: _token_response(status=401))
    with pytest.raises(AuthError) as caught:
        _authenticator(transport, credential).respond_to(
            _bearer(realm), "team/app", SCOPE, sent=None
        )
    assert caught.value.hint is not None and hint in caught.value.hint
    assert PASSWORD not in caught.value.message + caught.value.hint


def test_unknown_schemes_only_means_no_retry() -> None:
    transport = _FakeTransport()
    header = _authenticator(transport, ALICE).respond_to(
        _challenge('Digest realm="x", nonce="y"', "Negotiate abc=="), "team/app", SCOPE, sent=None
    )
    assert header is None and transport.calls == []


def test_bearer_preferred_over_basic_in_several_headers() -> None:
    transport = _FakeTransport()
    header = _authenticator(transport, ALICE).respond_to(
        _challenge(
            'Basic realm="registry"',
            f'Bearer realm="https://auth.example.com/token",service="{REGISTRY}"',
        ),
        "team/app",
        SCOPE,
        sent=None,
    )
    assert header == "Bearer issued-token"
    assert len(transport.calls) == 1


def test_a_refused_token_is_not_fetched_again_in_a_loop() -> None:
    """The registry refuses the token it asked for: respond_to offers nothing new."""
    transport = _FakeTransport()
    authenticator = _authenticator(transport)
    challenge = _bearer("https://auth.example.com/token")
    first = authenticator.respond_to(challenge, "team/app", SCOPE, sent=None)
    assert first == "Bearer issued-token"
    assert authenticator.respond_to(challenge, "team/app", SCOPE, sent=first) is None


# The auth flow as a property: any challenge headers, any token response.

_TOKEN_BODIES = (
    st.binary(max_size=100)
    | _SHALLOW_JSON.map(lambda value: json.dumps(value).encode())
    | st.builds(
        lambda token, expires: json.dumps({"token": token, "expires_in": expires}).encode(),
        st.none() | st.text(max_size=10) | st.integers(),
        _SCALARS,
    )
)


def check_respond_to(
    values: list[str], status: int, body: bytes, credential: Credential | None
) -> None:
    def answer(method: str, url: str, kwargs: dict[str, Any]) -> Response:
        return Response(status, (), body, url)

    authenticator = _authenticator(_FakeTransport(answer), credential)
    header = _only_imginspect_errors(
        lambda: authenticator.respond_to(_challenge(*values), "team/app", SCOPE, sent=None)
    )
    if header is not None:
        # What it offers must be sendable: the next request puts it in a header.
        assert isinstance(header, str)
        httpx.Headers({"Authorization": header})
        assert "\r" not in header and "\n" not in header


_CHALLENGES_WITH_REALMS = st.lists(
    _CHALLENGE_VALUES
    | st.builds(
        lambda scheme, realm, rest: f'{scheme} realm="{realm}"{rest}',
        st.sampled_from(["Bearer", "Basic", "bearer", "Digest"]),
        st.sampled_from(
            ["https://auth.example.com/token", "http://127.0.0.1:1/t", "http://[::1", ""]
        )
        | st.text(max_size=30),
        st.text(_CHALLENGE_ALPHABET, max_size=30),
    ),
    max_size=3,
)
_CREDENTIALS = st.sampled_from(
    [None, ALICE, Credential(identity_token="refresh"), Credential(registry_token="rt")]
)


# --------------------------------------------------------------------------- running the properties

PROPERTIES: dict[str, tuple[Callable[..., None], tuple[st.SearchStrategy[Any], ...]]] = {
    "parse_reference": (check_parse_reference, (_REFERENCES,)),
    "parse_challenges": (check_parse_challenges, (_CHALLENGES,)),
    "parse_platform": (check_parse_platform, (_PLATFORMS,)),
    "decode_document": (check_decode_document, (_DOCUMENTS, _CONTENT_TYPES)),
    "parse_retry_after": (check_parse_retry_after, (_RETRY_AFTER,)),
    "respond_to": (
        check_respond_to,
        (
            _CHALLENGES_WITH_REALMS,
            st.sampled_from([200, 401, 403, 404, 500]),
            _TOKEN_BODIES,
            _CREDENTIALS,
        ),
    ),
}


#: Properties beyond the four parsers run on a share of the examples (time budget): the
#: retry-after parser is tiny, and the auth flow's examples are costly to generate.
_SHARE = {"parse_retry_after": 0.25, "respond_to": 0.5}


def _run_property(name: str, examples: int) -> None:
    check, strategies = PROPERTIES[name]
    count = max(1, round(examples * _SHARE.get(name, 1.0)))
    _settings(count)(given(*strategies)(check))()


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_property(name: str) -> None:
    _run_property(name, EXAMPLES)


@pytest.mark.long
@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_property_long(name: str) -> None:
    _run_property(name, LONG_EXAMPLES)
