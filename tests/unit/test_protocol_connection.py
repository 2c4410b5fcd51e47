"""Connection: a CLIENT and a SERVER paired in memory; states, channels, flow
control, priorities and every limit the Connection enforces."""

from __future__ import annotations

import pytest

import protocol.channel_table as channel_table_module
import protocol.connection as connection_module
from protocol.connection import (
    ChannelClosed,
    ChannelNotOpenError,
    ChannelOpened,
    Connection,
    ConnectionClosed,
    MessageReceived,
    ProtocolStateError,
    Role,
    SendBufferFull,
    WindowUpdated,
    frame_cost,
)
from protocol.errors import ProtocolError, ReasonCode
from protocol.frames import FrameDecoder, encode_frame, frame_header
from protocol.limits import (
    DEFAULT_WINDOW,
    DISPLAY_WINDOW,
    HEADER_SIZE,
    MAX_OPEN_CHANNELS,
    MAX_QUEUED_PER_CHANNEL,
    MAX_FRAME_PAYLOAD,
    MAX_WINDOW,
)
from protocol.messages import (
    AppInfo,
    AppList,
    Auth,
    AuthResult,
    ChannelKind,
    ChannelOpen,
    Close,
    DesktopSize,
    Encoding,
    FrameAck,
    FrameEnd,
    Hello,
    Key,
    Launch,
    Ping,
    Pong,
    Region,
    Sender,
    SyncDone,
    WindowUpdate,
    decode_message,
    min_window,
)
from protocol.testing import handshaken_pair, open_pair_channel, pump

FILL = Region(0, 0, 10, 10, Encoding.FILL, b"\x10\x20\x30")


def test_full_session_hello_auth_display_and_window_replenishment() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    client.hello(["display"], "svclient")
    [hello] = pump(client, server)
    assert hello == MessageReceived(0, ChannelKind.CONTROL, Hello(1, ("display",), "svclient"))
    assert server.peer_hello == Hello(1, ("display",), "svclient")
    server.hello([], "sessiond")
    assert pump(server, client)[0].message.software == "sessiond"  # type: ignore[union-attr]
    client.send(0, Auth("password", user="alice", password="pw"))
    [auth] = pump(client, server)
    assert auth.message == Auth("password", user="alice", password="pw")  # type: ignore[union-attr]
    assert not server.authenticated
    server.send(0, AuthResult(True, user="alice", session="s-1"))
    assert server.authenticated
    pump(server, client)
    assert client.authenticated

    client.open_channel(1, ChannelKind.DISPLAY)
    assert pump(client, server) == [ChannelOpened(1, ChannelKind.DISPLAY, by_peer=True)]
    assert pump(server, client) == [ChannelOpened(1, ChannelKind.DISPLAY, by_peer=False)]
    assert server.open_channels() == {0: ChannelKind.CONTROL, 1: ChannelKind.DISPLAY}
    assert server.send_window(1) == DISPLAY_WINDOW

    server.send(1, DesktopSize(1920, 1080))
    server.send(1, FILL)
    server.send(1, FrameEnd(1))
    cost = frame_cost(DesktopSize(1920, 1080)) + frame_cost(FILL) + frame_cost(FrameEnd(1))
    assert server.send_window(1) == DISPLAY_WINDOW - cost
    events = pump(server, client)
    assert [e.message for e in events] == [DesktopSize(1920, 1080), FILL, FrameEnd(1)]  # type: ignore[union-attr]
    client.send(1, FrameAck(1))
    assert pump(client, server) == [MessageReceived(1, ChannelKind.DISPLAY, FrameAck(1))]

    # the client consumed < half the window: no credit returned yet
    client.consumed(1, cost)
    assert client.data_to_send() == b""
    # stream until half the window is consumed, then one WINDOW_UPDATE returns it all
    big = Region(0, 0, 500, 500, Encoding.PNG, bytes(1_000_000))
    sent = cost
    while sent < DISPLAY_WINDOW // 2:
        server.send(1, big)
        sent += frame_cost(big)
    for event in pump(server, client):
        client.consumed(1, frame_cost(event.message))  # type: ignore[union-attr]
    assert pump(client, server) == [WindowUpdated(1, sent)]
    assert server.send_window(1) == DISPLAY_WINDOW


def test_send_beyond_window_is_queued_not_sent() -> None:
    client, server = handshaken_pair(window_for=lambda kind: 100)
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    cost = frame_cost(SyncDone(1))  # 12 bytes
    for seq in range(10):
        server.send(2, SyncDone(seq))
    assert server.queued_bytes(2) == 10 * cost
    assert server.send_window(2) == 0
    assert len(pump(server, client)) == 8  # 100 bytes of credit
    assert server.queued_bytes(2) == 2 * cost
    assert server.data_to_send() == b""
    client.consumed(2, 8 * cost)  # >= half of 100: WINDOW_UPDATE(96)
    assert pump(client, server) == [WindowUpdated(2, 8 * cost)]
    assert len(pump(server, client)) == 2
    assert server.send_window(2) == 100 - 2 * cost


def test_every_frame_fits_half_of_any_window_the_peer_may_grant() -> None:
    # The smallest window a peer may grant on a display channel holds two of
    # the largest REGION frames, so send() never has to refuse one.
    window = min_window(ChannelKind.DISPLAY, Sender.SERVER)
    assert window == 2 * (HEADER_SIZE + MAX_FRAME_PAYLOAD)
    client, server = handshaken_pair(window_for=lambda kind: window)
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    largest = Region(0, 0, 1, 1, Encoding.PNG, bytes(MAX_FRAME_PAYLOAD - Region.HEADER_SIZE))
    server.send(1, largest)
    server.send(1, largest)
    assert len(pump(server, client)) == 2
    with pytest.raises(ValueError):
        server.send(1, Region(0, 0, 1, 1, Encoding.PNG, bytes(MAX_FRAME_PAYLOAD)))


def test_send_buffer_full() -> None:
    client, server = handshaken_pair(window_for=lambda kind: 4_200_000)
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    big = Region(0, 0, 500, 500, Encoding.PNG, bytes(1_000_000))
    count = MAX_QUEUED_PER_CHANNEL // frame_cost(big)
    for _ in range(count):
        server.send(1, big)
    with pytest.raises(SendBufferFull):
        server.send(1, big)
    assert server.queued_bytes(1) == count * frame_cost(big)
    assert len(pump(server, client)) == 4  # credit for four frames only
    assert server.queued_bytes(1) == (count - 4) * frame_cost(big)


def test_priority_order_control_input_display() -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    client.send(1, FrameAck(7))
    client.send(2, Key(0x61, True))
    client.send(0, Ping(9))
    client.send(1, FrameAck(8))
    client.send(2, Key(0x61, False))
    frames = FrameDecoder().feed(client.data_to_send())
    assert [(f.channel, f.type) for f in frames] == [
        (0, Ping.TYPE),
        (2, 1),
        (2, 1),
        (1, 4),
        (1, 4),
    ]


def test_priority_order_over_every_kind() -> None:
    # Reserved kinds have no message types in v1, so frames are queued white-box.
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER, accept_kind=lambda kind: True)
    client.hello([], "c")
    pump(client, server)
    server.hello([], "s")
    server.send(0, AuthResult(True))
    pump(server, client)
    order = [
        ChannelKind.USB,
        ChannelKind.CLIPBOARD,
        ChannelKind.DISPLAY,
        ChannelKind.AUDIO_IN,
        ChannelKind.AUDIO_OUT,
        ChannelKind.INPUT,
    ]
    for kind in order:
        client.open_channel(int(kind), kind)
    pump(client, server)
    assert len(pump(server, client)) == len(order)
    for kind in order:  # lowest priority queued first
        state = client._table.get(int(kind))  # noqa: SLF001
        assert state is not None
        state.enqueue(frame_header(int(kind), 0x7E, 0), b"")
    client.send(0, Ping(1))
    channels = [frame.channel for frame in FrameDecoder().feed(client.data_to_send())]
    # control, input, audio-out, audio-in, display, clipboard, usb
    assert channels == [0, 2, 3, 4, 1, 6, 5]


def test_max_bytes_never_splits_frames_but_always_sends_one() -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    for seq in range(3):
        server.send(1, FrameEnd(seq))  # 13 bytes each
    assert server.data_to_send(0) == b""
    first = server.data_to_send(1)
    assert len(first) == 13
    assert len(server.data_to_send(25)) == 13
    assert len(server.data_to_send(100)) == 13
    assert server.data_to_send() == b""


def test_client_must_send_hello_first_and_server_must_wait_for_it() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    with pytest.raises(ProtocolStateError):
        client.send(0, Ping(1))
    with pytest.raises(ProtocolStateError):
        server.hello([], "s")
    client.hello([], "c")
    with pytest.raises(ProtocolStateError):
        client.hello([], "c")
    pump(client, server)
    with pytest.raises(ProtocolStateError):
        server.send(0, AuthResult(True))  # server HELLO first
    server.hello([], "s")
    assert server.hello_sent


def test_pre_auth_sending_is_restricted() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    client.hello([], "c")
    client.send(0, Ping(1))  # allowed
    with pytest.raises(ProtocolStateError):
        client.send(0, Launch(1, "xterm"))
    with pytest.raises(ProtocolStateError):
        client.open_channel(1, ChannelKind.DISPLAY)
    pump(client, server)
    server.hello([], "s")
    server.send(0, AuthResult(False, code=int(ReasonCode.AUTH_FAILED), message="bad password"))
    [_, result] = pump(server, client)
    assert isinstance(result, MessageReceived) and result.message == AuthResult(False, code=13, message="bad password")
    assert not client.authenticated and not server.authenticated


def test_direction_and_kind_are_checked_on_send() -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    with pytest.raises(ProtocolStateError):
        client.send(1, FILL)  # server -> client only
    with pytest.raises(ProtocolStateError):
        server.send(0, Auth("link", token="x"))  # client -> server only
    with pytest.raises(ProtocolStateError):
        client.send(2, FrameAck(1))  # display message on the input channel
    with pytest.raises(ProtocolStateError):
        client.send(0, Key(1, True))
    with pytest.raises(ProtocolStateError):
        client.send(0, ChannelOpen(3, 1, 10))  # managed: use open_channel()
    with pytest.raises(ProtocolStateError):
        client.send(1, WindowUpdate(5))  # managed: use grant()


def test_channel_not_open_errors() -> None:
    client, server = handshaken_pair()
    with pytest.raises(ChannelNotOpenError):
        client.send(1, FrameAck(1))
    client.open_channel(1, ChannelKind.DISPLAY)
    with pytest.raises(ChannelNotOpenError):
        client.send(1, FrameAck(1))  # still opening
    assert client.send_window(1) == 0
    with pytest.raises(ChannelNotOpenError):
        client.close_channel(9)
    with pytest.raises(ChannelNotOpenError):
        client.grant(9, 1)


def test_open_channel_argument_and_limit_checks() -> None:
    client, server = handshaken_pair()
    for bad in (0, 256):
        with pytest.raises(ValueError):
            client.open_channel(bad, ChannelKind.DISPLAY)
    with pytest.raises(ValueError):
        client.open_channel(1, ChannelKind.CONTROL)
    for ch in range(1, MAX_OPEN_CHANNELS + 1):
        client.open_channel(ch, ChannelKind.INPUT)
    with pytest.raises(ProtocolStateError):
        client.open_channel(1, ChannelKind.INPUT)  # in use
    with pytest.raises(ProtocolStateError):
        client.open_channel(MAX_OPEN_CHANNELS + 1, ChannelKind.INPUT)
    pump(client, server)
    assert len(pump(server, client)) == MAX_OPEN_CHANNELS
    assert len(server.open_channels()) == MAX_OPEN_CHANNELS + 1


def test_reserved_kind_is_refused_and_connection_stays_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # No kind is reserved in version 1 any more; the mechanism stays for the next one.
    monkeypatch.setattr(channel_table_module, "RESERVED_KINDS", frozenset({ChannelKind.CLIPBOARD}))
    client, server = handshaken_pair()
    client.open_channel(3, ChannelKind.CLIPBOARD)
    assert pump(client, server) == []
    [closed] = pump(server, client)
    assert isinstance(closed, ChannelClosed) and closed.by_peer
    assert (closed.channel, closed.code) == (3, ReasonCode.CHANNEL_KIND_UNAVAILABLE)
    assert not client.closed and not server.closed
    client.send(0, Ping(4))
    assert pump(client, server) == [MessageReceived(0, ChannelKind.CONTROL, Ping(4))]
    client.open_channel(3, ChannelKind.INPUT)  # id reusable
    pump(client, server)
    assert pump(server, client) == [ChannelOpened(3, ChannelKind.INPUT, by_peer=False)]


def test_accept_kind_hook_refuses_kinds() -> None:
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER, accept_kind=lambda kind: kind is ChannelKind.INPUT)
    client.hello([], "c")
    pump(client, server)
    server.hello([], "s")
    server.send(0, AuthResult(True))
    pump(server, client)
    client.open_channel(1, ChannelKind.DISPLAY)
    pump(client, server)
    [closed] = pump(server, client)
    assert isinstance(closed, ChannelClosed) and closed.code == ReasonCode.CHANNEL_KIND_UNAVAILABLE


def test_close_channel_handshake_drops_queue_and_discards_in_flight_data() -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    server.send(1, FILL)
    in_flight = server.data_to_send()
    client.send(1, FrameAck(1))
    client.close_channel(1, 0, "viewer closed")
    assert client.queued_bytes(1) == 0
    assert client.open_channels() == {0: ChannelKind.CONTROL}
    assert client.receive_data(in_flight) == []  # sent before the peer knew; discarded
    assert pump(client, server) == [ChannelClosed(1, 0, "viewer closed", by_peer=True)]
    with pytest.raises(ChannelNotOpenError):
        server.send(1, FILL)
    assert pump(server, client) == [ChannelClosed(1, 0, "viewer closed", by_peer=False)]
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)  # id free again
    assert server.open_channels()[1] is ChannelKind.DISPLAY


def test_close_channel_before_open_ok_arrives() -> None:
    client, server = handshaken_pair()
    client.open_channel(1, ChannelKind.DISPLAY)
    client.close_channel(1)
    events = pump(client, server)
    assert events == [
        ChannelOpened(1, ChannelKind.DISPLAY, by_peer=True),
        ChannelClosed(1, 0, "", by_peer=True),
    ]
    assert pump(server, client) == [ChannelClosed(1, 0, "", by_peer=False)]
    assert not client.closed and not server.closed


def test_grant_sends_exact_increment_and_is_bounded() -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    client.grant(2, 12345)
    assert pump(client, server) == [WindowUpdated(2, 12345)]
    assert server.send_window(2) == DEFAULT_WINDOW + 12345
    with pytest.raises(ValueError):
        client.grant(2, MAX_WINDOW)
    with pytest.raises(ValueError):
        client.grant(2, 0)


def test_consumed_ignores_more_than_received() -> None:
    client, server = handshaken_pair(window_for=lambda kind: 100)
    open_pair_channel(client, server, 1, ChannelKind.INPUT)
    server.send(1, SyncDone(1))
    pump(server, client)
    client.consumed(1, 10_000)
    assert pump(client, server) == []  # only 12 bytes were received: below half the window
    client.consumed(7, 10)  # unknown channel: ignored


def test_close_is_fatal_and_reaches_the_peer() -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    server.send(1, FILL)
    server.close(ReasonCode.SHUTTING_DOWN, "maintenance")
    assert server.closed and server.queued_bytes(1) == 0
    with pytest.raises(ProtocolStateError):
        server.send(0, Ping(1))
    server.close(ReasonCode.NORMAL, "again")  # no-op
    assert pump(server, client) == [ConnectionClosed(ReasonCode.SHUTTING_DOWN, "maintenance", by_peer=True)]
    assert client.closed and client.data_to_send() == b""


def test_send_close_message_is_close() -> None:
    client, server = handshaken_pair()
    client.send(0, Close(0, "bye"))
    assert client.closed
    assert pump(client, server) == [ConnectionClosed(0, "bye", by_peer=True)]


def test_client_refuses_server_with_other_version() -> None:
    client = Connection(Role.CLIENT)
    client.hello([], "c")
    client.data_to_send()
    [event] = client.receive_data(b"\0\0\0\x2e\0\0\x01\0" + b'{"capabilities":[],"software":"s","version":9}')
    assert isinstance(event, ConnectionClosed) and not event.by_peer
    assert event.code == ReasonCode.VERSION_UNSUPPORTED and client.closed


def test_server_may_close_before_hello() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    client.hello([], "c")
    server.close(ReasonCode.RATE_LIMITED, "slow down")
    assert pump(server, client) == [ConnectionClosed(ReasonCode.RATE_LIMITED, "slow down", by_peer=True)]


def test_peer_making_us_answer_without_reading_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connection_module, "MAX_QUEUED_PER_CHANNEL", 500)
    monkeypatch.setattr(channel_table_module, "RESERVED_KINDS", frozenset({ChannelKind.CLIPBOARD}))
    client, server = handshaken_pair()
    refused_open = encode_frame(0, ChannelOpen.TYPE, ChannelOpen(3, ChannelKind.CLIPBOARD, 10).encode())
    events = server.receive_data(refused_open * 20)  # each one makes the server queue a CHANNEL_CLOSE
    last = events[-1]
    assert isinstance(last, ConnectionClosed) and not last.by_peer
    assert last.code == ReasonCode.LIMIT_EXCEEDED and server.closed


def test_frame_cost() -> None:
    assert frame_cost(FrameEnd(1)) == HEADER_SIZE + 5
    assert frame_cost(Pong(1)) == HEADER_SIZE + len(b'{"token":1}')


def test_oversize_control_message_is_refused_on_send() -> None:
    client, server = handshaken_pair()
    apps = tuple(AppInfo(str(i), "x" * 100, "", (), "") for i in range(1000))
    with pytest.raises(ValueError):
        server.send(0, AppList(apps))
    assert server.queued_bytes(0) == 0


def test_has_data_to_send_tracks_credit() -> None:
    client, server = handshaken_pair(window_for=lambda kind: 32)
    open_pair_channel(client, server, 1, ChannelKind.INPUT)
    assert not server.has_data_to_send()
    server.send(1, SyncDone(1))  # 12 bytes
    server.send(1, SyncDone(2))
    server.send(1, SyncDone(3))
    assert server.has_data_to_send()
    pump(server, client)
    assert server.queued_bytes(1) == 12 and not server.has_data_to_send()


@pytest.mark.parametrize("relay", [False, True])
@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", b"\x00\x00\x01", b"\x00\x00\x00\x00", b"\x00\x00\x00\x01", b"\x00\x01\x00\x00",
     b"\xff\xff\xff\xff", b"\x00\x00\x00\x01\x00", b"\x00\x00\x00\x00\x00\x00\x00\x07"],
)  # fmt: skip
def test_window_update_refuses_and_accepts_as_decoding_does(
    payload: bytes, relay: bool
) -> None:
    client, server = handshaken_pair()
    if relay:  # a relay's Connection (sessiond's), which reads credit the same way
        server = Connection(Role.SERVER, relay=lambda kind, type_: True)
        client = Connection(Role.CLIENT)
        client.hello(["t"], "c")
        pump(client, server)
        server.hello(["t"], "s")
        pump(server, client)
        client.send(0, Auth("password", user="alice", password="pw"))
        pump(client, server)
        server.send(0, AuthResult(True, user="alice", session="s-1"))
        pump(server, client)
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    before = server.send_window(2)
    events = server.receive_data(encode_frame(2, WindowUpdate.TYPE, payload))
    try:  # the reference: the message table's decoder and the MAX_WINDOW bound
        increment = decode_message(ChannelKind.INPUT, WindowUpdate.TYPE, payload).increment  # type: ignore[attr-defined]
    except ProtocolError as exc:
        assert server.closed and [(type(e), e.code) for e in events] == [(ConnectionClosed, exc.code)]
        return
    if before + increment > MAX_WINDOW:
        assert server.closed and [(type(e), e.code) for e in events] == [
            (ConnectionClosed, ReasonCode.FLOW_CONTROL_ERROR)]
        return
    assert not server.closed and events == [WindowUpdated(2, increment)]
    assert server.send_window(2) == before + increment


def test_send_returns_the_frames_wire_size_as_frame_cost_counts_it() -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    for message in (FILL, FrameEnd(seq=3, ack_now=True)):
        before = len(server.data_to_send())
        assert before == 0
        cost = server.send(1, message)
        assert cost == frame_cost(message) == len(server.data_to_send())
    ping = Ping(token=9)
    assert server.send(0, ping) == frame_cost(ping) == len(server.data_to_send())
