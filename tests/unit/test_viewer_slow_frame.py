# A frame whose regions come slowly (a full-screen JPEG or H.264 key frame on
# a link of a few Mbit/s), or whose FRAME_END never comes, must not keep the
# viewer's GUI out of the framebuffer memory: the client library holds the
# frame's messages until its FRAME_END (client/frame_hold.py) and applies them
# whole, so the FrameGate is open only while one frame is applied. Driven
# through the real SessionClient (a paired in-memory connection), the real
# DamageCollector and FrameGate, and the real SessionWindow under Qt offscreen.
# What a user would notice is asserted: each paint shows one whole earlier
# frame, never UNDRAWN over pixels already shown, and no paint has to wait for
# the reactor (the gate counts the reads that found a frame open).
"""Slow frames and frames that never end: the GUI paints the last whole frame; the hold's byte bound."""

from __future__ import annotations

from typing import Any

import pytest

from client.frame_hold import MAX_HELD_FRAME_BYTES, FrameHold, FrameTooLarge
from client.session import SessionClient
from client.viewer.damage import DamageCollector
from client.viewer.gate import FrameGate
from protocol.connection import ConnectionClosed, MessageReceived
from protocol.errors import ReasonCode
from protocol.limits import HEADER_SIZE
from protocol.messages import ChannelKind, DesktopSize, Encoding, FrameEnd, Message, Region
from protocol.windows import WindowTarget
from test_client_held_ack import paired_client
from test_viewer_core import fill, window_new
from test_viewer_gate import desktop, write
from test_viewer_window import make, qt  # noqa: F401 - the Qt fixture

W, H = 64, 48
SEAMLESS_WINDOW = 5
UNDRAWN_RGB = (48, 48, 48)
DISPLAY = int(ChannelKind.DISPLAY)
# REGION payload: u16 x, y, w, h and u8 encoding before the data.
REGION_HEAD = 9


def rgb(colour: Any) -> tuple[int, int, int]:
    return colour.red(), colour.green(), colour.blue()


def halves(image: Any) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(top half, bottom half) of IMAGE (a window's W x H pixels)."""
    return rgb(image.pixelColor(5, 5)), rgb(image.pixelColor(5, H - 5))


class Screen:
    """What the window shows: Qt's backing store keeps what was painted until a paint
    paints over it, so an expose is rendered over the previous picture (not a fresh one)."""

    def __init__(self, window: Any) -> None:
        from PySide6.QtGui import QColor, QPixmap

        self.window = window
        self.picture = QPixmap(window.size())
        self.picture.fill(QColor(255, 0, 255))  # never painted: magenta

    def expose(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Repaint all of the window (an expose, another window moved over ours) and read it."""
        from PySide6.QtCore import QPoint
        from PySide6.QtGui import QRegion
        from PySide6.QtWidgets import QWidget

        self.window.render(self.picture, QPoint(), QRegion(), QWidget.RenderFlag.DrawChildren)
        return halves(self.picture.toImage())


class Viewer:
    """A SessionClient wired as ViewerLink wires it, and the GUI's paint of what it queued."""

    def __init__(self, tmp_path: Any, seamless: bool) -> None:
        self.client, self.server, self.transport = paired_client(tmp_path)
        self.gate = FrameGate(writer_wait=1.0, reader_wait=0.05)
        self.collector = DamageCollector(self.client, lambda: None, lambda: None, gate=self.gate)
        self.client.display_observers.append(self.collector)
        self.client.display_gate = self.collector.before_write
        self.client.hold_frames = True
        self.seamless = seamless
        if seamless:
            self.client.windows.message(window_new(SEAMLESS_WINDOW, width=W, height=H))
            self.receive(WindowTarget(window=SEAMLESS_WINDOW, width=W, height=H))
        else:
            self.receive(DesktopSize(W, H))

    def receive(self, message: Message) -> None:
        self.client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, message))

    def paint_queued(self, window: Any) -> None:
        """What ViewerUi.on_pixels does: the queued patches painted under the gate."""
        assert self.gate.begin_read()
        try:
            window.apply_patches(self.collector.take())
        finally:
            self.gate.end_read(True)
            self.collector.painted()


@pytest.mark.parametrize("seamless", [False, True], ids=["desktop", "seamless"])
def test_while_a_frame_arrives_slowly_every_paint_shows_the_last_whole_frame(qt: Any, tmp_path: Any,  # noqa: F811
                                                                             seamless: bool) -> None:  # fmt: skip
    viewer = Viewer(tmp_path, seamless)
    window, _link = make(qt, id=SEAMLESS_WINDOW if seamless else 0, width=W, height=H)
    screen = Screen(window)
    first, second, third = (9, 8, 7), (200, 100, 50), (1, 100, 250)
    viewer.receive(fill(0, 0, W, H, first))
    viewer.receive(FrameEnd(seq=1))
    viewer.paint_queued(window)
    assert screen.expose() == (first, first)
    # Frame 2 comes region by region; the GUI paints in between (exposes, a test reading the pixels).
    for region in (fill(0, 0, W, H // 2, second), fill(0, H // 2, W, H - H // 2, second),
                   fill(0, 0, W, H // 2, third)):  # fmt: skip
        viewer.receive(region)
        assert not viewer.gate.open  # the GUI may read at once: nothing of frame 2 is applied yet
        assert screen.expose() == (first, first)
        assert halves(window.image) == (first, first)
    assert viewer.gate.reader_waits == 0  # no paint waited for the reactor
    viewer.receive(FrameEnd(seq=2))
    viewer.paint_queued(window)
    assert screen.expose() == (third, second)  # frame 2, whole
    assert halves(window.image) == (third, second)
    assert viewer.gate.reader_waits == 0 and viewer.gate.refused_reads == 0


@pytest.mark.parametrize("seamless", [False, True], ids=["desktop", "seamless"])
def test_a_frame_that_never_ends_leaves_the_last_whole_frame_on_screen(qt: Any, tmp_path: Any,  # noqa: F811
                                                                       seamless: bool) -> None:  # fmt: skip
    viewer = Viewer(tmp_path, seamless)
    window, _link = make(qt, id=SEAMLESS_WINDOW if seamless else 0, width=W, height=H)
    screen = Screen(window)
    viewer.receive(fill(0, 0, W, H, (9, 8, 7)))
    viewer.receive(FrameEnd(seq=1))
    viewer.paint_queued(window)
    for k in range(20):  # regions, and never a FRAME_END
        viewer.receive(fill(0, (k * 7) % (H - 4), W, 4, (k, 255 - k, 0)))
        window.resize(W + k % 2, H)  # resizes and exposes repaint from the memory: never refused
        assert screen.expose() == ((9, 8, 7), (9, 8, 7))
    assert viewer.gate.reader_waits == 0 and not viewer.gate.open
    assert viewer.client.frame_hold.held_bytes > 0


def test_a_paint_refused_by_the_gate_leaves_what_the_window_showed(qt: Any) -> None:  # noqa: F811
    # Even a frame that takes longer than READER_WAIT_SECONDS to apply is not shown half
    # applied, and the window keeps the earlier frame it showed rather than UNDRAWN.
    window, _link = make(qt, id=0, width=W, height=H)
    screen = Screen(window)
    gate = FrameGate(writer_wait=1.0, reader_wait=0.01)
    client, collector = desktop(gate)
    write(client, collector, fill(0, 0, W, H, (9, 8, 7)))
    collector(FrameEnd(seq=1))
    assert gate.begin_read()
    window.apply_patches(collector.take())
    gate.end_read(True)
    assert screen.expose() == ((9, 8, 7), (9, 8, 7))
    write(client, collector, fill(0, 0, W, H // 2, (200, 100, 50)))  # a frame being applied: the gate is open
    assert screen.expose() == ((9, 8, 7), (9, 8, 7))  # refused: neither the half frame nor UNDRAWN
    assert gate.refused_reads == 1
    write(client, collector, fill(0, H // 2, W, H - H // 2, (200, 100, 50)))
    collector(FrameEnd(seq=2))
    assert screen.expose() == ((200, 100, 50), (200, 100, 50))


def test_canvas_image_never_returns_a_frame_half_applied(qt: Any) -> None:  # noqa: F811
    window, _link = make(qt, id=0, width=W, height=H)
    gate = FrameGate(writer_wait=1.0, reader_wait=0.01)
    client, collector = desktop(gate)
    write(client, collector, fill(0, 0, W, H, (9, 8, 7)))
    collector(FrameEnd(seq=1))
    assert gate.begin_read()
    window.apply_patches(collector.take())
    gate.end_read(True)
    write(client, collector, fill(0, 0, W, H // 2, (200, 100, 50)))  # the gate is open: half a frame in memory
    assert halves(window.canvas.image) == (UNDRAWN_RGB, UNDRAWN_RGB)  # nothing read yet: undrawn, not the half
    write(client, collector, fill(0, H // 2, W, H - H // 2, (200, 100, 50)))
    collector(FrameEnd(seq=2))
    assert halves(window.canvas.image) == ((200, 100, 50), (200, 100, 50))  # read whole, and kept
    assert gate.begin_read()
    window.apply_patches(collector.take())  # painted: the next frame may open at once
    gate.end_read(True)
    write(client, collector, fill(0, 0, W, H // 2, (1, 2, 3)))
    assert halves(window.canvas.image) == ((200, 100, 50), (200, 100, 50))  # the last whole frame read
    assert gate.refused_reads == 2 and gate.detaches == 0


def test_the_hold_bound_is_counted_before_a_message_is_kept() -> None:
    hold = FrameHold()
    hold.reserve(MAX_HELD_FRAME_BYTES)  # exactly the bound: held
    with pytest.raises(FrameTooLarge):
        hold.reserve(1)
    assert hold.held_bytes == MAX_HELD_FRAME_BYTES
    assert hold.release() == [] and hold.held_bytes == 0
    hold.reserve(1)


def big_region(cost: int) -> Region:
    """A REGION whose frame costs COST bytes on the wire (undecodable: held, never applied)."""
    return Region(x=0, y=0, w=8, h=8, encoding=Encoding.JPEG, data=b"\xab" * (cost - HEADER_SIZE - REGION_HEAD))


def send(client: SessionClient, server: Any, transport: Any, message: Message) -> list[Any]:
    """MESSAGE from the server over the paired connection (credit flowing back); the server's events."""
    server.send(DISPLAY, message)
    client.dataReceived(server.data_to_send())
    events = server.receive_data(transport.value())
    transport.clear()
    return list(events)


def test_a_server_whose_frame_crosses_the_hold_bound_is_closed_with_limit_exceeded(tmp_path: Any) -> None:
    client, server, transport = paired_client(tmp_path / "a")
    other, other_server, other_transport = paired_client(tmp_path / "b")  # another connection of the process
    for each in (client, other):
        each.hold_frames = True
    seen: list[Message] = []
    client.display_observers.append(seen.append)
    send(client, server, transport, DesktopSize(W, H))
    send(client, server, transport, fill(0, 0, W, H, (9, 8, 7)))
    send(client, server, transport, FrameEnd(seq=1))
    assert client.framebuffer is not None and client.framebuffer.pixel(0, 0) == (9, 8, 7)
    seen.clear()
    piece = 2 * 1024 * 1024  # the largest display frame: MAX_HELD_FRAME_BYTES is a whole number of them
    for _ in range(MAX_HELD_FRAME_BYTES // piece):
        events = send(client, server, transport, big_region(piece))
        assert not any(isinstance(e, ConnectionClosed) for e in events)
    assert client.frame_hold.held_bytes == MAX_HELD_FRAME_BYTES and client._end is None  # the bound itself: held
    events = send(client, server, transport, fill(0, 0, 1, 1, (1, 1, 1)))  # 20 bytes more
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert len(closed) == 1 and closed[0].code == ReasonCode.LIMIT_EXCEEDED
    assert "before its FRAME_END" in closed[0].message
    assert client._end is not None and client._end.code == ReasonCode.LIMIT_EXCEEDED
    assert client.frame_hold.held_bytes == 0 and client.frame_hold.messages == []  # let go
    assert seen == [] and client.framebuffer.pixel(0, 0) == (9, 8, 7)  # nothing of that frame applied
    # The other connection goes on: its frames are drawn.
    for message in (DesktopSize(W, H), fill(0, 0, W, H, (4, 5, 6)), FrameEnd(seq=1)):
        send(other, other_server, other_transport, message)
    assert other._end is None and other.framebuffer is not None and other.framebuffer.pixel(3, 3) == (4, 5, 6)


def test_a_key_echo_and_a_tile_are_applied_at_their_frame_end(tmp_path: Any) -> None:
    # The echo's region and FRAME_END come in one read: holding changes nothing of when it is drawn.
    client, server, transport = paired_client(tmp_path)
    client.hold_frames = True
    order: list[str] = []
    client.display_gate = lambda: order.append("gate")
    client.display_observers.append(lambda message: order.append(type(message).__name__))
    server.send(DISPLAY, DesktopSize(16, 8))
    server.send(DISPLAY, fill(0, 0, 16, 8, (7, 8, 9)))
    server.send(DISPLAY, FrameEnd(seq=1, ack_now=True))
    server.send(DISPLAY, fill(2, 2, 1, 1, (1, 2, 3)))
    client.dataReceived(server.data_to_send())  # a read: a frame, and a region of the next one
    assert order == ["gate", "DesktopSize", "gate", "Region", "FrameEnd"]
    assert client.framebuffer is not None and client.framebuffer.pixel(2, 2) == (7, 8, 9)  # held
    order.clear()
    server.send(DISPLAY, FrameEnd(seq=2, ack_now=True))
    client.dataReceived(server.data_to_send())
    assert order == ["gate", "Region", "FrameEnd"] and client.framebuffer.pixel(2, 2) == (1, 2, 3)
