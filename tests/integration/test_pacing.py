# Display pacing against a real session: a client that does not acknowledge
# frames gets at most `frames_in_flight` of them however fast the screen
# changes (damage coalesces in the agent instead of queueing), and frames
# flow again as soon as it acknowledges. With `[display] adaptive` (the
# default) the window widens with the round trip the agent measures, and
# this test's client acknowledges in 0.5 s batches while the xterm starts, a
# long round trip: its bound is then MAX_FRAME_WINDOW, reached or not
# depending on how many frames the start measured (the test once asserted 2
# for both, which held only while too few frames came for an estimate). A
# client that stops reading altogether cannot make sessiond buffer more than
# the credit it granted.
"""Frame acknowledgement pacing and bounded buffering, end to end."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from protocol.frames import Frame, FrameDecoder
from protocol.messages import (
    Auth,
    ChannelKind,
    ChannelOpen,
    FrameAck,
    Key,
    Launch,
    decode_message,
)
from sessiond.agent.frame_window import MAX_FRAME_WINDOW
from svtest import HELLO, Server, TestUser, frame, start_sessiond, stop_sessiond, tls_connect, wait_auth

pytestmark = [pytest.mark.integration, pytest.mark.root]

DISPLAY = int(ChannelKind.DISPLAY)
INPUT = int(ChannelKind.INPUT)
FRAME_END = 0x03
FRAMES_IN_FLIGHT = 2  # the [display] default, used by the test server
# Paced, so the changes are continuous but the session CPU quota is not the bottleneck.
BUSY_COMMAND = "while :; do echo $RANDOM; sleep 0.02; done\n"


@pytest.fixture(scope="module", params=[False, True], ids=["fixed-window", "adaptive"])
def paced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    """A sessiond with [display] adaptive off (the window is frames_in_flight) or on (the
    default: it may widen up to MAX_FRAME_WINDOW), and that bound."""
    adaptive = bool(request.param)
    server = start_sessiond(str(tmp_path_factory.mktemp("pacing")),
                            extra=f"[display]\nadaptive = {str(adaptive).lower()}\n")  # fmt: skip
    yield server, MAX_FRAME_WINDOW if adaptive else FRAMES_IN_FLIGHT
    stop_sessiond(server)


@pytest.fixture(scope="module")
def carol(user_factory: object) -> TestUser:
    return user_factory("svt-pace-c")  # type: ignore[operator, no-any-return]


def read_for(sock: ssl.SSLSocket, decoder: FrameDecoder, seconds: float) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(1 << 20)
        except (socket.timeout, TimeoutError):
            break
        if not data:
            break
        frames.extend(decoder.feed(data))
    return frames


def frame_ends(frames: list[Frame]) -> list[int]:
    return [decode_message(ChannelKind.DISPLAY, f.type, f.payload).seq  # type: ignore[attr-defined]
            for f in frames if f.channel == DISPLAY and f.type == FRAME_END]  # fmt: skip


def keys(text: str) -> bytes:
    out = b""
    for char in text:
        keysym = 0xFF0D if char == "\n" else ord(char)
        out += frame(INPUT, Key(keysym=keysym, down=True)) + frame(INPUT, Key(keysym=keysym, down=False))
    return out


def test_unacknowledged_frames_are_bounded_and_resume_on_ack(paced: tuple[Server, int], carol: TestUser) -> None:
    sessiond_server, bound = paced
    sock = tls_connect(sessiond_server)
    decoder = FrameDecoder()
    sock.sendall(HELLO + frame(0, Auth(method="password", user=carol.name, password=carol.password)))
    assert wait_auth(sock, decoder)
    sock.sendall(frame(0, ChannelOpen(channel=DISPLAY, kind=int(ChannelKind.DISPLAY), window=8 << 20))
                 + frame(0, ChannelOpen(channel=INPUT, kind=int(ChannelKind.INPUT), window=1 << 16))
                 + frame(0, Launch(request=7, app="xterm", args=())))  # fmt: skip
    # Until the xterm is up, acknowledge everything so the launch is seen.
    seen: list[int] = []
    deadline = time.monotonic() + 20
    launched = False
    while not launched and time.monotonic() < deadline:
        batch = read_for(sock, decoder, 0.5)
        launched = any(f.channel == 0 and f.type == 0x07 for f in batch)
        for seq in frame_ends(batch):
            sock.sendall(frame(DISPLAY, FrameAck(seq=seq)))
            seen.append(seq)
    assert launched, "xterm did not start"
    # Settle, acknowledging everything up to here; the next frames are not.
    seen += frame_ends(read_for(sock, decoder, 0.5)) + frame_ends(read_for(sock, decoder, 0.5))
    last_acked = max(seen or [0])
    sock.sendall(frame(DISPLAY, FrameAck(seq=last_acked)))
    # Make the screen change continuously, and stop acknowledging.
    sock.sendall(keys(BUSY_COMMAND))
    stalled = frame_ends(read_for(sock, decoder, 3.0))
    assert 1 <= len(stalled) <= bound, f"frames sent without acknowledgement: {stalled}"
    # Acknowledge: frames flow again, still paced.
    resumed: list[int] = []
    deadline = time.monotonic() + 3.0
    ack = max(stalled)
    while time.monotonic() < deadline:
        sock.sendall(frame(DISPLAY, FrameAck(seq=ack)))
        got = frame_ends(read_for(sock, decoder, 0.2))
        resumed.extend(got)
        if got:
            ack = max(got)
    assert len(resumed) > 5, f"only {len(resumed)} frames after acknowledging"
    sock.sendall(frame(INPUT, Key(keysym=0xFFE3, down=True))
                 + frame(INPUT, Key(keysym=0x63, down=True)) + frame(INPUT, Key(keysym=0x63, down=False))
                 + frame(INPUT, Key(keysym=0xFFE3, down=False)))  # fmt: skip  # Ctrl-C the busy loop
    sock.close()
