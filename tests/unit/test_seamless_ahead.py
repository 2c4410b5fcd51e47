"""Seamless mode's split-ahead (frame_window.send_ahead_by through
frame_sources.WindowSource): a typed key's echo in one window goes out as a frame
of its own before a big region of another window (a video), with its own
WINDOW_TARGET, only when the frame window has room; the window targets the
client ends up with are right for every region. And a key's echo skips the
max_fps slot a streaming video's next frame waits for (frame_delay)."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.media import FrameAck, FrameEnd, KeyTap, Region
from protocol.windows import WindowTarget
from sessiond.agent import display
from sessiond.agent.display import DisplayPipeline
from sessiond.agent.frame_sources import WindowSource
from sessiond.agent.encoder import Rect
from sessiond.agent.frame_window import AHEAD_MAX_RECTS, ECHO_SECONDS, frame_delay, split_ahead_by
from sessiond.agent.settings import AgentSettings
from test_link_estimate import FakeLoop, Link

TERM, PLAYER = 0x200001, 0x400001
ECHO = (10, 20, 12, 13)  # a glyph and the cursor
VIDEO = (0, 0, 480, 360)


class FakePixels:
    """composite.WindowPixels for two windows whose damage the test sets."""

    def __init__(self) -> None:
        self.sizes = {TERM: (484, 316), PLAYER: (480, 360)}
        self.damage: dict[int, list[Rect]] = {}

    def track(self, window: int) -> None:
        pass

    def untrack(self, window: int) -> None:
        pass

    def changed(self, window: int) -> None:
        pass

    def damaged(self) -> list[int]:
        return [window for window, rects in self.damage.items() if rects]

    def take(self, window: int) -> list[Rect]:
        return self.damage.pop(window, [])

    def size(self, window: int) -> tuple[int, int]:
        return self.sizes[window]

    def capture(self, window: int, rect: Rect) -> bytes:
        shade = 0x40 if window == TERM else 0x90
        return bytes((shade + (x * 7 + y * 3) % 17) & 0xFF for y in range(rect[3]) for x in range(rect[2] * 4))

    def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def frames(sent: list[Any]) -> list[list[tuple[int, Rect]]]:
    """Per frame, each region as (the window in force, its rectangle)."""
    out: list[list[tuple[int, Rect]]] = [[]]
    target = 0
    for message in sent:
        if isinstance(message, WindowTarget):
            target = message.window
        elif isinstance(message, Region):
            out[-1].append((target, (message.x, message.y, message.w, message.h)))
        elif isinstance(message, FrameEnd):
            out.append([])
    return out[:-1]


def pipeline_of(frames_in_flight: int) -> tuple[DisplayPipeline, FakePixels, FakeLoop, Link]:
    loop, link, pixels = FakeLoop(), Link(), FakePixels()
    settings = AgentSettings(socket="/x", frames_in_flight=frames_in_flight, display_adaptive=False)
    source = WindowSource(pixels, lambda _line: None)  # type: ignore[arg-type]
    pipeline = DisplayPipeline(loop, settings, source, lambda: link, lambda: None)  # type: ignore[arg-type]
    pipeline.opened()
    return pipeline, pixels, loop, link


def test_small_damage_of_several_windows_splits_together() -> None:
    ahead, rest = split_ahead_by({TERM: [ECHO], PLAYER: [VIDEO]})
    assert ahead == {TERM: [ECHO]} and rest == {TERM: [], PLAYER: [VIDEO]}
    assert split_ahead_by({TERM: [ECHO]}) == ({}, {TERM: [ECHO]})  # nothing big to wait for
    many = {window: [(i * 20, 0, 10, 10) for i in range(3)] for window in (TERM, TERM + 1)}
    assert len([r for rects in many.values() for r in rects]) > AHEAD_MAX_RECTS
    assert split_ahead_by({**many, PLAYER: [VIDEO]})[0] == {}  # more small rectangles than typing makes


def test_the_echo_of_one_window_goes_ahead_of_another_windows_video() -> None:
    pipeline, pixels, loop, link = pipeline_of(frames_in_flight=2)
    pixels.damage = {TERM: [ECHO], PLAYER: [VIDEO]}
    loop.calls.pop(0)()
    assert frames(link.conn.sent) == [[(TERM, ECHO)], [(PLAYER, VIDEO)]]
    ends = [m for m in link.conn.sent if isinstance(m, FrameEnd)]
    assert ends[0].ack_now  # the video's frame follows at once


def test_the_echo_goes_ahead_of_a_big_region_of_its_own_window() -> None:
    pipeline, pixels, loop, link = pipeline_of(frames_in_flight=2)
    pixels.damage = {TERM: [ECHO, (0, 100, 484, 200)]}
    loop.calls.pop(0)()
    assert frames(link.conn.sent) == [[(TERM, ECHO)], [(TERM, (0, 100, 484, 200))]]
    # One WINDOW_TARGET: the second frame goes on with the same window.
    assert len([m for m in link.conn.sent if isinstance(m, WindowTarget)]) == 1


def test_without_room_for_two_frames_the_echo_rides_in_the_one_frame() -> None:
    pipeline, pixels, loop, link = pipeline_of(frames_in_flight=2)
    pixels.damage = {PLAYER: [VIDEO]}
    loop.calls.pop(0)()  # one frame unacknowledged: room for one more, not two
    pixels.damage = {TERM: [ECHO], PLAYER: [VIDEO]}
    pipeline.schedule()
    loop.calls.pop(0)()
    assert frames(link.conn.sent)[1:] == [[(TERM, ECHO), (PLAYER, VIDEO)]]
    assert pipeline.frame_seq - pipeline.acked_seq == 2  # the window holds
    pipeline.message(FrameAck(2))
    pixels.damage = {TERM: [ECHO], PLAYER: [VIDEO]}
    pipeline.schedule()
    loop.calls.pop(0)()
    assert frames(link.conn.sent)[2:] == [[(TERM, ECHO)], [(PLAYER, VIDEO)]]


# -- a key's echo skips the max_fps slot ------------------------------------------------------
GAP = 1 / 60


def test_a_key_after_the_last_slot_skips_the_next_slot_for_a_while() -> None:
    # Streaming, 4 ms after the last slot: 12.7 ms to the next one.
    assert frame_delay(4.004, 4.0, GAP, True, 0.0, 0.0005, 0.0) == pytest.approx(GAP - 0.004)
    # A key came 1 ms ago: only the coalescing wait (and the bucket) remain.
    assert frame_delay(4.004, 4.0, GAP, True, 4.003, 0.0005, 0.0) == 0.0005
    assert frame_delay(4.004, 4.0, GAP, True, 4.003, 0.0005, 0.020) == 0.020  # max_kbps still holds
    # A key older than ECHO_SECONDS, or from before the last slot (its echo went), paces as before.
    assert frame_delay(4.003 + ECHO_SECONDS, 4.0, GAP, True, 4.003, 0.0005, 0.0) == 0.0  # the slot has passed
    assert frame_delay(4.004, 4.0, GAP, True, 4.0 + 0.003 - ECHO_SECONDS, 0.0005, 0.0) == pytest.approx(GAP - 0.004)
    assert frame_delay(4.004, 4.0, GAP, True, 3.999, 0.0005, 0.0) == pytest.approx(GAP - 0.004)


class TimedLoop(FakeLoop):
    """FakeLoop that records each timer's delay and honours cancel()."""

    def __init__(self) -> None:
        super().__init__()
        self.delays: list[float] = []

    def call_later(self, delay: float, fn: Any) -> Any:
        self.delays.append(delay)
        self.calls.append(fn)
        return Handle(self, fn)


class Handle:
    def __init__(self, loop: TimedLoop, fn: Any) -> None:
        self.loop, self.fn = loop, fn

    def cancel(self) -> None:
        self.loop.calls.remove(self.fn)


def test_an_echo_damaged_while_a_frame_waits_for_its_slot_goes_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(display.time, "monotonic", lambda: now[0])
    loop, link, pixels = TimedLoop(), Link(), FakePixels()
    settings = AgentSettings(socket="/x", frames_in_flight=4, display_adaptive=False)
    source = WindowSource(pixels, lambda _line: None)  # type: ignore[arg-type]
    pipeline = DisplayPipeline(loop, settings, source, lambda: link, lambda: None)  # type: ignore[arg-type]
    pipeline.opened()
    pixels.damage = {PLAYER: [VIDEO]}
    loop.calls.pop(0)()  # a video frame at t = 100 (its encode ends 5 ms later)
    now[0] += 0.005
    pixels.damage = {PLAYER: [VIDEO]}
    pipeline.schedule()
    waits = pipeline._slot + GAP - now[0]
    assert waits > 0.001 and loop.delays[-1] == pytest.approx(waits)  # the video's next frame waits for its slot
    pipeline.typed(KeyTap(keysym=0x61))  # a key came during the encode
    now[0] += 0.001
    pixels.damage[TERM] = [ECHO]  # xterm's echo, 1 ms later
    pipeline.schedule()
    assert loop.delays[-1] == display.FRAME_COALESCE_SECONDS and len(loop.calls) == 1  # re-armed sooner, once
    loop.calls.pop(0)()
    assert frames(link.conn.sent)[1:] == [[(TERM, ECHO)], [(PLAYER, VIDEO)]]  # the echo first, at once
    # The next video frame paces as before.
    now[0] += 0.002
    pixels.damage = {PLAYER: [VIDEO]}
    pipeline.schedule()
    assert loop.delays[-1] == pytest.approx(pipeline._slot + GAP - now[0]) and loop.delays[-1] > 0.001
