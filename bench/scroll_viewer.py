# The native viewer (`svclient view --desktop`) as the scroll bench's second
# client, next to the raw client library: the same session, xterm and text,
# through the same counting proxy. The viewer is its own process on a
# client-side Xvfb with openbox (the viewer tests' ClientDesktop, reused);
# its frames are the repaints of its window that XDamage reports
# (bench_viewer.DamageWatch, reused), its CPU is the viewer process plus the
# client-side X server it paints into.
#
# Why a module of its own: bench_scroll.py drives the library in-process
# under the reactor; the viewer needs a desktop, a subprocess and an X
# connection, and would push that file past 400 lines.
"""ViewerClient: start svclient view on a client desktop, count its repaints, stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from twisted.internet import task

import spine_server
from bench_viewer import DamageWatch
from spine_server import TestUser

INTEGRATION_DIR = os.path.join(spine_server.TESTS_DIR, "integration")
if INTEGRATION_DIR not in sys.path:
    sys.path.insert(0, INTEGRATION_DIR)

from viewer_desktop import ClientDesktop  # noqa: E402

# The client screen: the session's 1920x1080 plus openbox's decorations must fit.
CLIENT_SCREEN = (2048, 1280)
# Seconds the viewer may take to show its window (PySide6 starts slowly on a busy machine).
VIEWER_START_SECONDS = 60.0
# Seconds between looks for the viewer's window (an X tool run, not a busy loop).
WINDOW_POLL_SECONDS = 0.25
# Seconds the viewer gets to exit on SIGINT before SIGKILL.
VIEWER_STOP_SECONDS = 15.0


class ViewerClient:
    """One running `svclient view --desktop` on DESKTOP, with its window's repaints watched."""

    def __init__(self, desktop: ClientDesktop, process: subprocess.Popen[bytes]) -> None:
        self.desktop = desktop
        self.process = process
        self.watch: DamageWatch | None = None

    @classmethod
    async def start(cls, reactor: Any, desktop: ClientDesktop, port: int, user: TestUser, tmp: str) -> ViewerClient:
        """Start the viewer against 127.0.0.1:PORT as USER; returns once its window is on screen."""
        argv = [os.path.join(spine_server.VENV_BIN, "svclient"), "--server", f"127.0.0.1:{port}",
                "--user", user.name, "--password-file", user.password_file,
                "--known-hosts", os.path.join(tmp, "known_hosts"), "--token-dir", os.path.join(tmp, "tokens"),
                "--no-resume", "view", "--desktop"]  # fmt: skip
        viewer = cls(desktop, subprocess.Popen(argv, env=desktop.env, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))  # fmt: skip
        try:
            deadline = time.monotonic() + VIEWER_START_SECONDS
            while not (windows := viewer.windows()):
                if viewer.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the viewer showed no window (exit status {viewer.process.poll()})")
                await task.deferLater(reactor, WINDOW_POLL_SECONDS, lambda: None)
            viewer.watch = DamageWatch(desktop.display, windows[0])
            viewer.watch.start()
        except BaseException:
            await viewer.stop(reactor)
            raise
        return viewer

    def windows(self) -> list[int]:
        """The viewer's visible windows on the client desktop."""
        out = self.desktop.run("xdotool", "search", "--onlyvisible", "--pid", str(self.process.pid)).stdout
        return [int(word) for word in out.split()]

    def pids(self) -> dict[int, str]:
        """The client-side processes whose CPU counts: the viewer and the X server it paints into."""
        return {self.process.pid: "client", self.desktop.xvfb.pid: "client's Xvfb"}

    def repaints(self, start: float, end: float) -> int:
        """Repaints of the viewer's window between the monotonic moments START and END."""
        events = self.watch.events if self.watch is not None else []
        return sum(1 for moment in events if start <= moment < end)

    async def stop(self, reactor: Any) -> None:
        """SIGINT (the viewer disconnects), SIGKILL after VIEWER_STOP_SECONDS; the reactor
        keeps running meanwhile (the viewer's connection goes through the bench's proxy)."""
        if self.watch is not None:
            self.watch.stopping = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + VIEWER_STOP_SECONDS
        while self.process.poll() is None and time.monotonic() < deadline:
            await task.deferLater(reactor, WINDOW_POLL_SECONDS, lambda: None)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
