# The window manager's X side, on python-xlib.
#
# Why: wm.py speaks ICCCM/EWMH in plain ints and atom names through the
# WmBackend interface; this module is the one place that turns those into X
# requests and turns X events back into wm_backend's dataclasses.  It owns the
# WM selection (WM_S0, with a small unmapped window that is also the
# _NET_SUPPORTING_WM_CHECK window) and SubstructureRedirect on the root, and it
# reads properties with GetProperty's long-length set from the caller's
# bound, so an app's 100 MB property never crosses the socket.  Every request
# about a client window tolerates the window vanishing meanwhile: its
# BadWindow/BadMatch is caught, never raised into the agent's loop.
"""XlibWmBackend: WmBackend on a python-xlib Display, and X event translation."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Final

import Xlib.display
import Xlib.error
from Xlib import X, Xatom
from Xlib.protocol import event as xevent

from sessiond.agent.window_model import Rect
from sessiond.agent.wm_backend import (
    ClientMessage,
    ConfigureNotify,
    ConfigureRequest,
    DestroyNotify,
    MapNotify,
    MapRequest,
    PropertyNotify,
    TopLevel,
    UnmapNotify,
    WmSelectionError,
    WmXEvent,
)

# Name the WM check window advertises (_NET_WM_NAME), as EWMH asks.
WM_NAME: Final = "sessiond"
# Root events the WM needs: redirect of map/configure, notify of the rest,
# property changes (none used yet, cheap) and client messages (always delivered).
ROOT_EVENT_MASK: Final = X.SubstructureRedirectMask | X.SubstructureNotifyMask
CLIENT_EVENT_MASK: Final = X.PropertyChangeMask
# ConfigureRequest value-mask bits (X protocol).
CW_X, CW_Y, CW_WIDTH, CW_HEIGHT, CW_BORDER, CW_STACK = 1, 2, 4, 8, 16, 64
# Atom-name cache entries kept (atoms never die, but apps can intern millions).
MAX_ATOM_CACHE: Final = 4096


class XlibWmBackend:
    """WmBackend on a python-xlib connection (the agent's, or one of its own)."""

    def __init__(self, display: Xlib.display.Display) -> None:
        self._d = display
        self._screen = display.get_default_screen()
        self._root = display.screen().root
        self._atoms: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._check: Any = None

    @property
    def root_id(self) -> int:
        """The root window id (events on it are the WM's)."""
        return int(self._root.id)

    def _atom(self, name: str) -> int:
        atom = self._atoms.get(name)
        if atom is None:
            atom = int(self._d.intern_atom(name))
            self._atoms[name] = atom
            self._names[atom] = name
        return atom

    def atom_name(self, atom: int) -> str:
        """The name of an atom ("" for None or an unknown atom)."""
        name = self._names.get(atom)
        if name is None:
            if not atom:
                return ""
            try:
                name = str(self._d.get_atom_name(atom))
            except Xlib.error.XError:
                return ""
            if len(self._names) < MAX_ATOM_CACHE:
                self._names[atom] = name
        return name

    def _window(self, window: int) -> Any:
        return self._d.create_resource_object("window", window)

    # -- becoming the WM -------------------------------------------------------------
    def acquire_wm_selection(self) -> None:
        """Own WM_S<screen> and SubstructureRedirect on the root."""
        selection = self._atom(f"WM_S{self._screen}")
        owner = self._d.get_selection_owner(selection)
        owner_id = int(getattr(owner, "id", owner) or 0)
        if owner_id:
            raise WmSelectionError(f"another window manager (window {owner_id:#x}) holds WM_S{self._screen}; "
                                   "stop it, or run the session in desktop mode")  # fmt: skip
        check = self._root.create_window(-1, -1, 1, 1, 0, X.CopyFromParent, override_redirect=True)
        check.set_selection_owner(selection, X.CurrentTime)
        now = self._d.get_selection_owner(selection)
        if int(getattr(now, "id", now) or 0) != check.id:
            check.destroy()
            raise WmSelectionError(f"lost the race for WM_S{self._screen} to another window manager")
        catcher = Xlib.error.CatchError(Xlib.error.BadAccess)
        mask = self._root.get_attributes().your_event_mask
        self._root.change_attributes(event_mask=mask | ROOT_EVENT_MASK, onerror=catcher)
        self._d.sync()
        if catcher.get_error() is not None:
            check.destroy()
            self._d.sync()
            raise WmSelectionError("another window manager already redirects the root window's children")
        self._check = check
        for target in (self._root, check):
            target.change_property(self._atom("_NET_SUPPORTING_WM_CHECK"), Xatom.WINDOW, 32, [check.id])
        check.change_property(self._atom("_NET_WM_NAME"), self._atom("UTF8_STRING"), 8, WM_NAME.encode())
        # ICCCM 2.8: announce the new manager to whoever waits for one.
        announce = xevent.ClientMessage(window=self._root, client_type=self._atom("MANAGER"),
                                        data=(32, [X.CurrentTime, selection, check.id, 0, 0]))  # fmt: skip
        self._root.send_event(announce, event_mask=X.StructureNotifyMask)
        self._d.flush()

    # -- reading ------------------------------------------------------------------------
    def top_levels(self) -> list[TopLevel]:
        """The root's children, bottom to top (the check window excluded)."""
        result = []
        for child in self._root.query_tree().children:
            if self._check is not None and child.id == self._check.id:
                continue
            top = self.top_level(int(child.id))
            if top is not None:
                result.append(top)
        return result

    def top_level(self, window: int) -> TopLevel | None:
        """One root child's geometry and flags, None if it is gone."""
        win = self._window(window)
        try:
            attrs = win.get_attributes()
            geom = win.get_geometry()
        except Xlib.error.XError:
            return None
        return TopLevel(window, Rect(geom.x, geom.y, geom.width, geom.height), geom.border_width,
                        bool(attrs.override_redirect), attrs.map_state != X.IsUnmapped)  # fmt: skip

    def _property(self, window: int, name: str, length: int) -> Any:
        try:
            return self._window(window).get_property(self._atom(name), X.AnyPropertyType, 0, length)
        except Xlib.error.XError:
            return None

    def get_text(self, window: int, name: str, max_bytes: int) -> bytes | None:
        """Up to max_bytes of an 8-bit property."""
        prop = self._property(window, name, (max_bytes + 3) // 4)
        if prop is None or prop.format != 8:
            return None
        value = prop.value
        data = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        return data[:max_bytes]

    def get_cardinals(self, window: int, name: str, max_items: int) -> list[int] | None:
        """Up to max_items of a 32-bit property."""
        prop = self._property(window, name, max_items)
        if prop is None or prop.format != 32:
            return None
        return [int(v) for v in prop.value[:max_items]]

    def get_atoms(self, window: int, name: str, max_items: int) -> list[str]:
        """Up to max_items atom names of a 32-bit property."""
        return [self.atom_name(a) for a in self.get_cardinals(window, name, max_items) or []]

    # -- writing ------------------------------------------------------------------------
    def _quiet(self) -> Xlib.error.CatchError:
        return Xlib.error.CatchError(Xlib.error.BadWindow, Xlib.error.BadMatch, Xlib.error.BadValue)

    def watch(self, window: int) -> None:
        """PropertyNotify from a client window."""
        self._window(window).change_attributes(event_mask=CLIENT_EVENT_MASK, onerror=self._quiet())

    def configure(self, window: int, geometry: Rect, border_width: int | None = None) -> None:
        """Move/resize (and set the border of) a window."""
        extra = {} if border_width is None else {"border_width": border_width}
        self._window(window).configure(x=geometry.x, y=geometry.y, width=max(1, geometry.width),
                                       height=max(1, geometry.height), onerror=self._quiet(), **extra)  # fmt: skip

    def send_configure_notify(self, window: int, geometry: Rect) -> None:
        """Synthetic ConfigureNotify telling a client its geometry (ICCCM 4.1.5)."""
        win = self._window(window)
        ev = xevent.ConfigureNotify(event=win, window=win, above_sibling=X.NONE, x=geometry.x, y=geometry.y,
                                    width=geometry.width, height=geometry.height, border_width=0,
                                    override=False)  # fmt: skip
        win.send_event(ev, event_mask=X.StructureNotifyMask, onerror=self._quiet())

    def restack(self, bottom_to_top: Sequence[int]) -> None:
        """Each window just above the one before it."""
        for below, window in itertools.pairwise(bottom_to_top):
            self._window(window).configure(sibling=below, stack_mode=X.Above, onerror=self._quiet())

    def map(self, window: int) -> None:
        """MapWindow."""
        self._window(window).map(onerror=self._quiet())

    def unmap(self, window: int) -> None:
        """UnmapWindow."""
        self._window(window).unmap(onerror=self._quiet())

    def _values(self, type_name: str, values: Sequence[int | str]) -> list[int]:
        return [self._atom(v) if isinstance(v, str) else int(v) for v in values]

    def set_property(self, window: int, name: str, type_name: str, values: Sequence[int | str]) -> None:
        """Replace a 32-bit property on a client window."""
        self._window(window).change_property(self._atom(name), self._atom(type_name), 32,
                                             self._values(type_name, values), onerror=self._quiet())  # fmt: skip

    def set_root_property(self, name: str, type_name: str, values: Sequence[int | str]) -> None:
        """Replace a 32-bit property on the root window."""
        self._root.change_property(self._atom(name), self._atom(type_name), 32, self._values(type_name, values))

    def set_focus(self, window: int) -> None:
        """SetInputFocus to window, or PointerRoot for 0."""
        if window:
            self._d.set_input_focus(window, X.RevertToPointerRoot, X.CurrentTime, onerror=self._quiet())
        else:
            self._d.set_input_focus(X.PointerRoot, X.RevertToPointerRoot, X.CurrentTime)

    def send_protocol(self, window: int, protocol: str) -> None:
        """A WM_PROTOCOLS ClientMessage (ICCCM 4.2.8)."""
        win = self._window(window)
        ev = xevent.ClientMessage(window=win, client_type=self._atom("WM_PROTOCOLS"),
                                  data=(32, [self._atom(protocol), X.CurrentTime, 0, 0, 0]))  # fmt: skip
        win.send_event(ev, event_mask=X.NoEventMask, onerror=self._quiet())

    def kill_client(self, window: int) -> None:
        """XKillClient on the window's creator."""
        self._window(window).kill_client(onerror=self._quiet())

    def flush(self) -> None:
        """Send queued requests."""
        self._d.flush()

    # -- events -------------------------------------------------------------------------
    def translate(self, ev: Any) -> WmXEvent | None:
        """The WM's view of a python-xlib event, or None if it is not the WM's."""
        kind = getattr(ev, "type", None)
        if kind == X.MapRequest:
            return MapRequest(int(ev.window.id))
        if kind == X.ConfigureRequest:
            m = ev.value_mask
            return ConfigureRequest(
                int(ev.window.id), ev.x if m & CW_X else None, ev.y if m & CW_Y else None,
                ev.width if m & CW_WIDTH else None, ev.height if m & CW_HEIGHT else None,
                ev.border_width if m & CW_BORDER else None,
                ("below" if ev.stack_mode == X.Below else "above") if m & CW_STACK else None,
            )  # fmt: skip
        if kind == X.ClientMessage:
            data = tuple(int(v) for v in ev.data[1]) if ev.data[0] == 32 else ()
            return ClientMessage(int(ev.window.id), self.atom_name(ev.client_type), data)
        if kind == X.PropertyNotify:
            return PropertyNotify(int(ev.window.id), self.atom_name(ev.atom))
        if getattr(ev, "event", None) is None or int(ev.event.id) != self.root_id:
            return None
        if kind == X.MapNotify:
            return MapNotify(int(ev.window.id), bool(ev.override))
        if kind == X.UnmapNotify:
            return UnmapNotify(int(ev.window.id), bool(getattr(ev, "send_event", False)))
        if kind == X.DestroyNotify:
            return DestroyNotify(int(ev.window.id))
        if kind == X.ConfigureNotify:
            return ConfigureNotify(int(ev.window.id), Rect(ev.x, ev.y, ev.width, ev.height), ev.border_width,
                                   bool(ev.override))  # fmt: skip
        return None

    def close(self) -> None:
        """Give up the WM role: destroy the check window (releasing WM_S0)."""
        if self._check is not None:
            self._check.destroy(onerror=self._quiet())
            self._check = None
            self._d.flush()
