"""Review of how imginspect reads the user's machine, against docker/cli, containers/image and
the Docker daemon: base64 ``auth`` values wrapped over lines, a credential helper's output
size, mirror URLs holding a password in error messages, and certs.d files that are FIFOs.

Real files in tmp_path and real helper processes on PATH; nothing of the machine running the
tests is read."""

from __future__ import annotations

import base64
import json
import os
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import trustme

from imginspect.credentials import CredentialResolver, decode_auth
from imginspect.errors import CertsDirError, ConfigError
from imginspect.settings import RegistrySettings, validate_mirror
from tests.support.cli import run_imginspect

HOST = "registry.example.com:5000"
PASSWORD = "a-long-registry-token-" + "x" * 120  # long enough for base64 to wrap its output


def _resolver(
    tmp_path: Path, config: dict[str, Any], warnings: list[str], timeout: float = 30.0
) -> CredentialResolver:
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir(exist_ok=True)
    (docker_dir / "config.json").write_text(json.dumps(config))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    environ = {
        "HOME": str(tmp_path / "home"),
        "DOCKER_CONFIG": str(docker_dir),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
    }
    return CredentialResolver(environ=environ, warn=warnings.append, helper_timeout=timeout)


def _helper(tmp_path: Path, name: str, body: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text(f"#!/bin/sh\ncat >/dev/null\n{body}\n")
    path.chmod(0o755)


# ---------------------------------------------------------------------- auth values


def test_auth_wrapped_over_lines_is_read_as_docker_and_podman_read_it(tmp_path: Path) -> None:
    """``echo -n user:pass | base64`` wraps at 76 columns; a config.json written from it has
    newlines in ``auth``. Go's base64 decoder skips CR and LF, so docker and podman use it;
    imginspect warned 'not valid base64' and went anonymous."""
    wrapped = base64.encodebytes(f"alice:{PASSWORD}".encode()).decode()
    assert "\n" in wrapped.strip()
    warnings: list[str] = []
    resolver = _resolver(tmp_path, {"auths": {HOST: {"auth": wrapped}}}, warnings)
    credential = resolver.lookup(HOST, "app")
    assert credential is not None and warnings == []
    assert (credential.username, credential.password) == ("alice", PASSWORD)
    crlf = wrapped.replace("\n", "\r\n")
    assert decode_auth(crlf) == ("alice", PASSWORD)
    with pytest.raises(ValueError, match="not valid base64"):
        decode_auth(wrapped.replace("\n", " \t"))  # Go skips CR and LF, nothing else


# ---------------------------------------------------------------------- helper output


def test_helper_output_is_read_within_its_bound(tmp_path: Path) -> None:
    """A helper answering 64 MiB: the resolver kept all of it (and a copy) in memory before
    cutting it to 1 MiB; a helper streaming without end filled memory until its timeout."""
    _helper(tmp_path, "huge", "head -c 67108864 /dev/zero")
    warnings: list[str] = []
    resolver = _resolver(tmp_path, {"credsStore": "huge"}, warnings)
    tracemalloc.start()
    try:
        assert resolver.lookup(HOST, "app") is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"
    assert len(warnings) == 1 and "more than 1 MiB" in warnings[0], warnings


def test_helper_streaming_without_end_is_stopped_at_the_bound(tmp_path: Path) -> None:
    """Output past the bound ends the helper then and there: the warning says it answered
    too much, not that it timed out (the helper would stream, and sleep, for minutes)."""
    _helper(tmp_path, "stream", "head -c 2097152 /dev/zero\nexec sleep 600")
    warnings: list[str] = []
    resolver = _resolver(tmp_path, {"credsStore": "stream"}, warnings, timeout=10.0)
    assert resolver.lookup(HOST, "app") is None
    assert len(warnings) == 1 and "more than 1 MiB" in warnings[0], warnings


def test_helper_with_a_normal_answer_and_stderr_noise_still_works(tmp_path: Path) -> None:
    answer = json.dumps({"ServerURL": HOST, "Username": "alice", "Secret": PASSWORD})
    _helper(tmp_path, "noisy", f"echo 'some warning' >&2\nprintf '%s\\n' '{answer}'")
    warnings: list[str] = []
    resolver = _resolver(tmp_path, {"credsStore": "noisy"}, warnings)
    credential = resolver.lookup(HOST, "app")
    assert credential is not None and credential.password == PASSWORD and warnings == []


# ---------------------------------------------------------------------- mirror URLs


@pytest.mark.parametrize(
    "entry",
    [
        "alice:hunter2@mirror.example.com",  # no scheme
        "ftp://alice:hunter2@mirror.example.com",  # wrong scheme
        "https://alice:hunter2@mirror.example.com/?q=1",  # a query
        "https://alice:hunter2@[mirror.example.com",  # not a URL
    ],
)
def test_mirror_errors_never_echo_a_password(tmp_path: Path, entry: str) -> None:
    """Docker replaces a mirror URL's password with xxxxx in every message; imginspect
    quoted the whole entry whenever something other than the user info was wrong too."""
    with pytest.raises(ValueError) as caught:
        validate_mirror(entry)
    assert "hunter2" not in str(caught.value)
    daemon = tmp_path / "daemon.json"
    daemon.write_text(json.dumps({"registry-mirrors": [entry]}))
    with pytest.raises(ConfigError) as error:
        _ = RegistrySettings(certs_dirs=[], daemon_config=daemon, environ={}).mirrors
    assert "hunter2" not in f"{error.value.message} {error.value.hint}"
    result = run_imginspect("auth", "--daemon-config", str(daemon), "docker.io/library/alpine")
    assert result.code == 2 and "hunter2" not in result.stderr + result.text
    assert "invalid registry mirror" in result.stderr


# ---------------------------------------------------------------------- certs.d files


def _certs_dir_with(tmp_path: Path, name: str) -> tuple[RegistrySettings, Path]:
    directory = tmp_path / "certs.d" / "registry.example.com"
    directory.mkdir(parents=True)
    os.mkfifo(directory / name)
    settings = RegistrySettings(certs_dirs=[tmp_path / "certs.d"], environ={})
    return settings, directory / name


def _build_in_thread(settings: RegistrySettings, fifo: Path) -> BaseException | None:
    """ssl_context_for in a thread; a hang is released by opening the FIFO for writing."""
    outcome: list[BaseException | None] = []

    def build() -> None:
        try:
            settings.ssl_context_for("registry.example.com")
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():  # blocked in open() or read() of the FIFO: release it
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(20)
        pytest.fail(f"building the TLS context blocked on the FIFO {fifo.name}")
    return outcome[0]


@pytest.mark.parametrize("name", ["ca.crt", "client.cert", "client.key"])
def test_certs_d_fifo_is_a_typed_error_not_a_hang(tmp_path: Path, name: str) -> None:
    """A FIFO in certs.d (ca.crt, or one of a client pair) blocked OpenSSL's open() forever,
    holding the settings lock; config.json and daemon.json are already refused as
    'not a regular file'. Now a CertsDirError with a hint."""
    settings, fifo = _certs_dir_with(tmp_path, name)
    directory = fifo.parent
    leaf = trustme.CA().issue_cert("client")
    if name == "client.cert":  # the other half of the pair, a regular file
        leaf.private_key_pem.write_to_path(str(directory / "client.key"))
    elif name == "client.key":
        leaf.cert_chain_pems[0].write_to_path(str(directory / "client.cert"))
    error = _build_in_thread(settings, fifo)
    assert isinstance(error, CertsDirError), error
    assert "not a regular file" in error.message and str(fifo) in error.message
    assert error.hint
