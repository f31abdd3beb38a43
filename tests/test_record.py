"""imginspect._record: the frozen dataclasses that take equality, hash and repr from Record
behave as ``@dataclass(frozen=True)`` ones do (a twin declared the standard way is the
reference), and every frozen dataclass of the package is declared that way."""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imginspect._record import Record

PACKAGE = Path(__file__).resolve().parent.parent / "imginspect"


@dataclass(frozen=True, repr=False, eq=False)
class Lean(Record):
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()
    note: str = field(default="", compare=False)
    secret: str = field(default="", repr=False)
    weight: float = field(default=0.0, hash=False)


@dataclass(frozen=True)
class Standard:
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()
    note: str = field(default="", compare=False)
    secret: str = field(default="", repr=False)
    weight: float = field(default=0.0, hash=False)


values = st.tuples(
    st.text(max_size=5),
    st.integers(-3, 3),
    st.lists(st.text(max_size=2), max_size=2).map(tuple),
    st.sampled_from(["", "n"]),
    st.sampled_from(["", "s"]),
    st.sampled_from([0.0, 1.5, float("nan")]),
)


@settings(deadline=None, max_examples=200)
@given(values, values)
def test_equality_hash_and_repr_as_a_standard_frozen_dataclass(a: tuple, b: tuple) -> None:  # type: ignore[type-arg]
    lean_a, lean_b, std_a, std_b = Lean(*a), Lean(*b), Standard(*a), Standard(*b)
    assert (lean_a == lean_b) == (std_a == std_b)
    assert (lean_a != lean_b) == (std_a != std_b)
    assert (hash(lean_a) == hash(lean_b)) == (hash(std_a) == hash(std_b))
    assert repr(lean_a).removeprefix("Lean") == repr(std_a).removeprefix("Standard")


def test_frozen_replace_fields_and_other_classes() -> None:
    lean = Lean("a", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lean.name = "b"  # type: ignore[misc]
    assert dataclasses.replace(lean, size=2) == Lean("a", 2)
    assert [f.name for f in dataclasses.fields(lean)][:2] == ["name", "size"]
    assert lean != Standard("a", 1)  # another class: never equal, as dataclasses
    assert (lean == "a") is False
    assert {lean: 1}[Lean("a", 1, note="ignored by eq and hash")] == 1


def test_every_frozen_dataclass_of_the_package_takes_its_methods_from_record() -> None:
    """A new ``@dataclass(frozen=True)`` would compile six methods at import again."""
    standard = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                if not isinstance(decorator, ast.Call) or getattr(decorator.func, "id", "") != (
                    "dataclass"
                ):
                    continue
                options = {k.arg: getattr(k.value, "value", None) for k in decorator.keywords}
                if options.get("frozen") is True:
                    lean = options.get("repr") is False and options.get("eq") is False
                    bases = [getattr(b, "id", "") for b in node.bases]
                    if not (lean and "Record" in bases):
                        standard.append(f"{path.name}:{node.lineno} {node.name}")
    assert standard == [], standard
