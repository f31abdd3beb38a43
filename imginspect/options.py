"""The command line's options as data (:class:`OptionSpec` tuples per command, which cli.py
turns into click options) and their values made into library objects, without click: the
:class:`~imginspect.batch.InspectRequest` and table style (validated once for a run), the
credential resolver and registry settings, and the :class:`~imginspect.inspector.Inspector`.

Usage errors are :class:`~imginspect.errors.UsageError`; the CLI turns them into messages
and exit 2.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Literal

from imginspect._record import Record, record
from imginspect.batch import InspectRequest
from imginspect.errors import ImginspectError, UsageError
from imginspect.output import FORMAT_NAMES, OutputMode, TableStyle

if TYPE_CHECKING:
    from imginspect.cache import Cache
    from imginspect.credentials import CredentialResolver
    from imginspect.inspector import Inspector
    from imginspect.referrers import ReferrersQuery
    from imginspect.settings import RegistrySettings
    from imginspect.tags import TagsQuery
    from imginspect.template import Template

#: What an option takes, as the CLI declares it: an on/off flag, a --x/--no-x pair (None when
#: neither is given), a string, one of ``choices``, an int or float in ``range``, a directory
#: or file path (not opened), or a file opened for reading ('-' is stdin).
OptionKind = Literal[
    "flag", "bool_pair", "string", "choice", "int_range", "float_range", "dir", "file", "open_file"
]


@record
class OptionSpec(Record):
    """One command line option as data: cli.py makes it a click option (the only place that
    knows click). ``dest`` is the parameter name the command receives; ``range`` is
    (min, max), None meaning unbounded; ``completions`` are the words offered for its value."""

    flags: tuple[str, ...]
    dest: str
    help: str
    kind: OptionKind = "string"
    default: object = None
    choices: tuple[str, ...] = ()
    multiple: bool = False
    metavar: str | None = None
    envvar: str | None = None
    show_default: bool = False
    range: tuple[float | None, float | None] = (None, None)
    completions: tuple[str, ...] = ()


#: Where credentials and registry settings come from (shared by every command that reaches a
#: registry; see imginspect.credentials and imginspect.settings).
CREDENTIAL_OPTIONS = (
    OptionSpec(
        ("--config",),
        "config_dir",
        "Docker client config directory (default: $DOCKER_CONFIG, else ~/.docker): "
        "credentials from DIR/config.json (credHelpers, credsStore, auths).",
        kind="dir",
        metavar="DIR",
    ),
    OptionSpec(
        ("--authfile",),
        "authfile",
        "Take stored credentials from this podman/containers auth.json only "
        "(docker's config and DOCKER_AUTH_CONFIG are then ignored).",
        kind="file",
        metavar="FILE",
    ),
    OptionSpec(
        ("--username",),
        "username",
        "Authenticate as USER (with --password-stdin), whatever is stored; for "
        "the registry of the first reference only.",
        metavar="USER",
    ),
    OptionSpec(
        ("--password-stdin",),
        "password_stdin",
        "Read the password or token for --username from standard input.",
        kind="flag",
    ),
    OptionSpec(
        ("--anonymous",),
        "anonymous",
        "Use no credentials at all, whatever is stored.",
        kind="flag",
    ),
    OptionSpec(
        ("--certs-dir",),
        "certs_dirs",
        "certs.d root instead of /etc/docker/certs.d, ~/.config/docker/certs.d and "
        "/etc/containers/certs.d (repeatable): DIR/HOST[:PORT]/*.crt are extra CAs, "
        "*.cert + *.key a client certificate.",
        kind="dir",
        multiple=True,
        metavar="DIR",
    ),
    OptionSpec(
        ("--daemon-config",),
        "daemon_config",
        "daemon.json to take insecure-registries and registry-mirrors from "
        "(default: /etc/docker/daemon.json, or ~/.config/docker/daemon.json).",
        kind="file",
        metavar="FILE",
    ),
)

#: The parameter names of the credential options.
CREDENTIAL_PARAMS = tuple(spec.dest for spec in CREDENTIAL_OPTIONS)

#: TLS: shared by `inspect`, `auth` (which explains what inspect would do) and the tools.
INSECURE_OPTION = OptionSpec(
    ("--insecure",),
    "insecure",
    "Treat the registries as insecure: https without verification, then plain http. "
    "Loopback registries are always treated so.",
    kind="flag",
)

_NO_TRUNC = OptionSpec(
    ("--no-trunc",), "no_trunc", "Do not shorten digests in the table.", kind="flag"
)

_REF_FILE = OptionSpec(
    ("-f", "--file"),
    "ref_file",
    "Read references from FILE, one per line ('#' starts a comment); '-' reads stdin.",
    kind="open_file",
)

#: `imginspect inspect` (and `imginspect REFERENCE...`), in --help order.
INSPECT_OPTIONS = (
    _REF_FILE,
    OptionSpec(
        ("--json",),
        "as_json",
        "Print the Docker Engine's distribution-inspect JSON "
        '({"Descriptor":...,"Platforms":...}), corrected where the daemon is wrong. '
        "One line per reference.",
        kind="flag",
    ),
    OptionSpec(
        ("--format",),
        "output_format",
        "Output format: table (default), json (as --json), extended-json: everything "
        "the table shows, as a versioned JSON document (schema: "
        "imginspect/schemas/extended-v1.json), extended-json-v2: the same with --image-config's "
        "images (extended-v2.json); anything else is a Go template, as docker's --format: "
        "'{{json .Config.Labels}}'.",
        metavar="FORMAT|TEMPLATE",
        completions=FORMAT_NAMES,
    ),
    OptionSpec(
        ("--compat",),
        "compat",
        "With 'docker': print byte for byte what the Docker Engine answers (implies --json).",
        kind="choice",
        choices=("docker",),
    ),
    OptionSpec(
        ("--digest",),
        "digest_only",
        "Print only the digest (one HEAD request where possible; with --platform, the "
        "selected image's digest). Batches print 'DIGEST  REFERENCE' lines.",
        kind="flag",
    ),
    OptionSpec(
        ("--raw",),
        "raw",
        "Print the manifest bytes exactly as received: `--raw R | sha256sum` is the digest.",
        kind="flag",
    ),
    OptionSpec(
        ("--platform",),
        "platform_text",
        "Select the image for this platform from an index and report it "
        "('local' = this machine). Not found: exit 4.",
        metavar="OS/ARCH[/VARIANT]",
    ),
    OptionSpec(
        ("--require",),
        "require",
        "Exit 7 unless every platform is present (repeatable or comma-separated; "
        "arm64 = arm64/v8; attestations never count).",
        multiple=True,
        metavar="PLATFORMS",
    ),
    OptionSpec(
        ("--require-only",),
        "require_only",
        "With --require: also exit 7 if the image has platforms beyond the required ones.",
        kind="flag",
    ),
    OptionSpec(
        ("--expect-digest",),
        "expect_digest",
        "Exit 8 if the reference (with --platform: the selected image) no longer has DIGEST.",
        metavar="DIGEST",
    ),
    OptionSpec(
        ("--sizes",),
        "sizes",
        "Fetch each platform's manifest and show its compressed size (config + layers) "
        "and layer count.",
        kind="flag",
    ),
    OptionSpec(
        ("--image-config",),
        "image_config",
        "Show each image's configuration (created, user, entrypoint, cmd, env, ports, "
        "labels, healthcheck, ...), layers and history: a single image, every image of an "
        "index, or the one --platform selects. Table, extended-json-v2 and templates.",
        kind="flag",
    ),
    OptionSpec(
        ("--with-attestations",),
        "with_attestations",
        "With --image-config: include the attestation manifests of an index.",
        kind="flag",
    ),
    OptionSpec(
        ("--no-attestations",),
        "no_attestations",
        "Hide attestation entries from the table.",
        kind="flag",
    ),
    _NO_TRUNC,
    OptionSpec(
        ("--color/--no-color",),
        "color",
        "Colour the table: auto by default (a terminal, and NO_COLOR unset).",
        kind="bool_pair",
    ),
    INSECURE_OPTION,
    OptionSpec(
        ("--concurrency",),
        "concurrency",
        "Parallel requests for batches and --sizes.",
        kind="int_range",
        range=(1, 64),
        default=8,
        show_default=True,
    ),
    OptionSpec(
        ("--timeout",),
        "timeout",
        "Give up on a reference after this long, whatever the registry does "
        "(connect and read timeouts are 10 s and 30 s within it).",
        kind="float_range",
        range=(0.1, None),
        default=60.0,
        show_default=True,
        envvar="IMGINSPECT_TIMEOUT",
        metavar="SECONDS",
    ),
    OptionSpec(
        ("--max-wait",),
        "max_wait",
        "Longest wait before a retry (Retry-After or backoff); a registry asking for "
        "longer gets exit 6 (rate limited) or 1.",
        kind="float_range",
        range=(0, None),
        default=5.0,
        show_default=True,
        envvar="IMGINSPECT_MAX_WAIT",
        metavar="SECONDS",
    ),
    OptionSpec(
        ("--no-cache",),
        "no_cache",
        "Neither read nor write the cache of manifests, configs and tokens "
        "(see 'imginspect cache').",
        kind="flag",
        envvar="IMGINSPECT_NO_CACHE",
    ),
    OptionSpec(
        ("--debug",), "debug", "Log every request and response line to stderr.", kind="flag"
    ),
    *CREDENTIAL_OPTIONS,
)

#: `imginspect auth REFERENCE`.
AUTH_OPTIONS = (
    OptionSpec(("--json",), "as_json", "Print the explanation as JSON.", kind="flag"),
    INSECURE_OPTION,
    *CREDENTIAL_OPTIONS,
)

#: The options `tags`, `referrers` and `diff` share: TLS, cache, debug and credentials.
TOOL_OPTIONS = (
    INSECURE_OPTION,
    OptionSpec(("--no-cache",), "no_cache", "Neither read nor write the cache.", kind="flag"),
    OptionSpec(("--debug",), "debug", "Log every request to stderr.", kind="flag"),
    *CREDENTIAL_OPTIONS,
)

#: `imginspect tags REPOSITORY`.
TAGS_OPTIONS = (
    OptionSpec(("--json",), "as_json", "One JSON object per tag (NDJSON).", kind="flag"),
    OptionSpec(("--match",), "glob", "Only tags matching GLOB (* ? [..]).", metavar="GLOB"),
    OptionSpec(
        ("--regex",), "regex", "Only tags REGEX matches (anywhere; anchor it).", metavar="REGEX"
    ),
    OptionSpec(
        ("--sort",),
        "sort",
        "registry: as listed (streamed); version: semver-aware, other tags after.",
        kind="choice",
        choices=("registry", "version"),
        default="registry",
        show_default=True,
    ),
    OptionSpec(
        ("--reverse",), "reverse", "With --sort version: newest version first.", kind="flag"
    ),
    OptionSpec(
        ("--limit",),
        "limit",
        "List at most this many tags (before filtering).",
        kind="int_range",
        range=(1, None),
        default=100_000,
        show_default=True,
    ),
    OptionSpec(
        ("--digests",),
        "digests",
        "Add each tag's digest (one HEAD per tag, concurrent).",
        kind="flag",
    ),
    OptionSpec(
        ("--concurrency",),
        "concurrency",
        "HEAD requests in flight with --digests.",
        kind="int_range",
        range=(1, 64),
        default=8,
        show_default=True,
    ),
    *TOOL_OPTIONS,
)

#: `imginspect referrers REFERENCE...`.
REFERRERS_OPTIONS = (
    _REF_FILE,
    OptionSpec(
        ("--json",),
        "as_json",
        "Print the report as one JSON document (a batch: one line per reference).",
        kind="flag",
    ),
    OptionSpec(
        ("--platform",),
        "platform_text",
        "Only this platform's image of an index (and the index itself).",
        metavar="OS/ARCH[/VARIANT]",
    ),
    OptionSpec(
        ("--artifact-type",),
        "artifact_type",
        "Only referrers of this artifactType (no cosign tags).",
        metavar="TYPE",
    ),
    OptionSpec(
        ("--require-evidence",),
        "require_evidence",
        "Exit 7 unless every image platform has these kinds of evidence, comma-separated: "
        "sbom, provenance, signature, attestation (presence only; nothing is verified).",
        metavar="KINDS",
    ),
    OptionSpec(
        ("--concurrency",),
        "concurrency",
        "References inspected at once in a batch.",
        kind="int_range",
        range=(1, 64),
        default=4,
        show_default=True,
    ),
    _NO_TRUNC,
    *TOOL_OPTIONS,
)

#: `imginspect diff A B`.
DIFF_OPTIONS = (
    OptionSpec(("--json",), "as_json", "Print the comparison as JSON.", kind="flag"),
    OptionSpec(
        ("--image-config",),
        "image_config",
        "Per platform in both: the config fields and the layers that changed "
        "(reads each image's manifest and config).",
        kind="flag",
    ),
    _NO_TRUNC,
    *TOOL_OPTIONS,
)

#: How each output mode is asked for, to name it in a usage error.
MODE_FLAGS = {
    OutputMode.JSON: "--json",
    OutputMode.DOCKER: "--compat docker",
    OutputMode.EXTENDED_JSON: "--format extended-json",
    OutputMode.DIGEST: "--digest",
    OutputMode.RAW: "--raw",
    OutputMode.EXTENDED_JSON_V2: "--format extended-json-v2",
    OutputMode.TEMPLATE: "--format TEMPLATE",
}


#: The outputs besides the table that show --sizes.
SIZES_MODES = (OutputMode.EXTENDED_JSON, OutputMode.EXTENDED_JSON_V2, OutputMode.TEMPLATE)


def output_mode(
    *, as_json: bool, output_format: str | None, compat: str | None, digest_only: bool, raw: bool
) -> OutputMode:
    """The one output the options ask for (table when none); several are a usage error.
    A ``--format`` value that names no mode (:data:`FORMAT_NAMES`) is a template."""
    modes: list[OutputMode] = []
    if as_json:
        modes.append(OutputMode.JSON)
    if output_format is not None and not (as_json and output_format == "json"):
        named = output_format in FORMAT_NAMES
        modes.append(OutputMode(output_format) if named else OutputMode.TEMPLATE)
    if compat == "docker":
        modes = [m for m in modes if m is not OutputMode.JSON]
        modes.append(OutputMode.DOCKER)
    if digest_only:
        modes.append(OutputMode.DIGEST)
    if raw:
        modes.append(OutputMode.RAW)
    if len(modes) > 1:
        names = ", ".join(m.value for m in modes)
        raise UsageError(f"choose one output: {names} cannot be combined")
    return modes[0] if modes else OutputMode.TABLE


def request_from_options(params: Mapping[str, Any]) -> tuple[InspectRequest, TableStyle]:
    """Validate the output and check options once, for every reference of the run.
    ``params`` are the `inspect` command's option values, by parameter name."""
    platform_text, require = params["platform_text"], params["require"]
    output_format = params["output_format"]
    template = None
    if output_format is not None and output_format not in FORMAT_NAMES:
        from imginspect.template import Template

        template = Template(output_format)  # a template error is a usage error, first
    refuse_image_config_elsewhere(params, template)
    mode = output_mode(
        as_json=params["as_json"],
        output_format=params["output_format"],
        compat=params["compat"],
        digest_only=params["digest_only"],
        raw=params["raw"],
    )
    platform = None
    if platform_text or require:
        from imginspect import platforms

        if platform_text:
            platform = (
                platforms.local_platform()
                if platform_text.strip().lower() == "local"
                else platforms.parse_platform(platform_text)
            )
        require = platforms.parse_platform_list(require)
    request = InspectRequest(  # refuses --require-only alone and an invalid --expect-digest
        mode=mode,
        platform=platform,
        require=tuple(require),
        require_only=params["require_only"],
        expect_digest=params["expect_digest"],
        sizes=params["sizes"],
        concurrency=params["concurrency"],
        timeout=params["timeout"],
        image_config=params["image_config"],
        attestations=params["with_attestations"],
        template=template,
    )
    style = TableStyle(
        no_trunc=params["no_trunc"],
        attestations=not params["no_attestations"],
        color=params["color"],
    )
    refuse_useless_combinations(request, style)
    return request, style


def refuse_image_config_elsewhere(params: Mapping[str, Any], template: Template | None) -> None:
    """--image-config (or a template using image configs) and --with-attestations with an
    output that does not show them: usage errors, before the outputs' own conflicts."""
    from imginspect.output import TEMPLATE_CONFIG_FIELDS

    image_config = params["image_config"] or (
        template is not None and bool(template.uses() & TEMPLATE_CONFIG_FIELDS)
    )
    if params["with_attestations"] and not image_config:
        raise UsageError("--with-attestations needs --image-config")
    named = params["output_format"]
    others = params["as_json"] or params["compat"] or params["digest_only"] or params["raw"]
    if image_config and (others or named in ("json", "extended-json")):
        raise UsageError(
            "--image-config shows in the table, --format extended-json-v2 and templates",
            hint="--json, --compat docker, --digest, --raw and extended-json (v1) keep their "
            "documented shape",
        )


def refuse_useless_combinations(request: InspectRequest, style: TableStyle) -> None:
    """Options that cannot affect the chosen output are usage errors, not silently ignored.

    (JSON output never shortens digests nor hides attestations: --no-trunc and
    --no-attestations are documented as changing the table only, and accepted there.)"""
    if request.mode is OutputMode.TABLE:
        return
    flag = MODE_FLAGS[request.mode]
    if request.sizes and request.mode not in SIZES_MODES:
        raise UsageError(
            f"--sizes cannot be combined with {flag}",
            hint="sizes are shown in the table and in --format extended-json",
        )
    if request.mode in (OutputMode.DIGEST, OutputMode.RAW):
        for name, given in (
            ("--no-trunc", style.no_trunc),
            ("--no-attestations", not style.attestations),
        ):
            if given:
                raise UsageError(
                    f"{name} cannot be combined with {flag}", hint=f"{name} only changes the table"
                )


def credentials_and_settings(
    *,
    config_dir: str | None,
    authfile: str | None,
    username: str | None,
    password_stdin: bool,
    anonymous: bool,
    certs_dirs: tuple[str, ...],
    daemon_config: str | None,
    first_domain: str | None,
    warn: Callable[[str], None],
    log: Callable[[str], None] | None,
    settings: RegistrySettings | None = None,
) -> tuple[CredentialResolver, RegistrySettings]:
    """The credential resolver and registry settings the credential options describe
    (``--password-stdin`` reads standard input here); ``settings``: those made already by
    :func:`registry_settings` from the same options."""
    from imginspect.credentials import CredentialResolver, password_from_stdin
    from imginspect.transport import remaining_time

    password = None
    if password_stdin:
        if username is None:
            raise UsageError("--password-stdin needs --username")
        password = password_from_stdin(sys.stdin.read())
    elif username is not None:
        raise UsageError(
            "--username needs --password-stdin",
            hint="echo PASSWORD | imginspect --username USER --password-stdin REFERENCE",
        )
    resolver = CredentialResolver(
        config_dir=config_dir,
        authfile=authfile,
        username=username,
        password=password,
        explicit_domains=None if first_domain is None else [first_domain],
        explicit_source="--username and --password-stdin",
        anonymous=anonymous,
        warn=warn,
        time_left=remaining_time,  # a credential helper gets the reference's time left
    )
    if settings is None:
        settings = registry_settings(certs_dirs, daemon_config, warn=warn, log=log)
    return resolver, settings


def registry_settings(
    certs_dirs: tuple[str, ...],
    daemon_config: str | None,
    *,
    warn: Callable[[str], None],
    log: Callable[[str], None] | None,
) -> RegistrySettings:
    """The registry settings ``--certs-dir`` and ``--daemon-config`` describe (read when
    first used)."""
    from imginspect.settings import RegistrySettings

    return RegistrySettings(
        certs_dirs=certs_dirs or None, daemon_config=daemon_config, warn=warn, log=log
    )


def domain_of(given: str) -> str | None:
    """The registry domain of a reference, None when it does not parse (it is reported when
    its turn comes, in order)."""
    from imginspect.reference import parse_reference

    try:
        return parse_reference(given).domain
    except ImginspectError:
        return None


def where_credentials_were_sought(resolver: CredentialResolver, given: str) -> str | None:
    """A hint for an auth failure when no credential was found for the reference."""
    from imginspect.reference import parse_reference

    try:
        ref = parse_reference(given)
    except ImginspectError:
        return None
    if resolver.lookup(ref.domain, ref.path) is not None:
        return None  # a credential was sent and refused: the registry's hint says so
    looked = ", ".join(["DOCKER_AUTH_CONFIG", *resolver.locations()])
    return (
        f"no credentials found for {ref.domain} (looked in {looked}): log in with "
        f"`docker login {ref.domain}` or use --username with --password-stdin"
    )


def make_inspector(
    *,
    resolver: CredentialResolver,
    settings: RegistrySettings,
    insecure: bool,
    max_wait: float,
    cache: Cache | None,
    log: Callable[[str], None] | None,
) -> Inspector:
    """The library's Inspector as the CLI's options describe it."""
    from imginspect.hosts import HostResolver
    from imginspect.inspector import Inspector
    from imginspect.transport import RetryPolicy

    hosts = HostResolver(settings=settings, credentials=resolver.lookup, insecure=insecure)
    return Inspector(hosts, log=log, retry=RetryPolicy(max_wait=max_wait), cache=cache)


def auth_explanation(
    reference: str, *, as_json: bool, insecure: bool, credential_params: Mapping[str, Any]
) -> str:
    """What `imginspect auth` prints: which credential ``reference`` would be inspected with,
    where it comes from and how it is used (never the secret), and how its registry is
    reached; as text, or as one JSON line."""
    import json

    from imginspect.reference import parse_reference

    ref = parse_reference(reference)
    resolver, settings = credentials_and_settings(
        **credential_params,
        first_domain=ref.domain,
        warn=lambda message: None,  # warnings are part of the explanation
        log=None,
    )
    explanation = resolver.explain(ref.domain, ref.path)
    tls = list(settings.explain_host(ref.domain))
    if insecure:
        tls = [
            "tls: insecure (https without verification, then http): --insecure"
            if line.startswith("tls:")
            else line
            for line in tls
        ]
    if as_json:
        document = explanation.as_dict()
        document["registrySettings"] = tls
        return json.dumps(document) + "\n"
    return explanation.describe() + "".join(f"{line}\n" for line in tls)


# ----------------------------------------------------- tags, referrers and diff


@contextlib.contextmanager
def tool_inspector(
    first: str,
    params: dict[str, Any],
    *,
    stderr: Callable[[str], None],
    open_cache: Callable[[Callable[[str], None] | None], Cache],
) -> Iterator[Inspector]:
    """The Inspector of a `tags`/`referrers`/`diff` run, as its options describe it (they
    are taken out of ``params``): credentials, --insecure, --no-cache, --debug."""
    credential_params = {name: params.pop(name) for name in CREDENTIAL_PARAMS}
    log = (lambda line: stderr(f"debug: {line}")) if params.pop("debug") else None
    resolver, settings = credentials_and_settings(
        **credential_params,
        first_domain=domain_of(first),
        log=log,
        warn=lambda message: stderr(f"warning: {message}"),
    )
    with make_inspector(
        resolver=resolver,
        settings=settings,
        insecure=params.pop("insecure"),
        max_wait=5.0,
        cache=None if params.pop("no_cache") else open_cache(log),
        log=log,
    ) as inspector:
        yield inspector


def tags_query(repository: str, params: dict[str, Any]) -> TagsQuery:
    """The `tags` command's query (its options are taken out of ``params``), validated."""
    from imginspect.reference import Reference
    from imginspect.tags import tag_filter
    from imginspect.target import parse_target

    target = parse_target(repository)
    if isinstance(target, Reference) and (target.digest or f":{target.tag}" in repository):
        raise UsageError(
            f"{repository} names a tag or digest; give the repository only",
            hint="imginspect tags REPOSITORY --match 'GLOB'",
        )
    sort, reverse = params.pop("sort"), params.pop("reverse")
    if reverse and sort != "version":
        raise UsageError("--reverse needs --sort version")
    from imginspect.tags import TagsQuery

    return TagsQuery(
        target=target,
        keep=tag_filter(params.pop("glob"), params.pop("regex")),
        version_order=sort == "version",
        reverse=reverse,
        limit=params.pop("limit"),
        digests=params.pop("digests"),
        workers=params.pop("concurrency"),
    )


def referrers_query(params: dict[str, Any], ref_file: IO[str] | None = None) -> ReferrersQuery:
    """The `referrers` command's query for each reference (its options are taken out of
    ``params``), validated; ``ref_file`` is ``-f``'s (stdin cannot also be a password)."""
    from imginspect import platforms, referrers

    if params.get("password_stdin") and getattr(ref_file, "name", "") == "<stdin>":
        raise UsageError("--password-stdin and -f - cannot both read standard input")

    required = params.pop("require_evidence")
    platform_text = params.pop("platform_text")
    from imginspect.referrers import ReferrersQuery

    return ReferrersQuery(
        platform=platforms.parse_platform(platform_text) if platform_text else None,
        artifact_type=params.pop("artifact_type"),
        require=referrers.parse_required(required) if required is not None else None,
    )
