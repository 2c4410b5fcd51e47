# A malicious server (or a man in the middle past TLS) against the thin
# client: image headers that claim huge sizes, a desktop size that would
# take gigabytes. Each test crosses the bound and asserts what the user of
# the client library sees: a closed connection with a reason code, never an
# exception out of the reactor and never the allocation.
"""Unit tests for client.framebuffer's and client.session's bounds (issue 12 item 13)."""

from __future__ import annotations

import io
import struct
import zlib
from types import SimpleNamespace
from typing import Any

import lz4.block
import pytest
from PIL import Image
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from client import framebuffer as framebuffer_module
from client.framebuffer import MAX_FRAMEBUFFER_SIDE, Framebuffer, RegionError
from client.known_hosts import KnownHosts
from client.session import ConnectionEnded, SessionClient
from media.region import ImageHeaderError, header_size
from client.audio import StreamDecoder
from protocol.audio import AudioData
from protocol.connection import ChannelClosed, MessageReceived
from protocol.testing import handshaken_pair, open_pair_channel
from protocol.errors import ReasonCode
from protocol.limits import MAX_REGION_RAW_BYTES
from protocol.messages import ChannelKind, DesktopSize, Encoding, FrameEnd, Region

DISPLAY = int(ChannelKind.DISPLAY)
BOMB_SIDE = 20000


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR (with a valid CRC) declares width x height; 1x1 of pixel data."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00"))
            + chunk(b"IEND", b""))  # fmt: skip


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 8x8 JPEG with its SOF0 frame header rewritten to width x height."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def raw_region(x: int, y: int, w: int, h: int, encoding: int, data: bytes) -> Any:
    """A Region look-alike that skips protocol validation (hostile input)."""
    return SimpleNamespace(x=x, y=y, w=w, h=h, encoding=encoding, data=data)


@pytest.fixture
def no_pillow_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if Pillow is handed the file at all."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("Image.open was reached")

    monkeypatch.setattr(framebuffer_module.Image, "open", refuse)


def test_the_bomb_files_really_are_bombs_for_pillow() -> None:
    # The premise: handed to Pillow, the header alone raises (today's crash).
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(png_claiming(BOMB_SIDE, BOMB_SIDE)))
    assert header_size(png_claiming(BOMB_SIDE, BOMB_SIDE), "PNG") == (BOMB_SIDE, BOMB_SIDE)
    assert header_size(jpeg_claiming(BOMB_SIDE, BOMB_SIDE), "JPEG") == (BOMB_SIDE, BOMB_SIDE)


@pytest.mark.parametrize(("encoding", "make"), [(Encoding.PNG, png_claiming), (Encoding.JPEG, jpeg_claiming)])
def test_an_image_claiming_20000x20000_is_refused_from_its_header(no_pillow_open: None, encoding: Encoding,
                                                                  make: Any) -> None:  # fmt: skip
    fb = Framebuffer(64, 64)
    with pytest.raises(RegionError, match=f"{BOMB_SIDE}x{BOMB_SIDE}, region is 8x8"):
        fb.apply(raw_region(0, 0, 8, 8, encoding, make(BOMB_SIDE, BOMB_SIDE)))


@pytest.mark.parametrize(("encoding", "make"), [(Encoding.PNG, png_claiming), (Encoding.JPEG, jpeg_claiming)])
def test_a_region_declaring_the_bomb_size_is_refused_before_its_image(no_pillow_open: None, encoding: Encoding,
                                                                      make: Any) -> None:  # fmt: skip
    fb = Framebuffer(64, 64)
    with pytest.raises(RegionError, match="does not fit"):
        fb.apply(raw_region(0, 0, BOMB_SIDE, BOMB_SIDE, encoding, make(BOMB_SIDE, BOMB_SIDE)))


@pytest.mark.parametrize("data", [b"", b"\xff\xd8", b"\xff\xd8\xff\xda\x00\x02", b"\xff\xd8" + b"\xff\xe0\x00\x02" * 65,
                                  b"\xff\xd8\xff\xc0\x00\x01", b"\xff\xd8\xff\xc0\x00\x11\x08"])
def test_a_jpeg_without_a_readable_frame_header_is_an_image_header_error(data: bytes) -> None:
    with pytest.raises(ImageHeaderError):
        header_size(data, "JPEG")


def test_region_raw_size_bound_is_crossed_exactly() -> None:
    w = 512
    h_ok = MAX_REGION_RAW_BYTES // (w * 3)  # 682 rows fit, 683 do not
    assert w * h_ok * 3 <= MAX_REGION_RAW_BYTES < w * (h_ok + 1) * 3
    fb = Framebuffer(w, h_ok + 1)
    raw = b"\x05" * (w * h_ok * 3)
    fb.apply(raw_region(0, 0, w, h_ok, Encoding.RAW_LZ4, lz4.block.compress(raw, store_size=True)))
    assert fb.pixel(w - 1, h_ok - 1) == (5, 5, 5)
    big = lz4.block.compress(b"\x05" * (w * (h_ok + 1) * 3), store_size=True)
    with pytest.raises(RegionError, match="MAX_REGION_RAW_BYTES"):
        fb.apply(raw_region(0, 0, w, h_ok + 1, Encoding.RAW_LZ4, big))


def test_desktop_size_is_capped_before_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    allocated: list[tuple[int, int]] = []
    real_memory = framebuffer_module.PixelMemory  # where the framebuffer's pixels are allocated
    monkeypatch.setattr(framebuffer_module, "PixelMemory",
                        lambda w, h: allocated.append((w, h)) or real_memory(w, h))  # fmt: skip
    Framebuffer(MAX_FRAMEBUFFER_SIDE, 1)
    fb = Framebuffer(1, MAX_FRAMEBUFFER_SIDE)
    for width, height in ((MAX_FRAMEBUFFER_SIDE + 1, 1), (1, MAX_FRAMEBUFFER_SIDE + 1), (0x7FFF, 0x7FFF)):
        with pytest.raises(RegionError, match="out of range"):
            Framebuffer(width, height)
        with pytest.raises(RegionError, match="out of range"):
            fb.resize(width, height)
    assert allocated == [(MAX_FRAMEBUFFER_SIDE, 1), (1, MAX_FRAMEBUFFER_SIDE)]
    assert MAX_FRAMEBUFFER_SIDE * MAX_FRAMEBUFFER_SIDE * 3 <= 192 * 1024 * 1024


def connected_client(tmp_path: Any) -> tuple[SessionClient, StringTransport]:
    client = SessionClient("server:4443", KnownHosts(str(tmp_path / "known_hosts")))
    transport = StringTransport()
    client.makeConnection(transport)
    return client, transport


def test_a_desktop_size_of_0x7fff_closes_the_connection_with_a_reason(tmp_path: Any) -> None:
    client, transport = connected_client(tmp_path)
    failures: list[Any] = []
    client.ready.addErrback(failures.append)
    ended: list[Any] = []
    client.ended.addCallback(ended.append)
    client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, DesktopSize(0x7FFF, 0x7FFF)))
    assert client.framebuffer is None and client.conn.closed
    assert failures and isinstance(failures[0].value, ConnectionEnded)
    assert failures[0].value.code == ReasonCode.LIMIT_EXCEEDED
    assert transport.value()  # the CLOSE went out
    client.connectionLost(Failure(ConnectionDone()))
    assert ended and ended[0].code == ReasonCode.LIMIT_EXCEEDED  # what svclient reports to its user


def test_a_bomb_region_closes_the_connection_with_a_reason(tmp_path: Any) -> None:
    client, _transport = connected_client(tmp_path)
    client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, DesktopSize(64, 64)))
    waiting = client.next_frame()
    failures: list[Any] = []
    waiting.addErrback(failures.append)
    region = Region(0, 0, 8, 8, Encoding.PNG, png_claiming(BOMB_SIDE, BOMB_SIDE))
    client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, region))
    assert client.conn.closed
    assert failures and failures[0].value.code == ReasonCode.MALFORMED_MESSAGE
    assert f"{BOMB_SIDE}x{BOMB_SIDE}" in failures[0].value.message


def test_an_unexpected_failure_in_the_client_closes_with_a_reason_instead_of_raising(tmp_path: Any) -> None:
    client, _transport = connected_client(tmp_path)  # before HELLO: acknowledging a frame cannot work
    failures: list[Any] = []
    client.ready.addErrback(failures.append)
    client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, FrameEnd(1)))
    assert client.conn.closed and failures[0].value.code == ReasonCode.INTERNAL_ERROR


def test_an_undecodable_audio_packet_closes_the_audio_channel_only(tmp_path: Any) -> None:
    client = SessionClient("server:4443", KnownHosts(str(tmp_path / "known_hosts")))
    client.conn, server = handshaken_pair()
    transport = StringTransport()
    client.makeConnection(transport)
    channel = int(ChannelKind.AUDIO_OUT)
    open_pair_channel(client.conn, server, channel, ChannelKind.AUDIO_OUT)
    seen: list[Any] = []
    stream = StreamDecoder()

    def handler(message: Any) -> None:
        seen.append(message)
        if message is not None:
            stream.handle(message, 0.0)

    client.channel_handlers[channel] = handler
    client.event_received(MessageReceived(channel, ChannelKind.AUDIO_OUT, AudioData(0, 0, b"\x00opus?")))
    assert seen[-1] is None and channel not in client.channel_handlers  # its user is told: closed
    assert not client.conn.closed
    at_server = server.receive_data(transport.value())  # the CHANNEL_CLOSE the client wrote
    closed = [e for e in at_server if isinstance(e, ChannelClosed)]
    assert [(e.channel, e.code) for e in closed] == [(channel, ReasonCode.MALFORMED_MESSAGE)]
