# A frozen dataclass that compiles nothing: the message table's classes
# (protocol/schema.py @message/@record/@shared) were made by
# dataclasses.dataclass(frozen=True), which compiles six methods per class
# from source (__init__, __repr__, __eq__, __hash__, __setattr__,
# __delattr__), one exec() each. Over the ~110 classes that was ~55 ms of
# CPU in every process that imports protocol.messages (the daemon, every
# agent, every viewer), on the path from a login to its first frame.
#
# None of the six needs code of its own per class: each only reads the
# class's field names (and, for __init__, the defaults). So one shared
# function each, reading per-class tuples of names, behaves the same: the
# same text, the same tuple comparison and hash, the same '...' for a
# recursive repr, the same FrozenInstanceError, an __init__ that takes the
# fields by position or name with their defaults and runs __post_init__,
# and a method written in the class body still wins, exactly as with
# dataclass. dataclass itself still collects the fields
# (dataclasses.fields(), replace(), asdict() work), with init, repr, eq and
# frozen off, so it compiles nothing; its params then say init, repr and eq
# as they are. They do not say frozen: with frozen, dataclass would compile
# __setattr__ and __delattr__ again, and it refuses a frozen base under a
# class it makes without frozen. So a class made here cannot be the base
# of a plain dataclass(frozen=True), which no protocol class needs.
#
# The agent's and the viewer's own records (window events, settings, the
# scroll's plans) use it too: in the agent, which a cold login waits for to
# import, dataclass(frozen=True) cost ~0.35 ms a class here. The price is
# per object: the shared __init__ takes ~0.2-0.4 us longer than a compiled
# one, and equality and hashing, which read the fields through one
# operator.attrgetter per class (C), ~0.1-0.3 us. So a record made once
# per message on every hop (protocol/events.py, protocol/frames.py) stays
# a compiled dataclass: there the import's one-off millisecond is cheaper
# than a microsecond per message in sessiond's relay. plain_dataclass does
# the same for a mutable dataclass() (its params are exactly the stdlib's).
"""frozen_dataclass / plain_dataclass: dataclass(frozen=True) / dataclass() of shared methods, no exec()."""

from __future__ import annotations

import dataclasses
import reprlib
from operator import attrgetter
from typing import Any, Callable, Final, TypeVar, dataclass_transform

# Per-class tuple of the field names repr shows, and per-class functions (staticmethods) that
# give the tuple of the values equality and hashing compare.
_REPR_NAMES: Final = "__protocol_repr_fields__"
_EQ_VALUES: Final = "__protocol_eq_values__"
_HASH_VALUES: Final = "__protocol_hash_values__"

_T = TypeVar("_T")


@reprlib.recursive_repr()
def _repr(self: Any) -> str:
    names: tuple[str, ...] = getattr(self, _REPR_NAMES)
    text: str = self.__class__.__qualname__ + "(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"
    return text


def _values(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving the tuple of an object's NAMES attributes (one attrgetter for two or more)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda _obj: ()


def _eq(self: Any, other: object) -> Any:
    if other.__class__ is self.__class__:
        values = getattr(self, _EQ_VALUES)
        return values(self) == values(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(getattr(self, _HASH_VALUES)(self))


_repr.__name__ = _repr.__qualname__ = "__repr__"
_eq.__name__ = _eq.__qualname__ = "__eq__"
_hash.__name__ = _hash.__qualname__ = "__hash__"


_set = object.__setattr__


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


_frozen_setattr.__name__ = _frozen_setattr.__qualname__ = "__setattr__"
_frozen_delattr.__name__ = _frozen_delattr.__qualname__ = "__delattr__"


def _init_for(cls: type[Any], fields: tuple[dataclasses.Field[Any], ...]) -> Any:
    """The __init__ dataclass would compile for CLS: the init fields by position or name, each
    missing one from its default (or default_factory), the others from theirs; then __post_init__."""
    names = tuple(f.name for f in fields if f.init)
    count = len(names)
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    factories = {f.name: f.default_factory for f in fields if f.default_factory is not dataclasses.MISSING}
    fixed = tuple(f.name for f in fields if not f.init and (f.name in defaults or f.name in factories))
    post_init = hasattr(cls, "__post_init__")

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807 - the method's own name
        if len(args) > count:
            raise TypeError(f"{type(self).__qualname__}() takes {count} arguments but {len(args)} were given")
        for name, value in zip(names, args):
            _set(self, name, value)
        if kwargs or len(args) < count:
            for name in names[len(args):]:
                if name in kwargs:
                    _set(self, name, kwargs.pop(name))
                elif name in defaults:
                    _set(self, name, defaults[name])
                elif name in factories:
                    _set(self, name, factories[name]())
                else:
                    raise TypeError(f"{type(self).__qualname__}() missing required argument: {name!r}")
            if kwargs:
                given = sorted(kwargs)
                twice = [name for name in given if name in names]
                raise TypeError(f"{type(self).__qualname__}() got multiple values for {twice}" if twice
                                else f"{type(self).__qualname__}() got unexpected arguments {given}")  # fmt: skip
        for name in fixed:
            _set(self, name, defaults[name] if name in defaults else factories[name]())
        if post_init:
            self.__post_init__()

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def frozen_dataclass(cls: type[_T]) -> type[_T]:
    """cls as dataclasses.dataclass(frozen=True) makes it, with every method shared instead of
    compiled for this class."""
    return _shared(cls, frozen=True)


@dataclass_transform(field_specifiers=(dataclasses.field, dataclasses.Field))
def plain_dataclass(cls: type[_T]) -> type[_T]:
    """cls as dataclasses.dataclass() makes it (mutable, compared by its fields, unhashable
    unless its body says __hash__), with every method shared instead of compiled for this class.
    Its __init__ sets the fields as object.__setattr__ does (a __setattr__ of the body is not called)."""
    if "__setattr__" in cls.__dict__:
        raise TypeError(f"{cls.__name__} writes __setattr__: use dataclasses.dataclass")
    return _shared(cls, frozen=False)


def _shared(cls: type[_T], frozen: bool) -> type[_T]:
    body = cls.__dict__
    keep_repr, keep_eq, keep_init = "__repr__" in body, "__eq__" in body, "__init__" in body
    # dataclass keeps a __hash__ written in the body, but replaces the None
    # Python puts there when the body writes __eq__ and no __hash__.
    keep_hash = "__hash__" in body and not (body["__hash__"] is None and keep_eq)
    for name in ("__setattr__", "__delattr__"):
        if frozen and name in body:  # as dataclass(frozen=True) says
            raise TypeError(f"Cannot overwrite attribute {name} in class {cls.__name__}")
    if not cls.__doc__:  # what dataclass would write, but without inspect.signature() (which compiles)
        annotations = cls.__dict__.get("__annotations__", {})
        names = [name for name, kind in annotations.items()
                 if not str(kind).startswith(("ClassVar", "typing.ClassVar"))]  # fmt: skip
        cls.__doc__ = f"{cls.__name__}({', '.join(names)})"
    made: Any = dataclasses.dataclass(init=False, repr=False, eq=False)(cls)
    fields = dataclasses.fields(made)
    setattr(cls, _REPR_NAMES, tuple(f.name for f in fields if f.repr))
    setattr(cls, _EQ_VALUES, staticmethod(_values(tuple(f.name for f in fields if f.compare))))
    setattr(cls, _HASH_VALUES, staticmethod(_values(tuple(f.name for f in fields
                                                          if (f.compare if f.hash is None else f.hash)))))
    if not keep_init:
        setattr(cls, "__init__", _init_for(cls, fields))  # noqa: B010 - a class attribute, not an instance's
    if not keep_repr:
        setattr(cls, "__repr__", _repr)  # noqa: B010
    if not keep_eq:
        setattr(cls, "__eq__", _eq)  # noqa: B010
    if not keep_hash:  # frozen: by the fields, as dataclass(frozen=True); mutable: none, as dataclass()
        setattr(cls, "__hash__", _hash if frozen else None)  # noqa: B010
    if frozen:
        setattr(cls, "__setattr__", _frozen_setattr)  # noqa: B010
        setattr(cls, "__delattr__", _frozen_delattr)  # noqa: B010
    params = made.__dataclass_params__
    params.init = True
    params.repr = True
    params.eq = True
    return cls
