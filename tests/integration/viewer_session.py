# Helpers of the viewer tests (test_viewer.py): the session seen from inside
# (python-xlib in the session's namespaces: titles, geometry, GetImage pixels),
# the viewer as a process on the client desktop, and the user's actions on it
# (WM_DELETE_WINDOW, typing into an activated window); and GatedProxy, a
# TCP forwarder in front of sessiond whose door a test shuts to hold a
# reconnecting viewer offline for as long as it looks at it.
"""Viewer test helpers: inside(), session_window(), Viewer, wm_delete(), type_into(), GatedProxy."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
from typing import Any

from PIL import Image

from svtest import VENV_BIN, Server, TestUser
from test_seamless import agent_pid
from viewer_desktop import ClientDesktop

# Runs inside the session: its top-level windows (title, geometry, override-redirect), and
# optionally the pixels of one window (base64 RGB), as the session's own X server has them.
_INSIDE = (
    "import base64, json, os, sys\n"
    "from Xlib import display, X\n"
    "d = display.Display(':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:])\n"
    "want = int(sys.argv[1])\n"
    "out = []\n"
    "for w in d.screen().root.query_tree().children:\n"
    "    a = w.get_attributes(); g = w.get_geometry()\n"
    "    name = w.get_full_text_property(d.intern_atom('_NET_WM_NAME')) or w.get_wm_name() or ''\n"
    "    row = {'id': w.id, 'x': g.x, 'y': g.y, 'width': g.width, 'height': g.height, 'title': name,\n"
    "           'viewable': a.map_state == X.IsViewable, 'override': bool(a.override_redirect)}\n"
    "    if w.id == want:\n"
    "        raw = w.get_image(0, 0, g.width, g.height, X.ZPixmap, 0xffffffff).data\n"
    "        row['bgrx'] = base64.b64encode(raw).decode()\n"
    "    out.append(row)\n"
    "print(json.dumps(out))\n"
)


def inside(user: TestUser, pixels_of: int = 0) -> list[dict[str, Any]]:
    """The session's viewable top-level windows, queried inside the session."""
    done = subprocess.run(["nsenter", "-t", str(agent_pid(user.name)), "-m", "--", os.path.join(VENV_BIN, "python"),
                           "-c", _INSIDE, str(pixels_of)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [w for w in json.loads(done.stdout) if w["viewable"]]


def session_window(user: TestUser, title: str) -> dict[str, Any]:
    """The session's viewable window titled TITLE."""
    rows = [w for w in inside(user) if w["title"] == title]
    assert len(rows) == 1, f"expected one {title!r} window in the session, have {inside(user)}"
    return rows[0]


def xterm_title(user: TestUser) -> str:
    """The session's xterm title (the shell sets it to user@host: dir)."""
    titles = [w["title"] for w in inside(user) if not w["override"] and w["title"] != "Calculator"]
    assert len(titles) == 1, titles
    return str(titles[0])


def session_pixels(user: TestUser, window: int) -> Image.Image:
    """A session window's pixels read from the session's X server (GetImage)."""
    row = next(w for w in inside(user, window) if w["id"] == window)
    raw = base64.b64decode(row["bgrx"])
    return Image.frombytes("RGB", (row["width"], row["height"]), raw, "raw", "BGRX")


def viewer_argv(server: Server, user: TestUser, *extra: str, password_file: str | None = None) -> list[str]:
    """The installed `svclient ... view` command line for USER."""
    return [os.path.join(VENV_BIN, "svclient"), "--server", server.address, "--user", user.name,
            "--password-file", password_file or user.password_file, "--known-hosts", server.known_hosts,
            "--token-dir", os.path.join(os.path.dirname(server.known_hosts), "tokens-view"),
            *(["--no-resume"] if password_file else []), "view", *extra]  # fmt: skip


class Viewer:
    """A running `svclient view` on the client desktop; its stderr in a file."""

    def __init__(self, desktop: ClientDesktop | ClientDesktopEnv, argv: list[str], log: str) -> None:
        self.log_path = log
        self.process = subprocess.Popen(argv, env=desktop.env, stdout=open(log, "w"), stderr=subprocess.STDOUT)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(2)  # Ctrl+C
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def wm_delete(desktop: ClientDesktop, local: int) -> None:
    """Close a local window as a window manager does (WM_DELETE_WINDOW)."""
    from Xlib import X, display, protocol

    d = display.Display(desktop.display)
    window = d.create_resource_object("window", local)
    delete = d.intern_atom("WM_DELETE_WINDOW")
    event = protocol.event.ClientMessage(window=window, client_type=d.intern_atom("WM_PROTOCOLS"),
                                         data=(32, [delete, X.CurrentTime, 0, 0, 0]))  # fmt: skip
    window.send_event(event, event_mask=0)
    d.flush()
    d.close()


def type_into(desktop: ClientDesktop, window: int, text: str) -> None:
    # Qt gives key events to its active window whatever window XSendEvent named, as a user's
    # keyboard does: activate the window first (openbox focuses and raises it).
    # Typed through XTEST like a real keyboard (Shift really pressed for ">" and "~"); a synthetic
    # XSendEvent carries Shift only in its state field, which the plain key map does not turn into Shift.
    desktop.run("xdotool", "windowactivate", "--sync", str(window))
    done = desktop.run("xdotool", "type", "--delay", "30", text)
    assert done.returncode == 0, done.stderr
    desktop.run("xdotool", "key", "--window", str(window), "Return")


class ClientDesktopEnv:
    """A ClientDesktop seen with another environment (e.g. QT_SCALE_FACTOR)."""

    def __init__(self, desktop: ClientDesktop, env: dict[str, str]) -> None:
        self.env = env


# Seconds the proxy's accept loop waits before looking at its stop flag again.
PROXY_POLL_SECONDS = 0.1


class GatedProxy:
    """127.0.0.1:PORT forwarded to sessiond. While shut(), a new connection is
    accepted by the kernel but answered by nobody (a network that is down: the
    viewer's TLS handshake waits); open() lets it through."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(PROXY_POLL_SECONDS)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._door = threading.Event()
        self._door.set()
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def shut(self) -> None:
        """Hold every new connection unanswered."""
        self._door.clear()

    def open(self) -> None:
        """Forward the held and the new connections."""
        self._door.set()

    def stop(self) -> None:
        """Stop accepting (connections already forwarded end with their peers)."""
        self._stopping = True
        self._door.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _peer = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        self._door.wait()
        try:
            server = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        threading.Thread(target=self._pump, args=(server, client), daemon=True).start()
        self._pump(client, server)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (sink, source):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        source.close()
