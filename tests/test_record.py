"""imginspect._record: ``@record`` classes behave as ``@dataclass(frozen=True)`` ones do (a
twin declared the standard way is the reference: equality, hash, repr, frozenness and the
lazily compiled ``__init__``), and every frozen dataclass of the package is declared so."""

from __future__ import annotations

import ast
import copy
import dataclasses
import importlib
import inspect
import pickle
import pydoc
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imginspect import _record
from imginspect._record import Record, record

PACKAGE = Path(__file__).resolve().parent.parent / "imginspect"


@record
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


def test_every_frozen_dataclass_of_the_package_is_a_record() -> None:
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
                    standard.append(f"{path.name}:{node.lineno} {node.name}")
    assert standard == [], standard


def package_records() -> list[type]:
    """Every ``@record`` class of the package (found in the source, then imported)."""
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            and any(getattr(d, "id", "") == "record" for d in node.decorator_list)
        ]
        if names:
            module = importlib.import_module(f"imginspect.{path.stem}")
            found += [getattr(module, name) for name in names]
    return found


RECORDS = package_records()


def test_records_are_found() -> None:
    assert len(RECORDS) >= 40  # not vacuous: the package declares about fifty


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__qualname__)
def test_each_records_init_is_the_one_a_frozen_dataclass_has(cls: type) -> None:
    """Same parameters, kinds and defaults as a frozen dataclass of the same fields (a
    ``default_factory`` field: a sentinel default in both, the factory called per instance)."""
    declared = dataclasses.fields(cls)
    twin = dataclasses.make_dataclass(
        f"Twin{cls.__name__}",
        [
            (
                f.name,
                Any,
                field(default=f.default)
                if f.default is not dataclasses.MISSING
                else field(default_factory=f.default_factory)
                if f.default_factory is not dataclasses.MISSING
                else field(),
            )
            for f in declared
        ],
        frozen=True,
    )
    ours = inspect.signature(_record._compile_init(cls)).parameters
    theirs = inspect.signature(vars(twin)["__init__"]).parameters
    assert list(ours) == list(theirs)
    for name, param in ours.items():
        other = theirs[name]
        assert param.kind == other.kind, name
        if other.default is inspect.Parameter.empty or (
            type(other.default).__name__ == "_HAS_DEFAULT_FACTORY_CLASS"
        ):
            assert param.default is inspect.Parameter.empty or param.default is _record._FACTORY
            assert (param.default is _record._FACTORY) == (
                other.default is not inspect.Parameter.empty
            ), name
        else:
            assert param.default is other.default, name


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__qualname__)
def test_each_record_shows_its_fields_signature_and_its_own_docstring(cls: type) -> None:
    """``inspect.signature`` and ``help()`` show the fields (not the placeholder's
    ``(*args, **kwargs)``), before the first instance too; the docstring is the class's own
    (dataclasses computes one from the signature at import when there is none)."""
    signature = inspect.signature(cls)
    assert list(signature.parameters) == [f.name for f in dataclasses.fields(cls)]
    assert str(signature) in pydoc.render_doc(cls)
    assert cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}(")


def test_signature_before_the_first_instance() -> None:
    @record
    class Fresh(Record):
        """Never built before the signature is read."""

        name: str
        tags: list[str] = field(default_factory=list)

    @dataclass(frozen=True)
    class Twin:
        """The same fields, declared the standard way."""

        name: str
        tags: list[str] = field(default_factory=list)

    assert str(inspect.signature(Fresh)) == str(inspect.signature(Twin))
    assert "tags: 'list[str]' = <factory>" in str(inspect.signature(Fresh))
    assert Fresh("a").tags == []


def test_init_is_compiled_on_first_use_and_behaves_as_a_dataclass() -> None:
    @record
    class Lazy(Record):
        """A record with every kind of field @record supports."""

        name: str
        size: int = 1
        tags: list[str] = field(default_factory=list)
        note: str = field(default="", compare=False)

        def __post_init__(self) -> None:
            object.__setattr__(self, "size", self.size * 2)

    placeholder = Lazy.__dict__["__init__"]
    first = Lazy("a")
    assert Lazy.__dict__["__init__"] is not placeholder  # compiled, installed on the class
    assert (first.name, first.size, first.tags, first.note) == ("a", 2, [], "")
    second = Lazy("b", 3, ["x"], note="n")
    assert (second.size, second.tags) == (6, ["x"])
    assert Lazy("c").tags is not first.tags  # the factory runs per instance
    assert dataclasses.replace(second, name="z") == Lazy("z", 6, ["x"])  # __post_init__ again
    assert Lazy.__init__.__qualname__.endswith("Lazy.__init__")
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'name'"):
        Lazy()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'other'"):
        Lazy("a", other=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="positional arguments"):
        Lazy("a", 1, [], "", "extra")  # type: ignore[call-arg]


def test_a_subclass_never_runs_its_bases_init() -> None:
    @record
    class Base(Record):
        a: int

    Base(1)  # Base's __init__ compiled first

    @record
    class Derived(Base):
        b: int = 2

    assert (Derived(1, 3).a, Derived(1, 3).b, Derived(5).b) == (1, 3, 2)


def test_a_record_is_frozen_copied_and_pickled_as_a_frozen_dataclass() -> None:
    lean = Lean("a", 1, ("t",))
    attempts: list[Callable[[], None]] = [
        lambda: setattr(lean, "name", "b"),
        lambda: setattr(lean, "unknown", 1),
        lambda: delattr(lean, "size"),
    ]
    for attempt in attempts:
        with pytest.raises(dataclasses.FrozenInstanceError):
            attempt()
    assert copy.copy(lean) == copy.deepcopy(lean) == pickle.loads(pickle.dumps(lean)) == lean


def test_what_record_does_not_support_is_refused_at_declaration() -> None:
    def declare(annotations: dict[str, object], namespace: dict[str, object]) -> None:
        cls = type("Refused", (Record,), {"__annotations__": annotations, **namespace})
        record(cls)

    with pytest.raises(TypeError, match="'hidden'"):
        declare({"hidden": int}, {"hidden": field(default=0, init=False)})
    with pytest.raises(TypeError, match="'named'"):
        declare({"named": int}, {"named": field(default=0, kw_only=True)})
    with pytest.raises(TypeError, match="'setup'"):
        declare({"setup": InitVar[int]}, {})
    with pytest.raises(TypeError, match="'shared'"):
        declare({"shared": ClassVar[int]}, {"shared": 0})
    with pytest.raises(TypeError, match="must derive from Record"):
        record(type("Plain", (), {"__annotations__": {"a": int}}))
