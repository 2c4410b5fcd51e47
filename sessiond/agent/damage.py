# Which parts of the screen (or of a window) changed since the last frame (XDamage).
#
# Why: the display pipeline captures and encodes only what changed.  Two
# trackers live here, RegionDamage (a window) and RootRegionDamage (the
# desktop).  Raw-rectangle reporting (one event per drawn rectangle) cost
# a flooding xterm 13.5k events per second, ~26 us of Python each, even
# with no client attached (MACHINE-NOTES, issue 15).  So both trackers
# (ctypes, on a CDisplay) ask for DamageReportNonEmpty: the
# server sends ONE event when a drawable's damage goes from empty to
# non-empty and accumulates everything after it as a region; once per frame
# the region is moved into an XFixes region and fetched (DamageSubtract +
# FetchRegion), which also re-arms the event.  So Python work follows frames
# taken, not X drawing calls, and while the client is behind the server just
# keeps accumulating.  python-xlib lacks XFixes regions, hence ctypes.  The
# list handed on is kept short: each rectangle costs a region header on the
# wire and an encoder call, so past MAX_RECTS we trade a little extra area for
# fewer rectangles.  The merge logic is a pure function, tested without X.

from __future__ import annotations

import ctypes
from collections.abc import Iterable

from sessiond.agent.clibs import library_path
from sessiond.agent.xshm import CDisplay

Rect = tuple[int, int, int, int]

# Most rectangles one frame may carry; beyond this, rows merge into bands.
MAX_RECTS = 32


class DamageError(RuntimeError):
    """The X server lacks the DAMAGE extension."""


def _touch(a: Rect, b: Rect) -> bool:
    """True if the rectangles overlap or share an edge."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax <= bx + bw and bx <= ax + aw and ay <= by + bh and by <= ay + ah


def _union(a: Rect, b: Rect) -> Rect:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1 = max(a[0] + a[2], b[0] + b[2])
    y1 = max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


def _clip(rects: Iterable[Rect], width: int, height: int) -> list[Rect]:
    out = []
    for x, y, w, h in rects:
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(width, x + w), min(height, y + h)
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1 - x0, y1 - y0))
    return out


def _merge_touching(rects: list[Rect]) -> list[Rect]:
    """Replace every group of overlapping/adjacent rectangles by its bounding
    box, repeating until no two rectangles touch."""
    merged: list[Rect] = []
    for rect in rects:
        current = rect
        changed = True
        while changed:
            changed = False
            for i, other in enumerate(merged):
                if _touch(current, other):
                    current = _union(current, merged.pop(i))
                    changed = True
                    break
        merged.append(current)
    return merged


def _bands(rects: list[Rect]) -> list[Rect]:
    """Merge rectangles whose rows overlap into full-span horizontal bands."""
    bands: list[Rect] = []
    for rect in sorted(rects, key=lambda r: r[1]):
        if bands and rect[1] <= bands[-1][1] + bands[-1][3]:
            bands[-1] = _union(bands[-1], rect)
        else:
            bands.append(rect)
    return bands


def merge_rects(rects: Iterable[Rect], width: int, height: int) -> list[Rect]:
    """Clip (x, y, w, h) rectangles to a width x height screen and merge them.

    Overlapping or adjacent rectangles become their bounding box.  If more
    than MAX_RECTS remain, they are merged into horizontal bands, and if that
    is still too many, into one bounding box.  The result never overlaps and
    covers every input pixel that lies on the screen.
    """
    clipped = _clip(rects, width, height)
    merged = _merge_touching(clipped)
    if len(merged) > MAX_RECTS:
        merged = _bands(merged)
    if len(merged) > MAX_RECTS:
        box = merged[0]
        for rect in merged[1:]:
            box = _union(box, rect)
        merged = [box]
    return sorted(merged, key=lambda r: (r[1], r[0]))


# -- region damage (ctypes: libXdamage + libXfixes) ----------------------------------
# XDamageReportLevel: one event per empty -> non-empty transition.
DAMAGE_REPORT_NON_EMPTY = 3
# Rectangles of one fetched region turned into Python tuples and merged; a
# more fragmented region is sent as its bounding box (merging is quadratic).
MAX_REGION_RECTS = 128
# Damage events handled per drain() before the loop serves others again.
MAX_DAMAGE_EVENTS_PER_DRAIN = 1024
# Size of Xlib's XEvent union (24 longs).
XEVENT_SIZE = 24 * ctypes.sizeof(ctypes.c_long)


class _XRectangle(ctypes.Structure):
    _fields_ = [("x", ctypes.c_short), ("y", ctypes.c_short),
                ("width", ctypes.c_ushort), ("height", ctypes.c_ushort)]  # fmt: skip


class _XDamageNotifyEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p), ("drawable", ctypes.c_ulong), ("damage", ctypes.c_ulong),
        ("level", ctypes.c_int), ("more", ctypes.c_int), ("timestamp", ctypes.c_ulong),
        ("area", _XRectangle), ("geometry", _XRectangle),
    ]  # fmt: skip


class _XMapEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p), ("event", ctypes.c_ulong), ("window", ctypes.c_ulong),
    ]  # fmt: skip


class _XConfigureEvent(ctypes.Structure):
    _fields_ = [*_XMapEvent._fields_, ("x", ctypes.c_int), ("y", ctypes.c_int), ("width", ctypes.c_int),
                ("height", ctypes.c_int), ("border_width", ctypes.c_int)]  # fmt: skip


# Core event codes seen on the pixel connection (StructureNotify of tracked windows).
MAP_NOTIFY = 19
CONFIGURE_NOTIFY = 22


class _DamageLibs:
    """libXdamage and libXfixes with their prototypes (loaded once per process)."""

    loaded: _DamageLibs | None = None

    def __init__(self) -> None:
        names = {lib: library_path(lib) for lib in ("Xdamage", "Xfixes")}
        missing = [lib for lib, path in names.items() if not path]
        if missing:
            raise DamageError(f"lib{' and lib'.join(missing)} not found; install libxdamage1 and libxfixes3")
        self.damage, self.fixes = ctypes.CDLL(names["Xdamage"]), ctypes.CDLL(names["Xfixes"])
        vp, c_int, c_ulong, pint = ctypes.c_void_p, ctypes.c_int, ctypes.c_ulong, ctypes.POINTER(ctypes.c_int)
        d, f = self.damage, self.fixes
        for lib, prefix in ((d, "XDamage"), (f, "XFixes")):
            for fn in ("QueryExtension", "QueryVersion"):
                getattr(lib, prefix + fn).argtypes, getattr(lib, prefix + fn).restype = [vp, pint, pint], c_int
        d.XDamageCreate.argtypes, d.XDamageCreate.restype = [vp, c_ulong, c_int], c_ulong
        d.XDamageDestroy.argtypes, d.XDamageDestroy.restype = [vp, c_ulong], None
        d.XDamageSubtract.argtypes, d.XDamageSubtract.restype = [vp, c_ulong, c_ulong, c_ulong], None
        f.XFixesCreateRegion.argtypes, f.XFixesCreateRegion.restype = [vp, vp, c_int], c_ulong
        f.XFixesDestroyRegion.argtypes, f.XFixesDestroyRegion.restype = [vp, c_ulong], None
        f.XFixesFetchRegionAndBounds.argtypes = [vp, c_ulong, pint, ctypes.POINTER(_XRectangle)]
        f.XFixesFetchRegionAndBounds.restype = ctypes.POINTER(_XRectangle)

    @classmethod
    def get(cls) -> _DamageLibs:
        if cls.loaded is None:
            cls.loaded = _DamageLibs()
        return cls.loaded


class DamageEvents:
    """The DamageNotify events of one CDisplay: drain() says which damage
    objects were notified.  `events` counts the damage events seen (a measure
    of the Python work damage costs).  Map/ConfigureNotify of windows whose
    structure is watched are collected in `mapped` and `sizes` (outer size)
    for the caller to consume."""

    def __init__(self, display: CDisplay) -> None:
        libs = _DamageLibs.get()
        self._display = display
        event_base, error_base, major, minor = (ctypes.c_int() for _ in range(4))
        if not libs.damage.XDamageQueryExtension(display.ptr, ctypes.byref(event_base), ctypes.byref(error_base)):
            raise DamageError(f"X display {display.name} has no DAMAGE extension")
        # The version must be asked before XDamageCreate, or the server refuses it.
        libs.damage.XDamageQueryVersion(display.ptr, ctypes.byref(major), ctypes.byref(minor))
        if not libs.fixes.XFixesQueryExtension(display.ptr, ctypes.byref(major), ctypes.byref(minor)):
            raise DamageError(f"X display {display.name} has no XFIXES extension (damage regions need it)")
        major.value, minor.value = 2, 0  # regions arrived in XFixes 2.0
        libs.fixes.XFixesQueryVersion(display.ptr, ctypes.byref(major), ctypes.byref(minor))
        if major.value < 2:
            raise DamageError(f"X display {display.name} has XFIXES {major.value}.{minor.value}; regions need 2.0")
        self._notify_type = event_base.value  # XDamageNotify is event 0 of the extension
        self._buffer = ctypes.create_string_buffer(XEVENT_SIZE)
        self.events = 0
        self.mapped: set[int] = set()
        self.sizes: dict[int, tuple[int, int]] = {}

    def drain(self, limit: int = MAX_DAMAGE_EVENTS_PER_DRAIN) -> set[int]:
        """Ids of the damage objects notified since the last drain (other
        events on the connection are dropped: it carries only the pixel path)."""
        x11, dpy, notified = self._display.lib.x11, self._display.ptr, set()
        for _ in range(limit):
            if not x11.XPending(dpy):
                break
            x11.XNextEvent(dpy, self._buffer)
            ev = _XDamageNotifyEvent.from_buffer(self._buffer)
            if ev.type == self._notify_type:
                self.events += 1
                notified.add(int(ev.damage))
            elif ev.type == MAP_NOTIFY:
                self.mapped.add(int(_XMapEvent.from_buffer(self._buffer).window))
            elif ev.type == CONFIGURE_NOTIFY:
                conf = _XConfigureEvent.from_buffer(self._buffer)
                self.sizes[int(conf.window)] = (conf.width + 2 * conf.border_width, conf.height + 2 * conf.border_width)
        return notified


class RegionDamage:
    """One drawable's damage, accumulated by the server, fetched once per take()."""

    def __init__(self, display: CDisplay, drawable: int) -> None:
        self._libs = _DamageLibs.get()
        self._display = display
        self.drawable = drawable
        self.damage = int(self._libs.damage.XDamageCreate(display.ptr, drawable, DAMAGE_REPORT_NON_EMPTY))
        self._region = int(self._libs.fixes.XFixesCreateRegion(display.ptr, None, 0))

    def take(self, width: int, height: int, offset: int = 0) -> list[Rect]:
        """The damage since the last take(), shifted by offset (a window's
        border) and clipped to width x height, merged; the server's damage is
        emptied, which re-arms its single notify event."""
        libs, dpy = self._libs, self._display.ptr
        libs.damage.XDamageSubtract(dpy, self.damage, 0, self._region)
        count, bounds = ctypes.c_int(), _XRectangle()
        rects = libs.fixes.XFixesFetchRegionAndBounds(dpy, self._region, ctypes.byref(count), ctypes.byref(bounds))
        if self._display.take_error() is not None or not rects:
            return []
        try:
            if count.value > MAX_REGION_RECTS:
                found = [(bounds.x, bounds.y, bounds.width, bounds.height)]
            else:
                found = [(r.x, r.y, r.width, r.height) for r in rects[: count.value]]
        finally:
            self._display.lib.x11.XFree(ctypes.cast(rects, ctypes.c_void_p))
        return merge_rects([(x + offset, y + offset, w, h) for x, y, w, h in found], width, height)

    def close(self) -> None:
        """Destroy the damage object (already gone with its window: error ignored) and the region."""
        if self._region:
            self._libs.damage.XDamageDestroy(self._display.ptr, self.damage)
            self._libs.fixes.XFixesDestroyRegion(self._display.ptr, self._region)
            self._display.sync()
            self._region = 0


class RootRegionDamage:
    """Desktop mode on region damage: DamageTracker's interface (pending,
    mark_all, take, close) on the root window, plus fileno() and drain() for
    the loop, which must call drain() when fileno() is readable and after
    each take() (the round trip may have queued events)."""

    def __init__(self, display: CDisplay) -> None:
        self._display = display
        self.events = DamageEvents(display)
        self._damage = RegionDamage(display, display.root)
        self._notified = False
        self._all = False

    def fileno(self) -> int:
        """The pixel connection's socket."""
        return self._display.fileno()

    def drain(self) -> bool:
        """Read pending events; True if the root has new damage."""
        if self._damage.damage in self.events.drain():
            self._notified = True
        return self._notified

    def pending(self) -> bool:
        """True if some damage has accumulated since the last take()."""
        return self._all or self._notified

    def mark_all(self) -> None:
        """Treat the whole screen as damaged (new client, resize, refresh)."""
        self._all = True

    def take(self, width: int, height: int) -> list[Rect]:
        """The merged damage clipped to width x height, cleared on the server."""
        rects = self._damage.take(width, height)
        if self._all:
            rects = [(0, 0, width, height)] if width > 0 and height > 0 else []
        self._all = self._notified = False
        return rects

    def close(self) -> None:
        """Destroy the server-side objects (the CDisplay stays open)."""
        self._damage.close()
