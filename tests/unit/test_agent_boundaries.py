"""The agent's error boundaries: one bad message costs that message (or its
channel), never the link or the session. Fakes only: a recorder X display,
a recorder connection, the real handlers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from protocol.connection import MessageReceived
from protocol.errors import ReasonCode
from protocol.messages import ChannelKind, FrameAck, Key, Sync, SyncDone
from protocol.audio import MicData
from protocol.usb import OP_REQ_IMPORT, UrbReturn, RetSubmit, ConnClose, pack_op_common
from sessiond.agent import xinput
from sessiond.agent.audio import AudioService, MicIn
from sessiond.agent.boundary import MAX_DROP_LOG_LINES_PER_SECOND, LogLimiter, PeerViolation, guard
from sessiond.agent.input_channel import InputChannel
from sessiond.agent.main import Agent
from sessiond.agent.usb_server import UsbipPeer
from sessiond.agent.xinput import KEYSYM_MAX, MAX_COORD, MAX_SPARE_KEYCODES, MAX_WHEEL_STEPS, InputInjector

from protocol.testing import RecordingTransport
from unit.test_usb_endpoints import USB, pump, setup

MIN_KEYCODE, MAX_KEYCODE = 8, 40
INPUT = int(ChannelKind.INPUT)
DISPLAY = int(ChannelKind.DISPLAY)


class FakeInfo:
    min_keycode = MIN_KEYCODE
    max_keycode = MAX_KEYCODE


class FakeDisplay:
    """A keyboard with 'a'/'A' on keycode 8, Shift_L on 9, and the rest empty (spares)."""

    def __init__(self) -> None:
        self.display = type("Inner", (), {"info": FakeInfo()})()
        self.rows = [[0] * 4 for _ in range(MAX_KEYCODE - MIN_KEYCODE + 1)]
        self.rows[0] = [ord("a"), ord("A"), 0, 0]
        self.rows[1] = [0xFFE1, 0, 0, 0]
        self.remaps: list[tuple[int, int]] = []

    def has_extension(self, name: str) -> bool:
        return name == "XTEST"

    def get_keyboard_mapping(self, first: int, count: int) -> list[list[int]]:
        return [list(r) for r in self.rows[first - MIN_KEYCODE : first - MIN_KEYCODE + count]]

    def change_keyboard_mapping(self, keycode: int, rows: list[list[int]]) -> None:
        self.rows[keycode - MIN_KEYCODE] = list(rows[0])
        self.remaps.append((keycode, rows[0][0]))

    def flush(self) -> None:
        pass

    def sync(self) -> None:
        pass


@pytest.fixture
def injector(monkeypatch: pytest.MonkeyPatch) -> tuple[InputInjector, list[tuple[Any, ...]], list[str]]:
    calls: list[tuple[Any, ...]] = []
    logged: list[str] = []

    def fake_input(display: Any, event_type: int, detail: int = 0, x: int = 0, y: int = 0) -> None:
        if not (-32768 <= x <= 32767 and -32768 <= y <= 32767):  # what python-xlib's INT16 packing refuses
            raise ValueError(f"coordinate {x},{y} does not fit INT16")
        calls.append((event_type, detail, x, y))

    monkeypatch.setattr(xinput.xtest, "fake_input", fake_input)
    return InputInjector(FakeDisplay(), log=logged.append), calls, logged  # type: ignore[arg-type]


@pytest.mark.parametrize("keysym", [0, KEYSYM_MAX + 1, 0x20000000, 0xFFFFFFFF])
def test_a_keysym_outside_the_x_range_is_logged_and_dropped(injector: Any, keysym: int) -> None:
    inj, calls, logged = injector
    assert inj.key(keysym, True) is False
    assert inj.key(keysym, False) is False
    assert calls == [] and len(logged) == 2 and f"{keysym:#x}" in logged[0]
    assert inj.key(ord("a"), True) is True  # the injector goes on


def test_twenty_unmapped_keysyms_held_down_use_the_spares_then_are_refused(injector: Any) -> None:
    inj, calls, logged = injector
    keysyms = [0x01000000 + 0x3B1 + i for i in range(20)]  # Greek letters: none on the keyboard
    results = [inj.key(ks, True) for ks in keysyms]
    assert results == [True] * MAX_SPARE_KEYCODES + [False] * (20 - MAX_SPARE_KEYCODES)
    assert len(logged) == 20 - MAX_SPARE_KEYCODES and "spare keycodes are held down" in logged[0]
    pressed = [c[1] for c in calls if c[0] == xinput.X.KeyPress]
    assert len(set(pressed)) == MAX_SPARE_KEYCODES  # each held key kept its own keycode
    calls.clear()
    for ks in keysyms:
        inj.key(ks, False)
    released = [c[1] for c in calls if c[0] == xinput.X.KeyRelease]
    assert sorted(released) == sorted(pressed)  # only the keys that went down come up
    # Once released, the spares are usable again.
    assert inj.key(0x01000000 + 0x5D0, True) is True


def test_a_new_keysym_recycles_the_least_recently_bound_spare_not_held(injector: Any) -> None:
    inj, calls, _ = injector
    display = inj._display
    first = 0x01000000 + 0x3B1
    inj.key(first, True)  # held throughout: its spare must never be taken
    for i in range(1, MAX_SPARE_KEYCODES + 3):
        inj.key(first + i, True)
        inj.key(first + i, False)
    held_keycode = next(kc for kc, ks in display.remaps if ks == first)
    assert all(kc != held_keycode for kc, ks in display.remaps if ks != first)
    # Spares were reused oldest first: the bind after all 7 free spares were used went to the oldest of them.
    free_order = [kc for kc, _ in display.remaps[1:MAX_SPARE_KEYCODES]]
    assert display.remaps[MAX_SPARE_KEYCODES][0] == free_order[0]


def test_pointer_button_and_wheel_edge_values(injector: Any) -> None:
    inj, calls, logged = injector
    assert inj.pointer(65535, 65535) is True
    assert calls[-1][2:] == (MAX_COORD, MAX_COORD)
    assert inj.button(0, 0, 0, True) is False and inj.button(0, 0, 256, True) is False
    assert len(logged) == 2
    calls.clear()
    assert inj.wheel(65535, 0, -32768, 32767) is True
    presses = [c for c in calls if c[0] == xinput.X.ButtonPress]
    assert len(presses) == 2 * MAX_WHEEL_STEPS


class RaisingInjector:
    def __init__(self) -> None:
        self.keys: list[int] = []

    def key(self, keysym: int, down: bool) -> bool:
        if keysym == 13:
            raise RuntimeError("X said no")
        self.keys.append(keysym)
        return True

    def pointer(self, x: int, y: int) -> bool:
        return True

    def button(self, x: int, y: int, button: int, down: bool) -> bool:
        return True

    def wheel(self, x: int, y: int, dx: int, dy: int) -> bool:
        return True

    def sync(self) -> None:
        pass


class RecorderConn:
    def __init__(self) -> None:
        self.sent: list[tuple[int, Any]] = []
        self.consumed_calls: list[tuple[int, int]] = []
        self.closed_channels: list[tuple[int, int, str]] = []
        self.closed = False

    def send(self, channel: int, message: Any) -> None:
        self.sent.append((channel, message))

    def consumed(self, channel: int, nbytes: int) -> None:
        self.consumed_calls.append((channel, nbytes))

    def is_open(self, channel: int) -> bool:
        return channel in self.open_channels()

    def open_channels(self) -> dict[int, object]:
        return {0: ChannelKind.CONTROL, DISPLAY: ChannelKind.DISPLAY, INPUT: ChannelKind.INPUT, 5: ChannelKind.AUDIO_IN}

    def close_channel(self, channel: int, code: int = 0, message: str = "") -> None:
        self.closed_channels.append((channel, code, message))


class RecorderLink:
    def __init__(self) -> None:
        self.conn = RecorderConn()

    def flush(self) -> None:
        pass


class FakeUsb:
    def handles(self, link: Any, event: object) -> bool:
        return False


class FakeAudio:
    """An audio service whose microphone fails in the worst way: an unexpected OSError."""

    def handles(self, kind: ChannelKind) -> bool:
        return kind in (ChannelKind.AUDIO_IN, ChannelKind.AUDIO_OUT)

    def message(self, link: Any, channel: int, message: Any) -> None:
        raise OSError(5, "Input/output error")


def bare_agent(logged: list[str]) -> tuple[Agent, RecorderLink]:
    """An Agent without X: only what handle_event touches."""
    agent = Agent.__new__(Agent)
    link = RecorderLink()
    agent.link = link  # type: ignore[assignment]
    agent.session_id = "s1"
    agent.log = agent.drop_log = logged.append  # type: ignore[method-assign, assignment]
    agent.usb = FakeUsb()  # type: ignore[assignment]
    agent.transfers = FakeUsb()  # type: ignore[assignment]
    agent.xpra_channels = FakeUsb()  # type: ignore[assignment]
    agent.audio = FakeAudio()  # type: ignore[assignment]
    agent.input = InputChannel(RaisingInjector(), type("F", (), {"focus_at": lambda *a: None})(), agent._reply_input)
    agent._x_readable = lambda: None  # type: ignore[method-assign]
    agent.seamless = None
    agent.display = type("D", (), {"message": lambda self, m: (_ for _ in ()).throw(RuntimeError("display broke")),
                                   "typed": lambda self, m: None})()  # type: ignore[assignment]  # fmt: skip
    return agent, link


def test_a_failing_input_handler_costs_that_event_only() -> None:
    logged: list[str] = []
    agent, link = bare_agent(logged)
    agent.handle_event(link, MessageReceived(INPUT, ChannelKind.INPUT, Key(13, True)))  # type: ignore[arg-type]
    agent.handle_event(link, MessageReceived(INPUT, ChannelKind.INPUT, Key(14, True)))  # type: ignore[arg-type]
    agent.handle_event(link, MessageReceived(INPUT, ChannelKind.INPUT, Sync(7)))  # type: ignore[arg-type]
    assert agent.input.injector.keys == [14]  # type: ignore[attr-defined]
    assert len(logged) == 1 and "s1" in logged[0] and "X said no" in logged[0]
    assert link.conn.sent == [(INPUT, SyncDone(7))]
    assert [c for c, _ in link.conn.consumed_calls] == [INPUT] * 3  # credit back for the dropped one too
    assert link.conn.closed_channels == []


def test_a_failing_display_or_audio_handler_costs_that_message_only() -> None:
    logged: list[str] = []
    agent, link = bare_agent(logged)
    agent.handle_event(link, MessageReceived(DISPLAY, ChannelKind.DISPLAY, FrameAck(1)))  # type: ignore[arg-type]
    agent.handle_event(link, MessageReceived(5, ChannelKind.AUDIO_IN, MicData(0, 0, b"\x00")))  # type: ignore[arg-type]
    assert len(logged) == 2 and "display broke" in logged[0] and "Input/output error" in logged[1]
    assert [c for c, _ in link.conn.consumed_calls] == [DISPLAY, 5]
    assert link.conn.closed_channels == [] and not link.conn.closed


def test_a_peer_violation_closes_that_channel_with_its_code() -> None:
    logged: list[str] = []
    conn = RecorderConn()

    def violate() -> None:
        raise PeerViolation(ReasonCode.UNEXPECTED_MESSAGE, "no such thing")

    assert guard(logged.append, conn, 5, "test", violate) is False
    assert conn.closed_channels == [(5, ReasonCode.UNEXPECTED_MESSAGE, "no such thing")]
    assert guard(logged.append, conn, 0, "test", violate) is False  # never the control channel
    assert conn.closed_channels == [(5, ReasonCode.UNEXPECTED_MESSAGE, "no such thing")]
    assert len(logged) == 2


def test_a_malformed_command_buffered_during_import_costs_that_usb_connection_only(tmp_path: Any) -> None:
    service, link, exporter, _ = setup(tmp_path)
    peer = UsbipPeer(service)
    fake = RecordingTransport()
    peer.connection_made(fake)
    garbage = b"\xde\xad\xbe\xef" * 12  # a 48-byte header of no known command, queued behind the import
    peer.data_received(pack_op_common(OP_REQ_IMPORT) + b"vusb-1".ljust(32, b"\0") + garbage)
    conn = link.conn.sent[-1].conn  # type: ignore[attr-defined]
    seen: list[Any] = []
    while link.conn.sent:  # the client's IMPORT_REPLY: the buffered garbage is parsed now
        seen.append(link.conn.sent.pop(0))
        exporter.handle(seen[-1])
    assert fake.closed and service.peers == {}
    assert any(isinstance(m, ConnClose) and m.conn == conn for m in seen)
    assert link.conn.closed_channels == [] and "vusb-1" in service.devices  # the channel and device stay


def test_an_unexpected_failure_on_the_usb_channel_closes_that_channel_only(tmp_path: Any) -> None:
    service, link, exporter, _ = setup(tmp_path)
    peer = UsbipPeer(service)
    peer.connection_made(RecordingTransport())
    peer.data_received(pack_op_common(OP_REQ_IMPORT) + b"vusb-1".ljust(32, b"\0"))
    pump(link, exporter)

    def broken(pdu: Any) -> None:
        raise KeyError("bug")

    peer.urb_returned = broken  # type: ignore[method-assign]
    handled = service.handles(link, MessageReceived(USB, ChannelKind.USB, UrbReturn(peer.conn, RetSubmit(1))))  # type: ignore[arg-type]
    assert handled and [c[:2] for c in link.conn.closed_channels] == [(USB, ReasonCode.MALFORMED_MESSAGE)]
    asyncio.new_event_loop().close()


def test_drop_logging_is_bounded_per_second() -> None:
    lines: list[str] = []
    now = [100.0]
    log = LogLimiter(lines.append, clock=lambda: now[0])
    for i in range(MAX_DROP_LOG_LINES_PER_SECOND + 5):
        log(f"dropped {i}")
    assert len(lines) == MAX_DROP_LOG_LINES_PER_SECOND
    now[0] += 1.0
    log("later")
    assert lines[-2:] == ["(5 more such lines suppressed)", "later"]


class FakeServer:
    mic_fifo = "/nonexistent"


def test_a_broken_microphone_fifo_closes_that_channel_only() -> None:
    loop = asyncio.new_event_loop()
    try:
        service = AudioService(loop, FakeServer(), lambda text: None)  # type: ignore[arg-type]
        bad_fd = 999_999  # no such descriptor: writing fails with EBADF, not the EPIPE of a reader gone
        service.mic, service._mic_channel = MicIn(bad_fd, type("D", (), {"decode": lambda self, p: b"pcm"})()), 5
        link = RecorderLink()
        service.message(link, 5, MicData(0, 0, b"packet"))  # type: ignore[arg-type]
        assert [c[:2] for c in link.conn.closed_channels] == [(5, ReasonCode.INTERNAL_ERROR)]
        assert service.mic is None
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
