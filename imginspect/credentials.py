"""Finding the credential for a registry, as ``docker pull`` (and podman/skopeo) would.

One :class:`CredentialResolver` per run. Its :meth:`~CredentialResolver.lookup` is the
:class:`~imginspect.inspector.Inspector`'s credential provider; :meth:`~CredentialResolver.explain`
says where a credential comes from without ever showing it.

Order, first match wins:

1. ``anonymous=True``: nothing, whatever is stored.
2. An explicit username and password from the caller (``--username`` + ``--password-stdin``),
   for the registries they were given for.
3. With an explicit ``authfile`` (``--authfile``): that file only (podman's ``auth.json``
   rules, below). Otherwise:

   a. ``DOCKER_AUTH_CONFIG``, as recent docker (docker/cli ``parseEnvConfig``): exactly
      ``{"auths": {KEY: {"auth": BASE64}}}``, looked up by the exact key (Docker Hub:
      ``https://index.docker.io/v1/``). Anything else in it -- an unknown field such as
      ``username`` or ``credHelpers``, an entry without ``auth``, an ``auth`` that is not
      base64 ``user:password``, a second JSON value -- makes docker ignore the whole
      variable, and so it is here (with a warning): the lookup goes on with b. and c.;
   b. Docker's ``config.json`` (``config_dir``/``--config``, else ``$DOCKER_CONFIG``, else
      ``~/.docker``): ``credHelpers[KEY]``, else ``credsStore``, else ``auths`` -- one
      store per registry exactly as docker picks it (when a helper is configured for the
      registry, ``auths`` of that file is not consulted: docker ignores it too). The
      ``credHelpers`` key is matched exactly, as docker does: Docker Hub's is
      ``https://index.docker.io/v1/`` (a ``credHelpers["docker.io"]`` entry is not used for
      Docker Hub images; docker ignores it too);
   c. podman/containers ``auth.json``: ``$REGISTRY_AUTH_FILE`` if set, else
      ``$XDG_RUNTIME_DIR/containers/auth.json`` (``/run/containers/UID/auth.json`` without
      it) and ``$XDG_CONFIG_HOME/containers/auth.json`` (``~/.config``).

Keys: ``auths`` of docker files match the registry exactly (Docker Hub:
``https://index.docker.io/v1/``), then any key whose host (docker's ``ConvertToHostname``:
scheme and path dropped) is the registry's; for Docker Hub, keys whose host is
``docker.io``, ``index.docker.io`` or ``registry-1.docker.io`` serve too (an extension:
docker reads only its v1 URL). ``auth.json`` files look up ``credHelpers[registry]`` exactly
(Docker Hub: ``docker.io``), then first try namespaced keys, most specific first
(``host/ns/repo``, ``host/ns``, ``host``), then normalized host keys (containers/image
rules).

Entries: ``auth`` (base64 ``user:password``, split on the first ``:``), ``username`` /
``password``, ``identitytoken`` (an OAuth2 refresh token), ``registrytoken`` (a bearer token
sent as is). Credential helpers (``docker-credential-NAME get``, server URL on stdin) answer
``{"ServerURL","Username","Secret"}``; a ``<token>`` user name means the secret is an identity
token. A helper that is missing, fails or does not answer within ``helper_timeout`` seconds
-- or within the time left before the reference's deadline, when ``time_left`` says that is
less -- is reported through ``warn`` and the lookup goes on without a credential (anonymous
access to public images keeps working).

Concurrency: lookups from many threads (a batch's workers) run in parallel. No lock is held
while a helper runs: a helper runs at most once per (helper, server URL) and run; concurrent
lookups needing the same one wait for its answer (each no longer than its own bound), while
lookups for other registries go on. A lookup whose reference has no time left starts no
helper.

Broken files: one the caller named (``config_dir``, ``authfile``) is a :class:`ConfigError`
(exit code 2); one found in a default place (or ``DOCKER_AUTH_CONFIG``) only warns and is
skipped, as docker's CLI warns about a broken ``config.json`` and goes on.

Files are read lazily, once; a helper runs at most once per (helper, server URL). No secret
ever goes into a message, an explanation or a ``Credential.source``. Standard library only
(no httpx): cheap to import.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from imginspect._record import Record, record
from imginspect.auth import Credential
from imginspect.errors import ConfigError, UsageError
from imginspect.files import home, os_reason, read_bounded
from imginspect.reference import DOCKER_HUB_HOSTS as HUB_HOSTS

if TYPE_CHECKING:
    import subprocess

#: The server address docker uses for Docker Hub (config key and helper input).
DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
#: podman's (containers/image) name for Docker Hub in auth.json and for helpers.
CONTAINERS_HUB_REGISTRY = "docker.io"
HELPER_PREFIX = "docker-credential-"
#: A helper answering this user name means the secret is an identity token.
TOKEN_USERNAME = "<token>"
#: What docker-credential-helpers print when they have nothing for the server.
HELPER_NOT_FOUND = "credentials not found in native keychain"
DEFAULT_HELPER_TIMEOUT = 5.0
#: config.json / auth.json are small documents; refuse to read anything absurd.
MAX_CONFIG_FILE = 16 * 1024 * 1024
MAX_HELPER_OUTPUT = 1024 * 1024

#: Token flows, as :attr:`Explanation.flow` names them.
FLOW_BASIC = "basic"
FLOW_IDENTITY_TOKEN = "identity token"
FLOW_REGISTRY_TOKEN = "registry token"
FLOW_ANONYMOUS = "anonymous"

_FLOW_TEXT = {
    FLOW_BASIC: "username and password: HTTP Basic if the registry asks for Basic, otherwise "
    "sent (Basic) to the token realm the registry's challenge names, for a bearer token",
    FLOW_IDENTITY_TOKEN: "identity token (OAuth2 refresh token): exchanged at the token realm "
    "(POST grant_type=refresh_token) for a bearer token",
    FLOW_REGISTRY_TOKEN: "registry token: sent to the registry as a bearer token, as is",
    FLOW_ANONYMOUS: "no credential: anonymous requests (and anonymous bearer tokens where the "
    "registry asks for them)",
}

Warn = Callable[[str], None]
#: Seconds left before the current reference's deadline, or None without one.
TimeLeft = Callable[[], float | None]


def _warn_to_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------- key normalization


def is_docker_hub(domain: str) -> bool:
    """Whether ``domain`` names Docker Hub (``docker.io``, ``index.docker.io``, ...)."""
    return domain.lower() in HUB_HOSTS


def server_url_for(domain: str) -> str:
    """What docker stores a registry's credential under, and gives credential helpers:
    ``https://index.docker.io/v1/`` for Docker Hub, ``host[:port]`` for the others."""
    return DOCKER_HUB_SERVER_URL if is_docker_hub(domain) else domain


def convert_to_hostname(key: str) -> str:
    """Docker's ``ConvertToHostname``: a config key (``https://host:5000/v1/``) as ``host:5000``.

    With ``://``, the URL's host and port; otherwise everything before the first ``/``.
    """
    if "://" in key:
        try:
            netloc = urlsplit(key).netloc
        except ValueError:
            netloc = ""
        host, port = _split_host_port(netloc.rpartition("@")[2])
        if host:
            if not port:
                return host
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return key.partition("/")[0]


def normalize_registry(registry: str) -> str:
    """containers/image's ``normalizeRegistry``: Docker Hub's names as ``index.docker.io``."""
    lowered = registry.lower()
    return "index.docker.io" if lowered in HUB_HOSTS else lowered


def normalize_auth_file_key(key: str) -> str:
    """containers/image's ``normalizeAuthFileKey``: a URL key as its host; others as is."""
    stripped = key
    for prefix in ("http://", "https://"):
        if stripped.startswith(prefix):
            stripped = stripped[len(prefix) :]
            break
    if stripped != key:
        stripped = stripped.partition("/")[0]
    return normalize_registry(stripped)


def namespaced_keys(registry: str, repository: str) -> list[str]:
    """``auth.json`` keys for a repository, most specific first: ``host/a/b``, ``host/a``,
    ``host``."""
    keys = []
    key = f"{registry}/{repository}" if repository else registry
    while True:
        keys.append(key)
        parent, slash, _ = key.rpartition("/")
        if not slash:
            return keys
        key = parent


def _split_host_port(netloc: str) -> tuple[str, str]:
    """Go's ``url.URL.Hostname``/``Port`` split (brackets removed from IPv6 hosts)."""
    host, port = netloc, ""
    colon = host.rfind(":")
    port_text = host[colon + 1 :]
    if colon != -1 and port_text.isascii() and port_text.isdigit() and host.rfind("]") < colon:
        host, port = host[:colon], host[colon + 1 :]
    elif colon != -1 and colon == len(host) - 1:
        host = host[:colon]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def password_from_stdin(data: str) -> str:
    """A password read with ``--password-stdin``: one trailing newline (``\\n`` or ``\\r\\n``)
    removed, as ``docker login --password-stdin`` does. Raises :class:`UsageError` if empty."""
    password = data[:-1] if data.endswith("\n") else data
    password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise UsageError("no password on standard input", hint="echo PASSWORD | imginspect ...")
    return password


# ---------------------------------------------------------------------- explanation


@record
class Explanation(Record):
    """Which credential source applies to a repository and how it is used. Never a secret."""

    domain: str
    repository: str
    #: what docker would look up: ``https://index.docker.io/v1/`` or ``host[:port]``
    server_url: str
    #: ``anonymous`` (forced), ``explicit``, ``env``, ``docker-config``, ``credential-helper``,
    #: ``auth-file`` or ``none``
    kind: str
    #: ``basic``, ``identity token``, ``registry token`` or ``anonymous``
    flow: str
    #: :attr:`Credential.source` of the credential used ("" when none)
    source: str = ""
    username: str = ""
    #: ``docker-credential-NAME`` when a helper answered (or was asked)
    helper: str = ""
    #: the file the credential (or the helper's configuration) came from
    path: str = ""
    #: the key matched in that file (``auths`` key, ``credHelpers`` key or ``credsStore``)
    key: str = ""
    #: the environment variable the credential came from (``DOCKER_AUTH_CONFIG``)
    env_var: str = ""
    #: every place looked at, in order, with what was found there
    checked: tuple[str, ...] = ()
    #: warnings raised while looking (failing helpers, broken files)
    warnings: tuple[str, ...] = ()

    @property
    def has_credential(self) -> bool:
        return self.flow != FLOW_ANONYMOUS

    def describe(self) -> str:
        """A few lines for humans (``imginspect auth REFERENCE``)."""
        lines = [
            f"registry:   {self.domain}",
            f"repository: {self.repository}",
            f"key:        {self.server_url}",
        ]
        if self.has_credential:
            who = f'user "{self.username}"' if self.username else "a token"
            lines.append(f"credential: {who}, from {self.source}")
        elif self.kind == "anonymous":
            lines.append("credential: none (anonymous requested; stored credentials ignored)")
        else:
            lines.append("credential: none found")
        lines.append(f"flow:       {self.flow}: {_FLOW_TEXT[self.flow]}")
        if self.checked:
            lines.append("checked:")
            lines.extend(f"  {line}" for line in self.checked)
        if self.warnings:
            lines.append("warnings:")
            lines.extend(f"  {line}" for line in self.warnings)
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        """The explanation as JSON-ready data (no secrets in it either)."""
        return {
            "registry": self.domain,
            "repository": self.repository,
            "key": self.server_url,
            "kind": self.kind,
            "flow": self.flow,
            "source": self.source,
            "username": self.username,
            "helper": self.helper,
            "path": self.path,
            "fileKey": self.key,
            "envVar": self.env_var,
            "checked": list(self.checked),
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------- files


@record
class _Location(Record):
    """A place credentials may be stored."""

    label: str  # a path, or "DOCKER_AUTH_CONFIG"
    path: Path | None  # None for the environment variable
    docker_format: bool  # docker config.json rules (else containers auth.json rules)
    explicit: bool  # named by the caller: problems are errors, not warnings
    kind: str  # "env", "docker-config" or "auth-file"


@record
class _File(Record):
    """One docker config file as read: its auths, credential helpers and store."""

    location: _Location
    auths: dict[str, dict[str, Any]]
    cred_helpers: dict[str, str]
    creds_store: str


@record
class _Found(Record):
    """A credential and where it came from (kind, helper, file, key or variable)."""

    credential: Credential
    kind: str
    helper: str = ""
    path: str = ""
    key: str = ""
    env_var: str = ""


_ENTRY_FIELDS = ("auth", "username", "password", "identitytoken", "registrytoken")


class CredentialResolver:
    """Resolves the credential for (registry domain, repository); see the module docstring.

    ``username``/``password`` are an explicit credential (both or neither), used for
    ``explicit_domains`` (None: every registry). ``environ`` replaces ``os.environ`` for
    every variable read here and for the helpers' environment. ``warn`` receives one-line
    warnings (no ``warning:`` prefix); by default they go to stderr; it may be called from
    any thread. ``time_left`` (e.g. :func:`imginspect.transport.remaining_time`, passed in so
    that this module stays free of httpx) gives the seconds left before the calling
    reference's deadline, or None; a helper's wait is bounded by the lesser of it and
    ``helper_timeout``.
    """

    def __init__(
        self,
        *,
        config_dir: str | os.PathLike[str] | None = None,
        authfile: str | os.PathLike[str] | None = None,
        username: str | None = None,
        password: str | None = None,
        explicit_domains: Collection[str] | None = None,
        explicit_source: str = "explicit username and password",
        anonymous: bool = False,
        environ: Mapping[str, str] | None = None,
        warn: Warn | None = None,
        helper_timeout: float = DEFAULT_HELPER_TIMEOUT,
        time_left: TimeLeft | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise UsageError(
                "a username needs a password and a password a username",
                hint="use --username NAME with --password-stdin",
            )
        if username is not None and not username:
            raise UsageError("the username is empty")
        if anonymous and username is not None:
            raise UsageError("--anonymous cannot be combined with --username")
        if config_dir is not None and authfile is not None:
            raise UsageError(
                "--config and --authfile cannot be combined",
                hint="--authfile makes that file the only source of stored credentials",
            )
        self._explicit = (
            Credential(username, password or "", source=explicit_source)
            if username is not None
            else None
        )
        self._explicit_domains = (
            None
            if explicit_domains is None
            else frozenset(_canonical_domain(d) for d in explicit_domains)
        )
        self._anonymous = anonymous
        self._config_dir = Path(config_dir) if config_dir is not None else None
        self._authfile = Path(authfile) if authfile is not None else None
        self._environ = dict(os.environ if environ is None else environ)
        self._helper_env = None if environ is None else dict(environ)
        self._warn_callback = warn or _warn_to_stderr
        self._helper_timeout = helper_timeout
        self._time_left = time_left
        # Guards the dicts below and file loading; never held while a helper runs.
        self._lock = threading.RLock()
        self._files: dict[_Location, _File | None] = {}
        self._helpers: dict[tuple[str, str], _HelperCall] = {}
        self._results: dict[tuple[str, str], _Found | None] = {}
        self._warned: list[str] = []
        self._local = threading.local()  # .collect: the warnings list of an explain() call
        self._location_list: list[_Location] | None = None
        self._absent_reasons: dict[_Location, str] = {}

    # ------------------------------------------------------------------ public API

    def lookup(self, domain: str, repository: str) -> Credential | None:
        """The credential for ``repository`` of registry ``domain``; None means anonymous.

        Usable as the Inspector's credential provider. Cached per (domain, repository).
        """
        key = (domain, repository)
        with self._lock:
            cached = key in self._results
            found = self._results.get(key)
        if not cached:
            # Resolved without the lock: a slow helper for one registry must not hold up
            # lookups for others (helpers are deduplicated per (helper, server URL) instead).
            resolved = self._resolve(domain, repository, [])
            with self._lock:
                found = self._results.setdefault(key, resolved)
        return found.credential if found is not None else None

    __call__ = lookup

    def explain(self, domain: str, repository: str) -> Explanation:
        """Which source :meth:`lookup` uses for ``repository`` of ``domain``, and how."""
        checked: list[str] = []
        collected: list[str] = []
        self._local.collect = collected
        try:
            found = self._resolve(domain, repository, checked)
        finally:
            self._local.collect = None
        with self._lock:
            self._results.setdefault((domain, repository), found)
        warnings = tuple(collected)
        server_url = server_url_for(domain)
        if found is None:
            return Explanation(
                domain=domain,
                repository=repository,
                server_url=server_url,
                kind="anonymous" if self._anonymous else "none",
                flow=FLOW_ANONYMOUS,
                checked=tuple(checked),
                warnings=warnings,
            )
        credential = found.credential
        return Explanation(
            domain=domain,
            repository=repository,
            server_url=server_url,
            kind=found.kind,
            flow=flow_of(credential),
            source=credential.source,
            username=credential.username,
            helper=found.helper,
            path=found.path,
            key=found.key,
            env_var=found.env_var,
            checked=tuple(checked),
            warnings=warnings,
        )

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every warning given so far, in order."""
        with self._lock:
            return tuple(self._warned)

    def locations(self) -> tuple[str, ...]:
        """The stored-credential locations consulted, in order (paths or variable names)."""
        return tuple(location.label for location in self._locations())

    # ------------------------------------------------------------------ resolution

    def _resolve(self, domain: str, repository: str, checked: list[str]) -> _Found | None:
        if self._anonymous:
            checked.append("anonymous requested: stored credentials are not consulted")
            return None
        if self._explicit is not None:
            if self._explicit_domains is None or _canonical_domain(domain) in (
                self._explicit_domains
            ):
                checked.append(f"{self._explicit.source}: used")
                return _Found(self._explicit, "explicit")
            checked.append(f"{self._explicit.source}: given for another registry")
        if self._authfile is None:
            env_value = self._environ.get("DOCKER_AUTH_CONFIG", "")
            if not env_value:
                checked.append("DOCKER_AUTH_CONFIG: not set")
        for location in self._locations():
            file = self._load(location)
            if file is None:
                checked.append(f"{location.label}: {self._absent_reason(location)}")
                continue
            found = (
                self._from_docker_file(file, domain, checked)
                if location.docker_format
                else self._from_auth_file(file, domain, repository, checked)
            )
            if found is not None:
                return found
        return None

    def _locations(self) -> list[_Location]:
        # Computed once: a batch looks up every repository, and the environment is fixed.
        if self._location_list is None:
            self._location_list = self._find_locations()
        return self._location_list

    def _find_locations(self) -> list[_Location]:
        env = self._environ
        if self._authfile is not None:
            return [
                _Location(str(self._authfile), self._authfile, False, True, "auth-file"),
            ]
        locations: list[_Location] = []
        if env.get("DOCKER_AUTH_CONFIG"):
            locations.append(_Location("DOCKER_AUTH_CONFIG", None, True, False, "env"))
        if self._config_dir is not None:
            locations.append(
                _Location(
                    str(self._config_dir / "config.json"),
                    self._config_dir / "config.json",
                    True,
                    True,
                    "docker-config",
                )
            )
        else:
            docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else None
            if docker_dir is None:
                docker_dir = home(env) / ".docker"
            path = docker_dir / "config.json"
            locations.append(_Location(str(path), path, True, False, "docker-config"))
        auth_files: list[Path] = []
        if env.get("REGISTRY_AUTH_FILE"):
            auth_files.append(Path(env["REGISTRY_AUTH_FILE"]))
        else:
            runtime_dir = env.get("XDG_RUNTIME_DIR")
            if runtime_dir:
                auth_files.append(Path(runtime_dir) / "containers" / "auth.json")
            else:
                auth_files.append(Path(f"/run/containers/{_uid()}/auth.json"))
            config_home = env.get("XDG_CONFIG_HOME") or str(home(env) / ".config")
            auth_files.append(Path(config_home) / "containers" / "auth.json")
        for path in auth_files:
            locations.append(_Location(str(path), path, False, False, "auth-file"))
        return locations

    def _absent_reason(self, location: _Location) -> str:
        # Once per location, like the load it explains (a stat per repository otherwise).
        reason = self._absent_reasons.get(location)
        if reason is None:
            if location.path is not None and not location.path.exists():
                reason = "no such file"
            else:
                reason = "unusable (see warnings)"
            self._absent_reasons[location] = reason
        return reason

    # ------------------------------------------------------------------ docker config.json

    def _from_docker_file(self, file: _File, domain: str, checked: list[str]) -> _Found | None:
        label = file.location.label
        server_url = server_url_for(domain)
        from_env = file.location.kind == "env"
        if from_env:
            # docker's memory store: the exact key only (no ConvertToHostname fallback)
            key: str | None = server_url if server_url in file.auths else None
        else:
            # docker's getConfiguredCredentialStore: credHelpers[exact key], else credsStore.
            # The key is the server URL (Docker Hub: https://index.docker.io/v1/, never
            # "docker.io").
            helper, via = "", ""
            if server_url in file.cred_helpers:
                helper, via = file.cred_helpers[server_url], f'credHelpers["{server_url}"]'
            elif file.creds_store:
                helper, via = file.creds_store, "credsStore"
            if helper:
                program = HELPER_PREFIX + helper
                origin = f"{via} in {label}"
                credential, status = self._helper(helper, server_url, origin)
                checked.append(f"{label}: {via} -> {program} get {server_url}: {status}")
                if credential is None:
                    return None  # docker uses that one store for the registry, nothing else
                return _Found(credential, "credential-helper", program, label, via)
            key = _find_docker_entry(file.auths, domain)
        if key is None:
            checked.append(f'{label}: no auths entry for "{server_url}"')
            return None
        found = self._entry_credential(file, key)
        if found is None:
            checked.append(f'{label}: auths["{key}"] holds no usable credential')
            return None
        checked.append(f'{label}: auths["{key}"] -> used ({flow_of(found)})')
        if from_env:
            return _Found(found, "env", key=key, env_var="DOCKER_AUTH_CONFIG")
        return _Found(found, "docker-config", path=label, key=key)

    # ------------------------------------------------------------------ containers auth.json

    def _from_auth_file(
        self, file: _File, domain: str, repository: str, checked: list[str]
    ) -> _Found | None:
        label = file.location.label
        registry = CONTAINERS_HUB_REGISTRY if is_docker_hub(domain) else domain
        # containers/image: credHelpers[registry], exact (Docker Hub: "docker.io")
        if registry in file.cred_helpers:
            helper = file.cred_helpers[registry]
            program = HELPER_PREFIX + helper
            via = f'credHelpers["{registry}"]'
            credential, status = self._helper(helper, registry, f"{via} in {label}")
            checked.append(f"{label}: {via} -> {program} get {registry}: {status}")
            if credential is None:
                return None
            return _Found(credential, "credential-helper", program, label, via)
        key = _find_auth_file_entry(file.auths, registry, repository)
        if key is None:
            checked.append(f'{label}: no auths entry for "{registry}/{repository}"')
            return None
        credential = self._entry_credential(file, key)
        if credential is None:
            checked.append(f'{label}: auths["{key}"] holds no usable credential')
            return None
        checked.append(f'{label}: auths["{key}"] -> used ({flow_of(credential)})')
        return _Found(credential, "auth-file", path=label, key=key)

    # ------------------------------------------------------------------ entries

    def _entry_credential(self, file: _File, key: str) -> Credential | None:
        """The credential of ``auths[key]``; None (after a warning) if it is malformed in a
        file found by default; :class:`ConfigError` in a file the caller named."""
        entry = file.auths[key]
        label = file.location.label
        where = f'{label} auths["{key}"]'
        username = _str_field(entry, "username")
        password = _str_field(entry, "password")
        auth = _str_field(entry, "auth")
        if auth:
            try:
                username, password = decode_auth(auth)
            except ValueError as exc:
                self._problem(file.location, f"{where}: {exc}")
                return None
        identity_token = _str_field(entry, "identitytoken")
        registry_token = _str_field(entry, "registrytoken")
        if not (registry_token or identity_token or (username and password)):
            return None
        return Credential(
            username=username,
            password=password,
            identity_token=identity_token,
            registry_token=registry_token,
            source=where,  # 'PATH auths["KEY"]' or 'DOCKER_AUTH_CONFIG auths["KEY"]'
        )

    # ------------------------------------------------------------------ loading files

    def _load(self, location: _Location) -> _File | None:
        with self._lock:  # small bounded files: read once, by whichever lookup comes first
            if location not in self._files:
                self._files[location] = self._read(location)
            return self._files[location]

    def _read(self, location: _Location) -> _File | None:
        if location.path is None:
            try:
                entries = parse_docker_auth_config(self._environ.get("DOCKER_AUTH_CONFIG", ""))
            except ValueError as exc:
                self._problem(location, f"DOCKER_AUTH_CONFIG {exc}")
                return None
            return _File(location, {k: {"auth": v} for k, v in entries.items()}, {}, "")
        if location.explicit and location.kind == "docker-config":
            directory = location.path.parent
            if not directory.is_dir():
                raise ConfigError(f"docker config directory {directory} does not exist")
        try:
            raw = read_bounded(location.path, MAX_CONFIG_FILE)
        except FileNotFoundError:
            if location.explicit and location.kind == "auth-file":
                raise ConfigError(f"auth file {location.path} does not exist") from None
            return None
        except IsADirectoryError:
            self._problem(location, f"{location.label} is a directory, not a file")
            return None
        except OSError as exc:
            self._problem(location, f"cannot read {location.label}: {os_reason(exc)}")
            return None
        what = location.label
        try:
            document = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError) as exc:
            # the message names a position, never the content (which may hold secrets)
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "invalid"
            self._problem(location, f"{what} is not valid JSON ({reason})")
            return None
        if not isinstance(document, dict):
            self._problem(location, f"{what} is not a JSON object")
            return None
        auths = document.get("auths", {})
        helpers = document.get("credHelpers", {})
        store = document.get("credsStore", "")
        if auths is None:
            auths = {}
        if helpers is None:
            helpers = {}
        if not isinstance(auths, dict) or not all(isinstance(v, dict) for v in auths.values()):
            self._problem(location, f"{what}: auths must be an object of objects")
            return None
        if not isinstance(helpers, dict) or not all(isinstance(v, str) for v in helpers.values()):
            self._problem(location, f"{what}: credHelpers must map registries to helper names")
            return None
        if not isinstance(store, str):
            self._problem(location, f"{what}: credsStore must be a string")
            return None
        for key, entry in auths.items():
            for field in _ENTRY_FIELDS:
                if field in entry and not isinstance(entry[field], (str, type(None))):
                    self._problem(location, f'{what}: auths["{key}"].{field} must be a string')
                    return None
        return _File(location, auths, helpers, store)

    def _problem(self, location: _Location, message: str) -> None:
        if location.explicit:
            raise ConfigError(message)
        self._warn(f"{message}; ignoring it")

    def _warn(self, message: str) -> None:
        with self._lock:
            self._warned.append(message)
        collect: list[str] | None = getattr(self._local, "collect", None)
        if collect is not None:
            collect.append(message)
        self._warn_callback(message)

    # ------------------------------------------------------------------ credential helpers

    def _helper_bound(self) -> tuple[float, bool]:
        """How long a helper may take now: (seconds, whether the reference's deadline is
        what limits it rather than ``helper_timeout``)."""
        left = self._time_left() if self._time_left is not None else None
        if left is None or left >= self._helper_timeout:
            return self._helper_timeout, False
        return max(left, 0.0), True

    def _helper(self, helper: str, server_url: str, origin: str) -> tuple[Credential | None, str]:
        """Run ``docker-credential-<helper> get`` at most once per (helper, server URL).

        No lock is held while it runs: the first lookup for a key runs the helper, concurrent
        lookups for the same key wait for its answer (each within its own deadline), lookups
        for other keys go on. A lookup whose reference has no time left starts nothing.
        """
        key = (helper, server_url)
        bound, by_deadline = self._helper_bound()
        with self._lock:
            call = self._helpers.get(key)
            owner = call is None and bound > 0
            if owner:
                call = self._helpers[key] = _HelperCall()
        if call is None:
            return None, "not run: no time left before the reference's deadline"
        if owner:
            try:
                call.result = self._run_helper(helper, server_url, origin, bound, by_deadline)
            finally:
                call.done.set()
            return call.result
        if not call.done.wait(bound):
            self._warn(
                f"credential helper {HELPER_PREFIX + helper} did not answer "
                f"{_within(bound, by_deadline)}; continuing without credentials for {server_url}"
            )
            return None, "timed out"
        return call.result

    def _run_helper(
        self, helper: str, server_url: str, origin: str, timeout: float, by_deadline: bool
    ) -> tuple[Credential | None, str]:
        program = HELPER_PREFIX + helper
        anonymous = f"continuing without credentials for {server_url}"
        if not helper or "/" in helper or "\\" in helper or helper in (".", ".."):
            self._warn(f"invalid credential helper name {helper!r} ({origin}); {anonymous}")
            return None, "invalid helper name"
        # Only when a helper is configured (most runs have none): not imported at start-up.
        import shutil
        import subprocess

        executable = shutil.which(program, path=self._environ.get("PATH", os.defpath))
        if executable is None:
            self._warn(f"credential helper {program} not found in PATH ({origin}); {anonymous}")
            return None, "helper not found in PATH"
        try:
            process = subprocess.Popen(
                [executable, "get"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._helper_env,
                close_fds=True,
                bufsize=0,
            )
        except OSError as exc:
            self._warn(f"cannot run credential helper {program}: {os_reason(exc)}; {anonymous}")
            return None, "could not be run"
        try:
            output = _communicate_bounded(process, server_url.encode(), timeout, MAX_HELPER_OUTPUT)
        except subprocess.TimeoutExpired:
            self._warn(
                f"credential helper {program} did not answer {_within(timeout, by_deadline)}; "
                f"{anonymous}"
            )
            return None, "timed out"
        if output is None:
            self._warn(
                f"credential helper {program} answered more than "
                f"{MAX_HELPER_OUTPUT // (1024 * 1024)} MiB; {anonymous}"
            )
            return None, "unusable answer"
        out, err = output
        stdout = out.decode("utf-8", "replace").strip()
        stderr = err.decode("utf-8", "replace").strip()
        if HELPER_NOT_FOUND in (stdout, stderr):
            return None, "no credentials stored"
        if process.returncode != 0:
            detail = _helper_message(stderr) or _helper_message(stdout)
            self._warn(
                f"credential helper {program} failed (exit status {process.returncode})"
                f"{': ' + detail if detail else ''}; {anonymous}"
            )
            return None, f"failed (exit status {process.returncode})"
        try:
            answer = json.loads(stdout)
        except (ValueError, RecursionError):
            answer = None
        if not isinstance(answer, dict):
            self._warn(f"credential helper {program} did not answer a JSON object; {anonymous}")
            return None, "unusable answer"
        username, secret = answer.get("Username"), answer.get("Secret")
        if not isinstance(username, str) or not isinstance(secret, str):
            self._warn(f"credential helper {program} answered no Username/Secret; {anonymous}")
            return None, "unusable answer"
        if not secret:
            return None, "empty secret"
        source = f"credential helper {program} ({origin})"
        if username == TOKEN_USERNAME:
            return Credential(identity_token=secret, source=source), "identity token"
        if not username:
            self._warn(f"credential helper {program} answered an empty Username; {anonymous}")
            return None, "unusable answer"
        return Credential(username=username, password=secret, source=source), f'user "{username}"'


# ---------------------------------------------------------------------- helpers


class _HelperCall:
    """One run of a credential helper, shared by every lookup that needs its answer."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: tuple[Credential | None, str] = (None, "did not complete")


def _communicate_bounded(
    process: subprocess.Popen[bytes], data: bytes, timeout: float, limit: int
) -> tuple[bytes, bytes] | None:
    """``process.communicate(data, timeout)``, keeping at most ``limit`` bytes per stream.

    communicate() keeps everything a helper writes: a 64 MiB answer took 130 MB of memory,
    and one that writes without end grew until the timeout. Here a stream past ``limit``
    ends the helper at once (killed): None. At the timeout it is killed too and
    ``TimeoutExpired`` raised. Reader threads, as communicate() uses on Windows.
    """
    import contextlib
    import subprocess
    import time

    deadline = time.monotonic() + timeout
    changed = threading.Event()
    over = threading.Event()
    streams = [process.stdout, process.stderr]
    chunks: list[list[bytes]] = [[], []]
    finished = [threading.Event(), threading.Event()]

    def read(index: int) -> None:
        stream, size = streams[index], 0
        try:
            while stream is not None and size <= limit:
                chunk = stream.read(65536)
                if not chunk:
                    break
                chunks[index].append(chunk)
                size += len(chunk)
            if size > limit:
                over.set()
        except (OSError, ValueError):
            pass
        finally:
            finished[index].set()
            changed.set()

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in (0, 1)]
    for reader in readers:
        reader.start()
    if process.stdin is not None:
        # A server URL: far less than a pipe's buffer, so this does not block. OSError: the
        # helper exited or closed its input; its exit status tells.
        with contextlib.suppress(OSError):
            process.stdin.write(data)
        with contextlib.suppress(OSError):
            process.stdin.close()
    timed_out = False
    while not over.is_set() and not all(event.is_set() for event in finished):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        changed.wait(remaining)
        changed.clear()
    if not timed_out and not over.is_set():
        try:
            process.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out or over.is_set():
        process.kill()
        process.wait()
        for index, reader in enumerate(readers):
            # a reader still blocked (a child of the helper keeps the pipe open) keeps its
            # stream: closing a file another thread reads could hand its number to another
            reader.join(0.5)
            stream = streams[index]
            if not reader.is_alive() and stream is not None:
                stream.close()
        if timed_out:
            raise subprocess.TimeoutExpired(process.args, timeout)
        return None
    for stream in streams:
        if stream is not None:
            stream.close()
    return b"".join(chunks[0]), b"".join(chunks[1])


def _within(seconds: float, by_deadline: bool) -> str:
    if by_deadline:
        return f"in the {seconds:.2g} s left before the reference's deadline (--timeout)"
    return f"within {seconds:g} s"


def flow_of(credential: Credential | None) -> str:
    """How a credential is used, as :attr:`Explanation.flow` names it (auth.py's order)."""
    if credential is None:
        return FLOW_ANONYMOUS
    if credential.registry_token:
        return FLOW_REGISTRY_TOKEN
    if credential.identity_token:
        return FLOW_IDENTITY_TOKEN
    if credential.has_password:
        return FLOW_BASIC
    return FLOW_ANONYMOUS


class _JSONObject(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, in order, duplicates kept (as Go sees it)."""


_GO_JSON_SPACE = " \t\r\n"


def _go_field(key: str, name: str) -> bool:
    """Whether a JSON key fills Go struct field ``name``: encoding/json matches field names
    case-insensitively, with Unicode simple folding (U+017F is ``s``, U+212A is ``k``)."""
    return key == name or key.casefold() == name


def parse_docker_auth_config(value: str) -> dict[str, str]:
    """docker/cli's ``parseEnvConfig``: ``DOCKER_AUTH_CONFIG`` as ``{server address: auth}``.

    Recent docker accepts exactly ``{"auths": {ADDRESS: {"auth": BASE64}}}``: an unknown field
    anywhere (``username``, ``identitytoken``, ``credHelpers``...), a value of the wrong type,
    an entry whose ``auth`` is missing or empty, an ``auth`` that does not decode to
    ``user:password``, or a second JSON value after the first makes it ignore the whole
    variable (and use config.json and helpers instead). Raises ValueError saying why, never
    quoting a value. Blank (or ``null``): no entries.
    """
    text = value.lstrip(_GO_JSON_SPACE)
    if not text:
        return {}  # Go's decoder reports io.EOF, which docker accepts
    try:
        document, end = json.JSONDecoder(object_pairs_hook=_JSONObject).raw_decode(text)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "invalid"
        raise ValueError(f"is not valid JSON ({reason})") from None
    rest = text[end:].lstrip(_GO_JSON_SPACE)
    if rest and rest[0] not in "]}":  # Go's Decoder.More(), which stops at ']' and '}'
        raise ValueError("holds more than one JSON value")
    if document is None:
        return {}
    if not isinstance(document, _JSONObject):
        raise ValueError("is not a JSON object")
    entries: dict[str, str] = {}
    for key, auths in document:
        if not _go_field(key, "auths"):
            raise ValueError(f'has an unknown field "{_printable(key)}" (only "auths" is allowed)')
        if auths is None:
            entries = {}  # null sets a Go map to nil
            continue
        if not isinstance(auths, _JSONObject):
            raise ValueError('has "auths" that is not a JSON object')
        for address, entry in auths:
            where = f'auths["{_printable(address)}"]'
            auth = ""
            if isinstance(entry, _JSONObject):
                for field, field_value in entry:
                    if not _go_field(field, "auth"):
                        raise ValueError(
                            f'has an unknown field "{_printable(field)}" in {where} '
                            '(only "auth" is allowed)'
                        )
                    if isinstance(field_value, str):
                        auth = field_value
                    elif field_value is not None:  # null leaves a Go string as it is
                        raise ValueError(f"has {where}.auth that is not a string")
            elif entry is not None:
                raise ValueError(f"has {where} that is not a JSON object")
            entries[address] = auth  # a repeated key: the last one counts, as in Go
    for address, auth in entries.items():
        where = f'auths["{_printable(address)}"]'
        if not auth:
            raise ValueError(f"is missing the key `auth` for {where}")
        try:
            _go_decode_auth(auth)
        except ValueError as exc:
            raise ValueError(f"has {where}: {exc}") from None
    return entries


def _go_decode_auth(auth: str) -> tuple[str, str]:
    """docker's ``decodeAuth`` exactly: Go's base64 decoder skips CR and LF, nothing else."""
    cleaned = auth.replace("\r", "").replace("\n", "")
    if cleaned != cleaned.strip():
        raise ValueError("auth is not valid base64")
    return decode_auth(cleaned)


def _printable(text: str, limit: int = 100) -> str:
    """A key for a message: control characters escaped, quotes and backslashes too, bounded."""
    out = json.dumps(text[:limit])[1:-1]
    return out if len(text) <= limit else out + "…"


def decode_auth(auth: str) -> tuple[str, str]:
    """Docker's ``decodeAuth``: base64 ``user:password`` split on the first ``:``.

    Raises ValueError with a message that never contains the value.
    """
    # Go's base64 decoder (docker's decodeAuth, containers/image's decodeDockerAuth) skips
    # CR and LF anywhere: an `auth` made with `base64` (which wraps at 76 columns) has them,
    # and docker and podman use it; validate=True alone refused it.
    cleaned = auth.replace("\r", "").replace("\n", "")
    try:
        decoded = base64.b64decode(cleaned.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("auth is not valid base64") from None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("auth does not decode to UTF-8 text") from None
    username, colon, password = text.partition(":")
    if not colon or not username:
        raise ValueError('auth does not decode to "username:password"')
    return username, password.strip("\x00")


def _canonical_domain(domain: str) -> str:
    return "docker.io" if is_docker_hub(domain) else domain.lower()


def _usable(entry: Mapping[str, Any]) -> bool:
    return any(isinstance(entry.get(f), str) and entry.get(f) for f in _ENTRY_FIELDS)


def _find_docker_entry(auths: Mapping[str, Mapping[str, Any]], domain: str) -> str | None:
    """docker's file store: the exact key, then a key whose ``ConvertToHostname`` matches."""
    key = server_url_for(domain)
    if key in auths and _usable(auths[key]):
        return key
    targets = HUB_HOSTS if is_docker_hub(domain) else frozenset({domain.lower()})
    for key, entry in auths.items():
        if convert_to_hostname(key).lower() in targets and _usable(entry):
            return key
    return None


def _find_auth_file_entry(
    auths: Mapping[str, Mapping[str, Any]], registry: str, repository: str
) -> str | None:
    """containers/image: namespaced keys, most specific first, then normalized host keys."""
    for key in namespaced_keys(registry, repository):
        if key in auths and _usable(auths[key]):
            return key
    target = normalize_registry(registry)
    for key, entry in auths.items():
        if normalize_auth_file_key(key) == target and _usable(entry):
            return key
    return None


def _str_field(entry: Mapping[str, Any], name: str) -> str:
    value = entry.get(name)
    return value if isinstance(value, str) else ""


def _helper_message(text: str) -> str:
    """The first line of a failing helper's output, unless it could carry a secret."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not line or line.startswith(("{", "[")) or "secret" in line.lower():
        return ""
    return line if len(line) <= 200 else line[:199] + "…"


def _uid() -> int:
    getuid = getattr(os, "getuid", None)
    return int(getuid()) if getuid is not None else 0
