# What the GUI thread gets from the reactor thread: plain, immutable records
# (a window's state; a rectangle the frame changed, with the framebuffer
# memory it is to be painted from: 4-byte pixels in Qt's Format_RGB32
# (Format_RGBX8888 on a big-endian machine: canvas.FORMAT)). The client library
# decodes regions on the reactor thread; at each FRAME_END the collector here
# queues the rectangles the frame changed for the GUI, which repaints them
# straight from that memory: no copy of the rows. The two threads take turns
# on the memory (client/viewer/gate.py): the collector opens a frame before the
# library writes (SessionClient.display_gate) and closes it at FRAME_END.
#
# Why coalescing: the GUI can fall behind a flooding app. Patches for a window
# pile up at most MAX_PENDING_PATCHES deep; past that they are replaced by
# one patch of the whole window, so memory stays bounded by the windows' size.
#
# LatencyTrace: the moments of the keystroke -> repaint path (Qt key event,
# KEY sent, FRAME_END received, GUI woken, window painted), recorded only when
# SVCLIENT_VIEWER_TRACE names a file, so bench/bench_viewer.py can split the
# viewer's own time from the library's in one run (time.monotonic is one clock
# for every process of the machine).
"""DamageCollector, LatencyTrace and the records shared between the reactor and the GUI."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from client.fb_memory import PIXEL_BYTES, PixelMemory
from client.framebuffer import Framebuffer
from client.viewer.gate import FrameGate
from protocol.frozen import frozen_dataclass
from protocol.messages import DesktopSize, Encoding, FrameEnd, Message, Region
from protocol.windows import WindowTarget

# Rectangles of one window in one frame sent separately; more go as their bounding box.
MAX_PATCH_RECTS = 16
# Rectangles that cover at least this share of their bounding box go as that
# box, one patch: a scroll frame's GLYPHS bands and its PALETTE last row are
# one crop, one copy and one repaint instead of four.
MERGE_SHARE = 0.75
# A patch this close to its window's width (or height) is widened to all of
# it: xterm's text stops 2 pixels short of each side, and whole rows are one
# slice to copy (a whole window needs no crop at all); the few extra pixels
# are the window's current ones.
WIDEN_SHARE = 0.9
# Patches waiting for the GUI per window; more are replaced by one whole-window patch.
MAX_PENDING_PATCHES = 64
# A frame whose patches hold at most HANDOFF_MAX_BYTES (a keystroke's echo) is handed over: the
# reactor thread waits, without the GIL, until the GUI thread has painted it (at most
# HANDOFF_WAIT_SECONDS), instead of finishing its read first. The GUI thread runs Python only with the
# GIL, so it used to wait for the reactor to get back to epoll after the wake-up (0.2-0.3 ms an echo).
# Only when the GUI has finished painting the previous patches (it is idle); larger frames (a scroll)
# are never waited for: there the two threads overlap.
HANDOFF_MAX_BYTES = 64 * 1024
HANDOFF_WAIT_SECONDS = 0.003
# The desktop (desktop mode) has window id 0, as on the wire.
DESKTOP = 0
# Environment variable naming the file a LatencyTrace writes when the viewer ends.
TRACE_ENV = "SVCLIENT_VIEWER_TRACE"
# Moments a trace keeps at most (a bench runs a few hundred keystrokes and frames).
MAX_TRACE_MARKS = 100_000


class LatencyTrace:
    """Named moments (time.monotonic), kept in memory and written by close();
    a no-op unless PATH is given."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.marks: list[tuple[str, float]] = []

    def mark(self, what: str) -> None:
        """Record WHAT now (any thread; list.append is atomic)."""
        if self.path is not None and len(self.marks) < MAX_TRACE_MARKS:
            self.marks.append((what, time.monotonic()))

    def close(self) -> None:
        """Write the marks, one "name seconds" line each."""
        if self.path is not None:
            with open(self.path, "w", encoding="ascii") as handle:
                handle.writelines(f"{what} {moment:.6f}\n" for what, moment in self.marks)


@frozen_dataclass
class Patch:
    """A changed rectangle of a window whose buffer is fb_width x fb_height, and
    its pixels: in `memory` (the framebuffer's, read under `gate`) or else in
    `data`: 4 bytes a pixel in the framebuffer's memory order (client/fb_memory.py:
    B, G, R, pad (255) on a little-endian machine, Qt's Format_RGB32), row after row."""

    window: int
    fb_width: int
    fb_height: int
    x: int
    y: int
    w: int
    h: int
    data: bytes = b""
    memory: PixelMemory | None = None
    gate: FrameGate | None = None

    @property
    def pixels(self) -> bytes:
        """Its pixels as bytes (read from the memory, a copy, where it has no data: tests)."""
        if self.memory is None:
            return self.data
        return self.memory.rgbx(self.x, self.y, self.w, self.h) if self.w and self.h else b""

    @property
    def size_bytes(self) -> int:
        """Bytes of its pixels."""
        return self.w * self.h * PIXEL_BYTES


@frozen_dataclass
class WindowState:
    """One session window as the GUI shows it (a copy of client.windows' record)."""

    id: int
    title: str
    app: str
    kind: str
    managed: bool
    transient_for: int
    x: int
    y: int
    width: int
    height: int
    state: str
    decorated: bool
    icon_png: bytes = b""
    close_unanswered: bool = False


@frozen_dataclass
class Snapshot:
    """Every window bottom to top, and which has the session's focus."""

    windows: tuple[WindowState, ...]
    focus: int
    seamless: bool


def snapshot_of(client: Any, title: str) -> Snapshot:
    """The client's windows now; in desktop mode one window (id 0) named TITLE."""
    if not client.windows.seamless:
        fb = client.framebuffer
        width, height = (fb.width, fb.height) if fb is not None else (640, 480)
        desk = WindowState(DESKTOP, title, "", "normal", True, 0, 0, 0, width, height, "normal", True)
        return Snapshot((desk,), DESKTOP, False)
    rows = []
    for win in client.windows.stacked():
        info = win.info
        rows.append(WindowState(win.id, info.title, info.app_id, info.kind, info.managed, info.transient_for,
                                win.x, win.y, win.width, win.height, info.state, info.decorated,
                                win.icon_png, win.close_unanswered))  # fmt: skip
    return Snapshot(tuple(rows), client.windows.focus, True)


def _bounding(rects: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    return x0, y0, x1 - x0, y1 - y0


def _merged(rects: list[tuple[int, int, int, int]], width: int, height: int) -> list[tuple[int, int, int, int]]:
    """RECTS of a WIDTH x HEIGHT window as their bounding box when there are
    more than MAX_PATCH_RECTS or they cover MERGE_SHARE of it (overlaps
    counted twice), else as they are; a box widened (WIDEN_SHARE) to whole
    rows or columns."""
    box = _bounding(rects)
    covered = sum(r[2] * r[3] for r in rects)
    if 1 < len(rects) <= MAX_PATCH_RECTS and covered < MERGE_SHARE * box[2] * box[3]:
        return rects
    x, y, w, h = box
    if w >= WIDEN_SHARE * width:
        x, w = 0, width
    if h >= WIDEN_SHARE * height:
        y, h = 0, height
    return [(x, y, w, h)]


class DamageCollector:
    """A display observer of SessionClient: rectangles changed per window,
    turned into Patches at FRAME_END; `notify` is called (reactor thread)
    when patches become available after the GUI took the previous ones."""

    def __init__(self, client: Any, notify: Callable[[], None], on_desktop_size: Callable[[], None],
                 trace: LatencyTrace | None = None, gate: FrameGate | None = None) -> None:  # fmt: skip
        self.client = client
        self.gate = gate if gate is not None else FrameGate()
        self.gate.close_frame(False)  # a new connection: no frame of the last one is being written any more
        self.trace = trace if trace is not None else LatencyTrace(None)
        self.notify = notify
        self.on_desktop_size = on_desktop_size
        self._target = DESKTOP
        self._damage: dict[int, list[tuple[int, int, int, int]]] = {}
        self._lock = threading.Lock()
        self._pending: dict[int, list[Patch]] = {}
        self._notified = False
        # Set by painted() (GUI thread) once it has painted what it took; unset until its first paint.
        self._painted = threading.Event()
        self.frames = 0

    def __call__(self, message: Message) -> None:
        if isinstance(message, WindowTarget):
            self._target = message.window
        elif isinstance(message, Region):
            self._damage.setdefault(self._target, []).extend(self._changed(message))
        elif isinstance(message, DesktopSize):
            self._target = DESKTOP
            self._damage[DESKTOP] = [(0, 0, message.width, message.height)]
            self.on_desktop_size()
        elif isinstance(message, FrameEnd):
            self.trace.mark("frame")
            self.frames += 1
            self._flush()

    def _changed(self, region: Region) -> list[tuple[int, int, int, int]]:
        """The rectangles REGION changed (it is applied already): all of it,
        but of an H264 region only the rows its picture changed (Framebuffer.video_rows;
        none for END): a 1080p test pattern changes ~40 % of its rows a frame, and the
        rest would be cropped, copied and painted again for nothing."""
        fb = self._framebuffer(self._target) if region.encoding == Encoding.H264 else None
        if fb is None:
            return [(region.x, region.y, region.w, region.h)]
        return [(region.x, first, region.w, rows) for first, rows in fb.video_rows]

    def before_write(self) -> None:
        """The library is about to write pixels (reactor thread; SessionClient.display_gate):
        wait for the GUI's turn to end, or detach every framebuffer's memory from it."""
        if not self.gate.open_frame():
            framebuffers = [self.client.framebuffer] + [w.framebuffer for w in self.client.windows.windows.values()]
            for fb in framebuffers:
                if fb is not None:
                    fb.detach()

    def _framebuffer(self, window: int) -> Framebuffer | None:
        if window == DESKTOP:
            return self.client.framebuffer  # type: ignore[no-any-return]
        win = self.client.windows.windows.get(window)
        return win.framebuffer if win is not None else None

    def _flush(self) -> None:
        try:
            self._queue()
        finally:
            self.gate.close_frame(False)  # (lent was set by _queue if it queued)

    def _queue(self) -> None:
        damage, self._damage = self._damage, {}
        ready: dict[int, list[Patch]] = {}
        for window, rects in damage.items():
            fb = self._framebuffer(window)
            if fb is None or not rects:
                continue
            rects = _merged(rects, fb.width, fb.height)
            ready[window] = [self._patch(window, fb, rect) for rect in rects]
        if not ready:
            return
        with self._lock:
            for window, patches in ready.items():
                queue = self._pending.setdefault(window, [])
                queue.extend(p for p in patches if p.w > 0 and p.h > 0)
                if len(queue) > MAX_PENDING_PATCHES:
                    fb = self._framebuffer(window)
                    if fb is not None:
                        self._pending[window] = [self._patch(window, fb, (0, 0, fb.width, fb.height))]
            wake, self._notified = not self._notified, True
        self.gate.close_frame(True)
        if wake:
            # Hand over only when the GUI finished its last paint (it is idle) and the frame is small.
            hand_over = self._painted.is_set() and \
                sum(patch.size_bytes for patches in ready.values() for patch in patches) <= HANDOFF_MAX_BYTES
            self._painted.clear()
            self.notify()
            if hand_over:
                self._painted.wait(HANDOFF_WAIT_SECONDS)

    def _patch(self, window: int, fb: Framebuffer, rect: tuple[int, int, int, int]) -> Patch:
        x, y, w, h = rect
        x, y = min(max(x, 0), fb.width), min(max(y, 0), fb.height)  # clipped to the buffer
        w, h = max(0, min(w, fb.width - x)), max(0, min(h, fb.height - y))
        if fb.memory.buffer is None:  # Pillow would not map it (client/fb_memory.py): the rows copied
            width, height, pixels = fb.pixels(x, y, w, h)
            return Patch(window, fb.width, fb.height, x, y, width, height, pixels)
        return Patch(window, fb.width, fb.height, x, y, w, h, memory=fb.memory, gate=self.gate)

    def take(self) -> list[Patch]:
        """Every waiting patch, oldest first (GUI thread, inside gate.begin_read .. end_read)."""
        with self._lock:
            pending, self._pending, self._notified = self._pending, {}, False
        return [patch for patches in pending.values() for patch in patches]

    def painted(self) -> None:
        """The GUI has painted what it took (GUI thread): a reactor waiting to hand a small frame over goes on."""
        self._painted.set()

    def refresh(self, windows: list[int]) -> None:
        """Queue WINDOWS whole (reactor thread): a window the GUI has just
        created, whose earlier patches found no local window to go to."""
        for window in windows:
            fb = self._framebuffer(window)
            if fb is not None:
                self._damage[window] = [(0, 0, fb.width, fb.height)]
        if not self.gate.open:  # else at the FRAME_END of the frame being written
            self._flush()
