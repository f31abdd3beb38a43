"""Rendering of ``imginspect tags``, ``referrers`` and ``diff`` results: plain-text tables
and JSON documents. Pure (standard library only): no click, no rich, no httpx.

Tables are laid out at their natural width, values never cut; digests are shortened to 12
hex digits unless ``no_trunc``. Everything printed from a registry (tags, annotations,
artifact types) has passed validation or is escaped of control characters here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from imginspect.diff import (
    KEYED_FIELDS,
    SET_FIELDS,
    ConfigChange,
    EntryDiff,
    ImageDiff,
    ImagesDifferError,
)
from imginspect.manifest import Descriptor
from imginspect.output import visible
from imginspect.referrers import Evidence, ReferrersOutcome, SubjectEvidence, SupplyChainReport
from imginspect.tags import TagDigest


def clean(text: str) -> str:
    """``text`` with control characters escaped (registry data reaches a terminal)."""
    return visible(text)


def short(digest: str | None, no_trunc: bool = False) -> str:
    if digest is None:
        return "-"
    if no_trunc or ":" not in digest:
        return digest
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}:{hex_part[:12]}"


def columns(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- tags


def tag_line(tag: str | TagDigest, *, as_json: bool) -> str:
    """One line of ``imginspect tags``: the tag, ``DIGEST  TAG`` with ``--digests``; as
    JSON, one object per line (NDJSON)."""
    if isinstance(tag, str):
        return json.dumps({"tag": tag}) if as_json else tag
    if as_json:
        return json.dumps(
            {"tag": tag.tag, "digest": tag.digest, "mediaType": tag.media_type, "size": tag.size}
        )
    return f"{tag.digest or '-'}  {tag.tag}"


# --------------------------------------------------------------------------- referrers


def _evidence_json(evidence: Evidence) -> dict[str, Any]:
    document: dict[str, Any] = {
        "kinds": list(evidence.kinds),
        "foundBy": evidence.found_by,
        "mediaType": evidence.media_type,
        "digest": evidence.digest,
        "size": evidence.size,
    }
    if evidence.artifact_type:
        document["artifactType"] = evidence.artifact_type
    if evidence.predicate_types:
        document["predicateTypes"] = list(evidence.predicate_types)
    if evidence.tag:
        document["tag"] = evidence.tag
    if evidence.created:
        document["created"] = evidence.created
    if evidence.annotations:
        document["annotations"] = dict(evidence.annotations)
    return document


def _subject_json(report: SupplyChainReport, subject: SubjectEvidence) -> dict[str, Any]:
    return {
        "subject": subject.label,
        "digest": subject.digest,
        "method": subject.method,
        "evidence": sorted(report.kinds_for(subject)),
        "referrers": [_evidence_json(e) for e in subject.evidence],
    }


def referrers_json(report: SupplyChainReport, *, one_line: bool = False) -> str:
    result = report.result
    document = {
        "Name": str(result.reference),
        "Descriptor": {
            "mediaType": result.descriptor.media_type,
            "digest": result.descriptor.digest,
            "size": result.descriptor.size,
        },
        "Subjects": [_subject_json(report, s) for s in report.subjects],
    }
    return json.dumps(document, indent=None if one_line else 2) + "\n"


def _what(evidence: Evidence) -> str:
    if evidence.predicate_types:
        return ", ".join(clean(p) for p in evidence.predicate_types)
    if evidence.artifact_type:
        return clean(evidence.artifact_type)
    return clean(evidence.tag or evidence.media_type)


def referrers_table(report: SupplyChainReport, *, no_trunc: bool = False) -> str:
    result = report.result
    methods = sorted({s.method for s in report.subjects})
    head = (
        f"Name      {result.reference}\n"
        f"Digest    {result.descriptor.digest}\n"
        f"Listed by {', '.join(methods)}\n\n"
    )
    rows = []
    for subject in report.subjects:
        # The label is the platform a registry wrote in the index: escaped like the rest.
        label = clean(subject.label)
        if not subject.evidence:
            rows.append([label, "none", "-", "-", "-", "-"])
        for evidence in subject.evidence:
            rows.append(
                [
                    label,
                    ",".join(evidence.kinds),
                    evidence.found_by,
                    short(evidence.digest, no_trunc),
                    str(evidence.size),
                    _what(evidence),
                ]
            )
    table = columns(["SUBJECT", "KIND", "FOUND BY", "DIGEST", "SIZE", "TYPE"], rows)
    summary = ["", "EVIDENCE (an index's covers each of its images)"]
    for subject in report.images():
        kinds = sorted(report.kinds_for(subject))
        summary.append(f"{clean(subject.label)}: {', '.join(kinds) or 'none'}")
    return head + table + "\n".join(summary) + "\n"


# --------------------------------------------------------------------------- diff


def _descriptor_json(descriptor: Descriptor | None) -> dict[str, Any] | None:
    if descriptor is None:
        return None
    return {
        "mediaType": descriptor.media_type,
        "digest": descriptor.digest,
        "size": descriptor.size,
    }


def diff_json(diff: ImageDiff, a_name: str, b_name: str) -> str:
    entries = []
    for entry in diff.entries:
        item: dict[str, Any] = {
            "platform": entry.key,
            "status": entry.status,
            "a": _descriptor_json(entry.a),
            "b": _descriptor_json(entry.b),
        }
        if entry.a_compressed is not None or entry.b_compressed is not None:
            item["compressedSize"] = {"a": entry.a_compressed, "b": entry.b_compressed}
        if entry.config is not None:
            item["config"] = [_change_json(c) for c in entry.config]
        if entry.layers is not None:
            item["layers"] = {
                "removed": [_descriptor_json(d) for d in entry.layers.removed],
                "added": [_descriptor_json(d) for d in entry.layers.added],
                "reordered": entry.layers.reordered,
            }
        entries.append(item)
    document = {
        "A": {"name": a_name, **(_descriptor_json(diff.a) or {})},
        "B": {"name": b_name, **(_descriptor_json(diff.b) or {})},
        "Same": not diff.differ,
        "MediaTypeChanged": diff.media_type_changed,
        "Platforms": entries,
    }
    return json.dumps(document, indent=2) + "\n"


def _change_json(change: ConfigChange) -> dict[str, Any]:
    if change.field in KEYED_FIELDS:
        return {
            "field": change.field,
            "added": list(change.added),
            "removed": list(change.removed),
            "changed": [{"key": k, "a": a, "b": b} for k, a, b in change.changed],
        }
    if change.field in SET_FIELDS:
        return {"field": change.field, "added": list(change.added), "removed": list(change.removed)}
    return {"field": change.field, "a": change.a, "b": change.b}


def _value(value: Any) -> str:
    if value is None:
        return "(unset)"
    return clean(value if isinstance(value, str) else json.dumps(value))


def change_lines(change: ConfigChange) -> list[str]:
    """One table line per difference of ``change``: ``A -> B``, ``+ added``, ``- removed``,
    ``~ KEY: A -> B`` (control characters escaped)."""
    if change.field not in KEYED_FIELDS and change.field not in SET_FIELDS:
        return [f"{_value(change.a)} -> {_value(change.b)}"]
    lines = [f"- {clean(x)}" for x in change.removed] + [f"+ {clean(x)}" for x in change.added]
    lines += [f"~ {clean(k)}: {clean(a)} -> {clean(b)}" for k, a, b in change.changed]
    return lines


def _details_tables(entries: Sequence[EntryDiff], no_trunc: bool) -> str:
    """With ``--image-config``: the config fields and the layers that changed, per platform
    in both (one line per difference)."""
    config_rows = []
    layer_rows = []
    for entry in entries:
        for change in entry.config or ():
            config_rows += [[clean(entry.key), change.field, line] for line in change_lines(change)]
        if entry.layers is not None:
            layers_of = (("removed", entry.layers.removed), ("added", entry.layers.added))
            for status, layers in layers_of:
                layer_rows += [
                    [clean(entry.key), status, short(d.digest, no_trunc), str(d.size)]
                    for d in layers
                ]
            if entry.layers.reordered:
                layer_rows.append([clean(entry.key), "reordered", "-", "-"])
    out = "\nCONFIG (A -> B)\n"
    if config_rows:
        out += columns(["PLATFORM", "FIELD", "CHANGE"], config_rows)
    else:
        out += "no config field changed\n"
    out += "\nLAYERS\n"
    if layer_rows:
        out += columns(["PLATFORM", "CHANGE", "DIGEST", "SIZE"], layer_rows)
    else:
        out += "no layer changed\n"
    return out


def diff_table(diff: ImageDiff, a_name: str, b_name: str, *, no_trunc: bool = False) -> str:
    # The media types and platform keys are the registry's: escaped (see clean).
    a_type, b_type = clean(diff.a.media_type), clean(diff.b.media_type)
    head = columns(
        ["", "NAME", "DIGEST", "SIZE", "TYPE"],
        [
            ["A", a_name, short(diff.a.digest, no_trunc), str(diff.a.size), a_type],
            ["B", b_name, short(diff.b.digest, no_trunc), str(diff.b.size), b_type],
        ],
    )
    rows = []
    for entry in diff.entries:
        sizes = [str(e.size) if e is not None else "-" for e in (entry.a, entry.b)]
        rows.append(
            [
                clean(entry.key),
                entry.status,
                short(entry.a.digest if entry.a else None, no_trunc),
                short(entry.b.digest if entry.b else None, no_trunc),
                sizes[0],
                sizes[1],
            ]
        )
    table = columns(["PLATFORM", "STATUS", "A DIGEST", "B DIGEST", "A SIZE", "B SIZE"], rows)
    if diff.compared:
        table += _details_tables(diff.entries, no_trunc)
    return head + "\n" + table


def diff_summary(diff: ImageDiff) -> str:
    """One line for CI: what changed, platforms first (``linux/arm64 removed``)."""
    parts = []
    for entry in diff.entries:
        if entry.status != "same":
            inside = entry.details_summary()
            parts.append(f"{entry.key} {entry.status}" + (f" ({inside})" if inside else ""))
    if diff.media_type_changed:
        parts.insert(0, f"media type {diff.a.media_type} -> {diff.b.media_type}")
    return "; ".join(parts) or "the digests differ"


__all__ = [
    "change_lines",
    "clean",
    "columns",
    "diff_json",
    "diff_summary",
    "diff_table",
    "referrers_json",
    "referrers_table",
    "short",
    "tag_line",
]


# --------------------------------------------------------------------------- commands


def tag_writes(
    found: Iterable[str | TagDigest], *, as_json: bool, lines_per_write: int = 1000
) -> Iterator[str]:
    """The lines of ``imginspect tags``, joined ``lines_per_write`` at a time (one write per
    1000 lines, not one per tag; 1 streams each line as soon as it is known). A listing that
    fails partway gives what it listed first, then its error: the tags already known are
    printed before the error line, not lost with it."""
    chunk: list[str] = []
    try:
        for tag in found:
            chunk.append(tag_line(tag, as_json=as_json))
            if len(chunk) >= lines_per_write:
                yield "\n".join(chunk)
                chunk.clear()
    except Exception:
        if chunk:
            yield "\n".join(chunk)
        raise
    if chunk:
        yield "\n".join(chunk)


def referrers_output(
    report: SupplyChainReport,
    *,
    as_json: bool,
    no_trunc: bool,
    batch: bool = False,
    first: bool = True,
) -> str:
    """What ``imginspect referrers`` prints for one reference: the JSON document (in a
    ``batch``, on one line: NDJSON) or the table (in a batch, after a blank line unless
    ``first``)."""
    if as_json:
        return referrers_json(report, one_line=batch)
    table = referrers_table(report, no_trunc=no_trunc)
    return table if first else "\n" + table


def referrers_writes(
    outcomes: Iterable[ReferrersOutcome], *, as_json: bool, no_trunc: bool, batch: bool
) -> Iterator[tuple[ReferrersOutcome, str]]:
    """Each outcome of ``imginspect referrers`` with what to print for it (nothing for a
    failure): tables a blank line apart, JSON one line per reference in a ``batch``."""
    first = True
    for outcome in outcomes:
        text = ""
        if outcome.report is not None:
            text = referrers_output(
                outcome.report, as_json=as_json, no_trunc=no_trunc, batch=batch, first=first
            )
            first = False
        yield outcome, text


def diff_output(diff: ImageDiff, a_name: str, b_name: str, *, as_json: bool, no_trunc: bool) -> str:
    """What ``imginspect diff`` prints: the JSON document or the table."""
    if as_json:
        return diff_json(diff, a_name, b_name)
    return diff_table(diff, a_name, b_name, no_trunc=no_trunc)


def differ_error(diff: ImageDiff, a_name: str, b_name: str) -> ImagesDifferError | None:
    """The verdict of ``imginspect diff`` (exit 9) when the images differ, else None."""
    if not diff.differ:
        return None
    return ImagesDifferError(f"{a_name} and {b_name} differ: {diff_summary(diff)}")
