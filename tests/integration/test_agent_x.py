# The agent's X building blocks against a real Xvfb: capture, damage, input
# injection, focus.  Each test plays both sides: an "application" connection
# that draws or records events, and the agent-side module under test on its
# own connection.  Synchronisation is by X round trips (display.sync()), never
# by sleeping.
"""Integration tests for sessiond.agent.{xserver,xshm,damage,xinput,windows}."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from Xlib import X, XK
from Xlib.display import Display

from client.keysyms import keysym_for_char
from sessiond.agent import xserver
from sessiond.agent.windows import FocusManager
from sessiond.agent.xinput import MAX_SPARE_KEYCODES, InputInjector
from sessiond.agent.xserver import XServer, XServerError, start_xvfb
from sessiond.agent.xshm import ShmCapture, XShmError

pytestmark = pytest.mark.integration

# How long a real xterm may take to start and echo what was typed.
XTERM_TIMEOUT_SECONDS = 10.0
ISO_LEFT_TAB = 0xFE20  # Shift+Tab's keysym (python-xlib's XK lacks the xkb group)
CARDINAL = 6  # predefined atom


def drain(display: Display) -> list[Any]:
    """All events the server has sent to `display` so far."""
    display.sync()
    events = []
    while display.pending_events():
        events.append(display.next_event())
    return events


@pytest.fixture
def connect(xvfb: XServer) -> Iterator[Any]:
    """Opens X connections to the test server and closes them afterwards."""
    opened: list[Display] = []

    def open_display() -> Display:
        display = Display(xvfb.display)
        opened.append(display)
        return display

    yield open_display
    for display in opened:
        display.close()


def make_window(display: Display, x: int, y: int, w: int, h: int, *, mask: int = 0,
                override: bool = False, pid: int | None = None) -> Any:  # fmt: skip
    """Create and map a top-level window at (x, y)."""
    screen = display.screen()
    window = screen.root.create_window(
        x, y, w, h, 0, screen.root_depth,
        background_pixel=screen.white_pixel, event_mask=mask, override_redirect=override,
    )
    if pid is not None:
        window.change_property(display.intern_atom("_NET_WM_PID"), CARDINAL, 32, [pid])
    window.map()
    display.sync()
    return window


def fill(display: Display, drawable: Any, colour: int, rect: tuple[int, int, int, int]) -> None:
    gc = drawable.create_gc(foreground=colour)
    drawable.fill_rectangle(gc, *rect)
    display.sync()


# -- xserver ------------------------------------------------------------


def test_xvfb_serves_private_socket_only(xvfb: XServer, connect: Any) -> None:
    display = connect()
    assert display.screen().width_in_pixels == 640
    assert display.screen().height_in_pixels == 480
    assert os.path.exists(xvfb.socket_path)
    extensions = display.list_extensions()
    for ext in ("MIT-SHM", "DAMAGE", "XTEST"):
        assert ext in extensions, ext
    assert "GLX" not in extensions
    with open("/proc/net/unix", encoding="ascii") as handle:
        names = [line.split()[-1] for line in handle if len(line.split()) >= 8]
    assert f"@/tmp/.X11-unix/X{xvfb.number}" not in names
    assert xvfb.socket_path in names


def test_xvfb_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(XServerError, match="Xvfb was not found"):
        start_xvfb(320, 200)


def test_xvfb_that_dies_reports_its_output(monkeypatch: pytest.MonkeyPatch) -> None:
    # An unknown option makes Xvfb print its usage and exit.
    real_argv = xserver.xvfb_argv
    monkeypatch.setattr(xserver, "xvfb_argv", lambda *a: [*real_argv(*a), "-no-such-option"])
    with pytest.raises(XServerError, match=r"(?s)exited with status .*no-such-option"):
        start_xvfb(320, 200)


def test_xvfb_that_hangs_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in that never writes a display number.
    monkeypatch.setattr(xserver, "xvfb_argv", lambda *a: ["sleep", "30"])
    started = time.monotonic()
    with pytest.raises(XServerError, match="did not become ready within 0.2 s"):
        start_xvfb(320, 200, timeout=0.2)
    assert time.monotonic() - started < 5


def test_xvfb_stop_is_idempotent(xvfb: XServer) -> None:
    xvfb.stop()
    xvfb.stop()
    assert not xvfb.running()


# -- xshm ---------------------------------------------------------------


def test_shm_capture_matches_get_image(xvfb: XServer, connect: Any) -> None:
    display = connect()
    root = display.screen().root
    fill(display, root, 0x12AB34, (50, 60, 100, 80))
    with ShmCapture(xvfb.display) as capture:
        assert (capture.width, capture.height) == (640, 480)
        buf = capture.capture()
        shm = Image.frombuffer("RGB", (640, 480), buf, "raw", "BGRX", capture.stride, 1)
        reply = root.get_image(0, 0, 640, 480, X.ZPixmap, 0xFFFFFFFF)
        xlib = Image.frombuffer("RGB", (640, 480), reply.data, "raw", "BGRX", 0, 1)
        assert shm.tobytes() == xlib.tobytes()
        assert shm.getpixel((50, 60)) == (0x12, 0xAB, 0x34)
        assert shm.getpixel((149, 139)) == (0x12, 0xAB, 0x34)
        # A second capture sees new drawing.
        fill(display, root, 0xFF0000, (0, 0, 10, 10))
        shm = Image.frombuffer("RGB", (640, 480), capture.capture(), "raw", "BGRX", capture.stride, 1)
        assert shm.getpixel((5, 5)) == (255, 0, 0)
        shmid = capture._shminfo.shmid
    capture.close()  # idempotent
    with open("/proc/sysvipc/shm", encoding="ascii") as handle:
        ids = [line.split()[1] for line in handle.readlines()[1:]]
    assert str(shmid) not in ids


def test_shm_capture_of_a_box_is_that_part_of_the_screen(xvfb: XServer, connect: Any) -> None:
    display = connect()
    root = display.screen().root
    fill(display, root, 0x12AB34, (50, 60, 100, 80))
    fill(display, root, 0xFF0000, (0, 0, 10, 10))
    with ShmCapture(xvfb.display) as capture:
        whole = Image.frombuffer("RGB", (640, 480), bytes(capture.capture()), "raw", "BGRX", capture.stride, 1)
        for x, y, w, h in ((40, 50, 120, 100), (0, 0, 640, 480), (639, 479, 1, 1), (3, 0, 7, 480)):
            box = capture.capture_box(x, y, w, h)
            assert len(box) == w * h * 4
            assert Image.frombuffer("RGB", (w, h), box, "raw", "BGRX", w * 4, 1).tobytes() == \
                whole.crop((x, y, x + w, y + h)).tobytes()  # fmt: skip
        for x, y, w, h in ((-1, 0, 5, 5), (600, 0, 41, 5), (0, 0, 0, 5), (0, 470, 5, 11)):
            with pytest.raises(XShmError):
                capture.capture_box(x, y, w, h)
        # The whole-screen capture is unchanged by box captures before it.
        again = Image.frombuffer("RGB", (640, 480), capture.capture(), "raw", "BGRX", capture.stride, 1)
        assert again.tobytes() == whole.tobytes()


# -- xinput -------------------------------------------------------------


def _keysym_of(mapping: list[list[int]], min_keycode: int, ev: Any) -> int:
    row = mapping[ev.detail - min_keycode]
    column = (4 if ev.state & X.Mod5Mask else 0) + (1 if ev.state & X.ShiftMask else 0)
    keysym = row[column] if column < len(row) else 0
    if keysym == 0 and column & 1:  # core rule: (K, NoSymbol) acts as (K, K)
        keysym = row[column - 1]
    return int(keysym)


def _typed(app: Display, window: Any, events: list[Any]) -> list[tuple[int, int]]:
    """(keysym, shift held) of every KeyPress, using the final key mapping."""
    info = app.display.info
    count = info.max_keycode - info.min_keycode + 1
    mapping = [list(r) for r in app.get_keyboard_mapping(info.min_keycode, count)]
    presses = [ev for ev in events if ev.type == X.KeyPress and ev.window == window]
    modifier_codes = {kc for row in app.get_modifier_mapping() for kc in row if kc}
    return [(_keysym_of(mapping, info.min_keycode, ev), int(bool(ev.state & X.ShiftMask)))
            for ev in presses if ev.detail not in modifier_codes]  # fmt: skip


@pytest.fixture
def key_window(connect: Any) -> tuple[Display, Any, InputInjector, Display]:
    app, agent = connect(), connect()
    window = make_window(app, 0, 0, 200, 100, mask=X.KeyPressMask | X.KeyReleaseMask)
    window.set_input_focus(X.RevertToPointerRoot, X.CurrentTime)
    app.sync()
    return app, window, InputInjector(agent), agent


def test_typing_shifted_and_non_us_characters(key_window: Any) -> None:
    app, window, injector, agent = key_window
    text = "aA1!|\\~zä€Ω Ä"
    for ch in text:
        injector.key(keysym_for_char(ch), True)
        injector.key(keysym_for_char(ch), False)
    injector.sync()
    typed = _typed(app, window, drain(app))
    assert [ks for ks, _ in typed] == [keysym_for_char(ch) for ch in text]
    # Keys whose level needs Shift were typed with Shift, others without.
    assert [shift for _, shift in typed][:6] == [0, 1, 0, 1, 1, 0]
    # Nothing is left pressed.
    assert not any(agent.query_keymap())


def test_modifiers_held_by_the_client(key_window: Any) -> None:
    app, window, injector, agent = key_window
    shift = XK.XK_Shift_L
    injector.key(shift, True)
    for keysym in (ord("A"), ord("1"), XK.XK_Tab, ord("B")):
        injector.key(keysym, True)
        injector.key(keysym, False)
    injector.key(shift, False)
    injector.sync()
    typed = _typed(app, window, drain(app))
    # 'A' and 'B' under the client's Shift; '1' with Shift lifted; Shift+Tab
    # stays Shift+Tab (ISO_Left_Tab at the shifted level).
    assert typed == [(ord("A"), 1), (ord("1"), 0), (ISO_LEFT_TAB, 1), (ord("B"), 1)]
    assert not any(agent.query_keymap())


def test_release_uses_the_press_keycode(key_window: Any) -> None:
    app, window, injector, agent = key_window
    # Press more unmapped keysyms than there are spares would allow if held
    # keys were rebound: held keys must keep their keycodes.
    held = [0x01000000 + cp for cp in range(0x3B1, 0x3B4)]  # α β γ
    for ks in held:
        injector.key(ks, True)
    injector.sync()
    pressed = [ev.detail for ev in drain(app) if ev.type == X.KeyPress]
    for ks in held:
        injector.key(ks, False)
    injector.sync()
    released = [ev.detail for ev in drain(app) if ev.type == X.KeyRelease]
    assert len(set(pressed)) == 3
    assert released == pressed
    assert not any(agent.query_keymap())


def test_input_the_session_cannot_take_is_dropped_and_typing_goes_on(key_window: Any) -> None:
    # What a hostile or broken client can send through the protocol's bounds
    # (keysym u32, coordinates u16, button u8, wheel i16), against a real X
    # server: nothing raises, nothing stays pressed, the next key types.
    app, window, _injector, agent = key_window
    logged: list[str] = []
    injector = InputInjector(agent, log=logged.append)
    for keysym in (0, 0x20000000, 0xFFFFFFFF):
        assert injector.key(keysym, True) is False
        assert injector.key(keysym, False) is False
    held = [0x01000000 + 0x3B1 + i for i in range(20)]  # 20 distinct keysyms the keymap lacks
    taken = [injector.key(ks, True) for ks in held]
    assert taken.count(True) == len(injector._spares) <= MAX_SPARE_KEYCODES and not all(taken)
    assert injector.pointer(65535, 65535) and injector.wheel(65535, 65535, -32768, 32767)
    assert injector.button(65535, 0, 0, True) is False and injector.button(0, 0, 256, True) is False
    for ks in held:
        injector.key(ks, False)
    injector.sync()
    assert not any(agent.query_keymap())
    drain(app)
    for ch in "ok":
        injector.key(keysym_for_char(ch), True)
        injector.key(keysym_for_char(ch), False)
    injector.sync()
    assert [ks for ks, _ in _typed(app, window, drain(app))] == [ord("o"), ord("k")]
    assert len(logged) == 6 + 20 - len(injector._spares) + 2


def test_typing_into_xterm(xvfb: XServer, connect: Any, tmp_path: Any) -> None:
    out = tmp_path / "typed.txt"
    env = {**os.environ, "DISPLAY": xvfb.display, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    agent = connect()
    focus = FocusManager(agent)
    proc = subprocess.Popen(
        ["xterm", "-u8", "-geometry", "80x10+0+0", "-e", "sh", "-c", f"stty -echo; cat > {out}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + XTERM_TIMEOUT_SECONDS
        while focus.focused is None and time.monotonic() < deadline:
            for ev in drain(agent):
                focus.handle_event(ev)
            time.sleep(0.02)  # waiting for an external process to start
        assert focus.focused is not None, "xterm never mapped a window"
        injector = InputInjector(agent)
        text = "Hello, World! |ä€|\n"
        for ch in text:
            injector.key(keysym_for_char(ch), True)
            injector.key(keysym_for_char(ch), False)
            injector.sync()
        while time.monotonic() < deadline:
            if out.exists() and out.read_text(encoding="utf-8") == text:
                break
            time.sleep(0.02)
        assert out.read_text(encoding="utf-8") == text
    finally:
        proc.terminate()
        proc.wait(timeout=5)


# -- windows ------------------------------------------------------------


def test_focus_reports_a_window_mapped_before_it_started(connect: Any) -> None:
    """The login's launch starts before the agent's focus watch: its window may map first."""
    agent, app = connect(), connect()
    early = make_window(app, 0, 0, 200, 200, pid=4343)
    make_window(app, 300, 300, 50, 50, override=True)  # a menu is not reported
    app.sync()
    mapped: list[tuple[int, int | None]] = []
    focus = FocusManager(agent, on_map=lambda wid, pid: mapped.append((wid, pid)))
    assert mapped == [(early.id, 4343)]
    assert agent.get_input_focus().focus.id == early.id and focus.focused == early.id
    for ev in drain(agent):
        focus.handle_event(ev)
    assert mapped == [(early.id, 4343)]  # once


def test_focus_follows_map_and_click(connect: Any) -> None:
    agent, app = connect(), connect()
    mapped: list[tuple[int, int | None]] = []
    focus = FocusManager(agent, on_map=lambda wid, pid: mapped.append((wid, pid)))
    first = make_window(app, 0, 0, 200, 200, pid=4242)
    for ev in drain(agent):
        focus.handle_event(ev)
    assert mapped == [(first.id, 4242)]
    assert agent.get_input_focus().focus.id == first.id
    second = make_window(app, 100, 100, 200, 200)
    menu = make_window(app, 400, 400, 50, 50, override=True)
    for ev in drain(agent):
        focus.handle_event(ev)
    assert mapped[1:] == [(second.id, None)]  # the menu is not reported
    assert agent.get_input_focus().focus.id == second.id
    assert focus.top_level_windows() == [first.id, second.id]
    focus.focus_at(50, 50)  # only the first window is there
    agent.sync()
    assert agent.get_input_focus().focus.id == first.id
    assert focus.top_level_windows() == [second.id, first.id]  # raised
    focus.focus_at(150, 150)  # overlap: first is on top now
    assert agent.get_input_focus().focus.id == first.id
    focus.focus_at(250, 250)  # only second
    assert agent.get_input_focus().focus.id == second.id
    focus.focus_at(420, 420)  # the menu: focus stays
    focus.focus_at(630, 470)  # background: focus stays
    assert agent.get_input_focus().focus.id == second.id
    assert menu.id not in focus.top_level_windows()
    # Closing the focused window hands focus to the topmost remaining one.
    second.destroy()
    app.sync()
    for ev in drain(agent):
        focus.handle_event(ev)
    assert agent.get_input_focus().focus.id == first.id


def test_pointer_click_and_wheel_arrive_at_window_coordinates(connect: Any) -> None:
    agent, app = connect(), connect()
    mask = X.ButtonPressMask | X.ButtonReleaseMask | X.PointerMotionMask
    window = make_window(app, 100, 100, 200, 150, mask=mask)
    injector = InputInjector(agent)
    injector.button(150, 170, 1, True)
    injector.button(150, 170, 1, False)
    injector.wheel(120, 110, 0, 2)
    injector.wheel(120, 110, -1, 0)
    injector.sync()
    buttons = [(ev.type, ev.detail, ev.event_x, ev.event_y) for ev in drain(app)
               if ev.type in (X.ButtonPress, X.ButtonRelease) and ev.window == window]  # fmt: skip
    press, release = X.ButtonPress, X.ButtonRelease
    assert buttons == [
        (press, 1, 50, 70), (release, 1, 50, 70),
        (press, 5, 20, 10), (release, 5, 20, 10), (press, 5, 20, 10), (release, 5, 20, 10),
        (press, 6, 20, 10), (release, 6, 20, 10),
    ]
    pointer = agent.screen().root.query_pointer()
    assert (pointer.root_x, pointer.root_y) == (120, 110)
