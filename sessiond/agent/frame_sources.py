# Where a frame's pixels come from: the whole screen in desktop mode
# (DesktopSource), each window in seamless mode (WindowSource). Both answer
# pending()/mark_all() and turn their damage into the messages of one frame;
# the pacing that decides when a frame goes out is display.py's and the same
# for both.
#
# Why apart from display.py: capture and encoding per source (damage, MIT-SHM,
# composite pixmaps, video areas) change for reasons of their own, the pacing
# rules for others. Seamless frames are WINDOW_TARGET (when the window
# changes; it lasts across frames) + that window's REGIONs, per damaged
# window, in window coordinates (protocol/windows.py); a window that vanished
# between damage and capture is skipped, never an error of the frame.
"""DesktopSource and WindowSource: the frame sources of the display pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from protocol.messages import Message, Region
from protocol.windows import WindowTarget
from sessiond.agent.composite import WindowPixels
from sessiond.agent.damage import DamageError, RootRegionDamage
from sessiond.agent.encoder import Rect, RegionEncoder
from sessiond.agent.frame_window import send_ahead, send_ahead_by
from sessiond.agent.video import VideoRegions, video_frame
from sessiond.agent.xshm import CallLater, CDisplay, ShmCapture, ShmRegionCapture, XShmError

# The encoder's name for the root window's pixels (scroll history, COPY);
# a window's surface is its id.
DESKTOP_SURFACE = "desktop"
# Damage whose bounding box covers at most this share of the screen is
# captured alone (the box, not the root): a scrolling 180x50 xterm on a
# 1080p screen is a third of it, and XShmGetImage's copy runs in the X
# server, the busiest process of a scroll (it competes with the app there).
BOX_CAPTURE_MAX_SHARE = 0.75


def damage_box(rects: list[Rect], width: int, height: int) -> Rect | None:
    """The bounding box of rects if it is worth capturing alone (at most
    BOX_CAPTURE_MAX_SHARE of the width x height screen), else None."""
    if not rects:
        return None
    left, top = min(x for x, _y, _w, _h in rects), min(y for _x, y, _w, _h in rects)
    right, bottom = max(x + w for x, _y, w, _h in rects), max(y + h for _x, y, _w, h in rects)
    box = (left, top, right - left, bottom - top)
    return box if box[2] * box[3] <= BOX_CAPTURE_MAX_SHARE * width * height else None


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

    def __init__(self, display: str, call_later: CallLater | None = None) -> None:
        """call_later: the agent loop's, so a large read the frame keeps (an app redrawing much
        of the screen) gives its pages back once quiet (xshm.QUIET_RELEASE_SECONDS); None: those
        wait for the idle release."""
        self._call_later = call_later
        self._display = display
        self.capture = self._new_capture()
        self.cdisplay = CDisplay(display)
        self.damage = RootRegionDamage(self.cdisplay)
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
        # Its capture's pages go back after it (xshm.WHOLE_CAPTURE_RELEASE_BYTES): later frames read a box.
        self.capture.release_after_frame(self.capture.width * self.capture.height * 4)

    def recreate(self) -> None:
        """The root changed size: a new shared segment of the new size."""
        self.video.forget()
        self.capture.close()
        self.capture = self._new_capture()

    def _new_capture(self) -> ShmCapture:
        """A shared segment of the screen's size, its large reads given back once quiet."""
        capture = ShmCapture(self._display)
        capture.call_later = self._call_later
        return capture

    def frame(self, encoder: RegionEncoder) -> list[Message]:
        """The damaged rectangles of the screen, encoded."""
        width, height = self.size
        rects = self.damage.take(width, height)
        self.damage.drain()  # the take's round trip may have read events in
        if not rects and not self.video.due(DESKTOP_SURFACE):
            return []
        area, started = self.video.covering(DESKTOP_SURFACE, rects, (width, height)), time.perf_counter()
        box = damage_box(rects, width, height) if DESKTOP_SURFACE not in self.video.streams else None
        if area is None and box is None:  # (a stream reads its whole area)
            pixels, stride, origin = self.capture.capture(), self.capture.stride, (0, 0)
        elif area is None and box is not None:  # just the damage's box, into the whole screen's buffer
            pixels, stride, origin = self.capture.capture_box(*box), box[2] * 4, (box[0], box[1])
        else:  # only a video (not full screen) changed: capture just its area, 1/9 of the screen for 640x360
            self.area = self.area or ShmRegionCapture(self.cdisplay)
            pixels, stride, origin = self.area.capture(self.cdisplay.root, *area), area[2] * 4, (area[0], area[1])
            self.damage.drain()  # on the damage connection: its round trip may have read damage in
        self.video.note(DESKTOP_SURFACE, "capture", time.perf_counter() - started)

        def rest(pieces: list[Rect], lossless: bool) -> list[Region]:
            return encode_rects(encoder, lossless, pixels, stride, pieces, width=width, height=height,
                                surface=DESKTOP_SURFACE, origin=origin)  # fmt: skip

        rects = send_ahead(self.ahead, rects, rest)
        messages = list(video_frame(self.video, DESKTOP_SURFACE, rects, (width, height),
                                    lambda rect: (pixels, stride, rect[0] - origin[0], rect[1] - origin[1]), rest,
                                    lambda: encoder.forget(DESKTOP_SURFACE)))  # fmt: skip
        self.capture.frame_done()
        return messages

    def release_idle(self) -> None:
        """Idle (idle_release.py): the capture buffers' pages go back to the
        system; each capture writes the pixels it reads, so none are lost."""
        self.capture.release()
        if self.area is not None:
            self.area.release()

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
        encoder.glyphs.mirror.begin()  # regions dropped below must not leave glyphs in the mirror
        try:
            width, height = self.pixels.size(window)
            if rects == [(0, 0, width, height)]:
                encoder.forget(window)  # sent whole: maybe a new pixmap, a resize, a new client
            regions: list[Message] = list(self._window_frame(encoder, window, rects, width, height, ahead))
        except (DamageError, XShmError) as exc:  # the window went away meanwhile
            encoder.glyphs.mirror.undo()
            self.log(f"window {window:#x} not captured: {exc}")
            return []
        finally:
            encoder.glyphs.mirror.end()
        if self.sent_target == (window, width, height):
            return regions
        self.sent_target = (window, width, height)
        return [WindowTarget(window, width, height), *regions]

    def _window_frame(self, encoder: RegionEncoder, window: int, rects: list[Rect], width: int,
                      height: int, ahead: bool = False) -> list[Region]:  # fmt: skip
        """One window's regions (video or stills), window-relative."""

        def rest(pieces: list[Rect], lossless: bool) -> list[Region]:
            regions: list[Region] = []
            for piece in pieces:
                rect = encoder.glyphs.grow(window, piece, width, height)  # whole text cells (GLYPHS)
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
