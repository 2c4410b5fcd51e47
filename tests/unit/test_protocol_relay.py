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
