"""Seamless wiring with fakes: model events -> windows-channel messages (and a
replay that rebuilds the client's table), requests -> the WM, per-window
frames (WINDOW_TARGET + window-relative REGIONs), window-relative input, the
client's window table and its bounds, and an owed frame for an empty session."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from client.windows import WindowLimitError, WindowTable
from protocol.messages import Button, Encoding, FrameAck, FrameEnd, Region
from protocol.windows import (
    MAX_ICON_PNG_BYTES,
    MAX_WINDOWS,
    WindowButton,
    WindowClose,
    WindowGeometry,
    WindowIcon,
    WindowMinimize,
    WindowMoveResize,
    WindowNew,
    WindowPointer,
    WindowRaise,
    WindowTarget,
    WindowWheel,
)
from sessiond.agent.display import DisplayPipeline
from sessiond.agent.frame_sources import WindowSource
from sessiond.agent.input_channel import InputChannel
from sessiond.agent.settings import AgentSettings
from sessiond.agent.window_model import (
    Icon,
    Rect,
    SizeHints,
    UnknownWindowError,
    WindowIconChanged,
    WindowInfo,
    WindowModel,
)
from sessiond.agent.window_wire import apply_request, icon_png, replay_messages, to_messages
from protocol.connection import frame_cost


def model_with_two() -> tuple[WindowModel, list[Any]]:
    events: list[Any] = []
    model = WindowModel(events.append)
    model.add(WindowInfo(0x10, Rect(0, 0, 300, 200), title="term", app_id="xterm", wm_class=("xterm", "XTerm"),
                         size_hints=SizeHints(width_inc=6, height_inc=13, min_aspect=(1, 2))))  # fmt: skip
    model.add(WindowInfo(0x20, Rect(310, 0, 200, 250), title="calc", app_id="xcalc"))
    return model, events


def test_events_become_messages_and_replay_rebuilds_the_client_table() -> None:
    model, events = model_with_two()
    model.set_geometry(0x20, Rect(610, 200, 200, 250))
    model.restack([0x20, 0x10])
    model.set_focus(0x10)
    model.set_icon(0x10, Icon(2, 2, b"\x00\x00\xff\xff" * 4))
    live = WindowTable()
    for event in events:
        for message in to_messages(event):
            live.message(message)
    replayed = WindowTable()
    for message in replay_messages(model.replay()):
        replayed.message(message)
    for table in (live, replayed):
        assert table.order == [0x20, 0x10] and table.focus == 0x10
        assert (table.windows[0x20].x, table.windows[0x20].y) == (610, 200)
        assert table.windows[0x10].info.width_inc == 6 and table.windows[0x10].info.min_aspect_y == 2
        assert table.icon(0x10) is not None and table.icon(0x10).getpixel((0, 0))[:3] == (255, 0, 0)  # type: ignore[union-attr]


def test_an_icon_that_compresses_badly_still_fits_the_wire_bound() -> None:
    import os

    noisy = Icon(128, 128, os.urandom(128 * 128 * 4))
    width, height, png = icon_png(noisy)
    assert len(png) <= MAX_ICON_PNG_BYTES and width <= 128
    [message] = to_messages(WindowIconChanged(1, noisy))
    assert isinstance(message, WindowIcon) and message.png == png and (message.width, message.height) == (width, height)


class RecordingWm:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        def call(window: int, *args: Any) -> None:
            if window == 99:
                raise UnknownWindowError(window)
            self.calls.append((name, (window, *args)))
        return call


def test_requests_reach_the_wm_and_unknown_windows_are_ignored() -> None:
    wm = RecordingWm()
    assert apply_request(wm, WindowMoveResize(5, -10, 20, 300, 200))  # type: ignore[arg-type]
    assert apply_request(wm, WindowRaise(5)) and apply_request(wm, WindowMinimize(5))  # type: ignore[arg-type]
    assert apply_request(wm, WindowClose(5))  # type: ignore[arg-type]
    assert not apply_request(wm, WindowClose(99))  # type: ignore[arg-type]
    assert not apply_request(wm, FrameAck(1))  # type: ignore[arg-type]
    assert wm.calls == [("move_resize", (5, Rect(-10, 20, 300, 200))), ("raise_focus", (5,)),
                        ("minimize", (5,)), ("close", (5,))]  # fmt: skip


class FakePixels:
    """WindowPixels without X: each window a solid colour of its size."""

    def __init__(self) -> None:
        self.windows: dict[int, tuple[int, int, bytes]] = {}
        self.dirty: dict[int, list[tuple[int, int, int, int]]] = {}
        self.drained = 0

    def track(self, window: int) -> None:
        self.dirty[window] = [(0, 0, *self.windows[window][:2])]

    def untrack(self, window: int) -> None:
        self.dirty.pop(window, None)

    def changed(self, window: int) -> None:
        self.track(window)

    def damaged(self) -> list[int]:
        return [w for w, rects in self.dirty.items() if rects]

    def take(self, window: int) -> list[tuple[int, int, int, int]]:
        rects, self.dirty[window] = self.dirty[window], []
        return rects

    def size(self, window: int) -> tuple[int, int]:
        return self.windows[window][:2]

    def capture(self, window: int, rect: tuple[int, int, int, int]) -> memoryview:
        return memoryview(self.windows[window][2] * (rect[2] * rect[3]))

    def drain(self) -> set[int]:
        self.drained += 1
        return set()


def test_window_frames_are_targeted_and_window_relative() -> None:
    pixels = FakePixels()
    pixels.windows = {0x10: (40, 30, b"\x00\x00\xff\x00"), 0x20: (20, 10, b"\xff\x00\x00\x00")}
    source = WindowSource(pixels, print)  # type: ignore[arg-type]
    source.track(0x10)
    source.track(0x20)
    from sessiond.agent.encoder import RegionEncoder

    messages = source.frame(RegionEncoder())
    assert messages[0] == WindowTarget(0x10, 40, 30) and isinstance(messages[1], Region)
    assert (messages[1].x, messages[1].y, messages[1].encoding) == (0, 0, Encoding.FILL)
    assert messages[2] == WindowTarget(0x20, 20, 10)
    # Damage inside a window comes back at its place in that window.
    pixels.dirty[0x10] = [(5, 7, 3, 2)]
    [target, region] = source.frame(RegionEncoder())
    assert target == WindowTarget(0x10, 40, 30) and (region.x, region.y, region.w, region.h) == (5, 7, 3, 2)
    # A covered window does not change when another one moves: nothing to send.
    assert source.frame(RegionEncoder()) == [] and not source.pending()
    # The target lasts across frames: more damage in the same window sends no new one...
    pixels.dirty[0x10] = [(6, 7, 3, 2)]
    [again] = source.frame(RegionEncoder())
    assert isinstance(again, Region) and (again.x, again.y) == (6, 7)
    # ...until a new client (mark_all: a display channel opened, or a refresh) starts on the desktop.
    source.mark_all()
    assert source.frame(RegionEncoder())[0] == WindowTarget(0x10, 40, 30)
    client = WindowTable()
    client.message(WindowNew(**_new(0x10)))
    client.target(WindowTarget(0x10, 40, 30))
    assert client.region(region)
    client.frame_end()
    assert client.region(again)  # after FRAME_END the target is still in force
    client.target(WindowTarget(0, 1, 1))
    assert not client.region(again)  # the desktop's again


def _new(wid: int, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        id=wid, x=0, y=0, width=40, height=30, kind="normal", managed=True, transient_for=0, title="",
        app_id="", wm_class=("", ""), modal=False, decorated=True, state="normal", polite_close=False,
        min_width=1, min_height=1, max_width=0, max_height=0, base_width=0, base_height=0, width_inc=1,
        height_inc=1,
    )  # fmt: skip
    fields.update(changes)
    return fields


def test_client_window_table_bound_is_crossed() -> None:
    table = WindowTable()
    for wid in range(1, MAX_WINDOWS + 1):
        table.message(WindowNew(**_new(wid)))
    table.message(WindowNew(**_new(1, title="again")))  # a known id is replaced, not counted twice
    with pytest.raises(WindowLimitError):
        table.message(WindowNew(**_new(MAX_WINDOWS + 1)))
    table.message(WindowGeometry(12345678, 1, 1, 1, 1))  # unknown ids are ignored
    assert len(table.windows) == MAX_WINDOWS


def test_composed_screen_paints_windows_bottom_to_top() -> None:
    table = WindowTable()
    table.message(WindowNew(**_new(1, x=0, y=0)))
    table.message(WindowNew(**_new(2, x=20, y=10)))
    for wid, colour in ((1, b"\xff\x00\x00"), (2, b"\x00\x00\xff")):
        table.target(WindowTarget(wid, 40, 30))
        table.region(Region(0, 0, 40, 30, Encoding.FILL, colour))
    screen = table.compose(100, 100)
    assert screen.getpixel((5, 5)) == (255, 0, 0) and screen.getpixel((25, 15)) == (0, 0, 255)
    assert screen.getpixel((90, 90)) == (0, 0, 0)
    table.message(WindowNew(**_new(2, x=20, y=10, state="minimized")))
    assert table.compose(100, 100).getpixel((25, 15)) == (255, 0, 0)


class FakeInjector:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def key(self, keysym: int, down: bool) -> bool:
        return True

    def pointer(self, x: int, y: int) -> bool:
        self.calls.append(("pointer", x, y))
        return True

    def button(self, x: int, y: int, button: int, down: bool) -> bool:
        self.calls.append(("button", x, y, button, down))
        return True

    def wheel(self, x: int, y: int, dx: int, dy: int) -> bool:
        self.calls.append(("wheel", x, y, dx, dy))
        return True

    def sync(self) -> None:
        pass


class FakeWindows:
    def __init__(self) -> None:
        self.pressed_ids: list[int] = []
        self.focused_at: list[tuple[int, int]] = []

    def origin(self, window: int) -> tuple[int, int] | None:
        return {7: (100, 50)}.get(window)

    def pressed(self, window: int) -> None:
        self.pressed_ids.append(window)

    def focus_at(self, x: int, y: int) -> None:
        self.focused_at.append((x, y))


def test_window_input_lands_at_the_windows_current_place() -> None:
    injector, windows = FakeInjector(), FakeWindows()
    channel = InputChannel(injector, windows, lambda m: None, windows=windows)
    channel.message(WindowPointer(7, 3, 4))
    channel.message(WindowButton(7, 3, 4, 1, True))
    channel.message(WindowButton(7, 3, 4, 1, False))
    channel.message(WindowWheel(7, -1, 0, 0, 2))
    channel.message(WindowButton(8, 3, 4, 1, True))  # gone or minimized: dropped
    channel.message(Button(10, 20, 1, True))  # screen coordinates still work
    assert injector.calls[:4] == [("pointer", 103, 54), ("button", 103, 54, 1, True), ("button", 103, 54, 1, False),
                                  ("wheel", 99, 50, 0, 2)]  # fmt: skip
    assert windows.pressed_ids == [7] and windows.focused_at == [(10, 20)] and channel.dropped == 1


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, channel: int, message: Any) -> int:
        self.sent.append(message)
        return frame_cost(message)


class FakeLink:
    def __init__(self) -> None:
        self.conn = FakeConn()

    def flush(self) -> None:
        pass


class EmptySource:
    def pending(self) -> bool:
        return False

    def mark_all(self) -> None:
        pass

    def frame(self, encoder: Any) -> list[Any]:
        return []


def test_a_client_of_an_empty_session_still_gets_a_frame() -> None:
    async def run() -> list[Any]:
        link = FakeLink()
        pipeline = DisplayPipeline(asyncio.get_running_loop(), AgentSettings(socket="/x"), EmptySource(),
                                   lambda: link, lambda: None)  # fmt: skip
        pipeline.opened()
        await asyncio.sleep(0.05)
        pipeline.schedule()  # nothing owed, nothing damaged: no second frame
        await asyncio.sleep(0.05)
        return link.conn.sent

    assert asyncio.run(run()) == [FrameEnd(1)]
