# The GUI thread's half of the viewer: a bridge QObject whose signals carry
# the link's events from the reactor thread (queued connections: emitted
# there, delivered here), and ViewerUi, which keeps one SessionWindow per
# session window in step with the snapshots: created in stacking order,
# transient dialogs given their parent (WM_TRANSIENT_FOR), unmanaged windows
# (menus) shown override-redirect, destroyed windows closed.
"""Bridge (reactor -> Qt signals) and ViewerUi (the windows and the launcher)."""

from __future__ import annotations

import os
import sys
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

from client import glyph_paint
from client.viewer.damage import TRACE_ENV, LatencyTrace, Patch, Snapshot
from client.viewer.early import EarlyEvents
from client.viewer.launcher import Launcher
from client.viewer.link import ViewerLink
from client.viewer.window import UNREAD_RETRY_MS, SessionWindow

# Milliseconds after the first painted frame before the GLYPHS painter is loaded (client/glyph_paint.py:
# the C library, or numpy where it is not built, whose import takes the interpreter lock for 0.1 s or
# more): it must not delay the app's first text.
NUMPY_PRELOAD_DELAY_MS = 2000


class Bridge(QObject):
    """LinkEvents as Qt signals (safe to call from the reactor thread)."""

    windows = Signal(object)
    pixels = Signal()
    status_line = Signal(str, bool)
    done = Signal(str, int)
    apps = Signal(object)

    def windows_changed(self, snapshot: Snapshot) -> None:
        """The session's windows changed."""
        self.windows.emit(snapshot)

    def pixels_ready(self) -> None:
        """Patches wait in link.take_patches()."""
        self.pixels.emit()

    def status(self, text: str, stale: bool) -> None:
        """A line for the user; stale: the windows no longer follow the session."""
        self.status_line.emit(text, stale)

    def finished(self, message: str, code: int) -> None:
        """The viewer must end (with MESSAGE on stderr, exit CODE)."""
        self.done.emit(message, code)

    def apps_listed(self, apps: list[tuple[str, str, str, bytes]]) -> None:
        """The published apps, for the launcher."""
        self.apps.emit(apps)


class ViewerUi:
    """The local windows of one viewer."""

    def __init__(self, app: QApplication, args: Any, link: ViewerLink | None = None) -> None:
        self.app = app
        self.args = args
        self.bridge = Bridge()
        if link is None:
            self.trace = LatencyTrace(os.environ.get(TRACE_ENV) or None)
            self.link = ViewerLink(args, self.bridge, self.trace)
        else:  # started already (client/viewer/main.py): its events wait in an EarlyEvents
            self.trace, self.link = link.trace, link
        self.windows: dict[int, SessionWindow] = {}
        self.launcher: Launcher | None = None
        self.had_windows = False
        self.exit_code = 0
        self._numpy_armed = False
        self.bridge.windows.connect(self.on_windows)
        self.bridge.pixels.connect(self.on_pixels)
        self.bridge.status_line.connect(self.on_status)
        self.bridge.done.connect(self.on_done)
        self.bridge.apps.connect(self.on_apps)

    def start(self) -> None:
        """Connect (the reactor thread starts), or take over a link that connects already:
        its held events are handed over once the Qt loop runs (a CLOSE held meanwhile
        must reach a running loop to end it)."""
        screen = self.app.primaryScreen()
        area = screen.availableGeometry() if screen is not None else None
        self.trace.mark("ui up")
        # The session's screen takes the local free area (ViewerLink.fit_screen).
        self.link.set_local_screen((area.width(), area.height()) if area is not None else None)
        if not isinstance(self.link.events, EarlyEvents):
            self.link.start()
            return
        early = self.link.events
        QTimer.singleShot(0, lambda: early.attach(self.bridge))

    def stop(self) -> None:
        """Disconnect, leaving the session running."""
        self.link.stop()

    def on_windows(self, snapshot: Snapshot) -> None:
        """Bring the local windows in step with SNAPSHOT."""
        live = {state.id for state in snapshot.windows}
        for window_id in [w for w in self.windows if w not in live]:
            self.windows.pop(window_id).deleteLater()
        for state in snapshot.windows:
            window = self.windows.get(state.id)
            if window is None:
                window = SessionWindow(self.link, state, snapshot.seamless)
                self.windows[state.id] = window
                parent = self.windows.get(state.transient_for)
                if parent is not None and state.managed:
                    window.winId()
                    handle = window.windowHandle()
                    if handle is not None and parent.windowHandle() is not None:
                        handle.setTransientParent(parent.windowHandle())
                if state.state == "minimized":
                    window.showMinimized()
                elif state.state == "maximized" and state.managed:
                    window.showMaximized()
                else:
                    window.show()
                window.set_stale(False)
                # Its pixels may have come before this window existed here
                # (on_pixels drops patches of unknown windows): ask again.
                self.link.repaint(state.id)
            else:
                window.apply_state(state)
                window.set_stale(False)
            window.session_focus = snapshot.focus
        if self.windows:
            self.had_windows = True
        elif self.had_windows and self.args.launch:
            self.on_done("the session has no windows left", 0)

    def on_pixels(self) -> None:
        """Paint the waiting patches."""
        self.trace.mark("woke")
        gate = self.link.gate
        if not gate.begin_read():  # a frame is being applied (held until its FRAME_END, then applied whole)
            QTimer.singleShot(UNREAD_RETRY_MS, self.on_pixels)
            return
        try:  # the patches are painted from the framebuffer memory while the reactor waits
            by_window: dict[int, list[Patch]] = {}
            for patch in self.link.take_patches():
                by_window.setdefault(patch.window, []).append(patch)
            for window_id, patches in by_window.items():
                window = self.windows.get(window_id)
                if window is not None:
                    window.apply_patches(patches)
        finally:
            gate.end_read(True)
            self.link.patches_painted()
        if not self._numpy_armed:  # after the first frames: C (or numpy) draws GLYPHS regions from then on
            self._numpy_armed = True
            QTimer.singleShot(NUMPY_PRELOAD_DELAY_MS, glyph_paint.preload)

    def on_status(self, text: str, stale: bool) -> None:
        """Tell the user; shade or unshade the windows."""
        print(f"svclient: {text}", file=sys.stderr, flush=True)
        for window in self.windows.values():
            window.set_stale(stale)

    def on_done(self, message: str, code: int) -> None:
        """End the viewer."""
        if message:
            print(f"svclient: {message}", file=sys.stderr, flush=True)
        self.exit_code = code
        self.app.exit(code)

    def on_apps(self, apps: list[tuple[str, str, str, bytes]]) -> None:
        """Show the launcher, or bring its list up to date."""
        if self.launcher is None:
            self.launcher = Launcher(f"sessiond apps - {self.args.user}@{self.args.server}", self.link.launch,
                                     lambda: self.on_done("", 0))  # fmt: skip
            self.launcher.set_apps(apps)
            self.launcher.show()
        else:
            self.launcher.set_apps(apps)
