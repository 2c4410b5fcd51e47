# Issue 11: one bad frame must never cost a user their session. Each case
# below is fed through the real gateway ClientHandler, Session, ChannelRelay
# and AgentLink (in memory, relay_harness); the assertions are what a user
# would observe: the session and its agent link are still up, the client's
# connection is still up where only a channel was at fault, and the channel
# at fault was closed with a reason code.
"""Error boundaries of the relay: each bad case costs at most a channel or the client connection."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from protocol.connection import ChannelClosed, ChannelOpened, MessageReceived, WindowUpdated
from protocol.errors import ReasonCode
from protocol.frames import encode_frame
from protocol.limits import MAX_WINDOW
from protocol.messages import ChannelKind, FrameEnd, Key
from relay_harness import Wired, events_of

INPUT, DISPLAY = int(ChannelKind.INPUT), int(ChannelKind.DISPLAY)


@pytest.fixture()
def wired(tmp_path: Any) -> Wired:
    return Wired(str(tmp_path))


def raw_key(keysym: int) -> bytes:
    """A KEY frame with any keysym (the encoder would refuse the bad ones)."""
    good = Key(keysym=0x61, down=True).encode()
    return struct.pack(">I", keysym) + good[4:]


@pytest.mark.parametrize("keysym", [0, 0x20000000, 0xFFFFFFFF])
def test_a_key_outside_the_x_keysym_range_costs_only_the_input_channel(wired: Wired, keysym: int) -> None:
    wired.open(INPUT, ChannelKind.INPUT)
    assert INPUT in wired.agent.open_channels()
    wired.handler.dataReceived(encode_frame(INPUT, Key.TYPE, raw_key(keysym)))
    wired.pump()
    closed = events_of(wired.client_events, ChannelClosed)
    assert [(e.channel, e.code) for e in closed] == [(INPUT, ReasonCode.MALFORMED_MESSAGE)]
    assert wired.session_alive() and wired.client_alive()
    assert not [e for e in events_of(wired.agent_events, MessageReceived) if e.channel == INPUT]
    # The user opens input again and types: it reaches the agent.
    wired.open(INPUT, ChannelKind.INPUT)
    wired.client.send(INPUT, Key(keysym=0x62, down=True))
    wired.pump()
    keys = [e.message for e in events_of(wired.agent_events, MessageReceived) if e.channel == INPUT]
    assert keys == [Key(keysym=0x62, down=True)]


def test_a_client_window_smaller_than_a_frame_is_refused_without_touching_the_session(wired: Wired) -> None:
    from protocol.control import ChannelOpen

    tiny = ChannelOpen(DISPLAY, ChannelKind.DISPLAY, 16)  # a 16-byte window: smaller than any display frame
    wired.handler.dataReceived(encode_frame(0, ChannelOpen.TYPE, tiny.encode()))
    wired.pump()
    assert wired.session_alive() and wired.client_alive()
    assert DISPLAY not in wired.agent.open_channels()  # never reached the agent


def test_a_window_update_to_the_maximum_is_clamped_before_it_reaches_the_agent(wired: Wired) -> None:
    wired.open(DISPLAY, ChannelKind.DISPLAY)
    room = wired.handler.conn.send_window(DISPLAY)
    wired.client.grant(DISPLAY, MAX_WINDOW - room)  # legal: the client's grant reaches MAX_WINDOW exactly
    wired.pump()
    assert wired.session_alive() and wired.client_alive()
    granted = sum(e.increment for e in events_of(wired.agent_events, WindowUpdated) if e.channel == DISPLAY)
    assert granted > 0  # passed on, as far as the agent's window may go...
    assert wired.link.conn.grantable(DISPLAY) == 0  # ...and not a byte further (no FLOW_CONTROL_ERROR)
    assert DISPLAY in wired.agent.open_channels() and DISPLAY in wired.client.open_channels()


def test_a_display_frame_the_client_cannot_take_closes_its_channel_not_the_link(wired: Wired) -> None:
    wired.open(DISPLAY, ChannelKind.DISPLAY)
    wired.handler.conn.send_raw = _raise_value_error  # type: ignore[method-assign]
    wired.agent.send(DISPLAY, FrameEnd(1))
    wired.pump()
    closed = events_of(wired.client_events, ChannelClosed)
    assert [(e.channel, e.code) for e in closed] == [(DISPLAY, ReasonCode.LIMIT_EXCEEDED)]
    assert wired.session_alive() and wired.client_alive()


def _raise_value_error(*_args: Any) -> None:
    raise ValueError("a 2 MiB frame exceeds half the peer's window")


def test_a_crash_handling_an_agent_event_costs_that_channel_never_the_link(wired: Wired, monkeypatch: Any) -> None:
    wired.open(DISPLAY, ChannelKind.DISPLAY)

    def broken(*_args: Any) -> None:
        raise RuntimeError("bug in the relay")

    monkeypatch.setattr(wired.session.relay, "from_agent", broken)
    wired.agent.send(DISPLAY, FrameEnd(1))
    wired.pump()
    assert wired.session_alive() and wired.client_alive()
    closed = events_of(wired.client_events, ChannelClosed)
    assert [(e.channel, e.code) for e in closed] == [(DISPLAY, ReasonCode.INTERNAL_ERROR)]


def test_a_crash_handling_a_client_event_costs_that_channel(wired: Wired, monkeypatch: Any) -> None:
    wired.open(INPUT, ChannelKind.INPUT)

    def broken(*_args: Any) -> None:
        raise RuntimeError("bug in the relay")

    monkeypatch.setattr(wired.session.relay, "from_client", broken)
    wired.client.send(INPUT, Key(keysym=0x61, down=True))
    wired.pump()
    assert wired.session_alive() and wired.client_alive()
    closed = events_of(wired.client_events, ChannelClosed)
    assert [(e.channel, e.code) for e in closed] == [(INPUT, ReasonCode.INTERNAL_ERROR)]


def test_a_crash_on_the_control_channel_costs_the_client_connection_not_the_session(wired: Wired,
                                                                                   monkeypatch: Any) -> None:
    from protocol.messages import Ping

    def broken(_message: Any) -> None:
        raise RuntimeError("bug in a control handler")

    monkeypatch.setattr(wired.handler, "_control", broken)
    wired.client.send(0, Ping(token=1))
    wired.pump()
    assert wired.client.closed
    assert wired.session_alive()


def test_the_relay_itself_never_raises_for_a_channel_it_does_not_know(wired: Wired) -> None:
    relay = wired.session.relay
    relay.from_agent(99, FrameEnd.TYPE, b"\0\0\0\1", None, 12)
    relay.client_granted(99, 10)
    relay.agent_granted(99, 10)
    relay.link_channel_closed(99, 0, "", by_agent=True)
    wired.pump()
    assert wired.session_alive() and wired.client_alive()


def test_channel_opened_on_both_sides(wired: Wired) -> None:
    wired.open(DISPLAY, ChannelKind.DISPLAY)
    assert [e.channel for e in events_of(wired.client_events, ChannelOpened)] == [DISPLAY]
    assert DISPLAY in wired.agent.open_channels()
