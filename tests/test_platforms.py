"""Tests for imginspect.platforms: specifier parsing, normalization and matching.

Expected values follow github.com/containerd/platforms (platforms_test.go, compare_test.go,
database.go, cpuinfo_linux.go); the module docstring of ``imginspect.platforms`` lists the
documented differences, which are tested here too.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from imginspect.errors import ExitCode, UsageError
from imginspect.manifest import Platform
from imginspect.platforms import (
    KNOWN_ARCHITECTURES,
    KNOWN_OSES,
    _detect_platform,
    best_match,
    compatible_platforms,
    format_platform,
    local_platform,
    match_rank,
    matches,
    normalize,
    normalize_arch,
    normalize_os,
    parse_platform,
    parse_platform_list,
)

#: The "machine" one-word specifiers are completed from in the tables below.
HOST = Platform(os="linux", architecture="arm", variant="v6")


def P(
    os: str,
    arch: str,
    variant: str = "",
    os_version: str = "",
    os_features: tuple[str, ...] = (),
    features: tuple[str, ...] = (),
) -> Platform:
    return Platform(
        os=os,
        architecture=arch,
        variant=variant,
        os_version=os_version,
        os_features=os_features,
        features=features,
    )


# ------------------------------------------------------------------------------ parse: valid

PARSE_VALID: list[tuple[str, Platform]] = [
    ("linux/amd64", P("linux", "amd64")),
    ("linux/arm64", P("linux", "arm64")),
    ("linux/arm64/v8", P("linux", "arm64")),
    ("linux/arm64/8", P("linux", "arm64")),
    ("linux/arm64/V8", P("linux", "arm64")),
    ("linux/aarch64", P("linux", "arm64")),
    ("linux/aarch64/v8", P("linux", "arm64")),
    ("linux/arm64/v8.2", P("linux", "arm64", "v8.2")),
    ("linux/arm64/v9", P("linux", "arm64", "v9")),
    ("linux/arm", P("linux", "arm", "v7")),
    ("linux/arm/v7", P("linux", "arm", "v7")),
    ("linux/arm/V7", P("linux", "arm", "v7")),
    ("linux/arm/7", P("linux", "arm", "v7")),
    ("linux/arm/v6", P("linux", "arm", "v6")),
    ("linux/arm/6", P("linux", "arm", "v6")),
    ("linux/arm/5", P("linux", "arm", "v5")),
    ("linux/arm/8", P("linux", "arm", "v8")),
    ("linux/armhf", P("linux", "arm", "v7")),
    ("linux/armhf/v6", P("linux", "arm", "v7")),  # armhf is v7, whatever follows
    ("linux/armel", P("linux", "arm", "v6")),
    ("linux/x86_64", P("linux", "amd64")),
    ("linux/x86-64", P("linux", "amd64")),
    ("linux/amd64/v1", P("linux", "amd64")),
    ("linux/amd64/v3", P("linux", "amd64", "v3")),
    ("linux/AMD64/V2", P("linux", "amd64", "v2")),
    ("linux/i386", P("linux", "386")),
    ("linux/i386/foo", P("linux", "386")),
    ("linux/386", P("linux", "386")),
    ("Linux/x86_64", P("linux", "amd64")),
    ("LINUX/AARCH64", P("linux", "arm64")),
    ("macos/arm64", P("darwin", "arm64")),
    ("MacOS/amd64", P("darwin", "amd64")),
    ("freebsd/amd64", P("freebsd", "amd64")),
    ("linux/s390x", P("linux", "s390x")),
    ("linux/ppc64le", P("linux", "ppc64le")),
    ("linux/riscv64", P("linux", "riscv64")),
    ("linux/riscv64/rva23u64", P("linux", "riscv64", "rva23u64")),
    ("linux/mips64le", P("linux", "mips64le")),
    ("windows/amd64", P("windows", "amd64")),
    ("windows/amd64:10.0.17763", P("windows", "amd64", os_version="10.0.17763")),
    ("windows/amd64:10.0.20348.2113", P("windows", "amd64", os_version="10.0.20348.2113")),
    ("windows/arm64/v8:10.0.26100", P("windows", "arm64", os_version="10.0.26100")),
    ("windows(10.0.17763)/amd64", P("windows", "amd64", os_version="10.0.17763")),
    ("windows()/amd64", P("windows", "amd64")),
    (
        "windows(10.0.17763+win32k)/amd64",
        P("windows", "amd64", os_version="10.0.17763", os_features=("win32k",)),
    ),
    ("linux(+gpu+simd)/amd64", P("linux", "amd64", os_features=("gpu", "simd"))),
    ("linux(+unsorted+erofs)/amd64", P("linux", "amd64", os_features=("erofs", "unsorted"))),
    (
        "windows(10.0.17763%2Bbuild.42)/amd64",
        P("windows", "amd64", os_version="10.0.17763+build.42"),
    ),
    ("windows/amd64:50%25done", P("windows", "amd64", os_version="50%done")),
    ("windows/amd64:%C3%A9", P("windows", "amd64", os_version="\u00e9")),
    ("unknown/unknown", P("unknown", "unknown")),
    ("foo/bar", P("foo", "bar")),  # containerd accepts unknown names when both are given
    ("linux/foo/bar", P("linux", "foo", "bar")),
    ("  linux/amd64  ", P("linux", "amd64")),
    ("\tlinux/arm64\n", P("linux", "arm64")),
    # one word: an OS takes the host's architecture, an architecture the host's OS
    ("linux", P("linux", "arm", "v6")),
    ("Linux", P("linux", "arm", "v6")),
    ("macOS", P("darwin", "arm", "v6")),
    ("windows", P("windows", "arm", "v6")),
    ("freebsd", P("freebsd", "arm", "v6")),
    ("windows(10.0.17763)", P("windows", "arm", "v6", os_version="10.0.17763")),
    ("windows:10.0.17763", P("windows", "arm", "v6", os_version="10.0.17763")),
    ("linux(+gpu)", P("linux", "arm", "v6", os_features=("gpu",))),
    ("arm64", P("linux", "arm64")),
    ("aarch64", P("linux", "arm64")),
    ("Aarch64", P("linux", "arm64")),
    ("amd64", P("linux", "amd64")),
    ("x86_64", P("linux", "amd64")),
    ("arm", P("linux", "arm", "v7")),
    ("armhf", P("linux", "arm", "v7")),
    ("armel", P("linux", "arm", "v6")),
    ("i386", P("linux", "386")),
    ("386", P("linux", "386")),
    ("s390x", P("linux", "s390x")),
    ("ppc64le", P("linux", "ppc64le")),
    ("riscv64", P("linux", "riscv64")),
    ("loong64", P("linux", "loong64")),
    ("wasm", P("linux", "wasm")),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_VALID, ids=[t for t, _ in PARSE_VALID])
def test_parse_valid(text: str, expected: Platform) -> None:
    parsed = parse_platform(text, default=HOST)
    assert parsed == expected
    assert normalize(parsed) == parsed
    # The formatted form parses back to the same platform (features are not part of it).
    if not parsed.os_features:
        assert parse_platform(format_platform(parsed), default=HOST) == parsed


def test_parse_table_is_large() -> None:
    assert len(PARSE_VALID) + len(PARSE_INVALID) >= 60


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("amd64", Platform(os="darwin", architecture="arm64"), P("darwin", "amd64")),
        ("linux", Platform(os="darwin", architecture="arm64", variant="v8"), P("linux", "arm64")),
        ("linux", Platform(os="linux", architecture="arm"), P("linux", "arm", "v7")),
        ("linux", Platform(os="linux", architecture="x86_64"), P("linux", "amd64")),
        ("arm64", Platform(os="Windows", architecture="amd64"), P("windows", "arm64")),
        ("linux/amd64", Platform(os="windows", architecture="arm64"), P("linux", "amd64")),
    ],
)
def test_parse_one_word_uses_default(text: str, default: Platform, expected: Platform) -> None:
    assert parse_platform(text, default=default) == expected


def test_parse_one_word_defaults_to_local_platform() -> None:
    local = local_platform()
    assert parse_platform("linux") == P("linux", local.architecture, local.variant)
    assert parse_platform("windows").architecture == local.architecture
    assert parse_platform("arm64") == P(local.os, "arm64")
    assert parse_platform("x86_64").os == local.os


# ---------------------------------------------------------------------------- parse: invalid

PARSE_INVALID: list[tuple[str, str]] = [
    ("", "empty platform"),
    ("   ", "empty platform"),
    ("/", "empty OS before the first '/'"),
    ("/linux/arm", "empty OS before the first '/'"),
    ("linux/", 'empty architecture after "linux/"'),
    ("linux//v7", 'empty architecture after "linux/"'),
    ("linux/arm/", 'empty variant after "linux/arm/"'),
    ("linux /arm", 'invalid character " " in OS "linux "'),
    ("linux/&arm", 'invalid character "&" in architecture "&arm"'),
    ("linux/amd64/v1!", 'invalid character "!" in variant "v1!"'),
    ("linux.os/amd64", 'invalid character "." in OS "linux.os"'),
    ("linux/arm\x00", 'invalid character "\\x00" in architecture'),
    ("linux/\u00e4rm", 'invalid character "\u00e4" in architecture'),
    ("\uff4c\uff49\uff4e\uff55\uff58/amd64", "invalid character"),
    ("lin ux", 'invalid character " " in platform "lin ux"'),
    ("linux/arm/foo/bar", "too many '/'-separated parts (4;"),
    ("linux/arm/v7/x/y", "too many '/'-separated parts (5;"),
    ("*", "wildcards are not supported"),
    ("linux/*", "wildcards are not supported"),
    ("*/arm64", "wildcards are not supported"),
    ("foo", '"foo" is neither a known operating system nor a known architecture'),
    ("unknown", '"unknown" is neither a known operating system nor a known architecture'),
    ("v8.2", '"v8.2" is neither a known operating system nor a known architecture'),
    ("x86", '"x86" is neither a known operating system nor a known architecture'),
    ("amd64/linux", 'swapped: did you mean "linux/amd64"?'),
    ("aarch64/Linux/v8", 'swapped: did you mean "linux/aarch64/v8"?'),
    ("linux/amd64,linux/arm64", "not a comma-separated list"),
    ("linux/amd64,", "not a comma-separated list"),
    ("windows/amd64:", "empty OS version after ':'"),
    (":10.0", "an OS version needs an OS/ARCH before ':'"),
    ("windows/amd64:10.0 17763", 'invalid character " " in OS version'),
    ("windows/amd64:10.0:1", 'invalid character ":" in OS version'),
    ("windows/amd64:10/0", 'invalid character "/" in OS version'),
    ("windows(10.0)/amd64:10.0", "OS version given twice"),
    ("windows(10.0/amd64", "invalid OS options"),
    ("windows(10.0))/amd64", "invalid OS options"),
    ("windows(10 0)/amd64", "invalid OS options"),
    ("linux(++gpu)/amd64", "invalid OS options"),
    ("windows/amd64:%zz", 'invalid %-escape in OS version "%zz"'),
    ("windows/amd64:1%2", "invalid %-escape"),
    ("windows(%g0)/amd64", "invalid %-escape"),
    ("linux(+a%zz)/amd64", "invalid %-escape in OS feature"),
    ("windows/amd64:%ff", "does not decode to UTF-8"),
    ("amd64:10.0", 'need an OS, and "amd64" is an architecture'),
    ("amd64(10.0)", 'need an OS, and "amd64" is an architecture'),
    ("arm64()", 'need an OS, and "arm64" is an architecture'),
    ("foo(1.0)", '"foo" is neither a known operating system nor a known architecture'),
]


@pytest.mark.parametrize(
    ("text", "problem"), PARSE_INVALID, ids=[repr(t) for t, _ in PARSE_INVALID]
)
def test_parse_invalid(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_platform(text, default=HOST)
    error = info.value
    assert error.exit_code == ExitCode.USAGE
    assert int(error.exit_code) == 2
    assert str(error).startswith("invalid platform ")
    assert problem in str(error), str(error)
    assert error.hint and "linux/amd64" in error.hint
    assert "\n" not in str(error)


def test_error_message_quotes_the_input() -> None:
    with pytest.raises(UsageError, match=r'^invalid platform "linux/": empty architecture'):
        parse_platform("linux/")
    with pytest.raises(UsageError, match=r'^invalid platform "a\\"b": '):
        parse_platform('a"b')


# ------------------------------------------------------------------------ parse_platform_list


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], []),
        ([""], []),
        ([",", " , ", ""], []),
        (["linux/amd64"], ["linux/amd64"]),
        (["linux/amd64,linux/arm64"], ["linux/amd64", "linux/arm64"]),
        (["linux/amd64", "linux/arm64"], ["linux/amd64", "linux/arm64"]),
        (["linux/arm64", "linux/amd64"], ["linux/arm64", "linux/amd64"]),
        (["linux/amd64", "linux/arm64,linux/amd64"], ["linux/amd64", "linux/arm64"]),
        (["linux/arm64,linux/arm64/v8", "linux/aarch64"], ["linux/arm64"]),
        (["linux/arm,linux/arm/v7,linux/armhf"], ["linux/arm/v7"]),
        ([" linux/amd64 , ,linux/arm/v6 ", ""], ["linux/amd64", "linux/arm/v6"]),
        (["windows/amd64:10.0.17763,windows/amd64"], ["windows/amd64:10.0.17763", "windows/amd64"]),
        (["arm64,linux"], ["linux/arm64", "linux/arm/v6"]),
    ],
)
def test_parse_platform_list(values: list[str], expected: list[str]) -> None:
    parsed = parse_platform_list(values, default=HOST)
    assert [format_platform(p) for p in parsed] == expected
    assert len(set(parsed)) == len(parsed)


def test_parse_platform_list_accepts_any_iterable() -> None:
    assert parse_platform_list(iter(("linux/amd64", "linux/amd64"))) == [P("linux", "amd64")]


@pytest.mark.parametrize(
    ("values", "bad"),
    [
        (["linux/amd64,linux/"], '"linux/"'),
        (["linux/amd64", "foo"], '"foo"'),
        (["linux/amd64,*"], '"*"'),
    ],
)
def test_parse_platform_list_names_the_bad_item(values: list[str], bad: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_platform_list(values)
    assert str(info.value).startswith(f"invalid platform {bad}: ")


# ------------------------------------------------------------------------------- normalization


@pytest.mark.parametrize(
    ("arch", "variant", "expected"),
    [
        ("amd64", "", ("amd64", "")),
        ("amd64", "v1", ("amd64", "")),
        ("amd64", "1", ("amd64", "1")),  # containerd only drops "v1"
        ("amd64", "v2", ("amd64", "v2")),
        ("x86_64", "", ("amd64", "")),
        ("X86-64", "V3", ("amd64", "v3")),
        ("i386", "", ("386", "")),
        ("i386", "v7", ("386", "")),
        ("386", "sse2", ("386", "sse2")),
        ("aarch64", "", ("arm64", "")),
        ("arm64", "v8", ("arm64", "")),
        ("arm64", "8", ("arm64", "")),
        # containerd's normalizeArch: v8.0 is v8 (no variant); 9, 9.0 and v9.0 are v9
        ("arm64", "v8.0", ("arm64", "")),
        ("aarch64", "V8.0", ("arm64", "")),
        ("arm64", "v9", ("arm64", "v9")),
        ("arm64", "9", ("arm64", "v9")),
        ("arm64", "9.0", ("arm64", "v9")),
        ("arm64", "v9.0", ("arm64", "v9")),
        ("aarch64", "V9.0", ("arm64", "v9")),
        # ... and nothing else: these are kept as they are
        ("arm64", "8.0", ("arm64", "8.0")),
        ("arm64", "v8.1", ("arm64", "v8.1")),
        ("arm64", "9.1", ("arm64", "9.1")),
        ("arm64", "v9.1", ("arm64", "v9.1")),
        ("arm64", "v9.00", ("arm64", "v9.00")),
        ("arm", "v8.0", ("arm", "v8.0")),
        ("armhf", "", ("arm", "v7")),
        ("armhf", "v6", ("arm", "v7")),
        ("armel", "", ("arm", "v6")),
        ("arm", "", ("arm", "v7")),
        ("arm", "7", ("arm", "v7")),
        ("arm", "5", ("arm", "v5")),
        ("arm", "6", ("arm", "v6")),
        ("arm", "8", ("arm", "v8")),
        ("arm", "v4", ("arm", "v4")),
        ("ARM", "V6", ("arm", "v6")),
        ("ppc64le", "power9", ("ppc64le", "power9")),
        ("", "", ("", "")),
    ],
)
def test_normalize_arch(arch: str, variant: str, expected: tuple[str, str]) -> None:
    assert normalize_arch(arch, variant) == expected


@pytest.mark.parametrize(
    ("os_name", "expected"),
    [("linux", "linux"), ("Linux", "linux"), ("macos", "darwin"), ("MacOS", "darwin"), ("", "")],
)
def test_normalize_os(os_name: str, expected: str) -> None:
    assert normalize_os(os_name) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (P("Linux", "AARCH64", "V8"), P("linux", "arm64")),
        (P("linux", "arm"), P("linux", "arm", "v7")),
        (P("macos", "x86_64"), P("darwin", "amd64")),
        # an empty OS stays empty (containerd would substitute the host's OS)
        (P("", "amd64"), P("", "amd64")),
        (P("", ""), P("", "")),
        (
            P("windows", "amd64", os_version="10.0.17763.5830", os_features=("b", "a", "b")),
            P("windows", "amd64", os_version="10.0.17763.5830", os_features=("a", "b")),
        ),
        (P("linux", "amd64", features=("z", "a")), P("linux", "amd64", features=("z", "a"))),
    ],
)
def test_normalize(given: Platform, expected: Platform) -> None:
    assert normalize(given) == expected
    assert normalize(expected) == expected


# ---------------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (P("linux", "amd64"), "linux/amd64"),
        (P("linux", "arm"), "linux/arm/v7"),
        (P("linux", "arm", "v6"), "linux/arm/v6"),
        (P("linux", "arm64", "v8"), "linux/arm64"),
        (P("Linux", "aarch64"), "linux/arm64"),
        (P("linux", "amd64", "v3"), "linux/amd64/v3"),
        (P("windows", "amd64", os_version="10.0.17763.5830"), "windows/amd64:10.0.17763.5830"),
        (P("windows", "amd64", os_version="1.0(beta)"), "windows/amd64:1.0%28beta%29"),
        (P("windows", "amd64", os_version="a/b c"), "windows/amd64:a%2Fb%20c"),
        (P("windows", "amd64", os_version="50%"), "windows/amd64:50%25"),
        (P("windows", "amd64", os_version="\u00e9"), "windows/amd64:%C3%A9"),
        (P("windows", "amd64", os_features=("win32k",)), "windows/amd64"),
        (P("unknown", "unknown"), "unknown/unknown"),
        (P("", ""), "unknown/unknown"),
        (P("linux", ""), "linux/unknown"),
    ],
)
def test_format_platform(given: Platform, expected: str) -> None:
    assert format_platform(given) == expected


def test_format_platform_never_raises_on_odd_registry_values() -> None:
    assert format_platform(P("linux", "amd64", os_version="\ud800")) == "linux/amd64:%ED%A0%80"


# ------------------------------------------------------------------------------------ matching

WIN = "windows/amd64"
MATCHES: list[tuple[str, Platform, bool]] = [
    ("linux/amd64", P("linux", "amd64"), True),
    ("linux/amd64", P("linux", "x86_64"), True),
    ("linux/amd64", P("Linux", "AMD64"), True),
    ("linux/amd64", P("linux", "amd64", "v1"), True),
    ("linux/amd64", P("linux", "amd64", "v2"), False),
    ("linux/amd64", P("linux", "386"), False),  # strict: no 386 fallback
    ("linux/amd64/v2", P("linux", "amd64"), False),
    ("linux/arm64", P("linux", "arm64", "v8"), True),
    ("linux/arm64/v8", P("linux", "arm64"), True),
    ("linux/arm64", P("linux", "aarch64"), True),
    ("linux/arm64", P("linux", "aarch64", "8"), True),
    ("linux/arm64", P("linux", "arm64", "v8.2"), False),
    ("linux/arm64", P("linux", "arm", "v8"), False),
    ("linux/arm", P("linux", "arm"), True),
    ("linux/arm", P("linux", "arm", "v7"), True),
    ("linux/arm/v7", P("linux", "arm"), True),
    ("linux/arm/v7", P("linux", "armhf"), True),
    ("linux/arm/v7", P("linux", "arm", "7"), True),
    ("linux/arm/v7", P("linux", "arm", "v6"), False),
    ("linux/arm/v6", P("linux", "armel"), True),
    ("linux/arm/v6", P("linux", "arm"), False),
    ("linux/amd64", P("windows", "amd64"), False),
    ("linux/amd64", P("linux", "arm64"), False),
    ("linux/amd64", P("", "amd64"), False),
    ("linux/amd64", P("linux", ""), False),
    ("unknown/unknown", P("unknown", "unknown"), True),
    ("linux/amd64", P("unknown", "unknown"), False),
    ("linux/arm64", P("unknown", "unknown"), False),
    (WIN, P("windows", "amd64", os_version="10.0.17763.5830"), True),
    (WIN + ":10.0.17763", P("windows", "amd64", os_version="10.0.17763.5830"), True),
    (WIN + ":10.0.17763", P("windows", "amd64", os_version="10.0.17763"), True),
    (WIN + ":10.0.17763", P("windows", "amd64", os_version="10.0.20348.1"), False),
    (WIN + ":10.0.17763", P("windows", "amd64", os_version="10.0.177630"), False),
    # containerd's windowsVersionMatcher: an image without an OS version matches any wanted one
    (WIN + ":10.0.17763", P("windows", "amd64"), True),
    (WIN + ":10.0", P("windows", "amd64", os_version="10.0.17763.1"), True),
    # ... and the versions are compared as host and image builds: the revision does not count,
    (WIN + ":10.0.17763.1", P("windows", "amd64", os_version="10.0.17763"), True),
    # a Windows Server 2022 or later host runs the previous LTSC's images up to its own build,
    (WIN + ":10.0.26100", P("windows", "amd64", os_version="10.0.20348.1"), True),
    (WIN + ":10.0.26100.1", P("windows", "amd64", os_version="10.0.22621.5"), True),
    (WIN + ":10.0.20348", P("windows", "amd64", os_version="10.0.26100.1"), False),
    (WIN + ":10.0.20348", P("windows", "amd64", os_version="10.0.17763.1"), False),
    (WIN + ":10.0.22621", P("windows", "amd64", os_version="6.0.22621"), False),
    # a wanted version that is no M.m.b (uint8.uint8.uint16) is none
    (WIN + ":10.0.99999", P("windows", "amd64", os_version="10.0.17763.1"), True),
    (WIN + ":abc.d.e", P("windows", "amd64", os_version="10.0.17763.1"), True),
    # and OS versions are compared for Windows only
    ("linux(7.2)/amd64", P("linux", "amd64", os_version="7.1"), True),
    ("linux/amd64:7.2", P("linux", "amd64"), True),
    # OS features: the candidate's must all be provided, also when none are declared
    ("linux/amd64", P("linux", "amd64", os_features=("gpu",)), False),
    ("linux(+gpu)/amd64", P("linux", "amd64", os_features=("gpu",)), True),
    (WIN, P("windows", "amd64", os_features=("win32k",)), True),
    ("windows(+win32k)/amd64", P("windows", "amd64", os_features=("win32k",)), True),
    ("windows(+win32k)/amd64", P("windows", "amd64"), True),
    ("windows(+win32k)/amd64", P("windows", "amd64", os_features=("win32k", "x")), False),
    ("linux/amd64", P("linux", "amd64", features=("sse4",)), True),
    ("macos/arm64", P("darwin", "arm64"), True),
    ("linux/riscv64", P("linux", "riscv64", "rva23u64"), False),
]


@pytest.mark.parametrize(("wanted", "candidate", "expected"), MATCHES)
def test_matches(wanted: str, candidate: Platform, expected: bool) -> None:
    assert matches(parse_platform(wanted), candidate) is expected
    if ":" not in wanted and "(" not in wanted:
        # matches() normalizes the wanted side too: the raw, unparsed fields give the same answer
        os_name, arch, *rest = wanted.split("/")
        assert matches(P(os_name, arch, "".join(rest)), candidate) is expected


def test_empty_platforms_never_match() -> None:
    assert not matches(P("", ""), P("", ""))
    assert not matches(P("linux", ""), P("linux", ""))


# ----------------------------------------------------------------------------- best_match


BEST: list[tuple[str, list[str], int | None]] = [
    ("linux/amd64", [], None),
    ("linux/amd64", ["linux/arm64", "linux/amd64"], 1),
    ("linux/amd64", ["linux/386", "linux/amd64"], 1),
    ("linux/amd64", ["linux/386"], 0),  # Only(amd64) falls back to 386
    ("linux/amd64", ["linux/amd64/v2"], None),
    ("linux/amd64", ["linux/amd64", "linux/amd64"], 0),  # first among equals
    ("linux/amd64/v3", ["linux/amd64", "linux/amd64/v2", "linux/amd64/v3"], 2),
    ("linux/amd64/v3", ["linux/amd64", "linux/amd64/v2"], 1),
    ("linux/amd64/v3", ["linux/amd64/v4"], None),
    ("linux/amd64/v3", ["linux/386", "linux/amd64"], 1),
    ("linux/amd64/v2", ["linux/amd64/v1"], 0),
    ("linux/arm/v7", ["linux/arm/v5", "linux/arm/v6"], 1),
    ("linux/arm/v7", ["linux/arm/v6", "linux/arm/v7"], 1),
    ("linux/arm/v7", ["linux/arm/v8"], None),
    ("linux/arm/v7", ["linux/arm64"], None),
    ("linux/arm", ["linux/arm/v5"], 0),
    ("linux/arm/v6", ["linux/arm/v7"], None),
    ("linux/arm/v6", ["linux/arm/v7", "linux/arm/v5"], 1),
    ("linux/arm/v5", ["linux/arm/v6", "linux/arm/v5"], 1),
    ("linux/arm/v8", ["linux/arm/v7", "linux/arm/v8"], 1),
    ("linux/arm64", ["linux/arm/v7", "linux/arm64/v8"], 1),
    ("linux/arm64", ["linux/arm/v6", "linux/arm/v7"], 1),
    ("linux/arm64", ["linux/arm64/v8.2"], None),
    ("linux/arm64/v8.2", ["linux/arm64", "linux/arm64/v8.1"], 1),
    ("linux/arm64/v8.2", ["linux/arm64/v8.3"], None),
    ("linux/arm64/v9.2", ["linux/arm64/v8.8", "linux/arm64/v8.7"], 1),
    ("linux/arm64/v9", ["linux/arm64/v8.5", "linux/arm64/v8.6"], 0),
    ("linux/arm64/v9", ["linux/arm64", "linux/arm64/v8.5"], 1),
    ("linux/amd64", ["unknown/unknown", "linux/amd64"], 1),
    ("linux/amd64", ["unknown/unknown"], None),
    ("linux/arm64", ["unknown/unknown", "linux/arm/v7"], 1),
    ("unknown/unknown", ["linux/amd64", "unknown/unknown"], 1),
    ("linux/amd64", ["windows/amd64:10.0.17763.1", "linux/amd64"], 1),
    ("windows/amd64", ["linux/amd64", "windows/amd64:10.0.17763.1"], 1),
    (
        "windows/amd64:10.0.17763",
        ["windows/amd64:10.0.20348.1", "windows/amd64:10.0.17763.5830"],
        1,
    ),
    ("windows/amd64:10.0.17763", ["windows/amd64:10.0.20348.1"], None),
    ("windows/amd64:10.0.17763", ["windows/386:10.0.17763.1"], 0),
]


@pytest.mark.parametrize(("wanted", "candidates", "expected"), BEST)
def test_best_match(wanted: str, candidates: list[str], expected: int | None) -> None:
    parsed = [parse_platform(c) for c in candidates]
    assert best_match(parse_platform(wanted), parsed) == expected
    if expected is not None:
        # The chosen one has the lowest rank, and nothing earlier ties with it.
        ranks = [match_rank(parse_platform(wanted), c) for c in parsed]
        best = ranks[expected]
        assert best is not None
        assert all(r is None or r > best for r in ranks[:expected])
        assert all(r is None or r >= best for r in ranks[expected:])


def test_best_match_skips_platformless_entries() -> None:
    assert best_match(P("linux", "amd64"), [P("", ""), P("", "amd64"), P("linux", "amd64")]) == 2


ARM32_CHAIN = ["linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("linux/amd64", ["linux/amd64", "linux/386"]),
        ("linux/amd64/v3", ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]),
        ("linux/386", ["linux/386"]),
        ("linux/arm", ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
        ("linux/arm/v5", ["linux/arm/v5"]),
        ("linux/arm/v8", ["linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
        (
            "linux/arm64",
            ["linux/arm64", *ARM32_CHAIN],
        ),
        (
            "linux/arm64/v8.2",
            ["linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64", *ARM32_CHAIN],
        ),
        (
            "linux/arm64/v9.2",
            ["linux/arm64/v9.2", "linux/arm64/v9.1", "linux/arm64/v9"]
            + [f"linux/arm64/v8.{m}" for m in range(7, 0, -1)]
            + ["linux/arm64", *ARM32_CHAIN],
        ),
        ("linux/s390x", ["linux/s390x"]),
        ("unknown/unknown", ["unknown/unknown"]),
        ("windows/amd64:10.0.17763", ["windows/amd64:10.0.17763", "windows/386:10.0.17763"]),
        # absurd levels are not expanded
        ("linux/amd64/v100000000000000000000", ["linux/amd64/v100000000000000000000", "linux/386"]),
        ("linux/arm/v65", ["linux/arm/v65"]),
    ],
)
def test_compatible_platforms(wanted: str, expected: list[str]) -> None:
    vector = compatible_platforms(parse_platform(wanted))
    assert [format_platform(p) for p in vector] == expected
    assert vector[0] == parse_platform(wanted)
    assert all(normalize(p) == p for p in vector)


def test_match_rank() -> None:
    arm7 = parse_platform("linux/arm/v7")
    assert match_rank(arm7, P("linux", "arm")) == 0
    assert match_rank(arm7, P("linux", "arm", "v6")) == 1
    assert match_rank(arm7, P("linux", "armel")) == 1
    assert match_rank(arm7, P("linux", "arm", "v5")) == 2
    assert match_rank(arm7, P("linux", "arm", "v8")) is None
    assert match_rank(arm7, P("unknown", "unknown")) is None


# ------------------------------------------------------------------------------ local platform


def test_local_platform_sanity() -> None:
    local = local_platform()
    assert isinstance(local, Platform)
    assert local.os and local.architecture
    assert normalize(local) == local
    assert local is local_platform()  # computed once
    assert parse_platform(format_platform(local)) == local
    assert matches(local, local)
    assert best_match(local, [P("unknown", "unknown"), local]) == 1
    if sys.platform.startswith("linux"):
        assert local.os == "linux"
    elif sys.platform == "darwin":
        assert local.os == "darwin"
    elif sys.platform == "win32":
        assert local.os == "windows"
    if local.architecture == "arm":
        assert local.variant in ("v3", "v4", "v5", "v6", "v7", "v8")
    else:
        assert local.variant == ""


def test_local_platform_matches_python_view_of_the_machine() -> None:
    import platform

    machine = platform.machine().lower()
    local = local_platform()
    if machine in ("x86_64", "amd64") and sys.maxsize > 2**32:
        assert local.architecture == "amd64"
    if machine in ("aarch64", "arm64") and sys.maxsize > 2**32:
        assert local.architecture == "arm64"


RPI1_CPUINFO = """processor\t: 0
model name\t: ARMv6-compatible processor rev 7 (v6l)
BogoMIPS\t: 697.95
Features\t: half thumb fastmult vfp edsp java tls
CPU implementer\t: 0x41
CPU architecture: 7
CPU variant\t: 0x0
"""

RPI3_32BIT_CPUINFO = """processor\t: 0
model name\t: ARMv7 Processor rev 4 (v7l)
CPU architecture: 7
"""


@pytest.mark.parametrize(
    ("machine", "sys_platform", "is_64bit", "byteorder", "cpuinfo", "expected"),
    [
        ("x86_64", "linux", True, "little", None, "linux/amd64"),
        ("x86_64", "linux", False, "little", None, "linux/386"),
        ("i686", "linux", False, "little", None, "linux/386"),
        ("AMD64", "win32", True, "little", None, "windows/amd64"),
        ("ARM64", "win32", True, "little", None, "windows/arm64"),
        ("ARM", "win32", False, "little", None, "windows/arm/v7"),
        ("arm64", "darwin", True, "little", None, "darwin/arm64"),
        ("x86_64", "darwin", True, "little", None, "darwin/amd64"),
        ("amd64", "freebsd14", True, "little", None, "freebsd/amd64"),
        ("aarch64", "linux", True, "little", "CPU architecture: 8\n", "linux/arm64"),
        ("aarch64", "linux", False, "little", "CPU architecture: 8\n", "linux/arm/v8"),
        ("armv7l", "linux", False, "little", RPI3_32BIT_CPUINFO, "linux/arm/v7"),
        ("armv6l", "linux", False, "little", RPI1_CPUINFO, "linux/arm/v6"),
        ("armv7l", "linux", False, "little", "cpu architecture : 6TEJ\n", "linux/arm/v6"),
        ("armv7l", "linux", False, "little", "CPU architecture: 5TEJ\n", "linux/arm/v5"),
        ("armv7l", "linux", False, "little", "CPU architecture: ?(12)\n", "linux/arm/v7"),
        ("armv7l", "linux", False, "little", "CPU architecture: weird\n", "linux/arm/v7"),
        ("armv7l", "linux", False, "little", "processor: 0\n", "linux/arm/v7"),
        ("armv6l", "linux", False, "little", None, "linux/arm/v6"),
        ("armv5tel", "linux", False, "little", None, "linux/arm/v5"),
        ("armv6l", "linux", False, "little", "processor: 0\n", "linux/arm/v6"),
        ("arm", "linux", False, "little", "", "linux/arm/v7"),
        ("armv7l", "freebsd13", False, "little", None, "freebsd/arm/v7"),
        ("ppc64le", "linux", True, "little", None, "linux/ppc64le"),
        ("s390x", "linux", True, "big", None, "linux/s390x"),
        ("riscv64", "linux", True, "little", None, "linux/riscv64"),
        ("loongarch64", "linux", True, "little", None, "linux/loong64"),
        ("mips64", "linux", True, "little", None, "linux/mips64le"),
        ("mips", "linux", False, "big", None, "linux/mips"),
        ("powerpc64le", "linux", True, "little", None, "linux/ppc64le"),
        ("powerpc64", "aix", True, "big", None, "aix/ppc64"),
        ("powerpc", "linux", False, "big", None, "linux/ppc"),
        ("aarch64_be", "linux", True, "big", None, "linux/arm64be"),
        ("i86pc", "sunos5", True, "little", None, "solaris/amd64"),
        # containerd detects no ARM variant outside Linux (v7), even from the machine name
        ("armv6l", "freebsd13", False, "little", None, "freebsd/arm/v7"),
        # no CPU architecture line: the machine name decides (aarch64 -> 8)
        ("aarch64", "linux", False, "little", "processor: 0\n", "linux/arm/v8"),
        # a key without a value is skipped, the next line with one counts
        (
            "armv7l",
            "linux",
            False,
            "little",
            "CPU architecture\nCPU architecture: 6\n",
            "linux/arm/v6",
        ),
        # the Raspberry Pi quirk applies only to a reported 7
        (
            "armv7l",
            "linux",
            False,
            "little",
            "CPU architecture: 8\nmodel name: ARMv6-compatible processor rev 7 (v6l)\n",
            "linux/arm/v8",
        ),
    ],
)
def test_detect_platform(
    machine: str,
    sys_platform: str,
    is_64bit: bool,
    byteorder: str,
    cpuinfo: str | None,
    expected: str,
) -> None:
    detected = _detect_platform(
        machine, sys_platform, is_64bit=is_64bit, byteorder=byteorder, cpuinfo=cpuinfo
    )
    assert format_platform(detected) == expected
    assert normalize(detected) == detected


# ------------------------------------------------------------------------------------ properties

SPEC_CHARS = "linuxwdosamd64rv8._-/:()+%*, \t\u00e9\x00"


@settings(max_examples=400)
@given(st.one_of(st.text(), st.text(alphabet=SPEC_CHARS, max_size=30)))
@example("linux(" + "+" * 5000 + ")/amd64")
@example("linux(+" + "a+" * 2000 + "b)/amd64")
@example("\ud800")
def test_parse_raises_only_usage_error(text: str) -> None:
    try:
        parsed = parse_platform(text, default=HOST)
    except UsageError as exc:
        assert str(exc).startswith("invalid platform ")
        assert exc.exit_code == ExitCode.USAGE
        return
    assert normalize(parsed) == parsed
    assert parsed.os and parsed.architecture
    # whatever parses, its formatted form parses back to it (features aside)
    if not parsed.os_features:
        assert parse_platform(format_platform(parsed), default=HOST) == parsed


OS_NAMES = st.one_of(
    st.sampled_from([*sorted(KNOWN_OSES), "macos", "Linux", "WINDOWS", "unknown"]),
    st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
)
ARCH_ALIASES = ["aarch64", "x86_64", "x86-64", "i386", "armhf", "armel", "AMD64", "unknown"]
ARCH_NAMES = st.one_of(
    st.sampled_from([*sorted(KNOWN_ARCHITECTURES), *ARCH_ALIASES]),
    st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True),
)
VARIANTS = st.one_of(
    st.sampled_from(["", "v5", "v6", "v7", "v8", "8", "7", "v1", "v2", "v3", "v8.2", "v9", "V8"]),
    st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True),
)
OS_VERSIONS = st.one_of(
    st.just(""),
    st.from_regex(r"10\.0\.[0-9]{5}(\.[0-9]{1,4})?", fullmatch=True),
    st.text(min_size=1, max_size=12),
)


@st.composite
def platforms(draw: st.DrawFn) -> Platform:
    return Platform(
        os=draw(OS_NAMES),
        architecture=draw(ARCH_NAMES),
        variant=draw(VARIANTS),
        os_version=draw(OS_VERSIONS),
    )


@settings(max_examples=400)
@given(platforms())
@example(P("linux", "arm"))
@example(P("linux", "arm64", "v8"))
@example(P("macos", "aarch64"))
@example(P("windows", "amd64", os_version="10.0.17763 (beta)/x%"))
def test_format_then_parse_is_normalize(p: Platform) -> None:
    # the one shape parse_platform refuses on purpose: an architecture where the OS goes
    assume(
        not (
            normalize_os(p.os) not in KNOWN_OSES
            and normalize_arch(p.os)[0] in KNOWN_ARCHITECTURES
            and normalize_os(normalize_arch(p.architecture, p.variant)[0]) in KNOWN_OSES
        )
    )
    text = format_platform(p)
    assert parse_platform(text, default=HOST) == normalize(p)
    assert format_platform(normalize(p)) == text


@given(platforms())
def test_matching_properties(p: Platform) -> None:
    n = normalize(p)
    assert normalize(n) == n
    assert matches(p, p)
    assert matches(n, p) and matches(p, n)
    assert match_rank(p, p) == 0
    assert best_match(p, [P("unknown", "unknown"), p]) == (1 if n != P("unknown", "unknown") else 0)
    vector = compatible_platforms(p)
    assert vector[0] == n
    assert len(set(vector)) == len(vector)
    # every entry it accepts, it picks as a best match when offered alone
    for entry in vector:
        assert best_match(p, [entry]) == 0


# ------------------------------------------------- containerd's own tables (compare_test.go)

#: containerd compare_test.go TestOnly: Only(platform).Match(candidate) -> bool.
CONTAINERD_ONLY: list[tuple[str, dict[bool, list[str]]]] = [
    (
        "linux/amd64",
        {
            True: ["linux/amd64", "linux/386"],
            False: [
                "linux/amd64/v2",
                "linux/arm/v7",
                "linux/arm64",
                "windows/amd64",
                "windows/arm",
            ],
        },
    ),
    (
        "linux/amd64/v2",
        {
            True: ["linux/amd64", "linux/amd64/v1", "linux/amd64/v2", "linux/386"],
            False: [
                "linux/amd64/v3",
                "linux/amd64/v4",
                "linux/arm/v7",
                "linux/arm64",
                "windows/amd64",
                "windows/arm",
            ],
        },
    ),
    (
        "linux/386",
        {
            True: ["linux/386"],
            False: ["linux/amd64", "linux/arm/v7", "linux/arm64", "windows/amd64", "windows/arm"],
        },
    ),
    (
        "windows/amd64",
        {
            True: ["windows/amd64", "windows(10.0.17763)/amd64"],
            False: ["linux/amd64", "linux/arm/v7", "linux/arm64", "windows/arm"],
        },
    ),
    (
        "linux/arm/v8",
        {
            True: ["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8"],
            False: ["linux/amd64", "linux/arm/v4", "linux/arm64", "windows/amd64", "windows/arm"],
        },
    ),
    (
        "linux/arm/v7",
        {
            True: ["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7"],
            False: [
                "linux/amd64",
                "linux/arm/v4",
                "linux/arm/v8",
                "linux/arm64",
                "windows/amd64",
                "windows/arm",
            ],
        },
    ),
    (
        "linux/arm/v6",
        {
            True: ["linux/arm/v5", "linux/arm/v6"],
            False: [
                "linux/amd64",
                "linux/arm",
                "linux/arm/v4",
                "linux/arm/v7",
                "linux/arm/v8",
                "linux/arm64",
                "windows/amd64",
                "windows/arm",
            ],
        },
    ),
    (
        "linux/arm/v5",
        {
            True: ["linux/arm/v5"],
            False: [
                "linux/amd64",
                "linux/arm",
                "linux/arm/v4",
                "linux/arm/v6",
                "linux/arm/v7",
                "linux/arm/v8",
                "linux/arm64",
                "windows/amd64",
                "windows/arm",
            ],
        },
    ),
    (
        "linux/arm/v4",
        {
            True: ["linux/arm/v4"],
            False: [
                "linux/amd64",
                "linux/arm",
                "linux/arm/v5",
                "linux/arm/v6",
                "linux/arm/v7",
                "linux/arm/v8",
                "linux/arm64",
                "windows/amd64",
                "windows/arm",
            ],
        },
    ),
    (
        "linux/arm64/v9.6",
        {
            True: [
                "linux/arm",
                "linux/arm/v5",
                "linux/arm/v6",
                "linux/arm/v7",
                "linux/arm/v8",
                "linux/arm64",
                "linux/arm64/v8",
                *[f"linux/arm64/v8.{m}" for m in range(1, 10)],
                "linux/arm64/v9",
                *[f"linux/arm64/v9.{m}" for m in range(7)],
            ],
            False: [
                "linux/amd64",
                "linux/arm/v4",
                "windows/amd64",
                "windows/arm",
                "linux/arm64/v8.10",  # there's no v8.10
            ],
        },
    ),
    (
        "linux/arm64/v9",
        {
            True: [
                "linux/arm",
                "linux/arm/v5",
                "linux/arm/v6",
                "linux/arm/v7",
                "linux/arm/v8",
                "linux/arm64",
                "linux/arm64/v8",
                *[f"linux/arm64/v8.{m}" for m in range(1, 6)],
                "linux/arm64/v9",
                "linux/arm64/v9.0",
            ],
            False: [
                "linux/amd64",
                "linux/arm/v4",
                "windows/amd64",
                "windows/arm",
                "linux/arm64/v8.6",
            ],
        },
    ),
    (
        "linux/arm64/v8.1",
        {
            True: [
                "linux/arm",
                "linux/arm/v5",
                "linux/arm/v6",
                "linux/arm/v7",
                "linux/arm/v8",
                "linux/arm64",
                "linux/arm64/v8",
                "linux/arm64/v8.1",
            ],
            False: [
                "linux/amd64",
                "linux/arm/v4",
                "linux/arm/v9",
                "linux/arm64/v9",
                "windows/amd64",
                "windows/arm",
            ],
        },
    ),
    (
        "linux/arm64",
        {
            True: [
                "linux/arm",
                "linux/arm/v5",
                "linux/arm/v6",
                "linux/arm/v7",
                "linux/arm/v8",
                "linux/arm64",
                "linux/arm64/v8",
            ],
            False: [
                "linux/amd64",
                "linux/arm/v4",
                "linux/arm/v9",
                "linux/arm64/v9",
                "windows/amd64",
                "windows/arm",
            ],
        },
    ),
    # the spellings containerd's normalizeArch folds into v8 and v9
    (
        "linux/arm64/v8.0",
        {True: ["linux/arm64", "linux/arm64/v8", "linux/arm/v8"], False: ["linux/arm64/v8.1"]},
    ),
    (
        "linux/arm64/9.0",
        {
            True: ["linux/arm64/v9", "linux/arm64/v9.0", "linux/arm64/9", "linux/arm64/v8.5"],
            False: ["linux/arm64/v9.1", "linux/arm64/v8.6"],
        },
    ),
]


@pytest.mark.parametrize(
    ("wanted", "candidate", "expected"),
    [
        (wanted, candidate, expected)
        for wanted, table in CONTAINERD_ONLY
        for expected, candidates in table.items()
        for candidate in candidates
    ],
)
def test_containerd_only_table(wanted: str, candidate: str, expected: bool) -> None:
    w = parse_platform(wanted, default=HOST)
    c = parse_platform(candidate, default=HOST)
    assert (match_rank(w, c) is not None) is expected
    assert (best_match(w, [c]) == 0) is expected


#: containerd compare_test.go TestOnlyStrict: OnlyStrict(platform).Match(candidate).
CONTAINERD_ONLY_STRICT: list[tuple[str, dict[bool, list[str]]]] = [
    (
        "linux/amd64",
        {
            True: ["linux/amd64"],
            False: ["linux/386", "linux/arm/v7", "linux/arm64", "windows/amd64", "windows/arm"],
        },
    ),
    (
        "windows/amd64",
        {
            True: ["windows/amd64", "windows(10.0.17763)/amd64"],
            False: ["linux/amd64", "linux/arm/v7", "linux/arm64", "windows/arm"],
        },
    ),
    (
        "windows(10.0.17763)/amd64",
        {
            True: ["windows/amd64", "windows(10.0.17763)/amd64"],
            False: ["linux/amd64", "linux/arm/v7", "linux/arm64", "windows/arm"],
        },
    ),
    (
        "linux/arm/v7",
        {
            True: ["linux/arm", "linux/arm/v7"],
            False: [
                "linux/arm/v5",
                "linux/arm/v6",
                "linux/amd64",
                "linux/arm/v4",
                "linux/arm/v8",
                "linux/arm64",
                "windows/amd64",
                "windows/arm",
            ],
        },
    ),
    (
        "linux/arm64/v9.5",
        {
            True: ["linux/arm64/v9.5"],
            False: [
                "linux/arm",
                "linux/arm/v5",
                "linux/arm/v6",
                "linux/arm/v7",
                "linux/arm/v8",
                "linux/amd64",
                "linux/arm/v4",
                "linux/arm64/v8",
                "linux/arm64/v8.1",
                "linux/arm64/v9",
                "linux/arm64/v9.1",
                "linux/arm64/v9.4",
                "windows/amd64",
                "windows/arm",
            ],
        },
    ),
    (
        "linux/arm64/v9",
        {
            True: ["linux/arm64/v9", "linux/arm64/v9.0"],
            False: [
                "linux/arm",
                "linux/arm/v5",
                "linux/arm/v6",
                "linux/arm/v7",
                "linux/arm/v8",
                "linux/amd64",
                "linux/arm/v4",
                "linux/arm/v9",
                "linux/arm64/v8",
                "linux/arm64/v8.1",
                "windows/amd64",
                "windows/arm",
            ],
        },
    ),
    (
        "linux/arm64/v8.1",
        {
            True: ["linux/arm64/v8.1"],
            False: [
                "linux/arm",
                "linux/arm/v8",
                "linux/arm/v9",
                "linux/arm64/v8",
                "linux/arm64/v9",
            ],
        },
    ),
    (
        "linux/arm64",
        {
            True: ["linux/arm64", "linux/arm64/v8", "linux/arm64/v8.0"],
            False: ["linux/arm", "linux/arm/v8", "linux/arm64/v9", "windows/amd64"],
        },
    ),
]


@pytest.mark.parametrize(
    ("wanted", "candidate", "expected"),
    [
        (wanted, candidate, expected)
        for wanted, table in CONTAINERD_ONLY_STRICT
        for expected, candidates in table.items()
        for candidate in candidates
    ],
)
def test_containerd_only_strict_table(wanted: str, candidate: str, expected: bool) -> None:
    assert matches(parse_platform(wanted), parse_platform(candidate)) is expected


#: containerd compare_test.go arm64variantToVersion: variant -> (majors, highest minors).
ARM64_VARIANT_TO_VERSION: dict[str, tuple[list[int], list[int]]] = {
    "v8": ([8], [0]),
    "v8.0": ([8], [0]),
    **{f"v8.{m}": ([8], [m]) for m in range(1, 10)},
    "v9": ([9, 8], [0, 5]),
    "v9.0": ([9, 8], [0, 5]),
    "v9.1": ([9, 8], [1, 6]),
    "v9.2": ([9, 8], [2, 7]),
    "v9.3": ([9, 8], [3, 8]),
    "v9.4": ([9, 8], [4, 9]),
    "v9.5": ([9, 8], [5, 9]),
    "v9.6": ([9, 8], [6, 9]),
    "v9.7": ([9, 8], [7, 9]),
}


@pytest.mark.parametrize("variant", sorted(ARM64_VARIANT_TO_VERSION))
def test_arm64_vector_follows_containerd_table(variant: str) -> None:
    majors, minors = ARM64_VARIANT_TO_VERSION[variant]
    # containerd's platformVector loop, then the arm/v8 chain
    expected = [
        f"linux/arm64/v{major}.{minor}" if minor else f"linux/arm64/v{major}"
        for major, top in zip(majors, minors, strict=True)
        for minor in range(top, -1, -1)
    ]
    expected = ["linux/arm64" if e == "linux/arm64/v8" else e for e in expected]
    expected += ["linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    vector = compatible_platforms(P("linux", "arm64", variant))
    assert [format_platform(p) for p in vector] == expected


@pytest.mark.parametrize(
    ("variant", "expected_arm64"),
    [
        # beyond containerd's table (which matches nothing for these): v9.N's rule, capped at v8.9
        (
            "v9.8",
            [f"v9.{m}" for m in range(8, 0, -1)] + ["v9"] + [f"v8.{m}" for m in range(9, 0, -1)],
        ),
        (
            "v9.9",
            [f"v9.{m}" for m in range(9, 0, -1)] + ["v9"] + [f"v8.{m}" for m in range(9, 0, -1)],
        ),
    ],
)
def test_arm64_vector_beyond_containerd_table(variant: str, expected_arm64: list[str]) -> None:
    vector = [format_platform(p) for p in compatible_platforms(P("linux", "arm64", variant))]
    assert vector == [f"linux/arm64/{v}" for v in expected_arm64] + ["linux/arm64", *ARM32_CHAIN]
    assert "linux/arm64/v8.10" not in vector


@pytest.mark.parametrize("variant", ["v10", "v8.10", "v9.10", "v7", "v8.a", "v8.", "9.1", "v"])
def test_unknown_arm64_variants_match_only_themselves(variant: str) -> None:
    wanted = P("linux", "arm64", variant)
    assert compatible_platforms(wanted) == (wanted,)
    assert best_match(wanted, [P("linux", "arm64"), P("linux", "arm", "v7"), wanted]) == 2
    assert best_match(wanted, [P("linux", "arm64"), P("linux", "arm", "v7")]) is None


def _selection_order(wanted: str, candidates: list[str]) -> list[str]:
    """The candidates in the order best_match picks them (containerd: sorted by Less, matches
    only), each pick removed before the next."""
    w = parse_platform(wanted)
    left = list(candidates)
    order: list[str] = []
    while True:
        index = best_match(w, [parse_platform(c) for c in left])
        if index is None:
            return order
        order.append(left.pop(index))


@pytest.mark.parametrize(
    ("wanted", "candidates", "expected"),
    [
        # containerd compare_test.go TestCompareOSFeatures ("only"), the matching entries of its
        # expected order; the non-matching ones follow them there.
        (
            "linux/amd64",
            ["windows/amd64", "linux/amd64", "linux(+other)/amd64", "linux/arm64"],
            # containerd's matcher refuses linux(+other): OS features nobody provides
            ["linux/amd64"],
        ),
        (
            "linux(+none)/amd64",
            ["windows/amd64", "linux/amd64", "linux/arm64", "linux(+other)/amd64"],
            ["linux/amd64"],
        ),
        (
            "linux(+other)/amd64",
            ["windows/amd64", "linux/amd64", "linux/arm64", "linux(+other)/amd64"],
            ["linux(+other)/amd64", "linux/amd64"],
        ),
        (
            "linux(+af+other+zf)/amd64",
            ["windows/amd64", "linux/amd64", "linux/arm64", "linux(+other)/amd64"],
            ["linux(+other)/amd64", "linux/amd64"],
        ),
        (
            "linux(+f1+f2)/amd64",
            ["linux/amd64", "linux(+f2)/amd64", "linux(+f1)/amd64", "linux(+f1+f2)/amd64"],
            ["linux(+f1+f2)/amd64", "linux(+f2)/amd64", "linux(+f1)/amd64", "linux/amd64"],
        ),
        (
            # no OS version is compared for Linux: most OS features first, then index order
            "linux(7.2+other)/amd64",
            ["linux/amd64", "linux(+other)/amd64", "linux(7.1)/amd64", "linux(7.2+other)/amd64"],
            ["linux(+other)/amd64", "linux(7.2+other)/amd64", "linux/amd64", "linux(7.1)/amd64"],
        ),
        # equal rank and equal OS features: index order, whatever the features are
        (
            "linux(+f1+f2)/amd64",
            ["linux(+f2)/amd64", "linux(+f1)/amd64"],
            ["linux(+f2)/amd64", "linux(+f1)/amd64"],
        ),
        (
            "linux(+f1+f2)/amd64",
            ["linux(+f1)/amd64", "linux(+f2)/amd64"],
            ["linux(+f1)/amd64", "linux(+f2)/amd64"],
        ),
        # rank first: an exact match without features beats a fallback with more features
        (
            "linux(+f1)/amd64",
            ["linux(+f1)/386", "linux/amd64"],
            ["linux/amd64", "linux(+f1)/386"],
        ),
        # Windows: win32k is provided by every Windows host (containerd strips it to match), and
        # counts as a matching feature in containerd's Less
        (
            "windows/amd64",
            ["windows/amd64", "windows(+win32k)/amd64"],
            ["windows(+win32k)/amd64", "windows/amd64"],
        ),
        (
            "windows/amd64:10.0.17763",
            [
                "windows(10.0.20348.1+win32k)/amd64",
                "windows(10.0.17763.5830)/amd64",
                "windows(10.0.17763.5830+win32k)/amd64",
            ],
            ["windows(10.0.17763.5830+win32k)/amd64", "windows(10.0.17763.5830)/amd64"],
        ),
        (
            "windows(+x)/amd64",
            ["windows/amd64", "windows(+win32k)/amd64", "windows(+x+win32k)/amd64"],
            ["windows(+x+win32k)/amd64", "windows(+win32k)/amd64", "windows/amd64"],
        ),
        # features a wanted platform without any does not provide: no match
        (
            "linux/amd64",
            ["linux(+gpu)/amd64", "linux/amd64", "linux(+a+b)/amd64"],
            ["linux/amd64"],
        ),
        # Windows with an OS version: among equals, the highest compatible OS version first
        # (containerd's windowsMatchComparer), numerically; an image without one last
        (
            "windows/amd64:10.0.26100.1",
            [
                "windows/amd64",
                "windows/amd64:10.0.20348.9999",
                "windows/amd64:10.0.26100.9999",
                "windows/amd64:10.0.26100.10000",
                "windows/amd64:10.0.17763.1",
            ],
            [
                "windows/amd64:10.0.26100.10000",
                "windows/amd64:10.0.26100.9999",
                "windows/amd64:10.0.20348.9999",
                "windows/amd64",
            ],
        ),
        # ... only below rank and OS features
        (
            "windows(10.0.26100+x)/amd64",
            ["windows/amd64:10.0.26100.2", "windows(10.0.20348.1+x)/amd64"],
            ["windows(10.0.20348.1+x)/amd64", "windows/amd64:10.0.26100.2"],
        ),
        # without a wanted OS version: index order, as containerd's Only
        (
            "windows/amd64",
            ["windows/amd64:10.0.17763.1", "windows/amd64:10.0.20348.1"],
            ["windows/amd64:10.0.17763.1", "windows/amd64:10.0.20348.1"],
        ),
    ],
)
def test_selection_order_follows_containerd_less(
    wanted: str, candidates: list[str], expected: list[str]
) -> None:
    assert _selection_order(wanted, candidates) == expected


@pytest.mark.parametrize(
    ("wanted", "candidates", "expected"),
    [
        # ties below rank 0 go to the earliest entry, as containerd's stable sort does
        ("linux/amd64", ["linux/386", "linux/386"], 0),
        ("linux/amd64", ["linux/arm64", "linux/386", "linux/386"], 1),
        ("linux/arm/v7", ["linux/arm/v6", "linux/armel", "linux/arm/v5"], 0),
        ("linux/arm64/v9", ["linux/arm64/v8.5", "linux/aarch64/v8.5"], 0),
        ("linux/amd64/v3", ["linux/amd64", "linux/amd64/v1", "linux/386"], 0),
        # ... and a better rank later still wins
        ("linux/amd64", ["linux/386", "linux/386", "linux/amd64"], 2),
    ],
)
def test_best_match_ties_go_to_the_earliest(
    wanted: str, candidates: list[str], expected: int
) -> None:
    assert best_match(parse_platform(wanted), [parse_platform(c) for c in candidates]) == expected


def test_win32k_is_provided_on_windows_only() -> None:
    assert matches(
        parse_platform("windows(+x)/amd64"), P("windows", "amd64", os_features=("win32k",))
    )
    assert not matches(
        parse_platform("linux(+x)/amd64"), P("linux", "amd64", os_features=("win32k",))
    )
    assert not matches(
        parse_platform("windows(+x)/amd64"), P("windows", "amd64", os_features=("win32k", "y"))
    )


def test_detect_platform_defaults_to_a_64_bit_little_endian_machine() -> None:
    assert format_platform(_detect_platform("x86_64", "linux")) == "linux/amd64"
    assert format_platform(_detect_platform("mips64", "linux")) == "linux/mips64le"
    assert _detect_platform("wasm32", "emscripten").os == "js"


@pytest.mark.parametrize(
    ("wanted", "expected_length"),
    [
        # the expansion bound (64) is inclusive; above it, nothing is expanded
        ("linux/amd64/v64", 64 + 1),  # v64 ... v2, amd64 (v1), 386
        ("linux/amd64/v65", 2),
        ("linux/arm/v64", 64 - 5 + 1),  # v64 ... v5
        ("linux/arm/v65", 1),
    ],
)
def test_variant_expansion_bound(wanted: str, expected_length: int) -> None:
    assert len(compatible_platforms(parse_platform(wanted))) == expected_length
