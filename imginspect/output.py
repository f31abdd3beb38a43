"""Output modes, and the rendering of an :class:`~imginspect.batch.Outcome` in each.

No click, and no rich except through :mod:`imginspect.table`, imported only when a table is
rendered (the JSON modes never load it). Writing to stdout, the progress line and error
messages are the CLI's.
"""

from __future__ import annotations

import enum
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from imginspect.batch import Outcome


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

    @property
    def is_json(self) -> bool:
        """One JSON document per line (a failed reference of a batch gets an error object)."""
        return self in (OutputMode.JSON, OutputMode.DOCKER, OutputMode.EXTENDED_JSON)

    @property
    def reads_config(self) -> bool:
        """Whether a single image's config (its platform) is part of the output."""
        return self not in (OutputMode.DIGEST, OutputMode.RAW)


@dataclass(frozen=True)
class TableStyle:
    """How the table is drawn (the other modes have no style)."""

    no_trunc: bool = False
    attestations: bool = True
    #: None: automatic (a terminal, and NO_COLOR unset)
    color: bool | None = None


def render(
    outcome: Outcome, mode: OutputMode, *, batch: bool = False, style: TableStyle | None = None
) -> bytes:
    """The bytes printed for ``outcome`` on stdout (errors are not part of them, except as
    the error object of a failed batch reference in the JSON modes). A table is laid out at
    its natural width, as for a file; :func:`write_table` draws it for a terminal."""
    if mode is OutputMode.TABLE:
        buffer = io.StringIO()
        write_table(outcome, buffer, style=style or TableStyle(), batch=batch)
        return buffer.getvalue().encode()
    error, result = outcome.error, outcome.result
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
    if batch:
        file.write("\n")
