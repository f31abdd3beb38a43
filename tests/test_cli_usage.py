"""Help for the user who mistyped (issue 10): one-line errors pointing at the right --help,
"did you mean" for subcommands, repository vs tag vs digest not found with the closest tags,
combinations that cannot work refused, `auth --insecure`, nested indexes in the table."""

from __future__ import annotations

import pytest

from tests.support.cli import run_imginspect
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

#: Docker Hub through a proxy that refuses connections: a reference that is inspected fails
#: fast with a network error (exit 5), never needing the internet.
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}


def _error_lines(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    assert lines and lines[0].startswith("error: "), stderr
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), stderr
    assert len([line for line in lines if line.startswith("error: ")]) == 1, stderr
    return lines


# ------------------------------------------------------------------ mistyped subcommands


@pytest.mark.parametrize(
    ("words", "meant"),
    [(["cahce", "show"], "cache"), (["completon", "bash"], "completion"), (["auht", "x"], "auth")],
)
def test_a_word_close_to_a_subcommand_gets_did_you_mean(words: list[str], meant: str) -> None:
    result = run_imginspect(*words, env=OFFLINE)
    assert result.code == 2, result.stderr
    error, hint = _error_lines(result.stderr)
    assert error == f"error: unknown command {words[0]!r}"
    assert f"did you mean `imginspect {meant}`?" in hint
    assert "registry-1.docker.io" not in result.stderr and "library/" not in result.stderr


@pytest.mark.parametrize("reference", ["ubuntu", "cahce:latest", "docker.io/library/cahce"])
def test_image_names_are_still_inspected(reference: str) -> None:
    result = run_imginspect("--digest", reference, env=OFFLINE)
    assert result.code == 5, result.stderr  # tried the registry (through the dead proxy)
    assert "did you mean" not in result.stderr


# ------------------------------------------------------------------ one-line usage errors


@pytest.mark.parametrize(
    ("args", "help_path"),
    [
        (["completion"], "imginspect completion"),
        (["completion", "tcsh"], "imginspect completion"),
        (["cache", "show", "--bad"], "imginspect cache show"),
        (["auth"], "imginspect auth"),
        (["--bad", "ubuntu"], "imginspect"),
        (["--platform"], "imginspect"),
    ],
)
def test_usage_errors_are_one_line_with_the_subcommands_help(
    args: list[str], help_path: str
) -> None:
    result = run_imginspect(*args, env=OFFLINE)
    assert result.code == 2, result.stderr
    lines = _error_lines(result.stderr)
    assert lines[-1] == f"hint: see '{help_path} --help'", result.stderr
    assert len(lines) == 2 and result.stdout == b""


@pytest.mark.parametrize(
    "args",
    [
        ["--raw", "--sizes"],
        ["--digest", "--sizes"],
        ["--json", "--sizes"],
        ["--compat", "docker", "--sizes"],
        ["--digest", "--no-trunc"],
        ["--raw", "--no-attestations"],
    ],
)
def test_combinations_that_cannot_work_are_usage_errors(args: list[str]) -> None:
    result = run_imginspect(*args, "localhost:1/demo/x:v1")
    assert result.code == 2, result.stderr
    (error, _hint) = _error_lines(result.stderr)
    assert "cannot be combined" in error


def test_auth_takes_insecure_as_inspect_does() -> None:
    result = run_imginspect("auth", "--insecure", "--anonymous", "registry.example.com/app:1")
    assert result.code == 0, result.stderr
    assert "tls: insecure (https without verification, then http): --insecure" in result.text
    plain = run_imginspect("auth", "--anonymous", "registry.example.com/app:1")
    assert plain.code == 0 and "tls: insecure" not in plain.text


# ------------------------------------------------------------------ not found


def test_not_found_says_repository_tag_or_digest(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    image = corpus_plain["oci-index"]
    where = f"{registry_plain.host}/{image.repo}"

    mark = registry_plain.mark()
    result = run_imginspect(registry_plain.ref(image.repo, image.tag + "1"))
    assert result.code == 4, result.stderr
    error, hint = _error_lines(result.stderr)
    assert error == f"error: tag not found: {where}:{image.tag}1"
    assert hint.startswith("hint: closest existing tags: ") and image.tag in hint
    lists = [r for r in registry_plain.requests_since(mark) if "/tags/list" in r.target]
    assert len(lists) == 1 and "n=1000" in lists[0].target, "one tag list, only on failure"

    result = run_imginspect(registry_plain.ref("no/such/repo", "v1"))
    assert result.code == 4
    assert result.stderr == f"error: repository not found: {registry_plain.host}/no/such/repo\n"

    missing = "sha256:" + "0" * 64
    result = run_imginspect("--digest", registry_plain.ref(image.repo, missing))
    assert result.code == 4
    assert _error_lines(result.stderr)[0] == f"error: digest not found: {where}@{missing}"

    mark = registry_plain.mark()
    ok = run_imginspect("--digest", registry_plain.ref(image.repo, image.tag))
    assert ok.code == 0
    assert not [r for r in registry_plain.requests_since(mark) if "/tags/list" in r.target]


# ------------------------------------------------------------------ nested indexes


def test_table_shows_nested_index_entries_and_sizes_add_up(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage]
) -> None:
    nested = corpus_plain["nested"]
    ref = registry_plain.ref(nested.repo, nested.tag)
    result = run_imginspect("--sizes", "--no-trunc", ref)
    assert result.code == 0, result.stderr
    table = result.text.split("\n\n", 1)[1].splitlines()
    header, rows, caption = table[0], table[1:-1], table[-1]
    assert header.split()[:2] == ["PLATFORM", "DIGEST"]
    outer, inner = nested.children
    assert rows[0].split()[:2] == ["linux/amd64", outer.digest]
    assert rows[1].split()[:2] == ["-", inner.digest] and rows[1].split()[3] == "index"
    for row, image in zip(rows[2:], inner.children, strict=True):
        assert row.startswith("  linux/"), row  # indented under its index
        assert row.split()[1] == image.digest
    total = int(caption.rsplit("(", 1)[1].split()[0])
    shown = [outer, *inner.children]
    assert total == sum(_compressed(image) for image in shown)
    # --platform picks an image the table shows
    picked = run_imginspect("--digest", "--platform", "linux/arm/v7", ref)
    assert picked.code == 0 and picked.text.strip() in result.text


def _compressed(image: PushedImage) -> int:
    assert image.compressed_size is not None
    return image.compressed_size
