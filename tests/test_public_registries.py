"""The CLI end to end against loopback simulations of the big public registries.

Each simulation (tests/support/publicsim.py) answers the requests ``imginspect --json``,
``--digest``, ``--platform linux/arm64 --digest``, ``tags`` and ``--image-config`` send the
way that registry does (auth challenge and token service, media types, headers, redirects,
pagination), one server per host: 127.0.0.1 for the registry, 127.0.0.2 for a separate
token host, CDN or backing registry. Every command is checked for its exit code (README,
"Exit codes"), stdout holding exactly the result (digests of the bytes served), stderr
holding at most one ``error:`` line (plus ``hint:`` lines) and never a traceback, and where
credentials and tokens went.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.badserver import loopback_alias_available
from tests.support.cli import CliResult, run_imginspect
from tests.support.publicsim import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    Doc,
    Resp,
    Seen,
    SimRegistry,
    SimServer,
    bearer_gate,
    bearer_of,
    image,
    index,
    json_resp,
    platform_of,
    registry_error,
    repo_scope,
)

pytestmark = pytest.mark.skipif(
    not loopback_alias_available("127.0.0.2"), reason="cannot bind 127.0.0.2 on this system"
)

SECRET_USER = "simuser"
SECRET_PASSWORD = "s3cr3t-password-never-elsewhere"
BASIC = "Basic " + base64.b64encode(f"{SECRET_USER}:{SECRET_PASSWORD}".encode()).decode()
COMMANDS = ("json", "digest", "platform-digest", "tags", "image-config")


# --------------------------------------------------------------------------- checks


def assert_clean_success(result: CliResult) -> None:
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "error:" not in result.stderr


def assert_one_error(result: CliResult, code: int) -> list[str]:
    """Exit ``code``, nothing on stdout, one ``error:`` line and only ``hint:`` lines after."""
    assert result.code == code, (result.code, result.stderr)
    assert result.stdout == b""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no error message"
    assert lines[0].startswith("error: "), result.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), result.stderr
    return lines


def secrets_absent(server: SimServer, *values: str) -> None:
    """No request to ``server`` carried an Authorization header or any of ``values``."""
    for seen in server.seen:
        assert seen.authorization is None, (server.netloc, seen.path, seen.authorization)
        blob = json.dumps([seen.path, seen.query, seen.headers])
        for value in values:
            assert value not in blob, (server.netloc, seen.path)


# --------------------------------------------------------------------------- simulations


@dataclass
class Sim:
    """One simulated registry as the client sees it."""

    registry: SimRegistry | SimServer
    #: repository as the client names it (below registry.netloc)
    name: str
    top: Doc
    #: (platform, image) of each image entry, in index order
    images: list[tuple[dict[str, str], Doc]]
    tags: list[str]
    servers: dict[str, SimServer] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    #: tokens the registry now refuses as expired (Artifact Registry)
    expired: set[str] = field(default_factory=set)

    @property
    def ref(self) -> str:
        return f"{self.registry.netloc}/{self.name}:latest"

    @property
    def repository(self) -> str:
        return f"{self.registry.netloc}/{self.name}"

    def image_for(self, arch: str) -> Doc:
        return next(doc for plat, doc in self.images if plat["architecture"] == arch)


def _two_arch(*, docker: bool, attestations: bool, label: str) -> tuple[Doc, list[Any]]:
    amd = image("amd64", docker=docker, label=label)
    arm = image("arm64", variant="v8", docker=docker, label=label)
    plats = [(platform_of("amd64"), amd), (platform_of("arm64", "v8"), arm)]
    top = index(
        [(doc, {"platform": plat}) for plat, doc in plats],
        docker=docker,
        with_attestations=attestations,
    )
    return top, plats


def _started(stack: contextlib.ExitStack, server: SimServer) -> SimServer:
    server.start()
    stack.callback(server.stop)
    return server


def _rfc3339_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def docker_hub(stack: contextlib.ExitStack) -> Sim:
    """registry-1.docker.io: token service on another host (auth.docker.io), pull-limit
    headers on GET only, Docker manifest lists with BuildKit attestations, blobs redirected
    to a CDN with a signed URL."""
    reg = SimRegistry("127.0.0.1")
    auth = SimServer("127.0.0.2")
    cdn = SimServer("127.0.0.2")
    for server in (reg, auth, cdn):
        _started(stack, server)
    name = "library/x"
    top, plats = _two_arch(docker=True, attestations=True, label="hub")
    repo = reg.repo(name)
    repo.put(top, "latest", "1.0")

    def token(seen: Seen) -> Resp | None:
        if seen.path != "/token":
            return None
        if seen.query.get("service") != ["registry.docker.io"]:
            return json_resp({"details": "bad service"}, 400)
        value = auth.new_token("hub")
        return json_resp(
            {
                "token": value,
                "access_token": value,
                "expires_in": 300,
                "issued_at": _rfc3339_now(),
            }
        )

    auth.routes.append(token)

    def challenge(seen: Seen) -> str:
        scope = repo_scope(seen)
        extra = f',scope="{scope}"' if scope else ""
        return f'Bearer realm="{auth.url}/token",service="registry.docker.io"{extra}'

    reg.gate = bearer_gate(reg, challenge, lambda t: t in auth.issued)
    reg.get_headers = lambda: [
        ("RateLimit-Limit", "100;w=21600"),
        ("RateLimit-Remaining", "76;w=21600"),
        ("Docker-RateLimit-Source", "203.0.113.7"),
    ]

    def cdn_blob(seen: Seen) -> Resp | None:
        prefix = "/registry-v2/docker/registry/v2/blobs/sha256/"
        if not seen.path.startswith(prefix) or "sig" not in seen.query:
            return Resp(403, [("Content-Type", "text/plain")], b"signature missing\n")
        if seen.authorization is not None:
            # S3 and CloudFront refuse a second auth mechanism next to the signature.
            return Resp(400, [("Content-Type", "text/plain")], b"only one auth mechanism\n")
        digest = "sha256:" + seen.path[len(prefix) :].split("/")[1]
        blob = repo.blobs.get(digest)
        if blob is None:
            return Resp(404)
        return Resp(200, [("Content-Type", "application/octet-stream")], blob)

    cdn.routes.append(cdn_blob)
    reg.blob_location = lambda d: (
        f"{cdn.url}/registry-v2/docker/registry/v2/blobs/sha256/{d[7:9]}/{d[7:]}/data"
        f"?verify=1700000000-Zm9vYmFy&sig=c2lnbmF0dXJl"
    )
    return Sim(reg, name, top, plats, ["1.0", "latest"], {"auth": auth, "cdn": cdn})


def ghcr(stack: contextlib.ExitStack) -> Sim:
    """ghcr.io: the token service on the registry's own host, a token JSON with only
    ``token``, OCI indexes, Docker-Content-Digest on HEAD and GET."""
    reg = SimRegistry("127.0.0.1")
    _started(stack, reg)
    name = "owner/app"
    top, plats = _two_arch(docker=False, attestations=True, label="ghcr")
    reg.repo(name).put(top, "latest", "main", "sha-0123456")

    def token(seen: Seen) -> Resp | None:
        if seen.path != "/token":
            return None
        raw = base64.b64encode(reg.new_token("ghcr").encode()).decode()
        reg.issued.append(raw)
        return json_resp({"token": raw})

    reg.routes.insert(0, token)
    reg.gate = bearer_gate(
        reg,
        lambda s: f'Bearer realm="{reg.url}/token",service="ghcr.io",scope="{repo_scope(s)}"',
        lambda t: t in reg.issued,
    )
    return Sim(reg, name, top, plats, ["latest", "main", "sha-0123456"])


def quay(stack: contextlib.ExitStack) -> Sim:
    """quay.io: realm at /v2/auth, tags/list paginated with Link (n, last)."""
    reg = SimRegistry("127.0.0.1")
    _started(stack, reg)
    name = "coreos/etcd"
    top, plats = _two_arch(docker=True, attestations=False, label="quay")
    repo = reg.repo(name)
    repo.put(top, "latest")
    repo.extra_tag_names = [f"v3.{i}.0" for i in range(7)]
    reg.max_page = 3  # Quay caps n (at 100; 3 here)

    def token(seen: Seen) -> Resp | None:
        if seen.path != "/v2/auth":
            return None
        return json_resp({"token": reg.new_token("quay")})

    reg.routes.insert(0, token)
    reg.gate = bearer_gate(
        reg,
        lambda s: f'Bearer realm="{reg.url}/v2/auth",service="quay.io",scope="{repo_scope(s)}"',
        lambda t: t in reg.issued,
    )
    return Sim(reg, name, top, plats, repo.tag_names())


def ecr(stack: contextlib.ExitStack) -> Sim:
    """ECR: Basic challenge; credentials are ``AWS:<token>`` sent as Basic."""
    reg = SimRegistry("127.0.0.1")
    _started(stack, reg)
    name = "team/service"
    top, plats = _two_arch(docker=True, attestations=False, label="ecr")
    reg.repo(name).put(top, "latest")

    def gate(seen: Seen) -> Resp | None:
        if seen.authorization == BASIC:
            return None
        return Resp(
            401,
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                (
                    "WWW-Authenticate",
                    f'Basic realm="https://{reg.netloc}/",service="ecr.amazonaws.com"',
                ),
            ],
            b"Not Authorized\n",
        )

    reg.gate = gate
    return Sim(reg, name, top, plats, ["latest"])


def artifact_registry(stack: contextlib.ExitStack) -> Sim:
    """Google Artifact Registry / GCR: an expired token gets a 401 *without* a challenge;
    manifests come with a Content-Type that is not the document's mediaType."""
    reg = SimRegistry("127.0.0.1")
    _started(stack, reg)
    name = "proj/repo/img"
    top, plats = _two_arch(docker=False, attestations=False, label="gar")
    reg.repo(name).put(top, "latest")
    expired: set[str] = set()

    def token(seen: Seen) -> Resp | None:
        if seen.path != "/v2/token":
            return None
        value = reg.new_token("ya29")
        return json_resp({"token": value, "expires_in": 3600})

    def gate(seen: Seen) -> Resp | None:
        token_value = bearer_of(seen)
        if token_value in expired:
            return registry_error(401, "UNAUTHORIZED", "Requested entity was not found.")
        if token_value is not None and token_value in reg.issued:
            return None
        return registry_error(
            401,
            "UNAUTHORIZED",
            "authentication required",
            (
                "WWW-Authenticate",
                f'Bearer realm="{reg.url}/v2/token",service="{reg.netloc}",'
                f'scope="{repo_scope(seen)}"',
            ),
        )

    reg.routes.insert(0, token)
    reg.gate = gate
    mismatched = {OCI_INDEX: DOCKER_LIST}
    reg.content_type = lambda doc: mismatched.get(doc.media_type, DOCKER_MANIFEST)
    return Sim(reg, name, top, plats, ["latest"], expired=expired)


def registry_k8s_io(stack: contextlib.ExitStack) -> Sim:
    """registry.k8s.io: every /v2/ request 307-redirected to a backing registry on another
    host, below a path prefix; the backing registry is public (and paginates tags)."""
    front = SimServer("127.0.0.1")
    backing = SimRegistry("127.0.0.2")
    _started(stack, front)
    _started(stack, backing)
    prefix = "k8s-artifacts-prod/images"
    top, plats = _two_arch(docker=False, attestations=False, label="k8s")
    repo = backing.repo(f"{prefix}/pause")
    repo.put(top, "latest", "3.9", "3.10")
    backing.max_page = 2

    def redirect(seen: Seen) -> Resp | None:
        if not seen.path.startswith("/v2/"):
            return None
        rest = seen.path[len("/v2/") :]
        target = f"{backing.url}/v2/{prefix}/{rest}" if rest else f"{backing.url}/v2/"
        query = "&".join(f"{k}={v}" for k, vs in seen.query.items() for v in vs)
        return Resp(307, [("Location", target + (f"?{query}" if query else ""))])

    front.routes.append(redirect)
    return Sim(front, "pause", top, plats, repo.tag_names(), {"backing": backing})


def mcr(stack: contextlib.ExitStack) -> Sim:
    """mcr.microsoft.com: no auth at all, HEAD with Docker-Content-Digest, a large tag list
    in one answer (no pagination, ``n`` ignored)."""
    reg = SimRegistry("127.0.0.1")
    _started(stack, reg)
    name = "dotnet/runtime"
    top, plats = _two_arch(docker=True, attestations=False, label="mcr")
    repo = reg.repo(name)
    repo.put(top, "latest")
    repo.extra_tag_names = [f"8.0.{i}-bookworm-slim-{arch}" for i in range(600) for arch in "ab"]
    reg.honour_n = False
    return Sim(reg, name, top, plats, repo.tag_names())


def rate_limited(stack: contextlib.ExitStack) -> Sim:
    """A registry answering the first GET with 429 and Retry-After: 1, then 200."""
    reg = SimRegistry("127.0.0.1")
    _started(stack, reg)
    name = "busy/app"
    top, plats = _two_arch(docker=False, attestations=False, label="busy")
    reg.repo(name).put(top, "latest")
    refused: list[str] = []

    def gate(seen: Seen) -> Resp | None:
        if seen.method == "GET" and not refused:
            refused.append(seen.path)
            return registry_error(429, "TOOMANYREQUESTS", "slow down", ("Retry-After", "1"))
        return None

    reg.gate = gate
    return Sim(reg, name, top, plats, ["latest"])


SIMULATIONS: dict[str, Callable[[contextlib.ExitStack], Sim]] = {
    "docker-hub": docker_hub,
    "ghcr": ghcr,
    "quay": quay,
    "artifact-registry": artifact_registry,
    "registry-k8s-io": registry_k8s_io,
    "mcr": mcr,
    "rate-limited": rate_limited,
}


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment with no stored credentials and no proxies."""
    for var in (
        "DOCKER_AUTH_CONFIG",
        "REGISTRY_AUTH_FILE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "IMGINSPECT_MAX_WAIT",
        "IMGINSPECT_TIMEOUT",
    ):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    (home / "docker").mkdir(parents=True)
    return {
        "HOME": str(home),
        "DOCKER_CONFIG": str(home / "docker"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_RUNTIME_DIR": str(home / "run"),
    }


def with_credentials(env: dict[str, str], netloc: str) -> dict[str, str]:
    """``env`` plus a docker config.json holding SECRET_USER's credentials for ``netloc``."""
    config = Path(env["DOCKER_CONFIG"]) / "config.json"
    auth = base64.b64encode(f"{SECRET_USER}:{SECRET_PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {netloc: {"auth": auth}}}))
    return env


@pytest.fixture
def servers() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


def command_args(command: str, sim: Sim) -> list[str]:
    return {
        "json": ["--json", sim.ref],
        "digest": ["--digest", sim.ref],
        "platform-digest": ["--platform", "linux/arm64", "--digest", sim.ref],
        "tags": ["tags", sim.repository],
        "image-config": ["--image-config", "--format", "extended-json-v2", sim.ref],
    }[command]


def check_output(command: str, sim: Sim, result: CliResult) -> None:
    """stdout holds exactly the result, digests those of the bytes served."""
    assert_clean_success(result)
    if command == "json":
        doc = json.loads(result.stdout)
        assert result.stdout.endswith(b"}\n") and result.stdout.count(b"\n") == 1
        assert doc["Descriptor"]["digest"] == sim.top.digest
        assert doc["Descriptor"]["size"] == len(sim.top.raw)
        assert doc["Descriptor"]["mediaType"] == sim.top.media_type
        wanted = json.loads(sim.top.raw)["manifests"]
        assert [(p["os"], p["architecture"]) for p in doc["Platforms"]] == [
            (m["platform"]["os"], m["platform"]["architecture"]) for m in wanted
        ]
    elif command == "digest":
        assert result.text == sim.top.digest + "\n"
    elif command == "platform-digest":
        assert result.text == sim.image_for("arm64").digest + "\n"
    elif command == "tags":
        assert result.text.splitlines() == sim.tags
    else:
        doc = json.loads(result.stdout)
        assert doc["descriptor"]["digest"] == sim.top.digest
        images = {i["digest"]: i for i in doc["images"]}
        assert set(images) == {d.digest for _p, d in sim.images}
        for plat, img in sim.images:
            got = images[img.digest]
            manifest = json.loads(img.raw)
            assert got["config"]["digest"] == manifest["config"]["digest"]
            assert got["platform"]["architecture"] == plat["architecture"]
            assert [layer["digest"] for layer in got["layers"]] == [
                layer["digest"] for layer in manifest["layers"]
            ]
            assert got["labels"]["org.example.sim"]


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("registry", sorted(SIMULATIONS))
def test_public_registry_commands(
    registry: str, command: str, servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """Every command against every simulation: exit 0 and exactly the result on stdout."""
    sim = SIMULATIONS[registry](servers)
    result = run_imginspect(*command_args(command, sim), env={**isolated, **sim.env})
    check_output(command, sim, result)


# --------------------------------------------------------------------------- per registry


@pytest.mark.parametrize("command", COMMANDS)
def test_artifact_registry_expired_cached_token_is_replaced(
    command: str, servers: contextlib.ExitStack, isolated: dict[str, str], tmp_path: Path
) -> None:
    """A token cached by an earlier run has expired: Artifact Registry answers 401 without a
    challenge; imginspect drops it, gets a new one from the known realm and succeeds."""
    sim = artifact_registry(servers)
    env = {**isolated, "IMGINSPECT_CACHE_DIR": str(tmp_path / "cache")}
    check_output(command, sim, run_imginspect(*command_args(command, sim), env=env))
    first = list(sim.registry.issued)
    assert first
    sim.expired.update(first)
    mark = len(sim.registry.seen)
    result = run_imginspect(*command_args(command, sim), env=env)
    check_output(command, sim, result)
    later = sim.registry.seen[mark:]
    refused = [s for s in later if s.status == 401]
    # the cached token was tried (and refused without a challenge), then a new one fetched
    assert refused and all(bearer_of(s) in first for s in refused)
    assert [s for s in later if s.path == "/v2/token"]
    assert later[-1].status == 200
    assert bearer_of(later[-1]) not in first


def _manifest_requests(server: SimServer, method: str) -> list[Seen]:
    return [s for s in server.requests(method, "/manifests/")]


@pytest.mark.parametrize("command", ["json", "image-config"])
def test_docker_hub_anonymous_token_flow_and_cdn(
    command: str, servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """The token comes from the auth host for service registry.docker.io and the repository's
    pull scope, goes only to the registry; blobs are fetched from the CDN with the signed
    query string as given and no Authorization."""
    sim = docker_hub(servers)
    result = run_imginspect(*command_args(command, sim), env=isolated)
    check_output(command, sim, result)
    auth, cdn = sim.servers["auth"], sim.servers["cdn"]
    token_requests = auth.requests("GET", "/token")
    assert token_requests
    for seen in token_requests:
        assert seen.query["service"] == ["registry.docker.io"]
        assert seen.query["scope"] == ["repository:library/x:pull"]
        assert seen.authorization is None
    for seen in sim.registry.seen:
        assert seen.authorization is None or bearer_of(seen) in auth.issued
    if command == "image-config":
        assert cdn.seen and all(s.status == 200 for s in cdn.seen)
        assert all(s.query.get("sig") == ["c2lnbmF0dXJl"] for s in cdn.seen)
    secrets_absent(cdn, *auth.issued)


def test_docker_hub_credentials_go_to_the_token_host_only(
    servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """Stored credentials for the registry go (as Basic) to the token realm only: never to
    the registry itself, never to the CDN, never to stdout or stderr."""
    sim = docker_hub(servers)
    env = with_credentials(isolated, sim.registry.netloc)
    result = run_imginspect(*command_args("image-config", sim), "--debug", env=env)
    check_output("image-config", sim, result)
    auth, cdn = sim.servers["auth"], sim.servers["cdn"]
    assert any(s.authorization == BASIC for s in auth.requests("GET", "/token"))
    for seen in sim.registry.seen:
        assert seen.authorization is None or seen.authorization.startswith("Bearer ")
    secrets_absent(cdn, SECRET_PASSWORD, BASIC.split()[1], *auth.issued)
    encoded = BASIC.split()[1]
    for text in (result.text, result.stderr):
        assert SECRET_PASSWORD not in text and encoded not in text
        assert not any(token in text for token in auth.issued)


def test_docker_hub_digest_is_one_head_and_quota_is_reported(
    servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """--digest spends no pull (HEAD only, which carries no RateLimit headers); a GET's
    RateLimit headers are reported in extended JSON."""
    sim = docker_hub(servers)
    check_output("digest", sim, run_imginspect("--digest", sim.ref, env=isolated))
    assert not _manifest_requests(sim.registry, "GET")
    assert [s.status for s in _manifest_requests(sim.registry, "HEAD")][-1] == 200
    result = run_imginspect("--format", "extended-json", sim.ref, env=isolated)
    assert_clean_success(result)
    doc = json.loads(result.stdout)
    assert doc["descriptor"]["digest"] == sim.top.digest
    assert doc["rateLimit"] == {"limit": 100, "remaining": 76, "window": 21600}
    kinds = [c["kind"] for c in doc["children"]]
    assert kinds == ["image", "image", "attestation", "attestation"]
    assert [c["subject"] for c in doc["children"][2:]] == [d.digest for _p, d in sim.images]


@pytest.mark.parametrize("registry", ["ghcr", "mcr"])
def test_digest_is_one_head_request(
    registry: str, servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """GHCR and MCR send Docker-Content-Digest on HEAD: --digest needs nothing else."""
    sim = SIMULATIONS[registry](servers)
    check_output("digest", sim, run_imginspect("--digest", sim.ref, env=isolated))
    assert not _manifest_requests(sim.registry, "GET")
    assert not sim.registry.requests("GET", "/blobs/")


@pytest.mark.parametrize("command", COMMANDS)
def test_ecr_anonymous_is_an_auth_error_with_a_hint(
    command: str, servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """ECR's Basic challenge to an anonymous client: exit 3, one error line and a hint."""
    sim = ecr(servers)
    result = run_imginspect(*command_args(command, sim), env=isolated)
    lines = assert_one_error(result, 3)
    assert any(line.startswith("hint: ") for line in lines), result.stderr
    assert all(s.authorization is None for s in sim.registry.seen)


@pytest.mark.parametrize("command", COMMANDS)
def test_ecr_with_credentials_sends_basic(
    command: str, servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """With stored credentials ECR's Basic challenge is answered with them, and it works."""
    sim = ecr(servers)
    env = with_credentials(isolated, sim.registry.netloc)
    result = run_imginspect(*command_args(command, sim), env=env)
    check_output(command, sim, result)
    assert any(s.authorization == BASIC and s.status == 200 for s in sim.registry.seen)
    assert SECRET_PASSWORD not in result.stderr + result.text


def test_quay_tags_follow_link_pages_with_the_token(
    servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """Quay's tag listing is paginated with Link (n, last); every page carries the token."""
    sim = quay(servers)
    result = run_imginspect("tags", sim.repository, env=isolated)
    check_output("tags", sim, result)
    pages = [s for s in sim.registry.requests("GET", "/tags/list") if s.status == 200]
    assert len(pages) == 3
    assert all(bearer_of(s) in sim.registry.issued for s in pages)
    assert [s.query.get("last") for s in pages[1:]] == [[sim.tags[2]], [sim.tags[5]]]
    assert all(s.query.get("n") for s in pages)
    assert all(s.path == "/v2/auth" for s in sim.registry.seen if s.path.startswith("/v2/auth"))


@pytest.mark.parametrize("command", COMMANDS)
def test_registry_k8s_io_credentials_stay_at_the_front(
    command: str, servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """Credentials stored for registry.k8s.io never follow its redirects to the backing
    registry on another host; the backing registry's pages are followed where they are."""
    sim = registry_k8s_io(servers)
    env = with_credentials(isolated, sim.registry.netloc)
    result = run_imginspect(*command_args(command, sim), env=env)
    check_output(command, sim, result)
    backing = sim.servers["backing"]
    assert backing.seen and all(s.status == 200 for s in backing.seen)
    if command == "tags":
        assert len(backing.requests("GET", "/tags/list")) == 2
    secrets_absent(backing, SECRET_PASSWORD, BASIC.split()[1])


def test_mcr_large_tag_list_in_one_answer(
    servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    sim = mcr(servers)
    result = run_imginspect("tags", sim.repository, env=isolated)
    check_output("tags", sim, result)
    assert len(sim.tags) == 1201
    assert len(sim.registry.requests("GET", "/tags/list")) == 1


@pytest.mark.parametrize("command", ["json", "image-config", "tags"])
def test_429_with_retry_after_is_waited_for(
    command: str, servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """A 429 with Retry-After: 1 on the first GET is waited out (on the server's clock) and
    the GET sent again."""
    sim = rate_limited(servers)
    result = run_imginspect(*command_args(command, sim), env=isolated)
    check_output(command, sim, result)
    gets = sim.registry.requests("GET")
    assert gets[0].status == 429
    again = next(s for s in gets[1:] if s.path == gets[0].path)
    assert again.status == 200
    assert again.at - gets[0].at >= 0.9


def test_429_asking_longer_than_max_wait_is_exit_6(
    servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    sim = rate_limited(servers)

    def gate(seen: Seen) -> Resp | None:
        return registry_error(429, "TOOMANYREQUESTS", "slow down", ("Retry-After", "3600"))

    assert isinstance(sim.registry, SimRegistry)
    sim.registry.gate = gate
    result = run_imginspect("--json", "--max-wait", "1", sim.ref, env=isolated)
    assert_one_error(result, 6)


def test_docker_hub_pull_limit_reached_is_exit_6_without_retrying_the_get(
    servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """Docker Hub's 429 once the pull limit is spent (RateLimit headers, no Retry-After):
    exit 6 with one error line, and the GET (a counted pull) is not sent again."""
    sim = docker_hub(servers)
    assert isinstance(sim.registry, SimRegistry)
    hub_gate = sim.registry.gate
    assert hub_gate is not None

    def gate(seen: Seen) -> Resp | None:
        refused = hub_gate(seen)
        if refused is not None:
            return refused
        if seen.method == "GET" and "/manifests/" in seen.path:
            return registry_error(
                429,
                "TOOMANYREQUESTS",
                "You have reached your unauthenticated pull rate limit.",
                ("RateLimit-Limit", "100;w=21600"),
                ("RateLimit-Remaining", "0;w=21600"),
            )
        return None

    sim.registry.gate = gate
    result = run_imginspect("--json", sim.ref, env=isolated)
    assert_one_error(result, 6)
    limited = [s for s in _manifest_requests(sim.registry, "GET") if s.status == 429]
    assert len(limited) == 1


def test_docker_hub_missing_repository_is_an_auth_error(
    servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    """Docker Hub grants an anonymous token with no access for a repository that does not
    exist (or is private) and answers 401 insufficient_scope: exit 3, one error line, a
    hint, no second token round trip without end."""
    sim = docker_hub(servers)
    assert isinstance(sim.registry, SimRegistry)
    auth = sim.servers["auth"]
    hub_gate = sim.registry.gate
    assert hub_gate is not None

    def gate(seen: Seen) -> Resp | None:
        if "/library/nope/" not in seen.path:
            return hub_gate(seen)
        return registry_error(
            401,
            "UNAUTHORIZED",
            "authentication required",
            (
                "WWW-Authenticate",
                f'Bearer realm="{auth.url}/token",service="registry.docker.io",'
                f'scope="repository:library/nope:pull",error="insufficient_scope"',
            ),
        )

    sim.registry.gate = gate
    for args in (["--json"], ["--digest"], ["tags"]):
        ref = f"{sim.registry.netloc}/library/nope" + ("" if args == ["tags"] else ":latest")
        lines = assert_one_error(run_imginspect(*args, ref, env=isolated), 3)
        assert any(line.startswith("hint: ") for line in lines)
    assert len(auth.requests("GET", "/token")) <= 6


def test_429_on_head_for_digest_is_waited_for(
    servers: contextlib.ExitStack, isolated: dict[str, str]
) -> None:
    sim = rate_limited(servers)
    assert isinstance(sim.registry, SimRegistry)
    refused: list[Seen] = []

    def gate(seen: Seen) -> Resp | None:
        if seen.method == "HEAD" and not refused:
            refused.append(seen)
            return Resp(429, [("Retry-After", "1")])
        return None

    sim.registry.gate = gate
    result = run_imginspect("--digest", sim.ref, env=isolated)
    check_output("digest", sim, result)
    heads = sim.registry.requests("HEAD")
    assert [s.status for s in heads][:2] == [429, 200]
    assert heads[1].at - heads[0].at >= 0.9


@pytest.mark.parametrize("registry", ["docker-hub", "ghcr", "quay"])
def test_warm_run_is_not_refused_first(
    registry: str, servers: contextlib.ExitStack, isolated: dict[str, str], tmp_path: Path
) -> None:
    """With the challenge and the token in the cache (GHCR's token has no expires_in: the
    spec's 60 s apply), a second --digest is one HEAD, carrying the token, not refused."""
    sim = SIMULATIONS[registry](servers)
    env = {**isolated, "IMGINSPECT_CACHE_DIR": str(tmp_path / "cache")}
    check_output("digest", sim, run_imginspect("--digest", sim.ref, env=env))
    mark = len(sim.registry.seen)
    check_output("digest", sim, run_imginspect("--digest", sim.ref, env=env))
    later = [s for s in sim.registry.seen[mark:] if "/manifests/" in s.path]
    assert [(s.method, s.status) for s in later] == [("HEAD", 200)]
    assert bearer_of(later[0]) is not None
