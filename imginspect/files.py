"""Reading the user's configuration files: bounded, regular files only, never blocking.

Shared by :mod:`imginspect.credentials` (config.json, auth.json),
:mod:`imginspect.settings` (daemon.json) and :mod:`imginspect.layout` (layout directories),
which read files that may be anything: a FIFO
planted at the path would block an ``open()`` forever, a device would never end. Here a file
must be a regular file before it is opened (without blocking), and is read to at most
``limit`` bytes.
Also the home and XDG directories as both find them. Standard library only.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Raises ``FileNotFoundError`` when it does not exist, ``IsADirectoryError`` for a
    directory, and another ``OSError`` for anything else that is not a readable regular file
    (a FIFO, a device, a file larger than ``limit``).
    """
    # Looked at before it is opened: opening a FIFO releases a writer waiting on it, and
    # opening a device can act (a tape rewinds, a watchdog arms). The fstat after the open
    # catches a file replaced in between.
    _check_regular(os.stat(path), path, limit)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        _check_regular(os.fstat(fd), path, limit)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:  # it grew while being read
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
    return b"".join(chunks)


def _check_regular(info: os.stat_result, path: Path, limit: int) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    if info.st_size > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))


def home(environ: Mapping[str, str]) -> Path:
    """``$HOME``, else the user's home directory."""
    value = environ.get("HOME")
    return Path(value) if value else Path.home()


def xdg_config_home(environ: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME``, else ``~/.config``."""
    configured = environ.get("XDG_CONFIG_HOME")
    return Path(configured) if configured else home(environ) / ".config"


def os_reason(exc: OSError) -> str:
    """The reason an OSError gives, without its path (messages name the file themselves)."""
    return exc.strerror or str(exc) or type(exc).__name__
