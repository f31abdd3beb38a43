"""Comparing two inspected targets: descriptor, platforms added or removed, per platform the
digest and size, and (``--image-config``) per platform in both the config fields and the
layers that changed.

:func:`compare` is pure: it takes two :class:`~imginspect.result.InspectResult` objects (and,
for indexes, their image entries with nested indexes expanded, as
``Inspector.image_children`` lists them) and returns an :class:`ImageDiff`. Entries are
matched by platform (``os/arch[/variant]``, plus ``os.version`` when set); BuildKit
attestations are matched as ``attestation of <platform>``. A single image is one entry, its
config platform. With image details (``InspectResult.images``, as
``Inspector.image_details`` reads them), each changed platform also gets the config fields
that differ (:func:`config_changes`) and the layers added or removed (:func:`layer_changes`).
No third-party imports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import field, replace
from typing import TYPE_CHECKING, Any

from imginspect import platforms
from imginspect._record import Record, record
from imginspect.errors import ExitCode, ImginspectError
from imginspect.manifest import Child, ChildKind, Descriptor

if TYPE_CHECKING:
    from imginspect.imageconfig import Healthcheck, ImageConfig, ImageDetails
    from imginspect.inspector import Inspector
    from imginspect.result import InspectResult
    from imginspect.target import Target

SAME = "same"
CHANGED = "changed"
ADDED = "added"
REMOVED = "removed"


class ImagesDifferError(ImginspectError):
    """``imginspect diff``: the two targets differ (exit 9, a verdict like 7 and 8)."""

    exit_code = ExitCode.IMAGES_DIFFER
    code = "images-differ"


#: Config fields compared by value (``a`` -> ``b``), in report order.
VALUE_FIELDS = (
    "Created",
    "Author",
    "Platform",
    "User",
    "WorkingDir",
    "Entrypoint",
    "Cmd",
    "Shell",
    "StopSignal",
    "Healthcheck",
)
#: Config fields of ``KEY=VALUE`` entries: keys added, removed, or whose value changed.
KEYED_FIELDS = ("Env", "Labels")
#: Config fields that are sets: members added or removed.
SET_FIELDS = ("ExposedPorts", "Volumes")
#: The order in which a platform's config changes are listed.
CONFIG_FIELDS = ("Config", *VALUE_FIELDS[:5], "Env", *VALUE_FIELDS[5:], "Labels", *SET_FIELDS)


@record
class ConfigChange(Record):
    """One config field that differs between A's and B's image of a platform.

    :data:`VALUE_FIELDS` (and ``Config``: an image config on one side only): ``a`` and ``b``,
    JSON values (None: unset). :data:`KEYED_FIELDS`: ``added`` and ``removed`` as
    ``KEY=VALUE``, ``changed`` as (key, A's value, B's value). :data:`SET_FIELDS`:
    ``added`` and ``removed``."""

    field: str
    a: Any = None
    b: Any = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[tuple[str, str, str], ...] = ()


@record
class LayerChanges(Record):
    """The layers of a platform's image that differ, by digest: ``removed`` (in A only, in
    A's order), ``added`` (in B only, in B's order), and whether the layers both have are
    in another order (``reordered``). A layer present twice counts twice."""

    removed: tuple[Descriptor, ...] = ()
    added: tuple[Descriptor, ...] = ()
    reordered: bool = False

    @property
    def any(self) -> bool:
        return bool(self.removed or self.added or self.reordered)


@record
class EntryDiff(Record):
    """One platform (or attestation) in A, in B, or in both."""

    key: str
    a: Descriptor | None
    b: Descriptor | None
    #: compressed sizes (config + layers) when the results carry ``sizes``
    a_compressed: int | None = None
    b_compressed: int | None = None
    #: with image details, for a platform in both: the config fields that differ (None: not
    #: compared, e.g. an attestation or no details)
    config: tuple[ConfigChange, ...] | None = None
    #: with image details, for a platform in both: the layers that differ (None: not compared)
    layers: LayerChanges | None = field(default=None)

    @property
    def compared(self) -> bool:
        """Whether config and layers were compared (``--image-config``)."""
        return self.config is not None and self.layers is not None

    def details_summary(self) -> str:
        """What changed inside the image, for the one-line verdict: ``User, Env, layers +1 -1``."""
        parts = [c.field for c in self.config or ()]
        if self.layers is not None and self.layers.any:
            counts = f"+{len(self.layers.added)} -{len(self.layers.removed)}"
            parts.append(f"layers {counts}" + (" reordered" if self.layers.reordered else ""))
        return ", ".join(parts)

    @property
    def status(self) -> str:
        if self.a is None:
            return ADDED
        if self.b is None:
            return REMOVED
        return SAME if self.a.digest == self.b.digest else CHANGED


@record
class ImageDiff(Record):
    """The differences between two targets; ``differ`` is the verdict."""

    a: Descriptor
    b: Descriptor
    entries: tuple[EntryDiff, ...]

    @property
    def same_digest(self) -> bool:
        return self.a.digest == self.b.digest

    @property
    def media_type_changed(self) -> bool:
        return self.a.media_type != self.b.media_type

    @property
    def differ(self) -> bool:
        return not self.same_digest

    def with_status(self, status: str) -> tuple[EntryDiff, ...]:
        return tuple(e for e in self.entries if e.status == status)

    @property
    def compared(self) -> bool:
        """Whether image configs and layers were compared (``--image-config``)."""
        return any(e.compared for e in self.entries)


# --------------------------------------------------------------------------- config and layers


def _healthcheck_json(check: Healthcheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    document: dict[str, Any] = {"Test": list(check.test)}
    for name, value in (
        ("Interval", check.interval),
        ("Timeout", check.timeout),
        ("StartPeriod", check.start_period),
        ("StartInterval", check.start_interval),
        ("Retries", check.retries),
    ):
        if value is not None:
            document[name] = value
    return document


def _values(config: ImageConfig) -> dict[str, Any]:
    """The :data:`VALUE_FIELDS` of ``config`` as JSON values."""
    # format_platform names the os.version itself (``windows/amd64:10.0.20348.2113``);
    # adding it again printed it twice
    platform = None
    if config.platform is not None:
        platform = platforms.format_platform(config.platform)

    def listed(value: tuple[str, ...] | None) -> list[str] | None:
        return None if value is None else list(value)

    return {
        "Created": config.created,
        "Author": config.author,
        "Platform": platform,
        "User": config.user,
        "WorkingDir": config.working_dir,
        "Entrypoint": listed(config.entrypoint),
        "Cmd": listed(config.cmd),
        "Shell": listed(config.shell),
        "StopSignal": config.stop_signal,
        "Healthcheck": _healthcheck_json(config.healthcheck),
    }


def _env(entries: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` entries by key (the last of a key wins, as at run time)."""
    out: dict[str, str] = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def _keyed(name: str, a: Mapping[str, str], b: Mapping[str, str]) -> ConfigChange | None:
    added = tuple(f"{k}={v}" for k, v in b.items() if k not in a)
    removed = tuple(f"{k}={v}" for k, v in a.items() if k not in b)
    changed = tuple((k, v, b[k]) for k, v in a.items() if k in b and b[k] != v)
    if not (added or removed or changed):
        return None
    return ConfigChange(name, added=added, removed=removed, changed=changed)


def _set(name: str, a: Sequence[str], b: Sequence[str]) -> ConfigChange | None:
    added = tuple(x for x in dict.fromkeys(b) if x not in a)
    removed = tuple(x for x in dict.fromkeys(a) if x not in b)
    if not (added or removed):
        return None
    return ConfigChange(name, added=added, removed=removed)


def config_changes(a: ImageConfig | None, b: ImageConfig | None) -> tuple[ConfigChange, ...]:
    """The config fields that differ between ``a`` and ``b``, in :data:`CONFIG_FIELDS` order
    (None: an artifact, no image config; one side only is a ``Config`` change)."""
    if a is None or b is None:
        if a is None and b is None:
            return ()
        return (ConfigChange("Config", "image" if a else None, "image" if b else None),)
    changes: dict[str, ConfigChange] = {}
    left, right = _values(a), _values(b)
    for name in VALUE_FIELDS:
        if left[name] != right[name]:
            changes[name] = ConfigChange(name, left[name], right[name])
    keyed = (
        _keyed("Env", _env(a.env), _env(b.env)),
        _keyed("Labels", a.labels or {}, b.labels or {}),
        _set("ExposedPorts", a.exposed_ports, b.exposed_ports),
        _set("Volumes", a.volumes, b.volumes),
    )
    changes.update((c.field, c) for c in keyed if c is not None)
    return tuple(changes[name] for name in CONFIG_FIELDS if name in changes)


def layer_changes(a: Sequence[Descriptor], b: Sequence[Descriptor]) -> LayerChanges:
    """The layers removed (A only) and added (B only), by digest and in order, and whether
    the common ones were reordered."""
    left = Counter(layer.digest for layer in a)
    right = Counter(layer.digest for layer in b)
    only_a, only_b = left - right, right - left
    removed, added = [], []
    for layer in a:
        if only_a[layer.digest] > 0:
            only_a[layer.digest] -= 1
            removed.append(layer)
    for layer in b:
        if only_b[layer.digest] > 0:
            only_b[layer.digest] -= 1
            added.append(layer)
    common = left & right

    def kept(layers: Sequence[Descriptor]) -> list[str]:
        budget = Counter(common)
        out = []
        for layer in layers:
            if budget[layer.digest] > 0:
                budget[layer.digest] -= 1
                out.append(layer.digest)
        return out

    return LayerChanges(tuple(removed), tuple(added), kept(a) != kept(b))


def _with_details(
    entry: EntryDiff, a: Mapping[str, ImageDetails], b: Mapping[str, ImageDetails]
) -> EntryDiff:
    """``entry`` with its config and layer changes, when both sides' details are known."""
    if entry.a is None or entry.b is None:
        return entry
    left, right = a.get(entry.a.digest), b.get(entry.b.digest)
    if left is None or right is None:
        return entry
    return replace(
        entry,
        config=config_changes(left.config, right.config),
        layers=layer_changes(left.manifest.layers, right.manifest.layers),
    )


def _key(child: Child, by_digest: dict[str, str]) -> str:
    descriptor = child.descriptor
    if child.kind is ChildKind.ATTESTATION:
        attested = by_digest.get(child.subject_digest or "", child.subject_digest or "?")
        return f"attestation of {attested}"
    if descriptor.platform is None or descriptor.platform.is_empty:
        return f"{child.kind.value} {descriptor.digest}"
    # ``os/arch[/variant][:os.version]``: the version is format_platform's already (added
    # again, keys read ``windows/amd64:10.0.20348.2113 10.0.20348.2113``)
    return platforms.format_platform(descriptor.platform)


#: an entry of one side: its key (not yet numbered), descriptor and compressed size
_Entry = tuple[str, Descriptor, int | None]


def _entries(result: InspectResult, images: Sequence[Child] | None) -> list[_Entry]:
    sizes = result.sizes or {}
    if not result.is_index:
        platform = result.config_platform
        key = platforms.format_platform(platform) if platform is not None else "image"
        size = sizes.get(result.descriptor.digest)
        return [(key, result.descriptor, size.compressed if size is not None else None)]
    children = list(images) if images is not None else []
    children += [c for c in result.children if c.kind is ChildKind.ATTESTATION]
    if images is None:
        children = list(result.children)
    by_digest = {
        c.descriptor.digest: _key(c, {})
        for c in children
        if c.kind is ChildKind.IMAGE and c.descriptor.platform is not None
    }
    out: list[_Entry] = []
    for child in children:
        size = sizes.get(child.descriptor.digest)
        compressed = size.compressed if size is not None else None
        out.append((_key(child, by_digest), child.descriptor, compressed))
    return out


def _pair(
    left: list[_Entry], right: list[_Entry]
) -> list[tuple[str, _Entry | None, _Entry | None]]:
    """A's entries (in order) with B's of the same key, then B's others; the second and
    later entries of a key are numbered (``linux/amd64 #2``).

    A key listed twice (the same platform twice, e.g. gzip and zstd variants of one image)
    pairs the same digest first, then the others in order: paired by position, B dropping
    one variant read as the other one changed, and the same two in another order as both
    changed."""
    theirs: dict[str, list[int]] = {}
    for j, (key, _, _) in enumerate(right):
        theirs.setdefault(key, []).append(j)
    mine: dict[str, list[int]] = {}
    for i, (key, _, _) in enumerate(left):
        mine.setdefault(key, []).append(i)
    partner: dict[int, int] = {}
    for key, indexes in mine.items():
        free = theirs.get(key, [])
        for i in indexes:
            same = next((j for j in free if right[j][1].digest == left[i][1].digest), None)
            if same is not None:
                partner[i] = same
                free.remove(same)
        for i in indexes:
            if i not in partner and free:
                partner[i] = free.pop(0)
    counts: Counter[str] = Counter()

    def numbered(key: str) -> str:
        counts[key] += 1
        return key if counts[key] == 1 else f"{key} #{counts[key]}"

    out: list[tuple[str, _Entry | None, _Entry | None]] = []
    for i, entry in enumerate(left):
        other = partner.get(i)
        out.append((numbered(entry[0]), entry, right[other] if other is not None else None))
    paired = set(partner.values())
    out += [(numbered(e[0]), None, e) for j, e in enumerate(right) if j not in paired]
    return out


def compare(
    a: InspectResult,
    b: InspectResult,
    *,
    a_images: Sequence[Child] | None = None,
    b_images: Sequence[Child] | None = None,
) -> ImageDiff:
    """The differences between ``a`` and ``b``; entries in A's order, then those only in B."""
    entries = [
        EntryDiff(
            key,
            left[1] if left else None,
            right[1] if right else None,
            left[2] if left else None,
            right[2] if right else None,
        )
        for key, left, right in _pair(_entries(a, a_images), _entries(b, b_images))
    ]
    if a.images is not None and b.images is not None:
        a_details = {d.digest: d for d in a.images}
        b_details = {d.digest: d for d in b.images}
        entries = [_with_details(e, a_details, b_details) for e in entries]
    return ImageDiff(a.descriptor, b.descriptor, tuple(entries))


def compare_targets(
    inspector: Inspector,
    targets: tuple[Target, Target],
    *,
    image_config: bool = False,
    concurrency: int = 8,
) -> ImageDiff:
    """`imginspect diff`: both targets inspected (an index with its images), compared; with
    ``image_config``, each image's config and layers read too (``Inspector.image_details``,
    ``concurrency`` requests at a time) and compared per platform in both."""
    results = [inspector.inspect(t) for t in targets]
    images: list[list[Child] | None] = []
    for n, result in enumerate(results):
        tree = inspector.index_tree(result) if result.is_index else None
        images.append(inspector.image_children(result, tree) if result.is_index else None)
        if image_config:
            results[n] = inspector.image_details(result, concurrency=concurrency, tree=tree)
    return compare(results[0], results[1], a_images=images[0], b_images=images[1])
