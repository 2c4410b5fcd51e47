"""Bounds decided from the frame header (pre-auth channel 0 only, per-kind
payload maxima), minimum initial windows, grantable() and the KEY keysym range:
each test crosses its bound by one."""

from __future__ import annotations

import struct

import pytest

from protocol.connection import (
    ChannelClosed,
    ChannelOpened,
    Connection,
    ConnectionClosed,
    FrameReceived,
    MessageReceived,
    Role,
    WindowUpdated,
)
from protocol.errors import ProtocolError, ReasonCode
from protocol.frames import HEADER, encode_frame
from protocol.limits import (
    DEFAULT_WINDOW,
    DISPLAY_WINDOW,
    HEADER_SIZE,
    MAX_CONTROL_PAYLOAD,
    MAX_FRAME_PAYLOAD,
    MAX_KEYSYM,
    MAX_WINDOW,
)
from protocol.messages import (
    MESSAGE_TYPES,
    AudioData,
    Auth,
    AuthResult,
    ChannelClose,
    ChannelKind,
    ChannelOpen,
    ChannelOpenOk,
    Key,
    Message,
    Sender,
    Wheel,
    decode_message,
    max_payload,
    min_window,
)
from protocol.channel_table import default_window_for
from protocol.testing import handshaken_pair, open_pair_channel, pump
from protocol.usb import (
    MAX_INTERFACES,
    MAX_ISO_PACKETS,
    MAX_STATUS_TEXT,
    MAX_TRANSFER_BUFFER,
    CmdSubmit,
    DeviceAdd,
    DeviceState,
    DeviceStatus,
    RetSubmit,
    UrbCommand,
    UrbReturn,
    UsbDevice,
    UsbInterface,
)

USB_MAX = 4 + 48 + MAX_TRANSFER_BUFFER + 16 * MAX_ISO_PACKETS
EXPECTED_MAX = {
    ChannelKind.CONTROL: MAX_CONTROL_PAYLOAD,
    ChannelKind.DISPLAY: MAX_FRAME_PAYLOAD,
    ChannelKind.INPUT: 12,  # WINDOW_WHEEL
    ChannelKind.AUDIO_OUT: 16 + 4000,  # AUDIO_DATA with the largest packet
    ChannelKind.AUDIO_IN: 16 + 4000,
    ChannelKind.USB: USB_MAX,  # URB_COMMAND / URB_RETURN with the largest transfer and iso table
    ChannelKind.CLIPBOARD: 4 + 64 * 1024,  # CLIP_DATA: serial and a 64 KiB chunk
    ChannelKind.FILES: 12 + 64 * 1024,  # FILE_DATA: id, offset and a 64 KiB chunk
    ChannelKind.WINDOWS: 8 + 96 * 1024,  # WINDOW_ICON with the largest PNG
    ChannelKind.XPRA: 64 * 1024,  # XPRA_DATA: one 64 KiB chunk of the opaque stream
}


def header(length: int, channel: int, type_: int = 1) -> bytes:
    return HEADER.pack(length, channel, type_, 0)


def closed_code(events: list[object]) -> int:
    assert events and isinstance(events[-1], ConnectionClosed), events
    return events[-1].code


# -- before authentication ----------------------------------------------------


def test_data_frame_before_hello_is_refused_from_its_header() -> None:
    server = Connection(Role.SERVER)
    assert closed_code(server.receive_data(header(2 * 1024 * 1024, 1))) == ReasonCode.HELLO_REQUIRED
    assert server.closed


def test_data_frame_before_auth_is_refused_from_its_header() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    client.hello([], "c")
    pump(client, server)
    assert closed_code(server.receive_data(header(MAX_FRAME_PAYLOAD, 1))) == ReasonCode.NOT_AUTHENTICATED


def test_control_frame_bound_before_auth() -> None:
    server = Connection(Role.SERVER)
    assert server.receive_data(header(MAX_CONTROL_PAYLOAD, 0)) == []  # waits for the payload
    server = Connection(Role.SERVER)
    assert closed_code(server.receive_data(header(MAX_CONTROL_PAYLOAD + 1, 0))) == ReasonCode.FRAME_TOO_LARGE


# -- per-kind payload maxima ------------------------------------------------------


def test_max_payload_per_kind_is_derived_from_the_message_table() -> None:
    assert {kind: max_payload(kind) for kind in ChannelKind} == EXPECTED_MAX


@pytest.mark.parametrize(
    ("kind", "type_"),
    [
        (ChannelKind.INPUT, Wheel.TYPE),
        (ChannelKind.AUDIO_IN, AudioData.TYPE),
        (ChannelKind.USB, UrbReturn.TYPE),
        (ChannelKind.DISPLAY, 0x02),
    ],
)
def test_frame_above_its_kinds_maximum_is_refused_from_the_header(kind: ChannelKind, type_: int) -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 1, kind)
    limit = max_payload(kind)
    # At the limit, the header is accepted and the payload awaited.
    assert server.receive_data(header(limit, 1, type_)) == []
    client, server = handshaken_pair()
    open_pair_channel(client, server, 1, kind)
    code = ReasonCode.FRAME_TOO_LARGE
    assert closed_code(server.receive_data(header(limit + 1, 1, type_))) == code


def test_data_frame_on_a_channel_not_open_is_refused_from_its_header() -> None:
    client, server = handshaken_pair()
    assert closed_code(server.receive_data(header(4, 3))) == ReasonCode.CHANNEL_NOT_OPEN


@pytest.mark.parametrize(
    "message",
    [
        Wheel(0xFFFF, 0xFFFF, -1, 1),
        AudioData(2**64 - 1, 2**64 - 1, bytes(4000)),
        UrbCommand(1, CmdSubmit(1, 1, 0, 1, MAX_TRANSFER_BUFFER, data=bytes(MAX_TRANSFER_BUFFER),
                                number_of_packets=MAX_ISO_PACKETS, iso=bytes(16 * MAX_ISO_PACKETS))),
        UrbReturn(1, RetSubmit(1, 0, MAX_TRANSFER_BUFFER, bytes(MAX_TRANSFER_BUFFER),
                               number_of_packets=MAX_ISO_PACKETS, iso=bytes(16 * MAX_ISO_PACKETS))),
        DeviceAdd(UsbDevice("1-1", 1, 2, tuple(UsbInterface(1, 2, 3) for _ in range(MAX_INTERFACES)))),
        DeviceStatus("1-1", DeviceState.OFFERED, "x" * MAX_STATUS_TEXT),
        Key(MAX_KEYSYM, True),
    ],
    ids=lambda m: type(m).__name__,
)
def test_largest_instances_encode_to_exactly_max_payload(message: Message) -> None:
    assert len(message.encode()) == type(message).MAX_PAYLOAD


def test_every_type_bounds_its_payload() -> None:
    for kind, table in MESSAGE_TYPES.items():
        for cls in table.values():
            assert 0 <= cls.MAX_PAYLOAD <= (MAX_CONTROL_PAYLOAD if kind is ChannelKind.CONTROL else MAX_FRAME_PAYLOAD)


# -- minimum windows ----------------------------------------------------------------


def test_default_windows_satisfy_every_minimum() -> None:
    for kind in ChannelKind:
        if kind is ChannelKind.CONTROL:
            continue
        for sender in (Sender.CLIENT, Sender.SERVER):
            assert default_window_for(kind) >= min_window(kind, sender), (kind, sender)
    assert DISPLAY_WINDOW >= min_window(ChannelKind.DISPLAY, Sender.SERVER) == 2 * (HEADER_SIZE + MAX_FRAME_PAYLOAD)
    assert DEFAULT_WINDOW >= min_window(ChannelKind.USB, Sender.CLIENT) == 2 * (HEADER_SIZE + USB_MAX)


def _open_from_peer(kind: ChannelKind, window: int) -> tuple[Connection, list[object]]:
    """A client receiving the server's CHANNEL_OPEN(kind, window) on channel 1."""
    client, server = handshaken_pair()
    frame = encode_frame(0, ChannelOpen.TYPE, ChannelOpen(1, int(kind), window).encode())
    return client, list(client.receive_data(frame))


@pytest.mark.parametrize("kind", [ChannelKind.INPUT, ChannelKind.AUDIO_IN, ChannelKind.USB, ChannelKind.DISPLAY])
def test_open_with_a_window_below_the_minimum_is_refused_for_that_channel_only(kind: ChannelKind) -> None:
    least = min_window(kind, Sender.CLIENT)
    client, events = _open_from_peer(kind, least)
    assert events == [ChannelOpened(1, kind, by_peer=True)]
    client, events = _open_from_peer(kind, least - 1)
    assert events == [] and not client.closed
    [reply] = [f for f in _frames(client.data_to_send()) if f[1] == ChannelClose.TYPE]
    close = decode_message(ChannelKind.CONTROL, ChannelClose.TYPE, reply[2])
    assert isinstance(close, ChannelClose) and close.channel == 1
    assert close.code == ReasonCode.FLOW_CONTROL_ERROR


def test_client_needs_no_window_on_a_channel_it_never_sends_on() -> None:
    assert min_window(ChannelKind.AUDIO_OUT, Sender.CLIENT) == 0
    client, events = _open_from_peer(ChannelKind.AUDIO_OUT, 0)
    assert events == [ChannelOpened(1, ChannelKind.AUDIO_OUT, by_peer=True)]


def test_open_ok_with_a_window_below_the_minimum_closes_that_channel() -> None:
    client, server = handshaken_pair()
    client.open_channel(2, ChannelKind.INPUT)
    pump(client, server)
    server.data_to_send()  # drop the server's real CHANNEL_OPEN_OK
    least = min_window(ChannelKind.INPUT, Sender.CLIENT)
    small = encode_frame(0, ChannelOpenOk.TYPE, ChannelOpenOk(2, least - 1).encode())
    assert client.receive_data(small) == [] and not client.closed
    assert 2 not in client.open_channels()
    events = pump(client, server)  # our CHANNEL_CLOSE
    assert events == [ChannelClosed(2, ReasonCode.FLOW_CONTROL_ERROR, events[0].message, by_peer=True)]  # type: ignore[union-attr]
    assert pump(server, client) == [ChannelClosed(2, ReasonCode.FLOW_CONTROL_ERROR, events[0].message, by_peer=False)]  # type: ignore[union-attr]
    client.open_channel(2, ChannelKind.INPUT)  # the id is free again
    pump(client, server)
    assert pump(server, client) == [ChannelOpened(2, ChannelKind.INPUT, by_peer=False)]


def _frames(data: bytes) -> list[tuple[int, int, bytes]]:
    out = []
    while data:
        length, channel, type_, _ = struct.unpack_from(">IHBB", data)
        out.append((channel, type_, data[HEADER_SIZE : HEADER_SIZE + length]))
        data = data[HEADER_SIZE + length :]
    return out


# -- grantable -----------------------------------------------------------------------


def test_grantable_lets_a_relay_clamp_its_grant() -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    room = client.grantable(2)
    assert room == MAX_WINDOW - DEFAULT_WINDOW
    with pytest.raises(ValueError):
        client.grant(2, room + 1)
    client.grant(2, room)
    assert client.grantable(2) == 0
    assert pump(client, server) == [WindowUpdated(2, room)]
    assert server.send_window(2) == MAX_WINDOW
    assert client.grantable(9) == 0  # not open


def test_peer_window_update_above_max_window_still_closes() -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    update = encode_frame(2, 0xFF, struct.pack(">I", MAX_WINDOW - DEFAULT_WINDOW + 1))
    assert closed_code(server.receive_data(update)) == ReasonCode.FLOW_CONTROL_ERROR


# -- KEY keysyms ---------------------------------------------------------------------


@pytest.mark.parametrize("keysym", [0, MAX_KEYSYM + 1, 0xFFFFFFFF])
def test_keysym_outside_the_x_range_is_refused(keysym: int) -> None:
    with pytest.raises(ValueError):
        Key(keysym, True)
    with pytest.raises(ProtocolError) as info:
        decode_message(ChannelKind.INPUT, Key.TYPE, struct.pack(">IB", keysym, 1))
    assert info.value.code == ReasonCode.MALFORMED_MESSAGE


def test_keysym_range_edges_are_accepted() -> None:
    for keysym in (1, MAX_KEYSYM):
        assert Key.decode(Key(keysym, False).encode()) == Key(keysym, False)


def test_relay_is_bounded_by_the_kind_too() -> None:
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER, relay=lambda kind, type_: True)
    for a, b in ((client, server), (server, client)):
        a.hello([], "x")
        pump(a, b)
    client.send(0, Auth("password", user="u", password="p"))
    pump(client, server)
    server.send(0, AuthResult(True, user="u", session="s"))
    pump(server, client)
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    client.send(2, Key(5, True))
    [event] = pump(client, server)
    assert isinstance(event, FrameReceived) and not isinstance(event, MessageReceived)
    too_large = header(max_payload(ChannelKind.INPUT) + 1, 2, Key.TYPE)
    assert closed_code(server.receive_data(too_large)) == ReasonCode.FRAME_TOO_LARGE
