"""Seamless mode's split-ahead (frame_window.send_ahead_by through
display.WindowSource): a typed key's echo in one window goes out as a frame
of its own before a big region of another window (a video), with its own
WINDOW_TARGET, only when the frame window has room; the window targets the
client ends up with are right for every region."""

from __future__ import annotations

from typing import Any

from protocol.media import FrameAck, FrameEnd, Region
from protocol.windows import WindowTarget
from sessiond.agent.display import DisplayPipeline, WindowSource
from sessiond.agent.encoder import Rect
from sessiond.agent.frame_window import AHEAD_MAX_RECTS, split_ahead_by
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
