# One bad frame must never cost a user their session. A raw client speaking
# docs/protocol.md on its own TLS socket logs in to a real session running a
# real xterm, then sends one thing a buggy or hostile client might: twenty
# distinct unmapped keysyms held down at once (more than the keyboard has
# spare keycodes), or a WINDOW_UPDATE past 2**31-1. Whatever becomes of that
# connection or channel, the same user then logs in again and must get the
# same session id and an xterm that still paints what they type: the held
# keys were released when the client went (no stuck Control turns the next
# client's typing into shortcuts).
#
# Frames are built from bytes (struct), not from message classes: the point
# is what arrives on the wire, including values the classes refuse to build.
"""Integration: bad frames from a raw client never end the session."""

from __future__ import annotations

import os
import socket
import ssl
import struct
import time

import pytest
from PIL import Image

from protocol.frames import FrameDecoder, encode_frame
from protocol.limits import DISPLAY_WINDOW, MAX_WINDOW
from protocol.messages import Auth, ChannelKind, ChannelOpen
from svtest import HELLO, Server, TestUser, frame, svclient, tls_connect, wait_auth

pytestmark = [pytest.mark.integration, pytest.mark.root]

DISPLAY, INPUT = int(ChannelKind.DISPLAY), int(ChannelKind.INPUT)
KEY_TYPE, WINDOW_UPDATE_TYPE = 0x01, 0xFF
# Each case paints its own colour (ANSI background code -> xterm's RGB), so a
# paint left on screen by an earlier case can never pass for this one's.
COLOURS = {"20 unmapped keysyms held down": (41, (205, 0, 0)), "Control held down at disconnect": (42, (0, 205, 0)),
           "window update past 2**31-1": (45, (205, 0, 205))}  # fmt: skip
MIN_PIXELS = 400 * 6 * 13  # 400 cells of xterm's default 6x13 font


def raw_key(keysym: int, down: bool) -> bytes:
    """A KEY frame on the input channel with any u32 keysym."""
    return encode_frame(INPUT, KEY_TYPE, struct.pack(">IB", keysym, int(down)))


def raw_window_update(channel: int, increment: int) -> bytes:
    return encode_frame(channel, WINDOW_UPDATE_TYPE, struct.pack(">I", increment))


def open_channels(display_window: int = DISPLAY_WINDOW, input_window: int = 1 << 16) -> bytes:
    return frame(0, ChannelOpen(channel=DISPLAY, kind=DISPLAY, window=display_window)) + frame(
        0, ChannelOpen(channel=INPUT, kind=INPUT, window=input_window)
    )


def drain(sock: ssl.SSLSocket, decoder: FrameDecoder, seconds: float) -> bool:
    """Read for SECONDS; return False once the server has closed the connection."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 20)
        except (socket.timeout, TimeoutError):
            continue
        except (ssl.SSLError, OSError):
            return False
        if not data:
            return False
        decoder.feed(data)
    return True


def send_as(server: Server, user: TestUser, payload: bytes, display_window: int = DISPLAY_WINDOW) -> None:
    """Log in on a raw TLS socket, open display+input, send PAYLOAD, read a while, hang up."""
    with tls_connect(server) as sock:
        decoder = FrameDecoder()
        sock.sendall(HELLO + frame(0, Auth(method="password", user=user.name, password=user.password)))
        assert wait_auth(sock, decoder)
        sock.sendall(open_channels(display_window))
        drain(sock, decoder, 0.5)
        try:
            sock.sendall(payload)
        except (ssl.SSLError, OSError):
            pass  # closed on us mid-send: allowed, the session is what counts
        drain(sock, decoder, 1.5)


def count_colour(path: str, colour: tuple[int, int, int]) -> int:
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return sum(count for count, value in colours if value == colour)


def session_id(server: Server, user: TestUser) -> str:
    result = svclient(server, user, "login")
    assert result.returncode == 0, result.stderr + server.log()[-3000:]
    return result.stdout.strip()


def assert_xterm_paints(server: Server, user: TestUser, shot: str, ansi: int, rgb: tuple[int, int, int]) -> None:
    """Type a command that paints 400 cells in colour ANSI; wait until the client sees RGB."""
    assert svclient(server, user, "key", "Return").returncode == 0
    typed = svclient(server, user, "type", f"clear; printf '\\033[{ansi}m%400s\\033[0m\\n' ''")
    assert typed.returncode == 0, typed.stderr
    assert svclient(server, user, "key", "Return").returncode == 0
    seen = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        taken = svclient(server, user, "screenshot", shot)
        assert taken.returncode == 0, taken.stderr
        seen = count_colour(shot, rgb)
        if seen >= MIN_PIXELS:
            return
        time.sleep(0.3)
    raise AssertionError(f"xterm did not paint after the bad frame: {seen} pixels of {rgb}\n{server.log()[-3000:]}")


# Unicode keysyms (0x01000000 + code point) that no default keymap carries.
UNMAPPED = [0x01000000 + 0x4E00 + n for n in range(20)]

# Keysyms outside the X range, a window smaller than a frame and a grant up
# to exactly 2**31-1 are in test_relay_errors.py (with the reason codes).
CASES = {
    "20 unmapped keysyms held down": b"".join(raw_key(k, True) for k in UNMAPPED),
    # A client that goes away holding Control must not leave it down for the next one.
    "Control held down at disconnect": raw_key(0xFFE3, True),
    "window update past 2**31-1": raw_window_update(DISPLAY, MAX_WINDOW),
}


@pytest.fixture(scope="module")
def dana(user_factory: object) -> TestUser:
    return user_factory("svt-bad-d")  # type: ignore[operator, no-any-return]


@pytest.fixture(scope="module")
def running(sessiond_server: Server, dana: TestUser) -> str:
    """Dana's session with an xterm in it; returns the session id."""
    launched = svclient(sessiond_server, dana, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + sessiond_server.log()[-3000:]
    return session_id(sessiond_server, dana)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_frame_keeps_the_session(sessiond_server: Server, dana: TestUser, running: str, case: str,
                                     tmp_path: object) -> None:  # fmt: skip
    send_as(sessiond_server, dana, CASES[case])
    assert sessiond_server.alive()
    assert session_id(sessiond_server, dana) == running, f"{case}: the session was replaced"
    assert_xterm_paints(sessiond_server, dana, os.path.join(str(tmp_path), "shot.png"), *COLOURS[case])
