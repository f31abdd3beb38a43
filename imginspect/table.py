"""The human view: a summary of the target and one table row per platform, with rich.

Only the table path imports this module (and so rich); ``--json`` never pays for it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from imginspect.digest import short_digest
from imginspect.manifest import Child, ChildKind
from imginspect.result import ImageSize, InspectResult

#: Below this terminal width digests in the platform table are abbreviated.
FULL_DIGEST_WIDTH = 140


def render(
    result: InspectResult,
    file: TextIO,
    *,
    no_trunc: bool = False,
    attestations: bool = True,
    color: bool | None = None,
) -> None:
    """Print ``result`` to ``file``. ``color``: None = auto (a terminal, and NO_COLOR unset)."""
    # Render into a buffer first: rich pads every line to the table's width, and the trailing
    # blanks are noise in a terminal and in anything that reads the output.
    buffer = io.StringIO()
    console = make_console(file, color, buffer=buffer)
    full = no_trunc or console.width >= FULL_DIGEST_WIDTH
    desc = result.descriptor

    summary = Table.grid(padding=(0, 1))
    summary.add_column(style="bold")
    summary.add_column(overflow="fold")
    summary.add_row("Name", str(result.reference))
    summary.add_row("Type", desc.media_type)
    summary.add_row("Digest", desc.digest)
    summary.add_row("Size", f"{desc.size} bytes")
    if desc.artifact_type:
        summary.add_row("Artifact", desc.artifact_type)
    console.print(summary)

    sizes = result.sizes
    rows: list[tuple[str, str, str, str, Text, str, str]] = []
    children = result.children
    if children:
        by_digest = {c.descriptor.digest: c for c in children}
        for child in children:
            if child.kind is ChildKind.ATTESTATION and not attestations:
                continue
            d = child.descriptor
            platform = d.platform
            rows.append(
                (
                    str(platform) if platform and not platform.is_empty else "-",
                    platform.os_version if platform else "",
                    d.digest if full else short_digest(d.digest),
                    str(d.size),
                    _kind_text(child, by_digest, full),
                    *_size_cells(sizes, d.digest),
                )
            )
    else:
        platform = result.config_platform
        kind = "artifact" if desc.artifact_type else ("image" if platform else "no platform")
        rows.append(
            (
                str(platform) if platform else "-",
                platform.os_version if platform else "",
                desc.digest if full else short_digest(desc.digest),
                str(desc.size),
                Text(kind),
                *_size_cells(sizes, desc.digest),
            )
        )
    # The OS VERSION column only matters for Windows images: hide it when it would be empty.
    with_os_version = any(row[1] for row in rows)

    table = Table(
        box=None, header_style="bold", pad_edge=False, show_edge=False, caption_justify="left"
    )
    table.add_column("PLATFORM", no_wrap=True)
    if with_os_version:
        table.add_column("OS VERSION", no_wrap=True)
    table.add_column("DIGEST", overflow="fold", no_wrap=not full)
    table.add_column("SIZE", justify="right")
    table.add_column("KIND", overflow="fold")
    if sizes is not None:
        table.add_column("COMPRESSED", justify="right")
        table.add_column("LAYERS", justify="right")
    for platform_text, os_version, digest, size, kind_text, compressed, layers in rows:
        cells: list[str | Text] = [platform_text]
        if with_os_version:
            cells.append(os_version)
        cells += [digest, size, kind_text]
        if sizes is not None:
            cells += [compressed, layers]
        table.add_row(*cells)
    if sizes:
        total = sum(s.compressed for s in sizes.values())
        table.caption = f"compressed total {human_size(total)} ({total} bytes)"
    console.print()
    console.print(table)
    file.write("".join(line.rstrip(" ") + "\n" for line in buffer.getvalue().splitlines()))


def make_console(file: TextIO, color: bool | None, *, buffer: TextIO | None = None) -> Console:
    """A console sized and coloured for ``file`` (a terminal or not), writing to ``buffer``."""
    probe = Console(file=file)  # what rich detects for the real output: width, terminal
    target = buffer if buffer is not None else file
    if color is False:
        return Console(
            file=target, width=probe.width, highlight=False, soft_wrap=False, color_system=None
        )
    # --color forces colour even into a pipe (and over NO_COLOR, as an explicit request).
    terminal = True if color else probe.is_terminal
    return Console(
        file=target,
        width=probe.width,
        highlight=False,
        soft_wrap=False,
        force_terminal=terminal,
        color_system="auto",
        no_color=False if color else probe.no_color,
    )


def human_size(size: int) -> str:
    """Decimal units, as docker and registries' UIs show image sizes."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - unreachable


def _size_cells(sizes: Mapping[str, ImageSize] | None, digest: str) -> tuple[str, str]:
    size = (sizes or {}).get(digest)
    if size is None:
        return ("", "")
    return (human_size(size.compressed), str(size.layers))


def _kind_text(child: Child, by_digest: dict[str, Child], full: bool) -> Text:
    if child.kind is ChildKind.ATTESTATION and child.subject_digest:
        subject = by_digest.get(child.subject_digest)
        if subject is not None and subject.descriptor.platform is not None:
            target = str(subject.descriptor.platform)
        else:
            target = child.subject_digest if full else short_digest(child.subject_digest)
        return Text(f"attestation of {target}", style="dim")
    style = "dim" if child.kind is not ChildKind.IMAGE else ""
    return Text(child.kind.value, style=style)
