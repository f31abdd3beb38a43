"""Platform strings and platform matching, normalized the way containerd does it.

This follows ``github.com/containerd/platforms`` (``Parse``, ``Normalize``, ``Format``,
``OnlyStrict``, ``Only``, ``DefaultSpec``); the places where it deliberately differs are listed
below under "Differences from containerd". Pure module: the standard library and the project's
own pure modules only (``local_platform`` reads ``/proc/cpuinfo`` on Linux/ARM, as containerd
does).

Specifier syntax (``parse_platform``)
    ``os/arch``, ``os/arch/variant``, ``arch`` alone or ``os`` alone, optionally followed by
    ``:os.version`` (``windows/amd64:10.0.17763``, the go-containerregistry spelling).
    containerd's own ``os(version+feature+...)`` spelling (``windows(10.0.17763)/amd64``,
    ``linux(+gpu)/amd64``) is accepted too; ``%XX`` escapes in a version or feature are decoded.
    The OS name may use ASCII letters, digits, ``_`` and ``-``; the architecture and variant may
    also use ``.``. Surrounding whitespace is ignored; anything else wrong is a
    :class:`~imginspect.errors.UsageError` (exit 2) naming the problem.

    * ``os`` alone (a known OS such as ``linux`` or ``windows``): the architecture and variant
      are those of ``default`` (the machine running the command, :func:`local_platform`), as
      containerd's ``Parse("linux")`` fills them from ``runtime.GOARCH``/the CPU variant.
    * ``arch`` alone (a known architecture such as ``arm64`` or ``x86_64``): the OS is that of
      ``default`` (``runtime.GOOS`` in containerd). On a Mac that is ``darwin``; pass
      ``default=`` to choose otherwise.
    * A single word that is neither a known OS nor a known architecture is an error. With two or
      three parts, unknown names are accepted as containerd does (``unknown/unknown`` names the
      attestation entries of BuildKit indexes), except an obviously swapped pair such as
      ``amd64/linux``, which is an error that suggests the right order.
    * Wildcards (``*``) are rejected as containerd does; so are more than three parts, empty
      parts, and ``,`` (use :func:`parse_platform_list` for lists).

Normalization (``normalize``, applied to every parse result and to both sides of a match)
    * OS lowercased; ``macos`` -> ``darwin``.
    * Architecture and variant lowercased, then: ``aarch64`` -> ``arm64``; ``x86_64``/``x86-64``
      -> ``amd64``; ``i386`` -> ``386`` (variant dropped); ``armhf`` -> ``arm/v7``; ``armel`` ->
      ``arm/v6``; ``arm`` with no variant or ``7`` -> ``arm/v7`` and ``5``/``6``/``8`` ->
      ``v5``/``v6``/``v8``; ``arm64`` with ``8``/``v8``/``v8.0`` -> no variant (so ``arm64``
      == ``arm64/v8``) and with ``9``/``9.0``/``v9.0`` -> ``v9``; ``amd64/v1`` -> no variant.
      Other values are kept (lowercased).
    * ``os_features`` sorted and deduplicated; ``os_version`` and ``features`` unchanged.

    The parse result is always normalized, so ``parse_platform("linux/arm")`` is ``linux/arm/v7``
    and ``parse_platform("linux/arm64/v8")`` is ``linux/arm64`` (containerd's ``Parse`` leaves
    those two un-normalized and normalizes inside its matcher; the matching result is the same).

Formatting (``format_platform``)
    ``os/arch[/variant][:os.version]`` of the normalized platform. The ``:os.version`` suffix is
    written whenever an OS version is set (Windows images), with characters other than ASCII
    letters, digits, ``.``, ``_`` and ``-`` written as ``%XX``, so that
    ``parse_platform(format_platform(p)) == normalize(p)`` for every platform with a valid,
    non-empty OS and architecture and no (CPU or OS) features: ``os_features`` and ``features``
    are not part of the string. An empty OS or architecture is shown as ``unknown``.

Matching (``matches``: containerd's ``OnlyStrict``)
    Both sides are normalized; OS, architecture and variant must then be equal. In addition:

    * A candidate without an OS or architecture never matches.
    * ``unknown/unknown`` (attestation manifests) is matched only by an explicit
      ``unknown/unknown``: nothing else ever normalizes to it.
    * OS version (containerd's ``windowsVersionMatcher``): compared for Windows only, as "does
      a host of the wanted version run this image". Versions are read as ``major.minor.build``
      (uint8, uint8, uint16; a revision after them does not count); the major.minor must be
      equal, and the build too before Windows Server 2022 (``10.0.17763`` matches
      ``10.0.17763.5830``, not ``10.0.20348.1``); a Windows Server 2022 or later host also runs
      the images of the previous LTSC up to its own build (``10.0.26100`` matches
      ``10.0.20348.1`` and ``10.0.22621.1``). A wanted version that is empty or not of that
      form, or a candidate without one, matches.
    * OS features: the candidate's must all be provided by ``wanted`` (containerd's rule: the
      wanted platform declares what the host provides), also when it declares none; on
      Windows ``win32k`` is always taken as provided, as containerd ignores it when matching.
      ``features`` (CPU features) are never compared.

Selection (``best_match``: containerd's ``Only``)
    The wanted platform expands into an ordered list of compatible platforms
    (:func:`compatible_platforms`, containerd's ``platformVector``); each candidate is ranked by
    the first entry it :func:`matches`, and the best-ranked candidate wins. Among candidates of
    equal rank, containerd's ``Less`` decides: the one with the most OS features wins (all of
    them provided by the wanted platform, see "OS features" above, so ``windows/amd64`` prefers
    an entry with ``win32k`` and ``linux(+gpu)/amd64`` one with ``gpu``); then, for a Windows
    platform with an OS version, the highest OS version (containerd's ``windowsMatchComparer``,
    what a Windows host of that version pulls; compared numerically, where containerd compares
    strings, which puts ``.9999`` after ``.10000``); then the earliest in index order
    (containerd sorts stably). The list is:

    * the wanted platform itself (rank 0: an exact match always wins);
    * ``amd64/vN``: ``amd64/v(N-1)`` ... ``amd64`` (v1), then ``386``;
    * ``arm/vN`` (N > 5): ``arm/v(N-1)`` ... ``arm/v5``; so ``arm/v7`` also accepts v6 and v5;
    * ``arm64/v8.N``: ``arm64/v8.(N-1)`` ... ``arm64`` (v8); ``arm64/v9.N``: ``v9.(N-1)`` ...
      ``v9``, then ``v8.(N+5)`` ... ``v8``, where ``v8.(N+5)`` stops at ``v8.9`` (there is no
      ``v8.10``: ``v9.6`` accepts ``v8.9`` ... ``v8``); then, for these arm64 variants, 32-bit
      ``arm/v8``, ``v7``, ``v6``, ``v5``.
    * Any other arm64 variant (``v10``, ``v8.10``, ``v7``...): only itself.

    The minor version of an arm64 variant is a single digit, as in containerd's table.
    Variant numbers above 64 are not expanded (containerd would build a list that long; no
    real variant is near it).

Local platform (``local_platform``: containerd's ``DefaultSpec``)
    OS from ``sys.platform`` and architecture from ``platform.machine()``, mapped to Go's names
    (a 32-bit Python on a 64-bit machine reports the 32-bit architecture, like ``GOARCH``). For
    32-bit ARM the variant is read as containerd does: the ``CPU architecture`` line of
    ``/proc/cpuinfo``, else the machine name (``armv6l`` -> v6), with the Raspberry Pi quirk
    (``ARMv6-compatible`` CPUs that report 7 are v6); v7 when that fails or gives nothing
    usable (v7 on Windows and macOS, as in containerd). arm64 has no variant (containerd's
    ``v8`` normalizes away). amd64 has no variant: the micro-architecture level (v2/v3/v4) that
    recent containerd derives from the CPU flags is not used, so ``--platform local`` prefers the
    baseline ``amd64`` image as ``docker pull`` does.

Differences from containerd
    * containerd's ``Normalize`` turns an empty OS into the host's OS; here it stays empty, so an
      index entry without an OS never matches because of the machine we run on.
    * containerd's arm64 table ends at ``v9.7``: ``Only`` of ``arm64/v9.8``, ``v9.9`` or any
      other arm64 variant outside it (``v10``, ``v8.10``) matches nothing, not even itself.
      Here ``v9.8`` and ``v9.9`` follow the ``v9.N`` rule and the others match only
      themselves.
    * The ``:os.version`` suffix, the swapped-pair error and the surrounding-whitespace
      tolerance are additions; the bound on variant expansion is a safety limit.
"""

from __future__ import annotations

import functools
import platform as _stdlib_platform
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from urllib.parse import unquote

from imginspect.errors import UsageError
from imginspect.manifest import Platform

__all__ = [
    "KNOWN_ARCHITECTURES",
    "KNOWN_OSES",
    "best_match",
    "compatible_platforms",
    "format_platform",
    "local_platform",
    "match_rank",
    "matches",
    "normalize",
    "normalize_arch",
    "normalize_os",
    "parse_platform",
    "parse_platform_list",
]

#: Operating systems a single-word specifier is recognized as (containerd's ``isKnownOS``).
KNOWN_OSES = frozenset(
    {
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "hurd",
        "illumos",
        "ios",
        "js",
        "linux",
        "nacl",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "windows",
        "zos",
    }
)

#: Architectures a single-word specifier is recognized as, after normalization (containerd's
#: ``isKnownArch``).
KNOWN_ARCHITECTURES = frozenset(
    {
        "386",
        "amd64",
        "amd64p32",
        "arm",
        "armbe",
        "arm64",
        "arm64be",
        "ppc64",
        "ppc64le",
        "loong64",
        "mips",
        "mipsle",
        "mips64",
        "mips64le",
        "mips64p32",
        "mips64p32le",
        "ppc",
        "riscv",
        "riscv64",
        "s390",
        "s390x",
        "sparc",
        "sparc64",
        "wasm",
    }
)

_HINT = (
    "expected OS/ARCH[/VARIANT][:OS.VERSION], ARCH or OS, "
    "e.g. linux/amd64, linux/arm/v7, arm64 or windows/amd64:10.0.17763"
)

_OS_NAME_CHARS = "ASCII letters, digits, '_' and '-'"
_PART_CHARS = "ASCII letters, digits, '.', '_' and '-'"
_OPTION_CHARS = "ASCII letters, digits, '.', '_', '-' and %XX escapes"

_OS_NAME_CLASS = r"[A-Za-z0-9_-]"
_PART_CLASS = r"[A-Za-z0-9_.-]"
_OPTION_CLASS = r"[A-Za-z0-9_.%-]"
# containerd's osRe: <os>[(<version>[+<feature>]*)]
_OS_WITH_OPTIONS_RE = re.compile(
    r"([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?"
)
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SAFE_VERSION_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
# strconv.Atoi: optional sign, decimal digits, within int64.
_ATOI_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1
#: Variant numbers above this are not expanded into lower levels (see module docstring).
_MAX_EXPANDED_LEVEL = 64
#: The Windows OS feature containerd ignores when matching (older images lack it).
_WIN32K = "win32k"
_DIGITS_RE = re.compile(r"[0-9]+")
#: Windows Server 2022's build; from it on, a host runs the images of the previous LTSC too.
_LTSC2022 = 20348
#: containerd's ``compatLTSCReleases`` (Windows Server 2022, 2025), ascending.
_COMPAT_LTSC_RELEASES = (20348, 26100)


# ------------------------------------------------------------------------------ normalization


def normalize_os(os_name: str) -> str:
    """Lowercase an OS name and map ``macos`` to ``darwin``. Empty stays empty."""
    lowered = os_name.lower()
    return "darwin" if lowered == "macos" else lowered


def normalize_arch(arch: str, variant: str = "") -> tuple[str, str]:
    """containerd's ``normalizeArch``: canonical (architecture, variant)."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            return "arm64", ""
        if variant in ("9", "9.0", "v9.0"):
            return "arm64", "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def normalize(p: Platform) -> Platform:
    """The canonical form of a platform (see "Normalization" in the module docstring)."""
    arch, variant = normalize_arch(p.architecture, p.variant)
    return replace(
        p,
        os=normalize_os(p.os),
        architecture=arch,
        variant=variant,
        os_features=tuple(sorted(set(p.os_features))),
    )


# ------------------------------------------------------------------------------------ parsing


def _quote(text: str) -> str:
    """Double-quote text for a message, escaping what would not print cleanly."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def _check_chars(value: str, what: str, char_class: str, chars: str) -> str | None:
    """Why ``value`` (non-empty) is not a valid ``what``, or None."""
    bad = re.search(f"(?!{char_class}).", value, re.DOTALL)
    if bad is None:
        return None
    return f"invalid character {_quote(bad.group())} in {what} {_quote(value)} (allowed: {chars})"


def _decode_option(value: str, what: str) -> tuple[str, str | None]:
    """Decode ``%XX`` escapes (Go's ``url.PathUnescape``): (decoded, problem)."""
    if "%" not in value:
        return value, None
    if _BAD_ESCAPE_RE.search(value):
        return "", f"invalid %-escape in {what} {_quote(value)}"
    try:
        return unquote(value, encoding="utf-8", errors="strict"), None
    except UnicodeDecodeError:
        return "", f"{what} {_quote(value)} does not decode to UTF-8"


def _parse(spec: str, default: Platform | None) -> tuple[Platform | None, str | None]:
    """Parse a stripped specifier: (platform, None) or (None, problem)."""
    if not spec:
        return None, "empty platform"
    if "*" in spec:
        return None, "wildcards are not supported"
    if "," in spec:
        return None, "give one platform here, not a comma-separated list"

    body, colon, suffix = spec.partition(":")
    suffix_version: str | None = None
    if colon:
        if not suffix:
            return None, "empty OS version after ':'"
        problem = _check_chars(suffix, "OS version", _OPTION_CLASS, _OPTION_CHARS)
        if problem:
            return None, problem
        suffix_version, problem = _decode_option(suffix, "OS version")
        if problem:
            return None, problem
        if not body:
            return None, "an OS version needs an OS/ARCH before ':'"

    parts = body.split("/")
    if len(parts) > 3:
        return None, f"too many '/'-separated parts ({len(parts)}; at most OS/ARCH/VARIANT)"
    names = ("OS", "architecture", "variant")
    for i, part in enumerate(parts):
        if not part:  # (body is not empty, so there is a '/')
            where = (
                "before the first '/'" if i == 0 else "after " + _quote("/".join(parts[:i]) + "/")
            )
            return None, f"empty {names[i]} {where}"

    os_match = _OS_WITH_OPTIONS_RE.fullmatch(parts[0])
    if os_match is None:
        if "(" in parts[0] or ")" in parts[0]:
            return None, (
                f"invalid OS options in {_quote(parts[0])}: expected OS(VERSION+FEATURE...) "
                f"with {_OPTION_CHARS}"
            )
        problem = (
            _check_chars(parts[0], "OS", _OS_NAME_CLASS, _OS_NAME_CHARS)
            if len(parts) > 1
            else _check_chars(parts[0], "platform", _PART_CLASS, _PART_CHARS)
        )
        if problem is None:
            # A single word with a '.' (valid as an architecture, not as an OS).
            problem = (
                f"{_quote(parts[0])} is neither a known operating system nor a known architecture"
            )
        return None, problem
    for i in (1, 2):
        if i < len(parts):
            problem = _check_chars(parts[i], names[i], _PART_CLASS, _PART_CHARS)
            if problem:
                return None, problem

    os_name = normalize_os(os_match.group(1))
    os_version, problem = _decode_option(os_match.group(2) or "", "OS version")
    if problem:
        return None, problem
    features: list[str] = []
    if os_match.group(3):
        for raw in os_match.group(3)[1:].split("+"):
            feature, problem = _decode_option(raw, "OS feature")
            if problem:
                return None, problem
            features.append(feature)
    has_options = os_match.group(2) is not None
    if suffix_version is not None:
        if os_version:
            return None, "OS version given twice (in parentheses and after ':')"
        os_version = suffix_version

    if len(parts) == 1:
        word = os_match.group(1)  # without any "(options)"
        if os_name in KNOWN_OSES:
            host = normalize(default if default is not None else local_platform())
            result = Platform(
                os=os_name,
                architecture=host.architecture,
                variant=host.variant,
                os_version=os_version,
                os_features=tuple(features),
            )
            return normalize(result), None
        arch, variant = normalize_arch(os_match.group(1))
        if arch not in KNOWN_ARCHITECTURES:
            return None, (
                f"{_quote(word)} is neither a known operating system nor a known architecture"
            )
        if has_options or suffix_version is not None:
            return (
                None,
                f"an OS version or OS features need an OS, and {_quote(word)} is an architecture",
            )
        host = normalize(default if default is not None else local_platform())
        return normalize(Platform(os=host.os, architecture=arch, variant=variant)), None

    arch, variant = normalize_arch(parts[1], parts[2] if len(parts) == 3 else "")
    if (
        os_name not in KNOWN_OSES
        and normalize_arch(os_name)[0] in KNOWN_ARCHITECTURES
        and normalize_os(parts[1]) in KNOWN_OSES
    ):
        swapped = "/".join([normalize_os(parts[1]), os_match.group(1), *parts[2:]])
        return None, f"OS and architecture are swapped: did you mean {_quote(swapped)}?"
    result = Platform(
        os=os_name,
        architecture=arch,
        variant=variant,
        os_version=os_version,
        os_features=tuple(features),
    )
    return normalize(result), None


def parse_platform(text: str, *, default: Platform | None = None) -> Platform:
    """Parse a platform specifier into a normalized :class:`Platform`.

    ``default`` supplies what a one-word specifier leaves out (the architecture for ``linux``,
    the OS for ``arm64``); it defaults to :func:`local_platform`. Raises
    :class:`~imginspect.errors.UsageError` saying what is wrong.
    """
    result, problem = _parse(text.strip(), default)
    if result is None:
        raise UsageError(f"invalid platform {_quote(text)}: {problem}", hint=_HINT)
    return result


def parse_platform_list(
    values: Iterable[str], *, default: Platform | None = None
) -> list[Platform]:
    """Parse repeatable and/or comma-separated specifiers (``linux/amd64,linux/arm64``).

    Blank items are skipped; duplicates (after normalization) are dropped, first one kept.
    """
    seen: dict[Platform, None] = {}
    for value in values:
        for item in value.split(","):
            if item.strip():
                seen.setdefault(parse_platform(item, default=default), None)
    return list(seen)


# --------------------------------------------------------------------------------- formatting


def _encode_version(version: str) -> str:
    out = []
    for ch in version:
        if ch in _SAFE_VERSION_CHARS:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def format_platform(p: Platform) -> str:
    """``os/arch[/variant][:os.version]`` of the normalized platform (see module docstring)."""
    n = normalize(p)
    parts = [n.os or "unknown", n.architecture or "unknown"]
    if n.variant:
        parts.append(n.variant)
    text = "/".join(parts)
    if n.os_version:
        text += ":" + _encode_version(n.os_version)
    return text


# ----------------------------------------------------------------------------------- matching


def _windows_version(text: str) -> tuple[int, int, int] | None:
    """containerd's ``getWindowsOSVersion``: (major, minor, build) of ``M.m.b[.rev]``, or None
    for its zero value (fewer than two dots, a part that is not a uint8/uint8/uint16)."""
    if text.count(".") < 2:
        return None
    parts = text.split(".")[:3]
    if not all(_DIGITS_RE.fullmatch(part) for part in parts):
        return None
    major, minor, build = (int(part) for part in parts)
    if major > 0xFF or minor > 0xFF or build > 0xFFFF or (major, minor, build) == (0, 0, 0):
        return None
    return major, minor, build


def _windows_host_runs(host: tuple[int, int, int], image: tuple[int, int, int]) -> bool:
    """containerd's ``checkWindowsHostAndContainerCompat``: same major.minor, and the same build
    before Windows Server 2022; from it on, any build from the previous LTSC up to the host's."""
    if host[:2] != image[:2]:
        return False
    if host[2] < _LTSC2022:
        return host[2] == image[2]
    supported = _LTSC2022
    for release in reversed(_COMPAT_LTSC_RELEASES):
        if host[2] > release:
            supported = release
            break
    return supported <= image[2] <= host[2]


def _os_version_matches(w: Platform, candidate: str) -> bool:
    """containerd's ``windowsVersionMatcher``: OS versions are compared for Windows only, as a
    host of the wanted version running the candidate; an empty or unparsable wanted version,
    or a candidate without one, matches. (Was: a prefix match for every OS, and no match for a
    candidate without a version; upstream tables compare_test.go, defaults_test.go.)"""
    if w.os != "windows" or not candidate:
        return True
    host = _windows_version(w.os_version)
    if host is None:
        return True
    return _windows_host_runs(host, _windows_version(candidate) or (0, 0, 0))


def _provided_features(w: Platform) -> frozenset[str]:
    """The OS features a (normalized) wanted platform provides: those it declares, and
    ``win32k`` on Windows (containerd ignores it when matching Windows platforms)."""
    provided = frozenset(w.os_features)
    return provided | {_WIN32K} if w.os == "windows" else provided


def _matches_normalized(w: Platform, c: Platform) -> bool:
    if not (c.os and c.architecture):
        return False
    if (w.os, w.architecture, w.variant) != (c.os, c.architecture, c.variant):
        return False
    if not _os_version_matches(w, c.os_version):
        return False
    # containerd's matcher: the candidate's OS features are all provided by the wanted platform,
    # also when it declares none (was: not compared then; compare_test.go TestCompareOSFeatures).
    return set(c.os_features) <= _provided_features(w)


def matches(wanted: Platform, candidate: Platform) -> bool:
    """Whether ``candidate`` is exactly ``wanted`` after normalization (``OnlyStrict``)."""
    return _matches_normalized(normalize(wanted), normalize(candidate))


def _atoi(text: str) -> int | None:
    """Go's ``strconv.Atoi``: None where it would fail."""
    if not _ATOI_RE.fullmatch(text):
        return None
    value = int(text)
    return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else None


def _arm64_levels(variant: str) -> list[str] | None:
    """The arm64 variants ``variant`` runs, best first (containerd's ``arm64variantToVersion``
    rule): ``v8.N`` -> ``v8.N`` ... ``v8``; ``v9.N`` -> ``v9.N`` ... ``v9``, then
    ``v8.min(N+5, 9)`` ... ``v8``. None for anything else (``v10``, ``v8.10``, ``v7``...)."""
    major, dot, minor_text = variant.partition(".")
    if major not in ("v8", "v9"):
        return None
    minor = 0
    if dot:
        if len(minor_text) != 1 or minor_text not in "0123456789":
            return None
        minor = int(minor_text)
    levels: list[str] = []
    if major == "v9":
        levels += [f"v9.{m}" if m else "v9" for m in range(minor, -1, -1)]
        minor = min(minor + 5, 9)
    levels += [f"v8.{m}" if m else "v8" for m in range(minor, -1, -1)]
    return levels


def _vector(p: Platform) -> list[Platform]:
    """containerd's ``platformVector`` for a normalized platform (entries not yet normalized)."""
    vector = [p]
    if p.architecture == "amd64":
        level = _atoi(p.variant.removeprefix("v"))
        if level is not None and 1 < level <= _MAX_EXPANDED_LEVEL:
            vector += [replace(p, variant=f"v{v}") for v in range(level - 1, 0, -1)]
        vector.append(replace(p, architecture="386", variant=""))
    elif p.architecture == "arm":
        level = _atoi(p.variant.removeprefix("v"))
        if level is not None and 5 < level <= _MAX_EXPANDED_LEVEL:
            vector += [replace(p, variant=f"v{v}") for v in range(level - 1, 4, -1)]
    elif p.architecture == "arm64":
        levels = _arm64_levels(p.variant or "v8")
        if levels is not None:  # (containerd: an unknown variant matches nothing at all)
            vector += [replace(p, variant=level) for level in levels]
            # every arm64 v8.x/v9.x also runs 32-bit arm/v8 and below
            vector += _vector(replace(p, architecture="arm", variant="v8"))
    return vector


def compatible_platforms(wanted: Platform) -> tuple[Platform, ...]:
    """What ``wanted`` accepts, best first (containerd's ``Only``), normalized, no repeats."""
    seen: dict[Platform, None] = {}
    for entry in _vector(normalize(wanted)):
        seen.setdefault(normalize(entry), None)
    return tuple(seen)


def _rank(vector: Sequence[Platform], candidate: Platform) -> int | None:
    c = normalize(candidate)
    for rank, entry in enumerate(vector):
        if _matches_normalized(entry, c):
            return rank
    return None


def match_rank(wanted: Platform, candidate: Platform) -> int | None:
    """Position of ``candidate`` in ``compatible_platforms(wanted)`` (0: exact), or None."""
    return _rank(compatible_platforms(wanted), candidate)


def _version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """An OS version as a sort key: numeric parts by value (``10.0.17763.10000`` is after
    ``.9999``, which containerd's plain string comparison gets wrong); empty is lowest."""
    if not version:
        return ()
    return tuple(
        (0, int(part), "") if _DIGITS_RE.fullmatch(part) else (1, 0, part)
        for part in version.split(".")
    )


def best_match(wanted: Platform, candidates: Sequence[Platform]) -> int | None:
    """Index of the candidate ``--platform wanted`` selects (containerd's ``Only``), or None.

    Lowest :func:`match_rank` wins. Among candidates of equal rank, the one with the most OS
    features (containerd's ``Less``); then, for a Windows platform with an OS version, the
    highest OS version (containerd's ``windowsMatchComparer``, what a Windows host of that
    version pulls); then the earliest in index order (containerd sorts stably).
    """
    w = normalize(wanted)
    vector = compatible_platforms(w)
    newest_first = w.os == "windows" and _windows_version(w.os_version) is not None
    best: tuple[int, int] | None = None
    best_index: int | None = None
    best_version: tuple[tuple[int, int, str], ...] = ()
    for index, candidate in enumerate(candidates):
        c = normalize(candidate)
        rank = _rank(vector, c)
        if rank is None:
            continue
        key = (rank, -len(c.os_features))
        version = _version_key(c.os_version) if newest_first else ()
        if best is None or key < best or (key == best and version > best_version):
            best, best_index, best_version = key, index, version
    return best_index


# ----------------------------------------------------------------------------- local platform


def _go_os(sys_platform: str) -> str:
    name = sys_platform.lower()
    if name.startswith("linux"):
        return "linux"
    if name in ("win32", "cygwin", "msys"):
        return "windows"
    if name.startswith("sunos"):
        return "solaris"
    if name == "emscripten":
        return "js"
    return re.sub(r"[0-9.]+$", "", name) or "unknown"


def _go_arch(machine: str, is_64bit: bool, byteorder: str) -> str:
    m = machine.lower()
    if m in ("x86_64", "x86-64", "amd64", "x64", "i86pc"):
        return "amd64" if is_64bit else "386"
    if re.fullmatch(r"i[3-6]86|x86", m):
        return "386"
    if m in ("aarch64", "arm64"):
        return "arm64" if is_64bit else "arm"
    if m in ("aarch64_be", "arm64be"):
        return "arm64be"
    if m.startswith("arm"):
        return "arm"
    if m in ("ppc64le", "powerpc64le"):
        return "ppc64le"
    if m in ("ppc64", "powerpc64"):
        return "ppc64"
    if m in ("ppc", "powerpc"):
        return "ppc"
    if m == "loongarch64":
        return "loong64"
    if m in ("mips", "mips64"):
        return m + ("le" if byteorder == "little" else "")
    return normalize_arch(m)[0] or "unknown"


def _cpuinfo_field(cpuinfo: str, name: str) -> str | None:
    """containerd's ``getCPUInfo``: the value of the first line whose key is ``name``."""
    for line in cpuinfo.splitlines():
        fields = line.split(":")
        if len(fields) > 1 and fields[0].strip().lower() == name.lower():
            return fields[1].strip()
    return None


def _variant_from_machine(machine: str) -> str | None:
    """containerd's ``getCPUVariantFromArch``."""
    m = machine.lower()
    if m == "aarch64":
        return "8"
    if m.startswith("armv") and len(m) >= 5:
        return {"v8": "8", "v7": "7", "v6": "6", "v5": "5", "v4": "4", "v3": "3"}.get(
            m[3:5], "unknown"
        )
    return None


_ARM_VARIANTS = {
    "8": "v8",
    "aarch64": "v8",
    "7": "v7",
    "7m": "v7",
    **{f"?({n})": "v7" for n in range(12, 18)},
    "6": "v6",
    "6tej": "v6",
    "5": "v5",
    "5t": "v5",
    "5te": "v5",
    "5tej": "v5",
    "4": "v4",
    "4t": "v4",
    "3": "v3",
}


def _arm_variant(os_name: str, machine: str, cpuinfo: str | None) -> str:
    """containerd's ``getArmCPUVariant`` for 32-bit ARM, falling back to v7."""
    if os_name != "linux":
        return "v7"  # containerd: v7 on Windows and macOS; not detected elsewhere
    raw = _cpuinfo_field(cpuinfo, "Cpu architecture") if cpuinfo is not None else None
    if raw is None:
        raw = _variant_from_machine(machine)
    if raw is None:
        return "v7"
    # Raspberry Pi ARMv6 kernels report "CPU architecture: 7".
    if raw == "7" and cpuinfo is not None:
        model = _cpuinfo_field(cpuinfo, "model name")
        if model is not None and model.lower().startswith("armv6-compatible"):
            raw = "6"
    return _ARM_VARIANTS.get(raw.lower(), "v7")


def _detect_platform(
    machine: str,
    sys_platform: str,
    *,
    is_64bit: bool = True,
    byteorder: str = "little",
    cpuinfo: str | None = None,
) -> Platform:
    """The local platform from its raw ingredients (testable core of :func:`local_platform`)."""
    os_name = _go_os(sys_platform)
    arch = _go_arch(machine, is_64bit, byteorder)
    variant = _arm_variant(os_name, machine, cpuinfo) if arch == "arm" else ""
    return normalize(Platform(os=os_name, architecture=arch, variant=variant))


def _read_cpuinfo() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def local_platform() -> Platform:
    """The platform of the machine running the command (containerd's ``DefaultSpec``)."""
    machine = _stdlib_platform.machine()
    os_name = _go_os(sys.platform)
    is_64bit = sys.maxsize > 2**32
    needs_cpuinfo = os_name == "linux" and _go_arch(machine, is_64bit, sys.byteorder) == "arm"
    return _detect_platform(
        machine,
        sys.platform,
        is_64bit=is_64bit,
        byteorder=sys.byteorder,
        cpuinfo=_read_cpuinfo() if needs_cpuinfo else None,
    )
