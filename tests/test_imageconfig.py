"""imageconfig: the decoder (tolerant of missing fields, strict on types, never anything
but MalformedDocumentError) and the alignment of history with layers."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imginspect.errors import MalformedDocumentError
from imginspect.imageconfig import (
    NO_HISTORY,
    NO_LAYER,
    HistoryEntry,
    align_history,
    decode_image_config,
    details_of,
    format_duration,
)
from imginspect.manifest import Descriptor, ImageManifest

DIGEST = "sha256:" + "a" * 64


def _layer(n: int) -> Descriptor:
    return Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", f"sha256:{n:064x}", 10 + n)


def test_empty_object_is_a_config_with_nothing_set() -> None:
    config = decode_image_config(b"{}")
    assert config.platform is None and config.history == () and config.labels is None
    assert config.entrypoint is None and config.cmd is None and config.env == ()


def test_windows_fields_and_run_config() -> None:
    raw = json.dumps(
        {
            "os": "windows",
            "architecture": "amd64",
            "os.version": "10.0.20348.2340",
            "os.features": ["win32k"],
            "config": {
                "User": "ContainerUser",
                "Shell": ["powershell", "-Command"],
                "Entrypoint": "cmd.exe /S /C app",
                "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
                "Healthcheck": {"Test": ["NONE"]},
            },
        }
    ).encode()
    config = decode_image_config(raw)
    assert config.platform is not None
    assert config.platform.os_version == "10.0.20348.2340"
    assert config.platform.os_features == ("win32k",)
    assert config.shell == ("powershell", "-Command")
    assert config.entrypoint == ("cmd.exe /S /C app",)  # shell form: one string
    assert config.exposed_ports == ("443/tcp", "80/tcp")
    assert config.healthcheck is not None and config.healthcheck.test == ("NONE",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty body"),
        (b"not json", "invalid JSON"),
        (b"[1]", "expected a JSON object"),
        (b"<html></html>", "HTML"),
        (b'{"config": []}', "'config' must be an object"),
        (b'{"config": {"Env": [1]}}', "'Env' must be an array of strings"),
        (b'{"config": {"Labels": {"a": 1}}}', "'Labels' must be an object of strings"),
        (b'{"config": {"Healthcheck": {"Retries": "3"}}}', "'Retries' must be an integer"),
        (b'{"history": {}}', "'history' must be an array"),
        (b'{"history": [{"empty_layer": "yes"}]}', "'empty_layer' must be a boolean"),
        (b'{"rootfs": {"diff_ids": "x"}}', "'diff_ids' must be an array of strings"),
        (b'{"os": 3}', "'os' must be a string"),
    ],
)
def test_malformed_configs_say_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedDocumentError) as caught:
        decode_image_config(raw)
    assert message in caught.value.message


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_malformed(raw: bytes) -> None:
    with contextlib.suppress(MalformedDocumentError):
        decode_image_config(raw)


H = HistoryEntry


@pytest.mark.parametrize(
    ("history", "layers", "expected"),
    [
        # (layer index or None, history position or None, unmatched)
        ([], 2, [(0, None, NO_HISTORY), (1, None, NO_HISTORY)]),
        ([H(), H()], 2, [(0, 0, None), (1, 1, None)]),
        ([H(), H(empty_layer=True), H()], 2, [(0, 0, None), (None, 1, None), (1, 2, None)]),
        ([H(), H(), H()], 2, [(0, 0, None), (1, 1, None), (None, 2, NO_LAYER)]),
        ([H()], 3, [(0, 0, None), (1, None, NO_HISTORY), (2, None, NO_HISTORY)]),
        ([H(empty_layer=True)], 0, [(None, 0, None)]),
        ([H()], 0, [(None, 0, NO_LAYER)]),
    ],
)
def test_history_aligned_with_layers(
    history: list[HistoryEntry],
    layers: int,
    expected: list[tuple[int | None, int | None, str | None]],
) -> None:
    descriptors = [_layer(n) for n in range(layers)]
    steps = align_history(descriptors, history, [f"sha256:{n:064x}" for n in range(1)])
    got = [
        (
            s.index,
            None if s.history is None else next(i for i, h in enumerate(history) if h is s.history),
            s.unmatched,
        )
        for s in steps
    ]
    assert got == expected
    for step in steps:
        assert (step.layer is None) == (step.index is None)
        if step.index is not None:
            assert step.layer == descriptors[step.index]
            assert step.diff_id == (f"sha256:{0:064x}" if step.index == 0 else None)


@given(st.lists(st.booleans(), max_size=12), st.integers(0, 12))
def test_alignment_keeps_every_layer_and_entry_once(empties: list[bool], layers: int) -> None:
    history = [H(created_by=str(n), empty_layer=e) for n, e in enumerate(empties)]
    descriptors = [_layer(n) for n in range(layers)]
    steps = align_history(descriptors, history)
    assert [s.layer for s in steps if s.layer] == descriptors
    assert [s.history for s in steps if s.history] == history


def test_unknown_config_media_type_is_an_artifact_not_an_error() -> None:
    manifest = ImageManifest(
        "application/vnd.oci.image.manifest.v1+json",
        Descriptor("application/vnd.cncf.helm.config.v1+json", DIGEST, 2),
        (_layer(1),),
    )
    details = details_of(DIGEST, manifest, b"not even json")
    assert details.kind == "artifact" and details.config is None
    assert [s.layer for s in details.steps] == [_layer(1)]


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (None, ""),
        (0, "0s"),
        (500_000_000, "500ms"),
        (30_000_000_000, "30s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (1_500, "1.5µs"),
    ],
)
def test_durations_print_as_docker_does(ns: int | None, text: str) -> None:
    assert format_duration(ns) == text
