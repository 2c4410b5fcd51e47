"""tests/vectors/frames.json, both directions: encoding gives frame_hex, decoding
gives the described message, and every invalid stream closes with its code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.connection import Connection, ConnectionClosed, Role
from protocol.frames import Frame, FrameDecoder
from protocol.windows_admin import WindowSummary
from protocol.transfer import ClipData, FileData
from protocol.xpra import XpraData
from protocol.messages import (
    MESSAGE_NAMES,
    AppInfo,
    ChannelKind,
    Close,
    Message,
    Region,
    Tile,
    decode_message,
)

VECTORS: list[dict[str, Any]] = json.loads((Path(__file__).parent.parent / "vectors" / "frames.json").read_text())
VALID = [v for v in VECTORS if "frame_hex" in v]
INVALID = [v for v in VECTORS if "expect_code" in v]
CLASSES = {name: cls for cls, name in MESSAGE_NAMES.items()}


def build(description: dict[str, Any]) -> Message:
    """Construct a message from its language-neutral description."""
    cls = CLASSES[description["name"]]
    fields: dict[str, Any] = {}
    for key, value in description["fields"].items():
        if key == "apps":
            value = tuple(AppInfo(**{**app, "categories": tuple(app["categories"])}) for app in value)
        elif key == "windows":
            value = tuple(WindowSummary(**row) for row in value)
        elif key == "data" and cls in (Region, Tile, ClipData, FileData, XpraData) or key in ("packet", "png"):
            value = bytes.fromhex(value)
        elif isinstance(value, list):
            value = tuple(value)
        fields[key] = value
    return cls(**fields)  # type: ignore[call-arg]


def test_every_message_type_has_a_vector() -> None:
    assert {v["message"]["name"] for v in VALID} == set(MESSAGE_NAMES.values())
    assert len(INVALID) >= 30


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
def test_encode_matches_vector(vector: dict[str, Any]) -> None:
    message = build(vector["message"])
    assert message.TYPE == vector["type"]
    assert message.encode().hex() == vector["payload_hex"]
    header = len(message.encode()).to_bytes(4, "big") + vector["channel"].to_bytes(2, "big")
    header += bytes([vector["type"], vector["flags"]])
    assert header.hex() + vector["payload_hex"] == vector["frame_hex"]


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
def test_decode_matches_vector(vector: dict[str, Any]) -> None:
    frames = FrameDecoder().feed(bytes.fromhex(vector["frame_hex"]))
    assert frames == [
        Frame(
            vector["channel"],
            vector["type"],
            vector["flags"],
            bytes.fromhex(vector["payload_hex"]),
        )
    ]
    decoded = decode_message(ChannelKind(vector["kind"]), frames[0].type, frames[0].payload)
    assert decoded == build(vector["message"])


def _connection(vector: dict[str, Any]) -> Connection:
    window = vector.get("window")
    window_for = None if window is None else (lambda kind: int(window))
    return Connection(Role(vector["role"]), window_for=window_for)


def _check_closed(conn: Connection, events: list[Any], code: int) -> None:
    assert events and events[-1] == ConnectionClosed(code, events[-1].message, by_peer=False)
    assert conn.closed
    out = FrameDecoder().feed(conn.data_to_send())
    assert out[-1].channel == 0 and out[-1].type == Close.TYPE
    close = decode_message(ChannelKind.CONTROL, Close.TYPE, out[-1].payload)
    assert isinstance(close, Close) and close.code == code


@pytest.mark.parametrize("vector", INVALID, ids=[v["name"] for v in INVALID])
def test_invalid_stream_whole(vector: dict[str, Any]) -> None:
    conn = _connection(vector)
    events = conn.receive_data(bytes.fromhex(vector["bytes_hex"]))
    _check_closed(conn, events, vector["expect_code"])
    assert conn.receive_data(bytes.fromhex(vector["bytes_hex"])) == []  # ignored once closed


@pytest.mark.parametrize("vector", INVALID, ids=[v["name"] for v in INVALID])
def test_invalid_stream_byte_at_a_time_with_trailing_data(
    vector: dict[str, Any],
) -> None:
    conn = _connection(vector)
    data = bytes.fromhex(vector["bytes_hex"]) + b"\x00" * 16
    events = []
    for i in range(len(data)):
        events += conn.receive_data(data[i : i + 1])
    assert sum(isinstance(e, ConnectionClosed) for e in events) == 1
    closed_at = next(i for i, e in enumerate(events) if isinstance(e, ConnectionClosed))
    _check_closed(conn, events[: closed_at + 1], vector["expect_code"])
