# The agent's display pipeline: frame pacing, and where a frame's pixels
# come from (the whole screen in desktop mode, each window in seamless mode).
#
# Why apart from main.py: the pacing rules (coalesce a repaint, stream without
# waiting, at most a frame window unacknowledged (frame_window.py), the [display] max_kbps
# bucket, FRAME_END's ack_now, the link estimate) are the same for both modes, and only the source of damage and
# pixels differs. A source answers pending()/mark_all() and turns its damage
# into the messages of one frame; the pipeline decides when and sends them.
# Seamless frames are WINDOW_TARGET (when the window changes; it lasts across
# frames) + that window's REGIONs, per damaged
# window, in window coordinates (protocol/windows.py); a window that vanished
# between damage and capture is skipped, never an error of the frame.
"""DisplayPipeline (pacing, FRAME_END/ACK), DesktopSource and WindowSource."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from protocol.connection import frame_cost

from protocol.messages import ChannelKind, FrameAck, FrameEnd, KeyTapAck, Message, RefreshRequest, Region, VideoCaps
from protocol.messages import Key, KeyTap
from protocol.windows import WindowTarget
from sessiond.agent.audio_bandwidth import TokenBucket
from sessiond.agent.composite import WindowPixels
from sessiond.agent.damage import DamageError, RootRegionDamage
from sessiond.agent.encoder import Rect, RegionEncoder
from sessiond.agent.frame_window import FrameSource, FrameWindow, frame_delay, frame_slot, send_ahead, send_ahead_by
from sessiond.agent.h264 import DEFAULT_BITRATE
from sessiond.agent.link_estimate import LinkEstimate
from sessiond.agent.settings import AgentSettings
from sessiond.agent.tiles import CODEC_TILE, TileFolder, ack_from_low
from sessiond.agent.video import VideoRegions, video_frame
from sessiond.agent.xshm import CDisplay, ShmCapture, ShmRegionCapture, XShmError

DISPLAY_CHANNEL = int(ChannelKind.DISPLAY)
# The encoder's name for the root window's pixels (scroll history, COPY);
# a window's surface is its id.
DESKTOP_SURFACE = "desktop"
# Adaptive video: a new link-derived bitrate is applied only when it differs
# from the streams' by more than this factor (each change costs a keyframe).
VIDEO_BITRATE_STEP = 1.25
# Wait this long after the first damage before capturing, so one repaint
# (glyph + cursor) goes out as one frame rather than two.  xterm's glyph and
# cursor damage arrive together: 0.5 ms kept every bench echo whole (156 px)
# and cut keystroke -> repaint by ~1 ms against 2 ms.
FRAME_COALESCE_SECONDS = 0.0005
# Damage within this many max_fps gaps of the previous frame's start is part
# of a stream (scrolling, video): it piled up while that frame was made, so
# it goes out without the coalescing wait (dead time in every ~20 ms 1080p
# frame otherwise).
STREAM_GAPS = 2
# VIDEO_CAPS bit: the client decodes H264 regions.
CODEC_H264 = 0x01


def encode_rects(encoder: RegionEncoder, lossless: bool, buf: memoryview | bytes, stride: int,
                 rects: list[Rect], **kwargs: Any) -> list[Region]:  # fmt: skip
    """encoder.encode(), never lossy if `lossless` (a video's refinement)."""
    saved = encoder.allow_lossy
    encoder.allow_lossy = saved and not lossless
    try:
        return encoder.encode(buf, stride, rects, **kwargs)
    finally:
        encoder.allow_lossy = saved


class DesktopSource:
    """Desktop mode: the root window, its damage as an XFixes region fetched
    once per frame (damage.RootRegionDamage, on a C Xlib connection of its
    own: a flooding app costs one event per frame, not one per rectangle),
    one MIT-SHM capture of the damaged rectangles."""

    def __init__(self, display: str) -> None:
        self.capture = ShmCapture(display)
        self.cdisplay = CDisplay(display)
        self.damage = RootRegionDamage(self.cdisplay)
        self._display = display
        self.video = VideoRegions(time.monotonic)
        self.area: ShmRegionCapture | None = None  # for frames whose damage is all inside a video
        # Set by the pipeline per frame: sends small damage as a frame of its own, first (None: no room).
        self.ahead: Callable[[list[Region]], None] | None = None

    def fileno(self) -> int:
        """The damage connection's socket (readable: the root was damaged)."""
        return self.damage.fileno()

    def drain(self) -> bool:
        """Read the damage connection; True if the root has new damage."""
        return self.damage.drain()

    @property
    def size(self) -> tuple[int, int]:
        """The captured screen's size."""
        return self.capture.width, self.capture.height

    def pending(self) -> bool:
        """True if the screen has damage."""
        return self.damage.pending() or self.video.due(DESKTOP_SURFACE)

    def mark_all(self) -> None:
        """The whole screen goes out next."""
        self.damage.mark_all()

    def recreate(self) -> None:
        """The root changed size: a new shared segment of the new size."""
        self.video.forget()
        self.capture.close()
        self.capture = ShmCapture(self._display)

    def frame(self, encoder: RegionEncoder) -> list[Message]:
        """The damaged rectangles of the screen, encoded."""
        width, height = self.size
        rects = self.damage.take(width, height)
        self.damage.drain()  # the take's round trip may have read events in
        if not rects and not self.video.due(DESKTOP_SURFACE):
            return []
        area, started = self.video.covering(DESKTOP_SURFACE, rects, (width, height)), time.perf_counter()
        if area is None:
            pixels, stride, origin = self.capture.capture(), self.capture.stride, (0, 0)
        else:  # only a video (not full screen) changed: capture just its area, 1/9 of the screen for 640x360
            self.area = self.area or ShmRegionCapture(self.cdisplay)
            pixels, stride, origin = self.area.capture(self.cdisplay.root, *area), area[2] * 4, (area[0], area[1])
            self.damage.drain()  # on the damage connection: its round trip may have read damage in
        self.video.note(DESKTOP_SURFACE, "capture", time.perf_counter() - started)

        def rest(pieces: list[Rect], lossless: bool) -> list[Region]:
            return encode_rects(encoder, lossless, pixels, stride, pieces, width=width, height=height,
                                surface=DESKTOP_SURFACE, origin=origin)  # fmt: skip

        rects = send_ahead(self.ahead, rects, rest)
        return list(video_frame(self.video, DESKTOP_SURFACE, rects, (width, height),
                                lambda rect: (pixels, stride, rect[0] - origin[0], rect[1] - origin[1]), rest,
                                lambda: encoder.forget(DESKTOP_SURFACE)))  # fmt: skip

    def close(self) -> None:
        """Release the shared segment and the damage connection."""
        try:
            self.capture.close()
            if self.area is not None:
                self.area.close()
            self.damage.close()
        finally:
            self.cdisplay.close()


class WindowSource:
    """Seamless mode: each tracked window's own pixels (composite.WindowPixels)."""

    def __init__(self, pixels: WindowPixels, log: Callable[[str], None]) -> None:
        self.pixels = pixels
        self.log = log
        self.tracked: set[int] = set()
        # Windows whose client copy is unknown (new, gone, resent whole): the
        # encoder forgets what it sent of them before the next frame.
        self.unknown: set[int] = set()
        # The WINDOW_TARGET in force at the client (it lasts across frames):
        # a frame that goes on with the same window and size sends none, so an
        # echoed keystroke costs no more than in desktop mode. None: unknown.
        self.sent_target: tuple[int, int, int] | None = None
        self.video = VideoRegions(time.monotonic)
        # Set by the pipeline per frame: sends small damage as a frame of its own, first (None: no room).
        self.ahead: Callable[[list[Message]], None] | None = None

    def track(self, window: int) -> None:
        """Start capturing a window (a new window: sent whole first)."""
        self.pixels.track(window)
        self.tracked.add(window)
        self.unknown.add(window)

    def untrack(self, window: int) -> None:
        """Stop capturing a window (destroyed)."""
        if self.sent_target is not None and self.sent_target[0] == window:
            self.sent_target = None  # its id may come back for another window
        self.tracked.discard(window)
        self.unknown.add(window)
        self.video.forget(window)
        self.pixels.untrack(window)

    def pending(self) -> bool:
        """True if some viewable tracked window has damage (or a video to refine)."""
        return bool(self.pixels.damaged()) or any(self.video.due(window) for window in self.video.streams)

    def mark_all(self) -> None:
        """Every window goes out whole next (a client connected or asked to refresh)."""
        self.sent_target = None  # a new display channel starts on the desktop
        for window in self.tracked:
            self.pixels.changed(window)

    def frame(self, encoder: RegionEncoder) -> list[Message]:
        """WINDOW_TARGET and the REGIONs of each damaged window, window-relative."""
        for window in self.unknown:
            encoder.forget(window)
        self.unknown.clear()
        damaged = list(self.pixels.damaged())
        idle = [window for window in self.video.streams if window not in damaged and self.video.due(window)]
        taken: dict[int, list[Rect]] = {}
        for window in damaged:
            try:
                taken[window] = self.pixels.take(window)
            except (DamageError, XShmError) as exc:  # the window went away meanwhile
                self.log(f"window {window:#x} not captured: {exc}")
        taken = send_ahead_by(self.ahead, taken, lambda window, rects: self._window(encoder, window, rects, True))
        out: list[Message] = []
        for window in damaged + idle:
            rects = taken.get(window, [])
            if rects or window in idle:
                out.extend(self._window(encoder, window, rects, False))
        self.pixels.drain()
        return out

    def _window(self, encoder: RegionEncoder, window: int, rects: list[Rect], ahead: bool) -> list[Message]:
        """WINDOW_TARGET (if another is in force) and one window's REGIONs; [] if it went away.
        `ahead`: small damage sent first, as stills (frame_window.send_ahead_by)."""
        try:
            width, height = self.pixels.size(window)
            if rects == [(0, 0, width, height)]:
                encoder.forget(window)  # sent whole: maybe a new pixmap, a resize, a new client
            regions: list[Message] = list(self._window_frame(encoder, window, rects, width, height, ahead))
        except (DamageError, XShmError) as exc:  # the window went away meanwhile
            self.log(f"window {window:#x} not captured: {exc}")
            return []
        if self.sent_target == (window, width, height):
            return regions
        self.sent_target = (window, width, height)
        return [WindowTarget(window, width, height), *regions]

    def _window_frame(self, encoder: RegionEncoder, window: int, rects: list[Rect], width: int,
                      height: int, ahead: bool = False) -> list[Region]:  # fmt: skip
        """One window's regions (video or stills), window-relative."""

        def rest(pieces: list[Rect], lossless: bool) -> list[Region]:
            regions: list[Region] = []
            for rect in pieces:
                view = self.pixels.capture(window, rect)
                regions.extend(encode_rects(encoder, lossless, view, rect[2] * 4, [rect], width=width, height=height,
                                            surface=window, origin=(rect[0], rect[1])))  # fmt: skip
            return regions

        if ahead:
            return rest(rects, False)
        return video_frame(self.video, window, rects, (width, height), lambda rect: (self.pixels.capture(window, rect),
                           rect[2] * 4, 0, 0), rest, lambda: encoder.forget(window))  # fmt: skip

    def close(self) -> None:
        """Undo the redirection and close the pixel connection."""
        self.pixels.close()


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
        self.acked_seq = self.frame_seq
        self.link_estimate.reset()
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
        if isinstance(message, KeyTapAck):
            self.message(message)

    def message(self, message: object) -> None:
        """FRAME_ACK and REFRESH_REQUEST (RESIZE_REQUEST is the agent's)."""
        if isinstance(message, FrameAck):
            if self.acked_seq < message.seq <= self.frame_seq:
                self.acked_seq = message.seq
                self.link_estimate.frame_acked(message.seq)
            self.schedule()
        elif isinstance(message, KeyTapAck) and (seq := ack_from_low(message.ack, self.acked_seq, self.frame_seq)):
            self.message(FrameAck(seq=seq))  # the ack a tap carried (the key is the input channel's)
        elif isinstance(message, VideoCaps):
            self.tiles.enabled = bool(message.codecs & CODEC_TILE)
            if self.video is not None:
                self.video.enabled = bool(message.codecs & CODEC_H264)
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

    def schedule(self) -> None:
        """Arrange for a frame if there is damage and the client keeps up."""
        if (self._timer is not None and self._typed_at <= self._slot) or not self.open or self._link() is None:
            return
        if not self.source.pending() and not self._owed:
            due = self.video.next_due_in() if self.video is not None else None
            if due is not None and self._wake_timer is None:  # wake up to refine a video that stopped changing
                self._wake_timer = self.loop.call_later(due + 0.001, self._wake)
            return
        if self.window.full(self.frame_seq - self.acked_seq):
            self.link_estimate.waited()
            return  # client is behind: damage keeps coalescing meanwhile
        if self.window.link_full(self._last_ack_now):
            self.link_estimate.waited()
            return  # a round trip of bytes is in flight: more would only queue
        min_gap = 1.0 / self.args.max_fps
        now = time.monotonic()
        streaming = now - self.last_frame_at < STREAM_GAPS * min_gap
        delay = frame_delay(now, self._slot, min_gap, streaming, self._typed_at, FRAME_COALESCE_SECONDS,
                            self.cap.wait_seconds())  # fmt: skip
        if self._timer is not None:  # armed for a later slot before a key's echo came: re-arm sooner
            if now + delay >= self._timer_due:
                return
            self._timer.cancel()
        self._timer, self._timer_due = self.loop.call_later(delay, self._send_frame), now + delay

    def _wake(self) -> None:
        self._wake_timer = None
        self.schedule()

    def _send_frame(self) -> None:
        self._timer = None
        # max_fps paces frame starts: counting the gap from the end of the
        # previous frame added a whole gap after every encode (measured:
        # ~18 ms encode + 16.7 ms gap = 28 fps at 1080p).
        started = time.monotonic()
        link = self._link()
        if link is None or not self.open:
            return
        self._before_frame()
        if self.adaptive:
            self.encoder.jpeg_quality = self.link_estimate.jpeg_quality(self.args.jpeg_quality)
            self._adapt_video_bitrate()
        if hasattr(self.source, "ahead"):  # small damage may go out first (frame_window.split_ahead)
            room = self.window.room_ahead(self.frame_seq - self.acked_seq)
            self.source.ahead = (lambda first: self._emit(link, first, False, True)) if room else None
        messages = self.source.frame(self.encoder)
        if not messages and not self._owed:
            self.schedule()  # damage the capture's round trip read in (see the end)
            return
        self._owed = False
        streaming = started - self.last_frame_at < STREAM_GAPS / self.args.max_fps
        self._emit(link, messages, streaming, streaming or self._more_damage())
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
            link.conn.send(DISPLAY_CHANNEL, message)
            cost = frame_cost(message)
            self.cap.charge(cost)
            size += cost
        self.link_estimate.frame_sent(self.frame_seq, size, ack_now, app_limited=not streaming)
        self._last_ack_now = ack_now
        link.flush()

    def _more_damage(self) -> bool:
        """True if damage came in while this frame was made (another frame
        follows at once: a scroll on a busy machine, where frames are further
        apart than STREAM_GAPS but still back to back)."""
        drain = getattr(self.source, "drain", None)  # desktop: read the damage connection now
        if drain is not None:
            drain()
        return self.source.pending()

    def _adapt_video_bitrate(self) -> None:
        """Video streams follow the link's measured rate, up to the encoder's
        default; only a change past VIDEO_BITRATE_STEP is applied (each one
        restarts the streams with a keyframe)."""
        video = self.video
        if video is None or self.link_estimate.bandwidth is None:
            return
        target = min(DEFAULT_BITRATE, self.link_estimate.target_bitrate())
        if max(target, video.bitrate) > VIDEO_BITRATE_STEP * min(target, video.bitrate):
            video.set_bitrate(target)
