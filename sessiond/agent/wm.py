# The session's window manager: ICCCM/EWMH semantics as a state machine.
#
# Why: in seamless mode every app window becomes a window on the client, so
# the agent must be the X server's window manager: it decides where a window
# opens (not on top of another one when there is room; dialogs centred on
# their parent), which sizes it may take (WM_NORMAL_HINTS: xterm resizes in
# whole characters), what is stacked above what (dialogs above their parent,
# menus above everything), who has the keyboard (a modal dialog keeps it over
# its parent) and how a window is closed (WM_DELETE_WINDOW first, force only
# when asked or when the app cannot be asked).  It feeds the X-agnostic
# WindowModel and implements its WindowRequests.  All X access goes through a
# WmBackend, so unit tests drive this class with a recorder fake; x_wm.py is
# the python-xlib backend.  The WM never reparents (no frames: the client
# draws decorations), so window geometry is the app window's own geometry.
"""WindowManager: MapRequest/ConfigureRequest/properties/close/focus over a WmBackend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from sessiond.agent import icccm, stacking
from sessiond.agent.icccm_read import read_fields
from sessiond.agent.placement import MAX_COORDINATE, centre_on, clamp_onto, constrain_size, place
from sessiond.agent.window_model import (
    CloseUnanswered,
    Rect,
    WindowEvent,
    WindowInfo,
    WindowKind,
    WindowModel,
    WindowState,
)
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
    WmBackend,
    WmXEvent,
)

# Seconds an app has to answer WM_DELETE_WINDOW before CloseUnanswered.
CLOSE_GRACE_SECONDS: Final = 5.0
# ICCCM WM_STATE values.
WITHDRAWN_STATE: Final = 0
NORMAL_STATE: Final = 1
ICONIC_STATE: Final = 3
# _NET_WM_STATE ClientMessage actions.
NET_WM_STATE_REMOVE, NET_WM_STATE_ADD, NET_WM_STATE_TOGGLE = 0, 1, 2
# Kinds that get the keyboard when they appear or are raised.
FOCUSABLE: Final = frozenset({WindowKind.NORMAL, WindowKind.DIALOG, WindowKind.UTILITY})
MAXIMIZED_ATOMS: Final = frozenset({"_NET_WM_STATE_MAXIMIZED_VERT", "_NET_WM_STATE_MAXIMIZED_HORZ"})
# Properties whose change re-reads a window's metadata (the icon is read on its own).
METADATA_PROPERTIES: Final = frozenset({
    "WM_NAME", "_NET_WM_NAME", "WM_CLASS", "WM_TRANSIENT_FOR", "_NET_WM_WINDOW_TYPE",
    "WM_PROTOCOLS", "WM_NORMAL_HINTS", "_MOTIF_WM_HINTS", "_NET_WM_STATE",
})  # fmt: skip
# What we advertise in _NET_SUPPORTED.
SUPPORTED: Final = (
    "_NET_SUPPORTED", "_NET_SUPPORTING_WM_CHECK", "_NET_ACTIVE_WINDOW", "_NET_CLIENT_LIST",
    "_NET_CLIENT_LIST_STACKING", "_NET_CLOSE_WINDOW", "_NET_WM_NAME", "_NET_WM_ICON", "_NET_WM_PID",
    "_NET_WM_WINDOW_TYPE", "_NET_WM_STATE", "_NET_WM_STATE_MODAL", "_NET_WM_STATE_HIDDEN",
    "_NET_WM_STATE_MAXIMIZED_VERT", "_NET_WM_STATE_MAXIMIZED_HORZ",
)


class TimerHandle(Protocol):
    """What call_later returns (asyncio.TimerHandle, a fake in tests)."""

    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], TimerHandle]


class WindowManager:
    """Manages the top-level windows of one X screen and implements WindowRequests."""

    def __init__(self, backend: WmBackend, screen: Rect, emit: Callable[[WindowEvent], None],
                 call_later: CallLater, *, force_unanswered_close: bool = False) -> None:  # fmt: skip
        self._x = backend
        self.screen = screen
        self._emit = emit
        self.model = WindowModel(emit)
        self._call_later = call_later
        self._force_unanswered = force_unanswered_close
        self._protocols: dict[int, frozenset[str]] = {}
        self._saved: dict[int, Rect] = {}  # geometry before maximize
        self._own_unmaps: dict[int, int] = {}  # UnmapNotify we caused (minimize)
        self._close_timers: dict[int, TimerHandle] = {}
        self._client_list: list[int] = []  # managed windows in map order
        # Map requests not honoured because the session had MAX_WINDOWS windows.
        self.refused = 0
        self._handlers: dict[type, Callable[[Any], None]] = {
            MapRequest: self._on_map_request, ConfigureRequest: self._on_configure_request,
            MapNotify: self._on_map_notify, UnmapNotify: self._on_unmap, DestroyNotify: self._on_destroy,
            ConfigureNotify: self._on_configure_notify, PropertyNotify: self._on_property,
            ClientMessage: self._on_client_message,
        }  # fmt: skip

    # -- start ----------------------------------------------------------------------
    def start(self) -> None:
        """Become the window manager (WmSelectionError if another one is) and
        adopt the windows already mapped."""
        self._x.acquire_wm_selection()
        self._x.set_root_property("_NET_SUPPORTED", "ATOM", SUPPORTED)
        for top in self._x.top_levels():
            if top.mapped and top.override_redirect:
                self._track_unmanaged(top)
            elif top.mapped:
                self._manage(top, adopt=True)
        self._publish()

    def handle(self, event: WmXEvent) -> None:
        """Apply one translated X event."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)
            self._x.flush()

    # -- managing windows -------------------------------------------------------------
    def _read(self, window: int, override_redirect: bool) -> dict[str, Any]:
        fields = read_fields(self._x, window, override_redirect, self.model)
        self._protocols[window] = fields.pop("protocols")
        return fields

    def _manage(self, top: TopLevel, adopt: bool = False) -> None:
        if not self.model.can_add():
            self.refused += 1  # left unmapped: the app sees its window never appear
            return
        fields = self._read(top.id, override_redirect=False)
        hints = fields["size_hints"]
        w, h = constrain_size(top.geometry.width, top.geometry.height, hints, self.screen.width, self.screen.height)
        parent = fields["transient_for"]
        if adopt:
            x, y = top.geometry.x, top.geometry.y
        elif parent:  # a dialog opens centred on the window it belongs to
            x, y = centre_on(w, h, self.model.get(parent).geometry, self.screen)
        else:
            occupied = [i.geometry for i in self.model.windows() if i.managed and i.state is not WindowState.MINIMIZED]
            x, y = place(w, h, occupied, self.screen)
        geometry = Rect(x, y, w, h)
        self._x.watch(top.id)
        self._x.configure(top.id, geometry, border_width=0)
        self._x.set_property(top.id, "WM_STATE", "WM_STATE", [NORMAL_STATE, 0])
        if not adopt:
            self._x.map(top.id)
        icon = icccm.choose_icon(self._x.get_cardinals(top.id, "_NET_WM_ICON", icccm.ICON_READ_ITEMS))
        self.model.add(WindowInfo(id=top.id, geometry=geometry, **fields), icon)
        self._client_list.append(top.id)
        self._net_wm_state(top.id)
        if fields["kind"] in FOCUSABLE:
            self.raise_focus(top.id)
        else:
            self._raise(top.id)

    def _track_unmanaged(self, top: TopLevel) -> None:
        if top.id in self.model or not self.model.can_add():
            if top.id not in self.model:
                self.refused += 1
            return
        fields = self._read(top.id, override_redirect=True)
        self.model.add(WindowInfo(id=top.id, geometry=_outer(top.geometry, top.border_width), **fields))
        self._publish()

    def _forget(self, window: int) -> None:
        timer = self._close_timers.pop(window, None)
        if timer is not None:
            timer.cancel()
        self._protocols.pop(window, None)
        self._saved.pop(window, None)
        self._own_unmaps.pop(window, None)
        if window in self._client_list:
            self._client_list.remove(window)
        if window not in self.model:
            return
        had_focus = self.model.focus == window
        self.model.remove(window)
        if had_focus:
            self._focus_fallback()
        self._publish()

    # -- X events ------------------------------------------------------------------------
    def _on_map_request(self, ev: MapRequest) -> None:
        if ev.window in self.model:
            if self.model.get(ev.window).state is WindowState.MINIMIZED:
                self.restore(ev.window)
            return
        top = self._x.top_level(ev.window)
        if top is not None:
            self._manage(top)

    def _on_configure_request(self, ev: ConfigureRequest) -> None:
        info = self.model.get(ev.window) if ev.window in self.model else None
        if info is None or not info.managed:
            top = self._x.top_level(ev.window)
            if top is not None:  # not ours (yet): grant what was asked
                g = top.geometry
                self._x.configure(ev.window, Rect(_pick(ev.x, g.x), _pick(ev.y, g.y), _pick(ev.width, g.width),
                                                  _pick(ev.height, g.height)), ev.border_width)  # fmt: skip
            return
        g = info.geometry
        w, h = constrain_size(_pick(ev.width, g.width), _pick(ev.height, g.height), info.size_hints,
                              self.screen.width, self.screen.height)  # fmt: skip
        new = Rect(_coord(_pick(ev.x, g.x)), _coord(_pick(ev.y, g.y)), w, h)
        if new != g:
            self._x.configure(ev.window, new)
            self.model.set_geometry(ev.window, new)
        if (new.width, new.height) == (g.width, g.height):
            # ICCCM 4.1.5: a client must hear back even if its size did not change.
            self._x.send_configure_notify(ev.window, new)
        if ev.stack_mode == "above":
            self._raise(ev.window)

    def _on_map_notify(self, ev: MapNotify) -> None:
        if ev.override_redirect and ev.window not in self.model:
            top = self._x.top_level(ev.window)
            if top is not None and top.mapped:
                self._track_unmanaged(top)

    def _on_unmap(self, ev: UnmapNotify) -> None:
        pending = self._own_unmaps.get(ev.window, 0)
        if pending and not ev.synthetic:
            self._own_unmaps[ev.window] = pending - 1
            return
        if ev.window in self.model:
            if self.model.get(ev.window).managed:
                self._x.set_property(ev.window, "WM_STATE", "WM_STATE", [WITHDRAWN_STATE, 0])
            self._forget(ev.window)

    def _on_destroy(self, ev: DestroyNotify) -> None:
        self._forget(ev.window)

    def _on_configure_notify(self, ev: ConfigureNotify) -> None:
        if ev.window in self.model and not self.model.get(ev.window).managed:
            self.model.set_geometry(ev.window, _outer(ev.geometry, ev.border_width))

    def _on_property(self, ev: PropertyNotify) -> None:
        if ev.window not in self.model:
            return
        info = self.model.get(ev.window)
        if ev.name == "_NET_WM_ICON" and info.managed:
            values = self._x.get_cardinals(ev.window, "_NET_WM_ICON", icccm.ICON_READ_ITEMS)
            self.model.set_icon(ev.window, icccm.choose_icon(values))
        elif ev.name in METADATA_PROPERTIES:
            self.model.update(ev.window, **self._read(ev.window, not info.managed))

    def _on_client_message(self, ev: ClientMessage) -> None:
        if ev.window not in self.model or not self.model.get(ev.window).managed:
            return
        data = ev.data
        if ev.message_type == "_NET_ACTIVE_WINDOW":
            self.raise_focus(ev.window)
        elif ev.message_type == "_NET_CLOSE_WINDOW":
            self.close(ev.window)
        elif ev.message_type == "WM_CHANGE_STATE" and data[:1] == (ICONIC_STATE,):
            self.minimize(ev.window)
        elif ev.message_type == "_NET_WM_STATE" and len(data) >= 3:
            self._net_wm_state_request(ev.window, data[0], {self._x.atom_name(a) for a in data[1:3] if a})

    def _net_wm_state_request(self, window: int, action: int, atoms: set[str]) -> None:
        info = self.model.get(window)
        if atoms & MAXIMIZED_ATOMS:
            on = info.state is WindowState.MAXIMIZED
            want = {NET_WM_STATE_ADD: True, NET_WM_STATE_REMOVE: False}.get(action, not on)
            if want != on:
                self.maximize(window) if want else self.restore(window)
        if "_NET_WM_STATE_HIDDEN" in atoms and action != NET_WM_STATE_REMOVE:
            self.minimize(window)
        if "_NET_WM_STATE_MODAL" in atoms:
            want = {NET_WM_STATE_ADD: True, NET_WM_STATE_REMOVE: False}.get(action, not info.modal)
            self.model.update(window, modal=want)
            self._net_wm_state(window)

    # -- stacking and focus ------------------------------------------------------------------
    def _group(self, window: int) -> list[int]:
        return stacking.group(self.model, window)

    def _raise(self, window: int) -> None:
        """Raise window with its dialogs above it; unmanaged windows stay on top."""
        new = stacking.raised(self.model, window)
        if new != list(self.model.stacking):
            self.model.restack(new)
            self._x.restack(new)
            self._publish()

    def _modal_for(self, window: int) -> int:
        return stacking.modal_for(self.model, window)

    def _focus_fallback(self) -> None:
        top = stacking.focus_candidate(self.model, FOCUSABLE)
        self._give_focus(self._modal_for(top) if top else 0)

    def _give_focus(self, window: int) -> None:
        self._x.set_focus(window)
        if window and "WM_TAKE_FOCUS" in self._protocols.get(window, ()):
            self._x.send_protocol(window, "WM_TAKE_FOCUS")
        self.model.set_focus(window)
        self._publish()

    def _publish(self) -> None:
        """_NET_CLIENT_LIST(_STACKING) and _NET_ACTIVE_WINDOW on the root."""
        stacking = [w for w in self.model.stacking if self.model.get(w).managed]
        self._x.set_root_property("_NET_CLIENT_LIST", "WINDOW", list(self._client_list))
        self._x.set_root_property("_NET_CLIENT_LIST_STACKING", "WINDOW", stacking)
        self._x.set_root_property("_NET_ACTIVE_WINDOW", "WINDOW", [self.model.focus])

    def _net_wm_state(self, window: int) -> None:
        info = self.model.get(window)
        atoms = ["_NET_WM_STATE_MODAL"] if info.modal else []
        if info.state is WindowState.MINIMIZED:
            atoms.append("_NET_WM_STATE_HIDDEN")
        elif info.state is WindowState.MAXIMIZED:
            atoms.extend(sorted(MAXIMIZED_ATOMS))
        self._x.set_property(window, "_NET_WM_STATE", "ATOM", atoms)

    # -- WindowRequests ---------------------------------------------------------------------
    def _managed(self, window_id: int) -> WindowInfo | None:
        info = self.model.get(window_id)  # UnknownWindowError for a stranger
        return info if info.managed else None

    def move_resize(self, window_id: int, geometry: Rect) -> None:
        """Move/resize a managed window; its size is constrained by its hints."""
        info = self._managed(window_id)
        if info is None or info.state is WindowState.MINIMIZED:
            return
        w, h = constrain_size(geometry.width, geometry.height, info.size_hints, self.screen.width, self.screen.height)
        new = Rect(_coord(geometry.x), _coord(geometry.y), w, h)
        if new != info.geometry:
            self._x.configure(window_id, new)
            self.model.set_geometry(window_id, new)
        if info.state is WindowState.MAXIMIZED:
            self._saved.pop(window_id, None)
            self.model.update(window_id, state=WindowState.NORMAL)
            self._net_wm_state(window_id)
        self._x.flush()

    def raise_focus(self, window_id: int) -> None:
        """Raise a window with its dialogs and focus it, or its modal dialog."""
        info = self._managed(window_id)
        if info is None:
            return
        if info.state is WindowState.MINIMIZED:
            self.restore(window_id)
            return
        self._raise(window_id)
        target = self._modal_for(window_id)
        if target != window_id:
            self._raise(target)
        self._give_focus(target)
        self._x.flush()

    def minimize(self, window_id: int) -> None:
        """Unmap a window and its dialogs (WM_STATE Iconic) until restored."""
        if self._managed(window_id) is None:
            return
        for w in self._group(window_id):
            if self.model.get(w).state is WindowState.MINIMIZED:
                continue
            self._own_unmaps[w] = self._own_unmaps.get(w, 0) + 1
            self._x.unmap(w)
            self._x.set_property(w, "WM_STATE", "WM_STATE", [ICONIC_STATE, 0])
            self.model.update(w, state=WindowState.MINIMIZED)
            self._net_wm_state(w)
        if self.model.focus in self._group(window_id):
            self._focus_fallback()
        self._x.flush()

    def maximize(self, window_id: int) -> None:
        """Resize a window to the screen (as far as its hints allow) and raise it."""
        info = self._managed(window_id)
        if info is None or info.state is not WindowState.NORMAL:
            return
        self._saved[window_id] = info.geometry
        w, h = constrain_size(self.screen.width, self.screen.height, info.size_hints,
                              self.screen.width, self.screen.height)  # fmt: skip
        new = Rect(self.screen.x, self.screen.y, w, h)
        self._x.configure(window_id, new)
        self.model.set_geometry(window_id, new)
        self.model.update(window_id, state=WindowState.MAXIMIZED)
        self._net_wm_state(window_id)
        self.raise_focus(window_id)

    def restore(self, window_id: int) -> None:
        """Undo minimize (map again) or maximize (old geometry); raise and focus."""
        info = self._managed(window_id)
        if info is None:
            return
        if info.state is WindowState.MINIMIZED:
            for w in self._group(window_id):
                if self.model.get(w).state is WindowState.MINIMIZED:
                    self._x.map(w)
                    self._x.set_property(w, "WM_STATE", "WM_STATE", [NORMAL_STATE, 0])
                    self.model.update(w, state=WindowState.MAXIMIZED if w in self._saved else WindowState.NORMAL)
                    self._net_wm_state(w)
        elif info.state is WindowState.MAXIMIZED:
            old = self._saved.pop(window_id, info.geometry)
            x, y = clamp_onto(old.x, old.y, old.width, old.height, self.screen)
            old = Rect(x, y, old.width, old.height)
            self._x.configure(window_id, old)
            self.model.set_geometry(window_id, old)
            self.model.update(window_id, state=WindowState.NORMAL)
            self._net_wm_state(window_id)
        self.raise_focus(window_id)

    def close(self, window_id: int) -> None:
        """WM_DELETE_WINDOW if the app supports it (CloseUnanswered, or force,
        after CLOSE_GRACE_SECONDS); otherwise force at once."""
        info = self._managed(window_id)
        if info is None:
            return
        if not info.polite_close:
            self.force_close(window_id)
            return
        self._x.send_protocol(window_id, "WM_DELETE_WINDOW")
        self._x.flush()
        old = self._close_timers.pop(window_id, None)
        if old is not None:
            old.cancel()
        self._close_timers[window_id] = self._call_later(CLOSE_GRACE_SECONDS, lambda: self._close_expired(window_id))

    def _close_expired(self, window_id: int) -> None:
        self._close_timers.pop(window_id, None)
        if window_id not in self.model:
            return
        if self._force_unanswered:
            self.force_close(window_id)
        else:
            self._emit(CloseUnanswered(window_id))

    def force_close(self, window_id: int) -> None:
        """XKillClient: the app loses its X connection (and usually exits)."""
        if self._managed(window_id) is None:
            return
        self._x.kill_client(window_id)
        self._x.flush()


def _outer(geometry: Rect, border_width: int) -> Rect:
    """An unmanaged window's box as the user sees it: border included."""
    return Rect(geometry.x, geometry.y, geometry.width + 2 * border_width, geometry.height + 2 * border_width)


def _pick(value: int | None, default: int) -> int:
    return default if value is None else value


def _coord(value: int) -> int:
    """A position clamped to X's 16-bit coordinate range."""
    return max(-MAX_COORDINATE, min(MAX_COORDINATE, value))
