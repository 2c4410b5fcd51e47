"""The frame window (sessiond/agent/frame_window.py): widened from the link
estimate on long round trips when the byte budget allows, never past
MAX_FRAME_WINDOW; and the display pipeline on a fake slow link: more frames
per round trip, never more in flight than the bound, never stalled by a
client that holds every ack it may."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.base import Encoding
from protocol.media import FrameAck, FrameEnd, Region
from sessiond.agent.display import DisplayPipeline
from sessiond.agent.frame_window import (
    AHEAD_MAX_PIXELS,
    AHEAD_MAX_RECTS,
    IDLE_CATCH_UP_GAPS,
    MAX_CATCH_UP_GAPS,
    MAX_FRAME_WINDOW,
    FrameWindow,
    ack_threshold,
    frame_slot,
    send_ahead,
    split_ahead,
    widened_window,
)
from sessiond.agent.link_estimate import LinkEstimate
from sessiond.agent.settings import AgentSettings
from test_link_estimate import Clock, FakeLoop, FloodSource, Link

RATE = 10e6 / 8  # 10 Mbit/s in bytes/s


def measured_link(rtt: float, clock: Clock, size: int = 1000) -> LinkEstimate:
    """An estimate that saw frames of `size` bytes acknowledged `rtt` after they left."""
    est = LinkEstimate(clock)
    for seq in range(1, 21):
        est.frame_sent(seq, size, ack_now=True, app_limited=False)
        clock.now += rtt
        est.frame_acked(seq)
    return est


def test_an_unknown_link_keeps_the_configured_window() -> None:
    assert widened_window(2, None, None, None, 0.0, 60) == 2
    assert widened_window(2, 0.040, None, None, 1000.0, 60) == 2


def test_a_40_ms_link_with_small_frames_widens_to_what_60_fps_needs_through_a_round_trip() -> None:
    # 0.040 s x 60 frames/s = 2.4 -> 3 frames in the round trip, + the one being acknowledged.
    assert widened_window(2, 0.040, RATE, RATE * 0.09, 1000.0, 60) == 4
    # A LAN round trip needs no more than the configured window, even one frame.
    assert widened_window(2, 0.002, RATE, RATE * 0.09, 1000.0, 60) == 2
    assert widened_window(1, 0.010, RATE, RATE * 0.09, 1000.0, 60) == 1
    assert widened_window(1, 0.020, RATE, RATE * 0.09, 1000.0, 60) == 3


def test_the_byte_budget_limits_the_widening() -> None:
    # Three 30 kB frames fit a 100 kB budget, whatever the round trip asks for.
    assert widened_window(2, 0.100, RATE, 100_000.0, 30_000.0, 60) == 3
    # Frames bigger than the budget: never below the configured window.
    assert widened_window(2, 0.100, RATE, 16_000.0, 60_000.0, 60) == 2


def test_the_widened_window_never_crosses_its_hard_bound() -> None:
    assert widened_window(2, 1.0, RATE, 1e9, 100.0, 60) == MAX_FRAME_WINDOW  # asks for 61
    assert widened_window(2, 1.0, RATE, 1e9, 100.0, 240) == MAX_FRAME_WINDOW
    # An admin's larger window stays theirs (it is already their bound).
    assert widened_window(16, 1.0, RATE, 1e9, 100.0, 60) == 16


def test_ack_asked_when_the_configured_window_is_full_or_half_a_widened_one() -> None:
    assert ack_threshold(2, 2) == 2  # one echoed keystroke's ack may ride on the next key
    assert ack_threshold(1, 1) == 1
    assert ack_threshold(3, 2) == 2
    assert ack_threshold(8, 2) == 4
    assert ack_threshold(MAX_FRAME_WINDOW, 2) >= 2


def test_without_adaptive_the_window_is_the_configured_one() -> None:
    clock = Clock()
    est = measured_link(0.080, clock)
    assert FrameWindow(est, 2, 60, adaptive=False).size() == 2
    assert FrameWindow(est, 2, 60, adaptive=True).size() == 6  # ceil(4.8) + 1


def run_slow_client(adaptive: bool, delay_steps: int, rtt: float, steps: int = 400) -> tuple[list[FrameEnd], int]:
    """A flooding source (1 kB frames) and a client that holds every ack it
    may and answers an ack_now `delay_steps` loop turns later (its round
    trip); the estimate starts from a measured link of `rtt`. Returns the
    frames sent and the most frames ever unacknowledged."""
    loop, link = FakeLoop(), Link()
    settings = AgentSettings(socket="/x", frames_in_flight=2, display_adaptive=adaptive)
    pipeline = DisplayPipeline(loop, settings, FloodSource(1000), lambda: link, lambda: None)  # type: ignore[arg-type]
    pipeline.opened()
    clock = Clock()
    est = measured_link(rtt, clock)
    pipeline.link_estimate = pipeline.window.estimate = est
    acks: list[tuple[int, int]] = []  # (loop turn it arrives at, seq)
    asked = 0
    most = 0
    for step in range(steps):
        clock.now += 1 / 60
        for due, seq in [a for a in acks if a[0] <= step]:
            acks.remove((due, seq))
            pipeline.message(FrameAck(seq))
        if loop.calls:
            loop.calls.pop(0)()
        most = max(most, pipeline.frame_seq - pipeline.acked_seq)
        ends = [m for m in link.conn.sent if isinstance(m, FrameEnd)]
        for end in ends[asked:]:
            if end.ack_now:
                acks.append((step + delay_steps, end.seq))
        asked = len(ends)
        pipeline.schedule()  # more damage
    return [m for m in link.conn.sent if isinstance(m, FrameEnd)], most


def test_a_long_round_trip_gets_more_frames_through_within_the_bound() -> None:
    fixed, fixed_most = run_slow_client(adaptive=False, delay_steps=5, rtt=0.080)
    widened, widened_most = run_slow_client(adaptive=True, delay_steps=5, rtt=0.080)
    assert fixed_most <= 2
    assert 2 < widened_most <= MAX_FRAME_WINDOW
    assert len(widened) > 1.5 * len(fixed)  # more frames per round trip: the point of widening


@pytest.mark.parametrize("rtt", [0.080, 0.5, 2.0])
def test_a_client_holding_every_ack_never_stalls_a_widened_window_nor_exceeds_the_bound(rtt: float) -> None:
    ends, most = run_slow_client(adaptive=True, delay_steps=int(rtt * 60), rtt=rtt)
    assert most <= MAX_FRAME_WINDOW
    assert len(ends) >= 400 // (int(rtt * 60) + 1)  # kept going: every wait was announced by ack_now


def test_streaming_frames_ask_for_their_ack_and_a_lone_echo_does_not() -> None:
    clock = Clock()
    window = FrameWindow(measured_link(0.010, clock), 2, 60, adaptive=True)
    assert window.ack_now(1, 100, streaming=True)  # a scroll: the next frame must not wait for a held ack
    assert not window.ack_now(1, 100, streaming=False)  # an echo: its ack rides on the next key
    assert window.ack_now(2, 100, streaming=False)  # the window is full: the server waits for this ack


def test_a_late_frame_lets_the_next_start_early_but_never_bursts() -> None:
    gap = 1 / 60
    assert frame_slot(1.0, 1.0 + gap, gap) == pytest.approx(1.0 + gap)  # on time
    # 3 ms late: the slot stays nominal, so the next frame may start 3 ms early.
    assert frame_slot(1.0, 1.0 + gap + 0.003, gap) == pytest.approx(1.0 + gap)
    # Idle for a second (later than IDLE_GAPS): the next frame waits IDLE_CATCH_UP_GAPS less a gap, no burst.
    assert frame_slot(1.0, 2.0, gap) + gap - 2.0 == pytest.approx((1 - IDLE_CATCH_UP_GAPS) * gap)
    # Late by 1.5 gaps within a stream: the slot stays nominal, the next two may go at once.
    assert frame_slot(1.0, 1.0 + gap + 1.5 * gap, gap) == pytest.approx(1.0 + gap)
    # Late by half a gap more than MAX_CATCH_UP_GAPS: the grid keeps that much of it, loses the rest.
    late = 1.0 + gap + (MAX_CATCH_UP_GAPS + 0.5) * gap
    assert frame_slot(1.0, late, gap) + gap == pytest.approx(late - (MAX_CATCH_UP_GAPS - 1) * gap)
    # Frames at a steady 16.7 ms + 2 ms of jitter each still fill 60 slots a second.
    slot, start, frames = 0.0, 0.0, 0
    while start < 1.0:
        start = max(start, slot + gap) + 0.002  # the timer fires 2 ms late
        slot = frame_slot(slot, start, gap)
        frames += 1
    assert frames >= 58


def test_frames_the_x_server_held_back_do_not_cost_the_stream_its_rate() -> None:
    # Every 6th frame's capture waits 24 ms behind the X server (the next starts more than half a gap late):
    # paced by absolute deadlines, the frames after it start early and a second still holds 60.
    gap = 1 / 60
    slot, start, frames, ready = 0.0, 0.0, 0, 0.0
    while True:
        start = max(ready, slot + gap) + 0.001  # the timer fires 1 ms late
        if start >= 1.0:
            break
        slot = frame_slot(slot, start, gap)
        frames += 1
        ready = start + (0.030 if frames % 6 == 0 else 0.006)  # the frame's capture and encode
    assert frames >= 59


def test_frames_held_back_past_a_whole_gap_do_not_cost_the_stream_its_rate() -> None:
    # Every 4th frame may start only 1.6 gaps after its slot (its capture behind the X server, or the
    # window full until a busy viewer's ack): the stream still fills 60 slots a second. With one gap of
    # catch-up (MAX_CATCH_UP_GAPS before session 8) each lost 0.6 of a gap: 51 frames.
    gap = 1 / 60
    slot, start, frames, ready = 0.0, 0.0, 0, 0.0
    while True:
        due = slot + gap
        start = max(ready, due + (1.6 * gap if frames % 4 == 3 else 0.0)) + 0.001
        if start >= 1.0:
            break
        slot = frame_slot(slot, start, gap)
        frames += 1
        ready = start + 0.006  # the frame's capture and encode
    assert frames >= 59


def test_a_stream_never_starts_frames_faster_than_max_fps_on_average() -> None:
    # However late and bursty the starts, the frames of any second fill at most max_fps slots and one
    # second's debt: the catch-up spends lateness, it never adds slots.
    gap = 1 / 60
    slot, start, starts, ready = 0.0, 0.0, [], 0.0
    for index in range(600):
        start = max(ready, slot + gap) + (0.04 if index % 7 == 0 else 0.0005)
        slot = frame_slot(slot, start, gap)
        starts.append(start)
        ready = start + 0.002
    for first in range(len(starts)):
        inside = [t for t in starts[first:] if t < starts[first] + 1.0]
        assert len(inside) <= 60 + MAX_CATCH_UP_GAPS + 1


# -- small damage ahead of a big frame -------------------------------------------------------
ECHO = (10, 20, 12, 13)  # a glyph and the cursor
VIDEO = (520, 0, 480, 360)


def test_an_echo_beside_a_big_region_goes_ahead_and_alone_it_does_not() -> None:
    assert split_ahead([ECHO, VIDEO]) == ([ECHO], [VIDEO])
    assert split_ahead([ECHO]) == ([], [ECHO])  # nothing big to wait for
    assert split_ahead([VIDEO]) == ([], [VIDEO])
    assert split_ahead([ECHO, (0, 0, 100, 100)]) == ([], [ECHO, (0, 0, 100, 100)])  # the rest is small too


def test_more_small_rectangles_than_the_bound_are_not_typing() -> None:
    many = [(i * 20, 0, 10, 10) for i in range(AHEAD_MAX_RECTS + 1)]
    assert split_ahead([*many, VIDEO]) == ([], [*many, VIDEO])
    edge = (0, 0, 64, AHEAD_MAX_PIXELS // 64)
    assert split_ahead([edge, VIDEO])[0] == [edge]
    assert split_ahead([(0, 0, 65, AHEAD_MAX_PIXELS // 64), VIDEO])[0] == []


class AheadSource(FloodSource):
    """A source with the pipeline's split-ahead hook: each frame damages the
    echo and a big region; the echo goes through `ahead` when it is set."""

    def __init__(self) -> None:
        super().__init__(5000)
        self.ahead: Any = None

    def frame(self, encoder: Any) -> list[Any]:
        rest = send_ahead(self.ahead, [ECHO, VIDEO], lambda rects, _lossless: [Region(*r, Encoding.PALETTE, b"e")
                                                                                for r in rects])  # fmt: skip
        return [Region(*r, Encoding.JPEG, b"\0" * 5000) for r in rest]


def test_the_echo_is_a_frame_of_its_own_before_the_big_one_and_the_window_holds() -> None:
    loop, link = FakeLoop(), Link()
    settings = AgentSettings(socket="/x", frames_in_flight=2, display_adaptive=False)
    source = AheadSource()
    pipeline = DisplayPipeline(loop, settings, source, lambda: link, lambda: None)  # type: ignore[arg-type]
    pipeline.opened()
    loop.calls.pop(0)()
    sent = link.conn.sent
    ends = [i for i, m in enumerate(sent) if isinstance(m, FrameEnd)]
    assert len(ends) == 2  # two frames: the echo, then the big region
    first = sent[: ends[0]]
    assert [m.encoding for m in first if isinstance(m, Region)] == [Encoding.PALETTE]
    assert [m.encoding for m in sent[ends[0] + 1 : ends[1]] if isinstance(m, Region)] == [Encoding.JPEG]
    assert sent[ends[0]].ack_now  # another frame follows at once
    # The window (2) is now full: the next frame has no room for a split and waits for an ack.
    assert pipeline.frame_seq - pipeline.acked_seq == 2
    pipeline.message(FrameAck(1))
    loop.calls.pop(0)()
    later = [m for m in link.conn.sent[ends[1] + 1 :] if isinstance(m, (Region, FrameEnd))]
    assert [type(m).__name__ for m in later] == ["Region", "Region", "FrameEnd"]  # one frame: no room for two
    assert pipeline.frame_seq - pipeline.acked_seq <= 2


def idle_pipeline(max_fps: int = 1) -> tuple[FakeLoop, Link, FloodSource, DisplayPipeline, list[int]]:
    """An open pipeline whose first frame is out and acknowledged, then idle for
    ten seconds (its max_fps slot long past), with no damage; and its drain calls."""
    loop, link, drains = FakeLoop(), Link(), []
    settings = AgentSettings(socket="/x", frames_in_flight=2, max_fps=max_fps)
    source = FloodSource(100)
    source.always = False
    pipeline = DisplayPipeline(loop, settings, source, lambda: link, lambda: drains.append(1))  # type: ignore[arg-type]
    pipeline.opened()
    loop.calls.pop(0)()
    pipeline.message(FrameAck(pipeline.frame_seq))
    loop.calls.clear()
    pipeline._slot -= 10.0  # an idle spell
    pipeline.last_frame_at -= 10.0
    drains.clear()
    return loop, link, source, pipeline, drains


def ends(link: Link) -> int:
    return sum(isinstance(m, FrameEnd) for m in link.conn.sent)


def test_damage_on_an_idle_pipeline_sends_the_frame_within_the_call() -> None:
    loop, link, source, pipeline, drains = idle_pipeline()
    before = ends(link)
    source.damaged = True
    pipeline.damaged(drained=True)
    assert ends(link) == before + 1  # sent now, not after a loop turn
    assert loop.calls == []
    assert drains == []  # the caller had just drained the X connection
    pipeline.message(FrameAck(pipeline.frame_seq))
    pipeline._slot -= 10.0
    pipeline.last_frame_at -= 10.0
    source.damaged = True
    pipeline.damaged(drained=False)
    assert ends(link) == before + 2
    assert drains == [1]  # not drained by the caller: the frame drains first


def test_damage_right_after_a_frame_still_waits_for_its_max_fps_slot() -> None:
    loop, link, source, pipeline, _drains = idle_pipeline(max_fps=1)  # a slot a second: no test is that slow
    source.damaged = True
    pipeline.damaged(drained=True)
    sent = ends(link)
    source.damaged = True  # more damage at once: the pacing holds it for the next slot
    pipeline.damaged(drained=True)
    assert ends(link) == sent
    assert len(loop.calls) == 1
    loop.calls.pop(0)()
    assert ends(link) == sent + 1


def test_damage_with_a_full_frame_window_sends_nothing() -> None:
    loop, link, source, pipeline, _drains = idle_pipeline()
    for _ in range(2):  # two frames unacknowledged: the window (2) is full
        pipeline._slot -= 10.0
        pipeline.last_frame_at -= 10.0
        source.damaged = True
        pipeline.damaged(drained=True)
    sent = ends(link)
    pipeline._slot -= 10.0
    pipeline.last_frame_at -= 10.0
    source.damaged = True
    pipeline.damaged(drained=True)
    assert ends(link) == sent and loop.calls == []
    pipeline.message(FrameAck(pipeline.frame_seq))  # the ack lets it go (through the loop, as before)
    loop.calls.pop(0)()
    assert ends(link) == sent + 1
