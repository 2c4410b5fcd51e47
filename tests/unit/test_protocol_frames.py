"""FrameDecoder and encode_frame: bounds from the header, chunking, trailing data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ProtocolError, ReasonCode
from protocol.frames import HEADER, Frame, FrameDecoder, encode_frame
from protocol.limits import (
    HEADER_SIZE,
    MAX_CHANNEL_ID,
    MAX_CONTROL_PAYLOAD,
    MAX_FRAME_PAYLOAD,
)


def test_header_layout_is_big_endian_length_channel_type_flags() -> None:
    assert encode_frame(0x0102, 0x03, b"xyz") == bytes.fromhex("00000003 0102 03 00") + b"xyz"
    assert encode_frame(1, 0xFF, b"", flags=7) == bytes.fromhex("00000000 0001 ff 07")


@pytest.mark.parametrize(
    ("channel", "type_", "flags"),
    [(-1, 1, 0), (0x10000, 1, 0), (1, 256, 0), (1, -1, 0), (1, 1, 256)],
)
def test_encode_frame_rejects_fields_outside_wire_range(channel: int, type_: int, flags: int) -> None:
    with pytest.raises(ValueError):
        encode_frame(channel, type_, b"", flags)


def test_encode_frame_rejects_oversize_payloads() -> None:
    with pytest.raises(ValueError):
        encode_frame(1, 1, bytes(MAX_FRAME_PAYLOAD + 1))
    with pytest.raises(ValueError):
        encode_frame(0, 1, bytes(MAX_CONTROL_PAYLOAD + 1))
    assert len(encode_frame(0, 1, bytes(MAX_CONTROL_PAYLOAD))) == HEADER_SIZE + MAX_CONTROL_PAYLOAD


STREAM = encode_frame(0, 1, b'{"a":1}') + encode_frame(1, 2, b"") + encode_frame(2, 3, b"\x00" * 300, flags=9)
EXPECTED = [
    Frame(0, 1, 0, b'{"a":1}'),
    Frame(1, 2, 0, b""),
    Frame(2, 3, 9, b"\x00" * 300),
]


def test_feed_whole_stream() -> None:
    assert FrameDecoder().feed(STREAM) == EXPECTED


def test_feed_one_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    frames: list[Frame] = []
    for i in range(len(STREAM)):
        frames += decoder.feed(STREAM[i : i + 1])
    assert frames == EXPECTED
    assert decoder.buffered == 0


def test_feed_with_trailing_partial_frame_keeps_it_buffered() -> None:
    decoder = FrameDecoder()
    trailing = encode_frame(3, 4, b"tail")
    assert decoder.feed(STREAM + trailing[:10]) == EXPECTED
    assert decoder.buffered == 10
    assert decoder.feed(trailing[10:]) == [Frame(3, 4, 0, b"tail")]


def test_oversize_length_is_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError) as info:
        decoder.feed(HEADER.pack(MAX_FRAME_PAYLOAD + 1, 1, 1, 0))
    assert info.value.code is ReasonCode.FRAME_TOO_LARGE
    assert decoder.buffered == HEADER_SIZE  # no payload was waited for or allocated


def test_max_frame_payload_itself_is_accepted() -> None:
    payload = bytes(MAX_FRAME_PAYLOAD)
    assert FrameDecoder().feed(HEADER.pack(len(payload), 1, 1, 0) + payload) == [Frame(1, 1, 0, payload)]


def test_control_payload_bound_is_checked_from_the_header() -> None:
    with pytest.raises(ProtocolError) as info:
        FrameDecoder().feed(HEADER.pack(MAX_CONTROL_PAYLOAD + 1, 0, 1, 0))
    assert info.value.code is ReasonCode.FRAME_TOO_LARGE
    # the same length is fine on a data channel
    assert FrameDecoder().feed(HEADER.pack(MAX_CONTROL_PAYLOAD + 1, 1, 1, 0)) == []


def test_custom_max_payload() -> None:
    decoder = FrameDecoder(max_payload=16)
    assert decoder.feed(encode_frame(1, 1, bytes(16))) == [Frame(1, 1, 0, bytes(16))]
    with pytest.raises(ProtocolError):
        decoder.feed(HEADER.pack(17, 1, 1, 0))


def test_channel_above_max_is_refused_from_the_header() -> None:
    with pytest.raises(ProtocolError) as info:
        FrameDecoder().feed(HEADER.pack(100, MAX_CHANNEL_ID + 1, 1, 0))
    assert info.value.code is ReasonCode.UNKNOWN_CHANNEL


def test_many_small_frames_compact_the_buffer() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(1, 1, bytes(100))
    data = frame * 2000 + frame[:50]  # 216 KB: crosses the compaction threshold
    count = 0
    for start in range(0, len(data), 4096):
        count += len(decoder.feed(data[start : start + 4096]))
    assert count == 2000
    assert decoder.buffered == 50


frames_strategy = st.lists(
    st.tuples(
        st.integers(0, MAX_CHANNEL_ID),
        st.integers(0, 255),
        st.integers(0, 255),
        st.binary(max_size=200),
    ),
    max_size=20,
)


@given(frames_strategy, st.lists(st.integers(1, 64), min_size=1, max_size=50))
def test_any_chunking_yields_the_same_frames(specs: list[tuple[int, int, int, bytes]], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(ch, t, p, fl) for ch, t, fl, p in specs)
    decoder = FrameDecoder()
    frames: list[Frame] = []
    pos, i = 0, 0
    while pos < len(stream):
        size = cuts[i % len(cuts)]
        frames += decoder.feed(stream[pos : pos + size])
        pos += size
        i += 1
    assert frames == [Frame(ch, t, fl, p) for ch, t, fl, p in specs]
    assert decoder.buffered == 0
