# The viewer's keyboard with a real Qt window and a real German keyboard:
# a client-side Xvfb with the "de" layout, the Qt window of
# keymap_harness.py (its key events go through KeyTranslator), and xdotool
# typing into it through XTEST as a user's keyboard would.  Assertions are on
# the (keysym, down) events the translator produced, which are exactly what
# the viewer sends to the session; the last two tests of this module type
# such events into a real session's xterm.
"""KeyTranslator behind a real PySide6 window, German layout, xdotool keys."""

from __future__ import annotations

import json
import os
import pwd
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from protocol.messages import Key
from seamless_client import INPUT, SeamlessClient
from svtest import VENV_BIN, Server, svclient
from viewer_desktop import start_guarded_xvfb

pytestmark = pytest.mark.integration

HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keymap_harness.py")
# Seconds to wait for the harness window, or for the key events of one xdotool run.
WAIT = 30
SHIFT_L, CONTROL_L, F12 = 0xFFE1, 0xFFE3, 0xFFC9
AT, EACUTE, EURO_SIGN = ord("@"), 0xE9, 0x20AC


@dataclass
class Harness:
    """The running harness: its windows and the JSON records it printed."""

    process: subprocess.Popen[str]
    display: str
    window: int = 0
    other: int = 0
    records: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)

    def xdotool(self, *argv: str) -> None:
        done = subprocess.run(["xdotool", *argv], env={**os.environ, "DISPLAY": self.display},
                              capture_output=True, text=True, timeout=WAIT)  # fmt: skip
        assert done.returncode == 0, done.stderr

    def until(self, done: Any) -> list[dict[str, Any]]:
        """Records up to and including the first one for which done(record)."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                record = self.records.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            got.append(record)
            if done(record):
                return got
        raise AssertionError(f"the harness never reported the end; it reported {got}")

    def type(self, *keys: str) -> list[tuple[int, bool]]:
        """Focus the window, press KEYS with xdotool, then F12 as an end mark:
        the (keysym, down) events the translator produced for KEYS."""
        self.xdotool("windowfocus", "--sync", str(self.window))
        self.xdotool("key", "--window", str(self.window), *keys, "F12")
        records = self.until(lambda r: r["kind"] == "release" and r["native"] == F12)
        sent = [(keysym, down) for r in records for keysym, down in r["sent"]]
        assert sent[-2:] == [(F12, True), (F12, False)], records
        return sent[:-2]


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    # -noreset (start_guarded_xvfb) keeps the layout set below when the last client disconnects.
    xvfb, display, guard = start_guarded_xvfb(640, 480)
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    process: subprocess.Popen[str] | None = None
    try:
        layout = subprocess.run(["setxkbmap", "-display", display, "de"], capture_output=True, text=True,
                                timeout=WAIT)  # fmt: skip
        assert layout.returncode == 0, layout.stderr
        keymap = subprocess.run(["xmodmap", "-display", display, "-pke"], capture_output=True, text=True,
                                timeout=WAIT).stdout  # fmt: skip
        assert "dead_acute" in keymap and "EuroSign" in keymap, "the German layout was not set"
        process = subprocess.Popen([os.path.join(VENV_BIN, "python"), HARNESS], env=env, cwd="/",
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        running = Harness(process, display)
        stdout = process.stdout
        assert stdout is not None

        def pump() -> None:
            for line in stdout:
                running.records.put(json.loads(line))

        threading.Thread(target=pump, daemon=True).start()
        ready = running.until(lambda r: r["kind"] == "ready")[-1]
        running.window, running.other = ready["window"], ready["other"]
        yield running
    finally:
        if process is not None:
            process.kill()
            process.wait()
        xvfb.kill()
        xvfb.wait()
        guard.close()


def test_altgr_q_types_at(harness: Harness) -> None:
    assert harness.type("ISO_Level3_Shift+q") == [(AT, True), (AT, False)]


def test_altgr_e_types_the_euro_sign(harness: Harness) -> None:
    assert harness.type("ISO_Level3_Shift+e") == [(EURO_SIGN, True), (EURO_SIGN, False)]


def test_dead_acute_then_e_types_eacute(harness: Harness) -> None:
    assert harness.type("dead_acute", "e") == [(EACUTE, True), (EACUTE, False)]


def test_ctrl_c_reaches_the_app_as_a_shortcut(harness: Harness) -> None:
    sent = harness.type("ctrl+c")
    assert sent[:2] == [(CONTROL_L, True), (ord("c"), True)]
    assert sorted(sent[2:]) == sorted([(CONTROL_L, False), (ord("c"), False)])


def test_shift_a_types_capital_a(harness: Harness) -> None:
    sent = harness.type("shift+a")
    assert sent[:2] == [(SHIFT_L, True), (ord("A"), True)]
    assert sorted(sent[2:]) == sorted([(SHIFT_L, False), (ord("A"), False)])


def test_shift_7_types_the_german_slash(harness: Harness) -> None:
    # On a de keyboard Shift+7 is '/': the session (US) gets '/', not '&'.
    sent = harness.type("shift+7")
    assert (ord("/"), True) in sent and (ord("/"), False) in sent and (ord("&"), True) not in sent


def test_a_held_key_repeats_and_ends_released(harness: Harness) -> None:
    harness.xdotool("windowfocus", "--sync", str(harness.window))
    harness.xdotool("keydown", "--window", str(harness.window), "x")
    presses = 0
    records: list[dict[str, Any]] = []
    while presses < 3:  # the client X server's own auto-repeat
        records += harness.until(lambda r: r["kind"] == "press")
        presses += 1
    harness.xdotool("keyup", "--window", str(harness.window), "x")
    records += harness.until(lambda r: r["kind"] == "release" and not r["repeat"] and r["native"] == ord("x")
                             and harness.records.empty())  # fmt: skip
    sent = [(keysym, down) for r in records for keysym, down in r["sent"]]
    assert sent.count((ord("x"), True)) >= 3
    assert sent[-1] == (ord("x"), False)
    assert sent.count((ord("x"), True)) >= sent.count((ord("x"), False))


def test_focus_out_releases_held_modifiers(harness: Harness) -> None:
    harness.xdotool("windowfocus", "--sync", str(harness.window))
    harness.xdotool("keydown", "--window", str(harness.window), "shift", "ctrl")
    harness.until(lambda r: r["kind"] == "press" and r["native"] == CONTROL_L)
    harness.xdotool("windowfocus", "--sync", str(harness.other))
    out = harness.until(lambda r: r["kind"] == "focus-out")[-1]
    assert sorted(map(tuple, out["sent"])) == sorted([(SHIFT_L, False), (CONTROL_L, False)])
    harness.xdotool("keyup", "shift", "ctrl")
    # Back in the window, nothing is held: a plain key goes out alone.
    assert harness.type("b") == [(ord("b"), True), (ord("b"), False)]


# -- end to end: the events a German keyboard produced, typed into a session --

@pytest.mark.root
def test_german_keys_type_into_the_sessions_xterm(harness: Harness, sessiond_server: Server,
                                                  user_factory: Any) -> None:  # fmt: skip
    user = user_factory("kbde")
    launched = svclient(sessiond_server, user, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + sessiond_server.log()
    out = os.path.join(pwd.getpwnam(user.name).pw_dir, "typed.txt")
    typed = svclient(sessiond_server, user, "type", f"cat > {out}\n")
    assert typed.returncode == 0, typed.stderr
    # What the viewer would send for these keys on a German keyboard...
    sent = harness.type("ISO_Level3_Shift+q", "dead_acute", "e", "shift+a", "Return", "ctrl+d")
    assert (AT, True) in sent and (EACUTE, True) in sent
    # ...sent as the viewer sends it, KEY down/up on the input channel.
    client = SeamlessClient(sessiond_server, user, display=False, windows=False)
    try:
        for keysym, down in sent:
            client.send(INPUT, Key(keysym=keysym, down=down))
        client.pump(0.2)
    finally:
        client.close()
    # cat wrote the line and ended on Ctrl+D (a shortcut that reached the tty).
    deadline = time.monotonic() + WAIT
    text = b""
    while time.monotonic() < deadline:
        if os.path.exists(out):
            with open(out, "rb") as handle:
                text = handle.read()
            if text.endswith(b"\n"):
                break
        time.sleep(0.2)
    assert text.decode("utf-8") == "@\u00e9A\n", text


@pytest.mark.root
def test_a_key_held_in_the_session_types_once_until_the_viewer_repeats_it(sessiond_server: Server,
                                                                          user_factory: Any) -> None:  # fmt: skip
    # The viewer sends the local repeats itself (test_a_held_key_repeats...):
    # the session's X server must not repeat on top of them.
    user = user_factory("kbrp")
    launched = svclient(sessiond_server, user, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + sessiond_server.log()
    out = os.path.join(pwd.getpwnam(user.name).pw_dir, "held.txt")
    assert svclient(sessiond_server, user, "type", f"cat > {out}\n").returncode == 0
    client = SeamlessClient(sessiond_server, user, display=False, windows=False)
    try:
        client.send(INPUT, Key(keysym=ord("x"), down=True))
        client.pump(2.0)  # longer than any X server's repeat delay (660 ms by default)
        for keysym, down in [(ord("x"), False), (ord("y"), True), (ord("y"), True), (ord("y"), False),
                             (AT, True), (AT, True), (AT, False), (0xFF0D, True), (0xFF0D, False)]:  # fmt: skip
            client.send(INPUT, Key(keysym=keysym, down=down))
        client.pump(0.2)
    finally:
        client.close()
    deadline = time.monotonic() + WAIT
    text = b""
    while time.monotonic() < deadline and not text.endswith(b"\n"):
        if os.path.exists(out):
            with open(out, "rb") as handle:
                text = handle.read()
        time.sleep(0.2)
    # One x for the held key; each repeated press typed its character again,
    # '@' with the Shift it needs on the session's US keyboard.
    assert text == b"xyy@@\n"
