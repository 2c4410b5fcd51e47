# Seamless mode in the agent: the window manager, per-window pixels and the
# windows channel, wired together.
#
# Why one object: in seamless mode the agent is the session's X window
# manager (wm.py on x_wm.py), captures each window on its own (composite.py
# through frame_sources.WindowSource) and tells the client about windows on the
# windows channel (window_wire.py). Those three must agree on which windows
# exist: a new window is tracked for pixels and announced, a destroyed one
# untracked and announced, a (re)connecting client gets the whole model
# replayed. main.py only routes X events here, link_events.py link events and input.
"""Seamless: WindowManager + WindowSource + the windows channel of one agent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from protocol.messages import Message
from protocol.windows import WindowMoveResize
from protocol.windows_admin import MAX_LISTED_TITLE, MAX_LISTED_WINDOWS
from sessiond.agent.composite import WindowPixels
from sessiond.agent.damage import DamageError
from sessiond.agent.frame_sources import WindowSource
from sessiond.agent.window_model import (
    Rect,
    UnknownWindowError,
    WindowDestroyed,
    WindowEvent,
    WindowInfo,
    WindowNew,
    WindowState,
)
from sessiond.agent.window_wire import apply_request, replay_messages, to_messages
from sessiond.agent.wm import WindowManager
from sessiond.agent.x_wm import XlibWmBackend



class Seamless:
    """The agent's window manager and per-window capture (seamless mode)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, x: Any, display: str, screen: Rect,
                 log: Callable[[str], None], on_window: Callable[[WindowInfo], str]) -> None:  # fmt: skip
        """on_window(info) is called for each new window and returns the app
        id of the launch it belongs to ("" if none)."""
        self.loop = loop
        self.log = log
        self._on_window = on_window
        self._send: Callable[[Message], None] | None = None  # the open windows channel
        # Redirect first, so no window is ever drawn only onto the root.
        self.source = WindowSource(WindowPixels(display, call_later=loop.call_later), log)
        self.x = x
        self.wm_x = XlibWmBackend(x)
        self.wm = WindowManager(self.wm_x, screen, self._event, loop.call_later)
        self.wm.start()  # WmSelectionError: another WM runs; the session fails to start

    @property
    def model(self) -> Any:
        """The window model (windows, stacking, focus)."""
        return self.wm.model

    def fileno(self) -> int:
        """The pixel connection's socket (readable: damage arrived)."""
        return self.source.pixels.fileno()

    def pixels_readable(self) -> bool:
        """Read the pixel connection; True if some window has new damage."""
        return bool(self.source.pixels.drain())

    def handle_x_event(self, event: object) -> bool:
        """Feed a python-xlib event to the WM; False if it is not the WM's."""
        translated = self.wm_x.translate(event)
        if translated is None:
            return False
        self.wm.handle(translated)
        return True

    # -- window events -----------------------------------------------------------
    def _event(self, event: WindowEvent) -> None:
        if isinstance(event, WindowNew):
            wid = event.window.id
            try:
                self.source.track(wid)
            except DamageError as exc:
                self.log(f"window {wid:#x} not captured: {exc}")
            # The model is mid-change: label the window once this event is out.
            self.loop.call_soon(self._label, event.window)
        elif isinstance(event, WindowDestroyed):
            self.source.untrack(event.id)
        if self._send is not None:
            for message in to_messages(event):
                self._send(message)

    def _label(self, info: WindowInfo) -> None:
        app_id = self._on_window(info)
        if app_id and info.id in self.wm.model and not self.wm.model.get(info.id).app_id:
            self.wm.model.update(info.id, app_id=app_id)

    # -- the windows channel -----------------------------------------------------
    def channel_opened(self, send: Callable[[Message], None]) -> None:
        """A client opened the windows channel: replay every window to it."""
        self._send = send
        for message in replay_messages(self.wm.model.replay()):
            send(message)

    def channel_closed(self) -> None:
        """The windows channel (or the link) went: events are not sent until it reopens."""
        self._send = None

    def request(self, message: Message) -> bool:
        """One client request; False if ignored (unknown window, not a request).
        A pure move costs no pixels: its damage is dropped (WindowPixels.end_move)."""
        moving = self._pure_move(message)
        if moving:
            self.source.pixels.begin_move(message.window)  # type: ignore[attr-defined]
        done = apply_request(self.wm, message)
        self.wm_x.flush()
        if moving:
            self.x.sync()  # the server has moved the window (and damaged it) once this returns
            self.source.pixels.end_move(message.window)  # type: ignore[attr-defined]
        return done

    def _pure_move(self, message: Message) -> bool:
        if not isinstance(message, WindowMoveResize) or message.window not in self.wm.model:
            return False
        info = self.wm.model.get(message.window)
        same_size = (info.geometry.width, info.geometry.height) == (message.width, message.height)
        return info.managed and info.state is WindowState.NORMAL and same_size

    # -- input ------------------------------------------------------------------
    def origin(self, window: int) -> tuple[int, int] | None:
        """Screen position of a window's top-left corner, None if it is not shown."""
        try:
            info = self.wm.model.get(window)
        except UnknownWindowError:
            return None
        if info.state is WindowState.MINIMIZED:
            return None
        return info.geometry.x, info.geometry.y

    def pressed(self, window: int) -> None:
        """A button went down in a window: raise and focus it (managed windows)."""
        try:
            if self.wm.model.get(window).managed:
                self.wm.raise_focus(window)
                self.wm_x.flush()
        except UnknownWindowError:
            pass

    def focus_at(self, x: int, y: int) -> None:
        """Screen-coordinate press: raise and focus the topmost window there."""
        point = Rect(x, y, 1, 1)
        for info in reversed(list(self.wm.model.windows())):
            if info.state is not WindowState.MINIMIZED and info.geometry.intersects(point):
                self.pressed(info.id)
                return

    def resized(self, width: int, height: int) -> None:
        """The screen changed size: placement and maximize use the new one, maximized windows fill it."""
        self.wm.set_screen(Rect(0, 0, width, height))

    def summary(self) -> tuple[list[dict[str, object]], int]:
        """(up to MAX_LISTED_WINDOWS managed windows, total windows) for sessiond (WINDOW_LIST)."""
        rows: list[dict[str, object]] = []
        for info in self.wm.model.windows():
            if info.managed and len(rows) < MAX_LISTED_WINDOWS:
                g = info.geometry
                rows.append({"id": info.id, "app": info.app_id[:MAX_LISTED_TITLE],
                             "title": info.title[:MAX_LISTED_TITLE], "x": g.x, "y": g.y,
                             "width": g.width, "height": g.height,
                             "state": info.state.value, "kind": info.kind.value})  # fmt: skip
        return rows, len(self.wm.model)

    def close(self) -> None:
        """Give up the WM role and the redirection."""
        try:
            self.source.close()
        finally:
            self.wm_x.close()
