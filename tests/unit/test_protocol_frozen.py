# frozen_dataclass must be indistinguishable from dataclass(frozen=True) for
# what the protocol's classes use: construction (by position or name, with
# defaults, __post_init__, and the same refusals), repr (with hidden fields
# and recursion), equality, hashing, immutability, subclassing, methods a
# body writes, and dataclasses' own functions (fields, replace, asdict).
# Only the params' `frozen` differs (protocol/frozen.py says why).
# plain_dataclass must be indistinguishable from dataclasses.dataclass()
# in the same ways, params included, and stay mutable and unhashable.
"""Tests of protocol.frozen against dataclasses.dataclass(frozen=True)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import pytest

from protocol.frozen import frozen_dataclass, plain_dataclass
from protocol.messages import Auth
from protocol.windows import WindowGeometry


def _pair(make: Callable[[Callable[[type[Any]], type[Any]]], type[Any]]) -> tuple[type[Any], type[Any]]:
    return make(dataclasses.dataclass(frozen=True)), make(frozen_dataclass)


def _plain(deco: Callable[[type[Any]], type[Any]]) -> type[Any]:
    @deco
    class Plain:
        a: int
        secret: str = dataclasses.field(default="pw", repr=False)
        size: int = dataclasses.field(default=0, compare=False)
        tag: object = dataclasses.field(default=None, hash=False)
    return Plain


def test_repr_eq_hash_and_params_match_the_stdlib() -> None:
    std, ours = _pair(_plain)
    for args in [(1,), (2, "x", 5), (3, "y", 7, "t")]:
        s, o = std(*args), ours(*args)
        assert repr(s) == repr(o) and "secret" not in repr(o)
        assert hash(s) == hash(o)
    assert ours(1, size=1) == ours(1, size=2) and ours(1) != ours(2)
    assert ours(1, tag="a") != ours(1, tag="b") and hash(ours(1, tag="a")) == hash(ours(1, tag="b"))
    assert ours(1).__eq__(std(1)) is NotImplemented
    assert repr(std.__dataclass_params__) == repr(ours.__dataclass_params__).replace("frozen=False", "frozen=True")
    assert std.__match_args__ == ours.__match_args__
    assert [f.name for f in dataclasses.fields(ours)] == [f.name for f in dataclasses.fields(std)]


def test_instances_stay_frozen() -> None:
    _, ours = _pair(_plain)
    value = ours(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.a = 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        del value.a
    assert dataclasses.replace(value, a=5).a == 5


def test_a_recursive_repr_shows_dots() -> None:
    def make(deco: Callable[[type[Any]], type[Any]]) -> type[Any]:
        @deco
        class Node:
            items: list[Any]
        return Node
    std, ours = _pair(make)
    s, o = std([]), ours([])
    s.items.append(s)
    o.items.append(o)
    assert repr(s) == repr(o) and repr(o).endswith(".Node(items=[...])")


def test_methods_the_body_writes_win() -> None:
    def make(deco: Callable[[type[Any]], type[Any]]) -> type[Any]:
        @deco
        class Own:
            a: int

            def __repr__(self) -> str:
                return "own"

            def __eq__(self, other: object) -> bool:
                return True
        return Own
    std, ours = _pair(make)
    assert repr(ours(1)) == repr(std(1)) == "own"
    assert ours(1) == ours(2)
    assert hash(ours(1)) == hash(std(1))  # dataclass replaced the None __eq__ left


def test_a_subclass_compares_its_own_fields() -> None:
    def make(deco: Callable[[type[Any]], type[Any]]) -> tuple[type[Any], type[Any]]:
        base = _plain(deco)

        @deco
        class Child(base):  # type: ignore[valid-type, misc]
            b: int = 0
        return base, Child
    (_, sc), (ob, oc) = make(dataclasses.dataclass(frozen=True)), make(frozen_dataclass)
    assert repr(oc(1, b=2)) == repr(sc(1, b=2))
    assert oc(1, b=2) != oc(1, b=3) and hash(oc(1, b=2)) == hash(sc(1, b=2))
    assert ob(1) != oc(1)


def test_messages_keep_their_repr_equality_and_hash() -> None:
    auth = Auth(method="password", user="ann", password="hunter2")
    assert "hunter2" not in repr(auth) and repr(auth).startswith("Auth(")
    assert auth == Auth(method="password", user="ann", password="hunter2")
    assert auth != Auth(method="password", user="ann", password="other")
    geometry = WindowGeometry(window=3, x=-4, y=5, width=60, height=70)
    again = WindowGeometry.decode(geometry.encode())
    assert again == geometry and hash(again) == hash(geometry) and again is not geometry
    assert repr(again) == "WindowGeometry(window=3, x=-4, y=5, width=60, height=70)"
    assert again != WindowGeometry(window=3, x=-4, y=5, width=60, height=71)


def test_construction_matches_the_stdlib() -> None:
    def make(deco: Callable[[type[Any]], type[Any]]) -> type[Any]:
        @deco
        class Made:
            a: int
            b: str = "b"
            items: list[int] = dataclasses.field(default_factory=list)
            fixed: int = dataclasses.field(default=9, init=False)
            seen: ClassVar[list[Any]] = []

            def __post_init__(self) -> None:
                type(self).seen.append((self.a, self.b, self.fixed))
        return Made
    std, ours = _pair(make)
    for cls in (std, ours):
        assert [cls(1), cls(2, "x"), cls(a=3, b="y"), cls(4, b="z")] == [
            cls(1, "b"), cls(2, "x"), cls(3, "y"), cls(4, "z")]
        assert cls.seen[:4] == [(1, "b", 9), (2, "x", 9), (3, "y", 9), (4, "z", 9)]
        assert cls(1).items == [] and cls(1).items is not cls(1).items  # a fresh default each time
        assert dataclasses.asdict(cls(5, "q")) == {"a": 5, "b": "q", "items": [], "fixed": 9}
        assert dataclasses.replace(cls(5), b="r") == cls(5, "r")
        for args, kwargs in [((), {}), ((1, "b", [], 4), {}), ((1,), {"a": 2}), ((1,), {"nope": 2}),
                             ((1,), {"fixed": 2})]:  # fmt: skip
            with pytest.raises(TypeError):
                cls(*args, **kwargs)


@pytest.mark.parametrize("deco", [frozen_dataclass, plain_dataclass])
def test_a_class_made_here_compiles_no_code(deco: Callable[[type[Any]], type[Any]]) -> None:
    import sys

    compiled: list[str] = []

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "compile" and active:
            compiled.append(str(args[1]))

    active = True
    sys.addaudithook(audit)
    try:
        _plain(deco)
    finally:
        active = False
    assert compiled == []


def test_plain_dataclass_matches_the_stdlib_dataclass() -> None:
    std, ours = _plain(dataclasses.dataclass), _plain(plain_dataclass)
    for args in [(1,), (2, "x", 5), (3, "y", 7, "t")]:
        assert repr(std(*args)) == repr(ours(*args)) and "secret" not in repr(ours(*args))
    assert ours(1, size=1) == ours(1, size=2) and ours(1) != ours(2) and ours(1).__eq__(std(1)) is NotImplemented
    assert ours.__hash__ is None and std.__hash__ is None
    with pytest.raises(TypeError):
        hash(ours(1))
    assert repr(std.__dataclass_params__) == repr(ours.__dataclass_params__)
    value = ours(1)
    value.a = 2
    assert value == ours(2) and dataclasses.replace(value, a=5).a == 5 and dataclasses.astuple(value)[0] == 2


def test_plain_dataclass_keeps_a_hash_the_body_writes_and_refuses_a_setattr() -> None:
    @plain_dataclass
    class Keyed:
        key: int

        def __hash__(self) -> int:
            return self.key

    assert hash(Keyed(7)) == 7 and Keyed(7) == Keyed(7)
    with pytest.raises(TypeError):
        @plain_dataclass
        class Guarded:
            a: int

            def __setattr__(self, name: str, value: Any) -> None:
                object.__setattr__(self, name, value)


def test_plain_dataclass_construction_matches_the_stdlib() -> None:
    def make(deco: Callable[[type[Any]], type[Any]]) -> type[Any]:
        @deco
        class Made:
            a: int
            items: list[int] = dataclasses.field(default_factory=list)
            fixed: int = dataclasses.field(default=9, init=False)
        return Made
    for cls in (make(dataclasses.dataclass), make(plain_dataclass)):
        assert cls(1) == cls(a=1, items=[]) and cls(1).items is not cls(1).items and cls(1).fixed == 9
        for args, kwargs in [((), {}), ((1, [], 4), {}), ((1,), {"a": 2}), ((1,), {"fixed": 2})]:
            with pytest.raises(TypeError):
                cls(*args, **kwargs)
