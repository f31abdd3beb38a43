"""Registry settings as Docker users already have them: ``certs.d`` and ``daemon.json``.

:class:`RegistrySettings` answers, per registry host, what the Docker daemon would do:

* TLS (:meth:`RegistrySettings.ssl_context_for`): ``<root>/<host[:port]>/`` under the
  ``certs.d`` roots (``/etc/docker/certs.d``, ``$XDG_CONFIG_HOME/docker/certs.d`` for
  rootless Docker, ``/etc/containers/certs.d``; the first directory that exists for the host
  is used, as containers/image does). ``*.crt`` files are extra CAs, *added* to the default
  trust store as Docker adds them to the system pool; ``*.cert`` + ``*.key`` pairs (same
  base name) are client certificates. A ``.cert`` without its ``.key`` or the reverse is a
  :class:`CertsDirError`. Docker Hub never uses ``certs.d`` (neither does the daemon).
* Insecure registries (:meth:`RegistrySettings.is_insecure`): ``insecure-registries`` from
  ``daemon.json`` (``host[:port]`` entries match exactly, CIDR entries such as
  ``10.0.0.0/8`` match the host's address, resolving a name as the daemon does), plus
  loopback hosts as in the daemon -- except a loopback host that has a ``certs.d``
  directory: that directory says how to verify it, so it is verified (Docker would skip
  verification for it altogether).
* Mirrors (:meth:`RegistrySettings.mirrors_for`): ``registry-mirrors`` from ``daemon.json``,
  for Docker Hub only, in order (see :class:`imginspect.registry.MirroredRegistryClient`).

Proxies are not configured here: httpx reads ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``
and ``NO_PROXY`` from the environment itself (``trust_env``, its default), as Docker does.

Everything is read lazily, once, and cached; ``ssl`` is imported only when a context is
built. Standard library only.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from imginspect._record import Record, record
from imginspect.errors import CertsDirError, ConfigError
from imginspect.files import os_reason, read_bounded, xdg_config_home
from imginspect.reference import DOCKER_HUB_HOSTS, host_without_port, is_loopback_host

if TYPE_CHECKING:
    import ssl

#: Docker Hub's names; certs.d is never consulted for them (the daemon does not either).
HUB_HOSTS = DOCKER_HUB_HOSTS
SYSTEM_DAEMON_CONFIG = Path("/etc/docker/daemon.json")
#: daemon.json is a small document; refuse to read anything absurd.
MAX_SETTINGS_FILE = 4 * 1024 * 1024

Warn = Callable[[str], None]
Log = Callable[[str], None]


@record
class Mirror(Record):
    """One ``registry-mirrors`` entry, normalized as the daemon does (trailing ``/``)."""

    url: str  # "https://mirror.example.com/" or "http://10.0.0.5:5000/prefix/"

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        """``host[:port]`` of the mirror (what certs.d and insecure-registries match)."""
        return urlsplit(self.url).netloc

    @property
    def base_url(self) -> str:
        """The URL ``/v2/...`` paths are appended to (no trailing slash)."""
        return self.url.rstrip("/")


def default_certs_dirs(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The ``certs.d`` roots searched when none are given, in order."""
    env = os.environ if environ is None else environ
    return (
        Path("/etc/docker/certs.d"),
        xdg_config_home(env) / "docker" / "certs.d",
        Path("/etc/containers/certs.d"),
    )


def default_daemon_configs(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """``daemon.json`` candidates when none is given: rootless Docker's, then the system's."""
    env = os.environ if environ is None else environ
    return (xdg_config_home(env) / "docker" / "daemon.json", SYSTEM_DAEMON_CONFIG)


def validate_mirror(text: str) -> Mirror:
    """Docker's ``ValidateMirror``: an http(s) URL without query, fragment or user info."""
    # An entry with an '@' may hold a password (docker masks it as xxxxx): every message
    # below leaves such an entry out, not only the one about user info.
    shown = repr(text) if "@" not in text else "a mirror URL (not shown: it has an '@')"
    scheme, sep, _ = text.partition("://")
    if not sep or not scheme:
        raise ValueError(f"no scheme in {shown}: must use either 'https://' or 'http://'")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise ValueError(f"{shown} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported scheme {parts.scheme!r} in {shown}")
    if parts.query or parts.fragment:
        raise ValueError(f"query or fragment at the end of {shown}")
    if "@" in parts.netloc:
        raise ValueError("user name or password in a mirror URL")  # never echo the URL
    if not parts.hostname:
        raise ValueError(f"no host in {shown}")
    return Mirror(text.rstrip("/") + "/")


class RegistrySettings:
    """``certs.d`` and ``daemon.json`` for one run; every lookup is cached and thread-safe.

    ``certs_dirs`` replaces the default ``certs.d`` roots (``[]``: none at all);
    ``daemon_config`` names the ``daemon.json`` to read (then it must exist and be valid;
    otherwise the default locations are read if present, and a broken one only warns, as a
    broken config never stops ``docker pull`` of a public image either).
    ``insecure_registries`` adds entries in ``daemon.json``'s syntax.
    """

    def __init__(
        self,
        *,
        certs_dirs: Iterable[str | os.PathLike[str]] | None = None,
        daemon_config: str | os.PathLike[str] | None = None,
        insecure_registries: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
        warn: Warn | None = None,
        log: Log | None = None,
        read_daemon_config: bool = True,
    ) -> None:
        self._read_daemon = read_daemon_config
        self._environ = dict(os.environ if environ is None else environ)
        self._certs_roots = (
            default_certs_dirs(self._environ)
            if certs_dirs is None
            else tuple(Path(d) for d in certs_dirs)
        )
        self._daemon_config = Path(daemon_config) if daemon_config is not None else None
        self._extra_insecure = tuple(insecure_registries)
        self._warn = warn or (lambda message: None)
        self._log = log
        self._lock = threading.RLock()
        self._loaded = False
        self._load_error: ConfigError | None = None
        self._daemon_path: Path | None = None
        self._mirrors: tuple[Mirror, ...] = ()
        self._insecure_hosts: set[str] = set()
        self._insecure_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._contexts: dict[str, ssl.SSLContext | None] = {}
        self._context_errors: dict[str, CertsDirError] = {}
        self._resolved: dict[str, tuple[str, ...]] = {}

    @classmethod
    def empty(cls) -> RegistrySettings:
        """No certs.d and no daemon.json: only the built-in rules (loopback is insecure)."""
        return cls(certs_dirs=(), environ={}, read_daemon_config=False)

    # ------------------------------------------------------------------ daemon.json

    @property
    def certs_roots(self) -> tuple[Path, ...]:
        return self._certs_roots

    @property
    def daemon_config_path(self) -> Path | None:
        """The ``daemon.json`` actually read (None: none found)."""
        self._load()
        return self._daemon_path

    @property
    def mirrors(self) -> tuple[Mirror, ...]:
        """``registry-mirrors``, in order."""
        self._load()
        return self._mirrors

    def mirrors_for(self, domain: str) -> tuple[Mirror, ...]:
        """The mirrors to try before ``domain``'s registry: Docker Hub only, as in the daemon."""
        return self.mirrors if domain.lower() in HUB_HOSTS else ()

    def is_insecure(self, host: str) -> bool:
        """Whether ``host`` (``host[:port]``) is insecure: https unverified, then plain http.

        ``insecure-registries`` entries first (exact ``host[:port]``, then CIDR); then
        loopback hosts, unless a ``certs.d`` directory says how to verify them.
        """
        self._load()
        key = host.lower()
        if key in self._insecure_hosts:
            return True
        if self._insecure_networks and self._in_insecure_network(host):
            return True
        return is_loopback_host(host) and self.certs_dir_for(host) is None

    def insecure_reason(self, host: str) -> str | None:
        """Why :meth:`is_insecure` says so, for explanations (None: secure)."""
        self._load()
        if host.lower() in self._insecure_hosts:
            return f"listed in insecure-registries ({self._where()})"
        if self._insecure_networks and self._in_insecure_network(host):
            return f"in an insecure-registries CIDR range ({self._where()})"
        if is_loopback_host(host) and self.certs_dir_for(host) is None:
            return "loopback registries are insecure by default, as in the Docker daemon"
        return None

    def _where(self) -> str:
        return str(self._daemon_path) if self._daemon_path is not None else "settings"

    def _in_insecure_network(self, host: str) -> bool:
        name = host_without_port(host)
        try:
            addresses: tuple[str, ...] = (str(ipaddress.ip_address(name)),)
        except ValueError:
            addresses = self._resolve(name)
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                continue
            for network in self._insecure_networks:
                if address.version == network.version and address in network:
                    return True
        return False

    def _resolve(self, name: str) -> tuple[str, ...]:
        """The daemon resolves a name to match it against CIDR entries; so do we (cached)."""
        with self._lock:
            if name not in self._resolved:
                try:
                    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
                    found = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
                except (OSError, UnicodeError):
                    found = ()  # unresolvable: no match, as in the daemon
                self._resolved[name] = found
            return self._resolved[name]

    def _load(self) -> None:
        """Read the insecure-registries entries and daemon.json once (a ConfigError sticks)."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    try:
                        for entry in self._extra_insecure:
                            self._add_insecure(entry, explicit=True, where="insecure registries")
                        self._read_daemon_config()
                    except ConfigError as error:
                        self._load_error = error
                    self._loaded = True
        if self._load_error is not None:
            raise self._load_error

    def _read_daemon_config(self) -> None:
        if not self._read_daemon:
            return
        explicit = self._daemon_config is not None
        if self._daemon_config is not None:
            candidates: tuple[Path, ...] = (self._daemon_config,)
        else:
            candidates = default_daemon_configs(self._environ)
        for path in candidates:
            try:
                raw = read_bounded(path, MAX_SETTINGS_FILE)
            except FileNotFoundError:
                if explicit:
                    raise ConfigError(f"daemon config {path} does not exist") from None
                continue
            except OSError as exc:
                self._problem(f"cannot read daemon config {path}: {os_reason(exc)}", explicit)
                return
            self._daemon_path = path
            try:
                document = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                self._problem(f"daemon config {path} is not valid JSON: {exc}", explicit)
                return
            if not isinstance(document, dict):
                self._problem(f"daemon config {path} is not a JSON object", explicit)
                return
            self._read_mirrors(path, document.get("registry-mirrors"), explicit)
            insecure = document.get("insecure-registries")
            if insecure is not None:
                if not isinstance(insecure, list) or not all(isinstance(e, str) for e in insecure):
                    self._problem(
                        f"daemon config {path}: insecure-registries must be a list of strings",
                        explicit,
                    )
                else:
                    for entry in insecure:
                        self._add_insecure(entry, explicit=explicit, where=str(path))
            return

    def _read_mirrors(self, path: Path, value: object, explicit: bool) -> None:
        if value is None:
            return
        if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
            self._problem(
                f"daemon config {path}: registry-mirrors must be a list of strings", explicit
            )
            return
        mirrors: list[Mirror] = []
        for entry in value:
            try:
                mirror = validate_mirror(entry)
            except ValueError as exc:
                self._problem(f"daemon config {path}: invalid registry mirror: {exc}", explicit)
                continue
            if mirror not in mirrors:
                mirrors.append(mirror)
        self._mirrors = tuple(mirrors)

    def _add_insecure(self, entry: str, *, explicit: bool, where: str) -> None:
        """Docker's ``LoadInsecureRegistries`` for one entry."""
        text = entry.strip()
        lowered = text.lower()
        if lowered.startswith("http://"):
            text = text[len("http://") :]
        elif lowered.startswith("https://"):
            text = text[len("https://") :]
        elif "://" in text:
            self._problem(f"{where}: insecure registry {entry!r} must not contain '://'", explicit)
            return
        text = text.rstrip("/")
        if "/" in text:
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                self._problem(
                    f"{where}: insecure registry {entry!r} is neither host[:port] nor a CIDR",
                    explicit,
                )
                return
            self._insecure_networks.append(network)
            return
        if not text or any(ch.isspace() for ch in text):
            self._problem(f"{where}: insecure registry {entry!r} is not valid", explicit)
            return
        self._insecure_hosts.add("docker.io" if text.lower() == "index.docker.io" else text.lower())

    def _problem(self, message: str, explicit: bool) -> None:
        if explicit:
            raise ConfigError(message)
        self._warn(f"{message}; ignoring it")

    # ------------------------------------------------------------------ certs.d

    def certs_dir_for(self, host: str) -> Path | None:
        """The ``certs.d`` directory for ``host`` (``host[:port]``), if any (not for Hub)."""
        if host.lower() in HUB_HOSTS or not _safe_dir_name(host):
            return None
        for root in self._certs_roots:
            candidate = root / host
            if candidate.is_dir():
                return candidate
        return None

    def ssl_context_for(self, host: str) -> ssl.SSLContext | None:
        """The verifying TLS context for ``host``, or None for the default verification.

        Built on first use and cached per host. Raises :class:`CertsDirError` for an
        inconsistent directory (every time it is asked, not only the first).
        """
        with self._lock:
            if host in self._context_errors:
                raise self._context_errors[host]
            if host in self._contexts:
                return self._contexts[host]
            directory = self.certs_dir_for(host)
            context = None
            if directory is not None:
                try:
                    context = self._build_context(host, directory)
                except CertsDirError as error:
                    self._context_errors[host] = error
                    raise
            self._contexts[host] = context
            return context

    def _build_context(self, host: str, directory: Path) -> ssl.SSLContext:
        import ssl

        from imginspect.trust import system_trust_context

        cas, pairs = _certs_dir_files(directory)
        # OpenSSL opens these by path: a FIFO blocked open() forever (with self._lock held).
        # Each must be a regular file of bounded size first, as config.json and daemon.json
        # are (files.read_bounded refuses FIFOs and devices without opening them).
        for path in (*cas, *(p for pair in pairs[:1] for p in pair)):
            try:
                read_bounded(path, MAX_SETTINGS_FILE)
            except OSError as exc:
                raise CertsDirError(
                    f"cannot read {path}: {os_reason(exc)}",
                    hint="certs.d files (*.crt, *.cert, *.key) must be readable regular files",
                ) from None
        # certs.d CAs are added to the system trust store, as Docker adds them to the system pool
        context = system_trust_context()
        for ca in cas:
            try:
                context.load_verify_locations(cafile=str(ca))
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise CertsDirError(
                    f"cannot load CA certificate {ca}: {_ssl_reason(exc)}",
                    hint="files ending in .crt must hold PEM CA certificates",
                ) from None
        if pairs:
            cert, key = pairs[0]
            try:
                context.load_cert_chain(str(cert), str(key), password=_no_password)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise CertsDirError(
                    f"cannot load client certificate {cert} with key {key}: {_ssl_reason(exc)}",
                    hint="the key must be an unencrypted PEM key matching the certificate",
                ) from None
            if len(pairs) > 1:
                others = ", ".join(c.name for c, _ in pairs[1:])
                self._warn(
                    f"{directory}: several client certificates; using {cert.name}, "
                    f"ignoring {others}"
                )
        if self._log is not None:
            parts = [f"{len(cas)} CA file(s)"]
            if pairs:
                parts.append(f"client certificate {pairs[0][0].name}")
            self._log(f"tls: {host} verified with {directory} ({', '.join(parts)})")
        return context

    # ------------------------------------------------------------------ explanation

    def explain_host(self, host: str) -> tuple[str, ...]:
        """Lines saying how ``host`` is reached (TLS mode, certs.d, mirrors); no secrets."""
        lines: list[str] = []
        reason = self.insecure_reason(host)
        directory = self.certs_dir_for(host)
        if reason is not None:
            lines.append(f"tls: insecure (https without verification, then http): {reason}")
        elif directory is not None:
            cas, pairs = _certs_dir_files(directory)
            detail = [f"CA {', '.join(c.name for c in cas)}" if cas else "no extra CA"]
            if pairs:
                detail.append(f"client certificate {pairs[0][0].name}")
            from imginspect.trust import describe_trust_store

            store = describe_trust_store(self._environ)
            lines.append(f"tls: verified against {store}, with {directory} ({'; '.join(detail)})")
        else:
            from imginspect.trust import describe_trust_store

            lines.append(f"tls: verified against {describe_trust_store(self._environ)}")
        for mirror in self.mirrors_for(host):
            lines.append(f"mirror: {mirror.base_url} (tried first; then the registry itself)")
        return tuple(lines)


# ---------------------------------------------------------------------- helpers


def _safe_dir_name(host: str) -> bool:
    return bool(host) and host not in (".", "..") and "/" not in host and "\\" not in host


def _certs_dir_files(directory: Path) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """Docker's ``ReadCertsDirectory``: (CA files, client (cert, key) pairs); checks pairs."""
    try:
        names = sorted(entry.name for entry in directory.iterdir())
    except OSError as exc:
        raise CertsDirError(
            f"cannot read certs.d directory {directory}: {os_reason(exc)}"
        ) from None
    present = set(names)
    cas = [directory / n for n in names if n.endswith(".crt")]
    pairs: list[tuple[Path, Path]] = []
    for name in names:
        if name.endswith(".cert"):
            key = name[: -len(".cert")] + ".key"
            if key not in present:
                raise CertsDirError(
                    f"missing key {key} for client certificate {name} in {directory}",
                    hint="client certificates need their key (NAME.cert + NAME.key); "
                    "CA certificates must use the extension .crt",
                )
            pairs.append((directory / name, directory / key))
        elif name.endswith(".key"):
            cert = name[: -len(".key")] + ".cert"
            if cert not in present:
                raise CertsDirError(
                    f"missing client certificate {cert} for key {name} in {directory}",
                    hint="client keys need their certificate (NAME.cert + NAME.key)",
                )
    return cas, pairs


def _no_password() -> bytes:
    """Never prompt for a client key's passphrase (an encrypted key then fails to load)."""
    return b""


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text or type(exc).__name__
