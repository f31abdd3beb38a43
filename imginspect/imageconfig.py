"""Image configurations: the model, the decoder, and the alignment of history with layers.

An image config (Docker schema2 ``application/vnd.docker.container.image.v1+json`` or OCI
``application/vnd.oci.image.config.v1+json``) says what an image runs (entrypoint, cmd, env,
user, ...), when and how it was built (``created``, ``history``) and for which platform.
:func:`decode_image_config` reads one, tolerating missing fields but not fields of the wrong
type; :func:`align_history` pairs each ``history`` entry with the layer it produced (entries
marked ``empty_layer`` produce none), marking what does not match instead of failing.
:class:`ImageDetails` is what ``--image-config`` reports for one image manifest: an image
(with its config) or an artifact (a config media type that is not an image config).

Pure module: json and the project's own pure modules only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from imginspect import mediatypes as mt
from imginspect._record import Record, record
from imginspect.errors import MalformedDocumentError, TooLargeError
from imginspect.manifest import Descriptor, ImageManifest, Platform, _parse_json_object

_WHAT = "image config"

#: ``LayerStep.unmatched``: a history entry that should have produced a layer, but the
#: manifest has no layer left for it.
NO_LAYER = "no layer"
#: ``LayerStep.unmatched``: a layer no history entry accounts for.
NO_HISTORY = "no history"
#: At most this many ``history`` entries: a build step each (real images have hundreds at
#: most). The 8 MiB config bound alone let 2.8 million ``{}`` through: 10 s and 830 MB to
#: decode, and a table row each.
MAX_HISTORY_ENTRIES = 10_000


@record
class Healthcheck(Record):
    """``config.Healthcheck``: durations in nanoseconds, as Docker stores them."""

    test: tuple[str, ...] = ()
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None


@record
class HistoryEntry(Record):
    """One ``history`` entry: how one build step was made."""

    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False


@record
class ImageConfig(Record):
    """The decoded image configuration. Absent fields are None (or empty)."""

    created: str | None = None
    author: str | None = None
    platform: Platform | None = None
    user: str | None = None
    working_dir: str | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    labels: Mapping[str, str] | None = None
    stop_signal: str | None = None
    healthcheck: Healthcheck | None = None
    shell: tuple[str, ...] | None = None
    diff_ids: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()


@record
class LayerStep(Record):
    """One row of an image's build: a layer and/or the history entry that produced it.

    ``layer`` is None for an ``empty_layer`` history entry (e.g. ``ENV``), or for a history
    entry left without a layer (``unmatched == NO_LAYER``); ``history`` is None for a layer
    no history entry accounts for (``unmatched == NO_HISTORY``).
    """

    layer: Descriptor | None
    history: HistoryEntry | None
    #: the layer's position in the manifest (0-based), None without a layer
    index: int | None = None
    #: the uncompressed layer digest from ``rootfs.diff_ids`` at that position
    diff_id: str | None = None
    #: None when layer and history match; else :data:`NO_LAYER` or :data:`NO_HISTORY`
    unmatched: str | None = None


@record
class ImageDetails(Record):
    """What ``--image-config`` reports for one image manifest."""

    #: the image manifest's digest
    digest: str
    manifest: ImageManifest
    #: the platform the index entry names (None for a single image: see ``config``)
    entry_platform: Platform | None
    #: the decoded config; None for an artifact
    config: ImageConfig | None
    #: layers aligned with history (for an artifact: its layers, no history)
    steps: tuple[LayerStep, ...]

    @property
    def kind(self) -> str:
        return "image" if self.config is not None else "artifact"

    @property
    def platform(self) -> Platform | None:
        """The config's platform, else the index entry's."""
        if self.config is not None and self.config.platform is not None:
            return self.config.platform
        return self.entry_platform

    @property
    def compressed_size(self) -> int:
        return self.manifest.compressed_size

    @property
    def layers_size(self) -> int:
        return sum(layer.size for layer in self.manifest.layers)


def is_image_config(media_type: str) -> bool:
    """Whether a config of ``media_type`` is an image config (else: an artifact's)."""
    return media_type in mt.IMAGE_CONFIG_TYPES


def details_of(
    digest: str,
    manifest: ImageManifest,
    config_raw: bytes | None,
    *,
    entry_platform: Platform | None = None,
) -> ImageDetails:
    """Build :class:`ImageDetails` from a manifest and its config bytes (None, or an
    unknown config media type: an artifact, its layers listed without history)."""
    config = None
    if config_raw is not None and is_image_config(manifest.config.media_type):
        config = decode_image_config(config_raw)
    if config is None:
        steps = tuple(
            LayerStep(layer=layer, history=None, index=n) for n, layer in enumerate(manifest.layers)
        )
    else:
        steps = align_history(manifest.layers, config.history, config.diff_ids)
    return ImageDetails(digest, manifest, entry_platform, config, steps)


# --------------------------------------------------------------------------- decoding


def _fail(problem: str) -> MalformedDocumentError:
    return MalformedDocumentError(f"malformed {_WHAT}: {problem}")


def _str(obj: Mapping[str, Any], key: str, where: str = "") -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(f"{where}{key!r} must be a string")
    return value


def _strings(
    obj: Mapping[str, Any], key: str, where: str = "", *, lone_string: bool = True
) -> tuple[str, ...] | None:
    """A JSON array of strings, or None when absent. Docker writes a lone string for a
    shell-form value in some old configs: that is one element."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str) and lone_string:
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(f"{where}{key!r} must be an array of strings")
    return tuple(value)


def _set_keys(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    """``ExposedPorts`` / ``Volumes``: objects whose keys are the values (``{"80/tcp": {}}``)."""
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _fail(f"{where}{key!r} must be an object")
    return tuple(sorted(value))


def _labels(obj: Mapping[str, Any], where: str) -> Mapping[str, str] | None:
    value = obj.get("Labels")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _fail(f"{where}'Labels' must be an object of strings")
    return dict(sorted(value.items()))


def _int(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"{where}{key!r} must be an integer")
    return value


def _healthcheck(obj: Mapping[str, Any]) -> Healthcheck | None:
    value = obj.get("Healthcheck")
    if value is None:
        return None
    where = "config.Healthcheck."
    if not isinstance(value, dict):
        raise _fail("config.'Healthcheck' must be an object")
    return Healthcheck(
        test=_strings(value, "Test", where) or (),
        interval=_int(value, "Interval", where),
        timeout=_int(value, "Timeout", where),
        start_period=_int(value, "StartPeriod", where),
        start_interval=_int(value, "StartInterval", where),
        retries=_int(value, "Retries", where),
    )


def _history(body: Mapping[str, Any]) -> tuple[HistoryEntry, ...]:
    value = body.get("history")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail("'history' must be an array")
    if len(value) > MAX_HISTORY_ENTRIES:  # before a record is built for any of them
        raise TooLargeError(
            f"{_WHAT} has {len(value)} history entries, more than the "
            f"{MAX_HISTORY_ENTRIES} accepted"
        )
    entries = []
    for n, item in enumerate(value):
        where = f"history[{n}]."
        if not isinstance(item, dict):
            raise _fail(f"history[{n}] must be an object")
        empty = item.get("empty_layer", False)
        if not isinstance(empty, bool):
            raise _fail(f"{where}'empty_layer' must be a boolean")
        entries.append(
            HistoryEntry(
                created=_str(item, "created", where),
                created_by=_str(item, "created_by", where),
                author=_str(item, "author", where),
                comment=_str(item, "comment", where),
                empty_layer=empty,
            )
        )
    return tuple(entries)


def decode_image_config(raw: bytes) -> ImageConfig:
    """Decode a Docker schema2 or OCI image config. Missing fields are tolerated; a field of
    the wrong type, or bytes that are not a JSON object, are a MalformedDocumentError."""
    body = _parse_json_object(raw, _WHAT)
    run = body.get("config")
    if run is None:
        run = {}
    if not isinstance(run, dict):
        raise _fail("'config' must be an object")
    rootfs = body.get("rootfs")
    if rootfs is None:
        rootfs = {}
    if not isinstance(rootfs, dict):
        raise _fail("'rootfs' must be an object")
    features = _strings(body, "os.features", lone_string=False) or ()
    platform = Platform(
        os=_str(body, "os") or "",
        architecture=_str(body, "architecture") or "",
        variant=_str(body, "variant") or "",
        os_version=_str(body, "os.version") or "",
        os_features=features,
    )
    where = "config."
    env = _strings(run, "Env", where) or ()
    return ImageConfig(
        created=_str(body, "created"),
        author=_str(body, "author"),
        platform=None if platform.is_empty else platform,
        user=_str(run, "User", where) or None,
        working_dir=_str(run, "WorkingDir", where) or None,
        entrypoint=_strings(run, "Entrypoint", where),
        cmd=_strings(run, "Cmd", where),
        env=env,
        exposed_ports=_set_keys(run, "ExposedPorts", where),
        volumes=_set_keys(run, "Volumes", where),
        labels=_labels(run, where),
        stop_signal=_str(run, "StopSignal", where) or None,
        healthcheck=_healthcheck(run),
        shell=_strings(run, "Shell", where),
        diff_ids=_strings(rootfs, "diff_ids", "rootfs.", lone_string=False) or (),
        history=_history(body),
    )


# --------------------------------------------------------------------------- alignment


def align_history(
    layers: Sequence[Descriptor],
    history: Sequence[HistoryEntry],
    diff_ids: Sequence[str] = (),
) -> tuple[LayerStep, ...]:
    """Pair history entries with the layers they produced, in order.

    An entry with ``empty_layer`` produced no layer (a step without one); every other
    entry takes the next layer. Entries left without a layer are marked :data:`NO_LAYER`,
    layers left without an entry :data:`NO_HISTORY`; nothing is dropped.
    """
    steps: list[LayerStep] = []
    next_layer = 0

    def diff_id(n: int) -> str | None:
        return diff_ids[n] if n < len(diff_ids) else None

    for entry in history:
        if entry.empty_layer:
            steps.append(LayerStep(layer=None, history=entry))
        elif next_layer < len(layers):
            steps.append(
                LayerStep(layers[next_layer], entry, next_layer, diff_id(next_layer), None)
            )
            next_layer += 1
        else:
            steps.append(LayerStep(layer=None, history=entry, unmatched=NO_LAYER))
    for n in range(next_layer, len(layers)):
        steps.append(LayerStep(layers[n], None, n, diff_id(n), NO_HISTORY))
    return tuple(steps)


def format_duration(nanoseconds: int | None) -> str:
    """Go's time.Duration as Docker shows it: ``30s``, ``1m30s``, ``500ms``; ``0s``."""
    if nanoseconds is None:
        return ""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    ns = abs(nanoseconds)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                value = ns / size
                return f"{sign}{value:g}{unit}"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = rest / 1_000_000_000
    text = ""
    if hours:
        text += f"{hours}h"
    if hours or minutes:
        text += f"{minutes}m"
    text += f"{seconds:g}s"
    return sign + text
