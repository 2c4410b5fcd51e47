# Scrolling in a real session: an xterm printing thousands of lines is sent
# as COPY regions plus the new rows, and the client's framebuffer -- built
# only from the regions of one connection, never refreshed -- ends byte-
# identical to a capture taken inside the session.  Typing costs PALETTE
# regions of tens of bytes.  Real components only: sessiond, TLS, PAM, the
# sandboxed agent, Xvfb, xterm; the client side is client.framebuffer.
"""COPY and PALETTE regions end to end: scroll and keystrokes."""

from __future__ import annotations

import os
import socket
import ssl
import time

import pytest
from PIL import Image

from client.framebuffer import Framebuffer
from protocol.frames import Frame, FrameDecoder
from protocol.messages import (
    Auth,
    ChannelKind,
    ChannelOpen,
    DesktopSize,
    Encoding,
    FrameAck,
    FrameEnd,
    Key,
    Launch,
    Region,
    WindowUpdate,
    decode_message,
)
from svtest import HELLO, Server, TestUser, frame, tls_connect, wait_auth
from test_end_to_end import capture_inside_session

pytestmark = [pytest.mark.integration, pytest.mark.root]

DISPLAY = int(ChannelKind.DISPLAY)
INPUT = int(ChannelKind.INPUT)
DISPLAY_WINDOW = 8 << 20
# Paced so that most frames see a shift of a few lines (an unpaced seq
# jumps a whole screen between frames: nothing is left to copy), then a
# burst, so the last frames also mix copies with jumps.
SCROLL_COMMAND = "for i in $(seq 1 300); do echo line $i $RANDOM; sleep 0.005; done; seq 1 5000\n"


@pytest.fixture(scope="module")
def dora(user_factory: object) -> TestUser:
    return user_factory("svt-scroll-d")  # type: ignore[operator, no-any-return]


class Viewer:
    """One raw connection that draws every region into a Framebuffer,
    acknowledges frames and returns display credit, counting what arrives."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.decoder = FrameDecoder()
        self.fb: Framebuffer | None = None
        self.bytes_by_encoding: dict[Encoding, int] = {}
        self.count_by_encoding: dict[Encoding, int] = {}
        self.frames = 0
        self.launched = False

    def pump(self, seconds: float) -> int:
        """Read and apply for `seconds`; the number of frames that ended."""
        ended = 0
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except (socket.timeout, TimeoutError):
                break
            if not data:
                break
            replies = b""
            credit = 0
            for item in self.decoder.feed(data):
                ended += self._frame(item)
                if item.channel == DISPLAY:
                    credit += len(item.payload) + 8
                    if isinstance(self._last, FrameEnd):
                        replies += frame(DISPLAY, FrameAck(seq=self._last.seq))
            if credit:
                replies += frame(DISPLAY, WindowUpdate(increment=credit))
            self.sock.sendall(replies)
        return ended

    def _frame(self, item: Frame) -> int:
        self._last: object = None
        if item.channel == 0:
            self.launched = self.launched or item.type == 0x07
            return 0
        if item.channel != DISPLAY:
            return 0
        message = decode_message(ChannelKind.DISPLAY, item.type, item.payload)
        self._last = message
        if isinstance(message, DesktopSize):
            self.fb = Framebuffer(message.width, message.height)
        elif isinstance(message, Region):
            assert self.fb is not None
            self.fb.apply(message)
            encoding = Encoding(message.encoding)
            self.count_by_encoding[encoding] = self.count_by_encoding.get(encoding, 0) + 1
            self.bytes_by_encoding[encoding] = self.bytes_by_encoding.get(encoding, 0) + len(item.payload)
        elif isinstance(message, FrameEnd):
            self.frames += 1
            return 1
        return 0

    def settle(self, quiet: float = 1.5, limit: float = 60.0) -> None:
        """Pump until no frame ended for `quiet` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.pump(quiet) == 0:
                return
        raise AssertionError("the screen never settled")


def keys(text: str) -> bytes:
    out = b""
    for char in text:
        keysym = 0xFF0D if char == "\n" else ord(char)
        out += frame(INPUT, Key(keysym=keysym, down=True)) + frame(INPUT, Key(keysym=keysym, down=False))
    return out


def xterm_viewer(server: Server, user: TestUser) -> tuple[ssl.SSLSocket, Viewer]:
    """USER logged in on a raw connection with display and input open, an
    xterm launched and the screen settled."""
    sock = tls_connect(server)
    sock.sendall(HELLO + frame(0, Auth(method="password", user=user.name, password=user.password)))
    assert wait_auth(sock, FrameDecoder())
    sock.sendall(frame(0, ChannelOpen(channel=DISPLAY, kind=int(ChannelKind.DISPLAY), window=DISPLAY_WINDOW))
                 + frame(0, ChannelOpen(channel=INPUT, kind=int(ChannelKind.INPUT), window=1 << 16))
                 + frame(0, Launch(request=7, app="xterm", args=())))  # fmt: skip
    viewer = Viewer(sock)
    deadline = time.monotonic() + 20
    while not viewer.launched and time.monotonic() < deadline:
        viewer.pump(0.5)
    assert viewer.launched, "xterm did not start"
    viewer.settle()
    return sock, viewer


def test_scroll_is_copied_and_the_client_stays_exact(sessiond_server: Server, dora: TestUser,
                                                     tmp_path: object) -> None:  # fmt: skip
    sock, viewer = xterm_viewer(sessiond_server, dora)

    # A keystroke's echo: a glyph and the moved cursor, as a small PALETTE.
    before = dict(viewer.bytes_by_encoding)
    sock.sendall(keys("x"))
    viewer.settle(quiet=0.5)
    echoed = {e: n - before.get(e, 0) for e, n in viewer.bytes_by_encoding.items() if n != before.get(e, 0)}
    assert echoed and set(echoed) <= {Encoding.PALETTE, Encoding.FILL}, echoed
    assert sum(echoed.values()) <= 200, f"one echoed key cost {echoed} bytes of regions"
    sock.sendall(keys("\b"))  # BackSpace is 0xff08, but ^H erases in xterm too
    viewer.settle(quiet=0.5)

    scroll_copies_and_stays_exact(sock, viewer, dora, str(tmp_path), keys(SCROLL_COMMAND))
    sock.close()


def scroll_copies_and_stays_exact(sock: ssl.SSLSocket, viewer: Viewer, user: TestUser, tmp: str,
                                  typed: bytes) -> None:  # fmt: skip
    """Type `typed` (a command that scrolls the xterm): at least 5 COPY regions arrive, and the
    client's framebuffer then equals a capture of the screen taken inside USER's session."""
    copies_before = viewer.count_by_encoding.get(Encoding.COPY, 0)
    sock.sendall(typed)
    viewer.settle()
    copies = viewer.count_by_encoding.get(Encoding.COPY, 0) - copies_before
    assert copies >= 5, f"only {copies} COPY regions while scrolling: {viewer.count_by_encoding}"
    inside = os.path.join(tmp, "inside.png")
    capture_inside_session(user.name, inside)
    assert viewer.fb is not None
    with Image.open(inside) as session_screen:
        assert session_screen.size == (viewer.fb.width, viewer.fb.height)
        assert viewer.fb.image().tobytes() == session_screen.convert("RGB").tobytes(), \
            "the client's framebuffer differs from the session after scrolling"
