"""imginspect's frozen dataclasses: their methods written once, or compiled when first used.

``@dataclass(frozen=True)`` compiles six methods for every class when its module is imported
(``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``):
each ``exec`` takes about 0.1 ms, 0.5 ms a class, 15 ms of a cold run's start-up for the 30
classes a ``--json`` run loads (bench/README.md). A class declared ``@record``, deriving
from :class:`Record`, has none compiled at import (0.03 ms a class):

* ``__eq__``, ``__hash__`` and ``__repr__`` come from :class:`Record`, with the semantics
  ``dataclasses`` gives them: equality and hash over the fields with ``compare`` (``hash``
  where set), only between instances of the very same class; repr ``QualName(field=value,
  ...)`` over the fields with ``repr``. A class may still define its own ``__repr__`` (one
  that hides a secret, say).
* ``__setattr__`` and ``__delattr__`` come from :class:`Record`: they always raise
  ``dataclasses.FrozenInstanceError``.
* ``__init__`` is compiled the first time the class is instantiated (classes a run never
  builds never pay): the one a frozen dataclass has, for the fields this supports (a
  default or ``default_factory``; ``compare``, ``hash`` and ``repr`` options), setting each
  field with ``object.__setattr__`` and calling ``__post_init__`` if the class has one.
  ``@record`` refuses what it does not support (``init=False`` fields, ``kw_only``,
  ``InitVar``), so nothing silently behaves otherwise. ``inspect.signature()`` and
  ``help()`` show the fields before the first instance too (a lazy ``__signature__``).

Type checkers see ``@record`` as ``@dataclass(frozen=True)`` (PEP 681's
``dataclass_transform``): a constructor typed from the fields, assignment refused.

Pure: imports only the standard library's ``dataclasses`` and ``operator``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError, dataclass, field, fields
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform  # typing's from Python 3.11
else:

    def dataclass_transform(**_: object) -> Callable[[Any], Any]:
        return lambda decorated: decorated


_T = TypeVar("_T")

#: Per class: the compared values, the hashed values, the names shown by repr.
_Plan = tuple[Callable[[Any], tuple[Any, ...]], Callable[[Any], tuple[Any, ...]], tuple[str, ...]]
_PLANS: dict[type, _Plan] = {}


def _values(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    many: Callable[[Any], tuple[Any, ...]] = attrgetter(*names)
    return many


def _plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        # Built once per class, on first use (a race builds the same plan twice: harmless).
        declared = fields(cast(Any, cls))
        compared = tuple(f.name for f in declared if f.compare)
        hashed = tuple(f.name for f in declared if (f.compare if f.hash is None else f.hash))
        shown = tuple(f.name for f in declared if f.repr)
        plan = (_values(compared), _values(hashed), shown)
        _PLANS[cls] = plan
    return plan


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[_T]) -> type[_T]:
    """Declare a frozen dataclass that derives from :class:`Record` (see the module)."""
    if not issubclass(cls, Record):
        raise TypeError(f"@record class {cls.__qualname__} must derive from Record")
    dataclass(init=False, repr=False, eq=False)(cls)
    declared = fields(cast(Any, cls))
    # fields() leaves out ClassVar and InitVar pseudo-fields: refused, as kw_only and init=False.
    pseudo = set(getattr(cls, "__dataclass_fields__", {})) - {f.name for f in declared}
    unsupported = sorted(pseudo) + [f.name for f in declared if not f.init or f.kw_only is True]
    if unsupported:
        raise TypeError(f"@record does not support field {unsupported[0]!r} of {cls.__qualname__}")
    # A placeholder of the class's own, so a subclass never runs its base's __init__.
    type.__setattr__(cls, "__init__", _first_init(cls))
    type.__setattr__(cls, "_record", True)
    return cls


def _first_init(cls: type) -> Callable[..., None]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _installed_init(cls)(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__._record_placeholder_of = cls  # type: ignore[attr-defined]
    return __init__


def _installed_init(cls: type) -> Callable[..., None]:
    """``cls``'s compiled ``__init__``, compiled and installed now if it was not yet."""
    init: Callable[..., None] = cls.__dict__["__init__"]
    if getattr(init, "_record_placeholder_of", None) is cls:
        init = _compile_init(cls)
        type.__setattr__(cls, "__init__", init)  # later instances call it directly
    return init


class _InitSignature:
    """``__signature__`` of a record class, which ``inspect.signature()`` and ``help()`` read
    before its ``__init__``: the compiled one's, without ``self`` (the placeholder's would be
    ``(*args, **kwargs)``). Nothing is computed until asked for."""

    def __get__(self, instance: object, owner: type) -> Any:
        for cls in owner.__mro__:
            init = cls.__dict__.get("__init__")
            if init is not None:
                if "__dataclass_fields__" not in cls.__dict__ or not hasattr(cls, "_record"):
                    return None  # not a record's: inspect reads the __init__ itself
                import inspect  # loaded already (dataclasses imports it)

                signature = inspect.signature(_installed_init(cls))
                return signature.replace(parameters=list(signature.parameters.values())[1:])
        return None


def _compile_init(cls: type) -> Callable[..., None]:
    """The ``__init__`` a frozen dataclass of ``cls``'s fields has (what @record allows)."""
    env: dict[str, Any] = {"__set": object.__setattr__, "__factory": _FACTORY}
    params: list[str] = []
    body: list[str] = []
    for f in fields(cls):
        name = f.name
        value = name
        if f.default is not MISSING:
            env[f"__default_{name}"] = f.default
            params.append(f"{name}=__default_{name}")
        elif f.default_factory is not MISSING:
            env[f"__make_{name}"] = f.default_factory
            params.append(f"{name}=__factory")
            value = f"__make_{name}() if {name} is __factory else {name}"
        else:
            params.append(name)
        body.append(f"    __set(self, {name!r}, {value})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["    pass"])
    exec(source, env)  # built from field names only, as dataclasses does
    init: Callable[..., None] = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = {f.name: f.type for f in fields(cls)} | {"return": None}
    return init


class _Factory:
    """The default of a parameter whose field has a ``default_factory`` (as dataclasses has
    one, shown as ``<factory>`` too)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


class Record:
    """Base of a ``@record`` class: see the module."""

    __slots__ = ()
    __signature__ = _InitSignature()

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        compared = _plan(self.__class__)[0]
        return compared(self) == compared(other)

    def __hash__(self) -> int:
        return hash(_plan(self.__class__)[1](self))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _plan(self.__class__)[2])
        return f"{self.__class__.__qualname__}({shown})"
