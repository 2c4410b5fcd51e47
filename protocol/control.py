# Control-channel messages (channel 0): the JSON codec, and the link-level
# messages (HELLO, channel management, ERROR, CLOSE, PING/PONG).
#
# Why JSON here and binary elsewhere: control traffic is rare, small and must
# evolve (new fields are ignored by old peers), while display and input
# messages are hot paths. Encoding is canonical (sorted keys, no spaces, UTF-8)
# so test vectors are byte-exact in every language. Decoders check each listed
# field's JSON type strictly (a bool is not an int), ignore unknown fields,
# and reject duplicate keys, NaN and anything that is not an object.
"""The control-channel JSON codec and the link-level control messages."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import ClassVar, Self

from protocol.base import (
    U16_MAX,
    ChannelKind,
    Message,
    Sender,
    check_bool,
    check_int,
    check_json_int,
    check_str,
    check_str_tuple,
)
from protocol.limits import MAX_CONTROL_PAYLOAD

JsonObject = dict[str, object]


def dump_json(obj: JsonObject) -> bytes:
    """Canonical encoding of a control payload."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, object]]) -> JsonObject:
    obj: JsonObject = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def load_json(payload: bytes) -> JsonObject:
    """Parse a control payload into a JSON object; ValueError on anything else."""
    try:
        obj = json.loads(
            payload.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
        )
    except RecursionError as exc:  # absurdly nested arrays; payload is bounded anyway
        raise ValueError("JSON nested too deeply") from exc
    if not isinstance(obj, dict):
        raise ValueError("control payload must be a JSON object")
    return obj


def get(obj: JsonObject, name: str) -> object:
    """Return a required field; ValueError if it is missing."""
    if name not in obj:
        raise ValueError(f"missing field {name!r}")
    return obj[name]


class ControlMessage(Message):
    """A message of the control channel: a JSON object on the wire."""

    KIND: ClassVar[ChannelKind | None] = ChannelKind.CONTROL
    MAX_PAYLOAD: ClassVar[int] = MAX_CONTROL_PAYLOAD

    def to_json(self) -> JsonObject:
        """The JSON object this message encodes to."""
        raise NotImplementedError

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        """Build the message from a parsed JSON object; ValueError if invalid."""
        raise NotImplementedError

    def encode(self) -> bytes:
        """Canonical JSON payload."""
        return dump_json(self.to_json())

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse a payload; ValueError if it is not a valid message of this type."""
        return cls.from_json(load_json(payload))


@dataclass(frozen=True)
class Hello(ControlMessage):
    """First message of each side: protocol version and capabilities."""

    TYPE: ClassVar[int] = 0x01
    version: int
    capabilities: tuple[str, ...]
    software: str

    def __post_init__(self) -> None:
        check_json_int("version", self.version)
        object.__setattr__(self, "capabilities", check_str_tuple("capabilities", self.capabilities))
        check_str("software", self.software)

    def to_json(self) -> JsonObject:
        return {
            "version": self.version,
            "capabilities": list(self.capabilities),
            "software": self.software,
        }

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            version=check_json_int("version", get(obj, "version")),
            capabilities=check_str_tuple("capabilities", get(obj, "capabilities")),
            software=check_str("software", get(obj, "software")),
        )


@dataclass(frozen=True)
class ChannelOpen(ControlMessage):
    """Open `channel` of `kind`, granting the peer `window` bytes of credit."""

    TYPE: ClassVar[int] = 0x08
    channel: int
    kind: int
    window: int

    def __post_init__(self) -> None:
        check_int("channel", self.channel, 0, U16_MAX)
        check_json_int("kind", self.kind)
        check_json_int("window", self.window)

    def to_json(self) -> JsonObject:
        return {"channel": self.channel, "kind": int(self.kind), "window": self.window}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            channel=check_int("channel", get(obj, "channel"), 0, U16_MAX),
            kind=check_json_int("kind", get(obj, "kind")),
            window=check_json_int("window", get(obj, "window")),
        )


@dataclass(frozen=True)
class ChannelOpenOk(ControlMessage):
    """Accept a CHANNEL_OPEN, granting the opener `window` bytes of credit."""

    TYPE: ClassVar[int] = 0x09
    channel: int
    window: int

    def __post_init__(self) -> None:
        check_int("channel", self.channel, 0, U16_MAX)
        check_json_int("window", self.window)

    def to_json(self) -> JsonObject:
        return {"channel": self.channel, "window": self.window}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            channel=check_int("channel", get(obj, "channel"), 0, U16_MAX),
            window=check_json_int("window", get(obj, "window")),
        )


@dataclass(frozen=True)
class ChannelClose(ControlMessage):
    """Close (or refuse) a channel; the other side answers with its own CHANNEL_CLOSE."""

    TYPE: ClassVar[int] = 0x0A
    channel: int
    code: int
    message: str = ""

    def __post_init__(self) -> None:
        check_int("channel", self.channel, 0, U16_MAX)
        check_json_int("code", self.code)
        check_str("message", self.message)

    def to_json(self) -> JsonObject:
        return {
            "channel": self.channel,
            "code": int(self.code),
            "message": self.message,
        }

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            channel=check_int("channel", get(obj, "channel"), 0, U16_MAX),
            code=check_json_int("code", get(obj, "code")),
            message=check_str("message", get(obj, "message")),
        )


@dataclass(frozen=True)
class Error(ControlMessage):
    """A non-fatal error, about `request` if non-zero."""

    TYPE: ClassVar[int] = 0x0B
    code: int
    message: str
    request: int = 0

    def __post_init__(self) -> None:
        check_json_int("code", self.code)
        check_str("message", self.message)
        check_json_int("request", self.request)

    def to_json(self) -> JsonObject:
        return {
            "code": int(self.code),
            "message": self.message,
            "request": self.request,
        }

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            code=check_json_int("code", get(obj, "code")),
            message=check_str("message", get(obj, "message")),
            request=check_json_int("request", get(obj, "request")),
        )


@dataclass(frozen=True)
class Close(ControlMessage):
    """Fatal: the sender closes the transport after sending it."""

    TYPE: ClassVar[int] = 0x0C
    code: int
    message: str

    def __post_init__(self) -> None:
        check_json_int("code", self.code)
        check_str("message", self.message)

    def to_json(self) -> JsonObject:
        return {"code": int(self.code), "message": self.message}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            code=check_json_int("code", get(obj, "code")),
            message=check_str("message", get(obj, "message")),
        )


@dataclass(frozen=True)
class Ping(ControlMessage):
    """Liveness/RTT probe; the application answers PONG with the same token."""

    TYPE: ClassVar[int] = 0x0D
    token: int

    def __post_init__(self) -> None:
        check_json_int("token", self.token)

    def to_json(self) -> JsonObject:
        return {"token": self.token}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(token=check_json_int("token", get(obj, "token")))


@dataclass(frozen=True)
class Pong(ControlMessage):
    """Answer to PING."""

    TYPE: ClassVar[int] = 0x0E
    token: int

    def __post_init__(self) -> None:
        check_json_int("token", self.token)

    def to_json(self) -> JsonObject:
        return {"token": self.token}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(token=check_json_int("token", get(obj, "token")))


# -- application icons ---------------------------------------------------------
# Icons travel on the control channel because they are rare, small and
# answer a request; the PNG is base64 in the JSON object, bounded so that
# the whole ICON frame stays under MAX_CONTROL_PAYLOAD.

MAX_ICON_BASE64 = 60 * 1024  # base64 of a 45 KiB PNG; leaves 4 KiB of the 64 KiB frame for the rest


@dataclass(frozen=True)
class IconRequest(ControlMessage):
    """Ask for the icon of a published app as a `size` x `size` PNG."""

    TYPE: ClassVar[int] = 0x20
    SENDER: ClassVar[Sender] = Sender.CLIENT
    request: int
    app: str
    size: int

    def __post_init__(self) -> None:
        check_json_int("request", self.request)
        check_str("app", self.app)
        check_int("size", self.size, 1, U16_MAX)

    def to_json(self) -> JsonObject:
        return {"request": self.request, "app": self.app, "size": self.size}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            request=check_json_int("request", get(obj, "request")),
            app=check_str("app", get(obj, "app")),
            size=check_int("size", get(obj, "size"), 1, U16_MAX),
        )


@dataclass(frozen=True)
class Icon(ControlMessage):
    """Answer to ICON_REQUEST: `data` is the base64 PNG when ok, else "" and a reason."""

    TYPE: ClassVar[int] = 0x21
    SENDER: ClassVar[Sender] = Sender.SERVER
    request: int
    app: str
    size: int
    ok: bool
    data: str = ""
    code: int = 0
    message: str = ""

    def __post_init__(self) -> None:
        check_json_int("request", self.request)
        check_str("app", self.app)
        check_int("size", self.size, 1, U16_MAX)
        check_bool("ok", self.ok)
        check_str("data", self.data)
        if len(self.data) > MAX_ICON_BASE64:
            raise ValueError(f"icon data of {len(self.data)} characters exceeds {MAX_ICON_BASE64}")
        try:
            base64.b64decode(self.data, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"icon data is not base64: {exc}") from exc
        check_json_int("code", self.code)
        check_str("message", self.message)

    @classmethod
    def with_png(cls, request: int, app: str, size: int, png: bytes) -> Self:
        """A successful answer carrying ``png``."""
        return cls(request=request, app=app, size=size, ok=True, data=base64.b64encode(png).decode("ascii"))

    @property
    def png(self) -> bytes:
        """The PNG bytes (empty when not ok)."""
        return base64.b64decode(self.data, validate=True)

    def to_json(self) -> JsonObject:
        return {
            "request": self.request,
            "app": self.app,
            "size": self.size,
            "ok": self.ok,
            "data": self.data,
            "code": self.code,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            request=check_json_int("request", get(obj, "request")),
            app=check_str("app", get(obj, "app")),
            size=check_int("size", get(obj, "size"), 1, U16_MAX),
            ok=check_bool("ok", get(obj, "ok")),
            data=check_str("data", get(obj, "data")),
            code=check_json_int("code", get(obj, "code")),
            message=check_str("message", get(obj, "message")),
        )
