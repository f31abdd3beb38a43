"""Credentials against real registries, end to end.

Library level (``Inspector(credentials=resolver.lookup)``): the htpasswd registry (Basic over
TLS) and the token registry (private repositories need a user) for every credential form --
config.json ``auth``, ``username``/``password``, ``identitytoken`` (OAuth2 refresh token,
POSTed to the realm), ``registrytoken`` (sent as is), credential helpers (real processes),
DOCKER_AUTH_CONFIG, podman auth.json, an explicit user -- and without any, an AuthError.
Security: credentials go only to their registry and its token realm, never to a redirect
target on another host, never in clear text to a remote host, never into logs or errors.

CLI level: the credential and registry options (``--config``, ``--authfile``,
``--username``/``--password-stdin``, ``--anonymous``, ``--certs-dir``, ``--daemon-config``)
and ``imginspect auth REFERENCE``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trustme

from imginspect.auth import Authenticator, Credential
from imginspect.credentials import CredentialResolver
from imginspect.errors import AuthError, ExitCode
from imginspect.hosts import HostResolver
from imginspect.inspector import Inspector
from imginspect.jsonenc import encode_inspect
from imginspect.reference import parse_reference
from imginspect.registry import RegistryClient
from imginspect.settings import RegistrySettings
from imginspect.transport import Response
from tests.expected import expected_json
from tests.support.corpus import PushedImage, build_corpus, push_corpus
from tests.support.credhelpers import (
    HELPER_DIR_VARIABLE,
    helper_calls,
    helper_path,
    install_store_helper,
    store_credentials,
)
from tests.support.registry import Registry
from tests.support.tokenserver import TokenServer

REPO_ROOT = Path(__file__).resolve().parent.parent
PRIVATE_PREFIX = "private/creds"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def private_token(registry_token: Registry) -> dict[str, PushedImage]:
    """Images under ``private/``: the token server refuses them to anonymous clients."""
    return push_corpus(registry_token, prefix=PRIVATE_PREFIX, keys=["oci-index", "oci-single"])


class User:
    """An isolated user's HOME, XDG directories, PATH (fake helpers first) and files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.bin = root / "bin"
        self.store = root / "helper-store"
        for d in (self.home, self.bin, self.store, root / "run", root / "xdg"):
            d.mkdir(parents=True, exist_ok=True)
        self.environ: dict[str, str] = {
            "HOME": str(self.home),
            "PATH": helper_path(self.bin),
            "XDG_RUNTIME_DIR": str(root / "run"),
            "XDG_CONFIG_HOME": str(root / "xdg"),
            HELPER_DIR_VARIABLE: str(self.store),
        }
        self.warnings: list[str] = []

    def write(self, relative: str, document: Any) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        return path

    def docker_config(self, document: Any) -> Path:
        return self.write("home/.docker/config.json", document)

    def helper(self, name: str, entries: dict[str, tuple[str, str]]) -> None:
        install_store_helper(self.bin, name)
        store_credentials(self.store, name, entries)

    def resolver(self, **kwargs: Any) -> CredentialResolver:
        kwargs.setdefault("environ", self.environ)
        kwargs.setdefault("warn", self.warnings.append)
        return CredentialResolver(**kwargs)

    def cli_env(self) -> dict[str, str]:
        """The environment for the CLI: this user's, nothing inherited about auth or proxies."""
        drop = {"DOCKER_CONFIG", "DOCKER_AUTH_CONFIG", "REGISTRY_AUTH_FILE"}
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in drop and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
        }
        env.update(self.environ)
        return env


@pytest.fixture
def user(tmp_path: Path) -> User:
    return User(tmp_path)


def _inspect(resolver: CredentialResolver, ref: str, **kwargs: Any) -> bytes:
    with Inspector(HostResolver(credentials=resolver.lookup), **kwargs) as inspector:
        return encode_inspect(inspector.inspect(parse_reference(ref)))


def _secrets(registry: Registry) -> list[str]:
    assert registry.username and registry.password
    return [registry.password, b64(f"{registry.username}:{registry.password}")]


# ---------------------------------------------------------------------- htpasswd Basic over TLS

BASIC_FORMS = [
    "auth",
    "username-password",
    "https-url-key",
    "docker-auth-config",
    "creds-store",
    "cred-helpers",
    "podman-runtime",
    "podman-namespaced",
    "authfile",
    "explicit",
]


def _configure(user: User, form: str, registry: Registry, repository: str) -> CredentialResolver:
    """A resolver that finds the registry's user through ``form``."""
    host, name, password = registry.host, registry.username, registry.password
    assert name and password
    entry = {"auth": b64(f"{name}:{password}")}
    if form == "auth":
        user.docker_config({"auths": {host: entry}})
    elif form == "username-password":
        user.docker_config({"auths": {host: {"username": name, "password": password}}})
    elif form == "https-url-key":
        user.docker_config({"auths": {f"https://{host}/v1/": entry}})
    elif form == "docker-auth-config":
        user.environ["DOCKER_AUTH_CONFIG"] = json.dumps({"auths": {host: entry}})
    elif form == "creds-store":
        user.helper("imginspect-store", {host: (name, password)})
        user.docker_config({"credsStore": "imginspect-store"})
    elif form == "cred-helpers":
        user.helper("imginspect-store", {host: (name, password)})
        user.docker_config({"credHelpers": {host: "imginspect-store"}})
    elif form == "podman-runtime":
        user.write("run/containers/auth.json", {"auths": {host: entry}})
    elif form == "podman-namespaced":
        namespace = repository.rpartition("/")[0]
        user.write("xdg/containers/auth.json", {"auths": {f"{host}/{namespace}": entry}})
    elif form == "authfile":
        path = user.write("elsewhere/auth.json", {"auths": {f"{host}/{repository}": entry}})
        return user.resolver(authfile=path)
    elif form == "explicit":
        return user.resolver(username=name, password=password, explicit_domains=[host])
    else:  # pragma: no cover
        raise AssertionError(form)
    return user.resolver()


@pytest.mark.parametrize("form", BASIC_FORMS)
def test_basic_registry_with_each_credential_form(
    user: User, registry_basic: Registry, corpus_basic: dict[str, PushedImage], form: str
) -> None:
    image = corpus_basic["oci-single"]
    resolver = _configure(user, form, registry_basic, image.repo)
    assert _inspect(resolver, registry_basic.ref(image.repo, image.tag)) == expected_json(image)
    assert user.warnings == []
    explanation = resolver.explain(registry_basic.host, image.repo)
    assert explanation.flow == "basic" and explanation.username == registry_basic.username
    text = explanation.describe()
    for secret in _secrets(registry_basic):
        assert secret not in text


def test_basic_registry_without_credentials_is_an_auth_error(
    user: User, registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    image = corpus_basic["oci-single"]
    user.docker_config({"auths": {"other.example.com": {"auth": b64("a:b")}}})
    with pytest.raises(AuthError) as caught:
        _inspect(user.resolver(), registry_basic.ref(image.repo, image.tag))
    assert caught.value.exit_code == ExitCode.AUTH
    assert caught.value.message.startswith("authentication required")


def test_basic_registry_wrong_password_never_echoed(
    user: User, registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    image = corpus_basic["oci-single"]
    wrong = "wrong-password-Zx9"
    user.docker_config({"auths": {registry_basic.host: {"auth": b64(f"someone:{wrong}")}}})
    with pytest.raises(AuthError) as caught:
        _inspect(user.resolver(), registry_basic.ref(image.repo, image.tag))
    assert "credentials were refused" in (caught.value.hint or "")
    for text in (caught.value.message, caught.value.hint or "", repr(caught.value)):
        assert wrong not in text and b64(f"someone:{wrong}") not in text


# ---------------------------------------------------------------------- token auth


def _refresh_token(server: TokenServer, registry: Registry) -> str:
    """An OAuth2 refresh token, as ``docker login`` would store (identitytoken)."""
    assert registry.username and registry.password
    response = httpx.post(
        server.realm,
        data={
            "grant_type": "password",
            "username": registry.username,
            "password": registry.password,
            "service": server.service,
            "client_id": "test-login",
            "scope": "",
        },
    )
    response.raise_for_status()
    token: str = response.json()["refresh_token"]
    return token


def test_token_registry_basic_credentials_get_flow(
    user: User, registry_token: Registry, token_server: TokenServer, private_token: Any
) -> None:
    image = private_token["oci-index"]
    _configure(user, "auth", registry_token, image.repo)
    mark = token_server.mark()
    assert _inspect(user.resolver(), registry_token.ref(image.repo, image.tag)) == expected_json(
        image
    )
    requests = token_server.requests_since(mark)
    assert [r.method for r in requests] == ["GET"]
    assert (requests[0].authorization or "").startswith("Basic ")
    assert requests[0].query["account"] == [registry_token.username]
    assert requests[0].query["scope"] == [f"repository:{image.repo}:pull"]


@pytest.mark.parametrize("via", ["config", "helper"])
def test_token_registry_identity_token_post_flow(
    user: User,
    registry_token: Registry,
    token_server: TokenServer,
    private_token: Any,
    via: str,
) -> None:
    image = private_token["oci-single"]
    refresh = _refresh_token(token_server, registry_token)
    host = registry_token.host
    if via == "config":
        entry = {"auth": b64(f"{registry_token.username}:"), "identitytoken": refresh}
        user.docker_config({"auths": {host: entry}})
    else:
        user.helper("imginspect-store", {host: ("<token>", refresh)})
        user.docker_config({"credHelpers": {host: "imginspect-store"}})
    resolver = user.resolver()
    mark = token_server.mark()
    logged: list[str] = []
    output = _inspect(resolver, registry_token.ref(image.repo, image.tag), log=logged.append)
    assert output == expected_json(image)
    requests = token_server.requests_since(mark)
    assert [r.method for r in requests] == ["POST"]
    form = requests[0].form
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == [refresh]
    assert form["client_id"] == ["imginspect"]
    assert form["scope"] == [f"repository:{image.repo}:pull"]
    assert requests[0].authorization is None  # no Basic: the refresh token is the secret
    assert resolver.explain(host, image.repo).flow == "identity token"
    assert refresh not in "\n".join(logged)


def test_token_registry_registry_token_sent_as_is(
    user: User, registry_token: Registry, token_server: TokenServer, private_token: Any
) -> None:
    image = private_token["oci-single"]
    token = token_server.issue_token(
        registry_token.username or "",
        [{"type": "repository", "name": image.repo, "actions": ["pull"]}],
    )
    user.docker_config({"auths": {registry_token.host: {"registrytoken": token}}})
    mark, registry_mark = token_server.mark(), registry_token.mark()
    logged: list[str] = []
    output = _inspect(user.resolver(), registry_token.ref(image.repo, image.tag), log=logged.append)
    assert output == expected_json(image)
    assert token_server.requests_since(mark) == []  # never asked the token server
    statuses = [e.status for e in registry_token.requests_since(registry_mark)]
    assert 401 not in statuses  # accepted at once
    assert token not in "\n".join(logged)


def test_token_registry_private_without_credentials_is_an_auth_error(
    user: User, registry_token: Registry, private_token: Any
) -> None:
    image = private_token["oci-single"]
    with pytest.raises(AuthError) as caught:
        _inspect(user.resolver(), registry_token.ref(image.repo, image.tag))
    assert caught.value.exit_code == ExitCode.AUTH


@pytest.mark.parametrize(
    ("helper", "warning"),
    [
        ("imginspect-not-installed", "not found in PATH"),
        ("imginspect-fail", "failed (exit status 3)"),
        ("imginspect-hang", "did not answer within 1 s"),
        ("imginspect-garbage", "did not answer a JSON object"),
    ],
)
def test_broken_helper_keeps_public_images_working(
    user: User,
    registry_token: Registry,
    corpus_token: dict[str, PushedImage],
    helper: str,
    warning: str,
) -> None:
    image = corpus_token["oci-index"]
    user.docker_config({"credsStore": helper})
    resolver = user.resolver(helper_timeout=1.0)
    started = time.monotonic()
    assert _inspect(resolver, registry_token.ref(image.repo, image.tag)) == expected_json(image)
    assert time.monotonic() - started < 10
    assert len(user.warnings) == 1 and warning in user.warnings[0]


# ---------------------------------------------------------------------- where secrets go


def test_credentials_are_not_sent_to_another_registry(
    user: User,
    registry_basic: Registry,
    registry_token: Registry,
    token_server: TokenServer,
    corpus_token: dict[str, PushedImage],
) -> None:
    assert registry_basic.username and registry_basic.password
    entry = {"auth": b64(f"{registry_basic.username}:{registry_basic.password}")}
    user.docker_config({"auths": {registry_basic.host: entry}})
    image = corpus_token["oci-single"]
    mark = token_server.mark()
    _inspect(user.resolver(), registry_token.ref(image.repo, image.tag))
    assert [r.authorization for r in token_server.requests_since(mark)] == [None]
    explicit = user.resolver(
        username="someone", password="explicit-secret", explicit_domains=[registry_basic.host]
    )
    mark = token_server.mark()
    _inspect(explicit, registry_token.ref(image.repo, image.tag))
    assert [r.authorization for r in token_server.requests_since(mark)] == [None]


@dataclass
class _Recorder:
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, authorization: str | None) -> None:
        with self.lock:
            self.requests.append((method, path, authorization))


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    return server, thread


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def redirecting_registry() -> Iterator[tuple[str, PushedImage, _Recorder, _Recorder, str]]:
    """A Basic-auth registry on 127.0.0.1 whose blobs redirect to a storage server on another
    port (another host, for credentials). Yields (host, image, registry log, storage log,
    basic header)."""
    image = build_corpus(keys=["oci-single"])["oci-single"]
    assert image.config is not None
    config = image.config
    basic = "Basic " + b64("alice:redirect-secret")
    registry_log, storage_log = _Recorder(), _Recorder()

    class Storage(_Quiet):
        def do_GET(self) -> None:
            storage_log.add("GET", self.path, self.headers.get("Authorization"))
            self.reply(200, config.data, {"Content-Type": "application/octet-stream"})

    storage, storage_thread = _serve(Storage)
    storage_url = f"http://127.0.0.1:{storage.server_address[1]}"

    class Registry_(_Quiet):
        def do_GET(self) -> None:
            authorization = self.headers.get("Authorization")
            registry_log.add("GET", self.path, authorization)
            if authorization != basic:
                self.reply(401, b"{}", {"WWW-Authenticate": 'Basic realm="test"'})
            elif self.path == f"/v2/{image.repo}/manifests/{image.tag}":
                self.reply(
                    200,
                    image.raw,
                    {"Content-Type": image.media_type, "Docker-Content-Digest": image.digest},
                )
            elif self.path == f"/v2/{image.repo}/blobs/{config.digest}":
                self.reply(307, b"", {"Location": f"{storage_url}/blob/{config.digest}"})
            else:
                self.reply(404, b"{}")

    registry, registry_thread = _serve(Registry_)
    try:
        host = f"127.0.0.1:{registry.server_address[1]}"
        yield host, image, registry_log, storage_log, basic
    finally:
        for server, thread in ((registry, registry_thread), (storage, storage_thread)):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def test_credentials_never_follow_a_redirect_to_another_host(
    user: User, redirecting_registry: tuple[str, PushedImage, _Recorder, _Recorder, str]
) -> None:
    host, image, registry_log, storage_log, basic = redirecting_registry
    user.docker_config({"auths": {host: {"auth": b64("alice:redirect-secret")}}})
    assert _inspect(user.resolver(), f"{host}/{image.repo}:{image.tag}") == expected_json(image)
    assert image.config is not None
    assert ("GET", f"/v2/{image.repo}/blobs/{image.config.digest}", basic) in (
        registry_log.requests
    )
    assert storage_log.requests == [("GET", f"/blob/{image.config.digest}", None)]


class _FakeTransport:
    """Records requests; answers a token for token requests, 200 otherwise."""

    log = None

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.calls.append({"method": method, "url": url, **kwargs})
        body = json.dumps({"token": "issued-token", "expires_in": 300}).encode()
        return Response(200, (("content-type", "application/json"),), body, url)


def _challenge(realm: str) -> Response:
    header = f'Bearer realm="{realm}",service="registry.example.com"'
    return Response(401, (("www-authenticate", header),), b"", "https://x/v2/")


SECRET_CREDENTIALS = {
    "basic": Credential("alice", "clear-text-secret"),
    "identity token": Credential(identity_token="refresh-secret"),
}


@pytest.mark.parametrize("form", sorted(SECRET_CREDENTIALS))
@pytest.mark.parametrize(
    ("realm", "insecure", "may_send"),
    [
        ("https://auth.example.com/token", set(), True),
        ("http://auth.example.com/token", set(), False),  # clear text to a remote host
        ("http://auth.example.com/token", {"auth.example.com"}, True),  # declared insecure
        ("http://127.0.0.1:9/token", set(), True),  # loopback
        ("http://localhost:9/token", set(), True),
        ("http://127.0.0.1.example.com/token", set(), False),
    ],
)
def test_secrets_go_in_clear_text_only_to_loopback_or_declared_insecure_realms(
    form: str, realm: str, insecure: set[str], may_send: bool
) -> None:
    credential = SECRET_CREDENTIALS[form]
    transport = _FakeTransport()
    rules = HostResolver()  # the run's one rule: loopback hosts are insecure
    authenticator = Authenticator(
        transport,  # type: ignore[arg-type]
        "registry.example.com",
        lambda repository: credential,
        insecure_host=lambda host: host in insecure or rules.is_insecure(host),
    )
    header = authenticator.respond_to(
        _challenge(realm), "team/app", "repository:team/app:pull", sent=None
    )
    assert header == "Bearer issued-token"
    [call] = transport.calls
    sent = json.dumps(call, default=str)
    secret = credential.password or credential.identity_token
    if may_send:
        assert secret in sent or b64(f"alice:{secret}") in sent
    else:
        assert secret not in sent and b64(f"alice:{secret}") not in sent
        assert call["method"] == "GET" and not call.get("headers")
        assert "account" not in parse_qs(urlsplit(call["url"]).query)


@pytest.mark.parametrize("form", sorted(SECRET_CREDENTIALS))
def test_loopback_realm_with_a_certs_d_directory_is_verified(form: str, tmp_path: Path) -> None:
    """certs.d says how to verify a loopback host: its token realm is then no longer
    insecure either, so no secret goes to it over plain http (the loopback rule is one)."""
    (tmp_path / "certs.d" / "127.0.0.1:9").mkdir(parents=True)
    settings = RegistrySettings(certs_dirs=[tmp_path / "certs.d"], environ={})
    rules = HostResolver(settings=settings)
    credential = SECRET_CREDENTIALS[form]
    transport = _FakeTransport()
    authenticator = Authenticator(
        transport,  # type: ignore[arg-type]
        "127.0.0.1:9",
        lambda repository: credential,
        insecure_host=rules.is_insecure,
    )
    authenticator.respond_to(
        _challenge("http://127.0.0.1:9/token"), "team/app", "repository:team/app:pull", sent=None
    )
    [call] = transport.calls
    sent = json.dumps(call, default=str)
    secret = credential.password or credential.identity_token
    assert secret not in sent and b64(f"alice:{secret}") not in sent
    assert call["verify"] is True  # the realm is verified, as its host's certs.d asks


def test_secure_remote_registry_is_only_spoken_to_over_https() -> None:
    transport = _FakeTransport()
    credential = Credential("alice", "clear-text-secret")
    client = RegistryClient(
        "registry.example.com",
        transport,  # type: ignore[arg-type]
        credentials=lambda r: credential,
    )
    client.get_manifest("team/app", "v1")
    assert [urlsplit(c["url"]).scheme for c in transport.calls] == ["https"]
    assert transport.calls[0]["verify"] is True


def test_no_secret_in_debug_logs(
    user: User,
    registry_basic: Registry,
    corpus_basic: dict[str, PushedImage],
    registry_token: Registry,
    private_token: Any,
) -> None:
    logged: list[str] = []
    basic_image = corpus_basic["oci-index"]
    _configure(user, "auth", registry_basic, basic_image.repo)
    _inspect(
        user.resolver(), registry_basic.ref(basic_image.repo, basic_image.tag), log=logged.append
    )
    token_image = private_token["oci-single"]
    _configure(user, "auth", registry_token, token_image.repo)
    _inspect(
        user.resolver(), registry_token.ref(token_image.repo, token_image.tag), log=logged.append
    )
    text = "\n".join(logged)
    assert "GET " in text  # it did log
    for secret in (*_secrets(registry_basic), *_secrets(registry_token)):
        assert secret not in text
    assert "eyJ" not in text  # no bearer token (a JWT) either


# ---------------------------------------------------------------------- the CLI (pending)


def cli(
    user: User, *args: str, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "imginspect", *args],
        capture_output=True,
        env=user.cli_env(),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        timeout=timeout,
        check=False,
        cwd=REPO_ROOT,
    )


def _stderr(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode(errors="replace")


def _assert_ok(result: subprocess.CompletedProcess[bytes], image: PushedImage) -> None:
    assert result.returncode == 0, _stderr(result)
    assert result.stdout == expected_json(image)


def _basic_config_dir(user: User, registry: Registry) -> Path:
    assert registry.username and registry.password
    entry = {"auth": b64(f"{registry.username}:{registry.password}")}
    return user.write("cfg/config.json", {"auths": {registry.host: entry}}).parent


def test_cli_config_dir(
    user: User, registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    image = corpus_basic["oci-single"]
    config_dir = _basic_config_dir(user, registry_basic)
    result = cli(user, "--config", str(config_dir), "--json", registry_basic.ref(image.repo, "v1"))
    _assert_ok(result, image)
    assert _stderr(result) == ""


def test_cli_docker_config_from_home_and_helper(
    user: User, registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    """No option at all: ~/.docker/config.json and its credsStore, as `docker pull`."""
    image = corpus_basic["oci-index"]
    assert registry_basic.username and registry_basic.password
    user.helper(
        "imginspect-store",
        {registry_basic.host: (registry_basic.username, registry_basic.password)},
    )
    user.docker_config({"credsStore": "imginspect-store"})
    result = cli(user, "--json", registry_basic.ref(image.repo, image.tag))
    _assert_ok(result, image)
    assert helper_calls(user.store, "imginspect-store") == [f"get {registry_basic.host}"]


def test_cli_authfile(
    user: User, registry_token: Registry, private_token: dict[str, PushedImage]
) -> None:
    image = private_token["oci-index"]
    assert registry_token.username and registry_token.password
    entry = {"auth": b64(f"{registry_token.username}:{registry_token.password}")}
    path = user.write("auth.json", {"auths": {f"{registry_token.host}/private": entry}})
    user.docker_config({"auths": {registry_token.host: {"auth": b64("wrong:wrong")}}})
    ref = registry_token.ref(image.repo, image.tag)
    _assert_ok(cli(user, "--authfile", str(path), "--json", ref), image)


def test_cli_username_password_stdin(
    user: User, registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    image = corpus_basic["oci-single"]
    assert registry_basic.username and registry_basic.password
    ref = registry_basic.ref(image.repo, image.tag)
    args = ("--username", registry_basic.username, "--password-stdin", "--debug", "--json", ref)
    result = cli(user, *args, input=registry_basic.password.encode() + b"\n")
    _assert_ok(result, image)
    for secret in _secrets(registry_basic):
        assert secret not in _stderr(result) and secret.encode() not in result.stdout
    wrong = cli(user, *args, input=b"not-the-password-Q7\n")
    assert wrong.returncode == 3, _stderr(wrong)
    assert "not-the-password-Q7" not in _stderr(wrong)


def test_cli_anonymous_ignores_stored_credentials(
    user: User, registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    image = corpus_basic["oci-single"]
    config_dir = _basic_config_dir(user, registry_basic)
    ref = registry_basic.ref(image.repo, image.tag)
    result = cli(user, "--config", str(config_dir), "--anonymous", "--json", ref)
    assert result.returncode == 3, _stderr(result)
    assert _stderr(result).startswith("error: authentication required")


def test_cli_certs_dir(
    user: User, registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    assert registry_basic.ca_path is not None
    image = corpus_basic["oci-single"]
    config_dir = _basic_config_dir(user, registry_basic)
    ref = registry_basic.ref(image.repo, image.tag)
    good = user.root / "good-certs.d"
    (good / registry_basic.host).mkdir(parents=True)
    (good / registry_basic.host / "ca.crt").write_bytes(registry_basic.ca_path.read_bytes())
    _assert_ok(
        cli(user, "--config", str(config_dir), "--certs-dir", str(good), "--json", ref), image
    )
    # A certs.d directory for the (loopback) host means: verify it. With another CA: exit 5.
    wrong = user.root / "wrong-certs.d"
    (wrong / registry_basic.host).mkdir(parents=True)
    trustme.CA().cert_pem.write_to_path(str(wrong / registry_basic.host / "ca.crt"))
    result = cli(user, "--config", str(config_dir), "--certs-dir", str(wrong), "--json", ref)
    assert result.returncode == 5, _stderr(result)
    # A lone client certificate: a configuration error, exit 2.
    lone = user.root / "lone-certs.d"
    (lone / registry_basic.host).mkdir(parents=True)
    (lone / registry_basic.host / "client.cert").write_text("x")
    result = cli(user, "--config", str(config_dir), "--certs-dir", str(lone), "--json", ref)
    assert result.returncode == 2, _stderr(result)
    assert _stderr(result).startswith("error: missing key client.key")


def test_cli_daemon_config_insecure_registries(
    user: User, registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    image = corpus_basic["oci-single"]
    config_dir = _basic_config_dir(user, registry_basic)
    wrong = user.root / "wrong-certs.d"
    (wrong / registry_basic.host).mkdir(parents=True)
    trustme.CA().cert_pem.write_to_path(str(wrong / registry_basic.host / "ca.crt"))
    daemon = user.write("daemon.json", {"insecure-registries": [registry_basic.host]})
    args = ("--config", str(config_dir), "--certs-dir", str(wrong), "--daemon-config", str(daemon))
    _assert_ok(cli(user, *args, "--json", registry_basic.ref(image.repo, image.tag)), image)


def test_cli_daemon_config_registry_mirrors(
    user: User, registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    image = corpus_plain["oci-index"]
    daemon = user.write("daemon.json", {"registry-mirrors": [f"http://{registry_plain.host}"]})
    mark = registry_plain.mark()
    result = cli(user, "--daemon-config", str(daemon), "--json", f"docker.io/{image.repo}:v1")
    _assert_ok(result, image)
    assert any("/manifests/" in e.path for e in registry_plain.requests_since(mark))
    # The connection opened while imginspect starts is the mirror's, not Docker Hub's.
    debug = cli(user, "--daemon-config", str(daemon), "--debug", "--digest", f"{image.repo}:v1")
    assert debug.returncode == 0, _stderr(debug)
    warm = [line for line in _stderr(debug).splitlines() if "opened while imginspect" in line]
    assert warm and all(f"http://{registry_plain.host}" in line for line in warm), warm


def test_cli_daemon_config_malformed(user: User, registry_plain: Registry) -> None:
    daemon = user.write("daemon.json", "{broken")
    result = cli(user, "--daemon-config", str(daemon), "--json", registry_plain.ref("x", "v1"))
    assert result.returncode == 2, _stderr(result)
    assert _stderr(result).startswith("error: ") and str(daemon) in _stderr(result)


def test_cli_auth_command_explains_without_secrets(
    user: User, registry_basic: Registry, corpus_basic: dict[str, PushedImage]
) -> None:
    image = corpus_basic["oci-single"]
    config_dir = _basic_config_dir(user, registry_basic)
    ref = registry_basic.ref(image.repo, image.tag)
    result = cli(user, "auth", "--config", str(config_dir), ref)
    assert result.returncode == 0, _stderr(result)
    text = result.stdout.decode()
    assert str(config_dir / "config.json") in text
    assert f'auths["{registry_basic.host}"]' in text
    assert "basic" in text and f'"{registry_basic.username}"' in text
    for secret in _secrets(registry_basic):
        assert secret not in text and secret not in _stderr(result)
    nothing = cli(user, "auth", "other.example.com/team/app")
    assert nothing.returncode == 0, _stderr(nothing)
    assert "none found" in nothing.stdout.decode()


@pytest.mark.parametrize(
    ("helper", "warning"),
    [
        ("imginspect-not-installed", "not found in PATH"),
        ("imginspect-fail", "failed (exit status 3)"),
        ("imginspect-hang", "did not answer within"),
    ],
)
def test_cli_broken_helper_warns_and_inspects_public_image(
    user: User,
    registry_token: Registry,
    corpus_token: dict[str, PushedImage],
    helper: str,
    warning: str,
) -> None:
    image = corpus_token["oci-single"]
    user.docker_config({"credsStore": helper})
    started = time.monotonic()
    result = cli(user, "--json", registry_token.ref(image.repo, image.tag))
    _assert_ok(result, image)
    lines = _stderr(result).splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and warning in lines[0]
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"details": "incorrect username or password"}', "incorrect username or password"),
        (b'{"errors": [{"code": "DENIED", "message": "denied"}]}', "denied"),
        (b'{"error": "invalid_grant", "error_description": "bad token"}', "bad token"),
        (b"plain text reason\nsecond line", "plain text reason"),
        (b"\x1c", ""),  # Unicode whitespace to str.strip(), not to bytes.strip()
        (b"\x1c\x1dreason", "reason"),
        (b"", ""),
        (b"<html>nope</html>", ""),
        (b'{"details": "a\\u001b[31mred"}', "a[31mred"),
    ],
)
def test_token_error_reason(body: bytes, reason: str) -> None:
    from imginspect.auth import token_error_reason

    assert token_error_reason(body) == reason
