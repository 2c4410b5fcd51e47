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

from sessiond.agent.xserver import start_xvfb
from sessiond.agent.xshm import ShmCapture

# zlib level of the naive server's PNG (fastest: the naive server's best case).
NAIVE_PNG_LEVEL = 1


def bare_xterm_start(width: int, height: int, xterm_args: tuple[str, ...] = ()) -> float:
    """Seconds from starting a bare Xvfb until xterm's window is mapped and
    one XShm capture of the screen has been taken (the start-up floor)."""
    started = time.perf_counter()
    # The agent's own start path (same Xvfb flags, -displayfd readiness), so
    # the floor differs from a session only by what sessiond adds.
    server = start_xvfb(width, height)
    name = server.display
    xterm: subprocess.Popen[bytes] | None = None
    disp: Xlib.display.Display | None = None
    try:
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
            xterm.kill()
            xterm.wait()
        server.stop()


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
