# Issue 11, end to end: a client sends what once ended the whole session (a
# KEY outside the X keysym range, a window smaller than one frame, a
# WINDOW_UPDATE that takes the credit to MAX_WINDOW) to a real sessiond with
# a real session agent. After each, the same user logs in again and gets the
# same session id, and the session's xterm still paints.
"""Bad frames cost a channel, never the session (real sessiond, agent, Xvfb, TLS)."""

from __future__ import annotations

import socket
import ssl
import struct
import time
from typing import Any, Callable

import pytest

from protocol.connection import ChannelClosed, ChannelOpened, Connection, ConnectionClosed, MessageReceived, Role
from protocol.errors import ReasonCode
from protocol.events import FrameReceived
from protocol.limits import HEADER_SIZE
from protocol.messages import Auth, AuthResult, ChannelKind, FrameAck, Key, Launch, LaunchResult
from svtest import Server, TestUser, tls_connect

pytestmark = [pytest.mark.integration, pytest.mark.root]

DISPLAY, INPUT, AUDIO = int(ChannelKind.DISPLAY), int(ChannelKind.INPUT), int(ChannelKind.AUDIO_OUT)
REGION, FRAME_END = 0x02, 0x03


@pytest.fixture(scope="module")
def rita(user_factory: Any) -> TestUser:
    return user_factory("svt-relay-r")  # type: ignore[no-any-return]


class RawClient:
    """A client on its own TLS socket: protocol.Connection for the state machine, raw bytes for the bad frames."""

    def __init__(self, server: Server, user: TestUser, window_for: Callable[[ChannelKind], int] | None = None):
        self.sock: ssl.SSLSocket = tls_connect(server)
        self.conn = Connection(Role.CLIENT, window_for=window_for, relay=lambda _kind, _type: True)
        self.events: list[Any] = []
        self.conn.hello(capabilities=(), software="relay-errors test")
        self.conn.send(0, Auth(method="password", user=user.name, password=user.password))
        self.flush()
        result = self.wait(lambda e: isinstance(e, MessageReceived) and isinstance(e.message, AuthResult))
        assert result.message.ok, result.message.message
        self.session_id: str = result.message.session

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def wait(self, match: Callable[[Any], bool], seconds: float = 30.0) -> Any:
        """Read until an event matches; acknowledge display frames and return credit meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for event in self.events:
                if match(event):
                    self.events.remove(event)
                    return event
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except (socket.timeout, TimeoutError):
                break
            if not data:
                break
            for event in self.conn.receive_data(data):
                if isinstance(event, FrameReceived):
                    self.conn.consumed(event.channel, event.wire_size)
                    if event.channel == DISPLAY and event.type == FRAME_END:
                        self.conn.send(DISPLAY, FrameAck(seq=struct.unpack(">I", event.payload[:4])[0]))
                self.events.append(event)
            self.flush()
        raise AssertionError(f"nothing matched; connection closed: {self.conn.closed}")

    def open(self, channel: int, kind: ChannelKind) -> Any:
        self.conn.open_channel(channel, kind)
        self.flush()
        return self.wait(lambda e: isinstance(e, (ChannelOpened, ChannelClosed)) and e.channel == channel)

    def send_raw(self, channel: int, type_: int, payload: bytes) -> None:
        """Bytes the Connection would refuse to build (HEADER_SIZE-byte header, then payload)."""
        assert HEADER_SIZE == 8
        self.sock.sendall(struct.pack("!IHBB", len(payload), channel, type_, 0) + payload)

    def close(self) -> None:
        self.sock.close()


def painted(client: RawClient) -> bool:
    """A REGION arrives on the display channel (the xterm's, after a key press makes it redraw)."""
    client.conn.send(INPUT, Key(keysym=0x61, down=True))
    client.conn.send(INPUT, Key(keysym=0x61, down=False))
    client.flush()
    client.wait(lambda e: isinstance(e, FrameReceived) and e.channel == DISPLAY and e.type == REGION)
    return True


def same_session_still_paints(server: Server, user: TestUser, session_id: str) -> None:
    again = RawClient(server, user)
    try:
        assert again.session_id == session_id
        assert isinstance(again.open(DISPLAY, ChannelKind.DISPLAY), ChannelOpened)
        assert isinstance(again.open(INPUT, ChannelKind.INPUT), ChannelOpened)
        assert painted(again)
    finally:
        again.close()


@pytest.fixture(scope="module")
def session_id(sessiond_server: Server, rita: TestUser) -> str:
    """Rita's session, with an xterm running."""
    client = RawClient(sessiond_server, rita)
    client.open(DISPLAY, ChannelKind.DISPLAY)
    client.conn.send(0, Launch(request=1, app="xterm", args=()))
    client.flush()
    launched = client.wait(lambda e: isinstance(e, MessageReceived) and isinstance(e.message, LaunchResult))
    assert launched.message.ok, launched.message.message
    client.close()
    return client.session_id


@pytest.mark.parametrize("keysym", [0, 0x20000000, 0xFFFFFFFF])
def test_a_key_outside_the_keysym_range(sessiond_server: Server, rita: TestUser, session_id: str,
                                        keysym: int) -> None:  # fmt: skip
    client = RawClient(sessiond_server, rita)
    assert client.session_id == session_id
    client.open(INPUT, ChannelKind.INPUT)
    client.send_raw(INPUT, Key.TYPE, struct.pack(">I", keysym) + Key(keysym=0x61, down=True).encode()[4:])
    closed = client.wait(lambda e: isinstance(e, (ChannelClosed, ConnectionClosed)))
    assert isinstance(closed, ChannelClosed) and closed.code == ReasonCode.MALFORMED_MESSAGE
    client.close()
    same_session_still_paints(sessiond_server, rita, session_id)
    assert sessiond_server.alive()


def test_a_window_smaller_than_one_frame(sessiond_server: Server, rita: TestUser, session_id: str) -> None:
    client = RawClient(sessiond_server, rita, window_for=lambda kind: 16)
    answer = client.open(AUDIO, ChannelKind.AUDIO_OUT)
    assert isinstance(answer, ChannelClosed) and answer.code == ReasonCode.FLOW_CONTROL_ERROR
    assert not client.conn.closed
    client.close()
    same_session_still_paints(sessiond_server, rita, session_id)


def test_a_window_update_to_the_maximum(sessiond_server: Server, rita: TestUser, session_id: str) -> None:
    client = RawClient(sessiond_server, rita)
    client.open(DISPLAY, ChannelKind.DISPLAY)
    client.open(INPUT, ChannelKind.INPUT)
    client.conn.grant(DISPLAY, client.conn.grantable(DISPLAY))  # legal: the window reaches 2^31-1 exactly
    client.flush()
    assert painted(client)  # the same connection keeps working...
    assert not client.conn.closed
    client.close()
    same_session_still_paints(sessiond_server, rita, session_id)  # ...and so does the session
