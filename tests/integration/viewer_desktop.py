# The client side of the viewer tests: a private Xvfb running openbox, as a
# user's desktop, with xdotool/xwininfo/xwd to look at it and drive it.
#
# Why the abstract-socket guard: libxcb connects to ":N" through the abstract
# socket "@/tmp/.X11-unix/XN" first and falls back to the file only when that
# is refused. Our Xvfb does not listen there (-nolisten local), so another X
# server on this host holding that abstract name would silently receive our
# clients. We bind (never listen on) the abstract name ourselves: nobody else
# can take it, and a connection attempt is refused at once, so clients go to
# our file socket.
"""ClientDesktop: Xvfb + openbox + helpers to inspect local windows."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from typing import Any

from PIL import Image

# Display numbers tried (at random, each claimed by the guard before use): Xvfb
# -displayfd alone always answers 0 here (no lock files), the number every
# other test's -nolisten-local Xvfb also takes, unlinking the previous socket.
DISPLAY_RANGE = (200, 60000)
MAX_ATTEMPTS = 20
# The client screen: bigger than the session's 1024x768, so every session window fits.
SCREEN = (1280, 1024)


def start_guarded_xvfb(width: int, height: int) -> tuple[subprocess.Popen[bytes], str, socket.socket]:
    """An Xvfb of width x height on a display number whose abstract name we hold
    (see the header): the process, ":N", and the guard socket, to be closed
    after the Xvfb is killed."""
    for _attempt in range(MAX_ATTEMPTS):
        number = secrets.randbelow(DISPLAY_RANGE[1] - DISPLAY_RANGE[0]) + DISPLAY_RANGE[0]
        guard = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            guard.bind(f"\0/tmp/.X11-unix/X{number}")
        except OSError:
            guard.close()  # an X server (or another guard) holds that number
            continue
        if os.path.exists(f"/tmp/.X11-unix/X{number}"):
            guard.close()
            continue
        read_fd, write_fd = os.pipe()
        xvfb = subprocess.Popen(["Xvfb", f":{number}", "-displayfd", str(write_fd), "-screen", "0",
                                 f"{width}x{height}x24", "-nolisten", "tcp", "-nolisten", "local", "-noreset"],
                                pass_fds=[write_fd], stderr=subprocess.DEVNULL)  # fmt: skip
        os.close(write_fd)
        raw = b""
        while not raw.endswith(b"\n"):  # Xvfb writes the number, then "\n": close only after both
            chunk = os.read(read_fd, 16)
            if not chunk:
                break
            raw += chunk
        os.close(read_fd)
        if raw.strip() != str(number).encode():
            xvfb.kill()
            xvfb.wait()
            guard.close()
            continue
        return xvfb, f":{number}", guard
    raise RuntimeError("found no free X display number")


class ClientDesktop:
    """A running Xvfb (-displayfd) with openbox; stop() ends both."""

    def __init__(self, width: int = SCREEN[0], height: int = SCREEN[1]) -> None:
        self.xvfb, self.display, guard = start_guarded_xvfb(width, height)
        self.guard: socket.socket | None = guard
        self.processes: list[subprocess.Popen[bytes]] = [self.xvfb]
        self.env = dict(os.environ, DISPLAY=self.display)
        self.env.pop("QT_QPA_PLATFORM", None)
        self.processes.append(subprocess.Popen(["openbox"], env=self.env, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))  # fmt: skip
        self.wait_for(lambda: self.run("xprop", "-root", "_NET_SUPPORTING_WM_CHECK").returncode == 0
                      and "window id" in self.run("xprop", "-root", "_NET_SUPPORTING_WM_CHECK").stdout, 20, "openbox")

    def stop(self) -> None:
        """Kill openbox and Xvfb."""
        for process in reversed(self.processes):
            process.kill()
            process.wait()
        if self.guard is not None:
            self.guard.close()

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run an X tool on this display."""
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout)

    @staticmethod
    def wait_for(check: Any, seconds: float, what: str) -> Any:
        """Poll CHECK until it returns something true; AssertionError naming WHAT after SECONDS."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {seconds}s waiting for {what}")

    def windows_named(self, name: str) -> list[int]:
        """Visible windows whose title is exactly NAME."""
        out = self.run("xdotool", "search", "--onlyvisible", "--name", f"^{name}$").stdout
        return [int(w) for w in out.split()]

    def window(self, name: str, seconds: float = 30) -> int:
        """The one visible window titled NAME (waits for it)."""
        return int(self.wait_for(lambda: (self.windows_named(name) or [0])[0], seconds, f"a window titled {name!r}"))

    def geometry(self, window: int) -> dict[str, int]:
        """Absolute client-area geometry of WINDOW (xwininfo)."""
        out = self.run("xwininfo", "-id", str(window)).stdout
        fields = {}
        for key, label in (("x", "Absolute upper-left X:"), ("y", "Absolute upper-left Y:"), ("width", "Width:"),
                           ("height", "Height:")):  # fmt: skip
            line = next(line for line in out.splitlines() if line.strip().startswith(label))
            fields[key] = int(line.split(":")[1])
        return fields

    def capture(self, window: int, path: str) -> Image.Image:
        """The window's pixels as the local X server shows them (xwd -> PNG via ImageMagick)."""
        done = self.run("import", "-window", str(window), path)
        if done.returncode != 0:
            raise AssertionError(f"import failed: {done.stderr}")
        return Image.open(path).convert("RGB")

    def override_redirect_windows(self) -> list[dict[str, int]]:
        """Viewable override-redirect top-levels (popups), with geometry."""
        out = self.run("xwininfo", "-root", "-children").stdout
        found = []
        for line in out.splitlines():
            line = line.strip()
            if not line.startswith("0x"):
                continue
            wid = int(line.split()[0], 16)
            info = self.run("xwininfo", "-id", str(wid), "-wm").stdout + self.run("xwininfo", "-id", str(wid)).stdout
            if "Override Redirect State: yes" in info and "Map State: IsViewable" in info:
                geo = self.geometry(wid)
                if geo["width"] < 8 or geo["height"] < 8:  # openbox's own 1x1 helper windows
                    continue
                geo["id"] = wid
                found.append(geo)
        return found
