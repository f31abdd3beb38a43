"""The ``--json`` import graph does not grow unnoticed (issue 15: start-up at the httpx floor).

``python -X importtime -m imginspect --json REF`` lists every module the run imports. Minus what
the bare interpreter imports at start-up in the same environment (``-c pass``: site, .pth files
such as an editable install's finder or coverage's subprocess hook), the set must be a subset of
the allow-list below: imginspect's own modules by full name, everything else by top-level
package (stable across patch releases of the dependencies). An added import fails this test,
naming it, until the list is updated on purpose (after checking what it costs at start-up:
``python -X importtime -m imginspect --json REF 2>&1 | sort -t'|' -k2 -n | tail``).

The list is a superset across the supported Pythons and dependency versions (a module only
some of them import is allowed); names a run does not import are fine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.corpus import PushedImage
from tests.support.registry import Registry

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYOUT = REPO_ROOT / "examples" / "multiarch"

#: imginspect's modules a ``--json`` run may import (full names).
OWN_MODULES = frozenset(
    {
        "imginspect",
        "imginspect._httpx_compat",
        "imginspect._record",
        "imginspect.auth",
        "imginspect.batch",
        "imginspect.cache",
        "imginspect.challenge",
        "imginspect.checks",
        "imginspect.cli",
        "imginspect.connections",
        "imginspect.console",
        "imginspect.credentials",
        "imginspect.dial",
        "imginspect.digest",
        "imginspect.errors",
        "imginspect.files",
        "imginspect.hosts",
        "imginspect.http11",
        "imginspect.inspector",
        "imginspect.jsonenc",
        "imginspect.layout",
        "imginspect.manifest",
        "imginspect.mediatypes",
        "imginspect.options",
        "imginspect.output",
        "imginspect.platforms",
        "imginspect.progress",
        "imginspect.reference",
        "imginspect.registry",
        "imginspect.result",
        "imginspect.settings",
        "imginspect.sources",
        "imginspect.target",
        "imginspect.transport",
        "imginspect.warmup",
    }
)

#: Other top-level packages and modules a ``--json`` run may import. Windows-only modules the
#: stdlib probes for are listed because ``-X importtime`` reports the attempt; so are the
#: modules urllib.request brings (http, email, calendar, quopri), which reads the system's
#: proxy settings on macOS and Windows. httpx, httpcore and h11 are not here: the transport
#: speaks HTTP/1.1 itself (imginspect.http11) and imports them only for a proxy.
OTHER_PACKAGES = frozenset(
    {
        # dependencies
        "certifi", "click", "platformdirs",
        # standard library
        "_ast", "_bisect", "_blake2", "_bz2", "_compression", "_contextvars", "_datetime",
        "_hashlib", "_json", "_locale", "_lzma", "_opcode", "_opcode_metadata",
        "_posixsubprocess", "_random", "_sha2", "_sha512", "_socket", "_ssl", "_string",
        "_struct", "_typing", "_uuid", "_weakrefset", "_colorize", "_wmi", "annotationlib",
        "array", "ast", "atexit", "base64", "binascii", "bisect", "bz2", "calendar",
        "collections", "contextvars", "copy", "dataclasses", "datetime", "dis",
        "email", "encodings", "fcntl", "gc", "gettext", "grp", "hashlib", "http",
        "importlib", "inspect", "json", "linecache", "locale", "logging", "lzma", "math",
        "msvcrt", "nt", "opcode", "org", "platform", "pwd", "quopri", "random",
        "runpy", "select", "selectors", "shutil", "signal", "socket", "ssl", "string",
        "stringprep", "struct", "subprocess", "tarfile", "tempfile", "textwrap", "threading",
        "token", "tokenize", "traceback", "typing", "unicodedata", "urllib", "uuid", "warnings",
        "weakref", "winreg", "zlib",
    }
)  # fmt: skip

_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$")
_TREE_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)\s*$")

#: Modules imginspect needs only off the ``--json`` path, imported where they are used: the
#: "did you mean" of an unknown command or tag (difflib), credential helpers (subprocess,
#: shutil.which). A dependency may still import them (on Python 3.10 click's uuid imports
#: platform, which imports subprocess; certifi's importlib.resources imports tempfile and
#: shutil), so these are not checked by the allow-list but by who imports them.
LAZY_MODULES = ("difflib", "subprocess", "shutil")


def imported_modules(stderr: str) -> set[str]:
    """Module names of ``-X importtime`` lines (the column header is not one)."""
    return {m.group(1) for line in stderr.splitlines() if (m := _LINE.match(line))}


def child_env(tmp_path: Path) -> dict[str, str]:
    """No coverage hook, no PYTHONPATH tricks, no caller settings (a proxy imports httpx):
    the program's own imports."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COVERAGE_", "IMGINSPECT_", "PYTHON"))
        and not k.lower().endswith("_proxy")
    }
    env["IMGINSPECT_CACHE_DIR"] = str(tmp_path / "cache")
    env["HOME"] = str(tmp_path)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return env


def importers(stderr: str) -> dict[str, str | None]:
    """Each module of ``-X importtime`` output and the module whose import ran its import
    (``None``: imported at top level, or at run time by a function)."""
    rows = [(len(m[1]), m[2]) for line in stderr.splitlines() if (m := _TREE_LINE.match(line))]
    # A module's line follows those of the modules its import ran, which are indented deeper.
    return {
        name: next((outer for d, outer in rows[i + 1 :] if d < depth), None)
        for i, (depth, name) in enumerate(rows)
    }


def run_importtime(
    tmp_path: Path, args: list[str]
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = child_env(tmp_path)
    cmd = [sys.executable, "-X", "importtime"]
    startup = subprocess.run(
        [*cmd, "-c", "pass"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    done = subprocess.run(
        [*cmd, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    return done, imported_modules(done.stderr) - imported_modules(startup.stderr)


def not_allowed(modules: set[str]) -> list[str]:
    """What the allow-list does not cover: own modules by name, others by top-level name."""
    new = set()
    for name in modules:
        if name.split(".")[0] == "imginspect":
            if name not in OWN_MODULES:
                new.add(name)
        elif name.split(".")[0] not in OTHER_PACKAGES:
            new.add(name)
    return sorted(new)


def check(done: subprocess.CompletedProcess[str], modules: set[str]) -> None:
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith(("{", "[")), done.stdout[:200]
    # Not vacuous: the run's own modules were seen.
    assert {"imginspect.cli", "imginspect.inspector"} <= modules, sorted(modules)
    new = not_allowed(modules)
    assert not new, (
        "the --json run imports modules the allow-list in tests/test_import_graph.py does "
        f"not have: {', '.join(new)}. If that is on purpose (check their -X importtime cost), "
        "add them to OWN_MODULES/OTHER_PACKAGES."
    )


def test_json_of_a_layout_imports_only_allowed_modules(tmp_path: Path) -> None:
    done, modules = run_importtime(tmp_path, ["-m", "imginspect", "--json", f"oci:{LAYOUT}"])
    check(done, modules)


def test_json_of_a_registry_reference_imports_only_allowed_modules(
    tmp_path: Path, registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    image = corpus_plain["oci-index"]
    ref = registry_plain.ref(image.repo, image.tag)
    done, modules = run_importtime(tmp_path, ["-m", "imginspect", "--json", ref])
    check(done, modules)


@pytest.mark.parametrize("extra", ["asyncio", "rich", "imginspect.template"])
def test_an_added_import_fails_the_check(tmp_path: Path, extra: str) -> None:
    """The check catches a new import: the same run with one more module imported first
    (a heavy stdlib package, the console library the CLI must not load for --json, and an
    own module --json does not need)."""
    program = f"import {extra}, runpy; runpy.run_module('imginspect', run_name='__main__')"
    done, modules = run_importtime(tmp_path, ["-c", program, "--json", f"oci:{LAYOUT}"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert extra.split(".")[0] in {m.split(".")[0] for m in not_allowed(modules)}
    with pytest.raises(AssertionError, match=re.escape(extra)):
        check(done, modules)


def lazy_imports_seen(stderr: str) -> dict[str, str | None]:
    """The LAZY_MODULES the run imported itself (not through a dependency), with who did."""
    found = importers(stderr)
    return {
        name: found[name]
        for name in LAZY_MODULES
        if name in found and ((who := found[name]) is None or who.split(".")[0] == "imginspect")
    }


@pytest.mark.parametrize("where", ["layout", "registry"])
def test_json_run_does_not_import_what_only_other_paths_need(
    tmp_path: Path, registry_plain: Registry, corpus_plain: dict[str, PushedImage], where: str
) -> None:
    image = corpus_plain["oci-index"]
    ref = f"oci:{LAYOUT}" if where == "layout" else registry_plain.ref(image.repo, image.tag)
    done, _ = run_importtime(tmp_path, ["-m", "imginspect", "--json", ref])
    assert done.returncode == 0, done.stderr[-2000:]
    assert importers(done.stderr).get("imginspect.cli") is None, "the tree is read"
    assert lazy_imports_seen(done.stderr) == {}


def test_lazy_import_check_catches_an_import_by_imginspect_or_at_run_time(
    tmp_path: Path,
) -> None:
    """Not vacuous: a module imported at run time (here by the program, before the CLI runs)
    is caught, and so is one an imginspect module imports, whatever imports that module."""
    program = "import difflib, runpy; runpy.run_module('imginspect', run_name='__main__')"
    done, _ = run_importtime(tmp_path, ["-c", program, "--json", f"oci:{LAYOUT}"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert lazy_imports_seen(done.stderr) == {"difflib": None}
    nested = (
        "import time:       100 |        100 |       _posixsubprocess\n"
        "import time:       100 |        200 |     subprocess\n"
        "import time:       100 |        300 |   imginspect.credentials\n"
        "import time:       100 |        100 |     shutil\n"
        "import time:       100 |        100 |   tempfile\n"
        "import time:       100 |        500 | imginspect.cli\n"
    )
    assert importers(nested) == {
        "_posixsubprocess": "subprocess",
        "subprocess": "imginspect.credentials",
        "imginspect.credentials": "imginspect.cli",
        "shutil": "tempfile",
        "tempfile": "imginspect.cli",
        "imginspect.cli": None,
    }
    assert lazy_imports_seen(nested) == {"subprocess": "imginspect.credentials"}


def test_a_plain_http_registry_whose_scheme_is_cached_loads_no_tls(
    tmp_path: Path, registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    """ssl (with _ssl, OpenSSL's bindings: 4-8 ms of start-up) is imported only where TLS is
    used: a cold run against an insecure registry probes https; a warm run against a
    plain-HTTP one (its scheme cached, as for a CI job's localhost:5000) does not."""
    image = corpus_plain["oci-index"]
    args = ["-m", "imginspect", "--json", registry_plain.ref(image.repo, image.tag)]
    cold, cold_modules = run_importtime(tmp_path, args)
    assert cold.returncode == 0, cold.stderr[-2000:]
    assert "ssl" in cold_modules  # the https probe: the check below can fail
    warm, warm_modules = run_importtime(tmp_path, args)
    assert warm.returncode == 0, warm.stderr[-2000:]
    assert not {"ssl", "_ssl"} & warm_modules, sorted(warm_modules)


def test_tls_needs_no_idna_codec(
    tmp_path: Path, registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    """Host names reach getaddrinfo and OpenSSL as ASCII bytes: a str would be encoded with
    the "idna" codec, whose import (stringprep, unicodedata) costs over a millisecond of
    every run's start-up. A cold run against an insecure registry does both (the https probe
    is a TLS handshake): not vacuous, ssl is seen."""
    image = corpus_plain["oci-index"]
    args = ["-m", "imginspect", "--json", registry_plain.ref(image.repo, image.tag)]
    done, modules = run_importtime(tmp_path, args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ssl" in modules
    assert not {"encodings.idna", "stringprep"} & modules, sorted(modules)


def test_a_batch_does_not_import_concurrent_futures_or_logging(
    tmp_path: Path, registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    """A batch runs its references on imginspect.batch's own thread pool: the executor of
    concurrent.futures imports logging (with traceback, string...), about 5 ms of the
    start-up of every batch. Not vacuous: several references, so the pool is used."""
    refs = [registry_plain.ref(image.repo, image.tag) for image in corpus_plain.values()][:4]
    done, modules = run_importtime(tmp_path, ["-m", "imginspect", "--json", *refs])
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.splitlines()) == len(refs) > 1
    assert not {"concurrent", "concurrent.futures", "logging"} & modules, sorted(modules)
