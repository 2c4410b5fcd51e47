"""svclient's frame acknowledgements: at once when FRAME_END says ack_now,
else held and written together with the next input (one write, so one TLS
record), one cumulative FRAME_ACK for every frame held."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport

from client.known_hosts import KnownHosts
from client.session import SessionClient
from protocol.connection import MessageReceived
from protocol.messages import ChannelKind, FrameAck, FrameEnd, KeyTap
from protocol.testing import handshaken_pair, open_pair_channel

DISPLAY, INPUT = int(ChannelKind.DISPLAY), int(ChannelKind.INPUT)


def paired_client(tmp_path: Any) -> tuple[SessionClient, Any, StringTransport]:
    client = SessionClient("server:4443", KnownHosts(str(tmp_path / "known_hosts")))
    client.conn, server = handshaken_pair()
    transport = StringTransport()
    client.makeConnection(transport)
    open_pair_channel(client.conn, server, DISPLAY, ChannelKind.DISPLAY)
    open_pair_channel(client.conn, server, INPUT, ChannelKind.INPUT)
    transport.clear()
    return client, server, transport


def written(server: Any, transport: StringTransport) -> list[Any]:
    events = server.receive_data(transport.value())
    transport.clear()
    return [e.message for e in events if isinstance(e, MessageReceived)]


def frame_end(client: SessionClient, seq: int, ack_now: bool) -> None:
    client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, FrameEnd(seq, ack_now)))
    client.flush()


def test_ack_now_is_answered_at_once(tmp_path: Any) -> None:
    client, server, transport = paired_client(tmp_path)
    frame_end(client, 1, ack_now=True)
    assert written(server, transport) == [FrameAck(1)]


def test_held_acks_ride_on_the_next_input_in_one_write(tmp_path: Any) -> None:
    client, server, transport = paired_client(tmp_path)
    client.compact_keys = False  # the previous form: KEY_TAP + FRAME_ACK (KEY_TAP_ACK: test_keystroke_tile.py)
    frame_end(client, 1, ack_now=False)
    frame_end(client, 2, ack_now=False)
    assert transport.value() == b""  # nothing written for the held acks
    client.tap(0x61)
    assert written(server, transport) == [KeyTap(0x61), FrameAck(2)]  # one cumulative ack
    client.tap(0x62)
    assert written(server, transport) == [KeyTap(0x62)]  # sent once only


def test_a_later_ack_now_sends_the_held_ones_with_it(tmp_path: Any) -> None:
    client, server, transport = paired_client(tmp_path)
    frame_end(client, 1, ack_now=False)
    frame_end(client, 2, ack_now=True)
    assert written(server, transport) == [FrameAck(2)]
