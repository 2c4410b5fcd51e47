# The viewer connects while Qt loads (client/viewer/early.py): what the link
# says before the GUI exists must reach the GUI whole and in order, a flood
# must stay bounded, and loading the viewer's connection half must not load
# PyAV or Qt (that is the start-up time the early connect is for).
"""client.viewer.early: events held until the bridge attaches; lazy heavy imports."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

from client.viewer.early import MAX_HELD_EVENTS, EarlyEvents


class Recorder:
    """A bridge that logs every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


def test_events_before_attach_reach_the_gui_in_order_then_pass_straight_through() -> None:
    early = EarlyEvents()
    early.status("connected", False)
    early.apps_listed([("xterm", "XTerm", "", b"")])
    early.finished("bad password", 1)
    gui = Recorder()
    early.attach(gui)
    assert gui.calls == [("status", ("connected", False)), ("apps_listed", ([("xterm", "XTerm", "", b"")],)),
                         ("finished", ("bad password", 1))]  # fmt: skip
    early.status("later", True)
    assert gui.calls[-1] == ("status", ("later", True))
    assert early.held() == 0


def test_only_the_latest_window_snapshot_and_one_wake_up_are_held() -> None:
    early = EarlyEvents()
    early.windows_changed("snapshot 1")
    early.pixels_ready()
    early.status("hello", False)
    early.windows_changed("snapshot 2")
    early.pixels_ready()
    gui = Recorder()
    early.attach(gui)
    assert gui.calls == [("status", ("hello", False)), ("windows_changed", ("snapshot 2",)), ("pixels_ready", ())]


def test_a_flood_before_the_gui_exists_is_bounded() -> None:
    early = EarlyEvents()
    for index in range(MAX_HELD_EVENTS + 10):
        early.status(f"line {index}", False)
    assert early.held() == MAX_HELD_EVENTS
    gui = Recorder()
    early.attach(gui)
    assert len(gui.calls) == MAX_HELD_EVENTS and gui.calls[0] == ("status", ("line 0", False))


def test_no_event_is_lost_when_the_gui_attaches_while_the_link_talks() -> None:
    early = EarlyEvents()
    gui = Recorder()
    sent = 500

    def talk() -> None:
        for index in range(sent):
            early.status(str(index), False)

    thread = threading.Thread(target=talk)
    thread.start()
    early.attach(gui)
    thread.join()
    assert [args[0] for _name, args in gui.calls] == [str(i) for i in range(sent)]


def test_the_connection_half_of_the_viewer_loads_neither_pyav_nor_qt() -> None:
    code = ("import sys, client.viewer.link, client.viewer.early, client.cli; "
            "print(sorted(m for m in ('av', 'PySide6') if m in sys.modules))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # the modules this test run imports
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "[]"
