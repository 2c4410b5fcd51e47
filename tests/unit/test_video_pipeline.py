# The display pipeline's part in video regions, with a recorder source and
# a fake link on a real asyncio loop: VIDEO_CAPS turns streams on and off,
# a new display channel forgets them, and the wake-up that refines a stopped
# video never delays a frame that damage asks for (it once did: one frame a
# second while a video played).
from __future__ import annotations

import asyncio
from typing import Any

from protocol.messages import Encoding, FrameAck, FrameEnd, Region, VideoCaps
from sessiond.agent.display import DisplayPipeline
from sessiond.agent.h264 import DEFAULT_BITRATE, H264Encoder
from sessiond.agent.settings import AgentSettings
from sessiond.agent.video import VideoRegions, VideoStream
from protocol.connection import frame_cost


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, channel: int, message: Any) -> int:
        self.sent.append(message)
        return frame_cost(message)


class FakeLink:
    def __init__(self) -> None:
        self.conn = FakeConn()

    def flush(self) -> None:
        pass


class VideoSource:
    """A source with a video: `damaged` says whether the next frame has damage;
    every frame with damage is one H264 region while a stream is 'running'."""

    def __init__(self) -> None:
        self.video = VideoRegions(lambda: asyncio.get_running_loop().time())
        self.damaged = False
        self.frames = 0

    def pending(self) -> bool:
        return self.damaged or any(self.video.due(s) for s in self.video.streams)

    def mark_all(self) -> None:
        self.damaged = True

    def frame(self, encoder: Any) -> list[Any]:
        if not self.damaged:
            return []
        self.damaged = False
        self.frames += 1
        return [Region(0, 0, 2, 2, Encoding.FILL, b"\x00\x00\x00")]


def pipeline_with(source: VideoSource, link: FakeLink) -> DisplayPipeline:
    settings = AgentSettings(socket="/x")
    return DisplayPipeline(asyncio.get_running_loop(), settings, source, lambda: link, lambda: None)


def test_video_caps_enables_streams_and_a_new_channel_forgets_them() -> None:
    async def run() -> tuple[bool, bool, bool]:
        source, link = VideoSource(), FakeLink()
        pipeline = pipeline_with(source, link)
        pipeline.opened()
        before = source.video.enabled
        pipeline.message(VideoCaps(codecs=1))
        enabled = source.video.enabled
        pipeline.opened()  # another client: it must announce H264 itself
        return before, enabled, source.video.enabled

    assert asyncio.run(run()) == (False, True, False)


def test_a_refinement_wakeup_never_delays_damage() -> None:
    async def run() -> int:
        source, link = VideoSource(), FakeLink()
        pipeline = pipeline_with(source, link)
        pipeline.opened()
        await asyncio.sleep(0.05)
        # A stream whose refinement is far away (its frames came slowly).
        now = asyncio.get_running_loop().time()
        source.video.streams["desktop"] = VideoStream(0, "desktop", (0, 0, 2, 2), H264Encoder(2, 2), now, interval=0.3)
        pipeline.message(ack_all(link))
        pipeline.schedule()  # no damage: arms the wake-up (~0.9 s away)
        frames = source.frames
        source.damaged = True
        pipeline.schedule()  # damage arrives: the frame goes now, not after the wake-up
        await asyncio.sleep(0.1)
        return source.frames - frames

    assert asyncio.run(run()) == 1


def ack_all(link: FakeLink) -> FrameAck:
    """The FRAME_ACK of every frame sent (so frames_in_flight never holds the test back)."""
    return FrameAck(seq=max((m.seq for m in link.conn.sent if isinstance(m, FrameEnd)), default=0))


class StubEstimate:
    """A link estimate with a fixed rate (LinkEstimate's derivation has its own tests)."""

    def __init__(self, bandwidth: float | None, bitrate: int) -> None:
        self.bandwidth = bandwidth
        self.bitrate = bitrate

    def target_bitrate(self) -> int:
        return self.bitrate


def test_video_bitrate_follows_the_link_in_steps_up_to_the_encoder_default() -> None:
    async def run() -> list[int]:
        source = VideoSource()
        pipeline = pipeline_with(source, FakeLink())
        seen = []
        for bandwidth, target in ((None, 500_000), (1e5, 1_000_000), (1e5, 1_100_000), (1e7, 40_000_000)):
            pipeline.bitrate_probe.acked(1)  # frames delivered: a frame rate to judge a step down by
            await asyncio.sleep(0.01)
            pipeline.bitrate_probe.acked(1)
            pipeline.link_estimate = StubEstimate(bandwidth, target)  # type: ignore[assignment]
            pipeline._adapt_video_bitrate()
            seen.append(source.video.bitrate)
        return seen

    # unknown link: the default; 1 Mbit/s applied; +10 % is below the step; a fast link: capped
    assert asyncio.run(run()) == [DEFAULT_BITRATE, 1_000_000, 1_000_000, DEFAULT_BITRATE]
