"""Property tests: receive_data never raises on any input, chunking never
changes the events, and honest peers never trip flow control."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.connection import (
    Connection,
    ConnectionClosed,
    Event,
    MessageReceived,
    Role,
    frame_cost,
)
from protocol.messages import (
    AuthResult,
    ChannelKind,
    Encoding,
    FrameAck,
    FrameEnd,
    Key,
    Message,
    Region,
    Sender,
    min_window,
)
from protocol.limits import MAX_KEYSYM
from protocol.testing import handshaken_pair, open_pair_channel, pump


def _check_events(conn: Connection, events: list[Event]) -> None:
    closes = [i for i, e in enumerate(events) if isinstance(e, ConnectionClosed)]
    assert len(closes) <= 1
    if closes:
        assert closes[0] == len(events) - 1
        assert conn.closed


def _server_stream() -> bytes:
    """Everything a server sends a client in a short session: HELLO, AUTH_RESULT,
    a server-opened display channel and three frames."""
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    client.hello([], "c")
    pump(client, server)
    server.hello([], "s")
    server.send(0, AuthResult(True, user="u", session="s"))
    server.open_channel(1, ChannelKind.DISPLAY)
    stream = server.data_to_send()
    client.receive_data(stream)
    pump(client, server)  # CHANNEL_OPEN_OK
    for seq in range(3):
        server.send(1, Region(seq, 0, 4, 4, Encoding.FILL, b"\1\2\3"))
        server.send(1, FrameEnd(seq))
    return stream + server.data_to_send()


SERVER_STREAM = _server_stream()


def _run_client(chunks: list[bytes]) -> list[Event]:
    client = Connection(Role.CLIENT)
    client.hello([], "c")
    events: list[Event] = []
    for chunk in chunks:
        events += client.receive_data(chunk)
    return events


@given(st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_any_chunking_of_a_valid_stream_gives_the_same_events(cuts: list[int]) -> None:
    whole = _run_client([SERVER_STREAM])
    chunks, pos, i = [], 0, 0
    while pos < len(SERVER_STREAM):
        chunks.append(SERVER_STREAM[pos : pos + cuts[i % len(cuts)]])
        pos += cuts[i % len(cuts)]
        i += 1
    assert _run_client(chunks) == whole
    assert sum(isinstance(e, MessageReceived) and isinstance(e.message, FrameEnd) for e in whole) == 3
    assert not any(isinstance(e, ConnectionClosed) for e in whole)


def test_stream_with_trailing_partial_frame() -> None:
    events = _run_client([SERVER_STREAM + SERVER_STREAM[-10:-3]])
    assert events == _run_client([SERVER_STREAM])


@given(st.binary(max_size=300), st.sampled_from([Role.CLIENT, Role.SERVER]))
def test_garbage_to_a_fresh_connection_never_raises(data: bytes, role: Role) -> None:
    conn = Connection(role)
    events = conn.receive_data(data)
    _check_events(conn, events)
    if not conn.closed:
        assert events == [] or all(isinstance(e, MessageReceived) for e in events)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), max_size=8), st.booleans())
def test_garbage_after_handshake_never_raises(chunks: list[bytes], to_server: bool) -> None:
    client, server = handshaken_pair()
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    target = server if to_server else client
    events: list[Event] = []
    for chunk in chunks:
        events += target.receive_data(chunk)
    _check_events(target, events)
    target.data_to_send()


@given(
    st.binary(min_size=1, max_size=len(SERVER_STREAM)),
    st.integers(0, len(SERVER_STREAM) - 1),
)
def test_mutated_valid_stream_never_raises(patch: bytes, offset: int) -> None:
    data = bytearray(SERVER_STREAM)
    data[offset : offset + len(patch)] = patch
    client = Connection(Role.CLIENT)
    client.hello([], "c")
    events = client.receive_data(bytes(data))
    _check_events(client, events)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("region"), st.integers(1, 400)),
            st.tuples(st.just("key"), st.integers(1, MAX_KEYSYM)),
            st.tuples(st.just("ack"), st.integers(0, 2**32 - 1)),
            st.tuples(st.just("pump"), st.integers(1, 400)),
        ),
        max_size=60,
    )
)
def test_honest_peers_never_violate_flow_control(ops: list[tuple[str, int]]) -> None:
    # The least windows each side may grant: the display one holds two of the
    # largest REGIONs, so a few hundred bytes of region data never stall.
    client, server = handshaken_pair(window_for=lambda kind: max(min_window(kind, s) for s in Sender))
    open_pair_channel(client, server, 1, ChannelKind.DISPLAY)
    open_pair_channel(client, server, 2, ChannelKind.INPUT)
    sent: dict[int, list[Message]] = {1: [], 2: []}
    got: dict[int, list[Message]] = {1: [], 2: []}

    def deliver(src: Connection, dst: Connection, max_bytes: int | None) -> None:
        for event in dst.receive_data(src.data_to_send(max_bytes)):
            assert not isinstance(event, ConnectionClosed), event
            if isinstance(event, MessageReceived) and event.channel:
                got[event.channel].append(event.message)
                dst.consumed(event.channel, frame_cost(event.message))

    for op, arg in ops:
        if op == "region":
            msg: Message = Region(0, 0, 1, 1, Encoding.PNG, bytes(arg))
            server.send(1, msg)
            sent[1].append(msg)
        elif op == "key":
            msg = Key(arg, True)
            client.send(2, msg)
            sent[2].append(msg)
        elif op == "ack":
            msg = FrameAck(arg)
            client.send(1, msg)
            sent[1].append(msg)
        else:
            deliver(server, client, arg)
            deliver(client, server, arg)
    for _ in range(len(ops) * 4 + 4):  # drain
        deliver(server, client, None)
        deliver(client, server, None)
    assert not client.closed and not server.closed
    assert [m for m in got[1] if isinstance(m, Region)] == [m for m in sent[1] if isinstance(m, Region)]
    assert [m for m in got[1] if isinstance(m, FrameAck)] == [m for m in sent[1] if isinstance(m, FrameAck)]
    assert got[2] == sent[2]
    assert server.queued_bytes(1) == client.queued_bytes(1) == client.queued_bytes(2) == 0
