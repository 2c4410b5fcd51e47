# Per-window pixels: Composite-redirected top-level windows, their damage
# regions, and MIT-SHM capture of just the damaged rectangles of each.
#
# Why: in seamless mode each app window is a window on the client, so its
# pixels must exist even where another window covers it, and moving one
# window over another must not make the covered one "change".  Composite
# redirection gives every top-level window its own pixmap; Damage on the
# window then reports only what its app drew (exposure by a sibling moving
# is no longer drawing), at DamageReportNonEmpty so that one event arms a
# frame however much is drawn, and the damage region is fetched once per
# frame (damage.RegionDamage).  Capture reads only the damaged rectangles of
# the window's pixmap (NameWindowPixmap) through MIT-SHM (xshm.ShmRegionCapture).
#
# Manual, not automatic, redirection (measured on Xvfb 21): with automatic
# redirection the server paints windows onto the root itself, and to drive
# that it damages the newly visible part of a window whenever a sibling moves
# off it, so a covered window "changes" each time another window moves over
# it and would be re-sent: exactly what seamless mode must avoid.  With manual
# redirection only the app's own drawing damages a window, and Xvfb skips the
# copy into the root framebuffer as well.  The price: while redirected, the
# root shows nothing (desktop mode does not redirect at all: it uses
# damage.RootRegionDamage; a screenshot in seamless mode is composed from the
# windows), and only one client may redirect manually: a second is refused,
# which is what we want from the session's one window manager.  When the
# agent's connection closes, the server undoes the redirection by itself.
#
# All of this runs on its own C Xlib connection (xshm.CDisplay): python-xlib
# lacks MIT-SHM and XFixes regions, and damage events on that connection
# never reach the agent's python-xlib event loop.
"""WindowPixels: per-window damage and capture of a Composite-redirected screen."""

from __future__ import annotations

import ctypes
from dataclasses import field
from typing import Final

from protocol.frozen import plain_dataclass
from sessiond.agent.clibs import library_path
from sessiond.agent.damage import DamageError, DamageEvents, Rect, RegionDamage, merge_rects
from sessiond.agent.window_model import MAX_WINDOWS
from sessiond.agent.xshm import MAX_CAPTURE_PIXELS, CallLater, CDisplay, ShmRegionCapture

COMPOSITE_REDIRECT_MANUAL: Final = 1
# Map and resize of a tracked window replace its pixmap: we watch for both.
STRUCTURE_NOTIFY_MASK: Final = 1 << 17
# NameWindowPixmap arrived in Composite 0.2.
MIN_COMPOSITE_VERSION: Final = (0, 2)


class CompositeError(RuntimeError):
    """The X server cannot redirect windows (no Composite, or too old)."""


class _CompositeLib:
    loaded: _CompositeLib | None = None

    def __init__(self) -> None:
        path = library_path("Xcomposite")
        if not path:
            raise CompositeError("libXcomposite not found; install libxcomposite1")
        lib = self.lib = ctypes.CDLL(path)
        vp, c_int, c_ulong, pint = ctypes.c_void_p, ctypes.c_int, ctypes.c_ulong, ctypes.POINTER(ctypes.c_int)
        lib.XCompositeQueryExtension.argtypes, lib.XCompositeQueryExtension.restype = [vp, pint, pint], c_int
        lib.XCompositeQueryVersion.argtypes, lib.XCompositeQueryVersion.restype = [vp, pint, pint], c_int
        for name in ("XCompositeRedirectSubwindows", "XCompositeUnredirectSubwindows"):
            getattr(lib, name).argtypes, getattr(lib, name).restype = [vp, c_ulong, c_int], None
        lib.XCompositeNameWindowPixmap.argtypes, lib.XCompositeNameWindowPixmap.restype = [vp, c_ulong], c_ulong

    @classmethod
    def get(cls) -> _CompositeLib:
        if cls.loaded is None:
            cls.loaded = _CompositeLib()
        return cls.loaded


@plain_dataclass
class _Window:
    damage: RegionDamage
    pixmap: int = 0  # named lazily; 0 while unknown or stale
    width: int = 0  # pixmap size: the window with its border
    height: int = 0
    border: int = 0
    notified: bool = False
    all_damaged: bool = True  # first capture, resize, refresh: send everything
    hidden: bool = False  # not viewable (minimized): nothing to take until mapped again
    carry: list[Rect] = field(default_factory=list)  # app damage kept aside across a move


class WindowPixels:
    """Redirects the root's children and tracks/captures the windows asked for.

    Loop contract: call drain() when fileno() is readable and after each
    frame's take()/capture() calls (their round trips may queue events).
    """

    def __init__(self, display: str, max_pixels: int = MAX_CAPTURE_PIXELS, call_later: CallLater | None = None) -> None:
        """call_later: the agent loop's, for the capture pages of windows their
        apps redraw whole (xshm.QUIET_RELEASE_SECONDS); None: those wait for the idle release."""
        self._c = _CompositeLib.get().lib
        self.display = CDisplay(display)
        try:
            self._start(max_pixels, call_later)
        except BaseException:
            self.display.close()
            raise

    def _start(self, max_pixels: int, call_later: CallLater | None) -> None:
        dpy = self.display.ptr
        base, error, major, minor = (ctypes.c_int() for _ in range(4))
        if not self._c.XCompositeQueryExtension(dpy, ctypes.byref(base), ctypes.byref(error)):
            raise CompositeError(f"X display {self.display.name} has no Composite extension")
        major.value, minor.value = MIN_COMPOSITE_VERSION
        self._c.XCompositeQueryVersion(dpy, ctypes.byref(major), ctypes.byref(minor))
        if (major.value, minor.value) < MIN_COMPOSITE_VERSION:
            raise CompositeError(f"Composite {major.value}.{minor.value} is too old; 0.2 is needed")
        self._c.XCompositeRedirectSubwindows(dpy, self.display.root, COMPOSITE_REDIRECT_MANUAL)
        if self.display.sync() is not None:
            raise CompositeError("the X server refused to redirect the root's children "
                                 "(another compositing manager runs on this display)")
        self.events = DamageEvents(self.display)
        self._shm = ShmRegionCapture(self.display, max_pixels, call_later)
        self._windows: dict[int, _Window] = {}
        self._by_damage: dict[int, int] = {}

    def fileno(self) -> int:
        """The pixel connection's socket."""
        return self.display.fileno()

    def track(self, window: int) -> None:
        """Start tracking a top-level window's damage (no-op if tracked)."""
        if window in self._windows:
            return
        if len(self._windows) >= MAX_WINDOWS:
            raise DamageError(f"already tracking {MAX_WINDOWS} windows")
        self.display.lib.x11.XSelectInput(self.display.ptr, window, STRUCTURE_NOTIFY_MASK)
        damage = RegionDamage(self.display, window)
        self._windows[window] = _Window(damage)
        self._by_damage[damage.damage] = window

    def untrack(self, window: int) -> None:
        """Stop tracking (window destroyed or no longer shown); idempotent."""
        state = self._windows.pop(window, None)
        if state is None:
            return
        self._by_damage.pop(state.damage.damage, None)
        self._release(state)
        state.damage.close()

    def changed(self, window: int) -> None:
        """Resend the window whole (a client asked for a refresh); its pixmap
        is named afresh.  Resizes and re-maps are noticed without this."""
        state = self._windows.get(window)
        if state is not None:
            self._release(state)
            state.all_damaged = True
            state.hidden = False

    def drain(self) -> set[int]:
        """Read pending events; the tracked windows newly damaged since the last drain.
        After a frame that sent a large window whole, the capture segment's pages go back first
        (xshm.WHOLE_CAPTURE_RELEASE_BYTES); after one that read a large area otherwise (an app
        redrew its window), once no frame did for xshm.QUIET_RELEASE_SECONDS."""
        self._shm.frame_done()
        fresh = set()
        for damage in self.events.drain():
            window = self._by_damage.get(damage)
            if window is not None:
                self._windows[window].notified = True
                fresh.add(window)
        # A new size or a new mapping means a new pixmap; a move keeps it (and
        # costs nothing: the client moves its own copy).
        events = self.events
        for window in events.mapped:
            self.changed(window)
        for window, size in events.sizes.items():
            state = self._windows.get(window)
            if state is not None and state.pixmap and size != (state.width, state.height):
                self.changed(window)
        fresh.update(w for w in events.mapped | set(events.sizes) if self.pending(w))
        events.mapped.clear()
        events.sizes.clear()
        return fresh

    def begin_move(self, window: int) -> None:
        """A pure move of `window` is about to be requested: set the damage
        the app made so far aside, so end_move() drops only what the move adds."""
        state = self._windows.get(window)
        if state is not None and state.pixmap and not state.all_damaged:
            state.carry.extend(state.damage.take(state.width, state.height, offset=state.border))

    def end_move(self, window: int) -> None:
        """The X server has processed the move (the caller synced its own
        connection). The Damage extension reports a moved window as wholly
        damaged (for compositors that repaint the screen); the client moves its
        own copy, so that damage is dropped and the window is not re-sent.
        App drawing between begin_move() and the server's handling of the move
        (a round trip) would be dropped with it."""
        state = self._windows.get(window)
        if state is not None and state.pixmap and not state.all_damaged:
            state.damage.take(state.width, state.height, offset=state.border)
            state.notified = bool(state.carry)

    def pending(self, window: int) -> bool:
        """True if the window has damage not yet taken."""
        state = self._windows.get(window)
        return state is not None and not state.hidden and (state.notified or state.all_damaged)

    def damaged(self) -> list[int]:
        """Tracked, viewable windows with damage not yet taken."""
        return [w for w, s in self._windows.items() if not s.hidden and (s.notified or s.all_damaged)]

    def take(self, window: int) -> list[Rect]:
        """The window's damaged rectangles since the last take(), relative to
        its top-left outer corner (border included), merged and clipped; the
        server-side damage is emptied.  [] if the window cannot be captured."""
        state = self._windows.get(window)
        if state is None:
            return []
        if not self._name_pixmap(window, state):
            # Unmapped (minimized) or gone: quiet until a MapNotify says otherwise,
            # so a frame loop never spins on a window it cannot capture.
            state.hidden, state.notified, state.all_damaged = True, False, True
            return []
        rects = state.damage.take(state.width, state.height, offset=state.border)
        if state.carry:
            rects = merge_rects(state.carry + rects, state.width, state.height)
            state.carry = []
        if state.all_damaged:
            rects = [(0, 0, state.width, state.height)]
            self._shm.release_after_frame(state.width * state.height * 4)
        state.notified = state.all_damaged = False
        return rects

    def size(self, window: int) -> tuple[int, int]:
        """The window's pixel buffer (border included) as of its last take():
        what the client's copy of the window must hold."""
        state = self._windows.get(window)
        if state is None or not state.pixmap:
            raise DamageError(f"window {window:#x} is not tracked or not viewable")
        return state.width, state.height

    def capture(self, window: int, rect: Rect) -> memoryview:
        """BGRX pixels of rect (from take()) of the window's own pixmap, covered
        or not; stride rect width * 4; valid until the next capture().
        Raises xshm.XShmError if the window went away meanwhile."""
        state = self._windows.get(window)
        if state is None or not self._name_pixmap(window, state):
            raise DamageError(f"window {window:#x} is not tracked or not viewable")
        x, y, w, h = rect
        return self._shm.capture(state.pixmap, x, y, w, h)

    def release_idle(self) -> None:
        """Idle (idle_release.py): give the capture segment's pages back; the
        next capture() writes every pixel it returns, so none are lost."""
        self._shm.release()

    def _name_pixmap(self, window: int, state: _Window) -> bool:
        if state.pixmap:
            return True
        geometry = self.display.geometry(window)
        if geometry is None:
            return False
        pixmap = int(self._c.XCompositeNameWindowPixmap(self.display.ptr, window))
        if self.display.sync() is not None:  # BadMatch: not viewable (unmapped, minimized)
            return False
        width, height, border, _ = geometry
        state.pixmap, state.width, state.height, state.border = pixmap, width + 2 * border, height + 2 * border, border
        return True

    def _release(self, state: _Window) -> None:
        if state.pixmap:
            self.display.lib.x11.XFreePixmap(self.display.ptr, state.pixmap)
            self.display.sync()
            state.pixmap = 0

    def close(self) -> None:
        """Untrack everything, undo the redirection and close the connection."""
        for window in list(self._windows):
            self.untrack(window)
        if self.display.ptr:
            self._shm.close()
            self._c.XCompositeUnredirectSubwindows(self.display.ptr, self.display.root, COMPOSITE_REDIRECT_MANUAL)
            self.display.sync()
            self.display.close()
