"""A private Docker Engine (``dockerd``) for differential tests.

:func:`start_dockerd` starts ``dockerd`` with every networking feature switched off, the ``vfs``
storage driver and all of its state (data root, exec root, pid file, API socket, daemon.json, trust
key, log) in a fresh short directory under ``/tmp`` (unix socket paths are limited to ~107 bytes,
and dockerd's containerd puts ``containerd.sock.ttrpc`` under the exec root). It waits until
``GET /_ping`` answers ``OK`` and returns a :class:`Dockerd` whose
:meth:`Dockerd.distribution_inspect` calls ``GET /v{api}/distribution/{ref}/json`` and hands back
the status and the exact body bytes.

Isolation (checked on Engine 20.10.24 with containerd 1.6):

* dockerd starts its own containerd child (config, sockets and state under the exec root / data
  root) unless the system default socket ``/run/containerd/containerd.sock`` exists (dockerd
  would then share that containerd); in that case (or with ``own_containerd=True``) this module
  starts a private containerd itself, with everything under the temporary directory, and passes
  ``--containerd``. Two instances (e.g. ``pytest -n 2``) run side by side without conflicts, so no
  cross-process lock is needed.
* ``deprecated-key-path`` in daemon.json keeps dockerd from writing ``/etc/docker/key.json``.
  The only things it touches outside the directory are the empty directories
  ``/run/docker/plugins`` and ``/opt/containerd/{bin,lib}`` (created if missing, never locked).

Cleanup: dockerd runs in its own process group and session with ``PR_SET_PDEATHSIG`` (it gets
SIGTERM if the test process dies); its containerd child has ``Pdeathsig=SIGKILL`` set by dockerd.
:meth:`Dockerd.stop` sends SIGTERM (dockerd then stops its containerd and unmounts its data root),
falls back to SIGKILL for the process group and every process that descended from dockerd, undoes
the self bind mount of the data root a killed dockerd leaves behind, and removes the directory.
Inside :func:`child_subreaper` it also reaps a containerd orphaned by a killed dockerd. Every
instance still running at interpreter exit is stopped by an ``atexit`` hook.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

__all__ = [
    "DOCKERD_BINARY",
    "Dockerd",
    "DockerdError",
    "api_path",
    "child_subreaper",
    "dockerd_available",
    "encode_registry_auth",
    "go_path_clean",
    "running_dockerd",
    "start_dockerd",
]

DOCKERD_BINARY = "dockerd"
CONTAINERD_BINARY = "containerd"
SYSTEM_CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
#: ``sun_path`` is 108 bytes including the NUL terminator.
_MAX_SOCKET_PATH = 107
#: The longest socket path created under the directory (by dockerd's containerd).
_LONGEST_SOCKET_SUFFIX = "/e/containerd/containerd.sock.ttrpc"
#: Characters Go's ``url.URL.EscapedPath`` (``encodePath`` mode) leaves alone besides
#: ``[A-Za-z0-9_.~-]``, which :func:`urllib.parse.quote` never escapes.
_GO_PATH_SAFE = "$&+,/:;=@"
#: What the docker CLI (28.x) sends; Engine 20.10 CLIs sent ``docker``. dockerd ignores it.
_HOST_HEADER = "api.moby.localhost"

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_MNT_DETACH = 2
# Resolved before any fork: dlopen/dlsym between fork and exec may deadlock.
_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_umount2 = _libc.umount2

_running: set[Dockerd] = set()
_running_lock = threading.Lock()


class DockerdError(RuntimeError):
    """dockerd (or the containerd started for it) failed to start."""


def dockerd_available() -> bool:
    """Whether a private dockerd can be started here (the binaries exist and we are root)."""
    return (
        shutil.which(DOCKERD_BINARY) is not None
        and shutil.which(CONTAINERD_BINARY) is not None
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
    )


def go_path_clean(path: str) -> str:
    """Go's ``path.Clean``: collapse ``//``, drop ``.``, resolve ``..``, no trailing ``/``."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(segment)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def api_path(path: str, api_version: str = "1.41") -> str:
    """The request target the docker Go client sends for ``path`` (``/distribution/R/json``).

    The client builds ``path.Join("/v" + version, path)`` (which cleans the path) and serialises it
    with ``url.URL{Path: ...}.String()``, i.e. Go's ``encodePath`` escaping: ``/``, ``:``, ``@`` and
    ``$&+,;=`` stay as they are; ``?``, ``#``, ``%``, spaces, ``!*'()[]`` and non-ASCII bytes are
    percent-encoded with upper-case hex. Verified against docker CLI 28.2 (``service create``).
    """
    joined = go_path_clean("/v" + api_version.removeprefix("v") + "/" + path)
    return urllib.parse.quote(joined, safe=_GO_PATH_SAFE)


def encode_registry_auth(username: str | None, password: str | None) -> str:
    """The ``X-Registry-Auth`` value: base64url (with padding) of ``{"username","password"}``."""
    payload = json.dumps({"username": username or "", "password": password or ""})
    return base64.urlsafe_b64encode(payload.encode()).decode("ascii")


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


# ---------------------------------------------------------------------------------------------
# process helpers


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    # SIGTERM when the thread that started us dies (pytest's main thread, normally).
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _proc_stat(pid: int) -> tuple[int, str, int] | None:
    """``(ppid, state, starttime)`` of ``pid`` from ``/proc``, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def _descendants(root_pid: int) -> dict[int, int]:
    """Every live descendant of ``root_pid``, mapped to its start time (to detect pid reuse)."""
    children: dict[int, list[int]] = {}
    start: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _proc_stat(int(entry))
        if stat is None:
            continue
        children.setdefault(stat[0], []).append(int(entry))
        start[int(entry)] = stat[2]
    found: dict[int, int] = {}
    todo = list(children.get(root_pid, []))
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found[pid] = start[pid]
        todo.extend(children.get(pid, []))
    return found


def _alive(pid: int, starttime: int) -> bool:
    """Whether ``pid`` is still the same, not yet dead process."""
    stat = _proc_stat(pid)
    return stat is not None and stat[2] == starttime and stat[1] not in ("Z", "X")


def _kill_exact(pid: int, starttime: int) -> None:
    if _alive(pid, starttime):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _reap_adopted(tree: Mapping[int, int]) -> None:
    """Reap processes of ``tree`` that were reparented to us (when we are a child subreaper,
    see :func:`child_subreaper`) so that a killed dockerd leaves no zombie containerd."""
    me = os.getpid()
    for pid, starttime in tree.items():
        stat = _proc_stat(pid)
        if stat is not None and stat[0] == me and stat[2] == starttime:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


@contextlib.contextmanager
def child_subreaper() -> Iterator[None]:
    """Make this process a child subreaper (``PR_SET_CHILD_SUBREAPER``) inside the block.

    Orphaned descendants (dockerd's containerd when dockerd is SIGKILLed) are then reparented to
    us instead of to init, and :meth:`Dockerd.stop` reaps them. Process-wide, hence opt-in.
    """
    _prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        _prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _exited_unreaped(pid: int) -> bool:
    """Whether child ``pid`` has exited (leaving it a zombie, so its pid/pgid stay reserved)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid == pid


def _terminate_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the group led by ``proc``, SIGKILL it after ``timeout``, then reap ``proc``."""
    if proc.returncode is not None:
        return
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not _exited_unreaped(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The leader is unreaped here (zombie or alive), so the group id cannot have been reused.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()


def _unmount_under(directory: str) -> None:
    """Lazily unmount every mount point at or below ``directory`` (deepest first)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    prefix = directory.rstrip("/") + "/"
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point == directory or point.startswith(prefix):
            points.append(point)
    if not points:
        return
    for point in sorted(set(points), key=len, reverse=True):
        _umount2(os.fsencode(point), _MNT_DETACH)


def _wait_for_socket(path: str, proc: subprocess.Popen[bytes], deadline: float) -> bool:
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(path):
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(1)
                    sock.connect(path)
                return True
            except OSError:
                pass
        time.sleep(0.05)
    return False


def _system_containerd_present() -> bool:
    # dockerd 20.10 only checks that the default socket exists (os.Lstat) before using it.
    return os.path.lexists(SYSTEM_CONTAINERD_SOCKET)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)  # never sd_notify a service manager on behalf of a test
    return env


# ---------------------------------------------------------------------------------------------


class Dockerd:
    """A running private dockerd. Create it with :func:`start_dockerd` (or :func:`running_dockerd`).

    Also a context manager: leaving the ``with`` block calls :meth:`stop`.
    """

    socket_path: str
    directory: str
    log_path: str

    def __init__(
        self,
        *,
        directory: str,
        process: subprocess.Popen[bytes],
        socket_path: str,
        log_path: str,
        containerd: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.directory = directory
        self.process = process
        self.socket_path = socket_path
        self.log_path = log_path
        self._containerd = containerd
        #: Descendants seen when dockerd came up (its containerd), pid -> start time.
        self._children: dict[int, int] = {}
        self._stopped = False
        self._stop_lock = threading.Lock()

    # -- HTTP ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 120.0,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """Send one request with ``target`` verbatim as the request target.

        Returns ``(status, headers, body)`` with the body exactly as sent (de-chunked).
        """
        conn = _UnixHTTPConnection(self.socket_path, timeout)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", _HOST_HEADER)
            conn.putheader("User-Agent", "imginspect-tests")
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            data = response.read()
            return response.status, response.headers, data
        finally:
            conn.close()

    def ping(self, timeout: float = 5.0) -> bool:
        """Whether ``GET /_ping`` answers 200 ``OK``."""
        try:
            status, _, body = self.request("GET", "/_ping", timeout=timeout)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200 and body == b"OK"

    def distribution_inspect_response(
        self,
        ref: str,
        *,
        username: str | None = None,
        password: str | None = None,
        api_version: str = "1.41",
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """Like :meth:`distribution_inspect` but also returns the response headers."""
        headers: dict[str, str] = {}
        if username is not None or password is not None:
            headers["X-Registry-Auth"] = encode_registry_auth(username, password)
        target = api_path("/distribution/" + ref + "/json", api_version)
        return self.request("GET", target, headers=headers)

    def distribution_inspect(
        self,
        ref: str,
        *,
        username: str | None = None,
        password: str | None = None,
        api_version: str = "1.41",
    ) -> tuple[int, bytes]:
        """``GET /v{api}/distribution/{ref}/json``; returns ``(status, exact body bytes)``.

        ``ref`` goes into the path the way the docker CLI puts it there (see :func:`api_path`):
        ``127.0.0.1:5000/corpus/foo:tag`` becomes
        ``/v1.41/distribution/127.0.0.1:5000/corpus/foo:tag/json``.
        Credentials travel in ``X-Registry-Auth`` (see :func:`encode_registry_auth`).
        """
        status, _, body = self.distribution_inspect_response(
            ref, username=username, password=password, api_version=api_version
        )
        return status, body

    # -- lifecycle ----------------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of dockerd's (and its containerd's) log."""
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return "<no dockerd log>"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """Stop dockerd and its containerd, undo leftover mounts, remove the directory.

        Idempotent. SIGTERM first (dockerd shuts its containerd down and unmounts its data root),
        SIGKILL for the process group and every descendant still alive after ``timeout``.
        """
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            tree = dict(self._children)
            if self.process.poll() is None:
                tree.update(_descendants(self.process.pid))
            _terminate_group(self.process, timeout)
            for pid, starttime in tree.items():
                _kill_exact(pid, starttime)
            if self._containerd is not None:
                _terminate_group(self._containerd, timeout)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(_alive(p, s) for p, s in tree.items()):
                time.sleep(0.05)
            _reap_adopted(tree)
        finally:
            with _running_lock:
                _running.discard(self)
            _unmount_under(self.directory)
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Dockerd:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Dockerd pid={self.process.pid} socket={self.socket_path!r}>"


def _make_directory(tmpdir: str | os.PathLike[str] | None) -> str:
    parent: str | None = None
    if tmpdir is not None:
        candidate = os.path.abspath(os.fspath(tmpdir))
        # mkdtemp adds "/dkd" + 8 characters.
        if len(candidate) + 12 + len(_LONGEST_SOCKET_SUFFIX) <= _MAX_SOCKET_PATH:
            parent = candidate
    if parent is None:
        parent = "/tmp" if os.path.isdir("/tmp") else None
    return tempfile.mkdtemp(prefix="dkd", dir=parent)


def _start_containerd(
    directory: str, log: int, deadline: float
) -> tuple[subprocess.Popen[bytes], str]:
    base = os.path.join(directory, "c")
    os.makedirs(base, mode=0o711)
    address = os.path.join(base, "c.sock")
    config = os.path.join(base, "config.toml")
    Path(config).write_text(
        "version = 2\n"
        f'root = "{base}/root"\n'
        f'state = "{base}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "[grpc]\n"
        f'  address = "{address}"\n'
        "[ttrpc]\n"
        f'  address = "{address}.ttrpc"\n'
        "[debug]\n"
        '  address = ""\n'
        "[metrics]\n"
        '  address = ""\n'
        '[plugins."io.containerd.internal.v1.opt"]\n'
        f'  path = "{base}/opt"\n'
    )
    proc = subprocess.Popen(
        [CONTAINERD_BINARY, "--config", config],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
        env=_child_env(),
        start_new_session=True,
        preexec_fn=_set_pdeathsig,
    )
    if not _wait_for_socket(address, proc, deadline):
        _terminate_group(proc, 5)
        raise DockerdError(f"containerd for the test dockerd did not come up on {address}")
    return proc, address


def start_dockerd(
    tmpdir: str | os.PathLike[str] | None = None,
    *,
    timeout: float = 60.0,
    own_containerd: bool | None = None,
    extra_args: tuple[str, ...] = (),
    daemon_config: Mapping[str, object] | None = None,
) -> Dockerd:
    """Start a private dockerd and wait until ``GET /_ping`` answers ``OK``.

    ``tmpdir``: parent for the working directory if it is short enough for unix socket paths,
    else ``/tmp`` is used (the directory is removed by :meth:`Dockerd.stop`).
    ``own_containerd``: start a private containerd and pass ``--containerd`` (default: only if a
    system containerd socket exists, which dockerd would otherwise share).
    ``daemon_config``: extra daemon.json keys (e.g. ``{"insecure-registries": [...]}``).
    Raises :class:`DockerdError` with the tail of dockerd's log if it does not come up in
    ``timeout`` seconds.
    """
    directory = _make_directory(tmpdir)
    deadline = time.monotonic() + timeout
    socket_path = os.path.join(directory, "docker.sock")
    log_path = os.path.join(directory, "dockerd.log")
    config_path = os.path.join(directory, "daemon.json")
    config: dict[str, object] = {"deprecated-key-path": os.path.join(directory, "key.json")}
    config.update(daemon_config or {})
    Path(config_path).write_text(json.dumps(config))

    containerd: subprocess.Popen[bytes] | None = None
    proc: subprocess.Popen[bytes] | None = None
    dockerd: Dockerd | None = None
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        args = [
            DOCKERD_BINARY,
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--ip-forward=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--storage-driver=vfs",
            "--data-root", os.path.join(directory, "d"),
            "--exec-root", os.path.join(directory, "e"),
            "--pidfile", os.path.join(directory, "dockerd.pid"),
            "-H", "unix://" + socket_path,
            "--config-file", config_path,
        ]  # fmt: skip
        if own_containerd is None:
            own_containerd = _system_containerd_present()
        if own_containerd:
            containerd, address = _start_containerd(directory, log_fd, deadline)
            args += ["--containerd", address]
        args += list(extra_args)
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env=_child_env(),
            start_new_session=True,
            preexec_fn=_set_pdeathsig,
        )
        dockerd = Dockerd(
            directory=directory,
            process=proc,
            socket_path=socket_path,
            log_path=log_path,
            containerd=containerd,
        )
        with _running_lock:
            _running.add(dockerd)
        while not dockerd.ping(timeout=2):
            if proc.poll() is not None:
                raise DockerdError(
                    f"dockerd exited with status {proc.returncode} before answering /_ping:\n"
                    + dockerd.log_tail()
                )
            if time.monotonic() > deadline:
                raise DockerdError(
                    f"dockerd did not answer /_ping on {socket_path} within {timeout:g}s:\n"
                    + dockerd.log_tail()
                )
            time.sleep(0.05)
        dockerd._children = _descendants(proc.pid)
    except BaseException:
        if dockerd is not None:
            dockerd.stop(timeout=5)
        else:
            if containerd is not None:
                _terminate_group(containerd, 5)
            _unmount_under(directory)
            shutil.rmtree(directory, ignore_errors=True)
        raise
    finally:
        os.close(log_fd)
    return dockerd


@contextlib.contextmanager
def running_dockerd(
    tmpdir: str | os.PathLike[str] | None = None,
    *,
    timeout: float = 60.0,
    own_containerd: bool | None = None,
    extra_args: tuple[str, ...] = (),
    daemon_config: Mapping[str, object] | None = None,
) -> Iterator[Dockerd]:
    """Context manager form of :func:`start_dockerd`."""
    dockerd = start_dockerd(
        tmpdir,
        timeout=timeout,
        own_containerd=own_containerd,
        extra_args=extra_args,
        daemon_config=daemon_config,
    )
    try:
        yield dockerd
    finally:
        dockerd.stop()


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        instances = list(_running)
    for instance in instances:
        with contextlib.suppress(Exception):
            instance.stop(timeout=10)
