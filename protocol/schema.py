# The message table's vocabulary: each message is declared once, as a frozen
# dataclass whose fields carry wire specs (u16, json-int, str-list, bytes(max)
# ...), and the @message decorator derives from them its validation, its
# codec (canonical JSON, or one big-endian struct plus an optional tail), its
# payload bound and its entry in the exported table.
#
# Why declarations instead of hand-written codecs: the same field used to be
# spelled four times per class (check, to_json/encode, from_json/decode, the
# web client's copy), and the copies drifted. Now protocol/messages.py, the
# docs check and client/web/js/message-table.js all read one table. Messages
# whose wire form is not "fields in order" (AUTH's per-method fields, the
# USB/IP PDUs) keep a codec of their own, but still declare their fields.
"""Field specs, the @message/@record decorators and the derived codecs."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from enum import IntEnum
from typing import Any, ClassVar, Final, Self, TypeVar, dataclass_transform

from protocol.base import (
    I16_MAX,
    I16_MIN,
    U8_MAX,
    U16_MAX,
    U32_MAX,
    ChannelKind,
    Message,
    Sender,
    check_bool,
    check_int,
    check_str,
    check_str_tuple,
)
from protocol.frozen import frozen_dataclass
from protocol.limits import MAX_CONTROL_PAYLOAD, MAX_JSON_INT

__all__ = [
    "CUSTOM", "JSON", "STRUCT", "Declared", "FieldSpec", "Record", "Wire", "fields_of", "message", "record", "shared",
    "wire",
]  # fmt: skip

# Codecs a message may use.
JSON: Final = "json"  # canonical JSON object of the fields (control channel)
STRUCT: Final = "struct"  # fixed fields in one big-endian struct, then an optional tail
CUSTOM: Final = "custom"  # the class writes encode()/decode() (or to_json/from_json) itself


_INT_CODES: Final = frozenset({"u8", "u16", "u32", "i16", "i32", "u64", "int", "sint"})


@dataclasses.dataclass(frozen=True)
class Wire:
    """How one field travels: a vocabulary code, its struct code if it is a
    fixed binary field, and its bounds."""

    code: str  # u8 u16 u32 i16 i32 u64 flag cstr | int sint bool str strs list | bytes text | nested
    fmt: str = ""  # struct code of a fixed binary field; "" for JSON fields and tails
    low: int = 0
    high: int = 0
    max_len: int = 0  # bytes / text / cstr: largest length in bytes
    min_len: int = 0
    enum: type[IntEnum] | None = None  # value stored as this enum
    choices: frozenset[int] | None = None  # allowed values besides the range
    item: type[Any] | None = None  # list: the @record type of the items
    convert: Callable[[object], object] | None = None  # nested: builds and checks the value

    def within(self, low: int, high: int) -> Wire:
        """The same wire type with narrower bounds."""
        return dataclasses.replace(self, low=low, high=high)

    @property
    def is_int(self) -> bool:
        """An integer (binary or JSON), checked against [low, high]."""
        return self.code in _INT_CODES

    @property
    def is_tail(self) -> bool:
        """A variable-length binary field: the rest of the payload."""
        return self.code in ("bytes", "text")


U8: Final = Wire("u8", "B", 0, U8_MAX)
U16: Final = Wire("u16", "H", 0, U16_MAX)
U32: Final = Wire("u32", "I", 0, U32_MAX)
I16: Final = Wire("i16", "h", I16_MIN, I16_MAX)
I32: Final = Wire("i32", "i", -(2**31), 2**31 - 1)
U64: Final = Wire("u64", "Q", 0, 2**64 - 1)
FLAG: Final = Wire("flag", "B")  # a bool as one byte, 0 or 1
JSON_INT: Final = Wire("int", low=0, high=MAX_JSON_INT)
JSON_SINT: Final = Wire("sint", low=-MAX_JSON_INT, high=MAX_JSON_INT)
BOOL: Final = Wire("bool")
STR: Final = Wire("str")
STRS: Final = Wire("strs")


def BYTES(max_len: int, min_len: int = 0) -> Wire:  # noqa: N802 - a wire type of the table's vocabulary
    """Opaque bytes: the rest of a binary payload."""
    return Wire("bytes", max_len=max_len, min_len=min_len)


def TEXT(max_len: int) -> Wire:  # noqa: N802 - a wire type of the table's vocabulary
    """UTF-8 text of at most max_len bytes: the rest of a binary payload."""
    return Wire("text", max_len=max_len)


def CSTR(size: int, convert: Callable[[object], object]) -> Wire:  # noqa: N802 - a wire type of the table's vocabulary
    """NUL-padded printable ASCII in a fixed `size`-byte field, checked by `convert`."""
    return Wire("cstr", f"{size}s", max_len=size, convert=convert)


def LIST(item: type[Any]) -> Wire:  # noqa: N802 - a wire type of the table's vocabulary
    """A JSON list of @record objects."""
    return Wire("list", item=item)


def NESTED(convert: Callable[[object], object], name: str) -> Wire:  # noqa: N802 - a wire type of the table's vocabulary
    """A structured value (built and checked by `convert`) that a custom codec packs."""
    return Wire(f"nested:{name}", convert=convert)


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One declared field: name, wire spec, and whether JSON omits it when empty."""

    name: str
    wire: Wire
    omit_empty: bool
    has_default: bool


def wire(spec: Wire, *, default: Any = dataclasses.MISSING, omit_empty: bool = False, repr: bool = True) -> Any:
    """Declare a message field travelling as `spec` (a dataclass field specifier)."""
    return dataclasses.field(default=default, repr=repr, metadata={"wire": spec, "omit_empty": omit_empty})


def fields_of(cls: type[Any]) -> tuple[FieldSpec, ...]:
    """The declared fields of a message or record class, in order."""
    specs: tuple[FieldSpec, ...] = cls.FIELDS
    return specs


# -- validation ---------------------------------------------------------------------


def _checker(spec: FieldSpec) -> Callable[[Any], None]:
    """A function validating (and normalising) this field on an instance."""
    name, w = spec.name, spec.wire

    def setv(obj: Any, value: object) -> None:
        object.__setattr__(obj, name, value)

    if w.is_int:
        def check_number(obj: Any) -> None:
            value = check_int(name, getattr(obj, name), w.low, w.high)
            if w.choices is not None and value not in w.choices:
                raise ValueError(f"{name}={value} is not one of {sorted(w.choices)}")
            if w.enum is not None:
                setv(obj, w.enum(value))
        return check_number
    if w.code in ("flag", "bool"):
        def check_flag(obj: Any) -> None:
            check_bool(name, getattr(obj, name))
        return check_flag
    if w.code == "str":
        def check_text_field(obj: Any) -> None:
            check_str(name, getattr(obj, name))
        return check_text_field
    if w.code == "strs":
        return lambda obj: setv(obj, check_str_tuple(name, getattr(obj, name)))
    if w.code == "text":
        def check_text(obj: Any) -> None:
            if len(check_str(name, getattr(obj, name)).encode("utf-8")) > w.max_len:
                raise ValueError(f"{name} longer than {w.max_len} bytes")
        return check_text
    if w.code == "bytes":
        def check_bytes(obj: Any) -> None:
            value = getattr(obj, name)
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise ValueError(f"{name} must be bytes")  # noqa: TRY004
            value = bytes(value)
            if not w.min_len <= len(value) <= w.max_len:
                raise ValueError(f"{name} of {len(value)} bytes outside [{w.min_len}, {w.max_len}]")
            setv(obj, value)
        return check_bytes
    if w.code == "list":
        item = w.item

        def check_list(obj: Any) -> None:
            value = getattr(obj, name)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, item) for v in value):  # type: ignore[arg-type]
                raise ValueError(f"{name} must be a sequence of {getattr(item, '__name__', '?')}")
            setv(obj, tuple(value))
        return check_list
    convert = w.convert
    if convert is None:
        raise TypeError(f"field {name}: wire type {w.code} needs a converter")
    return lambda obj: setv(obj, convert(getattr(obj, name)))


def _post_init(self: Any) -> None:
    for check in type(self).CHECKS:
        check(self)
    self.check()


# -- JSON codec -------------------------------------------------------------------


def _to_json_value(w: Wire, value: Any) -> object:
    if w.is_int:
        return int(value)
    if w.code == "strs":
        return list(value)
    if w.code == "list":
        return [item.to_json() for item in value]
    return value


def _from_json_value(spec: FieldSpec, value: object) -> object:
    w, name = spec.wire, spec.name
    if w.code == "list":
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list")
        item: Any = w.item
        return tuple(item.from_json(v) for v in value)
    if w.is_int:
        return check_int(name, value, w.low, w.high)
    if w.code == "bool":
        return check_bool(name, value)
    if w.code == "strs":
        return check_str_tuple(name, value)
    return check_str(name, value)


def _install_json(cls: type[Any]) -> None:
    specs = fields_of(cls)

    def to_json(self: Any) -> dict[str, object]:
        """The JSON object this message encodes to."""
        obj: dict[str, object] = {}
        for spec in specs:
            value = getattr(self, spec.name)
            if not (spec.omit_empty and not value):
                obj[spec.name] = _to_json_value(spec.wire, value)
        return obj

    def from_json(klass: type[Any], obj: object) -> Any:
        """Build the value from a parsed JSON object; ValueError if invalid."""
        if not isinstance(obj, dict):
            raise ValueError(f"{klass.__name__} must be a JSON object")  # noqa: TRY004
        values: dict[str, object] = {}
        for spec in specs:
            if spec.name in obj:
                values[spec.name] = _from_json_value(spec, obj[spec.name])
            elif not spec.omit_empty:
                raise ValueError(f"missing field {spec.name!r}")
        return klass(**values)

    if "to_json" not in cls.__dict__:
        cls.to_json = to_json
    if "from_json" not in cls.__dict__:
        cls.from_json = classmethod(from_json)


# -- struct codec -------------------------------------------------------------------


def cstring(raw: bytes, name: str) -> str:
    """A NUL-padded ASCII field: text up to the first NUL, printable only."""
    text = raw.split(b"\0", 1)[0]
    if any(c < 0x20 or c > 0x7E for c in text):
        raise ValueError(f"{name} is not printable ASCII")
    return text.decode("ascii")


def _install_struct(cls: type[Any], name: str) -> int:
    """Install encode()/decode(); return the largest payload."""
    specs = fields_of(cls)
    fixed = [s for s in specs if not s.wire.is_tail]
    tails = [s for s in specs if s.wire.is_tail]
    if len(tails) > 1 or (tails and specs[-1] is not tails[0]):
        raise TypeError(f"{name}: only the last field may be variable-length")
    layout = struct.Struct(">" + "".join(s.wire.fmt for s in fixed))
    tail = tails[0] if tails else None
    names = [s.name for s in fixed]
    kinds = [s.wire.code for s in fixed]

    def encode(self: Any) -> bytes:
        values: list[object] = []
        for field_name, code in zip(names, kinds):
            value = getattr(self, field_name)
            values.append(int(value) if code == "flag" else value.encode("ascii") if code == "cstr" else value)
        head = layout.pack(*values)
        if tail is None:
            return head
        rest = getattr(self, tail.name)
        data: bytes = rest.encode("utf-8") if tail.wire.code == "text" else rest
        return head + data

    def decode(klass: type[Any], payload: bytes) -> Any:
        size = layout.size
        if tail is None and len(payload) != size:
            raise ValueError(f"{name} payload must be {size} bytes, got {len(payload)}")
        if len(payload) < size:
            raise ValueError(f"{name} payload shorter than its {size}-byte header")
        if tail is not None and len(payload) > size + tail.wire.max_len:
            raise ValueError(f"{name} {tail.name} longer than {tail.wire.max_len} bytes")
        values: list[object] = []
        for field_name, code, value in zip(names, kinds, layout.unpack_from(payload)):
            if code == "flag":
                if value not in (0, 1):
                    raise ValueError(f"{field_name} must be 0 or 1, got {value}")
                value = value == 1
            elif code == "cstr":
                value = cstring(value, field_name)
            values.append(value)
        if tail is not None:
            rest = payload[size:]
            values.append(rest.decode("utf-8") if tail.wire.code == "text" else bytes(rest))
        return klass(*values)

    if "encode" not in cls.__dict__:
        cls.encode = encode
    if "decode" not in cls.__dict__:
        cls.decode = classmethod(decode)
    return layout.size + (tail.wire.max_len if tail is not None else 0)


# -- decorators ---------------------------------------------------------------------

_C = TypeVar("_C", bound=type[Any])


def _declare(cls: type[Any]) -> type[Any]:
    cls = frozen_dataclass(cls)
    specs = tuple(
        FieldSpec(f.name, f.metadata["wire"], f.metadata["omit_empty"], f.default is not dataclasses.MISSING)
        for f in dataclasses.fields(cls)
        if "wire" in f.metadata
    )
    cls.FIELDS = specs
    cls.CHECKS = tuple(_checker(s) for s in specs)
    return cls


@dataclass_transform(frozen_default=True, field_specifiers=(wire,))
def shared(cls: _C) -> _C:
    """Fields shared by several messages (a base class): declared, not a message."""
    return _declare(cls)  # type: ignore[return-value]


@dataclass_transform(frozen_default=True, field_specifiers=(wire,))
def record(cls: _C) -> _C:
    """A nested JSON value of declared fields (an APP_LIST entry): validation
    and to_json()/from_json() derived from its fields."""
    declared: _C = _declare(cls)  # type: ignore[assignment]
    _install_json(declared)
    return declared


@dataclass_transform(frozen_default=True, field_specifiers=(wire,))
def message(
    type_code: int,
    name: str,
    *,
    kind: ChannelKind | None = None,
    sender: Sender = Sender.ANY,
    codec: str = STRUCT,
    max_payload: int = 0,
) -> Callable[[_C], _C]:
    """Declare a message: its wire name and type code, the kind of channel it
    travels on (default: the base class's KIND), who may send it, its codec
    and, for a CUSTOM binary codec, its largest payload."""

    def apply(cls: _C) -> _C:
        declared: _C = _declare(cls)  # type: ignore[assignment]
        declared.TYPE = type_code
        declared.NAME = name
        declared.SENDER = sender
        if kind is not None:
            declared.KIND = kind
        declared.CODEC = codec
        if codec == JSON:
            _install_json(declared)
            declared.MAX_PAYLOAD = MAX_CONTROL_PAYLOAD
        elif codec == STRUCT:
            declared.MAX_PAYLOAD = _install_struct(declared, name)
        elif max_payload:
            declared.MAX_PAYLOAD = max_payload
        elif declared.KIND is not ChannelKind.CONTROL:
            raise TypeError(f"{name}: a custom binary codec must declare max_payload")
        return declared

    return apply


class Checked:
    """Base of declared values that are not messages (a USB/IP PDU, an APP_LIST
    entry): construction runs the field checks, then check()."""

    FIELDS: ClassVar[tuple[FieldSpec, ...]] = ()
    CHECKS: ClassVar[tuple[Callable[[Any], None], ...]] = ()

    def __post_init__(self) -> None:
        _post_init(self)

    def check(self) -> None:
        """Rules across fields (the declared fields are already valid); ValueError if broken."""


class Record(Checked):
    """Base of @record classes: a nested JSON value with derived checks and codec."""

    def to_json(self) -> dict[str, object]:
        """The JSON object of this value (derived by @record)."""
        raise NotImplementedError

    @classmethod
    def from_json(cls, obj: object) -> Self:
        """Build the value from a JSON value; ValueError if invalid (derived by @record)."""
        raise NotImplementedError


class Declared(Message):
    """Base of every declared message: validation runs the field checks, then check()."""

    CODEC: ClassVar[str] = CUSTOM
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = ()
    CHECKS: ClassVar[tuple[Callable[[Any], None], ...]] = ()

    def __post_init__(self) -> None:
        _post_init(self)

    def check(self) -> None:
        """Rules across fields (the declared fields are already valid); ValueError if broken."""
