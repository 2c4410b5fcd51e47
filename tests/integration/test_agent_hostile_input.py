# Input a client can send within the protocol's bounds but the session
# cannot type, through a real sessiond to a real agent, Xvfb and xterm. A
# raw client (docs/protocol.md on its own TLS socket) sends it; what the
# user then observes: the agent answered SYNC after it (it is alive and in
# order), the same user logs in again and gets the same session id, and the
# xterm still paints what they type. Before the agent's error boundaries,
# each of these ended the session.
"""Hostile input against a real session: dropped, and the session goes on (issue 11)."""

from __future__ import annotations

import time

import pytest

from protocol.control import ChannelOpen
from protocol.frames import FrameDecoder
from protocol.messages import Auth, ChannelKind, Key, Message, Sync
from svtest import HELLO, Server, TestUser, frame, svclient, tls_connect, wait_auth
from test_end_to_end import MIN_RED_PIXELS, PAINT_COMMAND, XTERM_RED, count_colour

pytestmark = [pytest.mark.integration, pytest.mark.root]

INPUT = int(ChannelKind.INPUT)
INPUT_WINDOW = 1 << 20
CHANNEL_OPEN_OK = 0x09
SYNC_DONE = 0x06
SYNC_SEQ = 77
CONTROL_L, LETTER_U = 0xFFE3, ord("u")
# Twenty distinct keysyms the session's US keymap lacks (Greek small letters).
UNMAPPED = tuple(0x01000000 + 0x3B1 + i for i in range(20))
CASES: dict[str, tuple[Message, ...]] = {
    "keysym 0": (Key(0, True), Key(0, False)),
    "keysym 0x20000000": (Key(0x20000000, True), Key(0x20000000, False)),
    "keysym 0xFFFFFFFF": (Key(0xFFFFFFFF, True), Key(0xFFFFFFFF, False)),
    "20 unmapped keysyms held down": tuple(Key(ks, True) for ks in UNMAPPED) + tuple(Key(ks, False) for ks in UNMAPPED),
}
# Ctrl+U: the terminal discards whatever the hostile keys typed on the line.
KILL_LINE = (Key(CONTROL_L, True), Key(LETTER_U, True), Key(LETTER_U, False), Key(CONTROL_L, False))


@pytest.fixture(scope="module")
def dave(user_factory: object) -> TestUser:
    return user_factory("svt-hin-d")  # type: ignore[operator, no-any-return]


@pytest.fixture(scope="module")
def session_id(sessiond_server: Server, dave: TestUser) -> str:
    launched = svclient(sessiond_server, dave, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + sessiond_server.log()
    login = svclient(sessiond_server, dave, "login")
    assert login.returncode == 0, login.stderr
    return login.stdout.strip()


def send_input(server: Server, user: TestUser, messages: tuple[Message, ...]) -> bool:
    """Log in on a raw socket, open the input channel, send MESSAGES then SYNC; True once SYNC_DONE is back."""
    with tls_connect(server) as sock:
        decoder = FrameDecoder()
        sock.sendall(HELLO + frame(0, Auth(method="password", user=user.name, password=user.password)))
        assert wait_auth(sock, decoder)
        sock.sendall(frame(0, ChannelOpen(channel=INPUT, kind=INPUT, window=INPUT_WINDOW)))
        opened = synced = False
        deadline = time.monotonic() + 20
        while not synced and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for f in decoder.feed(data):
                if f.channel == 0 and f.type == CHANNEL_OPEN_OK and not opened:
                    opened = True
                    sock.sendall(b"".join(frame(INPUT, m) for m in messages + KILL_LINE) + frame(INPUT, Sync(SYNC_SEQ)))
                elif f.channel == INPUT and f.type == SYNC_DONE:
                    synced = True
        return synced


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_dropped_and_the_session_goes_on(sessiond_server: Server, dave: TestUser, session_id: str,
                                                          case: str, tmp_path: object) -> None:  # fmt: skip
    assert send_input(sessiond_server, dave, CASES[case]), f"{case}: no SYNC_DONE: the agent is gone"
    again = svclient(sessiond_server, dave, "login")
    assert again.returncode == 0 and again.stdout.strip() == session_id, again.stderr + sessiond_server.log()
    # The xterm still paints what the user types.
    for command in (("type", "clear"), ("key", "Return"), ("type", PAINT_COMMAND), ("key", "Return")):
        done = svclient(sessiond_server, dave, *command)
        assert done.returncode == 0, done.stderr
    shot = f"{tmp_path}/client.png"
    red = 0
    deadline = time.monotonic() + 15
    while red < MIN_RED_PIXELS and time.monotonic() < deadline:
        taken = svclient(sessiond_server, dave, "screenshot", shot)
        assert taken.returncode == 0, taken.stderr
        red = count_colour(shot, XTERM_RED)
        time.sleep(0.2)
    assert red >= MIN_RED_PIXELS, f"{case}: only {red} red pixels after typing into the xterm"
