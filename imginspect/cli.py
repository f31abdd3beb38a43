"""The command line: parses arguments, runs inspections, prints results, maps errors.

This is the only module that imports click, and the one place where errors become
``error: ...`` / ``hint: ...`` lines and exit codes. stdout carries results only; debug
output and errors go to stderr. rich is imported only when a table is printed, and the
library modules only once a command actually runs.
"""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

from imginspect import __version__, console
from imginspect.batch import batch_exit_code, inspect_many
from imginspect.console import OutputError, ReaderGone, exit_now
from imginspect.console import skip_async_frameworks as _skip_async_frameworks  # noqa: F401
from imginspect.errors import ExitCode, ImginspectError, UsageError
from imginspect.options import (
    AUTH_OPTIONS,
    CREDENTIAL_PARAMS,
    DIFF_OPTIONS,
    INSPECT_OPTIONS,
    REFERRERS_OPTIONS,
    TAGS_OPTIONS,
    OptionSpec,
)
from imginspect.output import OutputMode, visible

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from imginspect.cache import Cache
    from imginspect.inspector import Inspector
    from imginspect.settings import RegistrySettings

EPILOG = """\b
Examples:
  imginspect ubuntu:24.04                          platform table
  imginspect --json ubuntu:24.04 | jq .Platforms   the Docker Engine's JSON
  imginspect --require linux/amd64,linux/arm64 ghcr.io/org/app:1.2
  imginspect --digest --platform linux/arm64 ubuntu:24.04
  imginspect --expect-digest sha256:... ubuntu:24.04
  imginspect --json -f images.txt                  one JSON line per reference
  imginspect --image-config ubuntu:24.04           config, layers, history per platform
  imginspect --format '{{json .Config.Labels}}' --platform linux/amd64 ubuntu:24.04

\b
Exit codes:
  0 ok              1 registry/protocol error    2 usage / invalid reference
  3 auth refused    4 not found                  5 network/TLS/timeout
  6 rate limited    7 required platform missing  8 digest differs from expected
  9 diff: the images differ (7 also: referrers --require-evidence unmet)
  130 interrupted (Ctrl-C)   143 terminated (SIGTERM)   141 stdout closed by its reader
  (batches: the highest failure 1-6, else the highest check 7-8; stdout closed or full: 2)
"""

_TYPES: dict[str, Callable[[OptionSpec], Any]] = {
    "choice": lambda spec: click.Choice(list(spec.choices)),
    "int_range": lambda spec: click.IntRange(*spec.range),  # type: ignore[arg-type]
    "float_range": lambda spec: click.FloatRange(*spec.range),
    "dir": lambda spec: click.Path(file_okay=False),
    "file": lambda spec: click.Path(dir_okay=False),
    "open_file": lambda spec: click.File("r"),
}


def _completer(words: tuple[str, ...]) -> Callable[..., list[CompletionItem]]:
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> Any:
        from click.shell_completion import CompletionItem

        return [CompletionItem(w) for w in words if w.startswith(incomplete)]

    return complete


def _option(spec: OptionSpec) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option an :class:`~imginspect.options.OptionSpec` describes."""
    given = {
        "metavar": spec.metavar,
        "envvar": spec.envvar,
        "multiple": spec.multiple or None,
        "show_default": spec.show_default or None,
        "default": spec.default,
        "shell_complete": _completer(spec.completions) if spec.completions else None,
        "is_flag": (spec.kind == "flag") or None,
        "type": _TYPES[spec.kind](spec) if spec.kind in _TYPES else None,
    }
    kwargs: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    if spec.kind == "bool_pair":
        kwargs["default"] = spec.default  # --x/--no-x: None when neither is given
    return click.option(*spec.flags, spec.dest, help=spec.help, **kwargs)


def _options(specs: tuple[OptionSpec, ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command with the options of ``specs``, in that (--help) order."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for spec in reversed(specs):
            func = _option(spec)(func)
        return func

    return decorate


#: The cache of the running inspection: flushed once more when SIGTERM cut its flush short.
_run_cache: Cache | None = None


def _stderr(line: str) -> None:
    # Errors, warnings and --debug lines quote what a registry sent (its error messages, its
    # headers): non-printing characters are written as escapes, so an ESC or C1 sequence
    # cannot rewrite the terminal, nor a U+202E reorder the line. Our own text is printable.
    click.echo(visible(line), err=True)


def _report(error: ImginspectError, given: str | None) -> None:
    for line in console.error_lines(error, given):
        _stderr(line)


def _echo(text: str, *, nl: bool = True) -> None:
    """click.echo to stdout, a write failure (other than a reader gone away) typed."""
    with console.writing_stdout():
        click.echo(text, nl=nl)
        sys.stdout.flush()


#: A first argument that can only be a mistyped subcommand when it is close to one: a bare
#: lowercase word (no registry, path, tag or digest). Written otherwise (`cahce:latest`,
#: `docker.io/library/cahce`) it is inspected.
_BARE_WORD = re.compile(r"[a-z]+")


_GROUP_OPTIONS = ("--help", "-h", "--version")


class DefaultGroup(click.Group):
    """A group whose default command is ``inspect``: ``imginspect REF`` means
    ``imginspect inspect REF``, while ``imginspect auth REF`` etc. run subcommands."""

    default_command = "inspect"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # While completing the first word, stay at the group: it offers the subcommands.
        completing_first_word = not args and ctx.resilient_parsing
        if not completing_first_word and (
            not args or (args[0] not in self.commands and args[0] not in _GROUP_OPTIONS)
        ):
            if args and not ctx.resilient_parsing and _BARE_WORD.fullmatch(args[0]):
                import difflib  # only for a bare first word: not on the path of a reference

                close = difflib.get_close_matches(args[0], list(self.commands), n=1, cutoff=0.75)
                if close:
                    word = args[0]
                    raise UsageError(
                        f"unknown command {word!r}",
                        hint=f"did you mean `{ctx.command_path} {close[0]}`? (to inspect an "
                        f"image of that name, write {word}:latest)",
                    )
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] REFERENCE... | COMMAND [ARGS]...")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # `imginspect --help` shows what `imginspect REFERENCE` takes: the default command's
        # options, then the group's own (--version) and the subcommands.
        default = self.commands[self.default_command]
        sub = click.Context(default, parent=ctx, info_name=self.default_command)
        records = [r for p in default.get_params(sub) if (r := p.get_help_record(sub))]
        records += [
            r
            for p in self.get_params(ctx)
            if (r := p.get_help_record(ctx)) and not r[0].startswith("-h")
        ]
        with formatter.section("Options"):
            formatter.write_dl(records)
        self.format_commands(ctx, formatter)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        # `imginspect --<TAB>` means the default command's options.
        default = self.commands[self.default_command]
        if incomplete.startswith("-"):
            return default.shell_complete(ctx, incomplete)
        return super().shell_complete(ctx, incomplete)


@click.group(
    cls=DefaultGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.version_option(__version__, "--version", prog_name="imginspect")
def cli() -> None:
    """Inspect container images in their registry without pulling them: what a tag points
    to (media type, digest, size) and which platforms it supports.

    `imginspect REFERENCE...` is short for `imginspect inspect REFERENCE...`.
    """


@cli.command(
    "inspect",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.argument("references", nargs=-1, metavar="REFERENCE...")
@_options(INSPECT_OPTIONS)
def inspect_command(references: tuple[str, ...], ref_file: IO[str] | None, **params: Any) -> None:
    """Inspect REFERENCE(s) in their registry without pulling them.

    REFERENCE is an image reference as docker takes it: ubuntu, ubuntu:24.04,
    ghcr.io/org/app@sha256:..., localhost:5000/team/app:1.2.
    """
    from imginspect import options
    from imginspect.progress import Progress

    # click passes every option by name; the credential options go on as one group.
    credential_params = {name: params.pop(name) for name in CREDENTIAL_PARAMS}
    request, style = options.request_from_options(params)
    reads_stdin = ref_file is not None and getattr(ref_file, "name", "") == "<stdin>"
    if credential_params["password_stdin"] and reads_stdin:
        raise UsageError("--password-stdin and -f - cannot both read standard input")
    first, all_refs, batch, counter = console.references_of_run(references, ref_file)
    if batch and request.mode is OutputMode.RAW:
        raise UsageError("--raw takes a single reference")
    first_domain = options.domain_of(first)
    debug = bool(params["debug"])
    log = (lambda line: _stderr(f"debug: {line}")) if debug else None

    def warn(message: str) -> None:
        _stderr(f"warning: {message}")

    open_cache = (lambda: _open_cache(log)) if not params["no_cache"] else (lambda: None)
    # Made when first wanted: by the warm-up for Docker Hub's mirrors, else below (importing
    # imginspect.settings is ~7 ms a connection to another registry need not wait for).
    settings = functools.cache(
        lambda: options.registry_settings(
            credential_params["certs_dirs"], credential_params["daemon_config"], warn=warn, log=log
        )
    )
    if first_domain is not None:
        cache = _warm_up(
            first_domain,
            insecure=bool(params["insecure"]),
            open_cache=open_cache,
            settings=settings,
        )
    else:
        cache = open_cache()
    resolver, registry_settings = options.credentials_and_settings(
        **credential_params, first_domain=first_domain, log=log, warn=warn, settings=settings()
    )
    if not credential_params["anonymous"]:
        hint = functools.partial(options.where_credentials_were_sought, resolver)
        request = replace(request, credentials_hint=hint)
    codes: set[int] = set()
    with (
        options.make_inspector(
            resolver=resolver,
            settings=registry_settings,
            insecure=params["insecure"],
            max_wait=params["max_wait"],
            cache=cache,
            log=log,
        ) as inspector,
        Progress.for_run(
            batch=batch, sizes=request.sizes, debug=debug, total=lambda: counter.total
        ) as progress,
        console.ResultWriter(
            request.mode, style, batch=batch, template=request.template
        ) as results,
    ):
        if not batch:
            request = replace(request, on_size=progress.advance)
        workers = params["concurrency"] if batch else 1
        for outcome in inspect_many(inspector, all_refs, request, concurrency=workers):
            with progress.cleared():  # results and errors never share a line with it
                results.write(outcome)
                if outcome.error is not None:
                    results.flush()  # its error line follows it, where both go to one file
                    _report(outcome.error, outcome.given if batch else None)
            progress.outcome_written(batch=batch)
            codes.add(outcome.exit_code)
    code = batch_exit_code(codes)
    if code:
        sys.exit(code)


def _warm_up(
    domain: str,
    *,
    insecure: bool,
    open_cache: Callable[[], Cache | None],
    settings: Callable[[], RegistrySettings] | None = None,
) -> Cache | None:
    """Connect to the first reference's registry while the HTTP stack loads and the
    configuration is read (see :mod:`imginspect.warmup`); returns the run's cache, which
    ``open_cache`` opens. A registry spoken to over https only is connected to before the
    cache is opened (its directory checked and opened, platformdirs imported where it is
    needed: up to 5-10 ms, which a connection to a distant registry would otherwise start
    after): the cache cannot change where it goes.
    An insecure one (its scheme may be cached) and Docker Hub's token service (not needed
    when a challenge is cached) wait for the cache. With ``registry-mirrors`` in the
    daemon.json of ``settings()`` (made only for Docker Hub), Docker Hub references go to
    the first mirror first: that is the connection warmed, not Docker Hub's (which a network
    that only lets the mirror through may never answer)."""
    from imginspect import warmup
    from imginspect.reference import (
        DEFAULT_DOMAIN,
        DOCKER_HUB_API_HOST,
        is_docker_hub,
        is_loopback_host,
    )

    api_host = DOCKER_HUB_API_HOST if domain == DEFAULT_DOMAIN else domain
    mirror = _first_mirror(settings, domain) if is_docker_hub(domain) else None
    if mirror is not None:
        warmup.start_for_url(mirror)
        return open_cache()
    if not (insecure or is_loopback_host(domain)):
        started = warmup.start_for_domain(domain, insecure=False)
        cache = open_cache()
    else:
        cache = open_cache()
        known = (cache.get_host(api_host) or {}) if cache is not None else {}
        started = warmup.start_for_domain(
            domain, insecure=insecure, scheme_known=bool(known.get("scheme"))
        )
    if not started:
        return cache  # a proxy, or a name that cannot be connected to
    if domain == DEFAULT_DOMAIN and (
        cache is None or "challenge" not in (cache.get_host(api_host) or {})
    ):
        # A first run on Docker Hub: its 401 will name auth.docker.io, whose token is the
        # next request. Once the challenge is cached, a token may be too: nothing then.
        warmup.start_for_realm(warmup.DOCKER_HUB_REALM, api_host)
    return cache


def _first_mirror(settings: Callable[[], RegistrySettings] | None, domain: str) -> str | None:
    """The URL of the first mirror ``settings()`` name for ``domain``; None without one, or
    when the daemon config cannot be read (that is reported where it is used)."""
    if settings is None:
        return None
    try:
        mirrors = settings().mirrors_for(domain)
    except ImginspectError:
        return None
    return mirrors[0].base_url if mirrors else None


def _open_cache(log: Callable[[str], None] | None) -> Cache:
    """The run's cache, kept to complete its flush when SIGTERM cut it short."""
    global _run_cache
    from imginspect.cache import Cache

    _run_cache = Cache(log=log)
    return _run_cache


@cli.command("auth", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("reference", metavar="REFERENCE")
@_options(AUTH_OPTIONS)
def auth_command(reference: str, as_json: bool, insecure: bool, **credential_params: Any) -> None:
    """Say which credential REFERENCE would be inspected with, where it comes from and how
    it is used (never the secret itself), and how its registry is reached."""
    from imginspect.options import auth_explanation

    _echo(
        auth_explanation(
            reference, as_json=as_json, insecure=insecure, credential_params=credential_params
        ),
        nl=False,
    )


@cli.group("cache", invoke_without_command=True)
@click.pass_context
def cache_command(ctx: click.Context) -> None:
    """Show or clear the cache of manifests, config blobs and tokens.

    Content is stored by digest and verified on every read; tags are always re-resolved
    with a HEAD request. The directory is the user cache dir (IMGINSPECT_CACHE_DIR
    overrides it); tokens in it are readable by the owner only.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(cache_show)


@cache_command.command("show")
def cache_show() -> None:
    """Print where the cache is and what it holds."""
    from imginspect.cache import Cache

    stats = Cache().stats()
    _echo(f"path:     {stats.path}")
    _echo(f"content:  {stats.entries} entries, {stats.bytes} bytes")
    _echo(f"tags:     {stats.tags}")
    _echo(f"tokens:   {stats.tokens}")


@cache_command.command("clear")
def cache_clear() -> None:
    """Delete everything in the cache."""
    from imginspect.cache import Cache

    cache = Cache()
    cache.clear()
    _echo(f"cleared {cache.root}")


def _tool_inspector(first: str, params: dict[str, Any]) -> AbstractContextManager[Inspector]:
    """The Inspector of a `tags`/`referrers`/`diff` run, as its options describe it."""
    from imginspect.options import tool_inspector

    return tool_inspector(first, params, stderr=_stderr, open_cache=_open_cache)


@cli.command("tags", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("repository", metavar="REPOSITORY")
@_options(TAGS_OPTIONS)
def tags_command(repository: str, **params: Any) -> None:
    """List the tags of REPOSITORY (ubuntu, ghcr.io/org/app, oci:DIR), following the
    registry's pagination; streamed unless sorted."""
    from imginspect import options, supplyout
    from imginspect.tags import query_tags

    as_json = params.pop("as_json")
    query = options.tags_query(repository, params)
    with _tool_inspector(repository, params) as inspector:
        found = query_tags(inspector, query, cache=_run_cache)
        per_write = 1 if query.digests else 1000  # digests stream as each HEAD answers
        for text in supplyout.tag_writes(found, as_json=as_json, lines_per_write=per_write):
            _echo(text)


@cli.command("referrers", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("references", nargs=-1, metavar="REFERENCE...")
@_options(REFERRERS_OPTIONS)
def referrers_command(references: tuple[str, ...], ref_file: IO[str] | None, **params: Any) -> None:
    """Show the supply-chain evidence of each REFERENCE and of each platform of it: OCI
    referrers (API, else the sha256-<hex> tag schema), cosign .sig/.att/.sbom tags, and
    BuildKit attestations (SBOM, provenance) in the index."""
    from imginspect import options, referrers, supplyout

    shape = {"as_json": params.pop("as_json"), "no_trunc": params.pop("no_trunc")}
    query, workers = options.referrers_query(params, ref_file), params.pop("concurrency")
    first, given, batch, _counter = console.references_of_run(references, ref_file)
    codes: set[int] = set()
    with _tool_inspector(first, params) as inspector:
        found = referrers.referrers_many(inspector, given, query, concurrency=workers)
        for outcome, text in supplyout.referrers_writes(found, batch=batch, **shape):
            _echo(text, nl=False)
            if outcome.error is not None:
                _report(outcome.error, outcome.given if batch else None)
            codes.add(outcome.exit_code)
    if code := batch_exit_code(codes):
        sys.exit(code)


@cli.command("diff", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@_options(DIFF_OPTIONS)
def diff_command(a: str, b: str, **params: Any) -> None:
    """Compare two images (registry references or oci:/oci-archive: layouts): descriptor,
    platforms added or removed, per platform digest and size (--image-config: config fields
    and layers changed). Exit 9 when they differ."""
    from imginspect import supplyout
    from imginspect.diff import compare_targets
    from imginspect.target import parse_target

    targets = parse_target(a), parse_target(b)
    as_json, no_trunc = params.pop("as_json"), params.pop("no_trunc")
    with _tool_inspector(a, params) as inspector:
        found = compare_targets(inspector, targets, image_config=params.pop("image_config"))
    _echo(supplyout.diff_output(found, a, b, as_json=as_json, no_trunc=no_trunc), nl=False)
    if (verdict := supplyout.differ_error(found, a, b)) is not None:
        raise verdict


COMPLETION_SHELLS = ("bash", "zsh", "fish")


@cli.command("completion")
@click.argument("shell", type=click.Choice(COMPLETION_SHELLS))
def completion_command(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    bash:  imginspect completion bash > ~/.local/share/bash-completion/completions/imginspect
    zsh:   imginspect completion zsh > "${fpath[1]}/_imginspect"
    fish:  imginspect completion fish > ~/.config/fish/completions/imginspect.fish

    Options and their choices complete; references never trigger network requests.
    """
    _echo(completion_script(shell), nl=False)


def completion_script(shell: str) -> str:
    """The completion script click generates for ``shell`` (the files in completions/)."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - the Choice above prevents it
        raise UsageError(f"no completion for shell {shell!r}")
    script = cls(cli, {}, "imginspect", "_IMGINSPECT_COMPLETE").source()
    return script if script.endswith("\n") else script + "\n"


def _usage_hint(exc: click.UsageError) -> str:
    """Point at the --help of the command that was used (`imginspect --help` for inspect,
    the default command)."""
    ctx = exc.ctx
    if ctx is None or ctx.command.name == DefaultGroup.default_command:
        return "see 'imginspect --help'"
    return f"see '{ctx.command_path} --help'"


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point. Run as one (``argv`` None: ``sys.argv``), a completed run
    ends the process at once (:func:`console.finish`); given ``argv`` (from Python: a test,
    a profiler), it raises ``SystemExit`` as ``sys.exit`` does. Either way an interrupted or
    failed output ends it at once, without waiting for worker threads."""
    if not console.stdout_usable():
        _stderr("error: standard output is closed; redirect it (e.g. > /dev/null) instead")
        exit_now(int(ExitCode.USAGE))
    console.skip_async_frameworks()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, console.on_sigterm)
    code = int(ExitCode.OK)
    try:
        cli.main(args=argv, prog_name="imginspect", standalone_mode=False)
    except ImginspectError as error:
        _report(error, None)
        code = int(error.exit_code)
        if isinstance(error, OutputError):
            exit_now(code)
    except click.UsageError as exc:
        _report(UsageError(exc.format_message(), hint=_usage_hint(exc)), None)
        code = int(ExitCode.USAGE)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _stderr("error: interrupted")
        with contextlib.suppress(OSError):
            sys.stdout.flush()
        # Worker threads may be blocked in network reads: do not wait for them.
        exit_now(int(ExitCode.INTERRUPTED))
    except console.Terminated:
        _stderr("error: terminated")
        if _run_cache is not None:
            # SIGTERM may have cut Inspector.close()'s flush short: flush() completes
            # what is pending (idempotent), as the README promises.
            with contextlib.suppress(Exception):
                _run_cache.flush()
        with contextlib.suppress(OSError):
            sys.stdout.flush()
        exit_now(int(ExitCode.TERMINATED))
    except (ReaderGone, BrokenPipeError):
        # The reader went away (e.g. `| head -1`): quiet, and the status a shell tool killed
        # by SIGPIPE has, so that `set -o pipefail` scripts can tell it apart.
        exit_now(int(ExitCode.BROKEN_PIPE))
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        _stderr(f"error: {console.one_line(exc.format_message())}")
        code = exc.exit_code
    except SystemExit as exc:
        if type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):
            exit_now(int(ExitCode.BROKEN_PIPE))  # click met EPIPE in its own output (e.g. --help)
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        exit_now(int(ExitCode.BROKEN_PIPE))
    except OSError as error:
        _report(console.output_failed(error), None)
        exit_now(int(ExitCode.USAGE))
    if argv is None:
        console.finish(code)
    sys.exit(code)
