# The bench's full-screen redraw workload: an X client that behaves like a
# terminal scrolling distinct text as fast as the display refreshes (the
# "scrolling distinct text" row of DESIGN.md's budget table).
#
# Why its own app: xterm cannot be driven to repaint the whole screen at a
# steady rate without a shell feeding it, and that rate would depend on the
# shell. This client covers the whole screen with one window, and every tick
# scrolls it up by one text line (CopyArea, as terminals do) and draws a new
# line of never-repeating text at the bottom, so each frame changes every
# row of the screen with new content. It runs inside the session as the
# session user, started through a bench-only .desktop entry, and needs only
# python-xlib (the session's own interpreter has it). It exits when the X
# server goes away or after --duration seconds, whichever comes first.
"""Full-screen scrolling-text X client for bench_spine.py."""

from __future__ import annotations

import argparse
import os
import sys
import time

from Xlib import X, Xatom, display, error

# Core fonts tried in order (xfonts-base provides both; 6x13 is xterm's).
FONTS = ("6x13", "fixed")
# Text line height and glyph width of 6x13, in pixels.
LINE_HEIGHT = 13
GLYPH_WIDTH = 6
# ImageText8 carries at most 255 characters per request.
MAX_TEXT_REQUEST = 255
# Default repaint rate: the display pipeline's max_fps and DESIGN's target.
DEFAULT_FPS = 60.0
# Safety net: the app ends by itself even if nobody stops the session.
DEFAULT_DURATION_SECONDS = 300.0
# Words the text lines are made of (ordinary terminal-looking output).
WORDS = (
    "session", "display", "region", "frame", "encode", "damage", "capture", "client", "server",
    "channel", "window", "keyboard", "pointer", "render", "scroll", "buffer", "socket", "token",
    "0x7f3a", "ok", "error:", "warning:", "/usr/lib", "--verbose", "[INFO]", "12.5ms", "=", "->",
)  # fmt: skip
# Linear congruential generator constants (Numerical Recipes): cheap,
# deterministic, good enough to make every line different.
LCG_MULTIPLIER = 1664525
LCG_INCREMENT = 1013904223
LCG_MODULUS = 2**32


def text_line(number: int, columns: int) -> bytes:
    """Line NUMBER of the endless text: distinct for every number, between
    a third of the width and the full width, like log output."""
    state = (number * 2654435761) % LCG_MODULUS
    words = [f"{number:09d}"]
    state = (state * LCG_MULTIPLIER + LCG_INCREMENT) % LCG_MODULUS
    target = columns // 3 + state % (columns - columns // 3)
    length = len(words[0])
    while length < target:
        state = (state * LCG_MULTIPLIER + LCG_INCREMENT) % LCG_MODULUS
        word = WORDS[state % len(WORDS)]
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:columns].encode("ascii")


class ScrollingText:
    """One screen-sized window scrolling distinct text."""

    def __init__(self, disp: display.Display) -> None:
        self.disp = disp
        screen = disp.screen()
        self.width = screen.width_in_pixels
        self.height = screen.height_in_pixels
        self.columns = self.width // GLYPH_WIDTH
        self.rows = self.height // LINE_HEIGHT
        self.window = screen.root.create_window(
            0, 0, self.width, self.height, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
            background_pixel=screen.white_pixel, event_mask=X.StructureNotifyMask,
        )  # fmt: skip
        self.window.set_wm_name("sessiond bench redraw")
        self.window.set_wm_class("redraw", "SessiondBenchRedraw")
        self.window.change_property(disp.intern_atom("_NET_WM_PID"), Xatom.CARDINAL, 32, [os.getpid()])
        font = self._open_font()
        self.text_gc = self.window.create_gc(foreground=screen.black_pixel, background=screen.white_pixel, font=font)
        self.clear_gc = self.window.create_gc(foreground=screen.white_pixel, graphics_exposures=False)
        self.next_line = 0

    def _open_font(self) -> object:
        for name in FONTS:
            font = self.disp.open_font(name)
            try:
                font.query()  # an unknown font name fails here, not at open
                return font
            except error.BadFont:
                continue
        raise SystemExit(f"redraw_app: none of the fonts {FONTS} is available")

    def map_and_wait(self) -> None:
        """Map the window and wait for the server to report it mapped."""
        self.window.map()
        while True:
            event = self.disp.next_event()
            if event.type == X.MapNotify and event.window == self.window:
                return

    def fill_screen(self) -> None:
        """Draw a full screen of text (the first frame)."""
        for row in range(self.rows):
            self._draw_line(row)
        self.disp.sync()

    def _draw_line(self, row: int) -> None:
        y = row * LINE_HEIGHT
        self.window.fill_rectangle(self.clear_gc, 0, y, self.width, LINE_HEIGHT)
        text = text_line(self.next_line, self.columns)
        for start in range(0, len(text), MAX_TEXT_REQUEST):
            chunk = text[start : start + MAX_TEXT_REQUEST]
            self.window.image_text(self.text_gc, start * GLYPH_WIDTH, y + LINE_HEIGHT - 3, chunk)
        self.next_line += 1

    def scroll(self) -> None:
        """Scroll up one line and draw a new bottom line; waits for the server."""
        moved = (self.rows - 1) * LINE_HEIGHT
        self.window.copy_area(self.clear_gc, self.window, 0, LINE_HEIGHT, self.width, moved, 0, 0)
        self._draw_line(self.rows - 1)
        self.disp.sync()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redraw_app", description=__doc__)
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="repaints per second")
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION_SECONDS, help="seconds before exiting")
    args = parser.parse_args(argv)
    if not 0 < args.fps <= 1000:
        parser.error("--fps must be in (0, 1000]")
    try:
        app = ScrollingText(display.Display())
        app.map_and_wait()
        app.fill_screen()
        period = 1.0 / args.fps
        start = time.monotonic()
        tick = start
        while tick - start < args.duration:
            app.scroll()
            tick += period
            delay = tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing: one repaint per display refresh
            else:
                tick = time.monotonic()  # behind: do not try to catch up in a burst
    except (error.ConnectionClosedError, BrokenPipeError, ConnectionResetError):
        return 0  # the X server went away: the session ended
    return 0


if __name__ == "__main__":
    sys.exit(main())
