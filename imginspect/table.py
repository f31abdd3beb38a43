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
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.text import Text

from imginspect.digest import short_digest
from imginspect.manifest import Child, ChildKind
from imginspect.result import ImageSize, InspectResult

#: Below this terminal width digests in the platform table are abbreviated.
FULL_DIGEST_WIDTH = 140
#: Between two columns.
GAP = "  "
#: Each level of a nested index's entries.
INDENT = "  "
#: The continuation lines of a row wrapped in a narrow terminal.
CONTINUATION = "    "


@dataclass(frozen=True)
class _Column:
    header: str
    right: bool = False


@dataclass(frozen=True)
class _Cell:
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
        _print(console, Text.assemble((label.ljust(label_width), "bold"), " ", value))

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
    header = [_Cell(c.header, "bold") for c in columns]
    widths = [max(len(cell.text) for cell in column) for column in zip(header, *rows, strict=True)]
    bands = _bands(widths, width)
    for number, row in enumerate([header, *rows]):
        if number and len(bands) > 1:
            _print(console, Text())  # wrapped rows: one block each
        for band_number, band in enumerate(bands):
            line = Text(CONTINUATION if band_number else "")
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
    if sizes:
        total = sum(s.compressed for s in sizes.values())
        _print(console, Text(f"compressed total {human_size(total)} ({total} bytes)"))
    # Every line is printed whole; the padding at the end of lines is noise.
    file.write("".join(line.rstrip(" ") + "\n" for line in buffer.getvalue().splitlines()))


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
