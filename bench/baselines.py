# The baselines bench_spine.py divides by, measured on this machine in the
# same run, so a ratio means something on any machine and no number here is
# ever hard-coded.
#
# Why these two: the start-up floor is what the hardware needs to show an
# xterm at all (bare Xvfb, xterm, one XShm capture: no network, no TLS, no
# PAM, no sandbox, no agent); the naive server (one full-frame PNG per
# update, Pillow at zlib level 1) is the simplest thing a remote display
# could do, and what our damage tracking and per-region encoding must beat
# in bytes and in frame rate.
"""Start-up floor and naive full-frame PNG encoder."""

from __future__ import annotations

import io
import os
import subprocess
import time
from dataclasses import dataclass

import Xlib.display
from PIL import Image
from Xlib import X

from sessiond.agent.xshm import ShmCapture

# Same server flags as the session agent's Xvfb (sessiond/agent/xserver.py),
# so the floor differs from a session only by what sessiond adds.
XVFB_FLAGS = ("-nolisten", "tcp", "-nolisten", "local", "-noreset", "-extension", "GLX", "-dpi", "96")
# Longest "N\n" Xvfb writes on its -displayfd pipe.
MAX_DISPLAYFD_BYTES = 16
# Seconds Xvfb gets to exit on SIGTERM before SIGKILL.
STOP_TIMEOUT_SECONDS = 2.0
# zlib level of the naive server's PNG (fastest: the naive server's best case).
NAIVE_PNG_LEVEL = 1


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_display(read_fd: int) -> str:
    data = b""
    while b"\n" not in data:
        chunk = os.read(read_fd, MAX_DISPLAYFD_BYTES)
        if not chunk or len(data) > MAX_DISPLAYFD_BYTES:
            raise RuntimeError("Xvfb exited before reporting its display number")
        data += chunk
    return ":" + data.split(b"\n", 1)[0].decode("ascii").strip()


def bare_xterm_start(width: int, height: int, xterm_args: tuple[str, ...] = ()) -> float:
    """Seconds from starting a bare Xvfb until xterm's window is mapped and
    one XShm capture of the screen has been taken (the start-up floor)."""
    started = time.perf_counter()
    read_fd, write_fd = os.pipe()
    argv = ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24", *XVFB_FLAGS]
    xvfb = subprocess.Popen(argv, pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    xterm: subprocess.Popen[bytes] | None = None
    disp: Xlib.display.Display | None = None
    try:
        try:
            name = _read_display(read_fd)
        finally:
            os.close(read_fd)
        disp = Xlib.display.Display(name)
        root = disp.screen().root
        root.change_attributes(event_mask=X.SubstructureNotifyMask)
        disp.sync()
        xterm = subprocess.Popen(["xterm", *xterm_args], env={**os.environ, "DISPLAY": name},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        while True:  # blocks on the X connection until the map event arrives
            event = disp.next_event()
            if event.type == X.MapNotify and not event.override:
                break
        with ShmCapture(name) as capture:
            capture.capture()
        return time.perf_counter() - started
    finally:
        if disp is not None:
            disp.close()
        if xterm is not None:
            _stop(xterm)
        _stop(xvfb)


@dataclass(frozen=True)
class PngFrame:
    """One naive full-frame update: its PNG size and encode time."""

    size: int
    seconds: float


def naive_png(image: Image.Image) -> PngFrame:
    """Encode the whole screen as the naive server would, timing it."""
    out = io.BytesIO()
    started = time.perf_counter()
    image.save(out, "PNG", compress_level=NAIVE_PNG_LEVEL)
    return PngFrame(size=out.tell(), seconds=time.perf_counter() - started)
