"""Keep the architecture honest: the pure core imports no I/O or presentation library,
only cli.py imports click, and the --json path never imports rich."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "imginspect"
PURE_MODULES = [
    "imginspect._record",
    "imginspect.reference",
    "imginspect.digest",
    "imginspect.mediatypes",
    "imginspect.manifest",
    "imginspect.challenge",
    "imginspect.result",
    "imginspect.jsonenc",
    "imginspect.extended",
    "imginspect.platforms",
    "imginspect.errors",
    # the library-first modules: the target grammar, sources behind one interface, checks,
    # the batch runner and output modes, and the CLI's presentation helpers (no click)
    "imginspect.target",
    "imginspect.sources",
    "imginspect.mirrors",
    "imginspect.checks",
    "imginspect.batch",
    "imginspect.output",
    "imginspect.progress",
    "imginspect.console",
    "imginspect.options",
    # the features' library and presentation: image configs, templates, tags, referrers and
    # diff (the registry is reached through an Inspector's source, never imported here)
    "imginspect.imageconfig",
    "imginspect.template",
    "imginspect.tags",
    "imginspect.referrers",
    "imginspect.diff",
    "imginspect.supplyout",
]
FORBIDDEN_IN_CORE = ("httpx", "httpcore", "click", "rich", "platformdirs", "socket", "ssl")
#: Modules that may reach the network's standard library (sockets, TLS contexts) but no HTTP
#: client, CLI or presentation library. The transport speaks HTTP/1.1 itself (http11); httpcore
#: is imported only for a proxy (imginspect.proxied).
NO_HTTP_CLIENT_MODULES = [
    "imginspect.hosts",
    "imginspect.trust",
    "imginspect.layout",
    "imginspect.http11",
    "imginspect.dial",
    "imginspect.warmup",
    "imginspect.connections",
    "imginspect.transport",
    "imginspect.registry",
]


def _imported_modules(code: str) -> set[str]:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code
            + "\nimport sys\nprint('\\n'.join(k for k, v in sys.modules.items() if v is not None))",
        ],
        check=True,
        capture_output=True,
        text=True,
        # coverage's subprocess hook (CI measures coverage) imports socket and more into
        # every Python process: measure the module alone, as a user's process loads it
        env={k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")},
    )
    return set(result.stdout.split())


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_core_imports_no_io_or_presentation(module: str) -> None:
    loaded = _imported_modules(f"import {module}")
    bad = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_IN_CORE)
    assert not bad, f"{module} pulls in {bad}"


@pytest.mark.parametrize("module", NO_HTTP_CLIENT_MODULES)
def test_modules_without_http_client(module: str) -> None:
    loaded = _imported_modules(f"import {module}")
    bad = sorted(m for m in loaded if m.split(".")[0] in ("httpx", "httpcore", "click", "rich"))
    assert not bad, f"{module} pulls in {bad}"


def _importers_of(package: str) -> set[str]:
    """The files of imginspect that import ``package`` anywhere (lazily too)."""
    importers = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            if any(n.split(".")[0] == package for n in names):
                importers.add(path.name)
    return importers


def test_only_cli_imports_click() -> None:
    assert _importers_of("click") == {"cli.py"}


def test_cli_declares_its_options_as_data() -> None:
    """Every option is an OptionSpec in imginspect.options (no click there); cli.py has one
    click.option call, the function that turns a spec into a click option."""
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "option"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "click"
    ]
    assert len(calls) == 1


def test_each_command_has_exactly_its_option_specs() -> None:
    """The commands' options are their spec tuples, in --help order, nothing added or lost."""
    import click

    from imginspect import cli, options

    specs = {
        "inspect": options.INSPECT_OPTIONS,
        "auth": options.AUTH_OPTIONS,
        "tags": options.TAGS_OPTIONS,
        "referrers": options.REFERRERS_OPTIONS,
        "diff": options.DIFF_OPTIONS,
    }
    for name, command_specs in specs.items():
        params = [p for p in cli.cli.commands[name].params if isinstance(p, click.Option)]
        assert [(p.name, p.help) for p in params] == [(s.dest, s.help) for s in command_specs]
        for param, spec in zip(params, command_specs, strict=True):
            flags = [*param.opts, *param.secondary_opts]
            assert flags == [f for flag in spec.flags for f in flag.split("/")]
            assert param.envvar == spec.envvar and param.multiple == spec.multiple


def test_only_the_table_imports_rich() -> None:
    assert _importers_of("rich") == {"table.py"}


def test_presentation_modules_have_no_click_or_rich_even_lazily() -> None:
    """progress, console and options hold what cli.py used to: none of them may grow a
    click or rich import, not even one inside a function."""
    for package in ("click", "rich"):
        assert not _importers_of(package) & {
            "progress.py",
            "console.py",
            "options.py",
            "output.py",
            "batch.py",
            "supplyout.py",
            "tags.py",
            "referrers.py",
            "diff.py",
            "imageconfig.py",
            "template.py",
        }


def test_json_path_does_not_import_rich() -> None:
    loaded = _imported_modules(
        "import imginspect.cli, imginspect.inspector, imginspect.jsonenc, imginspect.reference, "
        "imginspect.console, imginspect.options, imginspect.progress, imginspect.batch, "
        "imginspect.output, imginspect.extended\n"
        "from imginspect.output import OutputMode, render\n"
        "from imginspect.batch import Outcome\n"
        "render(Outcome(given='x'), OutputMode.JSON)\n"
    )
    assert not any(m.split(".")[0] == "rich" for m in loaded)
    assert "imginspect.table" not in loaded


def test_library_does_not_import_click() -> None:
    loaded = _imported_modules(
        "import imginspect.inspector, imginspect.jsonenc, imginspect.extended, "
        "imginspect.credentials, imginspect.settings, imginspect.layout, imginspect.cache"
    )
    assert not any(m.split(".")[0] in ("click", "rich") for m in loaded)


def test_common_path_imports_nothing_it_does_not_use() -> None:
    """A registry inspection with --json loads neither the table, nor layouts, nor async
    frameworks (the CLI keeps httpcore from importing trio and anyio)."""
    code = (
        "import sys\n"
        "from imginspect.cli import _skip_async_frameworks\n"
        "_skip_async_frameworks()\n"
        "import imginspect.cli, imginspect.inspector, imginspect.jsonenc\n"
    )
    loaded = _imported_modules(code)
    unwanted = {"rich", "trio", "anyio", "imginspect.table", "imginspect.layout", "tarfile"}
    assert not unwanted & {m if m.startswith("imginspect") else m.split(".")[0] for m in loaded}
