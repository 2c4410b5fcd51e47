"""The keystroke path's compact forms (issue 15): TILE (a one-region frame)
and KEY_TAP_ACK (a tap carrying the held frame ack): their bounds, the
agent's folding, the client's unfolding to the same pixels, and the ack's
low bits."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from client.framebuffer import Framebuffer
from client.session import SessionClient
from media import palette as palette_codec
from media.tile import TileColours, TileError, palette_to_tile, tile_to_palette, unfold
from protocol.base import Encoding
from protocol.connection import MessageReceived
from protocol.errors import ProtocolError, ReasonCode
from protocol.media import (
    ACK_LOW_MODULO,
    CAPS_TILE,
    TILE_ACK_NOW,
    TILE_COLOURS,
    TILE_MAX_PIXELS,
    TILE_MAX_SIDE,
    tile_bits_bytes,
)
from protocol.messages import (
    ChannelKind,
    DesktopSize,
    FrameAck,
    FrameEnd,
    KeyTap,
    KeyTapAck,
    Region,
    Tile,
    VideoCaps,
    decode_message,
)
from protocol.windows import WindowTarget
from sessiond.agent.display import DisplayPipeline
from sessiond.agent.settings import AgentSettings
from sessiond.agent.tiles import TileFolder, ack_from_low
from test_client_held_ack import paired_client, written
from test_link_estimate import FakeLoop, Link

DISPLAY, INPUT = int(ChannelKind.DISPLAY), int(ChannelKind.INPUT)
BLACK_WHITE = b"\x00\x00\x00\xff\xff\xff"


def palette_region(x: int, y: int, w: int, h: int, seed: int = 1, colours: bytes = BLACK_WHITE) -> Region:
    """A two-colour PALETTE region of random pixels, as the agent's encoder makes them."""
    rng = random.Random(seed)
    stride = palette_codec.row_bytes(w, 1)
    rows = b"".join(
        (rng.getrandbits(w) << (stride * 8 - w)).to_bytes(stride, "big") for _ in range(h)
    )
    return Region(x, y, w, h, Encoding.PALETTE, palette_codec.encode(w, h, 1, colours, rows))


# -- TILE on the wire ------------------------------------------------------------------
def test_tile_round_trips_and_is_smaller_than_region_and_frame_end() -> None:
    region = palette_region(0, 0, 12, 13)
    colours, bits = palette_to_tile(region.data, 12, 13) or (b"", b"")
    tile = Tile(10, 20, 12, 13, TILE_COLOURS, colours + bits)
    assert decode_message(ChannelKind.DISPLAY, Tile.TYPE, tile.encode()) == tile
    assert len(bits) == tile_bits_bytes(12, 13) == 20
    old = len(region.encode()) + len(FrameEnd(7, False).encode()) + 2 * 8
    assert len(tile.encode()) + 8 < old - 20


@pytest.mark.parametrize("w, h", [(TILE_MAX_SIDE + 1, 1), (1, TILE_MAX_SIDE + 1), (0, 5)])
def test_tile_sides_are_bounded(w: int, h: int) -> None:
    with pytest.raises(ValueError):
        Tile(0, 0, w, h, 0, bytes(tile_bits_bytes(max(w, 1), max(h, 1))))


def test_tile_area_is_bounded_by_tile_max_pixels() -> None:
    side = TILE_MAX_SIDE
    assert side * side > TILE_MAX_PIXELS
    at_limit = TILE_MAX_PIXELS // side
    Tile(0, 0, side, at_limit, 0, bytes(tile_bits_bytes(side, at_limit)))
    with pytest.raises(ValueError, match="TILE_MAX_PIXELS|outside"):  # the data's bound is the area's
        Tile(0, 0, side, at_limit + 1, 0, bytes(tile_bits_bytes(side, at_limit + 1)))
    with pytest.raises(ValueError, match="TILE_MAX_PIXELS"):
        Tile(0, 0, side, at_limit + 1, 0, bytes(6))


def test_tile_data_must_be_exactly_colours_and_bits() -> None:
    need = tile_bits_bytes(12, 13)
    Tile(0, 0, 12, 13, TILE_COLOURS, bytes(6 + need))
    for size in (need, need + 5, need + 7):
        with pytest.raises(ValueError, match="needs"):
            Tile(0, 0, 12, 13, TILE_COLOURS, bytes(size))
    with pytest.raises(ValueError, match="needs"):
        Tile(0, 0, 12, 13, 0, bytes(need + 1))


def test_tile_pad_bits_and_unknown_form_bits_are_refused() -> None:
    with pytest.raises(ValueError, match="pad"):
        Tile(0, 0, 3, 3, 0, b"\x00\x01")  # 9 bits: 7 pad bits, the last one set
    with pytest.raises(ValueError):
        Tile(0, 0, 1, 1, 0x04, b"\x00")


def test_oversize_tile_payload_is_refused_from_the_decoder() -> None:
    payload = Tile(0, 0, 8, 8, 0, bytes(8)).encode()[:7] + bytes(Tile.MAX_PAYLOAD)
    with pytest.raises(ProtocolError) as caught:
        decode_message(ChannelKind.DISPLAY, Tile.TYPE, payload)
    assert caught.value.code == ReasonCode.MALFORMED_MESSAGE


# -- PALETTE <-> TILE bits ----------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 32), st.integers(1, 32), st.integers(0, 2**16), st.booleans())
def test_palette_to_tile_and_back_keeps_every_pixel(w: int, h: int, seed: int, zlib_rows: bool) -> None:
    if w * h > TILE_MAX_PIXELS:
        return
    region = palette_region(0, 0, w, h, seed)
    colours, bits = palette_to_tile(region.data, w, h) or (b"", b"")
    back = tile_to_palette(colours, bits, w, h)
    assert palette_codec.decode(back, w, h).tobytes() == palette_codec.decode(region.data, w, h).tobytes()
    del zlib_rows


def test_only_one_bit_palettes_within_the_area_fold() -> None:
    rows = b"\x1b" * 4  # indices 0, 1, 2, 3 in each row
    four = palette_codec.encode(4, 4, 2, BLACK_WHITE + b"\x10\x20\x30\x40\x50\x60", rows)
    assert palette_to_tile(four, 4, 4) is None
    big = palette_region(0, 0, 64, 32)
    assert palette_to_tile(big.data, 64, 32) is None  # 2048 pixels > TILE_MAX_PIXELS
    assert palette_to_tile(b"\x01", 1, 1) is None
    one = palette_codec.encode(2, 1, 1, b"\x01\x02\x03", b"\x00")
    assert palette_to_tile(one, 2, 1) == (b"\x01\x02\x03" * 2, b"\x00")


def test_colours_reused_before_any_were_sent_is_an_error() -> None:
    with pytest.raises(TileError):
        unfold(Tile(0, 0, 8, 1, 0, b"\x0f"), TileColours(), 3)


# -- agent: folding ------------------------------------------------------------------------
def test_folder_sends_no_tile_before_vidcaps_or_before_an_explicit_seq() -> None:
    folder = TileFolder()
    region = palette_region(5, 6, 12, 13)
    end = FrameEnd(1, False)
    assert folder.frame([region], end) == [region, end]  # not enabled
    folder.enabled = True
    folder.reset()
    folder.enabled = True
    assert folder.frame([region], end) == [region, end]  # the client knows no seq yet
    tile = folder.frame([region], FrameEnd(2, True))
    assert len(tile) == 1 and isinstance(tile[0], Tile)
    assert (tile[0].x, tile[0].y, tile[0].w, tile[0].h) == (5, 6, 12, 13)
    assert tile[0].form == TILE_ACK_NOW | TILE_COLOURS
    again = folder.frame([palette_region(5, 6, 12, 13, seed=9)], FrameEnd(3, False))
    assert isinstance(again[0], Tile) and again[0].form == 0  # same colours: not repeated


def test_folder_leaves_other_frames_alone_and_keeps_a_window_target() -> None:
    folder = TileFolder()
    folder.enabled = True
    folder.frame([], FrameEnd(1, False))
    two = [palette_region(0, 0, 6, 13), palette_region(6, 0, 6, 13)]
    assert folder.frame(two, FrameEnd(2, False))[-1] == FrameEnd(2, False)
    fill = Region(0, 0, 4, 4, Encoding.FILL, b"\x01\x02\x03")
    assert folder.frame([fill], FrameEnd(3, False))[-1] == FrameEnd(3, False)
    large = palette_region(0, 0, TILE_MAX_SIDE + 1, 2)
    assert folder.frame([large], FrameEnd(4, False))[-1] == FrameEnd(4, False)
    target = WindowTarget(7, 100, 50)
    out = folder.frame([target, palette_region(1, 2, 6, 13)], FrameEnd(5, False))
    assert out[0] == target and isinstance(out[1], Tile) and len(out) == 2


# -- the frame ack's low bits --------------------------------------------------------------
def test_ack_from_low_finds_the_frame_in_flight() -> None:
    assert ack_from_low(5, 3, 5) == 5
    assert ack_from_low(4, 3, 5) == 4
    assert ack_from_low(3, 3, 5) is None  # already acked
    assert ack_from_low(9, 3, 5) is None  # never sent (it would be 9 - 256)
    assert ack_from_low(255, 250, 257) == 255
    assert ack_from_low(0, 250, 257) == 256
    assert ack_from_low(1, 0, ACK_LOW_MODULO) is None  # a window of 256 in flight would be ambiguous


def test_key_tap_ack_bounds_and_its_one_byte_keysym() -> None:
    assert KeyTapAck(255, 0xFFFF).encode() == b"\xff\xff\xff"
    assert KeyTapAck(7, 0x61).encode() == b"\x07a"  # Latin-1: one byte
    assert KeyTapAck(7, 0x100).encode() == b"\x07\x01\x00"
    assert decode_message(ChannelKind.INPUT, KeyTapAck.TYPE, b"\x07a") == KeyTapAck(7, 0x61)
    for bad in (b"\x07", b"\x07\x00a", b"\x07\x00", b"\x07\x01\x00\x00"):  # short, non-minimal, 0, long
        with pytest.raises(ProtocolError):
            decode_message(ChannelKind.INPUT, KeyTapAck.TYPE, bad)
    with pytest.raises(ValueError):
        KeyTapAck(256, 0x61)
    with pytest.raises(ValueError):
        KeyTapAck(0, 0x10000)
    with pytest.raises(ValueError):
        KeyTapAck(0, 0)


# -- client: unfolding and the ack in the tap ----------------------------------------------
def receive(client: SessionClient, message: Any) -> None:
    client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, message))
    client.flush()


def test_client_draws_a_tile_exactly_as_the_region_it_stands_for(tmp_path: Any) -> None:
    client, server, transport = paired_client(tmp_path)
    receive(client, DesktopSize(64, 32))
    receive(client, FrameEnd(41, True))
    region = palette_region(10, 5, 12, 13, seed=4, colours=b"\x10\x20\x30\xf0\xe0\xd0")
    reference = Framebuffer(64, 32)
    reference.apply(region)
    folder = TileFolder()
    folder.enabled = True
    folder.frame([], FrameEnd(41, True))
    (tile,) = folder.frame([region], FrameEnd(42, False))
    transport.clear()
    receive(client, tile)
    assert client.last_frame == 42
    assert client.framebuffer is not None
    assert client.framebuffer.image().tobytes() == reference.image().tobytes()
    assert transport.value() == b""  # ack_now clear: the ack is held
    client.tap(0x61)
    assert written(server, transport) == [KeyTapAck(42 % ACK_LOW_MODULO, 0x61)]
    client.tap(0x1008FF11)  # past u16: a plain KEY_TAP (nothing held now)
    assert written(server, transport) == [KeyTap(0x1008FF11)]


def test_client_refuses_a_tile_that_reuses_unknown_colours(tmp_path: Any) -> None:
    client, server, transport = paired_client(tmp_path)
    receive(client, DesktopSize(16, 16))
    receive(client, FrameEnd(1, True))
    receive(client, Tile(0, 0, 8, 1, 0, b"\x0f"))
    assert client.conn.closed


def test_client_acks_a_tile_with_ack_now_at_once(tmp_path: Any) -> None:
    client, server, transport = paired_client(tmp_path)
    receive(client, DesktopSize(16, 16))
    receive(client, FrameEnd(7, True))
    transport.clear()
    receive(client, Tile(0, 0, 8, 1, TILE_ACK_NOW | TILE_COLOURS, BLACK_WHITE + b"\x0f"))
    assert written(server, transport) == [FrameAck(8)]
    image = client.framebuffer.image() if client.framebuffer else Image.new("RGB", (1, 1))
    assert image.getpixel((0, 0)) == (0, 0, 0) and image.getpixel((7, 0)) == (255, 255, 255)


# -- the agent's pipeline: TILE out, KEY_TAP_ACK's ack in ----------------------------------------
class EchoSource:
    """Every frame is one 12x13 two-colour echo."""

    def pending(self) -> bool:
        return True

    def mark_all(self) -> None:
        pass

    def frame(self, encoder: Any) -> list[Any]:
        return [palette_region(6, 0, 12, 13)]


def test_pipeline_sends_tiles_after_video_caps_and_takes_the_ack_of_a_tap() -> None:
    loop, link = FakeLoop(), Link()
    settings = AgentSettings(socket="/x", frames_in_flight=4, display_adaptive=False)
    pipeline = DisplayPipeline(loop, settings, EchoSource(), lambda: link, lambda: None)  # type: ignore[arg-type]
    pipeline.opened()
    pipeline.message(VideoCaps(codecs=CAPS_TILE))
    for _ in range(3):
        loop.calls.pop(0)()
    first, *rest = link.conn.sent[1:]
    assert isinstance(link.conn.sent[0], Region) and isinstance(first, FrameEnd)  # the seq goes once explicitly
    assert [type(m) for m in rest] == [Tile, Tile] and pipeline.frame_seq == 3
    pipeline.message(KeyTapAck(ack=2, keysym=0x61))
    assert pipeline.acked_seq == 2
    pipeline.message(KeyTapAck(ack=9, keysym=0x61))  # no frame in flight ends so: ignored
    assert pipeline.acked_seq == 2
    pipeline.opened()  # a new display channel: no TILE until it asks again
    assert not pipeline.tiles.enabled
