"""Every CLI feature through the public library API alone (``import imginspect``): no
subprocess, no click. Platform selection, --require/--require-only, --expect-digest,
--digest, --raw, --sizes, extended JSON, tables, batches in order with their exit code, and
OCI layouts (directories and archives), against real loopback registries."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import imginspect
from imginspect import (
    Inspector,
    InspectRequest,
    OutputMode,
    batch_exit_code,
    inspect_many,
    inspect_one,
    parse_platform,
    render,
)
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "multiarch"
Corpus = dict[str, PushedImage]


def _imported(code: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return {m.split(".")[0] if not m.startswith("imginspect") else m for m in proc.stdout.split()}


def test_package_root_is_import_light() -> None:
    loaded = _imported("import imginspect; imginspect.OutputMode; imginspect.ExitCode")
    assert not loaded & {"httpx", "httpcore", "click", "rich", "imginspect.inspector"}


@pytest.mark.parametrize("module", ["checks", "batch", "output"])
def test_library_modules_import_no_click_rich_or_httpx(module: str) -> None:
    loaded = _imported(f"import imginspect.{module}")
    assert not loaded & {"httpx", "httpcore", "click", "rich", "imginspect.table"}


def test_public_names_resolve() -> None:
    for name in imginspect.__all__:
        assert getattr(imginspect, name) is not None, name
    with pytest.raises(AttributeError):
        imginspect.no_such_name  # noqa: B018


def _ref(registry: Registry, image: PushedImage) -> str:
    return registry.ref(image.repo, image.tag)


def test_inspect_convenience(registry_plain: Registry, corpus_plain: Corpus) -> None:
    image = corpus_plain["buildkit"]
    result = imginspect.inspect(_ref(registry_plain, image))
    assert result.descriptor.digest == image.digest
    selected = imginspect.inspect(_ref(registry_plain, image), platform="linux/arm64")
    assert selected.descriptor.digest == image.children[1].digest
    with pytest.raises(imginspect.PlatformNotFoundError):
        imginspect.inspect(_ref(registry_plain, image), platform="windows/amd64")


def test_platform_selection(registry_plain: Registry, corpus_plain: Corpus) -> None:
    image = corpus_plain["buildkit"]
    request = InspectRequest(mode=OutputMode.JSON, platform=parse_platform("linux/arm64"))
    with Inspector() as inspector:
        outcome = inspect_one(inspector, _ref(registry_plain, image), request)
    assert outcome.error is None and outcome.result is not None
    assert outcome.digest == image.children[1].digest
    assert outcome.result.selected_from is not None
    assert outcome.result.selected_from.digest == image.digest
    document = json.loads(render(outcome, OutputMode.JSON))
    assert document["Platforms"] == [{"architecture": "arm64", "os": "linux"}]

    missing = InspectRequest(platform=parse_platform("linux/s390x"))
    with Inspector() as inspector:
        failed = inspect_one(inspector, _ref(registry_plain, image), missing)
    assert isinstance(failed.error, imginspect.PlatformNotFoundError)
    assert failed.exit_code == 4 and failed.result is None


def test_require_and_require_only(registry_plain: Registry, corpus_plain: Corpus) -> None:
    ref = _ref(registry_plain, corpus_plain["buildkit"])
    amd64, arm64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")
    with Inspector() as inspector:
        ok = inspect_one(inspector, ref, InspectRequest(require=(amd64, arm64), require_only=True))
        only = inspect_one(
            inspector,
            ref,
            InspectRequest(mode=OutputMode.DIGEST, require=(amd64,), require_only=True),
        )
    assert ok.error is None and ok.exit_code == 0
    # a verdict: the inspection succeeded, its output is still there
    assert isinstance(only.error, imginspect.MissingPlatformError)
    assert only.exit_code == 7
    assert (
        only.error.message == f"{ref}: unexpected linux/arm64 (image has: linux/amd64, linux/arm64)"
    )
    assert render(only, OutputMode.DIGEST) == f"{corpus_plain['buildkit'].digest}\n".encode()
    with pytest.raises(imginspect.UsageError):
        InspectRequest(require_only=True)


def test_expect_digest_and_digest_mode(registry_plain: Registry, corpus_plain: Corpus) -> None:
    image = corpus_plain["oci-index"]
    ref = _ref(registry_plain, image)
    other = "sha256:" + "0" * 64
    with Inspector() as inspector:
        same = inspect_one(
            inspector, ref, InspectRequest(mode=OutputMode.DIGEST, expect_digest=image.digest)
        )
        moved = inspect_one(
            inspector, ref, InspectRequest(mode=OutputMode.DIGEST, expect_digest=other)
        )
    assert same.error is None and same.result is None  # --digest: one HEAD, no document
    assert render(same, OutputMode.DIGEST) == f"{image.digest}\n".encode()
    assert isinstance(moved.error, imginspect.DigestDriftError) and moved.exit_code == 8
    assert render(moved, OutputMode.DIGEST, batch=True) == f"{image.digest}  {ref}\n".encode()
    with pytest.raises(imginspect.UsageError):
        InspectRequest(expect_digest="sha256:short")


def test_raw_docker_and_table(registry_plain: Registry, corpus_plain: Corpus) -> None:
    image = corpus_plain["oci-single"]
    ref = _ref(registry_plain, image)
    with Inspector() as inspector:
        raw = inspect_one(inspector, ref, InspectRequest(mode=OutputMode.RAW))
        docker = inspect_one(inspector, ref, InspectRequest(mode=OutputMode.DOCKER))
        table = inspect_one(inspector, ref, InspectRequest())
    body = render(raw, OutputMode.RAW)
    assert body == image.raw
    assert "sha256:" + hashlib.sha256(body).hexdigest() == image.digest
    # the daemon's quirk, reproduced: no platforms for a single-platform OCI image
    assert json.loads(render(docker, OutputMode.DOCKER))["Platforms"] is None
    text = render(table, OutputMode.TABLE).decode()
    assert "linux/riscv64" in text and image.digest in text


def test_sizes_in_extended_json(registry_plain: Registry, corpus_plain: Corpus) -> None:
    image = corpus_plain["buildkit"]
    request = InspectRequest(mode=OutputMode.EXTENDED_JSON, sizes=True, concurrency=2)
    with Inspector() as inspector:
        outcome = inspect_one(inspector, _ref(registry_plain, image), request)
    assert outcome.result is not None and outcome.result.sizes is not None
    document = json.loads(render(outcome, OutputMode.EXTENDED_JSON))
    assert document["descriptor"]["digest"] == image.digest
    sized = {c["digest"]: c["compressedSize"] for c in document["children"] if c["kind"] == "image"}
    assert sized == {child.digest: child.compressed_size for child in image.children[:2]}


def test_batch_in_order_with_exit_precedence(
    registry_plain: Registry, corpus_plain: Corpus
) -> None:
    good = [_ref(registry_plain, corpus_plain[k]) for k in ("oci-index", "windows", "schema2")]
    not_there = registry_plain.ref("corpus/not-there", "v1")
    refs = [good[0], "Not/Valid", good[1], not_there, good[2]]
    request = InspectRequest(mode=OutputMode.JSON, require=(parse_platform("linux/amd64"),))
    with Inspector() as inspector:
        outcomes = list(inspect_many(inspector, iter(refs), request, concurrency=3))
    assert [o.given for o in outcomes] == refs
    # schema2 is not linux/amd64: a verdict (7), which does not mask the not-found (4)
    assert [o.exit_code for o in outcomes] == [0, 2, 0, 4, 7]
    error_line = json.loads(render(outcomes[3], OutputMode.JSON, batch=True))
    assert error_line["error"]["exitCode"] == 4 and error_line["reference"] == not_there
    assert batch_exit_code(o.exit_code for o in outcomes) == 4
    # a check verdict alone decides only when nothing failed
    arm = InspectRequest(mode=OutputMode.DIGEST, require=(parse_platform("linux/s390x"),))
    with Inspector() as inspector:
        verdicts = list(inspect_many(inspector, [good[1], not_there], arm, concurrency=2))
    assert [o.exit_code for o in verdicts] == [7, 4]
    assert batch_exit_code(o.exit_code for o in verdicts) == 4


def test_token_registry_anonymous_and_refused(
    registry_token: Registry, corpus_token: Corpus
) -> None:
    image = corpus_token["oci-index"]
    with Inspector() as inspector:
        ok = inspect_one(inspector, _ref(registry_token, image), InspectRequest())
        refused = inspect_one(inspector, registry_token.ref("private/app", "v1"), InspectRequest())
    assert ok.digest == image.digest
    assert isinstance(refused.error, imginspect.AuthError) and refused.exit_code == 3


def test_layout_directory(corpus_plain: Corpus) -> None:
    request = InspectRequest(
        mode=OutputMode.DIGEST,
        require=(parse_platform("linux/amd64"), parse_platform("linux/arm64")),
    )
    with Inspector() as inspector:
        outcome = inspect_one(inspector, f"oci:{EXAMPLE}:latest", request)
    index_json = json.loads((EXAMPLE / "index.json").read_text())
    assert outcome.error is None
    assert outcome.digest == index_json["manifests"][0]["digest"]


def test_layout_archive(tmp_path: Path) -> None:
    archive = tmp_path / "multiarch.tar"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make-example-layout"), "--archive", str(archive)],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    request = InspectRequest(mode=OutputMode.JSON, platform=parse_platform("linux/arm64"))
    with Inspector() as inspector:
        outcome = inspect_one(inspector, f"oci-archive:{archive}", request)
    assert outcome.error is None, outcome.error
    document = json.loads(render(outcome, OutputMode.JSON))
    assert document["Platforms"] == [{"architecture": "arm64", "os": "linux", "variant": "v8"}]


def test_readme_library_example_runs() -> None:
    """The README's "Library use" example runs from the checkout and says what it says."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Library use") :]
    code = section[section.index("```python\n") + 10 :]
    code = code[: code.index("```")]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    digest = json.loads((EXAMPLE / "index.json").read_text())["manifests"][0]["digest"]
    assert proc.stdout.splitlines() == [
        f"{digest} ['linux/amd64', 'linux/arm64/v8', 'linux/arm/v7', 'unknown/unknown']",
        f"{digest}  oci:examples/multiarch",
        f"{digest}  oci:examples/multiarch:latest",
        "exit 0",
    ]


# -- image configs, templates, tags, referrers and diff --------------------------------------


def test_image_config_and_template(registry_plain: Registry, corpus_plain: Corpus) -> None:
    """--image-config, extended-json-v2 and a template through the public API: a template
    that reads .Images fetches the image configs by itself."""
    image = corpus_plain["buildkit"]
    ref = _ref(registry_plain, image)
    images = [child.digest for child in image.children[:2]]  # the attestation is skipped
    v2 = InspectRequest(mode=OutputMode.EXTENDED_JSON_V2, image_config=True)
    template = imginspect.Template(
        "{{range .Images}}{{.Digest}} {{.Platform.Architecture}}\n{{end}}"
    )
    templated = InspectRequest(mode=OutputMode.TEMPLATE, template=template)
    with Inspector() as inspector:
        outcome = inspect_one(inspector, ref, v2)
        executed = inspect_one(inspector, ref, templated)
        attested = inspect_one(inspector, ref, InspectRequest(image_config=True, attestations=True))
    assert outcome.error is None and outcome.result is not None
    assert outcome.result.images is not None
    assert all(isinstance(d, imginspect.ImageDetails) for d in outcome.result.images)
    assert all(isinstance(d.config, imginspect.ImageConfig) for d in outcome.result.images)
    document = json.loads(render(outcome, OutputMode.EXTENDED_JSON_V2))
    assert document["schemaVersion"] == 2
    assert [i["digest"] for i in document["images"]] == images
    text = render(executed, OutputMode.TEMPLATE, template=template).decode()
    assert text == f"{images[0]} amd64\n{images[1]} arm64\n"
    assert attested.result is not None and attested.result.images is not None
    assert [d.digest for d in attested.result.images] == [c.digest for c in image.children]
    # the configuration decoder on its own, from the bytes that were pushed
    config = image.children[0].config
    assert config is not None
    decoded = imginspect.decode_image_config(config.data)
    assert decoded == outcome.result.images[0].config
    with pytest.raises(imginspect.TemplateError):
        imginspect.Template("{{.Name")


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": OutputMode.JSON, "image_config": True},
        {"mode": OutputMode.EXTENDED_JSON, "image_config": True},
        {"mode": OutputMode.DIGEST, "image_config": True},
        {"attestations": True},
        {"mode": OutputMode.TEMPLATE},
        {"template": "not with the table"},
    ],
)
def test_image_config_requests_that_cannot_work(fields: dict[str, object]) -> None:
    if fields.get("template") == "not with the table":
        fields = {"template": imginspect.Template("{{.Name}}")}
    with pytest.raises(imginspect.UsageError):
        InspectRequest(**fields)  # type: ignore[arg-type]


def test_image_configs_are_read_within_the_reference_deadline(
    registry_plain: Registry, corpus_plain: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One deadline per reference: the image configs get what the inspection left of it,
    not a fresh one (time left, read at the end of inspect and at the start of
    image_details, never goes up)."""
    from imginspect.transport import remaining_time

    left: dict[str, float | None] = {}
    original_inspect, original_details = Inspector.inspect, Inspector.image_details

    def inspect(self: Inspector, *args: object, **kwargs: object) -> imginspect.InspectResult:
        result = original_inspect(self, *args, **kwargs)  # type: ignore[arg-type]
        left["inspect"] = remaining_time()
        return result

    def image_details(self: Inspector, *args: object, **kwargs: object) -> imginspect.InspectResult:
        left["details"] = remaining_time()
        return original_details(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Inspector, "inspect", inspect)
    monkeypatch.setattr(Inspector, "image_details", image_details)
    request = InspectRequest(mode=OutputMode.EXTENDED_JSON_V2, image_config=True, timeout=600)
    with Inspector() as inspector:
        outcome = inspect_one(inspector, _ref(registry_plain, corpus_plain["buildkit"]), request)
    assert outcome.error is None
    after_inspect, at_details = left["inspect"], left["details"]
    assert after_inspect is not None and at_details is not None
    assert at_details <= after_inspect < 600


def test_tags_referrers_and_diff(registry_plain: Registry, corpus_plain: Corpus) -> None:
    """`imginspect tags`, `referrers` and `diff` through the public API alone."""
    index, other = corpus_plain["buildkit"], corpus_plain["oci-index"]
    target = imginspect.parse_target(_ref(registry_plain, index))
    with Inspector() as inspector:
        source = inspector.source_for(target)
        listed = list(imginspect.iter_tags(source, target.path))
        keep = imginspect.tag_filter(glob=index.tag)
        resolved = list(imginspect.tag_digests(source, target.path, filter(keep, listed)))
        report = imginspect.supply_chain(inspector, target)
        results = [
            inspector.inspect(imginspect.parse_target(_ref(registry_plain, i)))
            for i in (index, other)
        ]
        same = imginspect.compare(results[0], results[0])
        changed = imginspect.compare(
            results[0],
            results[1],
            a_images=inspector.image_children(results[0]),
            b_images=inspector.image_children(results[1]),
        )
    assert index.tag in listed
    assert [(t.tag, t.digest) for t in resolved] == [(index.tag, index.digest)]
    assert isinstance(report, imginspect.SupplyChainReport)
    assert report.result.descriptor.digest == index.digest
    assert {s.label for s in report.images()} == {"linux/amd64", "linux/arm64"}
    verdict = imginspect.check_evidence(report, ("signature",), given="x")
    assert isinstance(verdict, imginspect.MissingEvidenceError) and verdict.exit_code == 7
    assert not same.differ and changed.differ
    assert isinstance(same, imginspect.ImageDiff)
    assert imginspect.ImagesDifferError("x").exit_code == 9
