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

from sessiond.agent import ewmh, icccm, placement
from sessiond.agent.ewmh import ICONIC_STATE, METADATA_PROPERTIES, NORMAL_STATE, SUPPORTED, WITHDRAWN_STATE
from sessiond.agent.placement import centre_on, clamp_onto, constrain_size, maximized, place
from sessiond.agent.placement import coord as _coord, outer as _outer, pick as _pick
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
# Kinds that get the keyboard when they appear or are raised.
FOCUSABLE: Final = frozenset({WindowKind.NORMAL, WindowKind.DIALOG, WindowKind.UTILITY})


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
        fields = icccm.read_fields(self._x, window, override_redirect, self.model)
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
        ewmh.set_wm_state(self._x, top.id, NORMAL_STATE)
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
                ewmh.set_wm_state(self._x, ev.window, WITHDRAWN_STATE)
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
        if ev.window in self.model and self.model.get(ev.window).managed:
            info = self.model.get(ev.window)
            if ewmh.client_message(ev, info, self, self._x.atom_name):
                self.model.update(ev.window, modal=not info.modal)
                ewmh.write_net_wm_state(self._x, self.model.get(ev.window))

    # -- stacking and focus ------------------------------------------------------------------
    def _raise(self, window: int) -> None:
        """Raise window with its dialogs above it; unmanaged windows stay on top."""
        new = placement.raised(self.model, window)
        if new != list(self.model.stacking):
            self.model.restack(new)
            self._x.restack(new)
            self._publish()

    def _focus_fallback(self) -> None:
        top = placement.focus_candidate(self.model, FOCUSABLE)
        self._give_focus(placement.modal_for(self.model, top) if top else 0)

    def _give_focus(self, window: int) -> None:
        self._x.set_focus(window)
        if window and "WM_TAKE_FOCUS" in self._protocols.get(window, ()):
            self._x.send_protocol(window, "WM_TAKE_FOCUS")
        self.model.set_focus(window)
        self._publish()

    def _publish(self) -> None:
        ewmh.publish(self._x, self.model, self._client_list)

    def _net_wm_state(self, window: int) -> None:
        ewmh.write_net_wm_state(self._x, self.model.get(window))

    def set_screen(self, screen: Rect) -> None:
        """The screen changed size: placement uses the new one, maximized windows fill it."""
        self.screen = screen
        for info in list(self.model.windows()):
            new = maximized(screen, info.size_hints)
            if info.managed and info.state is WindowState.MAXIMIZED and new != info.geometry:
                self._x.configure(info.id, new)
                self.model.set_geometry(info.id, new)
        self._x.flush()

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
        target = placement.modal_for(self.model, window_id)
        if target != window_id:
            self._raise(target)
        self._give_focus(target)
        self._x.flush()

    def minimize(self, window_id: int) -> None:
        """Unmap a window and its dialogs (WM_STATE Iconic) until restored."""
        if self._managed(window_id) is None:
            return
        for w in placement.group(self.model, window_id):
            if self.model.get(w).state is WindowState.MINIMIZED:
                continue
            self._own_unmaps[w] = self._own_unmaps.get(w, 0) + 1
            self._x.unmap(w)
            ewmh.set_wm_state(self._x, w, ICONIC_STATE)
            self.model.update(w, state=WindowState.MINIMIZED)
            self._net_wm_state(w)
        if self.model.focus in placement.group(self.model, window_id):
            self._focus_fallback()
        self._x.flush()

    def maximize(self, window_id: int) -> None:
        """Resize a window to the screen (within its min/max size: placement.maximized) and raise it."""
        info = self._managed(window_id)
        if info is None or info.state is not WindowState.NORMAL:
            return
        self._saved[window_id] = info.geometry
        new = maximized(self.screen, info.size_hints)
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
            for w in placement.group(self.model, window_id):
                if self.model.get(w).state is WindowState.MINIMIZED:
                    self._x.map(w)
                    ewmh.set_wm_state(self._x, w, NORMAL_STATE)
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
