"""What imginspect prints from what a registry controls (annotations, labels, env, platform
strings, media types, config fields, history), and hostile templates.

Everything a registry sends is untrusted: the table, ``referrers`` and ``diff`` escape what
does not print (an ESC or C1 sequence, CR, BEL, a bidi override, a newline) visibly and print
rich markup literally; the JSON modes keep the exact characters (JSON escapes the C0 ones); a
lone surrogate (a JSON ``"\\ud800"``, which Go decodes as U+FFFD) fails no mode. Templates are
bounded in time and memory, and their errors point at a position."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from imginspect import template as template_module
from imginspect.digest import compute_digest
from imginspect.jsonenc import encode_inspect
from imginspect.manifest import Descriptor, decode_document
from imginspect.reference import parse_reference
from imginspect.result import InspectResult
from imginspect.template import MAX_NESTING, Struct, TemplateError, render_template
from tests.support.badserver import BadServer, Reply, Scenario
from tests.support.cli import run_imginspect
from tests.support.corpus import OCI_CONFIG, PushedBlob, PushedImage, Pusher, _Builder, dumps
from tests.support.registry import Registry

#: Terminal controls and what hides or reorders text: ESC sequences (clear the screen, set
#: the window title through OSC, a hyperlink), BEL, CR, a C1 CSI (U+009B), a bidi override
#: (U+202E), a newline that would forge a table row; and rich markup, to be printed literally.
HOSTILE = (
    "A\x1b[2J\x1b]0;owned\x07\rB\x9b31m\u202eC\n"
    "[bold red]markup[/] [link=https://example.com]x[/link]"
)
#: What must not reach the terminal raw from HOSTILE.
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e")
#: Visible forms of them.
ESCAPED = ("\\x1b[2J", "\\x1b]0;owned\\x07", "\\r", "\\x9b31m", "\\u202e", "\\n")


def _config(labels: dict[str, str], text: str) -> bytes:
    document = {
        "architecture": "amd64",
        "os": "linux",
        "author": text,
        "config": {
            "User": text,
            "Env": [f"X={text}"],
            "Entrypoint": [text],
            "Cmd": ["sh", "-c", text],
            "WorkingDir": text,
            "Labels": labels,
            "StopSignal": text,
        },
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created_by": text, "comment": text, "empty_layer": True}],
    }
    return dumps(document, "compact")


@pytest.fixture(scope="module")
def hostile(registry_plain: Registry) -> Iterator[dict[str, PushedImage]]:
    """An image whose config and manifest are full of HOSTILE, an index whose platform
    strings are, a twin of that index (for diff), and an image and an index with lone
    surrogates in keys, values and platform strings."""
    b = _Builder("review-output")
    repo = b.repo("hostile")
    layer, _ = b.layer("review-output/layer", "application/vnd.oci.image.layer.v1.tar+gzip", 50)
    image = b.manifest(
        "image",
        repo,
        config=PushedBlob.of(OCI_CONFIG, _config({HOSTILE: HOSTILE}, HOSTILE)),
        layers=[layer],
        annotations={HOSTILE: HOSTILE},
        layer_annotations=[{"k": HOSTILE}],
    )
    other = b.manifest(
        "other",
        repo,
        config=PushedBlob.of(OCI_CONFIG, _config({"l": "v"}, "x")),
        layers=[layer],
    )
    platform = {"architecture": "amd64" + HOSTILE, "os": "linux", "os.version": HOSTILE}
    index = b.index("index", repo, [(image, platform, {"a": HOSTILE})])
    twin = b.index("twin", repo, [(other, platform, None)])
    surrogate = b.manifest(
        "surrogate",
        repo,
        config=PushedBlob.of(OCI_CONFIG, _config({"\ud800": "\udfff"}, "\ud83d")),
        layers=[layer],
        annotations={"\ud800k": "v\udc00"},
    )
    surrogate_index = b.index(
        "surrogate-index",
        repo,
        [(surrogate, {"architecture": "amd64\ud800", "os": "linux"}, {"\udc00": "\ud800"})],
    )
    images = {
        "image": image,
        "index": index,
        "twin": twin,
        "surrogate": surrogate,
        "surrogate-index": surrogate_index,
    }
    for tag, pushed in images.items():
        pushed.tag, pushed.tags = tag, [tag]
    with registry_plain.client() as client:
        pusher = Pusher(client)
        for pushed in images.values():
            pusher.push(pushed)
    yield images


def _ref(registry: Registry, image: PushedImage) -> str:
    return registry.ref(image.repo, image.tag)


def _assert_escaped(text: str) -> None:
    for raw in RAW_CONTROLS:
        assert raw not in text, f"{raw!r} reached the output raw"
    for escaped in ESCAPED:
        assert escaped in text
    # rich markup in a value is text, printed as such
    assert "[bold red]markup[/] [link=https://example.com]x[/link]" in text


# ------------------------------------------------------------------ terminal escapes


@pytest.mark.parametrize("key", ["image", "index"])
def test_the_table_escapes_what_the_registry_sends(
    registry_plain: Registry, hostile: dict[str, PushedImage], key: str
) -> None:
    run = run_imginspect("--image-config", "--no-trunc", _ref(registry_plain, hostile[key]))
    assert run.code == 0, run.stderr
    _assert_escaped(run.text)
    # a newline in a value forges no line: every line of the table is one of ours
    for line in run.text.splitlines():
        assert not line.startswith("[bold red]"), line


def test_referrers_and_diff_tables_escape_platform_strings(
    registry_plain: Registry, hostile: dict[str, PushedImage]
) -> None:
    index, twin = (_ref(registry_plain, hostile[k]) for k in ("index", "twin"))
    referrers = run_imginspect("referrers", index)
    assert referrers.code == 0, referrers.stderr
    diff = run_imginspect("diff", "--image-config", index, twin)
    assert diff.code == 9, diff.stderr
    for text in (referrers.text, diff.text):
        for raw in RAW_CONTROLS:
            assert raw not in text, f"{raw!r} reached the output raw"
        assert "\\u202e" in text and "\\x9b31m" in text


def test_the_json_modes_keep_the_exact_characters(
    registry_plain: Registry, hostile: dict[str, PushedImage]
) -> None:
    ref = _ref(registry_plain, hostile["index"])
    docker = run_imginspect("--json", ref)
    assert docker.code == 0, docker.stderr
    assert json.loads(docker.stdout)["Platforms"][0]["architecture"] == "amd64" + HOSTILE
    # Go escapes the C0 controls (and <, >, &), never as a terminal escape would
    assert b"\\u001b[2J" in docker.stdout and b"\x1b" not in docker.stdout
    extended = run_imginspect("--format", "extended-json", ref)
    assert extended.code == 0, extended.stderr
    assert json.loads(extended.stdout)["children"][0]["annotations"] == {"a": HOSTILE}


# ------------------------------------------------------------------ lone surrogates

SURROGATE_RUNS = [
    ("surrogate", ()),
    ("surrogate", ("--image-config",)),
    ("surrogate-index", ()),
    ("surrogate-index", ("--image-config",)),
    ("surrogate", ("--format", "extended-json")),
    ("surrogate-index", ("--format", "extended-json")),
    ("surrogate", ("--format", "extended-json-v2", "--image-config")),
    ("surrogate", ("--format", "{{json .Annotations}} {{.Config.Labels}} {{.Image.Author}}")),
    ("surrogate-index", ("--format", "{{range .Manifests}}{{.Platform.Architecture}}{{end}}")),
    ("surrogate", ("--json",)),
    ("surrogate-index", ("--json",)),
]


@pytest.mark.parametrize(
    ("key", "args"), SURROGATE_RUNS, ids=[" ".join(r[1]) or r[0] for r in SURROGATE_RUNS]
)
def test_a_lone_surrogate_fails_no_mode(
    registry_plain: Registry, hostile: dict[str, PushedImage], key: str, args: tuple[str, ...]
) -> None:
    """A registry's JSON may hold ``"\\ud800"``: valid JSON, which Go decodes as U+FFFD.
    Writing it raised UnicodeEncodeError in the table, the extended JSON and templates."""
    run = run_imginspect(*args, _ref(registry_plain, hostile[key]))
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    text = run.stdout.decode("utf-8")  # valid UTF-8
    if args == ("--image-config",) or (key, args) == ("surrogate-index", ()):
        assert "\\ud800" in text  # the table shows it, escaped
    elif args:
        assert "\ufffd" in text  # as Go prints the value it decoded


def test_referrers_and_diff_print_a_lone_surrogate(
    registry_plain: Registry, hostile: dict[str, PushedImage]
) -> None:
    ref = _ref(registry_plain, hostile["surrogate-index"])
    referrers = run_imginspect("referrers", ref)
    assert referrers.code == 0, referrers.stderr
    assert "amd64\\ud800" in referrers.text
    diff = run_imginspect("diff", ref, _ref(registry_plain, hostile["index"]))
    assert diff.code == 9, diff.stderr
    assert "amd64\\ud800" in diff.text


# ------------------------------------------------------------------ error messages


def test_a_registry_error_message_reaches_stderr_escaped() -> None:
    body = json.dumps({"errors": [{"code": "UNKNOWN", "message": HOSTILE}]}).encode()
    reply = Reply(500, headers=(("Content-Type", "application/json"),), body=body)
    with BadServer() as server:
        server.add(Scenario("hostile", manifest=reply))
        run = run_imginspect(server.ref("hostile"))
    assert run.code != 0
    assert "Traceback" not in run.stderr
    for raw in RAW_CONTROLS:
        assert raw not in run.stderr, f"{raw!r} reached stderr raw"


# ------------------------------------------------------------------ Go-exact JSON


def _index_result(annotations: dict[str, str]) -> InspectResult:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
            "annotations": annotations,
        }
    ).encode()
    document = decode_document(raw)
    return InspectResult(
        reference=parse_reference("localhost:5000/x:y"),
        descriptor=Descriptor(
            media_type=document.media_type,
            digest=compute_digest(raw),
            size=len(raw),
            annotations=document.annotations,
        ),
        document=document,
        raw=raw,
    )


def test_map_keys_with_a_lone_surrogate_as_go_decodes_them() -> None:
    # Go's decoder makes "\ud800" U+FFFD (EF BF BD): it sorts after U+E000 (EE 80 80) ...
    encoded = encode_inspect(_index_result({"\ud800": "a", "\ue000": "b"}))
    assert b'"annotations":{"\xee\x80\x80":"b","\xef\xbf\xbd":"a"}' in encoded
    # ... and two keys that differ only there are one key in Go's map (the last one wins)
    encoded = encode_inspect(_index_result({chr(0xD800): "a", chr(0xDFFF): "b"}))
    assert b'"annotations":{"\xef\xbf\xbd":"b"}' in encoded


# ------------------------------------------------------------------ hostile templates

DATA = Struct(Name="n", List=list(range(100)), Label='<\x1b\u202e\x9b&>\n"q"\\')


def _template_error(source: str) -> str:
    with pytest.raises(TemplateError) as caught:
        render_template(source, DATA)
    return caught.value.message


def test_deeply_nested_parentheses_are_an_error_not_a_recursion_error() -> None:
    assert render_template("{{" + "(" * MAX_NESTING + "1" + ")" * MAX_NESTING + "}}", DATA) == "1"
    source = "x\n{{" + "(" * 5000 + "1" + ")" * 5000 + "}}"
    column = 3 + MAX_NESTING  # the parenthesis past the limit, on line 2
    assert _template_error(source) == (
        f"template: 2:{column}: parentheses nested deeper than {MAX_NESTING}"
    )


@pytest.mark.parametrize("digits", ["9" * 20, "9" * 5000, "-" + "9" * 19])
def test_a_number_beyond_go_int_is_an_error(digits: str) -> None:
    assert _template_error("{{print " + digits + "}}") == (
        f"template: 1:9: number out of range: {digits[:30]}"
    )


def test_numbers_within_go_int() -> None:
    assert render_template("{{9223372036854775807}} {{-9223372036854775808}} {{007}}", DATA) == (
        "9223372036854775807 -9223372036854775808 7"
    )


@pytest.mark.parametrize(
    ("source", "output"),
    [
        # Go's fmt stops at a width or precision past about 10^7: %!(NOVERB)
        ('{{printf "a%' + "9" * 5000 + 'd b" 1}}', "a%!(NOVERB)%!(EXTRA int=1)"),
        ('{{printf "%99999999d|%d" 1 2}}', "%!(NOVERB)%!(EXTRA int=1, int=2)"),
        ('{{printf "%.99999999s" "x"}}', "%!(NOVERB)%!(EXTRA string=x)"),
        ('{{printf "%10000000d" 1 | len}}', "10000000"),
        ('{{printf "%05d|%-4s|%.1s|%x" 42 "ab" "xyz" 255}}', "00042|ab  |x|ff"),
    ],
)
def test_printf_widths_as_go(source: str, output: str) -> None:
    assert render_template(source, DATA) == output


def test_printf_with_a_verb_that_never_comes_is_linear() -> None:
    # a "%" and many zeros without a verb: the flags and the width both took the zeros, and
    # the regex tried every split (minutes for 64 K); the format is printed as is
    source = '{{printf "%' + "0" * 20_000 + '"}}'
    started = time.monotonic()
    assert render_template(source, DATA) == "%" + "0" * 20_000
    assert time.monotonic() - started < 5


def test_printf_q_quotes_as_go(monkeypatch: pytest.MonkeyPatch) -> None:
    # strconv.Quote: what does not print is escaped (C1 and bidi too), HTML is not
    assert render_template('{{printf "%q" .Label}}', DATA) == (
        '"<\\x1b\\u202e\\u009b&>\\n\\"q\\"\\\\"'
    )


def test_steps_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template_module, "MAX_STEPS", 1000)
    # nested ranges that print nothing; a range over a huge int (never a list)
    for source in ("{{range 50}}{{range 50}}{{end}}{{end}}", "\n {{range 10000000000000}}{{end}}"):
        message = _template_error(source)
        assert message.endswith("executing: more than 1000 steps")
    assert _template_error("\n {{range 10000000000000}}{{end}}").startswith("template: 2:2:")
    assert render_template("{{range 30}}{{range 30}}{{end}}{{end}}", DATA) == ""


def test_values_that_are_never_printed_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # a value doubled without end
    monkeypatch.setattr(template_module, "MAX_FUNCTION_CHARS", 100_000)
    doubling = '{{$x := "ab"}}' + '{{$x := printf "%s%s" $x $x}}' * 40 + "{{len $x}}"
    assert _template_error(doubling).endswith(
        "executing: error calling printf: functions used more than 100000 characters"
    )
    monkeypatch.setattr(template_module, "MAX_OUTPUT_CHARS", 1000)
    # one result past the output's bound, built or not
    assert _template_error('{{$x := printf "%600d%600d" 1 2}}') == (
        "template: 1:9: executing: error calling printf: result longer than 1000 characters"
    )
    assert _template_error('{{$s := printf "%99s" ""}}{{$x := join .List $s}}').endswith(
        "executing: error calling join: result longer than 1000 characters"
    )
