"""Run the real CNCF distribution registry (``docker-registry serve``) for tests.

Four variants, each on 127.0.0.1 with a port the registry picks itself (``http.addr:
127.0.0.1:0``; the port is read back from its ``listening on`` log line):

* :func:`start_plain_registry` -- plain HTTP, no auth;
* :func:`start_tls_registry` -- HTTPS with a certificate from a ``trustme`` CA (SANs
  ``127.0.0.1``, ``localhost``, ``::1``); :attr:`Registry.ca_path` is the CA PEM;
* :func:`start_basic_registry` -- HTTPS plus htpasswd Basic auth (bcrypt), user
  :data:`TEST_USERNAME` / :data:`TEST_PASSWORD`;
* :func:`start_token_registry` -- plain HTTP plus token auth served by a
  :class:`~tokenserver.TokenServer` (same user and password; :attr:`Registry.token_server`).

The registry's access log (combined log format, one line per request, on its stdout) goes to a
file; :meth:`Registry.requests` parses it. Counting requests::

    mark = registry.mark()
    ...  # do things
    assert len(registry.requests_since(mark)) == 2

``mark()``/``requests()``/``requests_since()`` first send a sentinel request and wait until it
is logged (see :meth:`Registry.sync`), so every request that completed before the call is
counted; sentinel requests never show up in the results. Only this registry's requests are
counted (each xdist worker has its own registries).

Processes never outlive the test session: :meth:`Registry.stop`, an ``atexit`` hook, and a
parent-death signal (``setpriv --pdeathsig``) where available.
"""

from __future__ import annotations

import atexit
import base64
import itertools
import os
import re
import shutil
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import bcrypt
import httpx
import trustme

from .tokenserver import TokenServer

REGISTRY_BINARY = os.environ.get("IMGINSPECT_TEST_REGISTRY_BINARY", "docker-registry")
TEST_USERNAME = "imginspect-tester"
TEST_PASSWORD = "s3cret:p@ss w0rd"  # ':' and ' ' on purpose: only the first ':' splits
START_TIMEOUT = 15.0
SYNC_PREFIX = "/__imginspect_sync__/"

#: The four manifest media types; send all of them (distribution 2.8 hides an OCI index from a
#: client that does not list its type).
ACCEPT_ALL_MANIFESTS = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
    )
)

_LISTENING = re.compile(r'msg="listening on (?:\[[^\]]*\]|[^":]+):(\d+)')
_ACCESS_LINE = re.compile(
    r"^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    r'"(?P<method>[A-Z]+) (?P<target>\S+) (?P<protocol>[^"]*)" '
    r'(?P<status>\d{3}) (?P<size>\S+) "(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)"'
)


@dataclass(frozen=True)
class AccessLogEntry:
    """One line of the registry's access log."""

    method: str
    path: str  # without the query string
    query: str
    status: int
    size: int
    user_agent: str
    remote: str
    line: str

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


def parse_access_log(text: str) -> list[AccessLogEntry]:
    """Every combined-log-format line of ``text`` (other lines are skipped)."""
    entries = []
    for line in text.splitlines():
        match = _ACCESS_LINE.match(line)
        if match is None:
            continue
        target = urlsplit(match["target"])
        entries.append(
            AccessLogEntry(
                method=match["method"],
                path=target.path,
                query=target.query,
                status=int(match["status"]),
                size=int(match["size"]) if match["size"].isdigit() else 0,
                user_agent=match["user_agent"],
                remote=match["remote"],
                line=line,
            )
        )
    return entries


class RegistryStartError(RuntimeError):
    """The registry did not come up; the message carries its log."""


_LIVE: set[Registry] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for registry in live:
        registry.stop()


class Registry:
    """A running registry. Create it with one of the ``start_*_registry`` functions."""

    def __init__(
        self,
        *,
        name: str,
        workdir: Path,
        config_path: Path,
        storage_dir: Path,
        process: subprocess.Popen[bytes],
        port: int,
        scheme: str,
        ca_path: Path | None,
        username: str | None,
        password: str | None,
        token_server: TokenServer | None,
        owns_token_server: bool,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.config_path = config_path
        self.storage_dir = storage_dir
        self.process = process
        self.port = port
        self.scheme = scheme
        self.ca_path = ca_path
        self.username = username
        self.password = password
        self.token_server = token_server
        self._owns_token_server = owns_token_server
        self.access_log_path = workdir / "registry.stdout.log"
        self.app_log_path = workdir / "registry.stderr.log"
        self._sync_counter = itertools.count()
        self._sync_client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Registry {self.name} {self.base_url} pid={self.process.pid}>"

    # -- addresses ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` -- what goes in an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def auth(self) -> str | None:
        """``"basic"``, ``"token"`` or ``None``."""
        if self.token_server is not None:
            return "token"
        if self.username is not None:
            return "basic"
        return None

    def ref(self, repository: str, tag_or_digest: str | None = None) -> str:
        """``HOST/REPO``, ``HOST/REPO:TAG`` or ``HOST/REPO@sha256:...``."""
        if tag_or_digest is None:
            return f"{self.host}/{repository}"
        sep = "@" if ":" in tag_or_digest else ":"
        return f"{self.host}/{repository}{sep}{tag_or_digest}"

    # -- clients -----------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What to pass as httpx's ``verify`` (trusting only the test CA for TLS variants)."""
        if self.ca_path is None:
            return True
        return ssl.create_default_context(cafile=str(self.ca_path))

    def client(self, *, authenticated: bool = True, **kwargs: Any) -> httpx.Client:
        """An httpx client for this registry: ``base_url`` set, the CA trusted and (with
        ``authenticated``) the test user's credentials applied through :class:`RegistryAuth`
        (anonymous token flow when ``authenticated`` is false)."""
        auth: httpx.Auth | None = None
        if self.auth is not None:
            if authenticated:
                auth = RegistryAuth(self.username, self.password)
            else:
                auth = RegistryAuth(None, None)
        kwargs.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.base_url, verify=self.ssl_context(), auth=auth, **kwargs)

    # -- logs --------------------------------------------------------------------------------

    def app_log(self) -> str:
        """The registry's own log (stderr: start-up, errors, ``response completed`` lines)."""
        return _read_text(self.app_log_path)

    def access_log(self) -> str:
        return _read_text(self.access_log_path)

    def sync(self, timeout: float = 10.0) -> None:
        """Wait until every request completed so far is in the access log.

        Sends ``GET /__imginspect_sync__/N`` (404, outside ``/v2/`` so no auth) and waits until
        its line shows up. Belt and braces: the registry writes a request's line before it
        flushes the end of the response, so a request the client has seen complete is already
        logged; the sentinel also proves the log is being written at all.
        """
        with self._lock:
            if self._sync_client is None:
                self._sync_client = httpx.Client(verify=self.ssl_context(), timeout=timeout)
            client = self._sync_client
            path = f"{SYNC_PREFIX}{next(self._sync_counter)}"
        client.get(f"{self.base_url}{path}")
        needle = f'"GET {path} '
        deadline = time.monotonic() + timeout
        while needle not in self.access_log():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self!r}: sync request {path} never reached the access log")
            time.sleep(0.005)

    def requests(self, *, sync: bool = True) -> list[AccessLogEntry]:
        """Every request logged so far (sentinel sync requests excluded), oldest first."""
        if sync:
            self.sync()
        return [
            e for e in parse_access_log(self.access_log()) if not e.path.startswith(SYNC_PREFIX)
        ]

    def mark(self) -> int:
        """A position in :meth:`requests` to count from (see :meth:`requests_since`)."""
        return len(self.requests())

    def requests_since(self, mark: int) -> list[AccessLogEntry]:
        return self.requests()[mark:]

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Terminate the registry (and a token server it started); idempotent."""
        with _LIVE_LOCK:
            _LIVE.discard(self)
        _terminate(self.process)
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None
        if self._owns_token_server and self.token_server is not None:
            self.token_server.stop()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RegistryAuth(httpx.Auth):
    """httpx auth for the registry: Basic, or the Docker token flow (challenge -> token ->
    retry), with tokens cached per repository. ``username=None`` gives anonymous tokens."""

    requires_response_body = True

    def __init__(self, username: str | None, password: str | None) -> None:
        self.username = username
        self.password = password
        self._basic = False
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def _basic_header(self) -> str | None:
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        repo = repository_of(request.url.path)
        with self._lock:
            token = self._tokens.get(repo)
            basic = self._basic
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        elif basic and (header := self._basic_header()):
            request.headers["Authorization"] = header
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            header = self._basic_header()
            if header is None:
                return
            with self._lock:
                self._basic = True
            request.headers["Authorization"] = header
            yield request
            return
        if scheme != "bearer" or "realm" not in params:
            return
        query = [("service", params["service"])] if "service" in params else []
        query += [("scope", s) for s in params.get("scope", "").split(" ") if s]
        if self.username is not None:
            query.append(("account", self.username))
        realm = params["realm"]
        url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}"
        token_request = httpx.Request("GET", url)
        if (header := self._basic_header()) is not None:
            token_request.headers["Authorization"] = header
        token_response = yield token_request
        if token_response.status_code != 200:
            return
        body = token_response.json()
        token = body.get("token") or body.get("access_token")
        with self._lock:
            self._tokens[repo] = token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def repository_of(path: str) -> str:
    """The repository named by a ``/v2/<name>/(manifests|blobs|tags)/...`` path (``""`` if none)."""
    match = re.match(r"^/v2/(.+?)/(?:manifests|blobs|tags|referrers)(?:/|$)", path)
    return match.group(1) if match else ""


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``('bearer', {'realm': ..., 'service': ..., 'scope': ...})`` from a WWW-Authenticate."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


# -- starting ----------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _yaml_lines(value: Any, indent: int = 0) -> Iterable[str]:
    """A tiny YAML writer for the nested dict config (strings are JSON-quoted)."""
    pad = "  " * indent
    for key, item in value.items():
        if isinstance(item, dict):
            yield f"{pad}{key}:"
            yield from _yaml_lines(item, indent + 1)
        elif isinstance(item, bool):
            yield f"{pad}{key}: {'true' if item else 'false'}"
        elif isinstance(item, int):
            yield f"{pad}{key}: {item}"
        else:
            escaped = str(item).replace("\\", "\\\\").replace('"', '\\"')
            yield f'{pad}{key}: "{escaped}"'


def _pdeathsig_prefix() -> list[str]:
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def start_registry(
    workdir: Path,
    *,
    name: str = "registry",
    tls: bool = False,
    htpasswd_users: dict[str, str] | None = None,
    token_server: TokenServer | None = None,
    owns_token_server: bool = False,
    extra_config: dict[str, Any] | None = None,
) -> Registry:
    """Start ``docker-registry serve`` in ``workdir`` (created) and wait until it listens.

    ``htpasswd_users`` turns on Basic auth (bcrypt file); ``token_server`` (already started)
    turns on token auth. Raises :class:`RegistryStartError` with the registry's log on failure.
    """
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        raise RegistryStartError(f"{REGISTRY_BINARY!r} not found (Debian package docker-registry)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    storage_dir = workdir / "storage"
    storage_dir.mkdir(exist_ok=True)
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": "127.0.0.1:0", "secret": "imginspect-test-secret"},
        "health": {"storagedriver": {"enabled": False}},
    }
    ca_path: Path | None = None
    if tls:
        ca = trustme.CA()
        server_cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
        ca_path = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        cert_path = workdir / "server-chain.pem"
        key_path = workdir / "server-key.pem"
        server_cert.private_key_pem.write_to_path(str(key_path))
        cert_path.write_bytes(b"".join(blob.bytes() for blob in server_cert.cert_chain_pems))
        config["http"]["tls"] = {"certificate": str(cert_path), "key": str(key_path)}
    username = password = None
    if htpasswd_users:
        htpasswd_path = workdir / "htpasswd"
        htpasswd_path.write_text(
            "".join(
                # Cost 4 (the minimum) keeps the registry's per-request bcrypt check cheap.
                f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
                for user, pw in htpasswd_users.items()
            )
        )
        config["auth"] = {"htpasswd": {"realm": "imginspect-test", "path": str(htpasswd_path)}}
        username, password = next(iter(htpasswd_users.items()))
    if token_server is not None:
        config["auth"] = {
            "token": {
                "realm": token_server.realm,
                "service": token_server.service,
                "issuer": token_server.issuer,
                "rootcertbundle": str(token_server.rootcertbundle),
            }
        }
        if token_server.users:
            username, password = next(iter(token_server.users.items()))
    if extra_config:
        _merge(config, extra_config)
    config_path = workdir / "config.yml"
    config_path.write_text("\n".join(_yaml_lines(config)) + "\n")

    stdout_path = workdir / "registry.stdout.log"
    stderr_path = workdir / "registry.stderr.log"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [*_pdeathsig_prefix(), binary, "serve", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=workdir,
        )
    deadline = time.monotonic() + START_TIMEOUT
    port = None
    while port is None:
        match = _LISTENING.search(_read_text(stderr_path))
        if match:
            port = int(match.group(1))
            break
        if process.poll() is not None or time.monotonic() > deadline:
            _terminate(process)
            why = (
                f"exited with {process.returncode}"
                if process.returncode is not None
                else f"did not log 'listening on' within {START_TIMEOUT}s"
            )
            raise RegistryStartError(
                f"registry {name} {why}\n"
                f"--- config ({config_path}) ---\n{config_path.read_text()}"
                f"--- stderr ---\n{_read_text(stderr_path)}"
                f"--- stdout ---\n{_read_text(stdout_path)}"
            )
        time.sleep(0.01)
    registry = Registry(
        name=name,
        workdir=workdir,
        config_path=config_path,
        storage_dir=storage_dir,
        process=process,
        port=port,
        scheme="https" if tls else "http",
        ca_path=ca_path,
        username=username,
        password=password,
        token_server=token_server,
        owns_token_server=owns_token_server,
    )
    with _LIVE_LOCK:
        _LIVE.add(registry)
    return registry


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def start_plain_registry(workdir: Path) -> Registry:
    return start_registry(workdir, name="plain")


def start_tls_registry(workdir: Path) -> Registry:
    return start_registry(workdir, name="tls", tls=True)


def start_basic_registry(
    workdir: Path, *, username: str = TEST_USERNAME, password: str = TEST_PASSWORD
) -> Registry:
    """htpasswd Basic auth over TLS."""
    return start_registry(workdir, name="basic", tls=True, htpasswd_users={username: password})


def start_token_registry(
    workdir: Path,
    *,
    username: str = TEST_USERNAME,
    password: str = TEST_PASSWORD,
    private: Iterable[str] = (),
) -> Registry:
    """Token auth over plain HTTP, with its own :class:`TokenServer` (stopped with it)."""
    workdir = Path(workdir)
    server = TokenServer(workdir / "token", users={username: password}, private=private).start()
    try:
        return start_registry(workdir, name="token", token_server=server, owns_token_server=True)
    except BaseException:
        server.stop()
        raise
