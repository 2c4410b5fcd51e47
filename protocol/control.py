# Control-channel messages (channel 0): the JSON codec, and the link-level
# messages (HELLO, channel management, ERROR, CLOSE, PING/PONG), each
# declared once (protocol/schema.py derives checks and codec).
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
from typing import ClassVar, Final, Self

from protocol.base import U16_MAX, ChannelKind, Sender
from protocol.limits import MAX_CONTROL_PAYLOAD
from protocol.schema import BOOL, JSON, JSON_INT, STR, STRS, Declared, message, wire

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
        raise ValueError("control payload must be a JSON object")  # noqa: TRY004
    return obj


def get(obj: JsonObject, name: str) -> object:
    """Return a required field; ValueError if it is missing."""
    if name not in obj:
        raise ValueError(f"missing field {name!r}")
    return obj[name]


class JsonMessage(Declared):
    """A message that is one canonical JSON object on the wire (to_json and
    from_json are derived by @message from the declared fields)."""

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


class ControlMessage(JsonMessage):
    """A message of the control channel."""

    KIND: ClassVar[ChannelKind | None] = ChannelKind.CONTROL


CHANNEL: Final = JSON_INT.within(0, U16_MAX)  # channel ids in control messages


@message(0x01, "HELLO", codec=JSON)
class Hello(ControlMessage):
    """First message of each side: protocol version and capabilities."""

    version: int = wire(JSON_INT)
    capabilities: tuple[str, ...] = wire(STRS)
    software: str = wire(STR)


@message(0x08, "CHANNEL_OPEN", codec=JSON)
class ChannelOpen(ControlMessage):
    """Open `channel` of `kind`, granting the peer `window` bytes of credit."""

    channel: int = wire(CHANNEL)
    kind: int = wire(JSON_INT)
    window: int = wire(JSON_INT)


@message(0x09, "CHANNEL_OPEN_OK", codec=JSON)
class ChannelOpenOk(ControlMessage):
    """Accept a CHANNEL_OPEN, granting the opener `window` bytes of credit."""

    channel: int = wire(CHANNEL)
    window: int = wire(JSON_INT)


@message(0x0A, "CHANNEL_CLOSE", codec=JSON)
class ChannelClose(ControlMessage):
    """Close (or refuse) a channel; the other side answers with its own CHANNEL_CLOSE."""

    channel: int = wire(CHANNEL)
    code: int = wire(JSON_INT)
    message: str = wire(STR, default="")


@message(0x0B, "ERROR", codec=JSON)
class Error(ControlMessage):
    """A non-fatal error, about `request` if non-zero."""

    code: int = wire(JSON_INT)
    message: str = wire(STR)
    request: int = wire(JSON_INT, default=0)


@message(0x0C, "CLOSE", codec=JSON)
class Close(ControlMessage):
    """Fatal: the sender closes the transport after sending it."""

    code: int = wire(JSON_INT)
    message: str = wire(STR)


@message(0x0D, "PING", codec=JSON)
class Ping(ControlMessage):
    """Liveness/RTT probe; the application answers PONG with the same token."""

    token: int = wire(JSON_INT)


@message(0x0E, "PONG", codec=JSON)
class Pong(ControlMessage):
    """Answer to PING."""

    token: int = wire(JSON_INT)


# -- application icons ---------------------------------------------------------
# Icons travel on the control channel because they are rare, small and
# answer a request; the PNG is base64 in the JSON object, bounded so that
# the whole ICON frame stays under MAX_CONTROL_PAYLOAD.

MAX_ICON_BASE64 = 60 * 1024  # base64 of a 45 KiB PNG; leaves 4 KiB of the 64 KiB frame for the rest
ICON_SIZE: Final = JSON_INT.within(1, U16_MAX)


@message(0x20, "ICON_REQUEST", sender=Sender.CLIENT, codec=JSON)
class IconRequest(ControlMessage):
    """Ask for the icon of a published app as a `size` x `size` PNG."""

    request: int = wire(JSON_INT)
    app: str = wire(STR)
    size: int = wire(ICON_SIZE)


@message(0x21, "ICON", sender=Sender.SERVER, codec=JSON)
class Icon(ControlMessage):
    """Answer to ICON_REQUEST: `data` is the base64 PNG when ok, else "" and a reason."""

    request: int = wire(JSON_INT)
    app: str = wire(STR)
    size: int = wire(ICON_SIZE)
    ok: bool = wire(BOOL)
    data: str = wire(STR, default="")
    code: int = wire(JSON_INT, default=0)
    message: str = wire(STR, default="")

    def check(self) -> None:
        """`data` is base64 of at most MAX_ICON_BASE64 characters."""
        if len(self.data) > MAX_ICON_BASE64:
            raise ValueError(f"icon data of {len(self.data)} characters exceeds {MAX_ICON_BASE64}")
        try:
            base64.b64decode(self.data, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"icon data is not base64: {exc}") from exc

    @classmethod
    def with_png(cls, request: int, app: str, size: int, png: bytes) -> Self:
        """A successful answer carrying ``png``."""
        return cls(request=request, app=app, size=size, ok=True, data=base64.b64encode(png).decode("ascii"))

    @property
    def png(self) -> bytes:
        """The PNG bytes (empty when not ok)."""
        return base64.b64decode(self.data, validate=True)
