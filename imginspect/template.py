"""A subset of Go's text/template, as docker, skopeo and buildx users write ``--format``.

Supported (see README, "Image configuration, layers and history", for the data model):

- text, and actions ``{{ ... }}``; ``{{-`` and ``-}}`` trim the whitespace before/after;
  comments ``{{/* ... */}}``;
- ``.``, fields ``.A.B``, variables ``$`` (the data) and ``$name``, ``(pipeline).Field``;
- string (``"..."`` with Go escapes, or a raw ```...```), integer, ``true``/``false``/``nil``
  literals;
- pipelines ``X | f a`` (the value is passed as the last argument);
- ``{{if X}}...{{else if Y}}...{{else}}...{{end}}``, ``{{with X}}...{{else}}...{{end}}``,
  ``{{range X}}...{{else}}...{{end}}`` with ``{{range $v := X}}`` / ``{{range $k, $v := X}}``
  (a map is ranged over in key order);
- functions: ``json``, ``index``, ``join``, ``print``, ``printf``, ``println``, ``len``,
  ``lower``, ``upper``, ``eq``, ``ne``, ``not``, ``and``, ``or``.

Values are Python dicts, lists, strings, ints, bools and None built for the template: a
:class:`Struct` is a model object (a missing field is an error), any other dict a map (a
missing key prints ``<no value>``, as in Go). There is no attribute access, no method
call and no evaluation of Python: only the data given is reachable.

Errors are :class:`~imginspect.errors.UsageError` (exit 2) that point at the position:
``template: 1:12: function "foo" not defined``. An execution is bounded: its output
(:data:`MAX_OUTPUT_CHARS`), its steps (:data:`MAX_STEPS`), what its functions take and make
(:data:`MAX_FUNCTION_CHARS`); control structures and parentheses nest at most
:data:`MAX_NESTING` deep.

Pure module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imginspect._record import Record, record
from imginspect.errors import UsageError

#: Longest template accepted (a --format value).
MAX_TEMPLATE_CHARS = 64 * 1024
#: Longest output one template execution may produce.
MAX_OUTPUT_CHARS = 16 * 1024 * 1024
#: How deeply control structures may nest (and parentheses, each on its own).
MAX_NESTING = 50
#: Most steps (actions walked, range iterations) one execution may take: nested ranges
#: that print nothing were bounded by nothing (``{{range 100000}}{{range 100000}}``).
MAX_STEPS = 10_000_000
#: Most characters the functions of one execution may take and return, all calls together:
#: a value doubled by ``{{$x := printf "%s%s" $x $x}}`` 30 times is 8 GiB, never printed.
MAX_FUNCTION_CHARS = 16 * MAX_OUTPUT_CHARS
#: Go's int: a larger literal is refused at parse time (int() of more than 4300 digits
#: raised a ValueError, a traceback).
_MAX_INT = 2**63 - 1


class Struct(dict[str, Any]):
    """A data-model object: its keys are its fields; naming a missing one is an error."""


class TemplateError(UsageError):
    """A template that does not parse, or fails while executed (exit 2)."""

    code = "template"


# --------------------------------------------------------------------------- lexing


@record
class _Tok(Record):
    """A token of a --format template action, with its position for error messages."""

    kind: str  # field var ident string number lparen rparen pipe assign decl comma dot
    text: str
    pos: int


_ACTION_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<decl>:=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
    """,
    re.X,
)


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    tokens: list[_Tok]
    pos: int


def _position(source: str, pos: int) -> str:
    line = source.count("\n", 0, pos) + 1
    column = pos - (source.rfind("\n", 0, pos) + 1) + 1
    return f"{line}:{column}"


def _split(source: str) -> list[_Text | _Action]:
    """Text and actions, with ``{{-``/``-}}`` whitespace trimmed and comments dropped."""
    items: list[_Text | _Action] = []
    at = 0
    trim_next = False
    while True:
        start = source.find("{{", at)
        text = source[at:] if start < 0 else source[at:start]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if start < 0:
            items.append(_Text(text))
            return items
        inner = start + 2
        if (
            source.startswith("- ", inner)
            or source.startswith("-\t", inner)
            or (source.startswith("-\n", inner))
        ):
            text = text.rstrip(" \t\r\n")
            inner += 1
        items.append(_Text(text))
        comment = _skip_space(source, inner)
        if source.startswith("/*", comment):
            close_comment = source.find("*/", comment + 2)
            if close_comment < 0:
                raise _error(source, start, "unclosed comment")
            end = source.find("}}", close_comment + 2)
            between = source[close_comment + 2 : end if end >= 0 else len(source)]
            if end < 0 or between.strip(" \t\r\n-") != "":
                raise _error(source, start, "comment ends before closing delimiter")
            trim_next = between.strip(" \t\r\n") == "-"
            at = end + 2
            continue
        tokens, end, trim_next = _lex_action(source, inner, start)
        items.append(_Action(tokens, start))
        at = end


def _skip_space(source: str, at: int) -> int:
    while at < len(source) and source[at] in " \t\r\n":
        at += 1
    return at


def _lex_action(source: str, at: int, start: int) -> tuple[list[_Tok], int, bool]:
    tokens: list[_Tok] = []
    while True:
        if at >= len(source):
            raise _error(source, start, "unclosed action")
        if source.startswith("}}", at):
            return tokens, at + 2, False
        if source[at] in " \t\r\n" and source.startswith("-}}", _skip_space(source, at)):
            return tokens, _skip_space(source, at) + 3, True
        match = _ACTION_TOKEN.match(source, at)
        if match is None or match.end() == at:
            raise _error(source, at, f"unexpected {source[at]!r} in action")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Tok(kind, match.group(), at))
        at = match.end()


def _error(source: str, pos: int, message: str) -> TemplateError:
    return TemplateError(
        f"template: {_position(source, pos)}: {message}",
        hint="--format takes a mode name (table, json, extended-json, extended-json-v2) "
        "or a Go template; see the README for the fields",
    )


# --------------------------------------------------------------------------- parsing


@dataclass
class _Node:
    pos: int


@dataclass
class _TextNode(_Node):
    text: str


@dataclass
class _Operand(_Node):
    kind: str  # dot field var literal sub
    value: Any = None
    chain: tuple[str, ...] = ()
    sub: _Pipeline | None = None


@dataclass
class _Command(_Node):
    func: str | None  # a function name, or None: a single operand
    args: list[_Operand] = field(default_factory=list)


@dataclass
class _Pipeline(_Node):
    commands: list[_Command]
    declare: tuple[str, ...] = ()


@dataclass
class _PrintNode(_Node):
    pipeline: _Pipeline


@dataclass
class _Branch(_Node):
    keyword: str  # if with range
    pipeline: _Pipeline
    body: list[_Node]
    otherwise: list[_Node] = field(default_factory=list)


_FUNCTIONS = frozenset(
    {
        "json",
        "index",
        "join",
        "print",
        "printf",
        "println",
        "len",
        "lower",
        "upper",
        "eq",
        "ne",
        "not",
        "and",
        "or",
    }
)
_KEYWORDS = frozenset({"if", "else", "end", "range", "with"})


class Template:
    """A parsed template; :meth:`execute` renders it over a data model."""

    def __init__(self, source: str) -> None:
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateError(f"template: longer than {MAX_TEMPLATE_CHARS} characters")
        self.source = source
        self._items = _split(source)
        self._at = 0
        self._parens = 0
        self.nodes, stop = self._parse_list(depth=0, variables={"$"})
        if stop is not None:
            raise _error(source, stop.pos, f"unexpected {{{{{stop.tokens[0].text}}}}}")

    # -- parsing

    def _err(self, pos: int, message: str) -> TemplateError:
        return _error(self.source, pos, message)

    def _parse_list(self, *, depth: int, variables: set[str]) -> tuple[list[_Node], _Action | None]:
        """Nodes up to an ``else`` or ``end`` action (returned) or the end (None)."""
        nodes: list[_Node] = []
        while self._at < len(self._items):
            item = self._items[self._at]
            self._at += 1
            if isinstance(item, _Text):
                if item.text:
                    nodes.append(_TextNode(0, item.text))
                continue
            if not item.tokens:
                raise self._err(item.pos, "missing value for command")
            first = item.tokens[0]
            if first.kind == "ident" and first.text in ("else", "end"):
                return nodes, item
            if first.kind == "ident" and first.text in ("if", "with", "range"):
                nodes.append(self._parse_branch(item, depth=depth, variables=variables))
                continue
            pipeline = self._parse_pipeline(item.tokens, item.pos, variables, allow_declare=True)
            if not pipeline.commands:  # `{{$x := }}`
                raise self._err(item.pos, "missing value for command")
            variables.update(pipeline.declare)
            nodes.append(_PrintNode(item.pos, pipeline))
        return nodes, None

    def _parse_branch(self, item: _Action, *, depth: int, variables: set[str]) -> _Branch:
        if depth >= MAX_NESTING:  # at the action that nests too deep (it said 1:1)
            raise self._err(item.pos, f"control structures nested deeper than {MAX_NESTING}")
        keyword = item.tokens[0].text
        inner = set(variables)
        pipeline = self._parse_pipeline(
            item.tokens[1:], item.pos, inner, allow_declare=True, ranging=keyword == "range"
        )
        if not pipeline.commands:
            raise self._err(item.pos, f"missing value for {keyword}")
        inner.update(pipeline.declare)
        body, stop = self._parse_list(depth=depth + 1, variables=inner)
        branch = _Branch(item.pos, keyword, pipeline, body)
        if stop is None:
            raise self._err(item.pos, f"unexpected EOF: {{{{{keyword}}}}} without {{{{end}}}}")
        if stop.tokens[0].text == "else":
            rest = stop.tokens[1:]
            if rest and rest[0].kind == "ident" and rest[0].text == "if" and keyword == "if":
                # {{else if X}}: a nested if that shares our {{end}}
                nested_item = _Action(rest, stop.pos)
                branch.otherwise = [
                    self._parse_branch(nested_item, depth=depth + 1, variables=variables)
                ]
                return branch
            if rest:
                raise self._err(rest[0].pos, f"unexpected {rest[0].text!r} after else")
            branch.otherwise, stop = self._parse_list(depth=depth + 1, variables=set(variables))
            if stop is None:
                raise self._err(item.pos, f"unexpected EOF: {{{{{keyword}}}}} without {{{{end}}}}")
            if stop.tokens[0].text != "end":
                raise self._err(stop.pos, "expected {{end}}; found {{else}}")
        if len(stop.tokens) > 1:
            raise self._err(stop.tokens[1].pos, "unexpected token after end")
        return branch

    def _parse_pipeline(
        self,
        tokens: Sequence[_Tok],
        pos: int,
        variables: set[str],
        *,
        allow_declare: bool = False,
        ranging: bool = False,
    ) -> _Pipeline:
        declare: tuple[str, ...] = ()
        toks = list(tokens)
        if allow_declare and toks and toks[0].kind == "var":
            if len(toks) > 1 and toks[1].kind == "decl":
                declare = (toks[0].text,)
                toks = toks[2:]
            elif (
                ranging
                and len(toks) > 3
                and toks[1].kind == "comma"
                and toks[2].kind == "var"
                and toks[3].kind == "decl"
            ):
                declare = (toks[0].text, toks[2].text)
                toks = toks[4:]
        for name in declare:
            if name == "$":
                raise self._err(pos, "cannot assign to $")
        known = variables | set(declare)
        commands: list[_Command] = []
        current: list[_Tok] = []
        depth = 0
        for tok in toks:
            if tok.kind == "lparen":
                depth += 1
            elif tok.kind == "rparen":
                depth -= 1
                if depth < 0:
                    raise self._err(tok.pos, "unexpected right paren")
            if tok.kind == "pipe" and depth == 0:
                commands.append(self._parse_command(current, pos, known))
                current = []
            else:
                current.append(tok)
        if depth:
            raise self._err(pos, "unclosed left paren")
        if current or commands:
            commands.append(self._parse_command(current, pos, known))
        return _Pipeline(pos, commands, declare)

    def _parse_command(self, tokens: list[_Tok], pos: int, variables: set[str]) -> _Command:
        if not tokens:
            raise self._err(pos, "missing command in pipeline")
        first = tokens[0]
        operands: list[_Operand] = []
        at = 0
        func = None
        if first.kind == "ident" and first.text not in ("true", "false", "nil"):
            if first.text in _KEYWORDS:
                raise self._err(first.pos, f"unexpected {first.text!r} in command")
            if first.text not in _FUNCTIONS:
                raise self._err(first.pos, f'function "{first.text}" not defined')
            func = first.text
            at = 1
        while at < len(tokens):
            operand, at = self._parse_operand(tokens, at, variables)
            operands.append(operand)
        if func is None and len(operands) > 1:
            raise self._err(tokens[1].pos, f"can't give argument to non-function {first.text}")
        return _Command(first.pos, func, operands)

    def _parse_operand(
        self, tokens: list[_Tok], at: int, variables: set[str]
    ) -> tuple[_Operand, int]:
        tok = tokens[at]
        if tok.kind == "field":
            return _Operand(tok.pos, "field", chain=tuple(tok.text[1:].split("."))), at + 1
        if tok.kind == "dot":
            return _Operand(tok.pos, "dot"), at + 1
        if tok.kind == "var":
            name = tok.text
            chain: tuple[str, ...] = ()
            if name not in variables:
                raise self._err(tok.pos, f'undefined variable "{name}"')
            if (
                at + 1 < len(tokens)
                and tokens[at + 1].kind == "field"
                and not _spaced(tok, tokens[at + 1])
            ):
                chain = tuple(tokens[at + 1].text[1:].split("."))
                at += 1
            return _Operand(tok.pos, "var", value=name, chain=chain), at + 1
        if tok.kind == "string":
            try:
                value = json.loads(tok.text)
            except ValueError:
                raise self._err(tok.pos, f"bad string {tok.text}") from None
            return _Operand(tok.pos, "literal", value=value), at + 1
        if tok.kind == "raw":
            return _Operand(tok.pos, "literal", value=tok.text[1:-1]), at + 1
        if tok.kind == "number":
            value = _int64(tok.text)
            if value is None:
                raise self._err(tok.pos, f"number out of range: {tok.text[:30]}")
            return _Operand(tok.pos, "literal", value=value), at + 1
        if tok.kind == "ident" and tok.text in ("true", "false", "nil"):
            value = {"true": True, "false": False, "nil": None}[tok.text]
            return _Operand(tok.pos, "literal", value=value), at + 1
        if tok.kind == "ident":
            raise self._err(tok.pos, f'function "{tok.text}" used as an argument; use (...)')
        if tok.kind == "lparen":
            # Each level is three frames of recursion: 5000 levels were a RecursionError.
            self._parens += 1
            if self._parens > MAX_NESTING:
                raise self._err(tok.pos, f"parentheses nested deeper than {MAX_NESTING}")
            depth = 0
            for end in range(at, len(tokens)):
                if tokens[end].kind == "lparen":
                    depth += 1
                elif tokens[end].kind == "rparen":
                    depth -= 1
                    if depth == 0:
                        break
            sub = self._parse_pipeline(tokens[at + 1 : end], tok.pos, variables)
            self._parens -= 1
            if not sub.commands:
                raise self._err(tok.pos, "missing value in parentheses")
            chain = ()
            if (
                end + 1 < len(tokens)
                and tokens[end + 1].kind == "field"
                and not _spaced(tokens[end], tokens[end + 1])
            ):
                chain = tuple(tokens[end + 1].text[1:].split("."))
                end += 1
            return _Operand(tok.pos, "sub", chain=chain, sub=sub), end + 1
        raise self._err(tok.pos, f"unexpected {tok.text!r} in operand")

    # -- execution

    def execute(self, data: Any) -> str:
        """Render the template over ``data``; a failure is a TemplateError at its position."""
        out: list[str] = []
        state = _State(self, out, {"$": data})
        state.walk(self.nodes, data)
        return "".join(out)

    def uses(self) -> frozenset[str]:
        """The names of the top-level fields this template can reach (``.Config``, ``$.X``
        and any field inside a range or with, conservatively): what the data needs."""
        names: set[str] = set()

        def operand(op: _Operand) -> None:
            if op.chain:
                names.add(op.chain[0])
            if op.sub is not None:
                pipeline(op.sub)

        def pipeline(p: _Pipeline) -> None:
            for command in p.commands:
                for arg in command.args:
                    operand(arg)

        def walk(nodes: Sequence[_Node]) -> None:
            for node in nodes:
                if isinstance(node, _PrintNode):
                    pipeline(node.pipeline)
                elif isinstance(node, _Branch):
                    pipeline(node.pipeline)
                    walk(node.body)
                    walk(node.otherwise)

        walk(self.nodes)
        return frozenset(names)


def _int64(text: str) -> int | None:
    """The integer ``text`` (``-?[0-9]+``) if it fits Go's int, else None."""
    negative = text.startswith("-")
    digits = text.lstrip("-").lstrip("0") or "0"
    if len(digits) > 19:
        return None
    value = -int(digits) if negative else int(digits)
    return value if -_MAX_INT - 1 <= value <= _MAX_INT else None


def _spaced(a: _Tok, b: _Tok) -> bool:
    return b.pos != a.pos + len(a.text)


class _State:
    def __init__(self, template: Template, out: list[str], variables: dict[str, Any]) -> None:
        self.template = template
        self.out = out
        self.size = 0
        self.steps = 0
        self.function_chars = 0
        self.vars = [variables]

    def err(self, pos: int, message: str) -> TemplateError:
        return _error(self.template.source, pos, f"executing: {message}")

    def write(self, text: str, pos: int) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT_CHARS:
            raise self.err(pos, f"output longer than {MAX_OUTPUT_CHARS} characters")
        self.out.append(text)

    def step(self, pos: int) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.err(pos, f"more than {MAX_STEPS} steps")

    def charge(self, chars: int, name: str, pos: int) -> None:
        self.function_chars += chars
        if self.function_chars > MAX_FUNCTION_CHARS:
            raise self.err(
                pos,
                f"error calling {name}: functions used more than {MAX_FUNCTION_CHARS} characters",
            )

    def lookup(self, name: str) -> Any:
        for scope in reversed(self.vars):
            if name in scope:
                return scope[name]
        return None  # the parser refused undefined variables

    def walk(self, nodes: Sequence[_Node], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, _TextNode):
                self.write(node.text, node.pos)
                continue
            self.step(node.pos)
            if isinstance(node, _PrintNode):
                value = self.pipeline(node.pipeline, dot)
                if not node.pipeline.declare:
                    self.write(go_print(value), node.pos)
            elif isinstance(node, _Branch):
                self.branch(node, dot)

    def branch(self, node: _Branch, dot: Any) -> None:
        self.vars.append({})
        try:
            if node.keyword == "range":
                self.range(node, dot)
                return
            value = self.pipeline(node.pipeline, dot)
            if truthy(value):
                self.walk(node.body, value if node.keyword == "with" else dot)
            else:
                self.walk(node.otherwise, dot)
        finally:
            self.vars.pop()

    def range(self, node: _Branch, dot: Any) -> None:
        pipeline = node.pipeline
        value = self.run_commands(pipeline, dot)
        items: Iterable[tuple[Any, Any]]
        if value is None:
            items = ()
        elif isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = enumerate(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            # one at a time: a list of {{range 1000000000}}'s pairs was a MemoryError
            items = ((n, n) for n in range(value))
        else:
            raise self.err(node.pos, f"range can't iterate over {go_print(value)}")
        empty = True
        for key, element in items:
            empty = False
            self.step(node.pos)
            if len(pipeline.declare) == 1:
                self.vars[-1][pipeline.declare[0]] = element
            elif len(pipeline.declare) == 2:
                self.vars[-1][pipeline.declare[0]] = key
                self.vars[-1][pipeline.declare[1]] = element
            self.walk(node.body, element)
        if empty:
            self.walk(node.otherwise, dot)

    def pipeline(self, pipeline: _Pipeline, dot: Any) -> Any:
        value = self.run_commands(pipeline, dot)
        for name in pipeline.declare:
            self.vars[-1][name] = value
        return value

    def run_commands(self, pipeline: _Pipeline, dot: Any) -> Any:
        value: Any = None
        for n, command in enumerate(pipeline.commands):
            args = [self.operand(op, dot) for op in command.args]
            if n:
                if command.func is None:
                    raise self.err(command.pos, "non-function in a pipeline after |")
                args.append(value)
            if command.func is None:
                value = args[0] if args else dot
            else:
                value = self.call(command.func, args, command.pos)
        return value

    def operand(self, op: _Operand, dot: Any) -> Any:
        if op.kind == "literal":
            return op.value
        if op.kind == "dot":
            return dot
        if op.kind == "var":
            base = self.lookup(str(op.value))
        elif op.kind == "sub":
            assert op.sub is not None
            base = self.run_commands(op.sub, dot)
        else:
            base = dot
        return self.fields(base, op.chain, op.pos)

    def fields(self, value: Any, chain: Sequence[str], pos: int) -> Any:
        for name in chain:
            if isinstance(value, Struct):
                if name not in value:
                    raise self.err(pos, f"can't evaluate field {name} in {_type_name(value)}")
                value = value[name]
            elif isinstance(value, dict):
                value = value.get(name, _NO_VALUE)
            elif value is None or value is _NO_VALUE:
                raise self.err(pos, f"nil pointer evaluating .{name}")
            else:
                raise self.err(pos, f"can't evaluate field {name} in type {_type_name(value)}")
        return value

    def call(self, name: str, args: list[Any], pos: int) -> Any:
        function = _IMPLEMENTATIONS[name]
        # What the functions take and make is bounded as the output is: a value that is
        # never printed (a variable) could grow without end (doubled by printf, joined).
        self.charge(sum(len(a) for a in args if isinstance(a, str)), name, pos)
        try:
            value = function(args)
        except _CallError as error:
            raise self.err(pos, f"error calling {name}: {error}") from None
        if isinstance(value, str):
            self.charge(len(value), name, pos)
        return value


class _NoValue:
    def __repr__(self) -> str:
        return "<no value>"


#: A missing map key (Go's invalid reflect.Value), printed as ``<no value>``.
_NO_VALUE = _NoValue()


class _CallError(Exception):
    pass


def _type_name(value: Any) -> str:
    if isinstance(value, Struct):
        return "struct"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, (list, tuple)):
        return "slice"
    return "nil"


def truthy(value: Any) -> bool:
    """Go's notion of true: not false, 0, nil, or an empty string, slice or map."""
    if value is None or value is _NO_VALUE or value is False:
        return False
    if isinstance(value, Struct):
        return True
    if isinstance(value, (str, list, tuple, dict, int)):
        return bool(value)
    return True


def go_print(value: Any) -> str:
    """A value as Go's fmt prints it with %v."""
    if value is None:
        return "<nil>"
    if value is _NO_VALUE:
        return "<no value>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Struct):
        return "{" + " ".join(go_print(v) for v in value.values()) + "}"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    return str(value)


def go_json(value: Any) -> str:
    """``json``: compact, HTML characters escaped, as Go's encoding/json (map keys sorted;
    a data-model object keeps its field order)."""
    if value is _NO_VALUE:
        value = None
    text = json.dumps(_json_ready(value), separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def go_quote(text: str) -> str:
    """``printf "%q"``: Go's strconv.Quote. What does not print (controls, C1, bidi
    overrides) is escaped, ``\\x1b``, ``\\u202e``; ``<`` and ``&`` are kept (it was JSON's
    quoting: HTML escaped, C1 controls and U+202E raw, unlike Go)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")  # Go decoded a lone surrogate as U+FFFD, which prints
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _json_ready(value: Any) -> Any:
    if isinstance(value, Struct):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {k: _json_ready(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _arity(args: list[Any], low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise _CallError(f"wrong number of args: want {want}, got {len(args)}")


def _f_json(args: list[Any]) -> str:
    _arity(args, 1)
    return go_json(args[0])


def _f_index(args: list[Any]) -> Any:
    _arity(args, 1, 10)
    value = args[0]
    for key in args[1:]:
        if isinstance(value, dict):
            if not isinstance(key, str):
                raise _CallError(f"cannot index map with {_type_name(key)}")
            if isinstance(value, Struct) and key not in value:
                raise _CallError(f"no field {key}")
            value = value.get(key, "")  # a missing key: the zero value, as Go's index
        elif isinstance(value, (list, tuple, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise _CallError(f"cannot index slice with {_type_name(key)}")
            if not 0 <= key < len(value):
                raise _CallError(f"index out of range: {key}")
            value = value[key]
        elif value is None or value is _NO_VALUE:
            raise _CallError("index of untyped nil")
        else:
            raise _CallError(f"can't index item of type {_type_name(value)}")
    return value


def _f_join(args: list[Any]) -> str:
    _arity(args, 2)
    items, sep = args
    if isinstance(items, str) and isinstance(sep, (list, tuple)):
        items, sep = sep, items  # `X | join ", "` passes the list last
    if items is None:
        return ""
    if not isinstance(items, (list, tuple)) or not isinstance(sep, str):
        raise _CallError("join takes a list and a separator")
    parts = [go_print(v) for v in items]
    # measured first: a long separator between many items is no string to build
    if sum(map(len, parts)) + len(sep) * max(len(parts) - 1, 0) > MAX_OUTPUT_CHARS:
        raise _CallError(f"result longer than {MAX_OUTPUT_CHARS} characters")
    return sep.join(parts)


def _f_print(args: list[Any]) -> str:
    # Go's fmt.Sprint: a space between operands when neither is a string
    out = ""
    for n, arg in enumerate(args):
        if n and not isinstance(arg, str) and not isinstance(args[n - 1], str):
            out += " "
        out += go_print(arg)
    return out


def _f_println(args: list[Any]) -> str:
    return " ".join(go_print(a) for a in args) + "\n"


# Unambiguous (a width cannot start with 0, which the flags take): with `(\d+)?` after
# `[-+ 0#]*`, a "%" and 64 K zeros without a verb took minutes of backtracking.
_VERB = re.compile(r"%([-+ 0#]*)([1-9][0-9]*)?(?:\.([0-9]+))?([a-zA-Z%])")


def _go_width(digits: str) -> int | None:
    """A printf width or precision as Go's fmt parses it (parsenum): None past about 10^7,
    where Go stops and prints ``%!(NOVERB)``."""
    number = 0
    for digit in digits:
        if number > 1_000_000:
            return None
        number = number * 10 + int(digit)
    return number


def _f_printf(args: list[Any]) -> str:
    if not args or not isinstance(args[0], str):
        raise _CallError("printf needs a format string")
    fmt, values = args[0], list(args[1:])
    out: list[str] = []
    at = 0
    used = 0
    length = 0  # of out: widths and verbs multiply (5000 verbs of width 10^7 each)
    for match in _VERB.finditer(fmt):
        out.append(fmt[at : match.start()])
        at = match.end()
        flags, width_digits, precision_digits, verb = match.groups()
        width = _go_width(width_digits or "0")
        precision = _go_width(precision_digits or "0")
        if width is None or precision is None:
            # Go's fmt stops there: int() of a width of 5000 digits raised a ValueError, a
            # width of 10^10 asked for 10 GB
            out.append("%!(NOVERB)")
            at = len(fmt)
            break
        if verb == "%":
            out.append("%")
            continue
        if used >= len(values):
            out.append(f"%!{verb}(MISSING)")
            continue
        value = values[used]
        used += 1
        if verb in "sv":
            text = go_print(value)
            if precision_digits is not None and verb == "s":
                text = text[:precision]
        elif verb == "q":
            text = go_quote(value) if isinstance(value, str) else go_print(value)
        elif verb in "dxXo" and isinstance(value, int) and not isinstance(value, bool):
            text = format(value, {"d": "d", "x": "x", "X": "X", "o": "o"}[verb])
        elif verb == "t" and isinstance(value, bool):
            text = go_print(value)
        else:
            text = f"%!{verb}({_type_name(value)}={go_print(value)})"
        if width_digits is not None:
            if "-" in flags:
                text = text.ljust(width)
            elif "0" in flags and verb in "dxXo":
                text = text.rjust(width, "0")
            else:
                text = text.rjust(width)
        out.append(text)
        length += len(out[-2]) + len(text)
        if length > MAX_OUTPUT_CHARS:
            raise _CallError(f"result longer than {MAX_OUTPUT_CHARS} characters")
    out.append(fmt[at:])
    if used < len(values):
        extra = ", ".join(f"{_type_name(v)}={go_print(v)}" for v in values[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _f_len(args: list[Any]) -> int:
    _arity(args, 1)
    value = args[0]
    if isinstance(value, (str, list, tuple, dict)):
        return len(value)
    if value is None:
        return 0
    raise _CallError(f"len of type {_type_name(value)}")


def _f_case(convert: Callable[[str], str]) -> Callable[[list[Any]], str]:
    def apply(args: list[Any]) -> str:
        _arity(args, 1)
        return convert(go_print(args[0]))

    return apply


def _f_eq(args: list[Any]) -> bool:
    _arity(args, 2, 10)
    return any(_comparable(args[0], other) == other for other in args[1:])


def _comparable(a: Any, b: Any) -> Any:
    if type(a) is not type(b) and not (a is None or b is None):
        raise _CallError(f"incompatible types for comparison: {_type_name(a)}, {_type_name(b)}")
    return a


def _f_ne(args: list[Any]) -> bool:
    _arity(args, 2)
    return bool(_comparable(args[0], args[1]) != args[1])


def _f_not(args: list[Any]) -> bool:
    _arity(args, 1)
    return not truthy(args[0])


def _f_and(args: list[Any]) -> Any:
    _arity(args, 1, 100)
    for arg in args:
        if not truthy(arg):
            return arg
    return args[-1]


def _f_or(args: list[Any]) -> Any:
    _arity(args, 1, 100)
    for arg in args:
        if truthy(arg):
            return arg
    return args[-1]


_IMPLEMENTATIONS: Mapping[str, Callable[[list[Any]], Any]] = {
    "json": _f_json,
    "index": _f_index,
    "join": _f_join,
    "print": _f_print,
    "printf": _f_printf,
    "println": _f_println,
    "len": _f_len,
    "lower": _f_case(str.lower),
    "upper": _f_case(str.upper),
    "eq": _f_eq,
    "ne": _f_ne,
    "not": _f_not,
    "and": _f_and,
    "or": _f_or,
}
assert frozenset(_IMPLEMENTATIONS) == _FUNCTIONS


def render_template(source: str, data: Any) -> str:
    """Parse ``source`` and execute it over ``data``."""
    return Template(source).execute(data)
