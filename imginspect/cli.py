"""The command line: parses arguments, runs the inspection, prints results, maps errors.

This is the only module that imports click, and the one place where errors become
``error: ...`` / ``hint: ...`` lines and exit codes. stdout carries results only; debug
output and errors go to stderr. rich is imported only when a table is printed.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

from imginspect import __version__
from imginspect.errors import ExitCode, ImginspectError, UsageError

EPILOG = """\b
Examples:
  imginspect ubuntu:24.04                     platform table
  imginspect --json ubuntu:24.04 | jq .       the Docker Engine's JSON
  imginspect --compat docker ubuntu:24.04     byte for byte what dockerd answers
  imginspect --insecure myregistry:5000/app   plain HTTP / unverified TLS

\b
Exit codes:
  0 ok            1 registry/protocol error   2 usage / invalid reference
  3 auth refused  4 not found                 5 network/TLS/timeout
  6 rate limited
"""


def _stderr(line: str) -> None:
    click.echo(line, err=True)


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.argument("reference", metavar="REFERENCE")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the Docker Engine's distribution-inspect JSON "
    '({"Descriptor":...,"Platforms":...}), corrected where the daemon is wrong.',
)
@click.option(
    "--compat",
    type=click.Choice(["docker"]),
    help="With 'docker': print byte for byte what the Docker Engine answers (implies --json).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Treat the registry as insecure: https without verification, then plain http. "
    "Loopback registries are always treated so.",
)
@click.option("--no-trunc", is_flag=True, help="Do not shorten digests in the table.")
@click.option("--debug", is_flag=True, help="Log every request and response line to stderr.")
@click.version_option(__version__, "--version", prog_name="imginspect")
def inspect_command(
    reference: str,
    as_json: bool,
    compat: str | None,
    insecure: bool,
    no_trunc: bool,
    debug: bool,
) -> None:
    """Inspect REFERENCE in its registry without pulling it: what the tag points to (media
    type, digest, size) and which platforms it supports.

    REFERENCE is an image reference as docker takes it: ubuntu, ubuntu:24.04,
    ghcr.io/org/app@sha256:..., localhost:5000/team/app:1.2.
    """
    from imginspect.inspector import Inspector
    from imginspect.reference import parse_reference

    ref = parse_reference(reference)
    log = (lambda line: _stderr(f"debug: {line}")) if debug else None
    compat_docker = compat == "docker"
    with Inspector(insecure=insecure, log=log) as inspector:
        result = inspector.inspect(ref, compat_docker=compat_docker)
    if as_json or compat_docker:
        from imginspect.jsonenc import encode_inspect

        sys.stdout.buffer.write(encode_inspect(result, compat_docker=compat_docker))
        sys.stdout.flush()
        return
    from imginspect.table import render

    render(result, sys.stdout, no_trunc=no_trunc)


def _fail(error: ImginspectError) -> NoReturn:
    _stderr(f"error: {error.message}")
    if error.hint:
        _stderr(f"hint: {error.hint}")
    sys.exit(int(error.exit_code))


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    try:
        inspect_command.main(args=argv, prog_name="imginspect", standalone_mode=False)
    except ImginspectError as error:
        _fail(error)
    except click.UsageError as exc:
        _fail(UsageError(exc.format_message(), hint="see 'imginspect --help'"))
    except (KeyboardInterrupt, click.exceptions.Abort):
        _stderr("error: interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(int(ExitCode.REGISTRY))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _stderr(f"error: {exc.format_message()}")
        sys.exit(exc.exit_code)
    sys.exit(int(ExitCode.OK))
