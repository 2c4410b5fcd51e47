# Shared pieces of the window-manager integration tests: running the real
# WindowManager on its own X connection, pumping its events, and starting
# real X apps that are always reaped.
"""RunningWm and app helpers for tests/integration/test_agent_wm*.py."""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Callable
from typing import Any

from Xlib.display import Display

from sessiond.agent.window_model import Rect, WindowInfo
from sessiond.agent.wm import WindowManager
from sessiond.agent.x_wm import XlibWmBackend

# How long a real app may take to start, map or react.
APP_TIMEOUT_SECONDS = 10.0


class RunningWm:
    """The real WM on its own connection; pump() feeds it the X events."""

    def __init__(self, display_name: str, **kwargs: Any) -> None:
        self.display = Display(display_name)
        self.backend = XlibWmBackend(self.display)
        screen = self.display.screen()
        self.events: list[object] = []
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.wm = WindowManager(self.backend, Rect(0, 0, screen.width_in_pixels, screen.height_in_pixels),
                                self.events.append, self._call_later, **kwargs)  # fmt: skip
        self.wm.start()

    def _call_later(self, delay: float, fn: Callable[[], None]) -> Any:
        entry = (time.monotonic() + delay, fn)
        self.timers.append(entry)

        class Handle:
            def cancel(inner) -> None:  # noqa: N805 - `self` is the harness the timer belongs to
                if entry in self.timers:
                    self.timers.remove(entry)

        return Handle()

    def pump(self, timeout: float = 0.0) -> None:
        """Handle every event already sent (waiting up to timeout for the first)."""
        self.display.flush()
        if timeout and not self.display.pending_events():
            select.select([self.display.fileno()], [], [], timeout)
        self.display.sync()
        while self.display.pending_events():
            translated = self.backend.translate(self.display.next_event())
            if translated is not None:
                self.wm.handle(translated)
        now = time.monotonic()
        for entry in [t for t in self.timers if t[0] <= now]:
            self.timers.remove(entry)
            entry[1]()

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = APP_TIMEOUT_SECONDS) -> None:
        """Pump until predicate() holds; AssertionError naming `what` after timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.pump(0.05)

    def managed(self) -> list[WindowInfo]:
        """Managed windows, bottom to top."""
        return [w for w in self.wm.model.windows() if w.managed]

    def window_of(self, pid: int) -> WindowInfo:
        """Wait for the managed window of process pid and return it."""
        self.wait_for(lambda: any(w.pid == pid for w in self.managed()), f"a window of pid {pid}")
        return next(w for w in self.managed() if w.pid == pid)

    def window_of_class(self, klass: str) -> WindowInfo:
        """Wait for a managed window whose WM_CLASS class is klass (apps
        without _NET_WM_PID, like the Xaw ones) and return it."""
        self.wait_for(lambda: any(w.wm_class[1] == klass for w in self.managed()), f"a {klass} window")
        return next(w for w in self.managed() if w.wm_class[1] == klass)

    def close(self) -> None:
        self.backend.close()
        self.display.close()


def start_app(argv: list[str], display: str, started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Run an X app on display; it is killed at the end of the test."""
    env = dict(os.environ, DISPLAY=display)
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    started.append(proc)
    return proc


def stop_apps(started: list[subprocess.Popen[bytes]]) -> None:
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
