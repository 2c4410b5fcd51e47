# The session's windows as plain data, independent of the display server.
#
# Why: seamless mode shows each app window as its own window on the client.
# What the client needs to know about a window (id, geometry, kind, title,
# stacking, focus, state, icon) is the same whether an X window manager feeds
# it today or a Wayland compositor does later, so this module knows nothing of
# X: no Xlib import, no atoms, no X event names.  The window manager mutates a
# WindowModel; every change comes out as one typed, frozen event that the
# protocol layer will encode on the windows channel.  Requests from the client
# arrive through the WindowRequests interface, implemented by whoever owns the
# windows (the X WM in wm.py).  Every bound on what a window may carry is here.
"""X-agnostic window model: window records, events out, requests in, bounds."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator
from typing import Final, Protocol

from protocol.frozen import frozen_dataclass

# Windows per session (managed and override-redirect together): bounds the
# model, the per-window damage/capture state and the client's window table.
MAX_WINDOWS: Final = 256
# Bytes of UTF-8 kept of a window title: a title bar and a taskbar entry.
MAX_TITLE_BYTES: Final = 512
# Bytes kept of each WM_CLASS string and of an app id.
MAX_CLASS_BYTES: Final = 128
# Largest icon side sent to clients (pixels); bigger _NET_WM_ICON entries are skipped.
MAX_ICON_SIDE: Final = 128
# Window ids are u32 on the wire.
MAX_WINDOW_ID: Final = 0xFFFFFFFF


class WindowKind(enum.Enum):
    """What a window is for, which decides decoration, stacking and focus."""

    NORMAL = "normal"
    DIALOG = "dialog"
    UTILITY = "utility"
    TOOLBAR = "toolbar"
    SPLASH = "splash"
    MENU = "menu"
    TOOLTIP = "tooltip"
    NOTIFICATION = "notification"
    # Placed by the app itself with no kind it told us (X override-redirect).
    OVERRIDE_REDIRECT = "override-redirect"


class WindowState(enum.Enum):
    """Whether a managed window is shown normally, minimized or maximized."""

    NORMAL = "normal"
    MINIMIZED = "minimized"
    MAXIMIZED = "maximized"


class WindowLimitError(Exception):
    """The session already has MAX_WINDOWS windows."""


class UnknownWindowError(KeyError):
    """A request or update named a window the model does not hold."""


@frozen_dataclass
class Rect:
    """A rectangle in screen pixels: top-left corner and size."""

    x: int
    y: int
    width: int
    height: int

    def intersects(self, other: Rect) -> bool:
        """True if the two rectangles share at least one pixel."""
        return (self.x < other.x + other.width and other.x < self.x + self.width
                and self.y < other.y + other.height and other.y < self.y + self.height)  # fmt: skip


@frozen_dataclass
class SizeHints:
    """Size constraints an app asked for (0 means "none" for max and increments)."""

    min_width: int = 1
    min_height: int = 1
    max_width: int = 0
    max_height: int = 0
    base_width: int = 0
    base_height: int = 0
    width_inc: int = 1
    height_inc: int = 1
    # (numerator, denominator) of width/height, or None.
    min_aspect: tuple[int, int] | None = None
    max_aspect: tuple[int, int] | None = None


@frozen_dataclass
class Icon:
    """A window icon: width x height pixels, ARGB as little-endian u32 each."""

    width: int
    height: int
    argb: bytes


@frozen_dataclass
class WindowInfo:
    """Everything a client is told about one window, as one immutable record."""

    id: int
    geometry: Rect
    kind: WindowKind = WindowKind.NORMAL
    # Managed: placed and decorated by us; False for menus/tooltips the app places.
    managed: bool = True
    # Dialog parent, or for an unmanaged window the window that owns it (0: none).
    transient_for: int = 0
    title: str = ""
    wm_class: tuple[str, str] = ("", "")
    app_id: str = ""
    size_hints: SizeHints = SizeHints()
    modal: bool = False
    decorated: bool = True
    state: WindowState = WindowState.NORMAL
    pid: int = 0
    # The app offers a polite close (X: WM_DELETE_WINDOW); else close = force.
    polite_close: bool = False


# -- events out ------------------------------------------------------------------
@frozen_dataclass
class WindowNew:
    """A window appeared (window.geometry and metadata are complete)."""

    window: WindowInfo


@frozen_dataclass
class WindowMetadataChanged:
    """Title, class, app id, hints, kind, modality, decoration or state changed."""

    window: WindowInfo


@frozen_dataclass
class WindowGeometryChanged:
    """A window moved or was resized."""

    id: int
    geometry: Rect


@frozen_dataclass
class WindowRestacked:
    """The stacking order changed; ids bottom to top, every window once."""

    order: tuple[int, ...]


@frozen_dataclass
class WindowDestroyed:
    """A window went away (closed, withdrawn or its app exited)."""

    id: int


@frozen_dataclass
class WindowIconChanged:
    """A window's icon changed (icon None: it has none any more)."""

    id: int
    icon: Icon | None


@frozen_dataclass
class FocusChanged:
    """The keyboard focus moved to a window (0: to no window)."""

    id: int


@frozen_dataclass
class CloseUnanswered:
    """A polite close was asked and the window is still there after the grace
    period: the client may offer to force it."""

    id: int


WindowEvent = (WindowNew | WindowMetadataChanged | WindowGeometryChanged | WindowRestacked
               | WindowDestroyed | WindowIconChanged | FocusChanged | CloseUnanswered)  # fmt: skip


class WindowRequests(Protocol):
    """What a client may ask of a session's windows.  Every method raises
    UnknownWindowError for an id the model does not hold, and nothing else for
    bad values: sizes are clamped, not trusted."""

    def move_resize(self, window_id: int, geometry: Rect) -> None:
        """Move and/or resize a window (size constrained by its hints)."""

    def raise_focus(self, window_id: int) -> None:
        """Raise a window and give it the keyboard (or its modal dialog)."""

    def minimize(self, window_id: int) -> None:
        """Hide a window (and its dialogs) until restored."""

    def maximize(self, window_id: int) -> None:
        """Make a window as large as the screen allows."""

    def restore(self, window_id: int) -> None:
        """Undo minimize or maximize, then raise and focus."""

    def close(self, window_id: int) -> None:
        """Ask the app to close the window; CloseUnanswered if it does not."""

    def force_close(self, window_id: int) -> None:
        """End the app's hold on the window without asking."""


def truncate_utf8(text: str, max_bytes: int) -> str:
    """text cut to at most max_bytes of UTF-8, never inside a character."""
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


class WindowModel:
    """The session's windows, their stacking order and focus.

    Mutators validate, apply and emit exactly one event per visible change
    through `emit`; a change that changes nothing emits nothing.
    """

    def __init__(self, emit: Callable[[WindowEvent], None]) -> None:
        self._emit = emit
        self._windows: dict[int, WindowInfo] = {}
        self._icons: dict[int, Icon] = {}
        self._order: list[int] = []  # bottom to top
        self._focus = 0

    def __contains__(self, window_id: object) -> bool:
        return window_id in self._windows

    def __len__(self) -> int:
        return len(self._windows)

    def get(self, window_id: int) -> WindowInfo:
        """The record of window_id; UnknownWindowError if there is none."""
        try:
            return self._windows[window_id]
        except KeyError:
            raise UnknownWindowError(window_id) from None

    def windows(self) -> Iterator[WindowInfo]:
        """Every window, bottom to top."""
        return (self._windows[w] for w in self._order)

    @property
    def stacking(self) -> tuple[int, ...]:
        """Window ids bottom to top."""
        return tuple(self._order)

    @property
    def focus(self) -> int:
        """The focused window id, 0 for none."""
        return self._focus

    def icon(self, window_id: int) -> Icon | None:
        """The icon of window_id, if it has one."""
        return self._icons.get(window_id)

    def can_add(self) -> bool:
        """False once MAX_WINDOWS windows exist (check before allocating anything)."""
        return len(self._windows) < MAX_WINDOWS

    def add(self, info: WindowInfo, icon: Icon | None = None) -> None:
        """Add a window on top of the stack; WindowLimitError past MAX_WINDOWS."""
        if not 0 < info.id <= MAX_WINDOW_ID:
            raise ValueError(f"window id {info.id} is not a u32 other than 0")
        if info.id in self._windows:
            raise ValueError(f"window {info.id:#x} is already in the model")
        if not self.can_add():
            raise WindowLimitError(f"the session already has {MAX_WINDOWS} windows")
        self._windows[info.id] = _bounded(info)
        self._order.append(info.id)
        self._emit(WindowNew(self._windows[info.id]))
        if icon is not None:
            self.set_icon(info.id, icon)

    def update(self, window_id: int, **changes: object) -> WindowInfo:
        """Change metadata fields (not geometry or id); emits WindowMetadataChanged."""
        old = self.get(window_id)
        if "geometry" in changes or "id" in changes:
            raise ValueError("use set_geometry to move a window; ids never change")
        new = _bounded(dataclasses.replace(old, **changes))  # type: ignore[arg-type]
        if new != old:
            self._windows[window_id] = new
            self._emit(WindowMetadataChanged(new))
        return new

    def set_geometry(self, window_id: int, geometry: Rect) -> None:
        """Record a window's new position/size; emits WindowGeometryChanged."""
        old = self.get(window_id)
        if old.geometry != geometry:
            self._windows[window_id] = dataclasses.replace(old, geometry=geometry)
            self._emit(WindowGeometryChanged(window_id, geometry))

    def set_icon(self, window_id: int, icon: Icon | None) -> None:
        """Replace a window's icon; emits WindowIconChanged if it differs."""
        self.get(window_id)
        if icon is not None and (icon.width > MAX_ICON_SIDE or icon.height > MAX_ICON_SIDE
                                 or len(icon.argb) != 4 * icon.width * icon.height):  # fmt: skip
            raise ValueError(f"icon {icon.width}x{icon.height} is not a valid icon of at most {MAX_ICON_SIDE} px")
        if self._icons.get(window_id) == icon:
            return
        if icon is None:
            del self._icons[window_id]
        else:
            self._icons[window_id] = icon
        self._emit(WindowIconChanged(window_id, icon))

    def restack(self, order: list[int]) -> None:
        """Set the stacking order (bottom to top); must name every window once."""
        if sorted(order) != sorted(self._order):
            raise ValueError("a stacking order must name every window exactly once")
        if order != self._order:
            self._order = list(order)
            self._emit(WindowRestacked(tuple(order)))

    def set_focus(self, window_id: int) -> None:
        """Record the focused window (0: none); emits FocusChanged."""
        if window_id:
            self.get(window_id)
        if window_id != self._focus:
            self._focus = window_id
            self._emit(FocusChanged(window_id))

    def remove(self, window_id: int) -> None:
        """Forget a window; emits WindowDestroyed (and FocusChanged(0) if it had focus)."""
        self.get(window_id)
        del self._windows[window_id]
        self._icons.pop(window_id, None)
        self._order.remove(window_id)
        self._emit(WindowDestroyed(window_id))
        if self._focus == window_id:
            self._focus = 0
            self._emit(FocusChanged(0))

    def replay(self) -> Iterator[WindowEvent]:
        """Events that rebuild the whole model from nothing (a client (re)connecting)."""
        for info in self.windows():
            yield WindowNew(info)
            icon = self._icons.get(info.id)
            if icon is not None:
                yield WindowIconChanged(info.id, icon)
        yield WindowRestacked(tuple(self._order))
        yield FocusChanged(self._focus)


def _bounded(info: WindowInfo) -> WindowInfo:
    """info with its free-text fields cut to their bounds."""
    title = truncate_utf8(info.title, MAX_TITLE_BYTES)
    wm_class = (truncate_utf8(info.wm_class[0], MAX_CLASS_BYTES), truncate_utf8(info.wm_class[1], MAX_CLASS_BYTES))
    app_id = truncate_utf8(info.app_id, MAX_CLASS_BYTES)
    if (title, wm_class, app_id) == (info.title, info.wm_class, info.app_id):
        return info
    return dataclasses.replace(info, title=title, wm_class=wm_class, app_id=app_id)
