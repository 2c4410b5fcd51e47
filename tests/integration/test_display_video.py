# A video played in a real session switches to H.264 and back to lossless:
# ffplay shows ffmpeg's lavfi test pattern (a moving counter, a sweeping
# gradient) in the session; the client, which announced H264 in VIDEO_CAPS,
# receives H264 regions while it plays; when the input ends ffplay keeps
# its last picture on screen, and the client's framebuffer -- built only
# from the regions of one connection, never refreshed -- ends byte-
# identical to a capture taken inside the session (the lossless refinement).
# Real components only: sessiond, TLS, PAM, the sandboxed agent, Xvfb,
# xterm, ffplay; the client side is client.framebuffer + client.video.
"""H264 video regions end to end, and their lossless refinement."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import pytest
from PIL import Image

from client.framebuffer import Framebuffer
from protocol.frames import Frame, FrameDecoder
from protocol.messages import Auth, ChannelKind, ChannelOpen, Encoding, Launch, Region, VideoCaps, decode_message
from protocol.windows import WindowButton, WindowTarget
from protocol.video import parse
from svtest import VENV_BIN, HELLO, Server, TestUser, frame, tls_connect, wait_auth
from test_display_scroll import DISPLAY, DISPLAY_WINDOW, INPUT, Viewer, keys
from test_end_to_end import agent_pid

pytestmark = [pytest.mark.integration, pytest.mark.root]

# 6 s of 640x360 test pattern at 30 fps, then the last picture stays (no -autoexit).
PLAY_COMMAND = ("ffplay -loglevel error -an -noborder -left 0 -top 0 -f lavfi "
                "testsrc=size=640x360:rate=30:duration=6\n")  # fmt: skip


# One window's own pixels, read inside the session's namespaces (the
# session runs seamless: each window is a surface of its own, its REGIONs
# window-relative after a WINDOW_TARGET).
WINDOW_CAPTURE = (
    "import os,sys\n"
    "from Xlib import display, X\n"
    "from PIL import Image\n"
    "name = ':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:]\n"
    "d = display.Display(name); w = d.create_resource_object('window', int(sys.argv[1])); g = w.get_geometry()\n"
    "raw = w.get_image(0, 0, g.width, g.height, X.ZPixmap, 0xffffffff).data\n"
    "Image.frombytes('RGB', (g.width, g.height), raw, 'raw', 'BGRX').save(sys.stdout.buffer, 'PNG')\n"
)


def capture_window(user: str, window: int, path: str) -> None:
    """Save a window of the session as PNG at path."""
    done = subprocess.run(["nsenter", "-t", str(agent_pid(user)), "-m", "--", os.path.join(VENV_BIN, "python"), "-c",
                           WINDOW_CAPTURE, str(window)], capture_output=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    with open(path, "wb") as handle:
        handle.write(done.stdout)


def agent_maps_libavcodec(user: str) -> bool:
    """True if the user's agent has PyAV's codec library mapped (it imported av)."""
    with open(f"/proc/{agent_pid(user)}/maps", encoding="utf-8", errors="replace") as handle:
        return "libavcodec" in handle.read()


@pytest.fixture(scope="module")
def vera(user_factory: object) -> TestUser:
    return user_factory("svt-video-v")  # type: ignore[operator, no-any-return]


class VideoViewer(Viewer):
    """A Viewer that also records the H264 units it applied, in order, and
    draws each window's REGIONs into a Framebuffer of that window."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.units: list[tuple[int, bool, bool]] = []  # stream, key, end
        self.after_end: list[Encoding] = []
        self.trace: list[tuple[int, ...]] = []
        self.windows: dict[int, Framebuffer] = {}
        self.target = 0

    def _frame(self, item: Frame) -> int:
        if item.channel == DISPLAY and item.type == WindowTarget.TYPE:
            message = decode_message(ChannelKind.DISPLAY, item.type, item.payload)
            assert isinstance(message, WindowTarget)
            self.target = message.window
            if message.window:
                fb = self.windows.get(message.window)
                if fb is None or (fb.width, fb.height) != (message.width, message.height):
                    self.windows[message.window] = Framebuffer(message.width, message.height)
            self._last = message
            return 0
        if self.target and item.channel == DISPLAY and item.type == Region.TYPE:
            message = decode_message(ChannelKind.DISPLAY, item.type, item.payload)
            assert isinstance(message, Region)
            self.windows[self.target].apply(message)
            self._last = message
            self._units(message)
            return 0
        ended = super()._frame(item)
        self._units(self._last)
        return ended

    def _units(self, message: object) -> None:
        if isinstance(message, Region):
            self.trace.append((message.x, message.y, message.w, message.h, int(message.encoding), time.monotonic()))
            if message.encoding is Encoding.H264:
                unit = parse(message.data, message.w, message.h)
                self.units.append((unit.stream, unit.key, unit.end))
                self.after_end = []
            elif self.units and self.units[-1][2]:
                self.after_end.append(Encoding(message.encoding))


def xterm_viewer(server: Server, user: TestUser) -> VideoViewer:
    """A VideoViewer logged in as `user`, with xterm launched and its first frames settled."""
    sock = tls_connect(server)
    sock.sendall(HELLO + frame(0, Auth(method="password", user=user.name, password=user.password)))
    assert wait_auth(sock, FrameDecoder())
    sock.sendall(frame(0, ChannelOpen(channel=DISPLAY, kind=int(ChannelKind.DISPLAY), window=DISPLAY_WINDOW))
                 + frame(0, ChannelOpen(channel=INPUT, kind=int(ChannelKind.INPUT), window=1 << 16))
                 + frame(DISPLAY, VideoCaps(codecs=1))
                 + frame(0, Launch(request=7, app="xterm", args=())))  # fmt: skip
    viewer = VideoViewer(sock)
    deadline = time.monotonic() + 20
    while not viewer.launched and time.monotonic() < deadline:
        viewer.pump(0.5)
    assert viewer.launched, "xterm did not start"
    viewer.settle()
    return viewer


def assert_window_exact(viewer: VideoViewer, user: TestUser, window: int, path: str) -> Image.Image:
    """The client's copy of `window` is byte-identical to the window inside the session; returns it."""
    capture_window(user.name, window, path)
    with Image.open(path) as window_pixels:
        still = window_pixels.convert("RGB")
    assert viewer.windows[window].image().tobytes() == still.tobytes(), (
        f"the client's copy of window {window:#x} differs from the session"
    )
    return still


def test_video_goes_h264_then_the_still_is_exact(sessiond_server: Server, vera: TestUser, tmp_path: object) -> None:
    viewer = xterm_viewer(sessiond_server, vera)
    sock = viewer.sock
    assert not viewer.units, "H264 before any video played"
    # PyAV is loaded with the first video stream, not by an idle session (docs/admin.md, memory).
    assert not agent_maps_libavcodec(vera.name), "the agent loaded PyAV before any video played"

    sock.sendall(keys(PLAY_COMMAND))
    deadline = time.monotonic() + 60  # ffplay (SDL, lavfi) starts slowly on a loaded machine
    while not viewer.units and time.monotonic() < deadline:
        viewer.pump(0.5)
    viewer.settle(quiet=2.5, limit=90)

    keys_seen = [u for u in viewer.units if u[1]]
    plain = [u for u in viewer.units if not u[1] and not u[2]]
    assert keys_seen, f"no H264 stream started while the video played: {viewer.count_by_encoding}"
    assert agent_maps_libavcodec(vera.name), "H264 units arrived but the agent has no libavcodec mapped"
    assert len(plain) >= 10, f"only {len(plain)} H264 inter frames: {viewer.count_by_encoding}"
    assert viewer.units[-1][2], "the stream did not end once the video stopped"
    assert viewer.after_end and Encoding.JPEG not in viewer.after_end, viewer.after_end

    videos = [w for w, fb in viewer.windows.items() if (fb.width, fb.height) == (640, 360)]
    assert len(videos) == 1, (
        f"no single 640x360 window among {[(w, f.width, f.height) for w, f in viewer.windows.items()]}"
    )
    still = assert_window_exact(viewer, vera, videos[0], os.path.join(str(tmp_path), "inside.png"))
    colours = still.getcolors(4096)
    assert colours is None or len(colours) > 64, "the last video picture is not on screen"
    sock.close()


def test_typing_into_xterm_while_a_video_plays_leaves_both_windows_exact(
        sessiond_server: Server, user_factory: Any, tmp_path: object) -> None:  # fmt: skip
    # Each echo may go out ahead of the video's frame, as a frame of its own
    # with xterm's WINDOW_TARGET (frame_window.send_ahead_by): the client must
    # still end with both windows exactly as the session shows them.
    tess = user_factory("svt-video-t")
    viewer = xterm_viewer(sessiond_server, tess)
    (term,) = viewer.windows
    viewer.sock.sendall(keys(PLAY_COMMAND.replace("duration=6", "duration=8").rstrip("\n") + " &\n"))
    deadline = time.monotonic() + 60
    while not viewer.units and time.monotonic() < deadline:
        viewer.pump(0.5)
    assert viewer.units, "the video did not start"
    click = [WindowButton(term, 20, 20, 1, True), WindowButton(term, 20, 20, 1, False)]
    viewer.sock.sendall(b"".join(frame(INPUT, message) for message in click))  # the keyboard back to xterm
    typed = "echo typed while a video played"
    for letter in typed:
        viewer.sock.sendall(keys(letter))
        viewer.pump(0.1)
    inter_frames = [unit for unit in viewer.units if not unit[1]]
    viewer.settle(quiet=2.5, limit=90)
    assert len(inter_frames) >= 10, "the video did not play while keys were typed"
    videos = [w for w, fb in viewer.windows.items() if (fb.width, fb.height) == (640, 360)]
    assert len(videos) == 1, [(w, f.width, f.height) for w, f in viewer.windows.items()]
    assert_window_exact(viewer, tess, videos[0], os.path.join(str(tmp_path), "video.png"))
    shown = assert_window_exact(viewer, tess, term, os.path.join(str(tmp_path), "xterm.png"))
    assert len(shown.getcolors(1 << 16) or []) > 1, "xterm shows nothing"
    viewer.sock.close()
