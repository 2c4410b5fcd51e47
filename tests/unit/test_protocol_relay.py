"""Raw relay API of the Connection: FrameReceived for relayed (kind, type),
send_raw() for already-encoded payloads, and wire_size on every event."""

from __future__ import annotations

import pytest

from protocol.base import ChannelKind, Message
from protocol.connection import (
    ChannelNotOpenError,
    Connection,
    ConnectionClosed,
    FrameReceived,
    MessageReceived,
    ProtocolStateError,
    Role,
    SendBufferFull,
    WindowUpdated,
    frame_cost,
)
from protocol.errors import ReasonCode
from protocol.frames import encode_frame
from protocol.limits import DEFAULT_WINDOW, HEADER_SIZE, MAX_QUEUED_PER_CHANNEL
from protocol.messages import MESSAGE_TYPES, AudioData, Auth, AuthResult, Key, Ping, Pointer, Region, WindowUpdate
from protocol.messages import Encoding, FrameEnd
from protocol.testing import open_pair_channel, pump

RELAY_ALL = lambda kind, type_: kind is not ChannelKind.CONTROL  # noqa: E731
FILL = Region(0, 0, 10, 10, Encoding.FILL, b"\x10\x20\x30")


def relay_pair(relay_client: bool = False) -> tuple[Connection, Connection]:
    """(client, server) after handshake; the server relays every non-control frame."""
    client = Connection(Role.CLIENT, relay=RELAY_ALL if relay_client else None)
    server = Connection(Role.SERVER, relay=RELAY_ALL)
    client.hello(["t"], "c")
    pump(client, server)
    server.hello(["t"], "s")
    pump(server, client)
    client.send(0, Auth("password", user="alice", password="pw"))
    pump(client, server)
    server.send(0, AuthResult(True, user="alice", session="s-1"))
    pump(server, client)
    return client, server


def test_relayed_frame_reported_undecoded_with_its_wire_size() -> None:
    client, server = relay_pair()
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    client.send(2, Key(0x61, True))
    payload = Key(0x61, True).encode()
    [event] = pump(client, server)
    assert event == FrameReceived(2, ChannelKind.INPUT, Key.TYPE, payload, HEADER_SIZE + len(payload))
    assert server.send_window(2) == DEFAULT_WINDOW  # our credit to the peer is untouched


@pytest.mark.parametrize("split", ["whole", "bytewise", "trailing"])
def test_relay_feed_whole_bytewise_and_with_trailing_data(split: str) -> None:
    client, server = relay_pair()
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    client.send(2, Key(0x61, True))
    client.send(2, Pointer(3, 4))
    data = client.data_to_send()
    trailing = encode_frame(2, Key.TYPE, Key(0x62, False).encode())[:5]
    events = []
    if split == "whole":
        events = server.receive_data(data)
    elif split == "bytewise":
        for i in range(len(data)):
            events += server.receive_data(data[i : i + 1])
    else:
        events = server.receive_data(data + trailing)
    assert [(e.type, e.payload) for e in events if isinstance(e, FrameReceived)] == [
        (Key.TYPE, Key(0x61, True).encode()),
        (Pointer.TYPE, Pointer(3, 4).encode()),
    ]
    assert len(events) == 2


def test_relayed_frame_round_trips_byte_exact_through_send_raw() -> None:
    # viewer client -> relay (server role) ... relay (client role) -> next hop
    agent, relay_in = relay_pair()
    relay_out, viewer = relay_pair()
    open_pair_channel(agent, relay_in, 1, ChannelKind.INPUT)
    open_pair_channel(relay_out, viewer, 1, ChannelKind.INPUT)
    agent.send(1, Key(0xFF0D, True))
    sent = agent.data_to_send()
    [frame] = relay_in.receive_data(sent)
    assert isinstance(frame, FrameReceived)
    relay_out.send_raw(1, frame.type, frame.payload)
    assert relay_out.data_to_send() == sent  # byte for byte
    relay_in.consumed(1, frame.wire_size)


def test_message_received_carries_wire_size_and_ignores_it_in_equality() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    client.hello(["t"], "c")
    [hello] = pump(client, server)
    assert isinstance(hello, MessageReceived)
    assert hello.wire_size == frame_cost(hello.message)
    assert hello == MessageReceived(hello.channel, hello.kind, hello.message)
    server.hello([], "s")
    pump(server, client)
    client.send(0, Ping(7))
    [ping] = pump(client, server)
    assert isinstance(ping, MessageReceived) and ping.wire_size == frame_cost(Ping(7))


def test_decoded_messages_on_channels_carry_wire_size() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    for a, b in ((client, server), (server, client)):
        a.hello([], "x")
        pump(a, b)
    client.send(0, Auth("password", user="u", password="p"))
    pump(client, server)
    server.send(0, AuthResult(True, user="u", session="s"))
    pump(server, client)
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    server.send(1, FILL)
    [event] = pump(server, client)
    assert isinstance(event, MessageReceived) and event.wire_size == frame_cost(FILL)


def _forbid_decode(monkeypatch: pytest.MonkeyPatch, kind: ChannelKind) -> None:
    def refuse(cls: type[Message], payload: bytes) -> Message:
        raise AssertionError(f"{cls.__name__}.decode called for a relayed frame")

    for _type, cls in MESSAGE_TYPES[kind].items():
        if cls is not WindowUpdate:
            monkeypatch.setattr(cls, "decode", classmethod(refuse))


@pytest.mark.parametrize(
    ("kind", "sender_is_server", "message"),
    [
        (ChannelKind.DISPLAY, True, FILL),
        (ChannelKind.DISPLAY, True, FrameEnd(1)),
        (ChannelKind.INPUT, False, Key(0x61, True)),
        (ChannelKind.AUDIO_OUT, True, AudioData(0, 0, b"\x01\x02")),
    ],
)
def test_relay_never_decodes_relayed_frames(
    monkeypatch: pytest.MonkeyPatch, kind: ChannelKind, sender_is_server: bool, message: Message
) -> None:
    client, server = relay_pair(relay_client=True)
    open_pair_channel(client, server, 1, kind)
    sender, receiver = (server, client) if sender_is_server else (client, server)
    sender.send(1, message)
    _forbid_decode(monkeypatch, kind)
    [event] = pump(sender, receiver)
    assert event == FrameReceived(1, kind, message.TYPE, message.encode(), frame_cost(message))


def test_relay_never_decodes_usb_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    from protocol.usb import DeviceRemove

    client, server = relay_pair()
    open_pair_channel(client, server, 5, ChannelKind.USB)
    message = DeviceRemove("1-1")
    client.send(5, message)
    _forbid_decode(monkeypatch, ChannelKind.USB)
    [event] = pump(client, server)
    assert event == FrameReceived(5, ChannelKind.USB, message.TYPE, message.encode(), frame_cost(message))


def test_window_update_is_never_relayed() -> None:
    client, server = relay_pair(relay_client=True)
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    server.send(1, FILL)
    [frame] = pump(server, client)
    assert isinstance(frame, FrameReceived)
    client.grant(1, 100)
    assert pump(client, server) == [WindowUpdated(1, 100)]


def test_relayed_frames_are_charged_against_the_window() -> None:
    client, server = relay_pair()
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    cost = frame_cost(Key(1, True))
    sent = 0
    # Bypass the sender's own accounting to overrun the server's window.
    data = encode_frame(2, Key.TYPE, Key(1, True).encode())
    while sent + cost <= DEFAULT_WINDOW:
        sent += cost
        [event] = server.receive_data(data)
        assert isinstance(event, FrameReceived)
    [closed] = server.receive_data(data)
    assert closed == ConnectionClosed(int(ReasonCode.FLOW_CONTROL_ERROR), closed.message, by_peer=False)  # type: ignore[union-attr]


def test_relay_still_refuses_unknown_types_and_wrong_direction() -> None:
    client, server = relay_pair()
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    [closed] = server.receive_data(encode_frame(2, 0x7E, b""))
    assert isinstance(closed, ConnectionClosed) and closed.code == ReasonCode.UNKNOWN_MESSAGE_TYPE

    client, server = relay_pair()
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    # A server receiving a server-only type (FRAME_END) from the client.
    [closed] = server.receive_data(encode_frame(1, FrameEnd.TYPE, FrameEnd(1).encode()))
    assert isinstance(closed, ConnectionClosed) and closed.code == ReasonCode.UNEXPECTED_MESSAGE


def test_relay_refuses_frames_on_channels_not_open_and_before_auth() -> None:
    client, server = relay_pair()
    [closed] = server.receive_data(encode_frame(3, Key.TYPE, Key(1, True).encode()))
    assert isinstance(closed, ConnectionClosed) and closed.code == ReasonCode.CHANNEL_NOT_OPEN

    client, server = Connection(Role.CLIENT), Connection(Role.SERVER, relay=RELAY_ALL)
    client.hello([], "c")
    pump(client, server)
    [closed] = server.receive_data(encode_frame(2, Key.TYPE, Key(1, True).encode()))
    assert isinstance(closed, ConnectionClosed) and closed.code in (
        ReasonCode.NOT_AUTHENTICATED,
        ReasonCode.FRAME_TOO_LARGE,
    )


def test_relay_callback_selects_types() -> None:
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER, relay=lambda kind, type_: type_ == Pointer.TYPE)
    for a, b in ((client, server), (server, client)):
        a.hello([], "x")
        pump(a, b)
    client.send(0, Auth("password", user="u", password="p"))
    pump(client, server)
    server.send(0, AuthResult(True, user="u", session="s"))
    pump(server, client)
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    client.send(2, Key(5, True))
    client.send(2, Pointer(1, 2))
    key, pointer = pump(client, server)
    assert key == MessageReceived(2, ChannelKind.INPUT, Key(5, True))
    assert isinstance(pointer, FrameReceived) and pointer.type == Pointer.TYPE


def test_send_raw_applies_the_checks_of_send() -> None:
    client, server = relay_pair()
    with pytest.raises(ChannelNotOpenError):
        server.send_raw(1, FrameEnd.TYPE, FrameEnd(1).encode())
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    with pytest.raises(ProtocolStateError, match="not defined"):
        server.send_raw(1, 0x7E, b"")
    with pytest.raises(ProtocolStateError, match="managed"):
        server.send_raw(1, WindowUpdate.TYPE, WindowUpdate(5).encode())
    with pytest.raises(ProtocolStateError, match="must not send"):
        client.send_raw(1, FrameEnd.TYPE, FrameEnd(1).encode())
    with pytest.raises(ProtocolStateError, match="send\\(\\)"):
        server.send_raw(0, Ping.TYPE, Ping(1).encode())
    with pytest.raises(ValueError):
        server.send_raw(1, Region.TYPE, bytes(8 * 1024 * 1024))


def test_send_raw_before_auth_and_after_close() -> None:
    client = Connection(Role.CLIENT)
    with pytest.raises(ProtocolStateError):
        client.send_raw(1, Key.TYPE, Key(1, True).encode())
    client.close(0, "bye")
    with pytest.raises(ProtocolStateError, match="closed"):
        client.send_raw(1, Key.TYPE, Key(1, True).encode())


def test_send_raw_refuses_past_the_send_queue_bound() -> None:
    client, server = relay_pair()
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    payload = Key(1, True).encode()
    queued = 0
    # The peer's window is small; queue until MAX_QUEUED_PER_CHANNEL is reached.
    while queued + HEADER_SIZE + len(payload) <= MAX_QUEUED_PER_CHANNEL:
        client.send_raw(2, Key.TYPE, payload)
        queued += HEADER_SIZE + len(payload)
    with pytest.raises(SendBufferFull):
        client.send_raw(2, Key.TYPE, payload)
    assert client.queued_bytes(2) == queued


def test_send_raw_accepts_memoryview_payloads() -> None:
    client, server = relay_pair()
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    payload = bytearray(Key(7, False).encode())
    client.send_raw(2, Key.TYPE, memoryview(payload))  # type: ignore[arg-type]
    [event] = pump(client, server)
    assert isinstance(event, FrameReceived) and event.payload == bytes(payload)


def test_send_raw_refuses_a_payload_above_the_types_bound() -> None:
    client, server = relay_pair()
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    client.send_raw(2, Key.TYPE, bytes(Key.MAX_PAYLOAD))
    with pytest.raises(ValueError, match="bound"):
        client.send_raw(2, Key.TYPE, bytes(Key.MAX_PAYLOAD + 1))


# -- channel_errors: the agent's side of its link ------------------------------------


def agent_pair(channel_errors: bool) -> tuple[Connection, Connection]:
    """(sessiond's link end, the agent's end) after handshake; the link end relays everything."""
    link = Connection(Role.CLIENT, relay=RELAY_ALL)
    agent = Connection(Role.SERVER, channel_errors=channel_errors)
    link.hello([], "sessiond")
    pump(link, agent)
    agent.hello([], "agent")
    pump(agent, link)
    link.send(0, Auth("link", token="t"))
    pump(link, agent)
    agent.send(0, AuthResult(True, session="s-1"))
    pump(agent, link)
    return link, agent


def bad_key(keysym: int) -> bytes:
    return keysym.to_bytes(4, "big") + b"\x01"


def test_with_channel_errors_a_malformed_payload_costs_only_its_channel() -> None:
    from protocol.connection import ChannelClosed, MessageRefused

    link, agent = agent_pair(channel_errors=True)
    open_pair_channel(link, agent, 2, ChannelKind.INPUT)
    open_pair_channel(link, agent, 1, ChannelKind.DISPLAY)
    link.send_raw(2, Key.TYPE, bad_key(0))  # relayed undecoded: the agent is the first to parse it
    link.send_raw(2, Key.TYPE, Key(0x61, True).encode())  # in flight behind it: discarded
    events = pump(link, agent)
    assert [type(e) for e in events] == [MessageRefused]
    refused = events[0]
    assert (refused.channel, refused.kind, refused.code) == (2, ChannelKind.INPUT, ReasonCode.MALFORMED_MESSAGE)
    assert not agent.closed and 2 not in agent.open_channels() and 1 in agent.open_channels()
    back = pump(agent, link)  # the link end sees the agent close that channel, with the reason
    assert [(e.channel, e.code, e.by_peer) for e in back if isinstance(e, ChannelClosed)] == [
        (2, ReasonCode.MALFORMED_MESSAGE, True)]
    confirm = pump(link, agent)
    assert [(e.channel, e.by_peer) for e in confirm if isinstance(e, ChannelClosed)] == [(2, False)]
    # The connection and its other channels go on; the channel can be opened again.
    link.send(0, Ping(token=1))
    assert any(isinstance(e, MessageReceived) and isinstance(e.message, Ping) for e in pump(link, agent))
    open_pair_channel(link, agent, 2, ChannelKind.INPUT)
    link.send(2, Key(0x62, True))
    assert [e.message for e in pump(link, agent) if isinstance(e, MessageReceived)] == [Key(0x62, True)]


def test_without_channel_errors_a_malformed_payload_closes_the_connection() -> None:
    link, agent = agent_pair(channel_errors=False)
    open_pair_channel(link, agent, 2, ChannelKind.INPUT)
    link.send_raw(2, Key.TYPE, bad_key(0x20000000))
    [event] = pump(link, agent)
    assert isinstance(event, ConnectionClosed) and event.code == ReasonCode.MALFORMED_MESSAGE and agent.closed


def test_channel_errors_keep_framing_and_direction_violations_fatal() -> None:
    link, agent = agent_pair(channel_errors=True)
    open_pair_channel(link, agent, 1, ChannelKind.DISPLAY)
    # A REGION is the server's to send: the agent's peer sending one breaks the protocol, not a payload rule.
    agent.receive_data(encode_frame(1, Region.TYPE, FILL.encode()))
    assert agent.closed


def test_is_open_agrees_with_open_channels_through_a_channels_life() -> None:
    client, server = relay_pair()

    def agree() -> None:
        for conn in (client, server):
            open_now = conn.open_channels()
            assert [conn.is_open(ch) for ch in range(6)] == [ch in open_now for ch in range(6)]

    agree()
    client.open_channel(1, ChannelKind.DISPLAY)  # opening: not open on either side yet
    agree()
    assert not client.is_open(1) and client.is_open(0)
    pump(client, server)
    agree()
    pump(server, client)
    agree()
    assert client.is_open(1) and server.is_open(1)
    client.close_channel(1)  # closing: no longer open
    agree()
    assert not client.is_open(1)
    pump(client, server)
    pump(server, client)
    agree()
