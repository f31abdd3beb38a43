"""The Go text/template subset of --format: table-driven outputs and errors (positions)."""

from __future__ import annotations

from typing import Any

import pytest

from imginspect.errors import ExitCode, UsageError
from imginspect.template import Struct, Template, TemplateError, render_template

DATA = Struct(
    Name="localhost:5000/app:v1",
    Digest="sha256:abc",
    Size=1245,
    Platforms=[
        Struct(Os="linux", Architecture="amd64", Variant="", OsVersion=""),
        Struct(Os="linux", Architecture="arm64", Variant="v8", OsVersion=""),
    ],
    Config=Struct(
        User="",
        Env=["A=1", "B=2"],
        Labels={"org.opencontainers.image.version": "2.4.1", "a<b": "x&y"},
        Entrypoint=None,
    ),
    Empty=[],
)

CASES: list[tuple[str, str]] = [
    ("plain text", "plain text"),
    ("{{.Digest}}", "sha256:abc"),
    ("{{.Size}}", "1245"),
    ("{{ .Name }}", "localhost:5000/app:v1"),
    (
        "{{json .Config.Labels}}",
        '{"a\\u003cb":"x\\u0026y","org.opencontainers.image.version":"2.4.1"}',
    ),
    (
        "{{.Config.Labels | json}}",
        '{"a\\u003cb":"x\\u0026y","org.opencontainers.image.version":"2.4.1"}',
    ),
    ("{{json .Config.Env}}", '["A=1","B=2"]'),
    ("{{json .Config.Entrypoint}}", "null"),
    (
        "{{json .Platforms}}",
        '[{"Os":"linux","Architecture":"amd64","Variant":"","OsVersion":""},'
        '{"Os":"linux","Architecture":"arm64","Variant":"v8","OsVersion":""}]',
    ),
    ("{{range .Platforms}}{{.Os}}/{{.Architecture}} {{end}}", "linux/amd64 linux/arm64 "),
    ('{{index .Config.Labels "org.opencontainers.image.version"}}', "2.4.1"),
    ('{{index .Config.Labels "missing"}}', ""),
    ("{{.Config.Labels.missing}}", "<no value>"),
    (
        "{{index .Platforms 1 | json}}",
        '{"Os":"linux","Architecture":"arm64","Variant":"v8","OsVersion":""}',
    ),
    ("{{(index .Platforms 1).Variant}}", "v8"),
    ("{{if .Config.User}}{{.Config.User}}{{else}}root{{end}}", "root"),
    ("{{if .Empty}}some{{else if .Config.Env}}env{{else}}none{{end}}", "env"),
    ("{{if not .Empty}}empty{{end}}", "empty"),
    ('{{join .Config.Env ", "}}', "A=1, B=2"),
    ('{{.Config.Env | join ","}}', "A=1,B=2"),
    ("{{println .Digest}}", "sha256:abc\n"),
    ("{{println}}", "\n"),
    (
        '{{printf "%s has %d platforms" .Name (len .Platforms)}}',
        "localhost:5000/app:v1 has 2 platforms",
    ),
    ('{{printf "%-8s|" "ab"}}', "ab      |"),
    ('{{printf "%q" .Digest}}', '"sha256:abc"'),
    (
        "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
        "a<b=x&y;org.opencontainers.image.version=2.4.1;",
    ),
    (
        "{{range $i, $p := .Platforms}}{{$i}}:{{$p.Architecture}}@{{$.Digest}} {{end}}",
        "0:amd64@sha256:abc 1:arm64@sha256:abc ",
    ),
    ("{{range .Empty}}x{{else}}nothing{{end}}", "nothing"),
    ("{{with .Config}}{{len .Env}}{{end}}", "2"),
    ("{{$d := .Digest}}{{$d}}", "sha256:abc"),
    ("a\n  {{- .Size -}}  \nb", "a1245b"),
    ("{{/* a comment */}}x", "x"),
    ("{{- /* trimmed */ -}}  x", "x"),
    ('{{"quoted\\tstring"}}', "quoted\tstring"),
    ("{{`raw {{string}}`}}", "raw {{string}}"),
    ("{{42}} {{true}} {{nil}}", "42 true <nil>"),
    ("{{if eq .Size 1245}}yes{{end}}", "yes"),
    ('{{if ne (index .Platforms 0).Os "windows"}}not windows{{end}}', "not windows"),
    ('{{if and .Config.Env .Empty}}a{{else}}b{{end}}{{or .Empty "fallback"}}', "bfallback"),
    ("{{upper .Config.Labels.missing}} {{lower .Name}}", "<NO VALUE> localhost:5000/app:v1"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Labels}}", "map[a<b:x&y org.opencontainers.image.version:2.4.1]"),
]


@pytest.mark.parametrize(("source", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_renders(source: str, expected: str) -> None:
    assert render_template(source, DATA) == expected


ERRORS: list[tuple[str, str]] = [
    ("{{foo .Name}}", 'template: 1:3: function "foo" not defined'),
    ("abc {{.Name | nope}}", 'template: 1:15: function "nope" not defined'),
    ("line1\nline2 {{.Nope}}", "template: 2:9: executing: can't evaluate field Nope in struct"),
    ("{{.Name.Sub}}", "template: 1:3: executing: can't evaluate field Sub in type string"),
    ("{{if .Name}}open", "template: 1:1: unexpected EOF: {{if}} without {{end}}"),
    ("{{range .Platforms}}", "template: 1:1: unexpected EOF: {{range}} without {{end}}"),
    ("x{{end}}", "template: 1:2: unexpected {{end}}"),
    ("{{else}}", "template: 1:1: unexpected {{else}}"),
    ("{{.Name", "template: 1:1: unclosed action"),
    ("{{}}", "template: 1:1: missing value for command"),
    ("{{$x}}", 'template: 1:3: undefined variable "$x"'),
    ("{{.Name .Digest}}", "template: 1:9: can't give argument to non-function .Name"),
    (
        "{{index .Platforms 5}}",
        "template: 1:3: executing: error calling index: index out of range: 5",
    ),
    (
        '{{join .Size ","}}',
        "template: 1:3: executing: error calling join: join takes a list and a separator",
    ),
    (
        "{{json}}",
        "template: 1:3: executing: error calling json: wrong number of args: want 1, got 0",
    ),
    (
        "{{range .Name}}{{end}}",
        "template: 1:1: executing: range can't iterate over localhost:5000/app:v1",
    ),
    ("{{.Name | .Digest}}", "template: 1:11: executing: non-function in a pipeline after |"),
    ("{{/* open", "template: 1:1: unclosed comment"),
    ("{{.Name ; }}", "template: 1:9: unexpected ';' in action"),
    ("{{(.Name}}", "template: 1:1: unclosed left paren"),
    (
        '{{if eq .Size "x"}}{{end}}',
        "template: 1:6: executing: error calling eq: "
        "incompatible types for comparison: int, string",
    ),
    ("{{__import__}}", 'template: 1:3: function "__import__" not defined'),
]


@pytest.mark.parametrize(("source", "message"), ERRORS, ids=[e[0][:40] for e in ERRORS])
def test_errors_point_at_the_position(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_template(source, DATA)
    assert caught.value.message == message
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_code == ExitCode.USAGE


def test_no_python_attribute_is_reachable() -> None:
    # fields are dictionary keys of the data model only, never attributes of Python objects
    for source in ("{{.__class__}}", "{{.Name.__class__}}", "{{.Config.Env.append}}"):
        with pytest.raises(TemplateError):
            render_template(source, DATA)


def test_uses_names_the_top_level_fields() -> None:
    template = Template('{{range .Images}}{{.Config.User}}{{end}}{{index $.Config "x"}}{{.Name}}')
    assert template.uses() == {"Images", "Config", "Name"}


def test_output_is_bounded() -> None:
    data: dict[str, Any] = Struct(Items=list(range(2000)), Big="x" * 10_000)
    with pytest.raises(TemplateError, match="output longer than"):
        render_template("{{range .Items}}{{$.Big}}{{end}}", data)
