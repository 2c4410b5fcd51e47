# The GUI paints straight from the framebuffer's memory (no copy of the
# damaged rows), so the reactor must never write what the GUI reads: the
# FrameGate's turns (client/viewer/gate.py). A real reactor-side thread applies
# frames through the real client library and DamageCollector while the real
# SessionWindow (Qt offscreen) paints; each frame is two regions, and the writer
# stops between them until the GUI reads (or 0.2 s pass), so a gate that let
# the GUI in mid-frame shows half of one frame over half of another.
"""FrameGate turns: no paint of a frame half written; bounded waits; detach; deferred refresh."""

from __future__ import annotations

import threading
from typing import Any

from client.fb_memory import swap_colour
from client.framebuffer import Framebuffer
from client.viewer.damage import DamageCollector
from client.viewer.gate import FrameGate
from protocol.messages import FrameEnd
from test_viewer_core import FakeClient, fill
from test_viewer_window import make, qt  # noqa: F401 - the Qt fixture

W, H = 64, 48
# Seconds the writer holds a frame open after its first half, for a GUI that (wrongly) reads then.
MID_FRAME_HOLD = 0.2


def colours(window: Any) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(top half, bottom half) of what a paint of WINDOW shows now."""
    image = window.grab().toImage()
    top, bottom = image.pixelColor(5, 5), image.pixelColor(5, H - 5)
    return (top.red(), top.green(), top.blue()), (bottom.red(), bottom.green(), bottom.blue())


def desktop(gate: FrameGate) -> tuple[FakeClient, DamageCollector]:
    client = FakeClient(framebuffer=Framebuffer(W, H))
    collector = DamageCollector(client, lambda: None, lambda: None, gate=gate)
    return client, collector


def write(client: FakeClient, collector: DamageCollector, region: Any) -> None:
    """What SessionClient does with a REGION: the gate's turn, apply, tell the collector."""
    collector.before_write()
    assert client.framebuffer is not None
    client.framebuffer.apply(region)
    collector(region)


def shade(k: int) -> tuple[int, int, int]:
    return (10 * k, 255 - 10 * k, 3 * k)


def test_the_gui_never_paints_a_frame_half_written(qt: Any) -> None:  # noqa: F811 - the fixture
    from client.viewer.window import SessionWindow

    window, _link = make(qt, id=0, width=W, height=H)
    assert isinstance(window, SessionWindow)
    gate = FrameGate(writer_wait=5.0, reader_wait=5.0)
    client, collector = desktop(gate)
    frames = 6
    mid, reading, failures = threading.Event(), threading.Event(), []

    def writer() -> None:
        try:
            for k in range(1, frames + 1):
                write(client, collector, fill(0, 0, W, H // 2, shade(k)))
                mid.set()
                reading.wait(MID_FRAME_HOLD)  # a gate that lets the GUI in now shows the top of k over k - 1
                write(client, collector, fill(0, H // 2, W, H - H // 2, shade(k)))
                collector(FrameEnd(seq=k))
        except Exception as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    try:
        for _k in range(frames):
            assert mid.wait(10)
            mid.clear()
            granted = gate.begin_read()
            assert granted
            reading.set()
            try:
                window.apply_patches(collector.take())
                seen.append(colours(window))  # a paint of the window now, from the memory
            finally:
                gate.end_read(True)
                reading.clear()
    finally:
        thread.join(20)
    assert not failures and not thread.is_alive()
    for top, bottom in seen:
        assert top == bottom, f"a torn frame painted: top {top}, bottom {bottom}"
    assert [top for top, _bottom in seen] == [shade(k) for k in range(1, frames + 1)]  # each frame, in turn
    assert gate.detaches == 0


def test_the_writer_waits_for_the_paint_of_what_it_lent() -> None:
    gate = FrameGate(writer_wait=5.0, reader_wait=0.01)
    client, collector = desktop(gate)
    write(client, collector, fill(0, 0, W, H, (1, 2, 3)))
    collector(FrameEnd(seq=1))
    opened = threading.Event()

    def writer() -> None:
        collector.before_write()  # the next frame: must wait until the GUI painted frame 1
        opened.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert not opened.wait(0.1), "the reactor wrote before the GUI painted the frame it lent"
    assert gate.begin_read()
    patches = collector.take()
    assert len(patches) == 1 and patches[0].memory is not None
    assert patches[0].pixels[:4] == bytes((*swap_colour((1, 2, 3)), 255))
    gate.end_read(True)
    assert opened.wait(5)
    thread.join(5)
    assert gate.open and not gate.begin_read()  # the frame is open now: no read (reader_wait, then False)


def test_a_gui_that_does_not_paint_makes_the_writer_detach_and_keeps_its_pixels() -> None:
    gate = FrameGate(writer_wait=0.05, reader_wait=0.01)
    client, collector = desktop(gate)
    write(client, collector, fill(0, 0, W, H, (9, 8, 7)))
    collector(FrameEnd(seq=1))
    assert gate.begin_read()
    patches = collector.take()  # the GUI has them and is stuck reading
    old = patches[0].memory
    assert old is not None and not old.frozen
    write(client, collector, fill(0, 0, W, H, (200, 100, 50)))  # waits writer_wait, then detaches
    assert gate.detaches == 1 and old.frozen
    assert client.framebuffer is not None and client.framebuffer.memory is not old
    assert patches[0].pixels == bytes((*swap_colour((9, 8, 7)), 255)) * W * H  # the frozen memory: frame 1
    assert client.framebuffer.pixel(0, 0) == (200, 100, 50)
    gate.end_read(True)
    collector(FrameEnd(seq=2))
    assert gate.begin_read()
    assert [p.memory for p in collector.take()] == [client.framebuffer.memory]
    gate.end_read(True)


def test_a_detached_memory_repaints_the_whole_window_from_the_new_one(qt: Any) -> None:  # noqa: F811
    window, _link = make(qt, id=0, width=W, height=H)
    gate = FrameGate(writer_wait=0.05, reader_wait=0.01)
    client, collector = desktop(gate)
    write(client, collector, fill(0, 0, W, H, (9, 8, 7)))
    collector(FrameEnd(seq=1))
    assert gate.begin_read()
    window.apply_patches(collector.take())
    write(client, collector, fill(0, 0, W, H // 2, (200, 100, 50)))  # the GUI still reads: detach
    gate.end_read(True)
    write(client, collector, fill(0, H // 2, W, H - H // 2, (1, 100, 50)))
    collector(FrameEnd(seq=2))
    assert gate.begin_read()
    window.apply_patches(collector.take())
    assert colours(window) == ((200, 100, 50), (1, 100, 50))
    assert client.framebuffer is not None and window.canvas._memory is client.framebuffer.memory
    gate.end_read(True)


def test_a_refresh_during_a_frame_waits_for_its_frame_end() -> None:
    gate = FrameGate(writer_wait=1.0, reader_wait=0.01)
    client, collector = desktop(gate)
    write(client, collector, fill(0, 0, W, H // 2, (5, 5, 5)))
    collector.refresh([0])
    assert gate.open  # nothing queued mid-frame
    collector(FrameEnd(seq=1))
    assert not gate.open and gate.begin_read()
    assert [(p.x, p.y, p.w, p.h) for p in collector.take()] == [(0, 0, W, H)]
    gate.end_read(True)


def test_the_session_client_opens_the_frame_before_it_writes_and_a_tile_closes_it(tmp_path: Any) -> None:
    from client.session import SessionClient
    from protocol.connection import MessageReceived
    from protocol.messages import ChannelKind, DesktopSize
    from test_client_held_ack import paired_client

    client, _server, _transport = paired_client(tmp_path)
    assert isinstance(client, SessionClient)
    order: list[str] = []

    def receive(message: Any) -> None:
        client.event_received(MessageReceived(int(ChannelKind.DISPLAY), ChannelKind.DISPLAY, message))

    def gate() -> None:  # what was drawn when the gate is asked: nothing of the coming region yet
        fb = client.framebuffer
        order.append(f"gate {fb.pixel(1, 1) if fb is not None else None}")

    client.display_gate = gate
    client.display_observers.append(lambda message: order.append(type(message).__name__))
    receive(DesktopSize(16, 8))
    receive(fill(0, 0, 16, 8, (7, 8, 9)))
    receive(FrameEnd(seq=1, ack_now=True))
    assert order == ["gate None", "DesktopSize", "gate (0, 0, 0)", "Region", "FrameEnd"]
