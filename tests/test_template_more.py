"""The Go template subset, continued: less-used features, every parse and execution error
with its position, the value semantics (printing, truth, JSON) and the limits."""

from __future__ import annotations

from typing import Any

import pytest

from imginspect.template import (
    MAX_NESTING,
    MAX_TEMPLATE_CHARS,
    Struct,
    Template,
    TemplateError,
    go_json,
    go_print,
    render_template,
    truthy,
)

DATA = Struct(
    Name="n",
    Size=3,
    List=[1, 2],
    Map={"b": 2, "a": 1},
    Obj=Struct(X=1, Y="y"),
    Nil=None,
    Empty="",
    On=True,
)

CASES: list[tuple[str, str]] = [
    # dot, structs and maps print as Go's %v
    ("{{.Obj}}", "{1 y}"),
    ("{{.}}", "{n 3 [1 2] map[a:1 b:2] {1 y} <nil>  true}"),
    ("{{.On}} {{false}} {{-3}}", "true false -3"),
    # variables and parentheses
    ("{{$.Obj.X}}", "1"),
    ("{{(.Obj).Y}}", "y"),
    ("{{print (.List)}}", "[1 2]"),
    ("{{(print)}}", ""),
    ("{{len ((index .List 0) | print)}}", "1"),
    ("{{with $o := .Obj}}{{$o.Y}}{{end}}", "y"),
    ("{{$n := .Name}}{{with .Obj}}{{$n}}{{.X}}{{end}}", "n1"),
    # range over an int, nil, a map with key and value
    ("{{range 3}}{{.}}{{end}}", "012"),
    ("{{range .Nil}}a{{else}}b{{end}}", "b"),
    ("{{range $k, $v := .Map}}{{$k}}{{$v}}{{end}}", "a1b2"),
    ("{{range $v := .List}}<{{$v}}>{{end}}", "<1><2>"),
    # with/else, falsy values
    ("{{with .Empty}}a{{else}}b{{end}}", "b"),
    ("{{with .Nil}}x{{end}}", ""),
    ("{{if .Map.missing}}x{{else}}missing{{end}}", "missing"),
    ("{{if .Obj}}struct is true{{end}}", "struct is true"),
    ("{{if 0}}a{{else if false}}b{{else if 2}}c{{end}}", "c"),
    # missing map keys
    ("{{json .Map.zz}}", "null"),
    ("{{.Map.zz}}", "<no value>"),
    # functions
    ('{{index "ab" 1}}', "b"),
    ('{{index .Map "zz"}}', ""),
    ("{{index .List}}", "[1 2]"),
    ('{{join .Nil ","}}', ""),
    ('{{join "," .List}}', "1,2"),
    ('{{print 1 2 "a" 3}}', "1 2a3"),
    ('{{println "a" 1}}', "a 1\n"),
    ('{{printf "%d"}}', "%!d(MISSING)"),
    (
        '{{printf "%5.1s|%x|%X|%o|%t|%05d|%d|%%" "abc" 255 255 8 true 42 "s"}}',
        "    a|ff|FF|10|true|00042|%!d(string=s)|%",
    ),
    ('{{printf "%d" 1 2 "x"}}', "1%!(EXTRA int=2, string=x)"),
    ('{{printf "%v|%4v|" .List "ab"}}', "[1 2]|  ab|"),
    ('{{printf "%t" 1}}', "%!t(int=1)"),
    ('{{printf "%d|%d" .Map nil}}', "%!d(map=map[a:1 b:2])|%!d(nil=<nil>)"),
    ("{{len .Nil}} {{len .Map}} {{len .Name}} {{.List | len}}", "0 2 1 2"),
    ("{{eq 1 2 1}} {{eq .Nil 1}} {{ne 1 2}} {{ne .Name .Name}}", "true false true false"),
    (
        '{{and 1 2}} {{and 1 0 2}} {{or 0 ""}} {{or 0 5}} {{not 0}} {{not .Obj}}',
        "2 0  5 true false",
    ),
    ("{{upper .Name}}{{lower .On}}", "Ntrue"),
    # trimming and comments
    ("{{.Name}} {{- /* c */}} x", "n x"),
    ("{{/* c */ -}}   y", "y"),
    ("{{- .Name}}", "n"),
    ("a\t{{-\t.Size\t-}}\nb", "a3b"),
    ('{{"\\u00e9\\n"}}', "é\n"),
    ("line\n", "line\n"),
]


@pytest.mark.parametrize(("source", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_renders(source: str, expected: str) -> None:
    assert render_template(source, DATA) == expected


ERRORS: list[tuple[str, str]] = [
    # parsing
    ("{{/* c */ x}}", "template: 1:1: comment ends before closing delimiter"),
    ("ab{{/* c */", "template: 1:3: comment ends before closing delimiter"),
    ("{{if}}{{end}}", "template: 1:1: missing value for if"),
    ("{{range}}{{end}}", "template: 1:1: missing value for range"),
    ("{{if 1}}{{else x}}{{end}}", "template: 1:16: unexpected 'x' after else"),
    ("{{with 1}}{{else if 2}}{{end}}", "template: 1:18: unexpected 'if' after else"),
    ("{{if 1}}{{else}}", "template: 1:1: unexpected EOF: {{if}} without {{end}}"),
    ("{{if 1}}a{{else}}b{{else}}c{{end}}", "template: 1:19: expected {{end}}; found {{else}}"),
    ("{{if 1}}{{end x}}", "template: 1:15: unexpected token after end"),
    ("{{if 1}}{{else}}{{end 2}}", "template: 1:23: unexpected token after end"),
    ("{{$ := 1}}", "template: 1:1: cannot assign to $"),
    ("{{range $, $v := .List}}{{end}}", "template: 1:1: cannot assign to $"),
    ("{{$x := }}{{$x}}", "template: 1:1: missing value for command"),
    ("{{.Name)}}", "template: 1:8: unexpected right paren"),
    ("{{.Name | }}", "template: 1:1: missing command in pipeline"),
    ("{{.Name | if}}", "template: 1:11: unexpected 'if' in command"),
    ('{{"\\q"}}', 'template: 1:3: bad string "\\q"'),
    ("{{print json}}", 'template: 1:9: function "json" used as an argument; use (...)'),
    ("{{print ,}}", "template: 1:9: unexpected ',' in operand"),
    ("{{print ()}}", "template: 1:9: missing value in parentheses"),
    ("{{$ .Obj}}", "template: 1:5: can't give argument to non-function $"),
    ("{{with $x := 1}}{{end}}{{$x}}", 'template: 1:26: undefined variable "$x"'),
    ("a\nb\n  {{.X #}}", "template: 3:8: unexpected '#' in action"),
    # execution
    ("{{.Nil.X}}", "template: 1:3: executing: nil pointer evaluating .X"),
    ("{{.Map.z.y}}", "template: 1:3: executing: nil pointer evaluating .y"),
    ("{{.List.X}}", "template: 1:3: executing: can't evaluate field X in type slice"),
    ("{{.On.X}}", "template: 1:3: executing: can't evaluate field X in type bool"),
    ("{{.Size.X}}", "template: 1:3: executing: can't evaluate field X in type int"),
    ("{{.Map.a.X}}", "template: 1:3: executing: can't evaluate field X in type int"),
    ("{{(.Map).b.X}}", "template: 1:3: executing: can't evaluate field X in type int"),
    ("{{range .On}}{{end}}", "template: 1:1: executing: range can't iterate over true"),
    ("{{range .Obj.X}}{{end}}", ""),  # an int ranges 0..n-1: no error, see below
    (
        "{{index .Map 1}}",
        "template: 1:3: executing: error calling index: cannot index map with int",
    ),
    ('{{index .Obj "Z"}}', "template: 1:3: executing: error calling index: no field Z"),
    (
        '{{index .List "x"}}',
        "template: 1:3: executing: error calling index: cannot index slice with string",
    ),
    (
        "{{index .List true}}",
        "template: 1:3: executing: error calling index: cannot index slice with bool",
    ),
    ("{{index .List -1}}", "template: 1:3: executing: error calling index: index out of range: -1"),
    ("{{index .Nil 1}}", "template: 1:3: executing: error calling index: index of untyped nil"),
    (
        "{{index .Size 1}}",
        "template: 1:3: executing: error calling index: can't index item of type int",
    ),
    (
        "{{index}}",
        "template: 1:3: executing: error calling index: wrong number of args: want 1 to 10, got 0",
    ),
    (
        "{{printf}}",
        "template: 1:3: executing: error calling printf: printf needs a format string",
    ),
    (
        "{{printf 1}}",
        "template: 1:3: executing: error calling printf: printf needs a format string",
    ),
    ("{{len 3}}", "template: 1:3: executing: error calling len: len of type int"),
    ("{{len .On}}", "template: 1:3: executing: error calling len: len of type bool"),
    (
        "{{ne 1 .Name}}",
        "template: 1:3: executing: error calling ne: "
        "incompatible types for comparison: int, string",
    ),
    (
        "{{upper 1 2}}",
        "template: 1:3: executing: error calling upper: wrong number of args: want 1, got 2",
    ),
    (
        "{{and}}",
        "template: 1:3: executing: error calling and: wrong number of args: want 1 to 100, got 0",
    ),
    (
        "{{eq 1}}",
        "template: 1:3: executing: error calling eq: wrong number of args: want 2 to 10, got 1",
    ),
    (
        "{{join .List 1}}",
        "template: 1:3: executing: error calling join: join takes a list and a separator",
    ),
]
ERRORS = [e for e in ERRORS if e[1]]


@pytest.mark.parametrize(("source", "message"), ERRORS, ids=[e[0][:40] for e in ERRORS])
def test_errors_point_at_the_position(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_template(source, DATA)
    assert caught.value.message == message
    assert "--format" in (caught.value.hint or "")


def test_too_long_a_template_is_refused() -> None:
    Template("x" * MAX_TEMPLATE_CHARS)  # the limit itself is accepted
    with pytest.raises(TemplateError) as caught:
        Template("x" * (MAX_TEMPLATE_CHARS + 1))
    assert caught.value.message == f"template: longer than {MAX_TEMPLATE_CHARS} characters"


def test_nesting_is_bounded() -> None:
    def nested(depth: int) -> str:
        return "{{if 1}}" * depth + "x" + "{{end}}" * depth

    assert render_template(nested(MAX_NESTING), DATA) == "x"
    with pytest.raises(TemplateError) as caught:
        Template(nested(MAX_NESTING + 1))
    # at the {{if}} that nests too deep (8 characters each), not at 1:1
    column = 8 * MAX_NESTING + 1
    assert caught.value.message == (
        f"template: 1:{column}: control structures nested deeper than {MAX_NESTING}"
    )


def test_else_if_chains_count_towards_nesting() -> None:
    chain = "{{if 0}}" + "{{else if 0}}" * (MAX_NESTING + 1) + "{{end}}"
    with pytest.raises(TemplateError, match="nested deeper than"):
        Template(chain)


def test_variables_are_scoped_to_their_block() -> None:
    # a variable declared in a range is not visible after its {{end}}; one declared before
    # is visible inside, and each iteration sees the current element
    source = "{{$t := .Name}}{{range $i, $v := .List}}{{$t}}{{$i}}{{$v}}{{end}}"
    assert render_template(source, DATA) == "n01n12"
    with pytest.raises(TemplateError, match='undefined variable "\\$v"'):
        Template("{{range $v := .List}}{{end}}{{$v}}")
    with pytest.raises(TemplateError, match='undefined variable "\\$e"'):
        Template("{{if 1}}{{$e := 1}}{{else}}{{$e}}{{end}}")


def test_uses_includes_parenthesised_and_branch_fields() -> None:
    template = Template(
        "t{{if .A}}{{(index .B 0).C}}{{else}}{{with .D}}{{.E}}{{end}}{{end}}{{$.F}}{{.}}{{1}}"
    )
    # conservative: a field of a parenthesised value counts too
    assert template.uses() == {"A", "B", "C", "D", "E", "F"}


VALUES: list[tuple[Any, str, bool]] = [
    (None, "<nil>", False),
    (True, "true", True),
    (False, "false", False),
    (0, "0", False),
    (7, "7", True),
    ("", "", False),
    ("s", "s", True),
    ([], "[]", False),
    ((1, "a"), "[1 a]", True),
    ({}, "map[]", False),
    ({"k": [1]}, "map[k:[1]]", True),
    (Struct(), "{}", True),  # a struct is always true, even without fields
    (Struct(A=None, B=Struct(C=1)), "{<nil> {1}}", True),
    (1.5, "1.5", True),  # not produced by the data model: printed as Python does
]


@pytest.mark.parametrize(("value", "printed", "true"), VALUES, ids=[repr(v[0]) for v in VALUES])
def test_go_print_and_truth(value: Any, printed: str, true: bool) -> None:
    assert go_print(value) == printed
    assert truthy(value) is true


def test_go_json_escapes_as_go_and_keeps_struct_order() -> None:
    assert go_json("<a&b>\u2028\u2029") == '"\\u003ca\\u0026b\\u003e\\u2028\\u2029"'
    assert go_json(Struct(Z=1, A=[Struct(Y=None, B=True)])) == '{"Z":1,"A":[{"Y":null,"B":true}]}'
    assert go_json({"z": 1, "a": (2,)}) == '{"a":[2],"z":1}'
    assert go_json("é") == '"é"'


def test_output_bound_counts_text_nodes_too() -> None:
    big = "x" * 60_000
    source = "{{range 300}}" + big + "{{end}}"
    with pytest.raises(TemplateError) as caught:
        render_template(source, DATA)
    assert "executing: output longer than" in caught.value.message
