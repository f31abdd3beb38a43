"""Output renderers for each mode, the template data model, the table at narrow widths and
with less-common images, the progress line, and ``python -m imginspect``."""

from __future__ import annotations

import io
import json
import re
import runpy
import sys
import types
from typing import Any

import pytest

from imginspect import mediatypes as mt
from imginspect import progress as progress_module
from imginspect.batch import Outcome
from imginspect.digest import compute_digest
from imginspect.errors import NotFoundError
from imginspect.imageconfig import details_of
from imginspect.manifest import Descriptor, ImageManifest, Platform, decode_document
from imginspect.output import OutputMode, render, render_extended_v2, template_data
from imginspect.reference import parse_reference
from imginspect.result import InspectResult
from imginspect.table import render as render_table
from imginspect.table import render_images
from imginspect.template import Template

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def _layer(n: int, size: int) -> dict[str, Any]:
    return {"mediaType": LAYER_TYPE, "digest": compute_digest(b"layer%d" % n), "size": size}


def _manifest_raw(config: bytes, config_type: str, layers: int, **extra: Any) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": compute_digest(config), "size": len(config)},
        "layers": [_layer(n, 1000 * (n + 1)) for n in range(layers)],
        **extra,
    }
    return json.dumps(doc).encode()


def _result(raw: bytes, **extra: Any) -> InspectResult:
    document = decode_document(raw)
    return InspectResult(
        reference=parse_reference("localhost:5000/app:v1"),
        descriptor=Descriptor(
            media_type=document.media_type,
            digest=compute_digest(raw),
            size=len(raw),
            annotations=document.annotations,
            artifact_type=document.artifact_type,
        ),
        document=document,
        raw=raw,
        **extra,
    )


# A Windows image: os.version and os.features, two layers but one history entry (the
# second layer has none), a healthcheck with only a test, no env, labels or timing.
WINDOWS_CONFIG = json.dumps(
    {
        "os": "windows",
        "architecture": "amd64",
        "os.version": "10.0.20348.1",
        "os.features": ["win32k"],
        "config": {"Healthcheck": {"Test": ["CMD", "ping"]}},
        "history": [{"created_by": "ADD base"}],
    }
).encode()
WINDOWS_RAW = _manifest_raw(WINDOWS_CONFIG, mt.OCI_CONFIG, 2)

# A Linux image with more history than layers (entries left without a layer), a
# healthcheck with retries only, and env.
LINUX_CONFIG = json.dumps(
    {
        "os": "linux",
        "architecture": "arm64",
        "config": {"Env": ["A=1"], "Healthcheck": {"Test": ["NONE"], "Retries": 3}},
        "history": [
            {"created_by": "one"},
            {"created_by": "two", "comment": "c"},
            {"created_by": "three"},
        ],
    }
).encode()
LINUX_RAW = _manifest_raw(LINUX_CONFIG, mt.OCI_CONFIG, 1)

# An artifact: an unknown config type and an artifactType; no config, no platform.
ARTIFACT_RAW = _manifest_raw(
    b"{}", "application/vnd.example.config+json", 1, artifactType="application/vnd.example"
)


def _details(raw: bytes, config: bytes) -> Any:
    manifest = decode_document(raw)
    assert isinstance(manifest, ImageManifest)
    return details_of(compute_digest(raw), manifest, config)


def _text(write: Any) -> str:
    buffer = io.StringIO()
    write(buffer)
    return ANSI.sub("", buffer.getvalue())


# ----------------------------------------------------------------------------- render()


def test_template_mode_needs_a_template() -> None:
    outcome = Outcome("x", result=_result(LINUX_RAW, config_platform=Platform("linux", "arm64")))
    with pytest.raises(ValueError, match="pass template="):
        render(outcome, OutputMode.TEMPLATE)
    assert render(outcome, OutputMode.TEMPLATE, template=Template("{{.Tag}}|{{.Kind}}")) == (
        b"v1|image"
    )


ERROR = NotFoundError("manifest unknown")

# (mode, batch, outcome, expected bytes, or a callable checking them)
FAILED = Outcome("localhost:5000/gone:1", error=ERROR)
EMPTY = Outcome("localhost:5000/none:1")


@pytest.mark.parametrize(
    ("mode", "batch", "outcome", "expected"),
    [
        (OutputMode.TEMPLATE, False, FAILED, b""),
        (OutputMode.EXTENDED_JSON_V2, False, FAILED, b""),
        (OutputMode.EXTENDED_JSON_V2, False, EMPTY, b""),
        (OutputMode.EXTENDED_JSON, False, EMPTY, b""),
        (OutputMode.JSON, False, FAILED, b""),
        (OutputMode.RAW, False, EMPTY, b""),
        (OutputMode.DIGEST, False, EMPTY, b""),
        (OutputMode.DIGEST, True, Outcome("a:1", digest="sha256:00"), b"sha256:00  a:1\n"),
        (OutputMode.DIGEST, False, Outcome("a:1", digest="sha256:00"), b"sha256:00\n"),
        (OutputMode.TABLE, True, FAILED, b""),
        (OutputMode.RAW, False, Outcome("a:1", result=_result(LINUX_RAW)), LINUX_RAW),
    ],
)
def test_render_without_a_result(
    mode: OutputMode, batch: bool, outcome: Outcome, expected: bytes
) -> None:
    assert render(outcome, mode, batch=batch, template=Template("x")) == expected


@pytest.mark.parametrize(
    "mode", [OutputMode.EXTENDED_JSON_V2, OutputMode.EXTENDED_JSON, OutputMode.JSON]
)
def test_a_failed_batch_reference_is_an_error_object(mode: OutputMode) -> None:
    line = render(FAILED, mode, batch=True)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    document = json.loads(line)
    version = 2 if mode is OutputMode.EXTENDED_JSON_V2 else 1
    assert document == {
        "schemaVersion": version,
        "reference": "localhost:5000/gone:1",
        "error": {"code": "not-found", "exitCode": 4, "message": "manifest unknown", "hint": None},
    }
    if mode is OutputMode.EXTENDED_JSON_V2:
        assert render_extended_v2(FAILED, batch=True) == line


# ----------------------------------------------------------------------- template_data()


def test_template_data_of_a_single_image_with_its_config() -> None:
    result = _result(LINUX_RAW, images=(_details(LINUX_RAW, LINUX_CONFIG),))
    data = template_data(result, given="app:v1")
    assert data["Name"] == "app:v1"
    assert data["Image"] is data["Images"][0]
    assert data["Config"] is data["Image"]["Config"]
    assert data["Config"]["Env"] == ["A=1"]
    assert data["Config"]["Healthcheck"]["Retries"] == 3
    assert data["Config"]["Healthcheck"]["Interval"] == 0
    assert [h["CreatedBy"] for h in data["Image"]["History"]] == ["one", "two", "three"]
    assert data["Image"]["Platform"]["Architecture"] == "arm64"
    text = Template(
        "{{.Image.Platform.Os}} {{len .Image.Layers}} {{range .Image.History}}{{.Comment}};{{end}}"
    ).execute(data)
    assert text == "linux 1 ;c;;"


def test_template_data_of_an_artifact_has_no_config_nor_platform() -> None:
    details = _details(ARTIFACT_RAW, b"{}")
    result = _result(ARTIFACT_RAW, images=(details,))
    data = template_data(result, given="art")
    image = data["Image"]
    assert image["Kind"] == "artifact"
    assert image["Config"] is None and data["Config"] is None
    assert image["Platform"] is None
    assert image["Created"] == "" and image["History"] == []
    assert data["ArtifactType"] == "application/vnd.example"
    assert [layer["DiffID"] for layer in image["Layers"]] == [""]


def _index_raw() -> bytes:
    image = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": compute_digest(LINUX_RAW),
        "size": len(LINUX_RAW),
        "platform": {"os": "linux", "architecture": "arm64"},
    }
    unrelated = compute_digest(b"not in this index")
    attestation = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": compute_digest(b"att"),
        "size": 3,
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {
            mt.ANNOTATION_REFERENCE_TYPE: mt.ATTESTATION_MANIFEST,
            mt.ANNOTATION_REFERENCE_DIGEST: unrelated,
        },
    }
    bare = {"mediaType": mt.OCI_MANIFEST, "digest": compute_digest(b"bare"), "size": 4}
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [image, attestation, bare]}
    return json.dumps(doc).encode()


def test_template_data_of_an_index() -> None:
    result = _result(_index_raw(), images=(_details(LINUX_RAW, LINUX_CONFIG),))
    data = template_data(result, given="idx")
    # an index has no single Image even with one image read
    assert data["Image"] is None and data["Config"] is None
    assert len(data["Images"]) == 1
    kinds = [m["Kind"] for m in data["Manifests"]]
    assert kinds == ["image", "attestation", "no platform"]
    assert data["Manifests"][2]["Platform"] is None
    assert data["Manifests"][0]["Platform"]["OsFeatures"] == []


# ------------------------------------------------------------------------------- table


def test_table_of_an_index_names_an_attestation_subject_outside_it() -> None:
    result = _result(_index_raw())
    unrelated = compute_digest(b"not in this index")
    text = _text(lambda f: render_table(result, f, color=False, no_trunc=True))
    assert f"attestation of {unrelated}" in text
    short = _text(lambda f: render_table(result, f, color=False))
    assert unrelated not in short
    assert "attestation of sha256:" in short


def test_table_summary_shows_the_artifact_type() -> None:
    result = _result(ARTIFACT_RAW)
    text = _text(lambda f: render_table(result, f, color=False))
    assert re.search(r"^Artifact +application/vnd.example$", text, re.M)
    assert re.search(r"^-\s+sha256:\S+\s+\d+\s+artifact$", text, re.M)


def test_image_blocks_of_less_common_images() -> None:
    images = (
        _details(WINDOWS_RAW, WINDOWS_CONFIG),
        _details(LINUX_RAW, LINUX_CONFIG),
        _details(ARTIFACT_RAW, b"{}"),
    )
    result = _result(_index_raw(), images=images)
    text = _text(lambda f: render_images(result, f, color=False, no_trunc=True))
    windows, linux, artifact = _blocks(text)
    assert "OS version   10.0.20348.1" in windows
    assert "OS features  win32k" in windows
    assert 'Healthcheck  ["CMD", "ping"]' in windows
    assert "Env" not in windows and "Labels" not in windows
    # the second layer has no history entry: "none" in the layers table
    rows = [line.split() for line in windows.splitlines() if line.startswith("    1 ")]
    assert rows and rows[0][4] == "none"
    assert 'Healthcheck  ["NONE"]' in linux and "retries 3" in linux
    assert "Env          A=1" in linux
    # history entries left without a layer: "none"; the comment column appears
    history = linux[linux.index("History") :]
    assert "COMMENT" in history
    assert re.search(r"^\s+1\s+none\s+two\s+c$", history, re.M)
    assert re.search(r"^\s+0\s+0\s+one$", history, re.M)
    assert "Config type    application/vnd.example.config+json" in artifact
    assert "Artifact type  application/vnd.example" in artifact
    assert "HISTORY" not in artifact and "History" not in artifact


def _blocks(text: str) -> list[str]:
    # one block per image, each starting with its bold "platform  digest  kind" line
    starts = [m.start() for m in re.finditer(r"^\S.*  sha256:\S+  (image|artifact)$", text, re.M)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def test_narrow_terminal_wraps_rows_between_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.delenv("NO_COLOR", raising=False)
    images = (_details(WINDOWS_RAW, WINDOWS_CONFIG),)
    result = _result(_index_raw(), images=images)
    media = "application/vnd.oci.image.layer.v1.tar+gzip"
    # color=True draws as for a terminal, fitted to its 60 columns
    blocks = _text(lambda f: render_images(result, f, color=True))
    layers = blocks[blocks.index("  Layers\n") : blocks.index("    layers total")]
    assert layers.splitlines()[1:] == [
        "    #  DIGEST                 SIZE  HISTORY",
        "        MEDIA TYPE",
        "    0  sha256:4fbec69b9411  1.0 kB        0",
        f"        {media}",
        "",
        "    1  sha256:77ea7eee3d80  2.0 kB     none",
        f"        {media}",
        "",
    ]
    table = _text(lambda f: render_table(result, f, color=True))
    rows = table[table.index("PLATFORM") :].splitlines()
    # the platform table: a blank line before each wrapped row, KIND on a continuation line
    assert rows[1:4] == ["    KIND", "", rows[3]]
    assert rows[3].startswith("linux/arm64") and rows[4] == "    image"
    assert rows[-2:] == [rows[-2], "    no platform"] and rows[-3] == ""
    # not a terminal: whole lines at the natural width whatever COLUMNS says
    natural = _text(lambda f: render_images(result, f, color=False, no_trunc=True))
    assert "\n        MEDIA TYPE" not in natural
    assert any(line.endswith(media) and "sha256:" in line for line in natural.splitlines())


def test_a_very_narrow_terminal_still_gives_sub_tables_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "10")
    result = _result(LINUX_RAW, images=(_details(LINUX_RAW, LINUX_CONFIG),))
    blocks = _text(lambda f: render_images(result, f, color=True))
    history = blocks[blocks.index("  History\n") :].splitlines()
    # 20 columns at least: "#  LAYER  CREATED" fits, the rest wraps; nothing is cut
    assert history[1] == "    #  LAYER  CREATED"
    assert history[2:4] == ["        CREATED BY", "        COMMENT"]
    assert "        three" in history


# ----------------------------------------------------------------------------- progress


class _Terminal(io.StringIO):
    """A stderr that claims to be a terminal but has no file descriptor."""

    def isatty(self) -> bool:
        return True


def test_progress_without_a_terminal_size_assumes_80_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = _Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    line = progress_module.Progress(True, "x" * 200, total=lambda: 3)
    with line:
        line.advance()
        with line.cleared():
            pass
        line.outcome_written(batch=True)
    drawn = stderr.getvalue().split("\r\x1b[2K")
    assert [len(d) for d in drawn if d] == [79, 79, 79]
    assert drawn[-1] == ""  # erased at the end
    assert drawn[1].startswith("⠋ xxx")


def test_progress_is_not_wanted_without_a_stdout_descriptor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stderr", _Terminal())
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # fileno() raises
    assert progress_module.progress_wanted() is False
    monkeypatch.setattr(sys, "stderr", object())  # no isatty at all
    assert progress_module.progress_wanted() is False


# ----------------------------------------------------------------------------- __main__


def test_python_m_imports_without_running_unless_main(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[bool] = []
    fake = types.ModuleType("imginspect.cli")
    fake.main = lambda: called.append(True)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "imginspect.cli", fake)
    runpy.run_module("imginspect.__main__", run_name="not_main")
    assert called == []
    runpy.run_module("imginspect.__main__", run_name="__main__")
    assert called == [True]


class _Interrupted(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        raise KeyboardInterrupt


def test_python_m_interrupted_while_importing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "imginspect.cli", _Interrupted("imginspect.cli"))
    with pytest.raises(SystemExit) as caught:
        runpy.run_module("imginspect.__main__", run_name="__main__")
    assert caught.value.code == 130
    captured = capsys.readouterr()
    assert captured.err == "error: interrupted\n" and captured.out == ""
