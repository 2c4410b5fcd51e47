# Per-window pixels on a real Xvfb with real xterms: a covered window still
# captures what its app drew and is not re-sent when another window moves
# over it; a flooding xterm costs Python damage events per frame taken, not
# per X drawing call; a typed glyph damages a small rectangle; the root
# variant (desktop mode) works the same way; a window sent whole, or redrawn
# whole by its app, gives its capture pages back (at once, or once no large
# redraw came for a while).  Counts, not timings, are
# asserted: a loaded machine draws less, never more per frame.
"""Integration tests for sessiond.agent.{composite,damage (region),xshm (regions)}."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from wm_harness import RunningWm, start_app, stop_apps
from Xlib import X
from Xlib.display import Display
from Xlib.ext import damage as xdamage

from sessiond.agent.composite import CompositeError, WindowPixels
from sessiond.agent.damage import RootRegionDamage
from sessiond.agent.encoder import RegionEncoder
from sessiond.agent.frame_sources import DesktopSource
from sessiond.agent.xserver import XServer
from sessiond.agent.xshm import MAX_CAPTURE_PIXELS, CDisplay
from test_idle_release import sysv_rss_kib

pytestmark = pytest.mark.integration

RED = (0, 0, 255)  # BGRX bytes of pure red
FRAME_SECONDS = 1 / 30
FLOOD_SECONDS = 1.0
# The window capture segment (xshm.ShmRegionCapture), and what may stay resident of it after a release.
SEGMENT_KIB = MAX_CAPTURE_PIXELS * 4 // 1024
RELEASED_LIMIT_KIB = 32
# The xterm floods its terminal: thousands of drawing calls per second.
FLOOD = ["sh", "-c", "while :; do seq 1 100000; done"]


@pytest.fixture
def apps() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    stop_apps(started)


@pytest.fixture
def seamless(xvfb: XServer) -> Iterator[tuple[RunningWm, WindowPixels]]:
    wm = RunningWm(xvfb.display)
    pixels = WindowPixels(xvfb.display)
    try:
        yield wm, pixels
    finally:
        pixels.close()
        wm.close()


def all_colour(view: memoryview, bgr: tuple[int, int, int]) -> bool:
    data = bytes(view)
    return all(data[i::4] == bytes([bgr[i]]) * (len(data) // 4) for i in range(3))


def take_all(pixels: WindowPixels, window: int) -> list[tuple[int, int, int, int]]:
    pixels.drain()
    rects = pixels.take(window)
    for rect in rects:
        pixels.capture(window, rect)
    pixels.drain()
    return rects


def settle(pixels: WindowPixels, window: int, quiet: float = 0.3, timeout: float = 10.0) -> None:
    """Take damage until the window has drawn nothing for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() - last < quiet:
        if time.monotonic() > deadline:
            raise AssertionError("the window never stopped drawing")
        if take_all(pixels, window):
            last = time.monotonic()
        time.sleep(0.02)


def test_second_compositor_is_refused(xvfb: XServer, seamless: Any) -> None:
    with pytest.raises(CompositeError, match="another compositing manager"):
        WindowPixels(xvfb.display)


def test_covered_xterm_still_captures_red_and_is_not_resent(xvfb: XServer, seamless: Any, apps: list[Any]) -> None:
    wm, pixels = seamless
    proc = start_app(["xterm", "-bg", "red", "-fg", "red", "-cr", "red", "-geometry", "30x8", "-e", "sleep", "60"],
                     xvfb.display, apps)  # fmt: skip
    term = wm.window_of(proc.pid)
    pixels.track(term.id)
    g = term.geometry
    whole = (0, 0, g.width, g.height)
    wm.wait_for(lambda: take_all(pixels, term.id) is not None and all_colour(pixels.capture(term.id, whole), RED),
                "the xterm to paint itself red")  # fmt: skip
    settle(pixels, term.id)
    # Cover it completely with a white window placed by its app.
    app = Display(xvfb.display)
    try:
        screen = app.screen()
        cover = screen.root.create_window(g.x - 5, g.y - 5, g.width + 10, g.height + 10, 0, screen.root_depth,
                                          background_pixel=screen.white_pixel, override_redirect=True)  # fmt: skip
        cover.map()
        app.sync()
        wm.wait_for(lambda: cover.id in wm.wm.model, "the cover window")
        pixels.track(cover.id)
        assert all_colour(pixels.capture(term.id, whole), RED)  # covered, yet its own pixels
        take_all(pixels, cover.id)
        assert all_colour(pixels.capture(cover.id, (0, 0, g.width + 10, g.height + 10)), (255, 255, 255))
        # Moving the cover over and off the xterm is not drawing by the xterm.
        for dx in (40, 80, 400, 0):
            cover.configure(x=g.x - 5 + dx)
            app.sync()
            wm.pump()
        time.sleep(0.1)
        app.sync()
        assert term.id not in pixels.drain()
        assert pixels.take(term.id) == []
    finally:
        app.close()


def count_raw_damage(display_name: str, window: int) -> tuple[Display, Any]:
    """A python-xlib connection receiving every drawn rectangle of window (the old way)."""
    raw = Display(display_name)
    raw.damage_query_version()
    raw.create_resource_object("window", window).damage_create(xdamage.DamageReportRawRectangles)
    raw.sync()
    return raw, raw.query_extension(xdamage.extname).first_event + xdamage.DamageNotifyCode


def count_events(display: Display, event_type: int, enough: int) -> int:
    """Events of event_type queued on display, counted until it runs dry or
    `enough` were seen (python-xlib parses ~100k events/s: never read them all)."""
    display.sync()
    count = 0
    while count < enough and display.pending_events():
        count += display.next_event().type == event_type
    return count


def test_flooding_xterm_costs_events_per_frame_not_per_draw(xvfb: XServer, seamless: Any, apps: list[Any]) -> None:
    wm, pixels = seamless
    proc = start_app(["xterm", "-geometry", "80x24", "-e", *FLOOD], xvfb.display, apps)
    term = wm.window_of(proc.pid)
    pixels.track(term.id)
    take_all(pixels, term.id)
    # No frames taken (no client, or a client behind): one event at most, however much is drawn.
    before = pixels.events.events
    end = time.monotonic() + FLOOD_SECONDS / 2
    while time.monotonic() < end:
        pixels.drain()
        time.sleep(0.01)
    assert pixels.events.events - before <= 1
    # Frames at 30 fps: at most one event per frame taken (+1 for the arm before the first),
    # while a raw-rectangles damage object (the old way) counts the xterm's drawing.
    proc.send_signal(signal.SIGSTOP)
    take_all(pixels, term.id)
    raw, raw_type = count_raw_damage(xvfb.display, term.id)
    try:
        proc.send_signal(signal.SIGCONT)
        before, frames = pixels.events.events, 0
        end = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < end:
            time.sleep(FRAME_SECONDS)
            if take_all(pixels, term.id):
                frames += 1
        events = pixels.events.events - before
        proc.send_signal(signal.SIGSTOP)
        drawn = count_events(raw, raw_type, enough=3 * events + 1)
        assert 0 < events <= frames + 1, (events, frames)
        assert frames <= FLOOD_SECONDS / FRAME_SECONDS + 1
        # What the same drawing costs when every rectangle is an event.
        assert drawn > 3 * events, (drawn, events)
    finally:
        raw.close()


def test_typed_glyph_damages_a_small_rectangle(xvfb: XServer, seamless: Any, apps: list[Any]) -> None:
    wm, pixels = seamless
    proc = start_app(["xterm", "-geometry", "40x10", "-e", "cat"], xvfb.display, apps)
    term = wm.window_of(proc.pid)
    assert wm.wm.model.focus == term.id  # the WM gave the new xterm the keyboard
    pixels.track(term.id)
    settle(pixels, term.id)
    typist = Display(xvfb.display)
    try:
        keycode = typist.keysym_to_keycode(ord("x"))
        typist.xtest_fake_input(X.KeyPress, keycode)
        typist.xtest_fake_input(X.KeyRelease, keycode)
        typist.sync()
    finally:
        typist.close()
    wm.wait_for(lambda: bool(pixels.drain()) or pixels.pending(term.id), "the glyph's damage")
    time.sleep(0.05)  # glyph and cursor: let both land in the region
    pixels.drain()
    rects = pixels.take(term.id)
    cell_w, cell_h = term.size_hints.width_inc, term.size_hints.height_inc
    area = sum(w * h for _, _, w, h in rects)
    assert rects and area <= 3 * cell_w * cell_h, (rects, cell_w, cell_h)
    assert area < term.geometry.width * term.geometry.height / 50


def test_root_region_damage_for_desktop_mode(xvfb: XServer, apps: list[Any]) -> None:
    display = CDisplay(xvfb.display)
    root = RootRegionDamage(display)
    app = Display(xvfb.display)
    try:
        root.take(640, 480)
        gc = app.screen().root.create_gc(foreground=0x00FF00)
        app.screen().root.fill_rectangle(gc, 30, 40, 20, 10)
        app.sync()
        deadline = time.monotonic() + 5
        while not root.drain() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert root.pending() and root.take(640, 480) == [(30, 40, 20, 10)]
        root.mark_all()
        assert root.take(640, 480) == [(0, 0, 640, 480)]
        # A flooding xterm on the desktop: events follow takes, not drawing.
        start_app(["xterm", "-geometry", "80x24+0+0", "-e", *FLOOD], xvfb.display, apps)
        before, takes = root.events.events, 0
        end = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < end:
            time.sleep(FRAME_SECONDS)
            root.drain()
            if root.pending():
                root.take(640, 480)
                takes += 1
            root.drain()
        assert 0 < root.events.events - before <= takes + 1
    finally:
        app.close()
        root.close()
        display.close()


def test_minimized_window_is_quiet_and_restored_whole(xvfb: XServer, seamless: Any) -> None:
    wm, pixels = seamless
    app = Display(xvfb.display)
    try:
        screen = app.screen()
        win = screen.root.create_window(0, 0, 120, 90, 0, screen.root_depth, background_pixel=0x0000FF)
        win.map()
        app.sync()
        wm.wait_for(lambda: win.id in wm.wm.model, "the window to be managed")
        pixels.track(win.id)
        pixels.drain()
        g = wm.wm.model.get(win.id).geometry
        assert pixels.take(win.id) == [(0, 0, g.width, g.height)]
        wm.wm.minimize(win.id)
        wm.pump()
        pixels.changed(win.id)  # e.g. a client reconnects while it is minimized
        pixels.drain()
        assert pixels.take(win.id) == [] and win.id not in pixels.damaged()
        wm.wm.restore(win.id)
        wm.pump()
        wm.wait_for(lambda: win.id in pixels.drain() or pixels.pending(win.id), "the re-map to be seen")
        assert pixels.take(win.id) == [(0, 0, g.width, g.height)]
        assert all_colour(pixels.capture(win.id, (0, 0, g.width, g.height)), (255, 0, 0))
    finally:
        app.close()


class Timers:
    """call_later that records; the test fires the timers, as the agent's loop would."""

    def __init__(self) -> None:
        self.armed: list[tuple[float, Any]] = []

    def __call__(self, delay: float, callback: Any) -> Timers:
        self.armed.append((delay, callback))
        return self

    def cancel(self) -> None:
        pass

    def fire(self) -> None:
        """The first timer, once its delay is over (the release reads the real clock)."""
        delay, callback = self.armed.pop(0)
        time.sleep(delay)
        callback()


def blue_window(app: Display) -> Any:
    """A 400x300 window of pure blue at 0,0, mapped (its pixels: BGRX (255, 0, 0))."""
    screen = app.screen()
    win = screen.root.create_window(0, 0, 400, 300, 0, screen.root_depth, background_pixel=0x0000FF)
    win.map()
    app.sync()
    return win


def test_a_window_its_app_redraws_whole_gives_its_capture_pages_back(xvfb: XServer) -> None:
    """The new window, sent whole, is released at its frame's end; its app's own whole redraw (an
    xterm's first paint landing in the next frame, a clear) once no large read came for a while."""
    wm, timers = RunningWm(xvfb.display), Timers()
    pixels = WindowPixels(xvfb.display, call_later=timers)
    app = Display(xvfb.display)

    def resident() -> int:  # what this process (the agent) holds of the capture segment
        return sysv_rss_kib(os.getpid(), SEGMENT_KIB)

    try:
        win = blue_window(app)
        wm.wait_for(lambda: win.id in wm.wm.model, "the window to be managed")
        pixels.track(win.id)
        g = wm.wm.model.get(win.id).geometry
        whole, size_kib = (0, 0, g.width, g.height), g.width * g.height * 4 // 1024
        assert size_kib >= 2 * RELEASED_LIMIT_KIB
        pixels.drain()
        assert pixels.take(win.id) == [whole]
        assert all_colour(pixels.capture(win.id, whole), (255, 0, 0))  # read, as the encoder does
        pixels.drain()  # the frame is done
        assert 0 <= resident() < RELEASED_LIMIT_KIB and timers.armed == []
        gc = win.create_gc(foreground=0x00FF00)
        win.fill_rectangle(gc, 0, 0, g.width, g.height)  # the app redraws it whole
        app.sync()
        wm.wait_for(lambda: win.id in pixels.drain() or pixels.pending(win.id), "the app's redraw")
        assert pixels.take(win.id) == [whole]
        assert all_colour(pixels.capture(win.id, whole), (0, 255, 0))
        pixels.drain()
        assert resident() >= size_kib, "released at once: a window redrawn whole again and again faults in each time"
        assert len(timers.armed) == 1
        timers.fire()
        assert 0 <= resident() < RELEASED_LIMIT_KIB, f"the redrawn window's capture stays resident: {resident()} KiB"
        assert all_colour(pixels.capture(win.id, whole), (0, 255, 0))  # the pages come back with the pixels
    finally:
        app.close()
        pixels.close()
        wm.close()


def test_a_desktop_frame_that_read_a_large_box_gives_its_capture_pages_back_once_quiet(xvfb: XServer) -> None:
    """Desktop mode: a frame that read a large box of the screen (an app redrawing much of it) keeps
    the capture pages while such frames may go on, and gives them back once none came for a while;
    a new segment (a resize) keeps the rule."""
    timers = Timers()
    source = DesktopSource(xvfb.display, call_later=timers)
    app = Display(xvfb.display)
    screen_kib = source.size[0] * source.size[1] * 4 // 1024

    def resident() -> int:  # what this process (the agent) holds of the screen's capture segment
        return sysv_rss_kib(os.getpid(), screen_kib)

    try:
        blue_window(app)
        deadline = time.monotonic() + 10
        while not (source.drain() or source.pending()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert source.frame(RegionEncoder()), "the mapped window sent nothing"
        assert resident() >= 400 * 300 * 4 // 1024, "the box read is not resident: the test reads nothing"
        assert len(timers.armed) == 1, "a large read arms no release"
        timers.fire()
        assert 0 <= resident() < RELEASED_LIMIT_KIB, f"the large read stays resident: {resident()} KiB"
        assert all_colour(source.capture.capture_box(0, 0, 400, 300), (255, 0, 0))  # the pages come back, pixels too
        source.recreate()
        assert source.capture.call_later is timers
    finally:
        app.close()
        source.close()
