"""The credential resolver on its own: sources and their precedence, key normalization,
Docker Hub aliases, podman namespaced keys, real credential-helper processes (working,
missing, failing, hanging), malformed files, explanations -- and that no secret ever
shows. Every test gets its own HOME, XDG directories and PATH; nothing from the machine
running the tests is read. Real registries are in test_auth_registries.py."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imginspect.auth import Credential
from imginspect.credentials import (
    DOCKER_HUB_SERVER_URL,
    CredentialResolver,
    Explanation,
    convert_to_hostname,
    decode_auth,
    namespaced_keys,
    normalize_auth_file_key,
    parse_docker_auth_config,
    password_from_stdin,
    server_url_for,
)
from imginspect.errors import ConfigError, ExitCode, UsageError
from tests.support.credhelpers import (
    HELPER_DIR_VARIABLE,
    helper_calls,
    helper_path,
    install_store_helper,
    store_credentials,
)

HOST = "registry.example.com:5000"
PASSWORD = "pa:ss w0rd:with-colons"  # only the first ':' of user:password splits
IDENTITY_TOKEN = "identity-token-0123456789abcdef"
REGISTRY_TOKEN = "registry-token-fedcba9876543210"
SECRETS = (PASSWORD, IDENTITY_TOKEN, REGISTRY_TOKEN)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Env:
    """An isolated user: HOME, XDG dirs, PATH with the fake helpers, and writers for the
    files the resolver reads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.bin = root / "bin"
        self.store = root / "helper-store"
        self.runtime = root / "run"
        self.config_home = root / "xdg-config"
        for d in (self.home, self.bin, self.store, self.runtime, self.config_home):
            d.mkdir(parents=True, exist_ok=True)
        self.environ: dict[str, str] = {
            "HOME": str(self.home),
            "PATH": helper_path(self.bin),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(self.config_home),
            HELPER_DIR_VARIABLE: str(self.store),
        }
        self.warnings: list[str] = []

    @property
    def docker_config_path(self) -> Path:
        return self.home / ".docker" / "config.json"

    def write_json(self, path: Path, document: Any) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        return path

    def docker_config(self, document: Any) -> Path:
        return self.write_json(self.docker_config_path, document)

    def runtime_auth(self, document: Any) -> Path:
        return self.write_json(self.runtime / "containers" / "auth.json", document)

    def config_auth(self, document: Any) -> Path:
        return self.write_json(self.config_home / "containers" / "auth.json", document)

    def helper(self, name: str, entries: dict[str, tuple[str, str]] | None = None) -> None:
        install_store_helper(self.bin, name)
        store_credentials(self.store, name, entries or {})

    def calls(self, name: str) -> list[str]:
        return helper_calls(self.store, name)

    def resolver(self, **kwargs: Any) -> CredentialResolver:
        kwargs.setdefault("environ", self.environ)
        kwargs.setdefault("warn", self.warnings.append)
        return CredentialResolver(**kwargs)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def auths(**entries: dict[str, str]) -> dict[str, Any]:
    return {"auths": entries}


def userpass(user: str = "alice", password: str = PASSWORD) -> dict[str, str]:
    return {"auth": b64(f"{user}:{password}")}


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (*SECRETS, b64(f"alice:{PASSWORD}")):
            assert secret not in text, f"secret leaked into {text!r}"


# ---------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("key", "hostname"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://127.0.0.1:5000/", "127.0.0.1:5000"),
        ("http://127.0.0.1:5000/v1/", "127.0.0.1:5000"),
        ("https://registry.example.com/v2/", "registry.example.com"),
        ("registry.example.com/some/path", "registry.example.com"),
        ("registry.example.com:443", "registry.example.com:443"),
        ("https://registry.example.com:443/", "registry.example.com:443"),
        ("https://[::1]:5000/", "[::1]:5000"),
        ("https://[::1]/", "::1"),
        ("https://index.docker.io/v1/", "index.docker.io"),
        ("https://user@registry.example.com/", "registry.example.com"),
        ("localhost", "localhost"),
        ("https://host:\u00b2/v1/", "host:\u00b2"),  # not an ASCII port: kept as written
    ],
)
def test_convert_to_hostname_as_docker(key: str, hostname: str) -> None:
    assert convert_to_hostname(key) == hostname


@pytest.mark.parametrize(
    ("key", "normalized"),
    [
        ("https://index.docker.io/v1/", "index.docker.io"),
        ("docker.io", "index.docker.io"),
        ("registry-1.docker.io", "index.docker.io"),
        ("http://quay.io/v1/", "quay.io"),
        ("quay.io/namespace/repo", "quay.io/namespace/repo"),  # no scheme: kept, namespaced
        ("https://quay.io/namespace", "quay.io"),
    ],
)
def test_normalize_auth_file_key_as_containers_image(key: str, normalized: str) -> None:
    assert normalize_auth_file_key(key) == normalized


def test_server_urls_and_namespaced_keys() -> None:
    for hub in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert server_url_for(hub) == DOCKER_HUB_SERVER_URL
    assert server_url_for("127.0.0.1:5000") == "127.0.0.1:5000"
    assert namespaced_keys("quay.io", "ns/sub/repo") == [
        "quay.io/ns/sub/repo",
        "quay.io/ns/sub",
        "quay.io/ns",
        "quay.io",
    ]


def test_decode_auth_splits_on_first_colon_and_never_echoes() -> None:
    assert decode_auth(b64("alice:a:b:c")) == ("alice", "a:b:c")
    assert decode_auth(b64("alice:")) == ("alice", "")
    assert decode_auth(b64("alice:pw\x00\x00")) == ("alice", "pw")
    for bad in ("%%%not-base64%%%", b64("no-colon-here"), b64(":nouser"), "YWJj="):
        with pytest.raises(ValueError) as caught:
            decode_auth(bad)
        assert bad not in str(caught.value)


def test_password_from_stdin_strips_one_newline() -> None:
    assert password_from_stdin("secret\n") == "secret"
    assert password_from_stdin("secret\r\n") == "secret"
    assert password_from_stdin("two\nlines\n") == "two\nlines"
    assert password_from_stdin(" spaced \n") == " spaced "
    with pytest.raises(UsageError):
        password_from_stdin("\n")
    with pytest.raises(UsageError):
        password_from_stdin("")


def test_module_is_cheap_to_import() -> None:
    code = (
        "import sys, imginspect.credentials, imginspect.settings\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore', 'click',"
        " 'rich', 'ssl')]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------- nothing configured


def test_nothing_configured_is_anonymous(env: Env) -> None:
    resolver = env.resolver()
    assert resolver.lookup(HOST, "team/app") is None
    explanation = resolver.explain(HOST, "team/app")
    assert explanation.kind == "none" and explanation.flow == "anonymous"
    assert not explanation.has_credential
    text = explanation.describe()
    assert "none found" in text
    assert str(env.docker_config_path) in text  # where it looked
    assert "DOCKER_AUTH_CONFIG: not set" in text
    assert env.warnings == []


def test_locations_in_order(env: Env) -> None:
    assert env.resolver().locations() == (
        str(env.docker_config_path),
        str(env.runtime / "containers" / "auth.json"),
        str(env.config_home / "containers" / "auth.json"),
    )
    env.environ["DOCKER_AUTH_CONFIG"] = "{}"
    env.environ["DOCKER_CONFIG"] = str(env.root / "dc")
    env.environ["REGISTRY_AUTH_FILE"] = str(env.root / "podman.json")
    assert env.resolver().locations() == (
        "DOCKER_AUTH_CONFIG",
        str(env.root / "dc" / "config.json"),
        str(env.root / "podman.json"),
    )
    assert env.resolver(authfile=env.root / "only.json").locations() == (
        str(env.root / "only.json"),
    )


# ---------------------------------------------------------------------- auths entries


def test_auth_field(env: Env) -> None:
    path = env.docker_config(auths(**{HOST: userpass()}))
    credential = env.resolver().lookup(HOST, "team/app")
    assert credential is not None
    assert (credential.username, credential.password) == ("alice", PASSWORD)
    assert credential.source == f'{path} auths["{HOST}"]'
    assert not credential.identity_token and not credential.registry_token


def test_username_and_password_fields(env: Env) -> None:
    env.docker_config(auths(**{HOST: {"username": "bob", "password": PASSWORD}}))
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and (credential.username, credential.password) == (
        "bob",
        PASSWORD,
    )


def test_auth_field_wins_over_username_password(env: Env) -> None:
    entry = {"auth": b64(f"alice:{PASSWORD}"), "username": "bob", "password": "other"}
    env.docker_config(auths(**{HOST: entry}))
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "alice"


def test_identity_token(env: Env) -> None:
    env.docker_config(auths(**{HOST: {"auth": b64("alice:"), "identitytoken": IDENTITY_TOKEN}}))
    resolver = env.resolver()
    credential = resolver.lookup(HOST, "x")
    assert credential is not None
    assert credential.identity_token == IDENTITY_TOKEN and credential.username == "alice"
    explanation = resolver.explain(HOST, "x")
    assert explanation.flow == "identity token"
    assert_no_secret(explanation.describe(), json.dumps(explanation.as_dict()), repr(credential))


def test_registry_token(env: Env) -> None:
    env.docker_config(auths(**{HOST: {"registrytoken": REGISTRY_TOKEN}}))
    resolver = env.resolver()
    credential = resolver.lookup(HOST, "x")
    assert credential is not None and credential.registry_token == REGISTRY_TOKEN
    assert resolver.explain(HOST, "x").flow == "registry token"


def test_empty_entry_is_no_credential(env: Env) -> None:
    env.docker_config(auths(**{HOST: {}}))
    assert env.resolver().lookup(HOST, "x") is None


# ---------------------------------------------------------------------- key matching


@pytest.mark.parametrize(
    "key",
    [
        HOST,
        f"https://{HOST}",
        f"https://{HOST}/",
        f"http://{HOST}/v1/",
        f"https://{HOST}/v2/",
        f"{HOST}/anything/below",  # docker's ConvertToHostname keeps only the host
    ],
)
def test_docker_config_keys_normalized(env: Env, key: str) -> None:
    env.docker_config(auths(**{key: userpass()}))
    credential = env.resolver().lookup(HOST, "team/app")
    assert credential is not None and credential.username == "alice"
    assert f'auths["{key}"]' in credential.source


@pytest.mark.parametrize(
    ("key", "domain"),
    [
        ("registry.example.com", "registry.example.com:5000"),
        ("https://registry.example.com:5000", "registry.example.com"),
        ("registry.example.com:5001", "registry.example.com:5000"),
        ("other.example.com", "registry.example.com"),
        (DOCKER_HUB_SERVER_URL, "registry.example.com"),
    ],
)
def test_docker_config_keys_do_not_match_other_registries(env: Env, key: str, domain: str) -> None:
    env.docker_config(auths(**{key: userpass()}))
    assert env.resolver().lookup(domain, "x") is None


def test_exact_key_wins_over_normalized_key(env: Env) -> None:
    env.docker_config(
        auths(**{f"https://{HOST}/": userpass("normalized"), HOST: userpass("exact")})
    )
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "exact"


@pytest.mark.parametrize("domain", ["docker.io", "index.docker.io", "registry-1.docker.io"])
@pytest.mark.parametrize(
    "key",
    [
        DOCKER_HUB_SERVER_URL,
        "https://index.docker.io/v1",
        "index.docker.io",
        "docker.io",
        "https://registry-1.docker.io/",
    ],
)
def test_docker_hub_aliases(env: Env, domain: str, key: str) -> None:
    env.docker_config(auths(**{key: userpass()}))
    credential = env.resolver().lookup(domain, "library/ubuntu")
    assert credential is not None and credential.username == "alice"


def test_docker_hub_v1_key_preferred(env: Env) -> None:
    env.docker_config(
        auths(**{"docker.io": userpass("podman-style"), DOCKER_HUB_SERVER_URL: userpass("v1")})
    )
    credential = env.resolver().lookup("docker.io", "library/ubuntu")
    assert credential is not None and credential.username == "v1"


def test_hub_credentials_are_not_used_for_other_registries(env: Env) -> None:
    env.docker_config(auths(**{DOCKER_HUB_SERVER_URL: userpass()}))
    assert env.resolver().lookup("ghcr.io", "owner/app") is None


# ---------------------------------------------------------------------- podman auth.json


def test_podman_namespaced_keys_most_specific_first(env: Env) -> None:
    env.runtime_auth(
        auths(
            **{
                "quay.io/team/app": userpass("repo"),
                "quay.io/team": userpass("namespace"),
                "quay.io": userpass("registry"),
                "quay.io/other": userpass("other-namespace"),
            }
        )
    )
    resolver = env.resolver()

    def user(repository: str) -> str | None:
        credential = resolver.lookup("quay.io", repository)
        return credential.username if credential is not None else None

    assert user("team/app") == "repo"
    assert user("team/app2") == "namespace"
    assert user("team/sub/app") == "namespace"
    assert user("elsewhere/app") == "registry"
    assert user("other/app") == "other-namespace"


def test_podman_namespaced_key_for_another_namespace_does_not_apply(env: Env) -> None:
    env.config_auth(auths(**{"quay.io/team-a": userpass()}))
    resolver = env.resolver()
    assert resolver.lookup("quay.io", "team-b/app") is None
    assert resolver.lookup("quay.io", "team-a/app") is not None


def test_podman_docker_hub_keys(env: Env) -> None:
    env.runtime_auth(
        auths(**{"docker.io/library": userpass("library"), "docker.io": userpass("hub")})
    )
    resolver = env.resolver()
    official = resolver.lookup("docker.io", "library/ubuntu")
    other = resolver.lookup("docker.io", "someone/app")
    assert official is not None and official.username == "library"
    assert other is not None and other.username == "hub"


def test_podman_legacy_url_key(env: Env) -> None:
    env.runtime_auth(auths(**{"https://quay.io/v1/": userpass()}))
    assert env.resolver().lookup("quay.io", "team/app") is not None


# ---------------------------------------------------------------------- precedence


def test_docker_auth_config_first(env: Env) -> None:
    env.docker_config(auths(**{HOST: userpass("file")}))
    env.environ["DOCKER_AUTH_CONFIG"] = json.dumps(auths(**{HOST: userpass("env")}))
    resolver = env.resolver()
    credential = resolver.lookup(HOST, "x")
    assert credential is not None and credential.username == "env"
    assert credential.source == f'DOCKER_AUTH_CONFIG auths["{HOST}"]'
    explanation = resolver.explain(HOST, "x")
    assert explanation.kind == "env" and explanation.env_var == "DOCKER_AUTH_CONFIG"


def test_docker_auth_config_falls_back_to_config_file(env: Env) -> None:
    env.docker_config(auths(**{HOST: userpass("file")}))
    env.environ["DOCKER_AUTH_CONFIG"] = json.dumps(auths(**{"other.example.com": userpass()}))
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "file"


def test_docker_auth_config_wins_over_helpers(env: Env) -> None:
    env.helper("imginspect-a", {HOST: ("helper", "helper-secret")})
    env.docker_config({"credsStore": "imginspect-a", **auths(**{HOST: userpass("file")})})
    env.environ["DOCKER_AUTH_CONFIG"] = json.dumps(auths(**{HOST: userpass("env")}))
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "env"
    assert env.calls("imginspect-a") == []


def test_cred_helpers_over_creds_store_over_auths(env: Env) -> None:
    env.helper("imginspect-a", {HOST: ("from-cred-helpers", "secret-a")})
    env.helper("imginspect-b", {HOST: ("from-creds-store", "secret-b")})
    path = env.docker_config(
        {
            "credHelpers": {HOST: "imginspect-a"},
            "credsStore": "imginspect-b",
            **auths(**{HOST: userpass("from-auths")}),
        }
    )
    resolver = env.resolver()
    credential = resolver.lookup(HOST, "x")
    assert credential is not None
    assert (credential.username, credential.password) == ("from-cred-helpers", "secret-a")
    assert credential.source.startswith("credential helper docker-credential-imginspect-a")
    assert env.calls("imginspect-a") == [f"get {HOST}"]
    assert env.calls("imginspect-b") == []
    explanation = resolver.explain(HOST, "x")
    assert explanation.kind == "credential-helper"
    assert explanation.helper == "docker-credential-imginspect-a"
    assert explanation.path == str(path) and explanation.key == f'credHelpers["{HOST}"]'

    # Another registry: no credHelpers entry, so the credsStore.
    env.docker_config(
        {"credHelpers": {"elsewhere.example.com": "imginspect-a"}, "credsStore": "imginspect-b"}
    )
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "from-creds-store"


def test_creds_store_over_auths_even_when_it_has_nothing(env: Env) -> None:
    """As docker: a registry has one store; with a helper configured, auths is not read."""
    env.helper("imginspect-b", {})
    env.docker_config({"credsStore": "imginspect-b", **auths(**{HOST: userpass("stale")})})
    assert env.resolver().lookup(HOST, "x") is None
    assert env.calls("imginspect-b") == [f"get {HOST}"]
    assert env.warnings == []  # "credentials not found" is no failure


def test_docker_config_before_podman_auth_files(env: Env) -> None:
    env.docker_config(auths(**{HOST: userpass("docker")}))
    env.runtime_auth(auths(**{HOST: userpass("podman")}))
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "docker"


def test_podman_files_used_when_docker_has_nothing(env: Env) -> None:
    env.docker_config(auths(**{"other.example.com": userpass()}))
    env.config_auth(auths(**{HOST: userpass("config-home")}))
    env.runtime_auth(auths(**{HOST: userpass("runtime")}))
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "runtime"
    (env.runtime / "containers" / "auth.json").unlink()
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "config-home"


def test_registry_auth_file_replaces_podman_defaults(env: Env) -> None:
    env.runtime_auth(auths(**{HOST: userpass("runtime")}))
    podman = env.write_json(env.root / "podman.json", auths(**{HOST: userpass("env-file")}))
    env.environ["REGISTRY_AUTH_FILE"] = str(podman)
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "env-file"


def test_docker_config_variable_and_config_dir(env: Env) -> None:
    env.docker_config(auths(**{HOST: userpass("home")}))
    elsewhere = env.write_json(env.root / "dc" / "config.json", auths(**{HOST: userpass("var")}))
    env.environ["DOCKER_CONFIG"] = str(elsewhere.parent)
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "var"
    given = env.write_json(env.root / "given" / "config.json", auths(**{HOST: userpass("dir")}))
    credential = env.resolver(config_dir=given.parent).lookup(HOST, "x")
    assert credential is not None and credential.username == "dir"
    assert credential.source == f'{given} auths["{HOST}"]'


def test_authfile_is_the_only_file_source(env: Env) -> None:
    env.helper("imginspect-a", {HOST: ("helper", "secret")})
    env.docker_config({"credsStore": "imginspect-a", **auths(**{HOST: userpass("docker")})})
    env.environ["DOCKER_AUTH_CONFIG"] = json.dumps(auths(**{HOST: userpass("env")}))
    env.runtime_auth(auths(**{HOST: userpass("runtime")}))
    authfile = env.write_json(env.root / "auth.json", auths(**{f"{HOST}/team": userpass("only")}))
    resolver = env.resolver(authfile=authfile)
    credential = resolver.lookup(HOST, "team/app")
    assert credential is not None and credential.username == "only"
    assert resolver.lookup(HOST, "elsewhere/app") is None  # nothing else is consulted
    assert resolver.lookup("other.example.com", "x") is None
    assert env.calls("imginspect-a") == []


def test_explicit_wins_over_everything(env: Env) -> None:
    env.helper("imginspect-a", {HOST: ("helper", "secret")})
    env.docker_config({"credsStore": "imginspect-a"})
    env.environ["DOCKER_AUTH_CONFIG"] = json.dumps(auths(**{HOST: userpass("env")}))
    resolver = env.resolver(
        username="carol", password="given", explicit_source="--username/--password-stdin"
    )
    credential = resolver.lookup(HOST, "x")
    assert credential is not None and (credential.username, credential.password) == (
        "carol",
        "given",
    )
    assert credential.source == "--username/--password-stdin"
    assert resolver.explain(HOST, "x").kind == "explicit"
    assert env.calls("imginspect-a") == []


def test_explicit_credential_only_for_its_registries(env: Env) -> None:
    env.docker_config(auths(**{"other.example.com": userpass("stored")}))
    resolver = env.resolver(username="carol", password="given", explicit_domains=[HOST])
    mine = resolver.lookup(HOST, "x")
    other = resolver.lookup("other.example.com", "x")
    assert mine is not None and mine.username == "carol"
    assert other is not None and other.username == "stored"
    hub = env.resolver(username="carol", password="given", explicit_domains=["index.docker.io"])
    assert hub.lookup("docker.io", "library/ubuntu") is not None


def test_anonymous_ignores_everything(env: Env) -> None:
    env.helper("imginspect-a", {HOST: ("helper", "secret")})
    env.docker_config({"credsStore": "imginspect-a", **auths(**{HOST: userpass()})})
    env.environ["DOCKER_AUTH_CONFIG"] = json.dumps(auths(**{HOST: userpass()}))
    resolver = env.resolver(anonymous=True)
    assert resolver.lookup(HOST, "x") is None
    explanation = resolver.explain(HOST, "x")
    assert explanation.kind == "anonymous" and "anonymous requested" in explanation.describe()
    assert env.calls("imginspect-a") == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"username": "alice"},
        {"password": "secret"},
        {"username": "", "password": "secret"},
        {"anonymous": True, "username": "alice", "password": "secret"},
        {"config_dir": "/tmp", "authfile": "/tmp/auth.json"},
    ],
)
def test_inconsistent_options_are_usage_errors(env: Env, kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as caught:
        env.resolver(**kwargs)
    assert caught.value.exit_code == ExitCode.USAGE
    assert "secret" not in caught.value.message


# ---------------------------------------------------------------------- credential helpers


def test_helper_protocol_and_server_urls(env: Env) -> None:
    env.helper(
        "imginspect-a",
        {DOCKER_HUB_SERVER_URL: ("hubuser", "hub-secret"), HOST: ("alice", "host-secret")},
    )
    env.docker_config({"credsStore": "imginspect-a"})
    resolver = env.resolver()
    hub = resolver.lookup("docker.io", "library/ubuntu")
    mine = resolver.lookup(HOST, "team/app")
    assert hub is not None and (hub.username, hub.password) == ("hubuser", "hub-secret")
    assert mine is not None and (mine.username, mine.password) == ("alice", "host-secret")
    assert env.calls("imginspect-a") == [f"get {DOCKER_HUB_SERVER_URL}", f"get {HOST}"]


def test_helper_token_username_means_identity_token(env: Env) -> None:
    env.helper("imginspect-a", {HOST: ("<token>", IDENTITY_TOKEN)})
    env.docker_config({"credHelpers": {HOST: "imginspect-a"}})
    resolver = env.resolver()
    credential = resolver.lookup(HOST, "x")
    assert credential is not None
    assert credential.identity_token == IDENTITY_TOKEN and not credential.username
    assert resolver.explain(HOST, "x").flow == "identity token"


def test_helper_called_once_per_helper_and_server(env: Env) -> None:
    env.helper("imginspect-a", {HOST: ("alice", "secret")})
    env.docker_config({"credsStore": "imginspect-a"})
    resolver = env.resolver()
    for repository in ("a", "b/c", "a", "d"):
        assert resolver.lookup(HOST, repository) is not None
    resolver.explain(HOST, "e")
    assert resolver.lookup("other.example.com", "x") is None
    assert env.calls("imginspect-a") == [f"get {HOST}", "get other.example.com"]


def test_podman_cred_helpers_get_the_registry_name(env: Env) -> None:
    env.helper("imginspect-a", {"docker.io": ("alice", "secret")})
    env.runtime_auth({"credHelpers": {"docker.io": "imginspect-a"}})
    credential = env.resolver().lookup("docker.io", "library/ubuntu")
    assert credential is not None and credential.username == "alice"
    assert env.calls("imginspect-a") == ["get docker.io"]


def _helper_config(env: Env, helper: str) -> None:
    env.docker_config({"credHelpers": {HOST: helper}, **auths(**{"x.example.com": userpass()})})


def test_missing_helper_warns_and_goes_on(env: Env) -> None:
    _helper_config(env, "imginspect-not-installed")
    resolver = env.resolver()
    assert resolver.lookup(HOST, "x") is None
    assert len(env.warnings) == 1
    assert "docker-credential-imginspect-not-installed not found in PATH" in env.warnings[0]
    assert f"continuing without credentials for {HOST}" in env.warnings[0]
    explanation = resolver.explain(HOST, "y")
    assert "helper not found in PATH" in explanation.describe()
    assert len(env.warnings) == 1  # warned once: the helper is not tried again


def test_failing_helper_warns_and_goes_on(env: Env) -> None:
    _helper_config(env, "imginspect-fail")
    assert env.resolver().lookup(HOST, "x") is None
    assert len(env.warnings) == 1
    assert "docker-credential-imginspect-fail failed (exit status 3)" in env.warnings[0]
    assert "the keyring is locked" in env.warnings[0]


def test_hanging_helper_times_out(env: Env) -> None:
    _helper_config(env, "imginspect-hang")
    started = time.monotonic()
    assert env.resolver(helper_timeout=1.0).lookup(HOST, "x") is None
    assert time.monotonic() - started < 5
    assert len(env.warnings) == 1 and "did not answer within 1 s" in env.warnings[0]


def test_garbage_helper_warns(env: Env) -> None:
    _helper_config(env, "imginspect-garbage")
    assert env.resolver().lookup(HOST, "x") is None
    assert "did not answer a JSON object" in env.warnings[0]


def test_helper_output_that_may_hold_a_secret_is_not_repeated(env: Env) -> None:
    _helper_config(env, "imginspect-leaky")
    assert env.resolver().lookup(HOST, "x") is None
    assert env.warnings and "leaked-helper-secret" not in " ".join(env.warnings)


def test_helper_names_with_paths_are_refused(env: Env) -> None:
    _helper_config(env, "../../bin/sh")
    assert env.resolver().lookup(HOST, "x") is None
    assert "invalid credential helper name" in env.warnings[0]


# ---------------------------------------------------------------------- malformed files


def test_default_config_with_bad_json_warns_and_is_skipped(env: Env) -> None:
    env.docker_config('{"auths": {')
    env.runtime_auth(auths(**{HOST: userpass("podman")}))
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "podman"
    assert len(env.warnings) == 1
    assert str(env.docker_config_path) in env.warnings[0] and "not valid JSON" in env.warnings[0]


def test_default_config_with_bad_base64_warns_and_never_echoes(env: Env) -> None:
    bad = "not*base64*" + PASSWORD
    env.docker_config(auths(**{HOST: {"auth": bad}}))
    resolver = env.resolver()
    assert resolver.lookup(HOST, "x") is None
    assert env.warnings and "not valid base64" in env.warnings[0]
    assert all(bad not in w and PASSWORD not in w for w in env.warnings)
    assert_no_secret(resolver.explain(HOST, "x").describe())


def test_bad_entry_for_another_registry_does_not_matter(env: Env) -> None:
    env.docker_config(auths(**{"broken.example.com": {"auth": "%%%"}, HOST: userpass()}))
    assert env.resolver().lookup(HOST, "x") is not None
    assert env.warnings == []


@pytest.mark.parametrize(
    "document",
    [
        "[1, 2]",
        '{"auths": []}',
        '{"auths": {"h": "string"}}',
        '{"credHelpers": {"h": 1}}',
        '{"credsStore": 7}',
        '{"auths": {"h": {"auth": 5}}}',
    ],
)
def test_default_config_with_wrong_shapes_warns(env: Env, document: str) -> None:
    env.docker_config(document)
    assert env.resolver().lookup(HOST, "x") is None
    assert len(env.warnings) == 1 and "ignoring it" in env.warnings[0]


def test_docker_auth_config_malformed_warns_and_falls_back(env: Env) -> None:
    env.environ["DOCKER_AUTH_CONFIG"] = "{not json"
    env.docker_config(auths(**{HOST: userpass("file")}))
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "file"
    assert "DOCKER_AUTH_CONFIG is not valid JSON" in env.warnings[0]


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_text("{oops"), "not valid JSON"),
        (lambda p: p.write_text(json.dumps(auths(**{HOST: {"auth": "%%%"}}))), "base64"),
        (
            lambda p: p.write_text(json.dumps(auths(**{HOST: {"auth": b64("nocolon")}}))),
            "username:password",
        ),
    ],
)
@pytest.mark.parametrize("option", ["config_dir", "authfile"])
def test_explicit_files_that_are_malformed_are_errors(
    env: Env, write: Callable[[Path], Any], message: str, option: str
) -> None:
    directory = env.root / "explicit"
    directory.mkdir()
    path = directory / ("config.json" if option == "config_dir" else "auth.json")
    write(path)
    resolver = env.resolver(**{option: directory if option == "config_dir" else path})
    with pytest.raises(ConfigError) as caught:
        resolver.lookup(HOST, "x")
    error = caught.value
    assert error.exit_code == ExitCode.USAGE
    assert str(path) in error.message and message in error.message
    assert "%%%" not in error.message


def test_explicit_missing_files(env: Env) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        env.resolver(authfile=env.root / "missing.json").lookup(HOST, "x")
    with pytest.raises(ConfigError, match="does not exist"):
        env.resolver(config_dir=env.root / "missing-dir").lookup(HOST, "x")
    empty_dir = env.root / "empty-config-dir"
    empty_dir.mkdir()
    assert env.resolver(config_dir=empty_dir).lookup(HOST, "x") is None  # as docker


def test_files_are_read_lazily_and_once(env: Env) -> None:
    resolver = env.resolver(authfile=env.root / "created-later.json")  # no error yet
    env.write_json(env.root / "created-later.json", auths(**{HOST: userpass("first")}))
    first = resolver.lookup(HOST, "x")
    env.write_json(env.root / "created-later.json", auths(**{HOST: userpass("second")}))
    again = resolver.lookup(HOST, "y")
    assert first is not None and again is not None
    assert first.username == again.username == "first"


# ---------------------------------------------------------------------- explanations


def test_explanations_name_source_and_flow_without_secrets(env: Env) -> None:
    env.helper("imginspect-a", {"helped.example.com": ("<token>", IDENTITY_TOKEN)})
    path = env.docker_config(
        {
            "credHelpers": {"helped.example.com": "imginspect-a"},
            **auths(
                **{
                    HOST: userpass(),
                    "token.example.com": {"registrytoken": REGISTRY_TOKEN},
                }
            ),
        }
    )
    resolver = env.resolver()
    cases = {
        HOST: ("docker-config", "basic", f'auths["{HOST}"]'),
        "token.example.com": ("docker-config", "registry token", 'auths["token.example.com"]'),
        "helped.example.com": (
            "credential-helper",
            "identity token",
            "docker-credential-imginspect-a",
        ),
        "none.example.com": ("none", "anonymous", "none found"),
    }
    for domain, (kind, flow, fragment) in cases.items():
        explanation = resolver.explain(domain, "team/app")
        assert isinstance(explanation, Explanation)
        assert (explanation.kind, explanation.flow) == (kind, flow)
        text = explanation.describe()
        assert fragment in text and flow in text
        if kind == "docker-config":
            assert explanation.path == str(path)
        assert_no_secret(text, json.dumps(explanation.as_dict()), repr(explanation))


def test_explain_reports_warnings(env: Env) -> None:
    _helper_config(env, "imginspect-fail")
    explanation = env.resolver().explain(HOST, "x")
    assert explanation.warnings and "exit status 3" in explanation.warnings[0]
    assert "warnings:" in explanation.describe()


def test_credential_repr_never_shows_secrets() -> None:
    credential = Credential(
        "alice", PASSWORD, identity_token=IDENTITY_TOKEN, registry_token=REGISTRY_TOKEN
    )
    assert_no_secret(repr(credential), str(credential))


# -------------------------------------------------------------- DOCKER_AUTH_CONFIG as docker

# docker/cli cli/config/configfile/file_test.go
ENV_TEST_USER_PASS_CONFIG = """{
	"auths": {
		"env.example.test": {
			"username": "env_user",
			"password": "env_pass",
			"serveraddress": "env.example.test"
		}
	}
}"""
ENV_TEST_AUTH_CONFIG = """{
	"auths": {
		"env.example.test": {
			"auth": "ZW52X3VzZXI6ZW52X3Bhc3M="
		}
	}
}"""
GOOD = b64(f"alice:{PASSWORD}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ENV_TEST_AUTH_CONFIG, {"env.example.test": "ZW52X3VzZXI6ZW52X3Bhc3M="}),
        ("", {}),
        (" \t\r\n", {}),  # io.EOF: docker accepts it
        ("null", {}),
        ('{"auths": null}', {}),
        ('{"auths": {}}', {}),
        ("{}", {}),
        # Go's encoding/json matches field names case-insensitively
        (f'{{"AUTHS": {{"h": {{"Auth": "{GOOD}"}}}}}}', {"h": GOOD}),
        (f'{{"auth\u017f": {{"h": {{"AUTH": "{GOOD}"}}}}}}', {"h": GOOD}),
        # repeated keys: the last one counts; a repeated "auths" adds to the map
        (f'{{"auths": {{"h": {{"auth": "%%%"}}, "h": {{"auth": "{GOOD}"}}}}}}', {"h": GOOD}),
        (
            f'{{"auths": {{"a": {{"auth": "{GOOD}"}}}}, "auths": {{"b": {{"auth": "{GOOD}"}}}}}}',
            {"a": GOOD, "b": GOOD},
        ),
        (f'{{"auths": {{"h": {{"auth": "{GOOD}", "auth": null}}}}}}', {"h": GOOD}),
        # Go's base64 decoder skips CR and LF
        (
            f'{{"auths": {{"h": {{"auth": "{GOOD[:4]}\\r\\n{GOOD[4:]}"}}}}}}',
            {"h": GOOD[:4] + "\r\n" + GOOD[4:]},
        ),
        # trailing space, and Go's Decoder.More() quirk: it stops at ']' and '}'
        (f'{{"auths": {{"h": {{"auth": "{GOOD}"}}}}}}  \n', {"h": GOOD}),
        (f'{{"auths": {{"h": {{"auth": "{GOOD}"}}}}}}}}', {"h": GOOD}),
    ],
)
def test_parse_docker_auth_config_accepts_what_docker_accepts(
    value: str, expected: dict[str, str]
) -> None:
    assert parse_docker_auth_config(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (ENV_TEST_USER_PASS_CONFIG, 'unknown field "username"'),
        ('{"auths":{"env.example.test":{"auth":"something"}}}{}', "more than one JSON value"),
        (f'{{"auths": {{"h": {{"auth": "{GOOD}"}}}}}} x', "more than one JSON value"),
        (
            f'{{"auths": {{"h": {{"auth": "{GOOD}"}}}}, "credHelpers": {{}}}}',
            'unknown field "credHelpers"',
        ),
        ('{"credsStore": "desktop"}', 'unknown field "credsStore"'),
        (
            f'{{"auths": {{"h": {{"identitytoken": "{IDENTITY_TOKEN}"}}}}}}',
            'unknown field "identitytoken" in auths["h"]',
        ),
        (
            f'{{"auths": {{"h": {{"auth": "{GOOD}", "registrytoken": "{REGISTRY_TOKEN}"}}}}}}',
            'unknown field "registrytoken"',
        ),
        ('{"auths": {"h": {}}}', 'missing the key `auth` for auths["h"]'),
        ('{"auths": {"h": {"auth": ""}}}', 'missing the key `auth` for auths["h"]'),
        ('{"auths": {"h": {"auth": null}}}', 'missing the key `auth` for auths["h"]'),
        ('{"auths": {"h": null}}', 'missing the key `auth` for auths["h"]'),
        ('{"auths": {"h": {"auth": 5}}}', 'auths["h"].auth that is not a string'),
        ('{"auths": {"h": "x"}}', 'auths["h"] that is not a JSON object'),
        ('{"auths": []}', '"auths" that is not a JSON object'),
        ("[]", "not a JSON object"),
        ("5", "not a JSON object"),
        ('"x"', "not a JSON object"),
        ("NaN", "not a JSON object"),
        ("{not json", "not valid JSON"),
        ('{"auths": {"h": {"auth": "%%%"}}}', "base64"),
        (f'{{"auths": {{"h": {{"auth": " {GOOD}"}}}}}}', "base64"),
        (f'{{"auths": {{"h": {{"auth": "{b64("nocolon")}"}}}}}}', "username:password"),
        (
            json.dumps(auths(ok={"auth": GOOD}, h={"auth": b64(":" + PASSWORD)})),
            "username:password",
        ),
    ],
)
def test_parse_docker_auth_config_rejects_what_docker_rejects(value: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_docker_auth_config(value)
    assert reason in str(caught.value)
    assert_no_secret(str(caught.value))


def test_docker_auth_config_with_an_unknown_field_is_ignored_entirely(env: Env) -> None:
    env.docker_config(auths(**{HOST: userpass("file")}))
    env.environ["DOCKER_AUTH_CONFIG"] = json.dumps(
        auths(**{HOST: userpass("env"), "other.example.com": {"username": "u", "password": "p"}})
    )
    resolver = env.resolver()
    credential = resolver.lookup(HOST, "x")
    assert credential is not None and credential.username == "file"
    assert len(env.warnings) == 1
    assert 'DOCKER_AUTH_CONFIG has an unknown field "username"' in env.warnings[0]
    assert "ignoring it" in env.warnings[0]
    explanation = resolver.explain(HOST, "y")
    assert "DOCKER_AUTH_CONFIG: unusable (see warnings)" in explanation.checked
    assert explanation.kind == "docker-config"


def test_docker_auth_config_entry_without_auth_sends_docker_to_its_helpers(env: Env) -> None:
    env.helper("imginspect-a", {HOST: ("helper", "helper-secret")})
    env.docker_config({"credsStore": "imginspect-a"})
    env.environ["DOCKER_AUTH_CONFIG"] = json.dumps(
        auths(**{HOST: userpass("env"), "other.example.com": {"identitytoken": IDENTITY_TOKEN}})
    )
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "helper"
    assert env.calls("imginspect-a") == [f"get {HOST}"]
    assert "identitytoken" in env.warnings[0]
    assert_no_secret(*env.warnings)


def test_docker_auth_config_with_cred_helpers_is_ignored_entirely(env: Env) -> None:
    env.docker_config(auths(**{HOST: userpass("file")}))
    env.environ["DOCKER_AUTH_CONFIG"] = json.dumps(
        {**auths(**{HOST: userpass("env")}), "credHelpers": {HOST: "imginspect-a"}}
    )
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "file"
    assert 'unknown field "credHelpers"' in env.warnings[0]


@pytest.mark.parametrize(
    ("key", "domain"),
    [
        (f"https://{HOST}/", HOST),
        (f"{HOST}/v2/", HOST),
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("https://index.docker.io/v1", "docker.io"),
    ],
)
def test_docker_auth_config_keys_are_exact(env: Env, key: str, domain: str) -> None:
    # docker's memory store looks up the exact key, with no ConvertToHostname fallback
    env.environ["DOCKER_AUTH_CONFIG"] = json.dumps(auths(**{key: userpass("env")}))
    resolver = env.resolver()
    assert resolver.lookup(domain, "library/x") is None
    assert env.warnings == []


@pytest.mark.parametrize("domain", ["docker.io", "index.docker.io"])
def test_docker_auth_config_docker_hub_key(env: Env, domain: str) -> None:
    env.environ["DOCKER_AUTH_CONFIG"] = json.dumps(
        auths(**{DOCKER_HUB_SERVER_URL: userpass("env")})
    )
    credential = env.resolver().lookup(domain, "library/ubuntu")
    assert credential is not None and credential.username == "env"
    assert credential.source == f'DOCKER_AUTH_CONFIG auths["{DOCKER_HUB_SERVER_URL}"]'


# ---------------------------------------------------------------------- credHelpers keys as docker


@pytest.mark.parametrize("alias", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_cred_helpers_hub_alias_is_not_used(env: Env, alias: str) -> None:
    # docker: credHelpers[getAuthConfigKey("docker.io")] = credHelpers["https://index.docker.io/v1/"]
    env.helper("imginspect-a", {DOCKER_HUB_SERVER_URL: ("alias", "alias-secret")})
    env.helper("imginspect-b", {DOCKER_HUB_SERVER_URL: ("store", "store-secret")})
    env.docker_config({"credHelpers": {alias: "imginspect-a"}, "credsStore": "imginspect-b"})
    credential = env.resolver().lookup("docker.io", "library/ubuntu")
    assert credential is not None and credential.username == "store"
    assert env.calls("imginspect-a") == []
    assert env.calls("imginspect-b") == [f"get {DOCKER_HUB_SERVER_URL}"]


def test_docker_cred_helpers_hub_alias_does_not_hide_auths(env: Env) -> None:
    env.helper("imginspect-a", {DOCKER_HUB_SERVER_URL: ("alias", "alias-secret")})
    env.docker_config(
        {
            "credHelpers": {"docker.io": "imginspect-a"},
            **auths(**{DOCKER_HUB_SERVER_URL: userpass()}),
        }
    )
    credential = env.resolver().lookup("docker.io", "library/ubuntu")
    assert credential is not None and credential.username == "alice"
    assert env.calls("imginspect-a") == []


@pytest.mark.parametrize("domain", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_cred_helpers_hub_key_is_the_v1_url(env: Env, domain: str) -> None:
    env.helper("imginspect-a", {DOCKER_HUB_SERVER_URL: ("hub", "hub-secret")})
    env.helper("imginspect-b", {DOCKER_HUB_SERVER_URL: ("store", "store-secret")})
    env.docker_config(
        {"credHelpers": {DOCKER_HUB_SERVER_URL: "imginspect-a"}, "credsStore": "imginspect-b"}
    )
    resolver = env.resolver()
    credential = resolver.lookup(domain, "library/ubuntu")
    assert credential is not None and credential.username == "hub"
    assert env.calls("imginspect-a") == [f"get {DOCKER_HUB_SERVER_URL}"]
    assert env.calls("imginspect-b") == []
    assert (
        resolver.explain(domain, "library/ubuntu").key == f'credHelpers["{DOCKER_HUB_SERVER_URL}"]'
    )


@pytest.mark.parametrize("key", [HOST.upper(), f"https://{HOST}", f"https://{HOST}/", f"{HOST}/"])
def test_docker_cred_helpers_keys_are_exact(env: Env, key: str) -> None:
    env.helper("imginspect-a", {HOST: ("alice", "secret")})
    env.docker_config({"credHelpers": {key: "imginspect-a"}, **auths(**{HOST: userpass("file")})})
    credential = env.resolver().lookup(HOST, "x")
    assert credential is not None and credential.username == "file"
    assert env.calls("imginspect-a") == []


@pytest.mark.parametrize("key", [DOCKER_HUB_SERVER_URL, "index.docker.io", "DOCKER.IO"])
def test_podman_cred_helpers_keys_are_exact(env: Env, key: str) -> None:
    # containers/image: credHelpers[registry], registry being "docker.io" for Docker Hub
    env.helper("imginspect-a", {"docker.io": ("alice", "secret")})
    env.runtime_auth({"credHelpers": {key: "imginspect-a"}})
    assert env.resolver().lookup("docker.io", "library/ubuntu") is None
    assert env.calls("imginspect-a") == []


# ---------------------------------------------------------------------- helpers and concurrency

GATE_HELPER = """#!/bin/sh
# Logs the call, then answers only once $IMGINSPECT_HELPER_DIR/release exists.
url=$(cat)
echo "get $url" >> "$IMGINSPECT_HELPER_DIR/gate.log"
while [ ! -e "$IMGINSPECT_HELPER_DIR/release" ]; do sleep 0.02; done
printf '{"ServerURL":"%s","Username":"gated","Secret":"gate-secret"}' "$url"
"""
OTHER = "other.example.com:5000"


def _install_gate_helper(env: Env) -> None:
    path = env.bin / "docker-credential-imginspect-gate"
    path.write_text(GATE_HELPER)
    path.chmod(0o755)


def _gate_calls(env: Env) -> list[str]:
    log = env.store / "gate.log"
    return log.read_text().splitlines() if log.exists() else []


def _wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    until = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > until:
            return False
        time.sleep(0.01)
    return True


class _Lookup(threading.Thread):
    """A lookup in its own thread, timing its own duration."""

    def __init__(self, resolver: CredentialResolver, domain: str, repository: str = "x") -> None:
        super().__init__(daemon=True)
        self.resolver, self.domain, self.repository = resolver, domain, repository
        self.result: Credential | None = None
        self.duration = -1.0

    def run(self) -> None:
        started = time.monotonic()
        self.result = self.resolver.lookup(self.domain, self.repository)
        self.duration = time.monotonic() - started


def test_slow_helper_for_one_registry_does_not_hold_up_another(env: Env) -> None:
    _install_gate_helper(env)
    env.helper("imginspect-b", {OTHER: ("bob", "b-secret")})
    env.docker_config({"credHelpers": {HOST: "imginspect-gate", OTHER: "imginspect-b"}})
    resolver = env.resolver(helper_timeout=60)
    slow = _Lookup(resolver, HOST)
    slow.start()
    try:
        assert _wait_for(lambda: _gate_calls(env) == [f"get {HOST}"])
        fast = _Lookup(resolver, OTHER)
        fast.start()
        fast.join(timeout=30)
        # B answered while A's helper was still running (it cannot answer before release)
        assert not fast.is_alive(), "the lookup for B waited for A's helper"
        assert slow.is_alive()
        assert fast.result is not None and fast.result.username == "bob"
        print(f"lookup B took {fast.duration:.3f} s while A's helper was running")
    finally:
        (env.store / "release").touch()
        slow.join(timeout=30)
    assert slow.result is not None and slow.result.username == "gated"
    assert env.calls("imginspect-b") == [f"get {OTHER}"]


def test_concurrent_lookups_for_one_registry_run_its_helper_once(env: Env) -> None:
    _install_gate_helper(env)
    env.docker_config({"credHelpers": {HOST: "imginspect-gate"}})
    resolver = env.resolver(helper_timeout=60)
    first = _Lookup(resolver, HOST, "a")
    first.start()
    try:
        assert _wait_for(lambda: len(_gate_calls(env)) == 1)
        others = [_Lookup(resolver, HOST, repo) for repo in ("b", "c/d")]
        for thread in others:
            thread.start()
        # give them time to (wrongly) start helpers of their own before the answer comes
        _wait_for(lambda: len(_gate_calls(env)) > 1, seconds=1.0)
        assert all(thread.is_alive() for thread in others)  # waiting for the answer
    finally:
        (env.store / "release").touch()
        for thread in (first, *others):
            thread.join(timeout=30)
    for thread in (first, *others):
        assert thread.result is not None and thread.result.username == "gated"
    assert _gate_calls(env) == [f"get {HOST}"]
    assert env.warnings == []


def test_helper_wait_bounded_by_the_reference_deadline(env: Env) -> None:
    _helper_config(env, "imginspect-hang")
    resolver = env.resolver(helper_timeout=120, time_left=lambda: 0.5)
    started = time.monotonic()
    assert resolver.lookup(HOST, "x") is None
    assert time.monotonic() - started < 60  # bounded by 0.5 s, not by helper_timeout
    assert len(env.warnings) == 1
    assert "did not answer in the 0.5 s left before the reference's deadline" in env.warnings[0]


def test_helper_timeout_when_it_is_the_smaller_bound(env: Env) -> None:
    _helper_config(env, "imginspect-hang")
    resolver = env.resolver(helper_timeout=0.5, time_left=lambda: 300.0)
    assert resolver.lookup(HOST, "x") is None
    assert "did not answer within 0.5 s" in env.warnings[0]


def test_no_time_left_starts_no_helper_and_caches_nothing(env: Env) -> None:
    env.helper("imginspect-a", {HOST: ("alice", "secret")})
    env.docker_config({"credHelpers": {HOST: "imginspect-a"}})
    left: list[float | None] = [0.0]
    resolver = env.resolver(time_left=lambda: left[0])
    assert resolver.lookup(HOST, "x") is None
    assert env.calls("imginspect-a") == []
    left[0] = None  # a later reference, with time
    credential = resolver.lookup(HOST, "y")
    assert credential is not None and credential.username == "alice"
    assert env.calls("imginspect-a") == [f"get {HOST}"]


def test_a_waiting_lookup_gives_up_at_its_own_deadline(env: Env) -> None:
    _install_gate_helper(env)
    env.docker_config({"credHelpers": {HOST: "imginspect-gate"}})
    per_thread = threading.local()
    resolver = env.resolver(helper_timeout=60, time_left=lambda: getattr(per_thread, "left", None))

    class Hurried(_Lookup):
        def run(self) -> None:
            per_thread.left = 0.3
            super().run()

    first = _Lookup(resolver, HOST, "a")
    first.start()
    try:
        assert _wait_for(lambda: len(_gate_calls(env)) == 1)
        hurried = Hurried(resolver, HOST, "b")
        hurried.start()
        hurried.join(timeout=30)
        assert not hurried.is_alive() and hurried.result is None
        assert first.is_alive()  # the helper is still running for the first lookup
        assert any("left before the reference's deadline" in w for w in env.warnings)
    finally:
        (env.store / "release").touch()
        first.join(timeout=30)
    assert first.result is not None and first.result.username == "gated"
    assert _gate_calls(env) == [f"get {HOST}"]
    # the answer, once there, serves later lookups without another run
    assert resolver.lookup(HOST, "c") is not None
    assert _gate_calls(env) == [f"get {HOST}"]


def test_helper_timeout_wins_a_tie_with_the_deadline(env: Env) -> None:
    _helper_config(env, "imginspect-hang")
    resolver = env.resolver(helper_timeout=0.5, time_left=lambda: 0.5)
    assert resolver.lookup(HOST, "x") is None
    assert "did not answer within 0.5 s;" in env.warnings[0]


def test_podman_helper_without_an_answer_goes_on_to_the_next_auth_file(env: Env) -> None:
    # containers/image: an empty answer from one file's helper moves on to the next file
    env.helper("imginspect-a", {})
    env.runtime_auth({"credHelpers": {"docker.io": "imginspect-a"}})
    env.config_auth(auths(**{"docker.io": userpass("xdg")}))
    resolver = env.resolver()
    credential = resolver.lookup("docker.io", "library/ubuntu")
    assert credential is not None and credential.username == "xdg"
    explanation = resolver.explain("docker.io", "library/ubuntu")
    assert explanation.kind == "auth-file" and explanation.username == "xdg"
    assert env.calls("imginspect-a") == ["get docker.io"]
