# Issue 17: the xpra channel is the user's xpra stream; root relays it and
# never parses it. A bulk exchange both ways runs through the real
# ClientHandler, Session, ChannelRelay and AgentLink: every byte arrives in
# order, root builds no XpraData object, credit flows back so more than a
# window passes. A bad frame costs the channel (empty chunk) or the client
# connection (a header announcing more than MAX_XPRA_CHUNK), never the session.
"""The xpra channel through the relay: opaque pass-through and its bounds."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.errors import ReasonCode
from protocol.events import ChannelClosed, ConnectionClosed, FrameReceived, MessageReceived
from protocol.frames import HEADER
from protocol.limits import DEFAULT_WINDOW
from protocol.messages import ChannelKind, max_payload
from protocol.xpra import MAX_XPRA_CHUNK, XpraData
from relay_harness import Wired, events_of

XPRA = int(ChannelKind.XPRA)


def everything(_kind: ChannelKind, _type: int) -> bool:
    return True


@pytest.fixture()
def decodes(monkeypatch: Any) -> list[int]:
    """Count XpraData.decode() calls from here on."""
    calls: list[int] = []
    real = XpraData.decode.__func__  # type: ignore[attr-defined]

    def counted(klass: Any, payload: bytes) -> Any:
        calls.append(len(payload))
        return real(klass, payload)

    monkeypatch.setattr(XpraData, "decode", classmethod(counted))
    return calls


def test_xpra_bytes_pass_both_ways_in_order_and_root_never_decodes(tmp_path: Any, decodes: list[int]) -> None:
    wired = Wired(str(tmp_path), client_relay=everything, agent_relay=everything)
    wired.open(XPRA, ChannelKind.XPRA)
    # More than four default windows each way: credit must come back through the relay.
    up = [bytes([i % 251]) * MAX_XPRA_CHUNK for i in range(20)]
    down = [bytes([(i * 7) % 251]) * (MAX_XPRA_CHUNK - i) for i in range(20)]
    assert sum(map(len, up)) > 4 * DEFAULT_WINDOW
    got_up: list[bytes] = []
    got_down: list[bytes] = []
    for chunk_up, chunk_down in zip(up, down):
        wired.client.send_raw(XPRA, XpraData.TYPE, chunk_up)
        wired.agent.send_raw(XPRA, XpraData.TYPE, chunk_down)
        wired.pump()
        for e in events_of(wired.agent_events, FrameReceived):
            got_up.append(e.payload)
            wired.agent.consumed(XPRA, e.wire_size)  # the agent wrote them to the xpra socket
        for e in events_of(wired.client_events, FrameReceived):
            got_down.append(e.payload)
            wired.client.consumed(XPRA, e.wire_size)
        wired.agent_events.clear()
        wired.client_events.clear()
        wired.pump()
    assert b"".join(got_up) == b"".join(up)
    assert b"".join(got_down) == b"".join(down)
    assert decodes == []  # nothing built an XpraData: not root, not the (raw) peers
    assert wired.session_alive() and wired.client_alive()


def test_an_empty_chunk_costs_the_channel_with_a_reason_code(tmp_path: Any) -> None:
    # The agent decodes (as the real agent link does, channel_errors=True): an
    # empty XPRA_DATA is malformed and closes that channel only.
    wired = Wired(str(tmp_path))
    wired.open(XPRA, ChannelKind.XPRA)
    wired.client.send_raw(XPRA, XpraData.TYPE, b"")
    wired.pump()
    closed = events_of(wired.client_events, ChannelClosed)
    assert [(e.channel, e.code) for e in closed] == [(XPRA, ReasonCode.MALFORMED_MESSAGE)]
    assert wired.session_alive() and wired.client_alive()
    # The session goes on: a new xpra channel carries data.
    wired.open(XPRA, ChannelKind.XPRA)
    wired.client.send(XPRA, XpraData(b"again"))
    wired.pump()
    received = [e.message for e in events_of(wired.agent_events, MessageReceived) if e.channel == XPRA]
    assert received == [XpraData(b"again")]


def test_a_chunk_past_the_bound_is_refused_from_its_header(tmp_path: Any) -> None:
    assert max_payload(ChannelKind.XPRA) == MAX_XPRA_CHUNK
    with pytest.raises(ValueError, match="data"):
        XpraData(b"x" * (MAX_XPRA_CHUNK + 1))
    wired = Wired(str(tmp_path))
    wired.open(XPRA, ChannelKind.XPRA)
    # Only the header of an oversize frame is sent: it is refused before its payload is read.
    wired.handler.dataReceived(HEADER.pack(MAX_XPRA_CHUNK + 1, XPRA, XpraData.TYPE, 0))
    wired.pump()
    closed = events_of(wired.client_events, ConnectionClosed)
    assert [e.code for e in closed] == [ReasonCode.FRAME_TOO_LARGE]
    assert wired.session_alive()  # the client's connection, never the session
    assert events_of(wired.agent_events, FrameReceived) == []
