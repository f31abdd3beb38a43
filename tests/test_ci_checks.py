"""CI-facing features against the real registry corpus: --require, --platform, --digest,
--expect-digest, --raw, --sizes, batches and the extended JSON with its schema."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]  # no stubs
import pytest

from tests.expected import expected_json
from tests.support.cli import run_imginspect
from tests.support.corpus import CORPUS_KEYS, PushedImage
from tests.support.registry import Registry

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "imginspect" / "schemas" / "extended-v1.json").read_text()
)

Corpus = dict[str, PushedImage]


def _ref(registry: Registry, image: PushedImage, by: str = "tag") -> str:
    return registry.ref(image.repo, image.tag if by == "tag" else image.digest)


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert lines and lines[0].startswith("error: "), stderr
    assert len(lines) <= 2 and all(ln.startswith(("error: ", "hint: ")) for ln in lines), stderr
    return lines[0]


def _platform_of(image: PushedImage, text: str) -> PushedImage:
    for entry, child in zip(image.document["manifests"], image.children, strict=True):
        p = entry.get("platform") or {}
        name = "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)
        if name == text:
            return child
    raise AssertionError(f"{text} not in {image.key}")


# ------------------------------------------------------------------------------ --require


def test_require_present_platforms_on_buildkit_index(
    registry_plain: Registry, corpus_plain: Corpus
) -> None:
    result = run_imginspect(
        "--require", "linux/amd64,linux/arm64", _ref(registry_plain, corpus_plain["buildkit"])
    )
    assert result.code == 0, result.stderr
    assert result.stderr == ""


def test_require_missing_platform_on_single_arch_image(
    registry_plain: Registry, corpus_plain: Corpus
) -> None:
    ref = _ref(registry_plain, corpus_plain["schema2"])
    result = run_imginspect("--json", "--require", "linux/amd64", "--require", "linux/arm64", ref)
    assert result.code == 7
    line = _one_error_line(result.stderr)
    assert "missing linux/amd64, linux/arm64" in line and "linux/arm/v7" in line
    assert result.stdout == expected_json(corpus_plain["schema2"]), "the inspection still prints"


@pytest.mark.parametrize(
    ("required", "code"),
    [
        ("linux/arm64/v8", 0),  # arm64 == arm64/v8
        ("linux/aarch64", 0),
        ("linux/x86_64", 0),
        ("unknown/unknown", 7),  # attestations never count
        ("linux/arm/v7", 7),
        ("windows/amd64", 7),
    ],
)
def test_require_normalizes_and_ignores_attestations(
    registry_plain: Registry, corpus_plain: Corpus, required: str, code: int
) -> None:
    result = run_imginspect(
        "--digest", "--require", required, _ref(registry_plain, corpus_plain["buildkit"])
    )
    assert result.code == code, result.stderr


def test_require_only(registry_plain: Registry, corpus_plain: Corpus) -> None:
    buildkit = _ref(registry_plain, corpus_plain["buildkit"])
    ok = run_imginspect(
        "--require", "linux/amd64", "--require", "linux/arm64", "--require-only", buildkit
    )
    assert ok.code == 0, ok.stderr
    too_many = run_imginspect(
        "--require",
        "linux/amd64,linux/arm64",
        "--require-only",
        _ref(registry_plain, corpus_plain["oci-index"]),
    )
    assert too_many.code == 7
    assert "unexpected linux/arm/v7, linux/arm/v6, linux/ppc64le, linux/s390x" in too_many.stderr


def test_require_looks_into_nested_indexes(registry_plain: Registry, corpus_plain: Corpus) -> None:
    nested = corpus_plain["nested"]
    inner = next(c for c in nested.children if c.is_index)
    inner_platforms = [
        "/".join(
            x
            for x in (
                m["platform"]["os"],
                m["platform"]["architecture"],
                m["platform"].get("variant"),
            )
            if x
        )
        for m in inner.document["manifests"]
    ]
    result = run_imginspect("--require", ",".join(inner_platforms), _ref(registry_plain, nested))
    assert result.code == 0, result.stderr


# ------------------------------------------------------------------------------ --platform


def test_platform_selects_the_child_image(registry_plain: Registry, corpus_plain: Corpus) -> None:
    index = corpus_plain["oci-index"]
    child = _platform_of(index, "linux/arm64/v8")
    result = run_imginspect("--json", "--platform", "linux/arm64", _ref(registry_plain, index))
    assert result.code == 0, result.stderr
    assert result.stdout == expected_json(child)


def test_platform_arm_defaults_to_v7(registry_plain: Registry, corpus_plain: Corpus) -> None:
    index = corpus_plain["oci-index"]
    result = run_imginspect("--digest", "--platform", "linux/arm", _ref(registry_plain, index))
    assert result.code == 0, result.stderr
    assert result.text == _platform_of(index, "linux/arm/v7").digest + "\n"


def test_platform_not_found_lists_available(registry_plain: Registry, corpus_plain: Corpus) -> None:
    result = run_imginspect(
        "--platform", "linux/mips64le", _ref(registry_plain, corpus_plain["buildkit"])
    )
    assert result.code == 4
    assert result.stdout == b""
    lines = result.stderr.splitlines()
    assert "linux/mips64le" in lines[0]
    assert lines[1] == "hint: available platforms: linux/amd64, linux/arm64"


def test_platform_on_single_image(registry_plain: Registry, corpus_plain: Corpus) -> None:
    single = corpus_plain["schema2"]
    ok = run_imginspect("--digest", "--platform", "linux/arm/v7", _ref(registry_plain, single))
    assert ok.code == 0 and ok.text == single.digest + "\n"
    wrong = run_imginspect("--platform", "linux/amd64", _ref(registry_plain, single))
    assert wrong.code == 4 and "single-platform image: linux/arm/v7" in wrong.stderr


def test_platform_inside_nested_index(registry_plain: Registry, corpus_plain: Corpus) -> None:
    nested = corpus_plain["nested"]
    inner = next(c for c in nested.children if c.is_index)
    target, entry = inner.children[-1], inner.document["manifests"][-1]
    p = entry["platform"]
    text = "/".join(x for x in (p["os"], p["architecture"], p.get("variant")) if x)
    result = run_imginspect("--digest", "--platform", text, _ref(registry_plain, nested))
    assert result.code == 0, result.stderr
    assert result.text == target.digest + "\n"


def test_platform_table_names_the_selected_image(
    registry_plain: Registry, corpus_plain: Corpus
) -> None:
    index = corpus_plain["windows"]
    child = _platform_of(index, "linux/amd64")
    result = run_imginspect("--no-trunc", "--platform", "linux/amd64", _ref(registry_plain, index))
    assert result.code == 0, result.stderr
    assert child.digest in result.text and "linux/amd64" in result.text


# ------------------------------------------------------------------------------ digests


@pytest.mark.parametrize("key", CORPUS_KEYS)
def test_raw_sha256_equals_digest(registry_plain: Registry, corpus_plain: Corpus, key: str) -> None:
    ref = _ref(registry_plain, corpus_plain[key])
    raw = run_imginspect("--raw", ref)
    digest = run_imginspect("--digest", ref)
    assert raw.code == 0 and digest.code == 0, raw.stderr + digest.stderr
    assert raw.stdout == corpus_plain[key].raw, "exact bytes, no newline added"
    assert digest.text == "sha256:" + hashlib.sha256(raw.stdout).hexdigest() + "\n"


def test_digest_is_one_head_request(registry_plain: Registry, corpus_plain: Corpus) -> None:
    image = corpus_plain["oci-index"]
    mark = registry_plain.mark()
    result = run_imginspect("--digest", _ref(registry_plain, image))
    assert result.code == 0 and result.text == image.digest + "\n"
    requests = [(r.method, r.path) for r in registry_plain.requests_since(mark)]
    assert requests == [("HEAD", f"/v2/{image.repo}/manifests/{image.tag}")]


def test_expect_digest(registry_plain: Registry, corpus_plain: Corpus) -> None:
    image = corpus_plain["buildkit"]
    ref = _ref(registry_plain, image)
    assert run_imginspect("--digest", "--expect-digest", image.digest, ref).code == 0
    other = corpus_plain["oci-index"].digest
    drift = run_imginspect("--digest", "--expect-digest", other, ref)
    assert drift.code == 8
    assert drift.text == image.digest + "\n"
    line = _one_error_line(drift.stderr)
    assert image.digest in line and other in line
    bad = run_imginspect("--expect-digest", "sha256:nope", ref)
    assert bad.code == 2


def test_expect_digest_with_platform_compares_the_selected_image(
    registry_plain: Registry, corpus_plain: Corpus
) -> None:
    index = corpus_plain["oci-index"]
    child = _platform_of(index, "linux/s390x")
    ref = _ref(registry_plain, index)
    assert (
        run_imginspect(
            "--json", "--platform", "linux/s390x", "--expect-digest", child.digest, ref
        ).code
        == 0
    )
    assert (
        run_imginspect(
            "--json", "--platform", "linux/s390x", "--expect-digest", index.digest, ref
        ).code
        == 8
    )


# ------------------------------------------------------------------------------ --sizes


def test_sizes_equal_the_pushed_images(registry_plain: Registry, corpus_plain: Corpus) -> None:
    index = corpus_plain["oci-index"]
    result = run_imginspect("--format", "extended-json", "--sizes", _ref(registry_plain, index))
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    for child_doc, child in zip(doc["children"], index.children, strict=True):
        assert child_doc["digest"] == child.digest
        assert child_doc["compressedSize"] == child.compressed_size
        assert child_doc["layers"] == len(child.layers)
    table = run_imginspect(
        "--sizes", "--no-trunc", _ref(registry_plain, index), env={"COLUMNS": "200"}
    )
    total = sum(c.compressed_size or 0 for c in index.children)
    assert f"({total} bytes)" in table.text
    assert "COMPRESSED" in table.text and "LAYERS" in table.text


def test_sizes_of_a_single_image_cost_no_extra_request(
    registry_plain: Registry, corpus_plain: Corpus
) -> None:
    image = corpus_plain["oci-single"]
    mark = registry_plain.mark()
    result = run_imginspect("--format", "extended-json", "--sizes", _ref(registry_plain, image))
    assert result.code == 0
    doc = json.loads(result.stdout)
    assert doc["compressedSize"] == image.compressed_size
    assert doc["layers"] == len(image.layers)
    assert len(registry_plain.requests_since(mark)) == 2  # manifest + config


def test_sizes_skip_attestations(registry_plain: Registry, corpus_plain: Corpus) -> None:
    image = corpus_plain["buildkit"]
    result = run_imginspect("--format", "extended-json", "--sizes", _ref(registry_plain, image))
    doc = json.loads(result.stdout)
    kinds = [(c["kind"], c["compressedSize"] is not None) for c in doc["children"]]
    assert kinds == [
        ("image", True),
        ("image", True),
        ("attestation", False),
        ("attestation", False),
    ]
    assert [c["subject"] for c in doc["children"][2:]] == [c.digest for c in image.children[:2]]


# ------------------------------------------------------------------------------ extended JSON


@pytest.mark.parametrize("key", CORPUS_KEYS)
def test_extended_json_validates(registry_plain: Registry, corpus_plain: Corpus, key: str) -> None:
    image = corpus_plain[key]
    ref = _ref(registry_plain, image)
    result = run_imginspect("--format", "extended-json", ref)
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["reference"] == ref
    assert doc["canonical"] == ref
    assert doc["descriptor"]["digest"] == image.digest
    assert len(doc["children"]) == len(image.document.get("manifests", []))


def test_no_attestations_hides_rows_in_table_only(
    registry_plain: Registry, corpus_plain: Corpus
) -> None:
    ref = _ref(registry_plain, corpus_plain["buildkit"])
    table = run_imginspect("--no-attestations", ref)
    assert (
        table.code == 0 and "attestation" not in table.text and "unknown/unknown" not in table.text
    )
    as_json = run_imginspect("--json", "--no-attestations", ref)
    assert as_json.stdout == expected_json(corpus_plain["buildkit"])


# ------------------------------------------------------------------------------ batches


def test_batch_of_50_with_failures(
    registry_plain: Registry, corpus_plain: Corpus, tmp_path: Path
) -> None:
    good = [corpus_plain[k] for k in CORPUS_KEYS]
    lines: list[str] = ["# a batch", ""]
    expected: list[Any] = []
    for i in range(50):
        if i % 10 == 7:
            ref = registry_plain.ref(f"missing/repo{i}", "v1")
            lines.append(f"{ref}   # not there")
            expected.append(("error", ref, 4))
        elif i == 23:
            lines.append("Not/A/Valid:Reference")
            expected.append(("error", "Not/A/Valid:Reference", 2))
        else:
            image = good[i % len(good)]
            ref = _ref(registry_plain, image, "tag" if i % 2 else "digest")
            lines.append(ref)
            expected.append(("ok", ref, image))
    path = tmp_path / "refs.txt"
    path.write_text("\n".join(lines) + "\n")
    result = run_imginspect("--json", "--concurrency", "8", "-f", str(path))
    out = result.stdout.decode().splitlines()
    assert len(out) == 50
    for line, (kind, ref, what) in zip(out, expected, strict=True):
        if kind == "ok":
            assert line.encode() + b"\n" == expected_json(what)
        else:
            doc = json.loads(line)
            jsonschema.validate(doc, SCHEMA)
            assert doc["reference"] == ref and doc["error"]["exitCode"] == what
    assert result.code == 4, "the worst exit code of the batch"
    assert result.stderr.count("error: ") == 6


def test_batch_arguments_and_stdin_extended(registry_plain: Registry, corpus_plain: Corpus) -> None:
    a, b = corpus_plain["oci-single"], corpus_plain["windows"]
    stdin = f"{_ref(registry_plain, b)}\n".encode()
    result = run_imginspect(
        "--format", "extended-json", _ref(registry_plain, a), "-f", "-", input=stdin
    )
    assert result.code == 0, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["descriptor"]["digest"] for d in docs] == [a.digest, b.digest]
    for doc in docs:
        jsonschema.validate(doc, SCHEMA)


def test_batch_digests(registry_plain: Registry, corpus_plain: Corpus) -> None:
    a, b = corpus_plain["oci-single"], corpus_plain["windows"]
    result = run_imginspect("--digest", _ref(registry_plain, a), _ref(registry_plain, b))
    assert (
        result.text
        == f"{a.digest}  {_ref(registry_plain, a)}\n{b.digest}  {_ref(registry_plain, b)}\n"
    )


def test_batch_tables_and_require(registry_plain: Registry, corpus_plain: Corpus) -> None:
    result = run_imginspect(
        "--require",
        "linux/amd64",
        _ref(registry_plain, corpus_plain["buildkit"]),
        _ref(registry_plain, corpus_plain["schema2"]),
    )
    assert result.code == 7
    assert result.text.count("Digest") == 2
    assert result.stderr.startswith(
        f"error: {_ref(registry_plain, corpus_plain['schema2'])}: missing linux/amd64"
    )


def test_usage_errors(registry_plain: Registry, corpus_plain: Corpus) -> None:
    ref = _ref(registry_plain, corpus_plain["oci-single"])
    for args in (
        ["--raw", ref, ref],
        ["--raw", "--json", ref],
        ["--digest", "--format", "extended-json", ref],
        ["--require-only", ref],
        ["--platform", "linux/", ref],
        [],
    ):
        result = run_imginspect(*args)
        assert result.code == 2, (args, result.stderr)
        _one_error_line(result.stderr)


def test_ordered_map_runs_concurrently_and_keeps_order() -> None:
    from imginspect.batch import ordered_map as _ordered_map

    active = 0
    peak = 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02 * (n % 3))
        with lock:
            active -= 1
        return n * n

    assert list(_ordered_map(work, range(40), workers=8)) == [n * n for n in range(40)]
    assert peak > 1
    assert list(_ordered_map(work, iter(range(5)), workers=1)) == [0, 1, 4, 9, 16]
