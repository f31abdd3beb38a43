"""The error contract, end to end: the real CLI in a subprocess against a misbehaving registry.

Every failure must give the documented exit code, exactly one ``error: ...`` line on stderr
(optionally followed by one ``hint: ...`` line), never a traceback, nothing on stdout, and
it must end quickly. How quickly is measured where it happens, on the server's clock (when
a request arrived, when the client hung up): never with a wall clock that includes the
interpreter's start-up, which a loaded CI machine stretches to seconds. The registry is
:class:`tests.support.badserver.BadServer` on 127.0.0.1 (plain HTTP; loopback registries are
insecure, so the CLI tries unverified https first, then falls back to http), plus a second
one on 127.0.0.2 for cross-host redirects.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from imginspect.manifest import MAX_INDEX_DEPTH
from tests.support.badserver import (
    DOCKER_MANIFEST_LIST,
    GOOD_IMAGE,
    MANIFEST_LIMIT,
    OCI_MANIFEST,
    BadServer,
    Connection,
    MiB,
    Reply,
    Request,
    Scenario,
    closed_port,
    manifest_reply,
    nested_indexes,
    redirect,
    redirect_blobs_to,
    registry_error,
    retry_after_date,
    sequence,
    serve_documents,
    sha256_digest,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
#: A run that takes longer than this is hung (subprocess timeout): a failure, not a wait.
HUNG = 120.0
#: What a loaded 2-core machine may add to a client's own timer, on the server's clock.
SLACK = 1.0
#: The transport's default read timeout (transport.Timeouts.read).
READ_TIMEOUT = 30.0
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@dataclass(frozen=True)
class Run:
    code: int
    stdout: bytes
    stderr: str
    elapsed: float


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI run: no proxy, an empty docker config, no cache, none of
    the developer's own ``IMGINSPECT_*`` settings; then ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in _PROXY_VARIABLES and not k.startswith("IMGINSPECT_")
    }
    env["DOCKER_CONFIG"] = str(REPO_ROOT / "tests" / "support" / "no-such-docker-config")
    env["IMGINSPECT_NO_CACHE"] = "1"  # each scenario starts cold: nothing cached between runs
    env.update(extra or {})
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "imginspect", *args]


def run_cli(*args: str, timeout: float = HUNG, env: Mapping[str, str] | None = None) -> Run:
    """``python -m imginspect ARGS`` in :func:`cli_env` (plus ``env``)."""
    started = time.monotonic()
    proc = subprocess.run(
        cli_command(*args),
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=cli_env(env),
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )
    return Run(
        proc.returncode,
        proc.stdout,
        proc.stderr.decode("utf-8", errors="replace"),
        time.monotonic() - started,
    )


def debug_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("debug: ")]


def assert_fails(run: Run, code: int, *fragments: str, hint: str | None = None) -> str:
    """Check the error contract; returns the ``error:`` line.

    ``debug:`` lines (``--debug``) are set aside; ``hint`` must then be in the hint line.
    """
    context = (
        f"exit {run.code} after {run.elapsed:.2f}s\nstdout={run.stdout!r}\nstderr:\n{run.stderr}"
    )
    assert "Traceback" not in run.stderr, context
    assert run.code == code, context
    assert run.stdout == b"", context
    lines = [line for line in run.stderr.splitlines() if not line.startswith("debug: ")]
    assert 1 <= len(lines) <= 2, context
    assert lines[0].startswith("error: "), context
    if len(lines) == 2:
        assert lines[1].startswith("hint: "), context
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), f"{fragment!r} not in error line\n{context}"
    if hint is not None:
        assert len(lines) == 2, f"no hint line\n{context}"
        assert hint.lower() in lines[1].lower(), f"{hint!r} not in hint line\n{context}"
    return lines[0]


def assert_succeeds(run: Run, *, debug: bool = False) -> dict[str, Any]:
    """Exit 0, a clean stderr (but for ``debug:`` lines if ``debug``), and stdout that parses
    as the ``--json`` document."""
    context = (
        f"exit {run.code} after {run.elapsed:.2f}s\nstdout={run.stdout!r}\nstderr:\n{run.stderr}"
    )
    assert run.code == 0, context
    assert "Traceback" not in run.stderr, context
    if debug:
        assert all(line.startswith("debug: ") for line in run.stderr.splitlines()), context
    else:
        assert run.stderr == "", context
    document = json.loads(run.stdout)
    assert isinstance(document, dict), context
    return document


def hung_up(request: Request) -> float:
    """When the client went away in the middle of ``request`` (server's clock)."""
    assert request.client_gone, f"the client should have hung up: {request}"
    assert request.ended_at is not None
    return request.ended_at


def closed(connection: Connection | None) -> float:
    """When ``connection`` was closed (after the client closed it, or ended)."""
    assert connection is not None and connection.closed_at is not None, connection
    return connection.closed_at


def wait_closed(server: BadServer, connection: Connection | None, timeout: float = 10.0) -> float:
    """:func:`closed`, once the server has seen the close (it polls every 100 ms)."""
    assert connection is not None
    limit = time.monotonic() + timeout
    while connection.closed_at is None and time.monotonic() < limit:
        time.sleep(0.02)
    return closed(connection)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def registry() -> Iterator[BadServer]:
    with BadServer("127.0.0.1") as server:
        yield server
    assert server.errors == [], "\n".join(server.errors)


# --------------------------------------------------------------------------- good paths


def test_good_image_by_tag(registry: BadServer) -> None:
    run = run_cli("--json", registry.ref("good"))
    document = assert_succeeds(run)
    expected = sha256_digest(GOOD_IMAGE.manifest)
    assert document["Descriptor"] == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": expected,
        "size": len(GOOD_IMAGE.manifest),
    }
    assert document["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
    # One GET of the manifest (asking for every manifest type), one of the config blob.
    manifests = registry.requests_for("good", "manifests")
    blobs = registry.requests_for("good", "blobs")
    assert [(r.method, r.ref) for r in manifests] == [("GET", "latest")]
    assert [(r.method, r.ref) for r in blobs] == [("GET", GOOD_IMAGE.config_digest)]
    accept = manifests[0].header("accept") or ""
    for media_type in (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ):
        assert media_type in accept


def test_good_image_by_digest(registry: BadServer) -> None:
    run = run_cli("--json", registry.ref_digest("good", GOOD_IMAGE.digest))
    document = assert_succeeds(run)
    descriptor = document["Descriptor"]
    assert isinstance(descriptor, dict)
    assert descriptor["digest"] == sha256_digest(GOOD_IMAGE.manifest)


def test_good_image_table(registry: BadServer) -> None:
    run = run_cli(registry.ref("good", "table"))
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    assert b"linux/amd64" in run.stdout


# --------------------------------------------------------------------------- the contract


@dataclass(frozen=True)
class Case:
    scenario: str
    code: int
    fragments: tuple[str, ...]
    #: request the manifest by this digest instead of by tag
    digest: str | None = None
    #: the requests this run must make: (kind, count), e.g. ("manifests", 1): not retried
    requests: tuple[tuple[str, int], ...] = ()
    #: a fragment of the hint line (which must then be there)
    hint: str | None = None


#: One request, never retried.
ONCE = (("manifests", 1),)

CASES: dict[str, Case] = {
    # digests
    "digest-header-mismatch": Case(
        "digest-header-mismatch", 1, ("digest mismatch", "Docker-Content-Digest")
    ),
    "digest-body-mismatch": Case(
        "digest-body-mismatch", 1, ("digest mismatch", GOOD_IMAGE.digest), GOOD_IMAGE.digest
    ),
    "config-digest-mismatch": Case(
        "config-digest-mismatch", 1, ("digest mismatch", "config blob", GOOD_IMAGE.config_digest)
    ),
    # not found, refused, bad request: never retried
    "404-manifest-unknown": Case(
        "manifest-unknown", 4, ("not found", "manifest unknown"), requests=ONCE
    ),
    "404-name-unknown": Case("name-unknown", 4, ("repository not found",), requests=ONCE),
    "401-token-refused": Case("auth-token-refused", 3, ("HTTP 401",)),
    "401-no-challenge": Case("auth-no-challenge", 3, ("HTTP 401",), requests=ONCE),
    "403": Case("forbidden", 3, ("access denied", "HTTP 403"), requests=ONCE),
    "400": Case("status-400", 1, ("unexpected HTTP 400", "invalid repository name"), requests=ONCE),
    # server errors and rate limits: 3 tries (transport.RetryPolicy.tries)
    "500": Case("status-500", 1, ("HTTP 500",), requests=(("manifests", 3),)),
    "502": Case("status-502", 1, ("HTTP 502",), requests=(("manifests", 3),)),
    "503": Case("status-503", 1, ("HTTP 503",), requests=(("manifests", 3),)),
    "429": Case(
        "rate-limited",
        6,
        ("rate limited", "HTTP 429"),
        # without Retry-After a 429 is retried once, not with the 3 tries of a 503 (README)
        requests=(("manifests", 2),),
        hint="did not say when to retry",
    ),
    # malformed documents
    "invalid-json": Case("invalid-json", 1, ("malformed manifest", "invalid JSON")),
    "empty-body": Case("empty-body", 1, ("malformed manifest", "empty body")),
    "html-200": Case("html-200", 1, ("malformed manifest", "HTML")),
    "json-array": Case("json-array", 1, ("malformed manifest", "expected a JSON object")),
    "wrong-shape": Case("wrong-shape", 1, ("malformed manifest", "size", "not a non-negative")),
    "gzip-without-encoding": Case("gzip-body", 1, ("malformed manifest", "gzip")),
    "schema1": Case("schema1", 1, ("schema1",)),
    "json-too-deep": Case("json-too-deep", 1, ("malformed manifest", "nested too deeply")),
    "not-utf8": Case("not-utf8", 1, ("malformed manifest", "not UTF-8")),
    "schema-version-3": Case("schema-version-3", 1, ("malformed manifest", "schemaVersion", "3")),
    # auth challenges a client cannot answer: one request, no token request
    "challenge-no-realm": Case(
        "challenge-no-realm", 3, ("unusable token realm",), requests=(*ONCE, ("token", 0))
    ),
    "challenge-empty-realm": Case(
        "challenge-empty-realm", 3, ("unusable token realm",), requests=(*ONCE, ("token", 0))
    ),
    "challenge-ftp-realm": Case(
        "challenge-ftp-realm",
        3,
        ("unusable token realm", "ftp://"),
        requests=(*ONCE, ("token", 0)),
        hint="auth configuration is broken",
    ),
    "challenge-unparsable-realm": Case(
        "challenge-unparsable-realm",
        3,
        ("unusable token realm", "[::1"),
        requests=(*ONCE, ("token", 0)),
    ),
    "challenge-digest-only": Case(
        "challenge-digest-only", 3, ("HTTP 401",), requests=(*ONCE, ("token", 0))
    ),
    # token endpoints that misbehave
    "token-not-json": Case(
        "token-not-json", 1, ("token server", "did not answer JSON"), requests=(("token", 1),)
    ),
    "token-no-token": Case(
        "token-no-token", 1, ("token server", "no token"), requests=(("token", 1),)
    ),
    "token-not-ascii": Case(
        "token-not-ascii", 1, ("token server", "unusable token"), requests=(*ONCE, ("token", 1))
    ),
    "token-500": Case("token-500", 1, ("token server", "HTTP 500"), requests=(*ONCE, ("token", 3))),
    "token-401": Case(
        "token-401",
        3,
        ("token server", "refused", "HTTP 401"),
        requests=(*ONCE, ("token", 1)),
        hint="may be private and need credentials",  # anonymous: no password to check
    ),
    # connections and redirects
    "truncated-body": Case("truncated-body", 5, ("failed while fetching manifest",)),
    # the first request and the 10 redirects followed; the 11th is refused
    "redirect-loop": Case(
        "redirect-loop", 1, ("too many redirects", "config blob"), requests=(("blobs", 11),)
    ),
    "redirect-ping-pong": Case(
        "redirect-ping-pong",
        1,
        ("too many redirects", "config blob"),
        requests=(("blobs", 11),),
    ),
    "redirect-chain-11": Case(
        "redirect-chain-11", 1, ("too many redirects", "more than 10"), requests=(("blobs", 11),)
    ),
    "redirect-ftp": Case(
        "redirect-ftp",
        1,
        ("refusing redirect", "config blob", "ftp:"),
        requests=(("blobs", 1),),
    ),
    # bounds
    "config-larger-than-descriptor": Case(
        "config-larger-than-descriptor",
        1,
        ("config blob", f"more than the {len(GOOD_IMAGE.config)} bytes accepted"),
    ),
}


def test_huge_integer_in_manifest(registry: BadServer) -> None:
    assert_fails(run_cli("--json", registry.ref("huge-integer")), 1, "malformed manifest")


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_error_contract(registry: BadServer, case: Case) -> None:
    reference = (
        registry.ref_digest(case.scenario, case.digest)
        if case.digest
        else registry.ref(case.scenario)
    )
    before = {kind: len(registry.requests_for(case.scenario, kind)) for kind, _ in case.requests}
    assert_fails(run_cli("--json", reference), case.code, *case.fragments, hint=case.hint)
    for kind, count in case.requests:
        made = len(registry.requests_for(case.scenario, kind)) - before[kind]
        assert made == count, f"{made} {kind} requests, expected {count}"


def test_token_granted_but_refused(registry: BadServer) -> None:
    """The full Bearer dance happens, and the registry's second 401 is final: exit 3."""
    scenario = "token-refused-flow"
    registry.add(Scenario(scenario, image=GOOD_IMAGE, auth="bearer-refused"))
    assert_fails(run_cli("--json", registry.ref(scenario)), 3, "authentication required")
    tokens = registry.issued_tokens(scenario)
    assert len(tokens) >= 1
    requests = registry.requests_for(scenario)
    assert any(r.kind == "token" for r in requests)
    presented = {r.authorization for r in requests if r.kind == "manifests"}
    assert None in presented  # the first, anonymous attempt
    assert presented & {f"Bearer {t}" for t in tokens}  # then the token the server issued


def test_manifest_too_large_by_content_length(registry: BadServer) -> None:
    """Refused from the headers: the trickled 5 MiB body is never waited for."""
    line = assert_fails(run_cli("--json", registry.ref("oversize-length")), 1, str(MANIFEST_LIMIT))
    assert str(MANIFEST_LIMIT + MiB) in line
    assert registry.wait_idle(timeout=5.0)
    (request,) = registry.requests_for("oversize-length", "manifests")
    assert hung_up(request) - request.received_at < 5.0
    assert request.body_bytes_sent < MiB, request.body_bytes_sent


def test_manifest_too_large_chunked(registry: BadServer) -> None:
    """No Content-Length: the client reads past 4 MiB, then stops (the server would go on)."""
    assert_fails(
        run_cli("--json", registry.ref("oversize-chunked")), 1, "exceeds", str(MANIFEST_LIMIT)
    )
    assert registry.wait_idle(timeout=5.0)
    (request,) = registry.requests_for("oversize-chunked", "manifests")
    assert hung_up(request) - request.received_at < 5.0
    assert MANIFEST_LIMIT < request.body_bytes_sent < 64 * MiB


def test_config_redirect_to_other_host_drops_authorization(
    registry: BadServer, peer: BadServer
) -> None:
    name = "redirect-cross-host"
    registry.add(Scenario(name, image=GOOD_IMAGE, auth="bearer", blob=redirect_blobs_to(peer.url)))
    peer.add(Scenario(name, image=GOOD_IMAGE))
    document = assert_succeeds(run_cli("--json", registry.ref(name)))
    assert document["Platforms"] == [{"architecture": "amd64", "os": "linux"}]

    tokens = {f"Bearer {t}" for t in registry.issued_tokens(name)}
    (first_blob,) = [r for r in registry.requests_for(name, "blobs") if r.status == 307]
    assert first_blob.authorization in tokens, "the registry itself should get the token"
    served = peer.requests_for(name, "blobs")
    assert [r.ref for r in served] == [GOOD_IMAGE.config_digest]
    assert all(r.authorization is None for r in peer.requests), [r.headers for r in peer.requests]


def test_manifest_redirect_to_another_host_gets_no_credentials(
    registry: BadServer, peer: BadServer
) -> None:
    """Registries may redirect manifests too (Docker's client follows them): the manifest is
    read where it is sent, but the token stays with the registry that issued it."""
    name = "manifest-redirect-cross-host"

    def manifest(request: Request) -> Reply:
        return redirect(peer.url + request.path)

    registry.add(Scenario(name, image=GOOD_IMAGE, auth="bearer", manifest=manifest))
    peer.add(Scenario(name, image=GOOD_IMAGE))
    document = assert_succeeds(run_cli("--json", registry.ref(name)))
    assert document["Descriptor"]["digest"] == sha256_digest(GOOD_IMAGE.manifest)
    assert [r.method for r in peer.requests_for(name, "manifests")] == ["GET"]
    assert all(r.authorization is None for r in peer.requests), [r.headers for r in peer.requests]
    digest = run_cli("--digest", registry.ref(name))
    assert digest.code == 0 and digest.stdout.decode().strip() == sha256_digest(GOOD_IMAGE.manifest)


@pytest.mark.parametrize("scenario", ["redirect-bad-port", "redirect-bad-bracket"])
def test_config_redirect_to_invalid_url(registry: BadServer, scenario: str) -> None:
    assert_fails(run_cli("--json", registry.ref(scenario)), 1, "redirect")


# --------------------------------------------------------------------------- no registry, bad input


def test_unreachable_host() -> None:
    port = closed_port("127.0.0.1")
    assert_fails(run_cli("--json", f"127.0.0.1:{port}/good:latest"), 5, "cannot connect")


@pytest.mark.parametrize(
    "reference",
    ["UPPER/Case", "sha256:" + "0123456789abcdef" * 4],
    ids=["uppercase", "bare-digest"],
)
def test_invalid_reference(reference: str) -> None:
    assert_fails(run_cli("--json", reference), 2, "invalid reference")


def test_unknown_option() -> None:
    assert_fails(run_cli("--no-such-option", "ubuntu"), 2, "no such option")


# --------------------------------------------------------------------------- timeouts


@pytest.mark.slow
def test_server_never_answers(registry: BadServer) -> None:
    """Without --timeout: the 30 s read timeout ends it (see the deadline tests below)."""
    assert_fails(run_cli("--json", registry.ref("hang")), 5, "timed out")
    assert registry.wait_idle(timeout=5.0)
    (request,) = _manifest_gets(registry, "hang")
    assert READ_TIMEOUT - 1 <= hung_up(request) - request.received_at < READ_TIMEOUT + SLACK


@pytest.mark.slow
def test_headers_then_stall(registry: BadServer) -> None:
    """Headers, then nothing: the read timeout (30 s by default) ends it with exit 5."""
    run = run_cli("--json", registry.ref("stall-after-headers"))
    assert_fails(run, 5, "timed out")
    assert registry.wait_idle(timeout=5.0)
    (request,) = _manifest_gets(registry, "stall-after-headers")
    assert READ_TIMEOUT - 1 <= hung_up(request) - request.received_at < READ_TIMEOUT + SLACK


# --------------------------------------------------------------------------- retries
#
# GET requests are tried 3 times on 408/429/5xx and on connection failures, with jittered
# backoff (0.25 s, 0.5 s, each times 0.5-1.5) or the registry's Retry-After when it is no
# longer than --max-wait (5 s); never on any other status.

#: Tries per request (transport.RetryPolicy.tries).
TRIES = 3
#: A refused wait (Retry-After beyond --max-wait) is not waited for: from the 429's arrival
#: to the client closing the connection, on the server's clock, less than the shortest wait
#: refused below (1 s).
MAX_WAIT_TEST_BOUND = 1.0


def _manifest_gets(server: BadServer, scenario: str) -> list[Request]:
    return [r for r in server.requests_for(scenario, "manifests") if r.method == "GET"]


def test_retry_503_twice_then_ok(registry: BadServer) -> None:
    name = "retry-503-503-200"
    registry.add(
        Scenario(
            name,
            image=GOOD_IMAGE,
            manifest=sequence(Reply(503), Reply(503), manifest_reply(GOOD_IMAGE.manifest)),
        )
    )
    document = assert_succeeds(run_cli("--json", registry.ref(name)))
    assert document["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
    assert [r.status for r in _manifest_gets(registry, name)] == [503, 503, 200]


def _retry_after_once(registry: BadServer, name: str, seconds: str = "1") -> None:
    registry.add(
        Scenario(
            name,
            image=GOOD_IMAGE,
            manifest=sequence(
                registry_error(
                    429, "TOOMANYREQUESTS", "slow down", headers=(("Retry-After", seconds),)
                ),
                manifest_reply(GOOD_IMAGE.manifest),
            ),
        )
    )


def test_retry_after_seconds_is_honoured(registry: BadServer) -> None:
    name = "retry-after-1s"
    _retry_after_once(registry, name)
    run = run_cli("--json", registry.ref(name))
    assert_succeeds(run)
    first, second = _manifest_gets(registry, name)
    assert (first.status, second.status) == (429, 200)
    waited = second.received_at - first.received_at
    assert 0.95 <= waited < 2.0, waited
    assert run.elapsed >= 1.0


def test_retry_after_http_date_is_honoured(registry: BadServer) -> None:
    """``Retry-After: <HTTP date>`` 2 s ahead (1 s resolution): a wait of 1 to 2 s."""
    name = "retry-after-date"
    registry.add(
        Scenario(
            name,
            image=GOOD_IMAGE,
            manifest=sequence(retry_after_date(2.0), manifest_reply(GOOD_IMAGE.manifest)),
        )
    )
    assert_succeeds(run_cli("--json", registry.ref(name)))
    first, second = _manifest_gets(registry, name)
    assert (first.status, second.status) == (429, 200)
    waited = second.received_at - first.received_at
    assert 0.9 <= waited < 2.5, waited


def test_retry_after_too_long_is_not_waited_for(registry: BadServer) -> None:
    """``Retry-After: 3600`` is beyond --max-wait: exit 6 at once, saying when to retry."""
    run = run_cli("--json", registry.ref("retry-after-hour"))
    assert_fails(run, 6, "rate limited", "HTTP 429", hint="retry in 3600 s")
    hint = run.stderr.splitlines()[1]
    assert re.search(r"after \d\d:\d\d:\d\d UTC", hint), hint
    assert "--max-wait" in hint
    (request,) = _manifest_gets(registry, "retry-after-hour")
    _assert_gave_up_at_once(registry, request)


def _assert_gave_up_at_once(server: BadServer, request: Request) -> None:
    """After ``request``'s answer the client waited for nothing: it hung up at once."""
    assert wait_closed(server, request.connection) - request.received_at < MAX_WAIT_TEST_BOUND


def test_max_wait_zero_refuses_any_wait(registry: BadServer) -> None:
    name = "max-wait-zero"
    _retry_after_once(registry, name)
    run = run_cli("--json", "--max-wait", "0", registry.ref(name))
    assert_fails(run, 6, "rate limited", hint="retry in 1 s")
    (request,) = _manifest_gets(registry, name)
    _assert_gave_up_at_once(registry, request)


def test_max_wait_from_environment(registry: BadServer) -> None:
    name = "max-wait-env"
    _retry_after_once(registry, name)
    run = run_cli("--json", registry.ref(name), env={"IMGINSPECT_MAX_WAIT": "0"})
    assert_fails(run, 6, "rate limited")
    (request,) = _manifest_gets(registry, name)
    _assert_gave_up_at_once(registry, request)
    # The option wins over the variable: 3 s would allow the 2 s wait, --max-wait 1 does not.
    name = "max-wait-env-2"
    _retry_after_once(registry, name, seconds="2")
    run = run_cli("--json", "--max-wait", "1", registry.ref(name), env={"IMGINSPECT_MAX_WAIT": "3"})
    assert_fails(run, 6, "rate limited")
    (request,) = _manifest_gets(registry, name)
    _assert_gave_up_at_once(registry, request)


def test_connection_refused_is_retried_then_exit_5() -> None:
    """Nothing listens: the https probe once, then plain http 3 times; exit 5."""
    port = closed_port("127.0.0.1")
    run = run_cli("--json", "--debug", f"127.0.0.1:{port}/good:latest")
    assert_fails(run, 5, "cannot connect", f"127.0.0.1:{port}")
    lines = debug_lines(run.stderr)
    https = [line for line in lines if line.startswith("debug: GET https://")]
    http = [line for line in lines if line.startswith("debug: GET http://")]
    retries = [line for line in lines if line.startswith("debug: retry ")]
    assert len(https) == 1 and "failed" in https[0], lines
    assert len(http) == TRIES and all("failed" in line for line in http), lines
    assert [line.split()[2] for line in retries] == ["1/2", "2/2"], lines


# --------------------------------------------------------------------------- deadlines
#
# --timeout is a deadline per reference: whatever the server does (answer nothing, stall
# after the headers, trickle the body), the reference ends when it passes. Measured on the
# server's clock: from the first contact of the reference (its first connection, which
# comes after the deadline started) to the moment the client hung up, at most DEADLINE +
# SLACK; and not much less than DEADLINE (what comes before that first contact is
# the reference's own set-up: well under a second). The wall clock of the whole run only
# gives a lower bound (start-up makes it longer, never shorter).

DEADLINE = 2.0


def _assert_gave_up_at_deadline(first_contact: float, gave_up: float, context: str = "") -> None:
    took = gave_up - first_contact
    assert DEADLINE - SLACK <= took < DEADLINE + SLACK, f"gave up after {took:.2f}s\n{context}"


@pytest.mark.parametrize(
    ("scenario", "fragment"),
    [
        ("hang", "gave up fetching manifest"),
        ("stall-after-headers", "gave up reading manifest"),
        ("trickle-body", "gave up reading manifest"),
    ],
)
def test_deadline_ends_a_stalled_reference(
    registry: BadServer, scenario: str, fragment: str
) -> None:
    name = f"deadline-{scenario}"
    registry.add(replace(registry[scenario], name=name))
    before = len(registry.connections)
    run = run_cli("--json", "--timeout", str(DEADLINE), registry.ref(name))
    line = assert_fails(run, 5, fragment, "--timeout deadline passed")
    assert run.elapsed >= DEADLINE - 0.1, "ended before the deadline: not what was tested"
    assert registry.wait_idle(timeout=5.0)
    (request,) = _manifest_gets(registry, name)
    first_contact = registry.connections[before].opened_at  # the https probe
    _assert_gave_up_at_deadline(first_contact, hung_up(request), run.stderr)
    if scenario == "trickle-body":
        # ~20 bytes arrived (one every 100 ms): the deadline, not a read timeout, ended it.
        assert 5 <= request.body_bytes_sent <= 40, request.body_bytes_sent
        assert re.search(r"after \d+ bytes$", line), line


def test_deadline_holds_whatever_the_server_does(registry: BadServer, tmp_path: Path) -> None:
    """Each operation's timeout is capped by the deadline, not just the first: headers sent
    one byte every 50 ms, a body that trickles then stops, a token endpoint that never
    answers, a TLS handshake that never completes. One batch (each reference has its own
    deadline, and they run in parallel): it must end by the deadline."""
    with BadServer("127.0.0.1", scenarios=[], tls_probe="ignore") as tls_staller:
        expected = {
            registry.ref("trickle-headers"): "gave up fetching manifest",
            registry.ref("trickle-then-stall"): "gave up reading manifest",
            registry.ref("token-hang"): "gave up fetching token",
            tls_staller.ref("good"): f"gave up fetching manifest from https://{tls_staller.netloc}",
        }
        batch = tmp_path / "refs.txt"
        batch.write_text("\n".join(expected) + "\n")
        run = run_cli("--json", "--timeout", str(DEADLINE), "-f", str(batch))
        # The probe never completes; the plain request sent alongside it (an insecure
        # registry's scheme is negotiated with both at once) was answered, and dropped.
        assert tls_staller.tls_probes == 1
        assert [r.path for r in tls_staller.requests] == ["/v2/good/manifests/latest"]
        (probe,) = [c for c in tls_staller.connections if c.tls_probe]
        staller_gave_up = wait_closed(tls_staller, probe)
    context = f"exit {run.code} after {run.elapsed:.2f}s\nstdout={run.stdout!r}\n{run.stderr}"
    assert "Traceback" not in run.stderr, context
    assert run.code == 5, context
    assert run.elapsed >= DEADLINE - 0.1, context
    # Each reference's first contact comes after its deadline started: the https probe for
    # the staller, the first request for the others (their probes are not told apart).
    _assert_gave_up_at_deadline(probe.opened_at, staller_gave_up, context)
    assert registry.wait_idle(timeout=5.0)
    for scenario in ("trickle-headers", "trickle-then-stall", "token-hang"):
        requests = registry.requests_for(scenario)  # the last one is the one abandoned
        took = hung_up(requests[-1]) - requests[0].received_at
        assert took < DEADLINE + SLACK, f"{scenario}: gave up after {took:.2f}s\n{context}"
    documents = [json.loads(line) for line in run.stdout.splitlines()]
    assert [d["reference"] for d in documents] == list(expected), context
    for document in documents:
        error = document["error"]
        assert error["exitCode"] == 5, context
        assert expected[document["reference"]] in error["message"], context
        assert "--timeout deadline passed" in error["message"], context
    assert registry.wait_idle(timeout=5.0)
    for scenario in ("trickle-headers", "trickle-then-stall"):
        assert all(r.client_gone for r in _manifest_gets(registry, scenario)), scenario


# --------------------------------------------------------------------------- bounded reads


@pytest.mark.parametrize("scenario", ["huge-error-length", "huge-error-chunked"])
def test_huge_error_body_is_not_read(registry: BadServer, scenario: str) -> None:
    """A 404 with a 10 MiB body (sent at ~1.6 MiB/s): still exit 4, at once, and the client
    hangs up after at most 64 KiB instead of waiting ~6 s for the rest."""
    assert_fails(run_cli("--json", registry.ref(scenario)), 4, "not found")
    assert registry.wait_idle(timeout=5.0)
    (request,) = _manifest_gets(registry, scenario)
    assert hung_up(request) - request.received_at < 3.0
    assert request.body_bytes_sent < MiB, request.body_bytes_sent


def test_endless_config_blob_is_cut_off(registry: BadServer) -> None:
    """A config blob without end (chunked): read up to the bound, then the client hangs up."""
    assert_fails(run_cli("--json", registry.ref("config-endless")), 1, "config blob", "exceeds")
    assert registry.wait_idle(timeout=5.0)
    (request,) = registry.requests_for("config-endless", "blobs")
    assert request.client_gone
    assert request.body_bytes_sent < 32 * MiB, request.body_bytes_sent


@pytest.mark.parametrize("scenario", ["token-huge", "token-huge-chunked"])
def test_huge_token_response_is_not_read(registry: BadServer, scenario: str) -> None:
    assert_fails(run_cli("--json", registry.ref(scenario)), 1, "token", "262144")
    assert registry.wait_idle(timeout=5.0)
    (request,) = registry.requests_for(scenario, "token")
    assert request.client_gone
    assert request.body_bytes_sent < 9 * MiB, request.body_bytes_sent


# --------------------------------------------------------------------------- Content-Type


@pytest.mark.parametrize("scenario", ["content-type-missing", "content-type-contradicts"])
def test_body_media_type_is_trusted_over_content_type(registry: BadServer, scenario: str) -> None:
    document = assert_succeeds(run_cli("--json", registry.ref(scenario)))
    assert document == {
        "Descriptor": {
            "mediaType": OCI_MANIFEST,
            "digest": GOOD_IMAGE.digest,
            "size": len(GOOD_IMAGE.manifest),
        },
        "Platforms": [{"architecture": "amd64", "os": "linux"}],
    }


def test_debug_says_content_type_contradicts_the_body(registry: BadServer) -> None:
    run = run_cli("--json", "--debug", registry.ref("content-type-contradicts"))
    assert_succeeds(run, debug=True)
    notes = [line for line in debug_lines(run.stderr) if "Content-Type" in line]
    assert len(notes) == 1, run.stderr
    assert DOCKER_MANIFEST_LIST in notes[0] and OCI_MANIFEST in notes[0]
    assert "trusting the document" in notes[0]


def test_debug_says_content_type_is_missing(registry: BadServer) -> None:
    run = run_cli("--json", "--debug", registry.ref("content-type-missing"))
    assert_succeeds(run, debug=True)
    notes = [line for line in debug_lines(run.stderr) if "note:" in line]
    assert any("Content-Type" in line and OCI_MANIFEST in line for line in notes), run.stderr


# --------------------------------------------------------------------------- redirects


def test_redirect_chain_of_ten_is_followed(registry: BadServer) -> None:
    assert_succeeds(run_cli("--json", registry.ref("redirect-chain-10")))
    blobs = registry.requests_for("redirect-chain-10", "blobs")
    assert [r.status for r in blobs] == [307] * 10 + [200]


@pytest.fixture(scope="module")
def neighbour() -> Iterator[BadServer]:
    """Another server on the registry's own address: same host, another port."""
    with BadServer("127.0.0.1", scenarios=[]) as server:
        yield server
    assert server.errors == [], "\n".join(server.errors)


def test_redirect_to_another_port_drops_authorization(
    registry: BadServer, neighbour: BadServer
) -> None:
    name = "redirect-other-port"
    registry.add(
        Scenario(name, image=GOOD_IMAGE, auth="bearer", blob=redirect_blobs_to(neighbour.url))
    )
    neighbour.add(Scenario(name, image=GOOD_IMAGE))
    assert_succeeds(run_cli("--json", registry.ref(name)))
    tokens = {f"Bearer {t}" for t in registry.issued_tokens(name)}
    (redirected,) = [r for r in registry.requests_for(name, "blobs") if r.status == 307]
    assert redirected.authorization in tokens
    served = neighbour.requests_for(name, "blobs")
    assert [r.status for r in served] == [200]
    assert all(r.authorization is None for r in neighbour.requests)


# --------------------------------------------------------------------------- nested indexes


def _nested(registry: BadServer, name: str, depth: int) -> None:
    registry.add(Scenario(name, image=GOOD_IMAGE, manifest=serve_documents(nested_indexes(depth))))


@pytest.mark.parametrize("option", ["--require", "--platform"])
def test_nested_indexes_up_to_the_bound(registry: BadServer, option: str) -> None:
    name = f"nested-{MAX_INDEX_DEPTH}{option.replace('--', '-')}"
    _nested(registry, name, MAX_INDEX_DEPTH)
    run = run_cli("--json", option, "linux/amd64", registry.ref(name))
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("option", "depth"),
    [("--require", MAX_INDEX_DEPTH + 1), ("--platform", MAX_INDEX_DEPTH + 1), ("--require", 1000)],
)
def test_nested_indexes_beyond_the_bound(registry: BadServer, option: str, depth: int) -> None:
    name = f"nested-{depth}{option.replace('--', '-')}"
    _nested(registry, name, depth)
    run = run_cli("--json", option, "linux/amd64", registry.ref(name))
    assert_fails(run, 1, f"nested deeper than {MAX_INDEX_DEPTH}")
    # The outermost index and the nested ones down to the bound; not one more.
    assert len(_manifest_gets(registry, name)) == MAX_INDEX_DEPTH


# --------------------------------------------------------------------------- auth challenges


@pytest.mark.parametrize("scenario", ["challenge-basic-and-bearer", "challenge-two-headers"])
def test_bearer_is_preferred_among_challenges(registry: BadServer, scenario: str) -> None:
    assert_succeeds(run_cli("--json", registry.ref(scenario)))
    kinds = [(r.kind, r.status) for r in registry.requests_for(scenario)]
    assert kinds == [("manifests", 401), ("token", 200), ("manifests", 200), ("blobs", 200)]


def test_token_realm_on_another_host(registry: BadServer, peer: BadServer) -> None:
    """The realm names another host: the token is fetched there and works here."""
    name = "realm-elsewhere"
    registry.add(
        Scenario(
            name,
            image=GOOD_IMAGE,
            auth="bearer",
            challenges=(
                f'Bearer realm="{peer.url}/token",service="elsewhere",'
                f'scope="repository:{name}:pull"',
            ),
        )
    )
    registry.accept_tokens_from(peer)
    peer.add(Scenario(name))
    assert_succeeds(run_cli("--json", registry.ref(name)))
    (token_request,) = peer.requests_for(name, "token")
    assert token_request.query["service"] == ["elsewhere"]
    assert token_request.query["scope"] == [f"repository:{name}:pull"]
    assert token_request.authorization is None  # anonymous: nothing to send
    assert registry.requests_for(name, "token") == []
    tokens = {f"Bearer {t}" for t in peer.issued_tokens(name)}
    assert registry.requests_for(name, "manifests")[-1].authorization in tokens


def test_token_lifetime_beyond_belief_is_ignored(registry: BadServer) -> None:
    """``expires_in`` of 400 digits (float() overflows): the token is used all the same."""
    assert_succeeds(run_cli("--json", registry.ref("token-absurd-lifetime")))
    kinds = [(r.kind, r.status) for r in registry.requests_for("token-absurd-lifetime")]
    assert kinds == [("manifests", 401), ("token", 200), ("manifests", 200), ("blobs", 200)]


def test_registry_refusing_every_token(registry: BadServer) -> None:
    """One anonymous try, one token, one try with it: exit 3, no loop."""
    name = "refuses-every-token"
    registry.add(Scenario(name, image=GOOD_IMAGE, auth="bearer-refused"))
    assert_fails(run_cli("--json", registry.ref(name)), 3, "authentication required", "HTTP 401")
    kinds = [(r.kind, r.status) for r in registry.requests_for(name)]
    assert kinds == [("manifests", 401), ("token", 200), ("manifests", 401)]
    (token,) = registry.issued_tokens(name)
    assert registry.requests_for(name, "manifests")[1].authorization == f"Bearer {token}"


# --------------------------------------------------------------------------- batches


def test_batch_one_hanging_reference_does_not_stop_the_others(
    registry: BadServer, tmp_path: Path
) -> None:
    """The hanging reference first: it must not hold up the others (scheme negotiation)."""
    hang = "batch-hang"
    registry.add(replace(registry["hang"], name=hang))
    refs = [registry.ref(hang)] + [registry.ref("good", f"batch-{i}") for i in range(4)]
    batch = tmp_path / "refs.txt"
    batch.write_text("# one hangs\n" + "\n".join(refs) + "\n")
    run = run_cli("--json", "--timeout", str(DEADLINE), "-f", str(batch))
    _check_batch(run, refs, failing=refs[0], code="network")
    # On the server's clock: every good reference was answered while the hanging one was
    # still waiting, and that one gave up at its deadline.
    assert registry.wait_idle(timeout=5.0)
    (hanging,) = _manifest_gets(registry, hang)
    gave_up = hung_up(hanging)
    good = [r for r in registry.requests_for("good") if r.ref and r.ref.startswith("batch-")]
    assert {r.ref for r in good} == {f"batch-{i}" for i in range(4)}
    assert all(r.ended_at is not None and r.ended_at < gave_up for r in good)
    took = gave_up - hanging.received_at
    assert took < DEADLINE + SLACK, f"gave up after {took:.2f}s\n{run.stderr}"


def _check_batch(run: Run, refs: list[str], *, failing: str, code: str) -> None:
    context = f"exit {run.code} after {run.elapsed:.2f}s\nstdout={run.stdout!r}\n{run.stderr}"
    assert "Traceback" not in run.stderr, context
    assert run.code == 5, context
    assert run.elapsed >= DEADLINE - 0.1, context
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(lines) == len(refs), context
    for ref, document in zip(refs, lines, strict=True):
        if ref == failing:
            assert document["reference"] == ref, context
            assert document["error"]["code"] == code, context
            assert document["error"]["exitCode"] == 5, context
        else:
            assert document["Descriptor"]["digest"] == GOOD_IMAGE.digest, context
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and failing in errors[0], context


# --------------------------------------------------------------------------- Ctrl-C


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_ctrl_c_while_waiting_for_the_registry(registry: BadServer, batch: bool) -> None:
    name = f"sigint-{'batch' if batch else 'single'}"
    registry.add(replace(registry["hang"], name=name))
    refs = [registry.ref(name)]
    if batch:
        refs += [registry.ref(name, "second"), registry.ref("good", "sigint")]
    proc = subprocess.Popen(
        cli_command("--json", *refs),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        cwd=REPO_ROOT,
        # As from a terminal: a suite started in the background (`cmd &`, nohup) passes SIGINT
        # on ignored, and a program started so rightly keeps ignoring Ctrl-C.
        preexec_fn=_sigint_default,
    )
    try:
        # Wait until it is blocked on the registry (imports done, handler in place) ...
        started = time.monotonic()
        while not _manifest_gets(registry, name) and time.monotonic() - started < 10:
            time.sleep(0.02)
        assert _manifest_gets(registry, name), "the CLI never reached the registry"
        time.sleep(0.5)
        assert proc.poll() is None, "the CLI ended by itself"
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr_bytes = proc.communicate(timeout=HUNG)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = stderr_bytes.decode(errors="replace")
    assert proc.returncode == 130, stderr
    assert stdout == b"", stdout
    assert "Traceback" not in stderr, stderr
    assert "error: interrupted" in stderr.splitlines(), stderr
    # On the server's clock: the stalled requests were abandoned soon after the signal.
    assert registry.wait_idle(timeout=5.0)
    for request in _manifest_gets(registry, name):
        assert hung_up(request) - signalled < 2.0, stderr


# --------------------------------------------------------------------------- --debug


def test_debug_logs_every_request_and_redacts_tokens(registry: BadServer) -> None:
    name = "debug-bearer"
    registry.add(Scenario(name, image=GOOD_IMAGE, auth="bearer"))
    run = run_cli("--json", "--debug", registry.ref(name))
    assert_succeeds(run, debug=True)
    (token,) = registry.issued_tokens(name)
    assert token not in run.stderr and token.encode() not in run.stdout
    assert "Bearer" not in run.stderr
    # One line per request: method, URL, status, timing; the https probe shows as failed.
    pattern = re.compile(
        r"^debug: (GET|HEAD|POST) (https?://\S+) -> (\d{3}|failed) \(.*\b\d+\.\d ms\)"
    )
    logged = [m for m in map(pattern.match, debug_lines(run.stderr)) if m]
    # The https probe and the first plain request start together: either may be logged first.
    probes = [m.group(3) for m in logged if m.group(2).startswith("https://")]
    assert probes == ["failed"], run.stderr
    plain = [m for m in logged if not m.group(2).startswith("https://")]
    answered = [(m.group(1), m.group(2), int(m.group(3))) for m in plain]
    received = [(r.method, r.base_url + r.target, r.status) for r in registry.requests_for(name)]
    assert answered == received, run.stderr
