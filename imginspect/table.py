"""The human view: a summary of the target and one table row per platform, with rich.

Only the table path imports this module (and so rich); ``--json`` never pays for it.

Layout rules: a value (digest, reference, platform) is never split across lines and never
dropped. Output that is not a terminal (files, CI logs, pipes) is laid out at its natural
width. In a terminal narrower than the table, a row wraps between cells: the cells that do
not fit go on continuation lines, indented, under the same header layout, and each row is a
block of its own.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.text import Text

from imginspect._record import Record, record
from imginspect.digest import short_digest
from imginspect.manifest import Child, ChildKind
from imginspect.output import visible
from imginspect.result import ImageSize, InspectResult

if TYPE_CHECKING:
    from imginspect.imageconfig import ImageDetails

#: Below this terminal width digests in the platform table are abbreviated.
FULL_DIGEST_WIDTH = 140
#: Between two columns.
GAP = "  "
#: Each level of a nested index's entries.
INDENT = "  "
#: The continuation lines of a row wrapped in a narrow terminal.
CONTINUATION = "    "


@record
class _Column(Record):
    """A column of the platform table: its header and alignment."""

    header: str
    right: bool = False


@record
class _Cell(Record):
    """A cell of the platform table: its text and rich style."""

    text: str
    style: str = ""


def render(
    result: InspectResult,
    file: TextIO,
    *,
    no_trunc: bool = False,
    attestations: bool = True,
    color: bool | None = None,
    nested: Mapping[str, Sequence[Child]] | None = None,
) -> None:
    """Print ``result`` to ``file``. ``color``: None = auto (a terminal, and NO_COLOR unset).

    ``nested``: the entries of nested indexes by digest (``Inspector.index_tree``); they are
    shown indented under their index's row.
    """
    buffer = io.StringIO()
    console = make_console(file, color, buffer=buffer)
    probe = Console(file=file)
    # A terminal has a width to fit; anything else gets each line whole.
    width = probe.width if console.is_terminal else None
    full = no_trunc or probe.width >= FULL_DIGEST_WIDTH
    desc = result.descriptor

    summary = [
        ("Name", str(result.reference)),
        ("Type", desc.media_type),
        ("Digest", desc.digest),
        ("Size", f"{desc.size} bytes"),
    ]
    if desc.artifact_type:
        summary.append(("Artifact", desc.artifact_type))
    label_width = max(len(label) for label, _ in summary)
    for label, value in summary:
        # visible(): what a registry sends reaches a terminal (see _print_rows)
        _print(console, Text.assemble((label.ljust(label_width), "bold"), " ", visible(value)))

    sizes = result.sizes
    rows: list[list[_Cell]] = []
    if result.children:
        _add_rows(rows, result.children, nested or {}, sizes, full, attestations, depth=0)
    else:
        platform = result.config_platform
        kind = "artifact" if desc.artifact_type else ("image" if platform else "no platform")
        rows.append(
            [
                _Cell(str(platform) if platform else "-"),
                _Cell(platform.os_version or "" if platform else ""),
                _Cell(desc.digest if full else short_digest(desc.digest)),
                _Cell(str(desc.size)),
                _Cell(kind),
                *_size_cells(sizes, desc.digest),
            ]
        )
    columns = [
        _Column("PLATFORM"),
        _Column("OS VERSION"),
        _Column("DIGEST"),
        _Column("SIZE", right=True),
        _Column("KIND"),
    ]
    if sizes is not None:
        columns += [_Column("COMPRESSED", right=True), _Column("LAYERS", right=True)]
    else:
        rows = [row[:5] for row in rows]
    # The OS VERSION column only matters for Windows images: hide it when it would be empty.
    if not any(row[1].text for row in rows):
        del columns[1]
        rows = [[cell for n, cell in enumerate(row) if n != 1] for row in rows]

    _print(console, Text())
    _print_rows(console, columns, rows, width, blank_before_wrapped=True)
    if sizes:
        total = sum(s.compressed for s in sizes.values())
        _print(console, Text(f"compressed total {human_size(total)} ({total} bytes)"))
    # Every line is printed whole; the padding at the end of lines is noise.
    file.write("".join(line.rstrip(" ") + "\n" for line in buffer.getvalue().splitlines()))


def _print_rows(
    console: Console,
    columns: Sequence[_Column],
    rows: Sequence[Sequence[_Cell]],
    width: int | None,
    *,
    indent: str = "",
    blank_before_wrapped: bool,
) -> None:
    """A header and rows at their natural column widths; where they do not fit ``width`` (a
    terminal), each row wraps between cells into indented continuation lines, one block per
    row, separated by a blank line (before each wrapped row of the platform table, after
    each of a sub-table)."""
    header = [_Cell(c.header, "bold") for c in columns]
    # Cells carry what a registry sent (platforms, media types, labels, annotations, history):
    # rich prints an ESC, a C1 control or a bidi override as is (it drops only BEL, BS, VT,
    # FF and CR, silently), so each is escaped visibly, before the widths are measured.
    rows = [
        [c if c.text.isprintable() else _Cell(visible(c.text), c.style) for c in row]
        for row in rows
    ]
    widths = [max(len(cell.text) for cell in column) for column in zip(header, *rows, strict=True)]
    available = width
    if width is not None and indent:
        available = max(width - len(indent), 20)  # a narrow terminal still gets some room
    bands = _bands(widths, available)
    for number, row in enumerate([header, *rows]):
        if blank_before_wrapped and number and len(bands) > 1:
            _print(console, Text())  # wrapped rows: one block each
        for band_number, band in enumerate(bands):
            line = Text(indent + (CONTINUATION if band_number else ""))
            for position, n in enumerate(band):
                cell = row[n]
                pad = " " * (widths[n] - len(cell.text))
                if position:
                    line.append(GAP)
                if columns[n].right:
                    line.append(pad)
                line.append(cell.text, style=cell.style)
                if not columns[n].right:
                    line.append(pad)
            _print(console, line)
        if not blank_before_wrapped and number and len(bands) > 1:
            _print(console, Text())


def _print(console: Console, text: Text) -> None:
    console.print(text, soft_wrap=True, no_wrap=True, overflow="ignore", crop=False)


def _bands(widths: Sequence[int], width: int | None) -> list[list[int]]:
    """The columns of each line of a row: all on one line when it fits (or when there is no
    width to fit), else as many as fit per line, the first line starting at the left edge and
    the continuation lines indented. A column wider than the terminal gets a line of its own
    and stays whole (the terminal wraps it; a value is never split or shortened)."""
    if width is None or sum(widths) + len(GAP) * (len(widths) - 1) <= width:
        return [list(range(len(widths)))]
    bands: list[list[int]] = [[]]
    used = 0
    for n, column_width in enumerate(widths):
        band = bands[-1]
        needed = column_width + (len(GAP) if band else 0)
        if band and used + needed > width:
            bands.append([n])
            used = len(CONTINUATION) + column_width
        else:
            band.append(n)
            used += needed
    return bands


def _add_rows(
    rows: list[list[_Cell]],
    children: Sequence[Child],
    nested: Mapping[str, Sequence[Child]],
    sizes: Mapping[str, ImageSize] | None,
    full: bool,
    attestations: bool,
    *,
    depth: int,
) -> None:
    by_digest = {c.descriptor.digest: c for c in children}
    for child in children:
        if child.kind is ChildKind.ATTESTATION and not attestations:
            continue
        d = child.descriptor
        platform = d.platform
        kind_text, kind_style = _kind(child, by_digest, full)
        rows.append(
            [
                _Cell(
                    INDENT * depth + (str(platform) if platform and not platform.is_empty else "-")
                ),
                _Cell(platform.os_version or "" if platform else ""),
                _Cell(d.digest if full else short_digest(d.digest)),
                _Cell(str(d.size)),
                _Cell(kind_text, kind_style),
                *_size_cells(sizes, d.digest),
            ]
        )
        entries = nested.get(d.digest) if child.kind is ChildKind.INDEX else None
        if entries is not None:
            _add_rows(rows, entries, nested, sizes, full, attestations, depth=depth + 1)


def make_console(file: TextIO, color: bool | None, *, buffer: TextIO | None = None) -> Console:
    """A console coloured for ``file`` (a terminal or not), writing to ``buffer``.

    ``color``: True forces colour (even into a pipe, and over NO_COLOR, as an explicit
    request); False, or None with NO_COLOR set, means no ANSI styling at all."""
    probe = Console(file=file)  # what rich detects for the real output: width, terminal
    target = buffer if buffer is not None else file
    if color is None and os.environ.get("NO_COLOR"):
        color = False
    terminal = True if color else probe.is_terminal
    return Console(
        file=target,
        width=probe.width,
        highlight=False,
        soft_wrap=True,
        force_terminal=terminal,
        color_system=None if color is False else "auto",
        no_color=False,
    )


def human_size(size: int) -> str:
    """Decimal units, as docker and registries' UIs show image sizes."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - unreachable


def _size_cells(sizes: Mapping[str, ImageSize] | None, digest: str) -> tuple[_Cell, _Cell]:
    size = (sizes or {}).get(digest)
    if size is None:
        return (_Cell(""), _Cell(""))
    return (_Cell(human_size(size.compressed)), _Cell(str(size.layers)))


def _kind(child: Child, by_digest: dict[str, Child], full: bool) -> tuple[str, str]:
    if child.kind is ChildKind.ATTESTATION and child.subject_digest:
        subject = by_digest.get(child.subject_digest)
        if subject is not None and subject.descriptor.platform is not None:
            target = str(subject.descriptor.platform)
        else:
            target = child.subject_digest if full else short_digest(child.subject_digest)
        return f"attestation of {target}", "dim"
    style = "dim" if child.kind is not ChildKind.IMAGE else ""
    return child.kind.value, style


# --------------------------------------------------------------------------- --image-config


def render_images(
    result: InspectResult,
    file: TextIO,
    *,
    no_trunc: bool = False,
    color: bool | None = None,
) -> None:
    """The ``--image-config`` view of ``result``: one block per image (key/value rows, then
    labels, layers and history as sub-tables), after the platform table. Laid out as
    :func:`render`: whole lines when not a terminal, wrapped between cells in a narrow one."""
    buffer = io.StringIO()
    console = make_console(file, color, buffer=buffer)
    probe = Console(file=file)
    width = probe.width if console.is_terminal else None
    full = no_trunc or probe.width >= FULL_DIGEST_WIDTH
    for details in result.images or ():
        _image_block(console, details, width=width, full=full)
    skipped = result.images_skipped
    if skipped:
        kinds: dict[str, int] = {}
        for child in skipped:
            kinds[child.kind.value] = kinds.get(child.kind.value, 0) + 1
        what = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
        note = "; --with-attestations includes attestations" if "attestation" in kinds else ""
        _print(console, Text())
        _print(console, Text(f"not images, skipped: {what}{note}", style="dim"))
    file.write("".join(line.rstrip(" ") + "\n" for line in buffer.getvalue().splitlines()))


def _image_block(console: Console, details: ImageDetails, *, width: int | None, full: bool) -> None:
    from imginspect.imageconfig import format_duration

    platform = details.platform
    digest = details.digest if full else short_digest(details.digest)
    _print(console, Text())
    _print(
        console,
        Text.assemble(
            (visible(str(platform)) if platform else "-", "bold"),
            f"  {digest}  {details.kind}",
        ),
    )
    config = details.config
    rows: list[tuple[str, list[str]]] = []
    if platform is not None and platform.os_version:
        rows.append(("OS version", [platform.os_version]))
    if platform is not None and platform.os_features:
        rows.append(("OS features", [", ".join(platform.os_features)]))
    if details.kind == "artifact":
        rows.append(("Config type", [details.manifest.config.media_type]))
        if details.manifest.artifact_type:
            rows.append(("Artifact type", [details.manifest.artifact_type]))
    if config is not None:
        optional: list[tuple[str, str | None]] = [
            ("Created", config.created),
            ("Author", config.author),
            ("User", config.user),
            ("Working dir", config.working_dir),
            ("Entrypoint", _argv(config.entrypoint)),
            ("Cmd", _argv(config.cmd)),
            ("Shell", _argv(config.shell)),
            ("Ports", ", ".join(config.exposed_ports) or None),
            ("Volumes", ", ".join(config.volumes) or None),
            ("Stop signal", config.stop_signal),
        ]
        rows += [(label, [value]) for label, value in optional if value is not None]
        if config.env:
            rows.append(("Env", list(config.env)))
        health = config.healthcheck
        if health is not None:
            lines = [_argv(health.test) or "-"]
            timing = [
                f"{name} {format_duration(value)}"
                for name, value in (
                    ("interval", health.interval),
                    ("timeout", health.timeout),
                    ("start period", health.start_period),
                    ("start interval", health.start_interval),
                )
                if value is not None
            ]
            if health.retries is not None:
                timing.append(f"retries {health.retries}")
            if timing:
                lines.append(", ".join(timing))
            rows.append(("Healthcheck", lines))
    size = details.compressed_size
    layer_count = len(details.manifest.layers)
    rows.append(
        (
            "Size",
            [
                f"{human_size(size)} ({size} bytes) compressed, config + {layer_count} "
                + ("layer" if layer_count == 1 else "layers")
            ],
        )
    )
    label_width = max(len(label) for label, _ in rows)
    for label, values in rows:
        for n, value in enumerate(values):
            head = (label if n == 0 else "").ljust(label_width)
            _print(console, Text.assemble(INDENT, (head, "bold"), GAP, visible(value)))
    if config is not None and config.labels:
        _sub_table(
            console,
            "Labels",
            [_Column("KEY"), _Column("VALUE")],
            [[_Cell(k), _Cell(v)] for k, v in config.labels.items()],
            width,
        )
    _layers_table(console, details, width=width, full=full)
    if config is not None and config.history:
        _history_table(console, details, width=width)


def _argv(values: tuple[str, ...] | None) -> str | None:
    if values is None:
        return None
    import json

    return json.dumps(list(values), ensure_ascii=False)


def _layers_table(
    console: Console, details: ImageDetails, *, width: int | None, full: bool
) -> None:
    from imginspect.imageconfig import NO_HISTORY

    history_of: dict[int, str] = {}
    positions = {id(h): n for n, h in enumerate(details.config.history if details.config else ())}
    for step in details.steps:
        if step.index is None:
            continue
        if step.history is not None:
            history_of[step.index] = str(positions[id(step.history)])
        elif step.unmatched == NO_HISTORY and details.config is not None:
            history_of[step.index] = "none"
    columns = [_Column("#", right=True), _Column("DIGEST"), _Column("SIZE", right=True)]
    with_history = details.config is not None
    if with_history:
        columns.append(_Column("HISTORY", right=True))
    columns.append(_Column("MEDIA TYPE"))
    annotated = any(layer.annotations for layer in details.manifest.layers)
    if annotated:
        columns.append(_Column("ANNOTATIONS"))
    rows = []
    for n, layer in enumerate(details.manifest.layers):
        row = [
            _Cell(str(n)),
            _Cell(layer.digest if full else short_digest(layer.digest)),
            _Cell(human_size(layer.size)),
        ]
        if with_history:
            row.append(_Cell(history_of.get(n, "none")))
        row.append(_Cell(layer.media_type))
        if annotated:
            row.append(_Cell(", ".join(f"{k}={v}" for k, v in (layer.annotations or {}).items())))
        rows.append(row)
    total = details.layers_size
    _sub_table(console, "Layers", columns, rows, width)
    _print(
        console,
        Text(f"{INDENT * 2}layers total {human_size(total)} ({total} bytes)"),
    )


def _history_table(console: Console, details: ImageDetails, *, width: int | None) -> None:
    from imginspect.imageconfig import NO_LAYER

    assert details.config is not None
    history = details.config.history
    layer_of: dict[int, str] = {}
    positions = {id(h): n for n, h in enumerate(history)}
    for step in details.steps:
        if step.history is None:
            continue
        n = positions[id(step.history)]
        if step.index is not None:
            layer_of[n] = str(step.index)
        elif step.unmatched == NO_LAYER:
            layer_of[n] = "none"
        else:
            layer_of[n] = "empty"
    with_comment = any(h.comment for h in history)
    columns = [
        _Column("#", right=True),
        _Column("LAYER", right=True),
        _Column("CREATED"),
        _Column("CREATED BY"),
    ]
    if with_comment:
        columns.append(_Column("COMMENT"))
    rows = []
    for n, entry in enumerate(history):
        row = [
            _Cell(str(n)),
            _Cell(layer_of.get(n, "-")),
            _Cell(entry.created or ""),
            _Cell(" ".join((entry.created_by or "").split())),
        ]
        if with_comment:
            row.append(_Cell(entry.comment or ""))
        rows.append(row)
    _sub_table(console, "History", columns, rows, width)


def _sub_table(
    console: Console,
    title: str,
    columns: Sequence[_Column],
    rows: Sequence[Sequence[_Cell]],
    width: int | None,
) -> None:
    """A titled table indented under an image block, wrapped between cells as the platform
    table is when it does not fit a terminal."""
    _print(console, Text.assemble(INDENT, (title, "bold")))
    indent = INDENT * 2
    _print_rows(console, columns, rows, width, indent=indent, blank_before_wrapped=False)
