"""--image-config against a real registry: every config, layer list and history of the config
corpus (tests/support/corpus.py, CONFIG_CORPUS_KEYS) decoded as the bytes pushed say (an
independent reading of those bytes with json, not imginspect's decoder), the requests it
takes cold and warm (the registry's access log), OCI layouts, and the CLI outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imginspect.cache import Cache
from imginspect.imageconfig import NO_HISTORY, NO_LAYER, ImageDetails
from imginspect.inspector import Inspector
from imginspect.result import InspectResult
from imginspect.target import parse_target
from tests.support.corpus import (
    CONFIG_CORPUS_KEYS,
    OCI_LAYER_NONDISTRIBUTABLE,
    OCI_LAYER_ZSTD,
    PushedImage,
    push_corpus,
)
from tests.support.registry import Registry

REPO = Path(__file__).resolve().parent.parent
PREFIX = "configs"
Corpus = dict[str, PushedImage]


@pytest.fixture(scope="module")
def configs(registry_plain: Registry) -> Corpus:
    return push_corpus(registry_plain, prefix=PREFIX, keys=CONFIG_CORPUS_KEYS)


def _details(registry: Registry, image: PushedImage, **kwargs: Any) -> InspectResult:
    with Inspector() as inspector:
        result = inspector.inspect(parse_target(registry.ref(image.repo, image.tag)))
        return inspector.image_details(result, **kwargs)


def _images_of(top: PushedImage, *, attestations: bool) -> list[PushedImage]:
    """The pushed image manifests --image-config should report, in index order."""
    if not top.is_index:
        return [top]
    out = []
    for entry, child in zip(top.document["manifests"], top.children, strict=True):
        annotations = entry.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            if attestations:
                out.append(child)
            continue
        out.append(child)
    return out


def _expected_steps(config: dict[str, Any], layers: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(layer digest or None, created_by or None, unmatched) per row, computed directly."""
    history = config.get("history") or []
    rows: list[tuple[Any, ...]] = []
    producing = [h for h in history if not h.get("empty_layer")]
    layer_for = {id(h): n for n, h in enumerate(producing)}
    for entry in history:
        if entry.get("empty_layer"):
            rows.append((None, entry.get("created_by"), None))
            continue
        n = layer_for[id(entry)]
        if n < len(layers):
            rows.append((layers[n]["digest"], entry.get("created_by"), None))
        else:
            rows.append((None, entry.get("created_by"), NO_LAYER))
    for layer in layers[len(producing) :]:
        rows.append((layer["digest"], None, NO_HISTORY))
    return rows


def _check_against_bytes(details: ImageDetails, pushed: PushedImage) -> None:
    assert details.digest == pushed.digest
    manifest = json.loads(pushed.raw)
    layers = manifest["layers"]
    assert [(layer.media_type, layer.digest, layer.size) for layer in details.manifest.layers] == [
        (layer["mediaType"], layer["digest"], layer["size"]) for layer in layers
    ]
    assert [dict(layer.annotations or {}) for layer in details.manifest.layers] == [
        layer.get("annotations", {}) for layer in layers
    ]
    assert details.compressed_size == pushed.compressed_size
    assert pushed.config is not None
    if pushed.config.media_type not in (
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    ):
        assert details.kind == "artifact" and details.config is None
        assert [s.layer for s in details.steps] == list(details.manifest.layers)
        return
    body = json.loads(pushed.config.data)
    run = body.get("config") or {}
    config = details.config
    assert config is not None and details.kind == "image"
    assert config.created == body.get("created")
    assert config.author == body.get("author")
    assert config.platform is not None
    assert config.platform.os == body["os"]
    assert config.platform.architecture == body["architecture"]
    assert config.platform.variant == body.get("variant", "")
    assert config.platform.os_version == body.get("os.version", "")
    assert list(config.platform.os_features) == body.get("os.features", [])
    assert config.user == (run.get("User") or None)
    assert config.working_dir == (run.get("WorkingDir") or None)
    assert config.entrypoint == (tuple(run["Entrypoint"]) if "Entrypoint" in run else None)
    assert config.cmd == (tuple(run["Cmd"]) if "Cmd" in run else None)
    assert list(config.env) == run.get("Env", [])
    assert list(config.exposed_ports) == sorted(run.get("ExposedPorts", {}))
    assert list(config.volumes) == sorted(run.get("Volumes", {}))
    assert (dict(config.labels) if config.labels is not None else None) == run.get("Labels")
    assert config.stop_signal == run.get("StopSignal")
    assert config.shell == (tuple(run["Shell"]) if "Shell" in run else None)
    health = run.get("Healthcheck")
    if health is None:
        assert config.healthcheck is None
    else:
        assert config.healthcheck is not None
        assert list(config.healthcheck.test) == health["Test"]
        assert config.healthcheck.interval == health.get("Interval")
        assert config.healthcheck.timeout == health.get("Timeout")
        assert config.healthcheck.start_period == health.get("StartPeriod")
        assert config.healthcheck.retries == health.get("Retries")
    assert list(config.diff_ids) == body["rootfs"]["diff_ids"]
    assert [(h.created, h.created_by, h.comment, h.empty_layer) for h in config.history] == [
        (h.get("created"), h.get("created_by"), h.get("comment"), h.get("empty_layer", False))
        for h in body.get("history", [])
    ]
    steps = [
        (
            s.layer.digest if s.layer else None,
            s.history.created_by if s.history else None,
            s.unmatched,
        )
        for s in details.steps
    ]
    assert steps == _expected_steps(body, layers)
    for step in details.steps:
        if step.layer is not None:
            assert step.index is not None
            assert step.diff_id == body["rootfs"]["diff_ids"][step.index]


@pytest.mark.parametrize("key", CONFIG_CORPUS_KEYS)
def test_image_details_are_what_was_pushed(
    registry_plain: Registry, configs: Corpus, key: str
) -> None:
    top = configs[key]
    result = _details(registry_plain, top)
    assert result.images is not None
    expected = _images_of(top, attestations=False)
    assert [d.digest for d in result.images] == [i.digest for i in expected]
    for details, pushed in zip(result.images, expected, strict=True):
        _check_against_bytes(details, pushed)


def test_attestations_are_skipped_unless_asked(registry_plain: Registry, configs: Corpus) -> None:
    top = configs["app"]
    skipping = _details(registry_plain, top)
    assert [c.kind.value for c in skipping.images_skipped] == ["attestation"]
    assert skipping.images is not None and len(skipping.images) == 2
    including = _details(registry_plain, top, attestations=True)
    assert including.images_skipped == ()
    assert including.images is not None
    assert [d.digest for d in including.images] == [c.digest for c in top.children]
    attestation = including.images[2]
    _check_against_bytes(attestation, top.children[2])
    assert attestation.config is not None and attestation.config.history == ()
    assert [s.unmatched for s in attestation.steps] == [NO_HISTORY]


def test_layer_media_types_are_shown_as_they_are(registry_plain: Registry, configs: Corpus) -> None:
    result = _details(registry_plain, configs["layers-mixed"])
    assert result.images is not None
    types = [s.layer.media_type for s in result.images[0].steps if s.layer]
    assert types[1:] == [OCI_LAYER_ZSTD, OCI_LAYER_NONDISTRIBUTABLE]
    assert [s.unmatched for s in result.images[0].steps] == [None, NO_HISTORY, NO_HISTORY]


def test_history_longer_than_layers_is_marked(registry_plain: Registry, configs: Corpus) -> None:
    result = _details(registry_plain, configs["app-docker"])
    assert result.images is not None
    steps = result.images[0].steps
    assert [s.unmatched for s in steps] == [None, None, None, NO_LAYER]
    assert steps[1].layer is None and steps[1].history is not None
    assert steps[1].history.empty_layer


def _counted(registry: Registry, mark: int) -> list[tuple[str, str]]:
    return [(r.method, r.path.rsplit("/", 2)[-2]) for r in registry.requests_since(mark)]


def test_cold_is_one_request_per_manifest_and_config_and_warm_is_one_head(
    registry_plain: Registry, corpus_plain: Corpus, tmp_path: Path
) -> None:
    top = corpus_plain["oci-index"]  # 6 platforms
    target = parse_target(registry_plain.ref(top.repo, top.tag))
    for round_number in range(2):
        mark = registry_plain.mark()
        with Inspector(cache=Cache(tmp_path)) as inspector:
            result = inspector.image_details(inspector.inspect(target))
        assert result.images is not None and len(result.images) == 6
        requests = _counted(registry_plain, mark)
        if round_number == 0:
            assert sorted(requests) == sorted(
                [("GET", "manifests")] * 7 + [("GET", "blobs")] * 6
            ), requests
        else:
            assert requests == [("HEAD", "manifests")]


def test_concurrency_one_gives_the_same_answer(registry_plain: Registry, configs: Corpus) -> None:
    top = configs["windows-app"]
    one = _details(registry_plain, top, concurrency=1)
    many = _details(registry_plain, top, concurrency=8)
    assert one.images == many.images


def test_oci_layout_works_the_same_way() -> None:
    with Inspector() as inspector:
        target = parse_target(f"oci:{REPO / 'examples' / 'multiarch'}")
        result = inspector.image_details(inspector.inspect(target))
    assert result.images is not None
    assert [str(d.platform) for d in result.images] == [
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm/v7",
    ]
    assert [c.kind.value for c in result.images_skipped] == ["attestation"]
    for details in result.images:
        assert details.config is not None
        assert len(details.config.diff_ids) == len(details.manifest.layers)


# -- the CLI ----------------------------------------------------------------------------------

SCHEMA_V2 = json.loads((REPO / "imginspect" / "schemas" / "extended-v2.json").read_text())


@pytest.mark.parametrize("key", CONFIG_CORPUS_KEYS)
def test_extended_json_v2_documents_validate_and_match(
    registry_plain: Registry, configs: Corpus, key: str
) -> None:
    import jsonschema  # type: ignore[import-untyped,unused-ignore]  # no stubs

    from tests.support.cli import run_imginspect

    top = configs[key]
    ref = registry_plain.ref(top.repo, top.tag)
    ours = run_imginspect("--format", "extended-json-v2", "--image-config", ref)
    assert ours.code == 0, ours.stderr
    document = json.loads(ours.stdout)
    jsonschema.validate(document, SCHEMA_V2)
    expected = _images_of(top, attestations=False)
    assert [i["digest"] for i in document["images"]] == [e.digest for e in expected]
    for image, pushed in zip(document["images"], expected, strict=True):
        assert [layer["digest"] for layer in image["layers"]] == [b.digest for b in pushed.layers]
        if image["kind"] == "image":
            assert pushed.config is not None
            body = json.loads(pushed.config.data)
            assert image["labels"] == (body.get("config") or {}).get("Labels")
            assert len(image["history"]) == len(body.get("history", []))
    without = run_imginspect("--format", "extended-json-v2", ref)
    assert without.code == 0
    document = json.loads(without.stdout)
    jsonschema.validate(document, SCHEMA_V2)
    assert document["images"] is None


def test_template_and_table(registry_plain: Registry, configs: Corpus) -> None:
    from tests.support.cli import run_imginspect

    top = configs["app"]
    ref = registry_plain.ref(top.repo, top.tag)
    ours = run_imginspect(
        "--format",
        "{{range .Images}}{{.Platform.Architecture}} {{.Config.User}} "
        '{{index .Config.Labels "org.opencontainers.image.version"}}{{println}}{{end}}',
        ref,
    )
    assert ours.code == 0, ours.stderr
    assert ours.text == "amd64 10001:10001 2.4.1\narm64 10001:10001 2.4.1\n"
    table = run_imginspect("--image-config", "--no-trunc", ref, env={"NO_COLOR": "1"})
    assert table.code == 0, table.stderr
    out = table.text
    assert out.count("Healthcheck") == 2
    assert "interval 30s, timeout 5s, start period 10s, retries 3" in out
    assert "not images, skipped: 1 attestation" in out
    for child in top.children[:2]:
        assert child.digest in out
    bad = run_imginspect("--format", "{{.Config.User", ref)
    assert bad.code == 2 and "template: 1:1: unclosed action" in bad.stderr
    assert bad.stdout == b""
    refused = run_imginspect("--json", "--image-config", ref)
    assert refused.code == 2


def _skopeo_json(args: list[str], ref: str) -> Any:
    import subprocess

    proc = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", *args, f"docker://{ref}"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


@pytest.mark.parametrize("key", [k for k in CONFIG_CORPUS_KEYS if k != "helm"])
def test_configs_and_layers_agree_with_skopeo(
    registry_plain: Registry, configs: Corpus, key: str
) -> None:
    result = _details(registry_plain, configs[key])
    assert result.images is not None
    for details in result.images:
        ref = registry_plain.ref(configs[key].repo, details.digest)
        config = _skopeo_json(["--config"], ref)
        manifest = _skopeo_json(["--raw"], ref)
        assert details.config is not None
        run = config.get("config") or {}
        assert details.config.user == (run.get("User") or None)
        assert list(details.config.env) == (run.get("Env") or [])
        assert details.config.entrypoint == (
            tuple(run["Entrypoint"]) if run.get("Entrypoint") else None
        )
        assert (dict(details.config.labels) if details.config.labels else {}) == (
            run.get("Labels") or {}
        )
        assert list(details.config.diff_ids) == config["rootfs"]["diff_ids"]
        assert len(details.config.history) == len(config.get("history") or [])
        assert [layer.digest for layer in details.manifest.layers] == [
            layer["digest"] for layer in manifest["layers"]
        ]


def test_extended_json_v2_validates_for_the_whole_corpus(
    registry_plain: Registry, corpus_plain: dict[str, PushedImage], configs: Corpus
) -> None:
    """Every document the test corpus produces in v2 (the original corpus and the config
    corpus, with and without image configs, attestations included) validates against the
    schema that ships in the package."""
    import jsonschema

    from tests.support.cli import run_imginspect

    tops = [*corpus_plain.values(), *configs.values()]
    refs = "".join(f"{registry_plain.ref(top.repo, top.tag)}\n" for top in tops)
    checked = 0
    for extra in ((), ("--image-config", "--with-attestations")):
        run = run_imginspect("--format", "extended-json-v2", *extra, "-f", "-", input=refs.encode())
        lines = run.stdout.splitlines()
        assert len(lines) == len(tops), run.stderr
        for line in lines:
            document = json.loads(line)
            assert "error" not in document, document
            jsonschema.validate(document, SCHEMA_V2)
            checked += 1
        assert run.code == 0, run.stderr
    assert checked == 2 * len(tops)
