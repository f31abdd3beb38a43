"""Output modes, and the rendering of an :class:`~imginspect.batch.Outcome` in each.

No click, and no rich except through :mod:`imginspect.table`, imported only when a table is
rendered (the JSON modes never load it). Writing to stdout, the progress line and error
messages are the CLI's.
"""

from __future__ import annotations

import enum
import io
import re
from typing import TYPE_CHECKING, TextIO

from imginspect._record import Record, record

if TYPE_CHECKING:
    from imginspect.batch import Outcome
    from imginspect.imageconfig import ImageDetails
    from imginspect.manifest import Platform
    from imginspect.result import InspectResult
    from imginspect.template import Struct, Template


#: The ``--format`` values that name an output mode; any other value is a template.
FORMAT_NAMES = ("table", "json", "extended-json", "extended-json-v2")


def visible(text: str) -> str:
    """``text`` for a terminal: every character that is not printable written as a Python
    escape (``\\x1b``, ``\\r``, ``\\x9b``, ``\\u202e``, ``\\ud800``), visibly.

    A registry controls annotations, labels, platform strings, media types and config
    fields: raw, an ESC or C1 sequence would rewrite the screen (clear it, move the cursor,
    set the title), a CR or a bidi override (U+202E) hide or reorder text, a newline forge a
    table row, and a lone surrogate (a JSON ``\\ud800``) fail the write to stdout with a
    traceback. Printable text, non-ASCII letters included, is kept as is."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, a lone surrogate (from a JSON escape such as ``\\ud800``, which is
    not a character) written as U+FFFD, as Go's encoding/json decodes it: ``str.encode``
    refuses surrogates, and the output modes failed with a traceback on one."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode()


_SURROGATE = re.compile("[\ud800-\udfff]")


class OutputMode(enum.Enum):
    """What is printed for each reference."""

    #: the platform table (rich)
    TABLE = "table"
    #: the Docker Engine's distribution-inspect JSON, corrected where the daemon is wrong
    JSON = "json"
    #: that JSON byte for byte as the Docker Engine answers (``--compat docker``)
    DOCKER = "docker"
    #: the versioned extended document (``imginspect/schemas/extended-v1.json``)
    EXTENDED_JSON = "extended-json"
    #: the digest only (one HEAD request where possible)
    DIGEST = "digest"
    #: the manifest bytes as received
    RAW = "raw"
    #: the version 2 extended document, with ``--image-config``'s images (extended-v2.json)
    EXTENDED_JSON_V2 = "extended-json-v2"
    #: a Go template (``--format '{{...}}'``), executed over :func:`template_data`; the
    #: template is the request's (:attr:`~imginspect.batch.InspectRequest.template`)
    TEMPLATE = "template"

    @property
    def is_json(self) -> bool:
        """One JSON document per line (a failed reference of a batch gets an error object)."""
        return self in (
            OutputMode.JSON,
            OutputMode.DOCKER,
            OutputMode.EXTENDED_JSON,
            OutputMode.EXTENDED_JSON_V2,
        )

    @property
    def reads_config(self) -> bool:
        """Whether a single image's config (its platform) is part of the output."""
        return self not in (OutputMode.DIGEST, OutputMode.RAW)


@record
class TableStyle(Record):
    """How the table is drawn (the other modes have no style)."""

    no_trunc: bool = False
    attestations: bool = True
    #: None: automatic (a terminal, and NO_COLOR unset)
    color: bool | None = None


def render(
    outcome: Outcome,
    mode: OutputMode,
    *,
    batch: bool = False,
    style: TableStyle | None = None,
    template: Template | None = None,
) -> bytes:
    """The bytes printed for ``outcome`` on stdout (errors are not part of them, except as
    the error object of a failed batch reference in the JSON modes). A table is laid out at
    its natural width, as for a file; :func:`write_table` draws it for a terminal.
    :attr:`OutputMode.TEMPLATE` executes ``template``."""
    if mode is OutputMode.TABLE:
        buffer = io.StringIO()
        write_table(outcome, buffer, style=style or TableStyle(), batch=batch)
        return buffer.getvalue().encode()
    error, result = outcome.error, outcome.result
    if mode is OutputMode.TEMPLATE:
        if template is None:
            raise ValueError("OutputMode.TEMPLATE renders a template: pass template=")
        return render_template(outcome, template)
    if mode is OutputMode.EXTENDED_JSON_V2:
        return render_extended_v2(outcome, batch=batch)
    if batch and mode.is_json and error is not None:
        from imginspect.extended import encode_line, error_document

        return encode_line(error_document(outcome.given, error))
    if mode is OutputMode.DIGEST:
        # A failed check (exit 7 or 8) still found a digest: it is printed, then the error.
        if outcome.digest is None:
            return b""
        return (f"{outcome.digest}  {outcome.given}\n" if batch else f"{outcome.digest}\n").encode()
    if result is None:
        return b""
    if mode is OutputMode.RAW:
        return result.raw
    if mode is OutputMode.EXTENDED_JSON:
        from imginspect.extended import encode_line, extended_document

        return encode_line(extended_document(result, given=outcome.given))
    from imginspect.jsonenc import encode_inspect

    return encode_inspect(result, compat_docker=mode is OutputMode.DOCKER)


def write_table(outcome: Outcome, file: TextIO, *, style: TableStyle, batch: bool) -> None:
    """Draw ``outcome``'s table on ``file`` (fitted to it when it is a terminal); nothing
    when the reference failed. In a batch, a blank line follows each table."""
    if outcome.result is None:
        return
    from imginspect.table import render as render_table

    render_table(
        outcome.result,
        file,
        no_trunc=style.no_trunc,
        attestations=style.attestations,
        color=style.color,
        nested=outcome.nested,
    )
    if outcome.result.images is not None:
        from imginspect.table import render_images

        render_images(outcome.result, file, no_trunc=style.no_trunc, color=style.color)
    if batch:
        file.write("\n")


def render_extended_v2(outcome: Outcome, *, batch: bool = False) -> bytes:
    """``--format extended-json-v2``: the version 2 document (an error document for a failed
    reference of a batch)."""
    from imginspect.extended import SCHEMA_VERSION_2, encode_line, error_document
    from imginspect.extended import extended_document_v2 as document

    if outcome.error is not None and (batch or outcome.result is None):
        if not batch:
            return b""
        return encode_line(error_document(outcome.given, outcome.error, version=SCHEMA_VERSION_2))
    if outcome.result is None:
        return b""
    return encode_line(document(outcome.result, given=outcome.given))


def render_template(outcome: Outcome, template: Template) -> bytes:
    """``--format TEMPLATE``: the template executed over :func:`template_data` (nothing for
    a reference that failed: its error goes to stderr)."""
    if outcome.result is None:
        return b""
    return utf8(template.execute(template_data(outcome.result, given=outcome.given)))


#: The top-level fields of the template data model that need --image-config's requests.
TEMPLATE_CONFIG_FIELDS = frozenset({"Images", "Image", "Config"})


def template_data(result: InspectResult, *, given: str) -> Struct:
    """The data model of ``--format TEMPLATE`` (README: "Templates"): field names as docker
    and buildx users write them."""
    from imginspect.extended import _kind
    from imginspect.template import Struct

    ref = result.reference
    images = None
    if result.images is not None:
        images = [_image_struct(d) for d in result.images]
    single = images[0] if images is not None and len(images) == 1 and not result.is_index else None
    return Struct(
        Name=given,
        Canonical=str(ref),
        Registry=ref.domain,
        Repository=ref.path,
        Tag=ref.tag or "",
        Digest=result.descriptor.digest,
        MediaType=result.descriptor.media_type,
        Size=result.descriptor.size,
        ArtifactType=result.descriptor.artifact_type or "",
        Annotations=dict(result.descriptor.annotations or {}),
        Kind=_kind(result),
        Platforms=[_platform_struct(p) for p in result.platforms],
        Manifests=[
            Struct(
                Digest=c.descriptor.digest,
                MediaType=c.descriptor.media_type,
                Size=c.descriptor.size,
                Platform=_platform_struct(c.descriptor.platform),
                Kind=c.kind.value,
                Annotations=dict(c.descriptor.annotations or {}),
            )
            for c in result.children
        ],
        Images=images,
        Image=single,
        Config=None if single is None else single["Config"],
    )


def _platform_struct(platform: Platform | None) -> Struct | None:
    from imginspect.template import Struct

    if platform is None:
        return None
    return Struct(
        Os=platform.os,
        Architecture=platform.architecture,
        Variant=platform.variant,
        OsVersion=platform.os_version,
        OsFeatures=list(platform.os_features),
    )


def _image_struct(details: ImageDetails) -> Struct:
    from imginspect.template import Struct

    config = details.config
    health = None if config is None else config.healthcheck
    run = None
    if config is not None:
        run = Struct(
            User=config.user or "",
            WorkingDir=config.working_dir or "",
            Entrypoint=None if config.entrypoint is None else list(config.entrypoint),
            Cmd=None if config.cmd is None else list(config.cmd),
            Env=list(config.env),
            ExposedPorts={port: {} for port in config.exposed_ports},
            Volumes={volume: {} for volume in config.volumes},
            Labels=dict(config.labels or {}),
            StopSignal=config.stop_signal or "",
            Healthcheck=None
            if health is None
            else Struct(
                Test=list(health.test),
                Interval=health.interval or 0,
                Timeout=health.timeout or 0,
                StartPeriod=health.start_period or 0,
                StartInterval=health.start_interval or 0,
                Retries=health.retries or 0,
            ),
            Shell=None if config.shell is None else list(config.shell),
        )
    return Struct(
        Digest=details.digest,
        MediaType=details.manifest.media_type,
        Kind=details.kind,
        Platform=_platform_struct(details.platform),
        Size=details.compressed_size,
        Created=(config.created or "") if config else "",
        Author=(config.author or "") if config else "",
        Config=run,
        Layers=[
            Struct(
                MediaType=step.layer.media_type,
                Digest=step.layer.digest,
                Size=step.layer.size,
                Annotations=dict(step.layer.annotations or {}),
                DiffID=step.diff_id or "",
            )
            for step in details.steps
            if step.layer is not None
        ],
        History=[
            Struct(
                Created=h.created or "",
                CreatedBy=h.created_by or "",
                Author=h.author or "",
                Comment=h.comment or "",
                EmptyLayer=h.empty_layer,
            )
            for h in (config.history if config else ())
        ],
    )
