"""LinkEstimate (RTT, drain rate, budget, quality, bitrate) on a fake clock, and
the display pipeline's FRAME_END ack_now: a client that holds every ack the
server lets it hold never stalls the server, and the server never has more
than its window of frames (or, adaptive, its byte budget) in flight."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.media import FrameAck, FrameEnd, Region
from protocol.base import Encoding
from sessiond.agent import link_estimate as le
from sessiond.agent.display import DisplayPipeline
from sessiond.agent.link_estimate import LinkEstimate
from sessiond.agent.settings import AgentSettings
from protocol.connection import frame_cost


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def link_of(rate: float, rtt: float, clock: Clock, frames: int = 20, size: int = 50_000) -> LinkEstimate:
    """An estimate fed `frames` back-to-back frames over a link of `rate` B/s and `rtt` s."""
    est = LinkEstimate(clock)
    for seq in range(1, frames + 1):
        est.frame_sent(seq, size, ack_now=True, app_limited=seq == 1)
        clock.now += size / rate
        est.frame_acked(seq - 1) if seq > 1 else None
    clock.now += rtt
    est.frame_acked(frames)
    return est


def test_rtt_is_the_minimum_of_immediate_acks_and_held_acks_say_nothing() -> None:
    clock = Clock()
    est = LinkEstimate(clock)
    assert est.rtt is None and est.bandwidth is None and est.budget() is None
    est.frame_sent(1, 100, ack_now=True, app_limited=True)
    clock.now += 0.040
    est.frame_acked(1)
    est.frame_sent(2, 100, ack_now=True, app_limited=True)
    clock.now += 0.060
    est.frame_acked(2)
    assert est.rtt == pytest.approx(0.040)
    est.frame_sent(3, 100, ack_now=False, app_limited=True)
    clock.now += 5.0  # the client held it until the user typed again
    est.frame_acked(3)
    assert est.rtt == pytest.approx(0.040)
    assert est.wants_sample()  # the newest sample is older than RTT_SAMPLE_MAX_AGE


def test_drain_rate_and_budget_of_a_10_mbit_40_ms_link() -> None:
    clock = Clock()
    rate = 10e6 / 8
    est = link_of(rate, 0.040, clock)
    assert est.bandwidth == pytest.approx(rate, rel=0.2)
    budget = est.budget()
    assert budget is not None
    # One round trip of bytes plus the 10 ms queue target: the echo of a keystroke
    # never waits behind more than that.
    rate, rtt = est.bandwidth, est.rtt
    assert rate is not None and rtt is not None
    assert budget == pytest.approx(rate * (le.BUDGET_GAIN * rtt + le.QUEUE_TARGET_SECONDS))


def test_an_idle_typing_link_does_not_look_slow() -> None:
    clock = Clock()
    rate = 10e6 / 8
    est = link_of(rate, 0.040, clock)
    known = est.bandwidth
    for seq in range(21, 60):  # an echo every 2.5 s, from an idle pipeline
        clock.now += 2.5
        est.frame_sent(seq, 90, ack_now=True, app_limited=True)
        clock.now += 0.040
        est.frame_acked(seq)
    assert est.bandwidth == known  # app-limited samples never lowered it, and it outlives its window


def test_budget_full_counts_bytes_in_flight_and_has_a_floor() -> None:
    clock = Clock()
    est = link_of(10_000.0, 0.040, clock, size=2_000)  # a very slow link
    assert est.budget() == le.MIN_BUDGET_BYTES
    big = link_of(10_000.0, 0.040, Clock(), size=20_000)
    assert (big.budget() or 0) >= le.MIN_BUDGET_FRAMES * big.frame_bytes  # room for two average frames
    est.frame_sent(100, 4_000, ack_now=False, app_limited=False)
    budget = est.budget()
    assert budget == le.MIN_BUDGET_BYTES
    assert not est.budget_full(extra=budget - 4_000 - 1)
    assert est.budget_full(extra=budget - 4_000)


def test_jpeg_quality_falls_on_a_slow_link_and_recovers_on_a_fast_one() -> None:
    clock = Clock()
    slow = link_of(200_000.0, 0.040, clock, frames=60, size=60_000)  # 0.3 s per frame
    assert slow.jpeg_quality(75) == 75  # the pipeline never waited for an ack: the encoder set the pace
    slow = LinkEstimate(clock)
    for seq in range(1, 61):  # the same link, with the pipeline waiting for each ack
        slow.frame_sent(seq, 60_000, ack_now=True, app_limited=seq == 1)
        slow.waited()
        clock.now += 60_000 / 200_000.0 + 0.040
        slow.frame_acked(seq)
    assert slow.jpeg_quality(75) < 75
    assert slow.jpeg_quality(75) >= le.MIN_JPEG_QUALITY
    clock2 = Clock()
    fast = link_of(100e6, 0.002, clock2, frames=60, size=60_000)
    assert fast.jpeg_quality(75) == 75
    assert fast.jpeg_quality(20) == 20  # never above what the admin configured


def test_target_bitrate_follows_the_link_within_bounds() -> None:
    clock = Clock()
    assert LinkEstimate(clock).target_bitrate() == le.DEFAULT_VIDEO_BITRATE
    est = link_of(10e6 / 8, 0.040, clock)
    assert est.target_bitrate() == pytest.approx(10e6 * le.VIDEO_SHARE, rel=0.2)
    assert link_of(1e9, 0.001, Clock()).target_bitrate() == le.MAX_VIDEO_BITRATE
    assert link_of(1_000.0, 0.040, Clock(), size=500).target_bitrate() == le.MIN_VIDEO_BITRATE


def test_refinement_waits_longer_on_a_slow_link() -> None:
    fast = link_of(100e6, 0.002, Clock())
    slow = link_of(100_000.0, 0.040, Clock(), size=10_000)
    assert fast.refine_delay(200_000) == le.MIN_REFINE_DELAY
    assert slow.refine_delay(200_000) > 2.0
    assert slow.refine_delay(10**9) == le.MAX_REFINE_DELAY


def test_tracked_frames_are_bounded() -> None:
    est = LinkEstimate(Clock())
    for seq in range(1, le.MAX_TRACKED_FRAMES + 10):
        est.frame_sent(seq, 1, ack_now=False, app_limited=False)
    assert est.in_flight_bytes == le.MAX_TRACKED_FRAMES


# -- the pipeline: ack_now and the bounds on what is in flight ------------------------
class FakeLoop:
    def __init__(self) -> None:
        self.calls: list[Callable[[], None]] = []

    def call_later(self, _delay: float, fn: Callable[[], None]) -> Any:
        self.calls.append(fn)
        return self

    def cancel(self) -> None:
        pass


class FloodSource:
    """Always damaged (or, not `always`, damaged only when told): every frame
    is one region of `size` bytes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.always = True
        self.damaged = True

    def pending(self) -> bool:
        return self.damaged

    def mark_all(self) -> None:
        pass

    def frame(self, encoder: Any) -> list[Any]:
        self.damaged = self.always
        return [Region(0, 0, 1, 1, Encoding.JPEG, b"\0" * self.size)]


class Conn:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, _channel: int, message: Any) -> int:
        self.sent.append(message)
        return frame_cost(message)


class Link:
    def __init__(self) -> None:
        self.conn = Conn()

    def flush(self) -> None:
        pass


def run_holding_client(adaptive: bool, frames_in_flight: int, steps: int = 200,
                       spaced: bool = False) -> tuple[list[FrameEnd], int]:  # fmt: skip
    """A client that acks only when FRAME_END says ack_now (it never types):
    the frames the server sent and the most it ever had in flight. SPACED:
    every frame comes from an idle pipeline (typing), else back to back."""
    loop, link = FakeLoop(), Link()
    settings = AgentSettings(socket="/x", frames_in_flight=frames_in_flight, display_adaptive=adaptive)
    source = FloodSource(30_000)
    source.always = not spaced
    pipeline = DisplayPipeline(loop, settings, source, lambda: link, lambda: None)  # type: ignore[arg-type]
    pipeline.opened()
    most = 0
    for _ in range(steps):
        if not loop.calls:
            break
        if spaced:
            pipeline.last_frame_at = 0.0  # long ago: not a stream
        loop.calls.pop(0)()
        most = max(most, pipeline.frame_seq - pipeline.acked_seq)
        ends = [m for m in link.conn.sent if isinstance(m, FrameEnd)]
        if ends and ends[-1].ack_now and pipeline.acked_seq < ends[-1].seq:
            pipeline.message(FrameAck(ends[-1].seq))
        source.damaged = True
        pipeline.schedule()  # the damage connection says: more damage
    return [m for m in link.conn.sent if isinstance(m, FrameEnd)], most


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("window", [1, 2, 4])
@pytest.mark.parametrize("spaced", [False, True])
def test_a_client_holding_every_ack_it_may_never_stalls_the_server(adaptive: bool, window: int,
                                                                    spaced: bool) -> None:  # fmt: skip
    ends, most = run_holding_client(adaptive, window, spaced=spaced)
    assert len(ends) >= 100  # kept going: every wait for an ack was announced by ack_now
    assert most <= window
    held = sum(1 for end in ends if not end.ack_now)
    if spaced:
        # Frames of an idle pipeline (echoes) with a window of more than one
        # frame: some acks may be held for the next keystroke (and were).
        assert held > len(ends) // 3 if window > 1 else held == 0
    else:
        # Back to back (a scroll): each frame is acknowledged at once, so the
        # next never waits a round trip for an ack the client was holding.
        assert held <= 1


def test_adaptive_budget_asks_for_the_ack_when_a_round_trip_of_bytes_is_in_flight() -> None:
    loop, link = FakeLoop(), Link()
    settings = AgentSettings(socket="/x", frames_in_flight=8, display_adaptive=True)
    pipeline = DisplayPipeline(loop, settings, FloodSource(30_000), lambda: link, lambda: None)  # type: ignore[arg-type]
    clock = Clock()
    pipeline.link_estimate = pipeline.window.estimate = link_of(10e6 / 8, 0.040, clock, size=20_000)  # budget ~112 kB
    pipeline.opened = lambda: None  # type: ignore[method-assign]
    pipeline.open = True
    pipeline._owed = True
    pipeline.schedule()
    for _ in range(10):
        if loop.calls:
            loop.calls.pop(0)()
        pipeline.schedule()
    ends = [m for m in link.conn.sent if isinstance(m, FrameEnd)]
    budget = pipeline.link_estimate.budget()
    assert budget is not None
    assert 1 <= len(ends) <= int(budget // 30_000) + 1  # stopped by bytes, long before the 8-frame window
    assert ends[-1].ack_now
    assert pipeline.link_estimate.in_flight_bytes >= budget


def test_typing_alone_gives_no_bandwidth_estimate_so_nothing_is_throttled() -> None:
    clock = Clock()
    est = LinkEstimate(clock)
    for seq in range(1, 20):  # echoes from an idle pipeline, acked at once
        clock.now += 0.5
        est.frame_sent(seq, 90, ack_now=True, app_limited=True)
        clock.now += 0.040
        est.frame_acked(seq)
    assert est.rtt == pytest.approx(0.040)
    assert est.bandwidth is None and est.budget() is None
    assert est.jpeg_quality(75) == 75


@pytest.mark.parametrize("adaptive", [False, True])
def test_damage_read_during_a_capture_gets_its_frame_without_any_ack(adaptive: bool) -> None:
    """The capture's round trip reads damage events off the socket, so nothing
    announces them: the pipeline must schedule itself after each frame (it
    used to rely on every frame's ack, which a client may now hold)."""
    loop, link = FakeLoop(), Link()
    settings = AgentSettings(socket="/x", frames_in_flight=2, display_adaptive=adaptive)
    pipeline = DisplayPipeline(loop, settings, FloodSource(100), lambda: link, lambda: None)  # type: ignore[arg-type]
    pipeline.opened()
    for _ in range(50):  # no damage events, no schedule() from outside: only acks the server asked for
        if not loop.calls:
            break
        loop.calls.pop(0)()
        ends = [m for m in link.conn.sent if isinstance(m, FrameEnd)]
        if ends and ends[-1].ack_now and pipeline.acked_seq < ends[-1].seq:
            pipeline.message(FrameAck(ends[-1].seq))
    assert len([m for m in link.conn.sent if isinstance(m, FrameEnd)]) >= 40


def scanned(samples: Any, now: float, window: float, pick: Callable[[list[float]], float],
            last: float | None) -> float | None:  # fmt: skip
    """The RTT (min) or drain rate (max) as a scan of every sample gives it (the reference)."""
    recent = [value for at, value in samples if at >= now - window]
    return pick(recent) if recent else last


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["send", "ack", "ask", "tick"]), st.floats(-0.2, 12.0),
                          st.integers(1, 200_000), st.booleans()), max_size=120))  # fmt: skip
def test_rtt_and_rate_are_what_a_scan_of_the_samples_gives(steps: list[tuple[str, float, int, bool]]) -> None:
    """However frames, acks, questions and the clock (back steps too) come,
    the kept answers of rtt and bandwidth equal a scan of the samples in
    their windows at every question, and the samples are those it keeps."""
    clock = Clock()
    est = LinkEstimate(clock)
    seq = acked = 0
    last_rtt: float | None = None
    last_rate: float | None = None
    for action, step, size, flag in steps:
        clock.now += step
        if action == "send":
            seq += 1
            est.frame_sent(seq, size, ack_now=flag or seq % 3 == 0, app_limited=not flag and seq % 5 == 0)
        elif action == "ack" and acked < seq:
            acked = min(seq, acked + 1 + size % 3)
            est.frame_acked(acked)
        elif action == "tick":
            clock.now += 30.0 if flag else 0.0  # past both windows: only the last answers remain
        for _ in range(2 if flag else 1):  # asked twice: the kept answer
            last_rtt = scanned(est._rtt, clock.now, le.RTT_WINDOW_SECONDS, min, last_rtt)
            last_rate = scanned(est._rate, clock.now, le.RATE_WINDOW_SECONDS, max, last_rate)
            assert est.rtt == last_rtt
            assert est.bandwidth == last_rate


def test_a_kept_answer_ends_when_its_oldest_sample_leaves_the_window() -> None:
    clock = Clock()
    est = LinkEstimate(clock)
    est.frame_sent(1, 1000, ack_now=True, app_limited=False)
    clock.now += 0.010
    est.frame_acked(1)  # an RTT sample of 10 ms
    clock.now += 1.0
    est.frame_sent(2, 1000, ack_now=True, app_limited=False)
    clock.now += 0.050
    est.frame_acked(2)  # 50 ms, a second later
    assert est.rtt == pytest.approx(0.010)
    clock.now += le.RTT_WINDOW_SECONDS - 1.0  # the 10 ms sample is past the window, the 50 ms one is not
    assert est.rtt == pytest.approx(0.050)
    clock.now -= 5.0  # a clock that went back: both are inside again
    assert est.rtt == pytest.approx(0.010)
