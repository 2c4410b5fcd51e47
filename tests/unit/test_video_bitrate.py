# Adaptive video bitrate through the display pipeline, on a simulated clock:
# a client whose CPU sets the frame rate (acks come at the same rate
# whatever the bitrate, and the measured drain rate follows the frame size
# down) keeps the encoder's bitrate, where it used to be lowered step by
# step to the floor; a link that is the limit (smaller frames drain faster)
# still gets its lower bitrate. video_bitrate.BitrateProbe's rules alone too.
"""Unit tests: a lower video bitrate is kept only while it raises the frame rate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from protocol.messages import FrameAck
from sessiond.agent.display import VIDEO_BITRATE_STEP
from sessiond.agent.h264 import DEFAULT_BITRATE
from sessiond.agent.video_bitrate import HOLD_SECONDS, BitrateProbe
from test_video_pipeline import FakeLink, VideoSource, pipeline_with

FLOOR = 200_000  # link_estimate.MIN_VIDEO_BITRATE


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FollowingEstimate:
    """The drain rate a window-bound sender measures: what it sent, so the
    link's target follows the current bitrate (VIDEO_SHARE of it)."""

    def __init__(self, target: Callable[[], int]) -> None:
        self.bandwidth = 1.0
        self.target = target

    def target_bitrate(self) -> int:
        return self.target()

    def frame_acked(self, seq: int) -> None:
        pass


def simulate(seconds: float, fps_at: Callable[[int], float], target_at: Callable[[int], int]) -> list[int]:
    """The streams' bitrate after each acked frame, for `seconds` of simulated time."""
    async def run() -> list[int]:
        source = VideoSource()
        pipeline = pipeline_with(source, FakeLink())
        clock = Clock()
        pipeline.bitrate_probe = BitrateProbe(clock)
        pipeline.link_estimate = FollowingEstimate(lambda: target_at(source.video.bitrate))  # type: ignore[assignment]
        pipeline.frame_seq = 1 << 30
        seen, seq, end = [], 0, clock.now + seconds
        while clock.now < end:
            clock.now += 1.0 / fps_at(source.video.bitrate)
            seq += 1
            pipeline.message(FrameAck(seq=seq))
            pipeline._adapt_video_bitrate()
            seen.append(source.video.bitrate)
        return seen

    return asyncio.run(run())


def test_a_cpu_bound_client_keeps_the_encoder_bitrate() -> None:
    # 12 frames/s at the default, a little faster with fewer bits (15x fewer: 1.5x the frames, as
    # measured under 3 CPU burners); the measured rate follows the bitrate down.
    seen = simulate(60.0, lambda bitrate: 12.0 * (DEFAULT_BITRATE / bitrate) ** 0.15,
                    lambda bitrate: max(FLOOR, int(bitrate * 0.7)))
    assert min(seen) >= DEFAULT_BITRATE / 1.5, f"lowered to {min(seen)}"  # one step tried, then given back
    assert seen[-1] == DEFAULT_BITRATE
    changes = sum(1 for a, b in zip(seen, seen[1:]) if a != b)
    assert changes <= 2 * (60.0 / HOLD_SECONDS + 1), changes  # a probe and its undoing per hold, at most


def test_a_slow_link_still_gets_its_lower_bitrate() -> None:
    # A 1.2 Mbit/s link: frames of bitrate / 30 bytes drain at 1.2e6 / bitrate frames a frame time.
    seen = simulate(30.0, lambda bitrate: min(30.0, 30.0 * 1_200_000 / bitrate), lambda bitrate: 1_000_000)
    assert seen[-1] == 1_000_000, sorted(set(seen))


def acks(probe: BitrateProbe, clock: Clock, fps: float, seconds: float) -> None:
    for _ in range(int(fps * seconds)):
        clock.now += 1.0 / fps
        probe.acked(1)


def test_probe_rules() -> None:
    clock = Clock()
    probe = BitrateProbe(clock)
    assert probe.choose(3_000_000, 1_000_000, VIDEO_BITRATE_STEP) is None  # no frame rate yet: no step down
    acks(probe, clock, 20.0, 2.0)
    assert probe.choose(3_000_000, 1_000_000, VIDEO_BITRATE_STEP) == 1_000_000  # a probe starts
    assert probe.choose(1_000_000, 500_000, VIDEO_BITRATE_STEP) is None  # no second step while it runs
    acks(probe, clock, 40.0, 3.1)  # 2x the frames at 1/3 the bits (>= 3 ** HELPED_SHARE): a slow link
    assert probe.choose(1_000_000, 500_000, VIDEO_BITRATE_STEP) == 500_000  # it helped; the next probe starts
    acks(probe, clock, 52.0, 3.1)  # 1.3x the frames at 1/2 the bits: not enough (a busy CPU)
    assert probe.choose(500_000, 500_000, VIDEO_BITRATE_STEP) == 1_000_000  # it did not help: undone
    assert probe.choose(1_000_000, 500_000, VIDEO_BITRATE_STEP) is None  # and held
    clock.now += HOLD_SECONDS
    acks(probe, clock, 20.0, 0.2)
    assert probe.choose(1_000_000, 500_000, VIDEO_BITRATE_STEP) == 500_000  # tried again after the hold
    assert probe.choose(500_000, 4_000_000, VIDEO_BITRATE_STEP) == 4_000_000  # up is never held (ends the probe)
    acks(probe, clock, 20.0, 3.1)
    assert probe.choose(4_000_000, 4_000_000, VIDEO_BITRATE_STEP) is None  # nothing left to undo
