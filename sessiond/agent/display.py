# The agent's display pipeline: frame pacing over a frame source (the whole
# screen in desktop mode, each window in seamless mode: frame_sources.py).
#
# Why apart from main.py: the pacing rules (coalesce a repaint, stream without
# waiting, at most a frame window unacknowledged (frame_window.py), the [display] max_kbps
# bucket, FRAME_END's ack_now, the link estimate) are the same for both modes, and only the source of damage and
# pixels differs. A source answers pending()/mark_all() and turns its damage
# into the messages of one frame; the pipeline decides when and sends them.
"""DisplayPipeline: pacing of the display channel, FRAME_END/ACK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from protocol.connection import frame_cost
from protocol.media import CAPS_GLYPHS, CAPS_H264, CAPS_TILE
from protocol.messages import (
    ChannelKind,
    FrameAck,
    FrameEnd,
    Key,
    KeyTap,
    KeyTapAck,
    Message,
    RefreshRequest,
    VideoCaps,
)
from sessiond.agent.audio_bandwidth import TokenBucket
from sessiond.agent.encoder import RegionEncoder
from sessiond.agent.frame_trace import FrameTrace
from sessiond.agent.frame_window import FrameSource, FrameWindow, frame_delay, frame_slot
from sessiond.agent.h264 import DEFAULT_BITRATE
from sessiond.agent.link_estimate import LinkEstimate
from sessiond.agent.settings import AgentSettings
from sessiond.agent.tiles import TileFolder, ack_from_low
from sessiond.agent.video import VideoRegions
from sessiond.agent.video_bitrate import BitrateProbe

DISPLAY_CHANNEL = int(ChannelKind.DISPLAY)
# Adaptive video: a new link-derived bitrate is applied only when it differs
# from the streams' by more than this factor (each change costs a keyframe).
VIDEO_BITRATE_STEP = 1.25
# How long a frame from an idle pipeline waits after the first damage
# before its capture: none. The X server writes the damage notify to the agent
# only once it has run the whole batch of requests the app flushed (xterm's
# glyph and cursor come in one), and the frame's damage fetch is a round trip
# after that, so an echo is whole without a wait (traced: never more frames
# than keystrokes, bench/README.md). The old 0.5 ms was never 0.5 ms: asyncio's
# epoll timeout has a resolution of 1 ms and rounds up, so it cost a median
# 1.2 ms of every keystroke -> repaint (bench/keystroke_timeline.py). An app
# that flushes one repaint in several batches may now send it as two frames.
FRAME_COALESCE_SECONDS = 0.0
# Damage within this many max_fps gaps of the previous frame's start is part
# of a stream (scrolling, video): it piled up while that frame was made, so
# it goes out without the coalescing wait (dead time in every ~20 ms 1080p
# frame otherwise).
STREAM_GAPS = 2
# How often a FrameTrace that is on writes its marks (frame_trace.py).
TRACE_FLUSH_SECONDS = 1.0


class DisplayPipeline:
    """Frame pacing of the display channel over one FrameSource."""

    def __init__(self, loop: asyncio.AbstractEventLoop, args: AgentSettings, source: FrameSource,
                 link: Callable[[], Any], before_frame: Callable[[], None]) -> None:  # fmt: skip
        self.loop = loop
        self.args = args
        self.source = source
        self._link = link  # the current LinkProtocol or None
        self._before_frame = before_frame  # drain X events so damage is current
        self.encoder = RegionEncoder(jpeg_quality=args.jpeg_quality)
        self.open = False
        self.frame_seq = 0
        self.acked_seq = 0
        self.last_frame_at = 0.0
        self._slot = 0.0  # the max_fps slot of the last frame (frame_window.frame_slot)
        self.last_frame_us = 0
        self.cap = TokenBucket(args.display_max_kbps)  # [display] max_kbps: frames wait, never split
        # RTT and drain rate of the client's link, from FRAME_END -> FRAME_ACK
        # (always measured; it paces and sets quality only with [display] adaptive).
        self.link_estimate = LinkEstimate()
        self.bitrate_probe = BitrateProbe()  # a lower video bitrate stays only if it raised the frame rate
        self.adaptive = args.display_adaptive
        # The frame window (widened on long round trips with adaptive) and which frame asks for its ack.
        self.window = FrameWindow(self.link_estimate, args.frames_in_flight, args.max_fps, self.adaptive)
        # The last frame sent asked for its ack at once (FRAME_END ack_now): only
        # then may the pipeline wait for an ack beyond the frame window (a held
        # ack would otherwise never come).
        self._last_ack_now = True
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = self._typed_at = 0.0  # when _timer fires; when the client last sent a key
        # Apart from _timer: a refinement wake-up must never delay a frame that damage asks for.
        self._wake_timer: asyncio.TimerHandle | None = None
        # A frame is owed even if nothing is damaged (a client connected or
        # asked for a refresh while no window has pixels: it still gets its
        # FRAME_END, so "wait for a frame" never hangs on an empty session).
        self._owed = False
        self.tiles = TileFolder()  # one-region frames as TILE (client's VIDEO_CAPS bit 1)
        # SESSIOND_FRAME_TRACE=1: key, notify, frame, encoded, out; ack (FRAME_ACK in), full (the window
        # held a frame back): where a stream loses its frames (frame_trace.py)
        self.trace = FrameTrace()
        if self.trace.enabled:
            self.loop.call_later(TRACE_FLUSH_SECONDS, self._flush_trace)

    def refresh(self) -> None:
        """Everything goes out in the next frame, which is sent even if empty."""
        if self.video is not None:
            self.video.reset()
        self.encoder.forget()
        self.source.mark_all()
        self._owed = True
        self.schedule()

    @property
    def video(self) -> VideoRegions | None:
        """The source's video streams (the adaptive-quality module sets
        video.set_bitrate()); None for a source without video."""
        video = getattr(self.source, "video", None)
        return video if isinstance(video, VideoRegions) else None

    def opened(self) -> None:
        """A client opened the display channel: everything goes out."""
        if self.video is not None:
            self.video.forget()  # the new client has no decoders and has not sent VIDEO_CAPS yet
            self.video.enabled = False
        self.open = True
        self.tiles.reset()
        self.encoder.glyphs.reset()  # the new client's glyph cache is empty; off until its VIDEO_CAPS
        self.encoder.glyphs.enabled = False
        self.acked_seq = self.frame_seq
        self.link_estimate.reset()
        self.bitrate_probe.reset()
        self._last_ack_now = True
        self.encoder.forget()  # a new client's copy is unknown: no COPY until a full frame
        self.source.mark_all()
        self._owed = True
        self.schedule()

    def closed(self) -> None:
        """The display channel closed (or the link went)."""
        self.open = False

    def typed(self, message: object) -> None:
        """An input message: a key's echo skips the next max_fps slot (frame_delay); a tap's held ack counts."""
        if isinstance(message, (Key, KeyTap, KeyTapAck)):
            self._typed_at = time.monotonic()
            self.trace.mark("key")
        if isinstance(message, KeyTapAck):
            self.message(message)

    def message(self, message: object) -> None:
        """FRAME_ACK and REFRESH_REQUEST (RESIZE_REQUEST is the agent's)."""
        if isinstance(message, FrameAck):
            self.trace.mark("ack")
            if self.acked_seq < message.seq <= self.frame_seq:
                self.bitrate_probe.acked(message.seq - self.acked_seq)
                self.acked_seq = message.seq
                self.link_estimate.frame_acked(message.seq)
            self.schedule()
        elif isinstance(message, KeyTapAck) and (seq := ack_from_low(message.ack, self.acked_seq, self.frame_seq)):
            self.message(FrameAck(seq=seq))  # the ack a tap carried (the key is the input channel's)
        elif isinstance(message, VideoCaps):
            self.tiles.enabled = bool(message.codecs & CAPS_TILE)
            self.encoder.glyphs.enabled = self.args.display_glyphs and bool(message.codecs & CAPS_GLYPHS)
            if self.video is not None:
                self.video.enabled = bool(message.codecs & CAPS_H264)
                if not self.video.enabled and self.video.streams:
                    self.video.forget()
                    self.refresh()
        elif isinstance(message, RefreshRequest):
            if self.video is not None:
                self.video.reset()
            self.encoder.forget()
            self.source.mark_all()
            self._owed = True
            self.schedule()

    def damaged(self, drained: bool) -> None:
        """The damage connection said something changed (its events are read):
        a frame that is due at once starts in this call, not one loop turn
        later (call_later(0): an epoll_wait and, in _send_frame, another drain
        of the X connection, ~0.1 ms of a keystroke's echo on a busy machine).
        `drained`: the caller has just drained the session's X connection
        (window events), so the frame need not do it again."""
        self.schedule(now=True, drained=drained)

    def schedule(self, now: bool = False, drained: bool = False) -> None:
        """Arrange for a frame if there is damage and the client keeps up;
        with `now` (damaged()), a frame due at once is sent in this call."""
        if (self._timer is not None and self._typed_at <= self._slot) or not self.open or self._link() is None:
            return
        if not self.source.pending() and not self._owed:
            due = self.video.next_due_in() if self.video is not None else None
            if due is not None and self._wake_timer is None:  # wake up to refine a video that stopped changing
                self._wake_timer = self.loop.call_later(due + 0.001, self._wake)
            return
        if self.window.full(self.frame_seq - self.acked_seq):
            self.trace.mark("full")
            self.link_estimate.waited()
            return  # client is behind: damage keeps coalescing meanwhile
        if self.window.link_full(self._last_ack_now):
            self.link_estimate.waited()
            return  # a round trip of bytes is in flight: more would only queue
        min_gap = 1.0 / self.args.max_fps
        moment = time.monotonic()
        streaming = moment - self.last_frame_at < STREAM_GAPS * min_gap
        delay = frame_delay(moment, self._slot, min_gap, streaming, self._typed_at, FRAME_COALESCE_SECONDS,
                            self.cap.wait_seconds())  # fmt: skip
        if self._timer is not None:  # armed for a later slot before a key's echo came: re-arm sooner
            if moment + delay >= self._timer_due:
                return
            self._timer.cancel()
            self._timer = None
        if now and delay <= 0:
            self._send_frame(drained)
            return
        self._timer, self._timer_due = self.loop.call_later(delay, self._send_frame), moment + delay

    def _wake(self) -> None:
        self._wake_timer = None
        self.schedule()

    def _send_frame(self, drained: bool = False) -> None:
        self._timer = None
        # max_fps paces frame starts: counting the gap from the end of the
        # previous frame added a whole gap after every encode (measured:
        # ~18 ms encode + 16.7 ms gap = 28 fps at 1080p).
        started = time.monotonic()
        link = self._link()
        if link is None or not self.open:
            return
        self.trace.mark("frame")
        if not drained:
            self._before_frame()
        if self.adaptive:
            self.encoder.jpeg_quality = self.link_estimate.jpeg_quality(self.args.jpeg_quality)
            self._adapt_video_bitrate()
        if hasattr(self.source, "ahead"):  # small damage may go out first (frame_window.split_ahead)
            room = self.window.room_ahead(self.frame_seq - self.acked_seq)
            self.source.ahead = (lambda first: self._emit(link, first, False, True)) if room else None
        messages = self.source.frame(self.encoder)
        self.trace.mark("encoded")
        if not messages and not self._owed:
            self.schedule()  # damage the capture's round trip read in (see the end)
            return
        self._owed = False
        streaming = started - self.last_frame_at < STREAM_GAPS / self.args.max_fps
        busy, sending = streaming or self._more_damage(), time.perf_counter()
        self._emit(link, messages, streaming, busy)
        if self.video is not None and self.video.streams:  # video_stats' "send" stage
            self.video.note_sent(messages, time.perf_counter() - sending)
        self.last_frame_at = started
        self._slot = frame_slot(self._slot, started, 1.0 / self.args.max_fps)
        self.last_frame_us = int(started * 1_000_000)
        # Damage that arrived during the capture was read off the socket by
        # its round trip, so the socket will not announce it: schedule now.
        # (Every frame's FRAME_ACK used to do this; a held ack does not.)
        self.schedule()

    def _emit(self, link: Any, messages: list[Message], streaming: bool, busy: bool) -> None:
        """One frame out: its messages and FRAME_END (ack_now at once if `busy`:
        another frame follows), folded into one TILE when it is a lone small
        glyph (tiles.py), flushed; counted by the cap and the estimate."""
        self.frame_seq += 1
        ack_now = self.window.ack_now(self.frame_seq - self.acked_seq,
                                      sum(frame_cost(message) for message in messages), busy)  # fmt: skip
        size = 0
        for message in self.tiles.frame(messages, FrameEnd(seq=self.frame_seq, ack_now=ack_now)):
            cost = link.conn.send(DISPLAY_CHANNEL, message)  # its frame_cost(), from the one encode
            self.cap.charge(cost)
            size += cost
        self.link_estimate.frame_sent(self.frame_seq, size, ack_now, app_limited=not streaming)
        self._last_ack_now = ack_now
        link.flush()
        self.trace.mark("out")

    def _more_damage(self) -> bool:
        """True if damage came in while this frame was made (another frame
        follows at once: a scroll on a busy machine, where frames are further
        apart than STREAM_GAPS but still back to back)."""
        drain = getattr(self.source, "drain", None)  # desktop: read the damage connection now
        if drain is not None:
            drain()
        return self.source.pending()

    def _flush_trace(self) -> None:
        self.trace.flush()
        self.loop.call_later(TRACE_FLUSH_SECONDS, self._flush_trace)

    def _adapt_video_bitrate(self) -> None:
        """Video streams follow the link's measured rate, up to the encoder's
        default; only a change past VIDEO_BITRATE_STEP is applied (each one
        restarts the streams with a keyframe), and a step down only while it
        raises the frame rate (video_bitrate.py: a slow client is no slow link)."""
        video = self.video
        if video is None or self.link_estimate.bandwidth is None:
            return
        target = min(DEFAULT_BITRATE, self.link_estimate.target_bitrate())
        chosen = self.bitrate_probe.choose(video.bitrate, target, VIDEO_BITRATE_STEP)
        if chosen is not None:
            video.set_bitrate(chosen)
