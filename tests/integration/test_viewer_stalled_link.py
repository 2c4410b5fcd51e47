# The native viewer while a frame is on its way over a slow link, end to end:
# a real sessiond (desktop mode), the installed `svclient view` on a client
# Xvfb with openbox, connected through a proxy that can stop the server's
# bytes in the middle of a frame (a link that has carried part of a full-screen
# frame and not yet the rest). The session's screen is filled with noise (a
# frame of several large regions); with the next one stalled half way, the
# local window is made smaller, so Qt repaints all of it at once: what it
# shows must be the last whole frame, not the undrawn grey and not a frame
# half applied. Then the bytes go through and the new frame is shown.
"""svclient view over a stalled link: repaints mid-frame show the last whole frame."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image, ImageChops

from svtest import VENV_BIN, Server, TestUser, start_sessiond, stop_sessiond
from test_seamless import agent_pid
from viewer_desktop import ClientDesktop
from viewer_session import Viewer, viewer_argv

pytestmark = [pytest.mark.integration, pytest.mark.root]

# The viewer's colour of pixels it has no session pixels for (client/viewer/canvas.py UNDRAWN).
UNDRAWN = (48, 48, 48)
# Seconds without a byte from the server after which the link is taken as quiet (a frame and its refinements sent).
QUIET_SECONDS = 3.0
PROXY_POLL_SECONDS = 0.2

# Fills the session's screen (the root window; desktop mode shows it) with noise of seed argv[1],
# drawn into a pixmap and copied to the screen in one request (one change, so one frame takes it
# all): channel values 64..255, so no pixel is the viewer's undrawn grey.
_NOISE = (
    "import os, random, sys\n"
    "from Xlib import display, X\n"
    "d = display.Display(':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:])\n"
    "root = d.screen().root\n"
    "geo = root.get_geometry()\n"
    "pixmap = root.create_pixmap(geo.width, geo.height, d.screen().root_depth)\n"
    "gc = pixmap.create_gc()\n"
    "rnd = random.Random(int(sys.argv[1]))\n"
    "rows = 16\n"
    "for y in range(0, geo.height, rows):\n"
    "    h = min(rows, geo.height - y)\n"
    "    data = bytes(rnd.randrange(64, 256) if i % 4 != 3 else 0 for i in range(geo.width * h * 4))\n"
    "    pixmap.put_image(gc, 0, y, geo.width, h, X.ZPixmap, 24, 0, data)\n"
    "d.sync()\n"
    "root.copy_area(gc, pixmap, 0, 0, geo.width, geo.height, 0, 0)\n"
    "d.sync()\n"
)


class StallingProxy:
    """127.0.0.1:PORT forwarded to sessiond, counting the server's bytes; stall(n) lets n
    more bytes of the server through and holds the rest until release()."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(PROXY_POLL_SECONDS)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.from_server = 0
        self.last_byte_at = time.monotonic()
        self._budget: int | None = None
        self._released = threading.Event()
        self._lock = threading.Lock()
        self.held = False  # the budget is spent and bytes wait
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self, budget: int) -> None:
        with self._lock:
            self._budget, self.held = budget, False
            self._released.clear()

    def release(self) -> None:
        with self._lock:
            self._budget = None
            self._released.set()

    def stop(self) -> None:
        self._stopping = True
        self.release()
        self.listener.close()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _peer = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if downstream:
                    data = self._spend(data, sink)
                sink.sendall(data)
        except OSError:
            pass
        for sock in (sink, source):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _spend(self, data: bytes, sink: socket.socket) -> bytes:
        """Count DATA; past the budget, send what it allows and wait for release()."""
        self.from_server += len(data)
        self.last_byte_at = time.monotonic()
        with self._lock:
            budget = self._budget
            if budget is None:
                return data
            now, data = data[:budget], data[budget:]
            self._budget = budget - len(now)
        sink.sendall(now)
        if data or self._budget == 0:
            self.held = True
            self._released.wait()
        return data


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Iterator[Server]:
    srv = start_sessiond(str(tmp_path_factory.mktemp("slow-frame")), session="mode = desktop\n")
    yield srv
    stop_sessiond(srv)


@pytest.fixture(scope="module")
def proxy(server: Server) -> Iterator[StallingProxy]:
    link = StallingProxy(int(server.address.rsplit(":", 1)[1]))
    yield link
    link.stop()


@pytest.fixture(scope="module")
def desktop() -> Iterator[ClientDesktop]:
    desk = ClientDesktop()
    yield desk
    desk.stop()


def noise(user: TestUser, seed: int) -> None:
    """Fill the session's screen with noise (python-xlib inside the session)."""
    argv = ["nsenter", "-t", str(agent_pid(user.name)), "-m", "--", os.path.join(VENV_BIN, "python"), "-c", _NOISE]
    done = subprocess.run([*argv, str(seed)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def quiet(proxy: StallingProxy, desktop: ClientDesktop) -> int:
    """Wait until the server sent nothing for QUIET_SECONDS; the bytes it sent until then."""
    desktop.wait_for(lambda: time.monotonic() - proxy.last_byte_at > QUIET_SECONDS, 120, "the link to go quiet")
    return proxy.from_server


def undrawn_share(image: Image.Image) -> float:
    """The share of IMAGE's pixels that are the viewer's undrawn grey."""
    colours = image.getcolors(image.width * image.height) or []
    return sum(count for count, colour in colours if colour == UNDRAWN) / (image.width * image.height)


def test_a_repaint_while_a_frame_is_stalled_shows_the_last_whole_frame(server: Server, proxy: StallingProxy,
                                                                       desktop: ClientDesktop, user_factory: Any,
                                                                       tmp_path: Any) -> None:  # fmt: skip
    user = user_factory("svt-slowf")
    argv = [proxy.address if a == server.address else a for a in viewer_argv(server, user, "--desktop")]
    view = Viewer(desktop, argv, str(tmp_path / "view.log"))
    try:
        local = desktop.window(f"{user.name}@{proxy.address}", 60)
        desktop.wait_for(lambda: desktop.geometry(local)["width"] == 1024, 60, "the session's screen locally")
        start = quiet(proxy, desktop)
        noise(user, 1)
        desktop.wait_for(lambda: proxy.from_server > start + 256 * 1024, 60, "the noise's frames")
        size = quiet(proxy, desktop) - start  # bytes of a screen of noise (its frames and refinements)
        before = desktop.capture(local, str(tmp_path / "before.png"))
        assert undrawn_share(before) < 0.01
        mark = proxy.from_server
        proxy.stall(size // 3)  # a third of the next screen's bytes: inside one of its frames
        noise(user, 2)
        desktop.wait_for(lambda: proxy.held, 60, "the link to stall")
        time.sleep(0.5)  # the viewer has read what came
        desktop.run("xdotool", "windowsize", "--sync", str(local), "800", "600")
        time.sleep(0.5)  # its repaint (a refused read retries every 20 ms: it would still show grey)
        during = desktop.capture(local, str(tmp_path / "during.png"))
        assert during.size == (800, 600)
        assert undrawn_share(during) < 0.01, f"the undrawn grey painted over the last frame ({tmp_path})"
        # The screen changed all at once: a whole frame is all before or all new noise (every row differs).
        box = ImageChops.difference(during, before.crop((0, 0, 800, 600))).getbbox()
        assert box in (None, (0, 0, 800, 600)), \
            f"half a frame: differs from the last one in {box} only ({tmp_path}, {proxy.from_server - mark} B)"
        proxy.release()
        desktop.wait_for(lambda: ImageChops.difference(desktop.capture(local, str(tmp_path / "after.png")),
                                                       before.crop((0, 0, 800, 600))).getbbox() is not None,
                         60, "the new frame after the link came back")  # fmt: skip
        assert view.process.poll() is None, view.log()
    finally:
        proxy.release()
        view.stop()
        print(view.log())
