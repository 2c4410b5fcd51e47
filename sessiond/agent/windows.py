# Focus and stacking for a session without a window manager.
#
# Why: a session shows published applications, not a desktop, so there is no
# window manager to raise a new window or give it the keyboard.  The agent
# does the minimum itself: a newly mapped top-level window is raised and
# focused, a click focuses (and raises) the window under the pointer, and
# when the focused window goes away the topmost remaining one takes over.
# override-redirect windows (menus, tooltips) are never focused or raised:
# they manage themselves, and a click inside a menu must not steal focus
# from the window that opened it.

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import Xlib.display
import Xlib.error
from Xlib import X

OnMap = Callable[[int, "int | None"], None]
# _NET_WM_PID is one CARD32; a longer value is ignored rather than trusted.
NET_WM_PID_FORMAT = 32


class FocusManager:
    """Raises and focuses top-level windows of the root window's children."""

    def __init__(self, display: Xlib.display.Display, on_map: OnMap | None = None) -> None:
        self._display = display
        self._root = display.screen().root
        self._on_map = on_map
        self._focused: int | None = None
        self._pid_atom = display.intern_atom("_NET_WM_PID")
        mask = self._root.get_attributes().your_event_mask
        self._root.change_attributes(event_mask=mask | X.SubstructureNotifyMask)
        # Round trip: windows mapped by others after this returns are seen.
        display.sync()
        # Those mapped before (the login's launch starts before this watch) count as mapped now.
        for window_id in self.top_level_windows():
            self._focus(window_id)
            if on_map is not None:
                on_map(window_id, self._window_pid(window_id))

    @property
    def focused(self) -> int | None:
        """The window id this manager last focused, if any."""
        return self._focused

    def handle_event(self, ev: Any) -> bool:
        """Handle MapNotify / UnmapNotify / DestroyNotify of root children.

        Returns True if the event was one of ours.
        """
        kind = getattr(ev, "type", None)
        if kind == X.MapNotify and ev.event == self._root:
            if not ev.override:
                self._focus(ev.window.id)
                if self._on_map is not None:
                    self._on_map(ev.window.id, self._window_pid(ev.window.id))
            return True
        if kind in (X.UnmapNotify, X.DestroyNotify) and ev.event == self._root:
            if ev.window.id == self._focused:
                self._focused = None
                remaining = self.top_level_windows()
                if remaining:
                    self._focus(remaining[-1])
            return True
        return False

    def _window_pid(self, window_id: int) -> int | None:
        window = self._display.create_resource_object("window", window_id)
        try:
            prop = window.get_full_property(self._pid_atom, X.AnyPropertyType)
        except Xlib.error.XError:
            return None
        if prop is None or prop.format != NET_WM_PID_FORMAT or len(prop.value) != 1:
            return None
        return int(prop.value[0])

    def _focus(self, window_id: int) -> None:
        """Raise window_id and give it the input focus; a window that vanished
        meanwhile is ignored (its errors are caught, not reported)."""
        window = self._display.create_resource_object("window", window_id)
        catcher = Xlib.error.CatchError(Xlib.error.BadWindow, Xlib.error.BadMatch)
        window.configure(stack_mode=X.Above, onerror=catcher)
        window.set_input_focus(X.RevertToPointerRoot, X.CurrentTime, onerror=catcher)
        self._display.flush()
        self._focused = window_id

    def _viewable_children(self) -> list[tuple[int, Any]]:
        """(window id, attributes) of mapped root children, bottom to top."""
        result = []
        for child in self._root.query_tree().children:
            try:
                attrs = child.get_attributes()
            except Xlib.error.XError:
                continue
            if attrs.map_state == X.IsViewable:
                result.append((child.id, attrs))
        return result

    def top_level_windows(self) -> list[int]:
        """Mapped, non-override-redirect top-level windows, bottom to top."""
        return [wid for wid, attrs in self._viewable_children() if not attrs.override_redirect]

    def window_at(self, x: int, y: int) -> int | None:
        """The topmost viewable root child containing (x, y), or None."""
        hit = self._child_at(x, y)
        return hit[0] if hit is not None else None

    def _child_at(self, x: int, y: int) -> tuple[int, Any] | None:
        for wid, attrs in reversed(self._viewable_children()):
            window = self._display.create_resource_object("window", wid)
            try:
                geom = window.get_geometry()
            except Xlib.error.XError:
                continue
            border = 2 * geom.border_width
            if geom.x <= x < geom.x + geom.width + border and geom.y <= y < geom.y + geom.height + border:
                return int(wid), attrs
        return None

    def focus_at(self, x: int, y: int) -> None:
        """Raise and focus the top-level window under (x, y), if any.

        Does nothing over the background or over an override-redirect window
        (a menu).
        """
        hit = self._child_at(x, y)
        if hit is None or hit[1].override_redirect:
            return
        self._focus(hit[0])
