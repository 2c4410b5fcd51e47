# "plain xpra of this build": a backend for the peer harness
# (../shared/peers/xpra_baseline.py --backend-file bench/peers_xpra_plain_backend.py).
#
# Why: the harness's own xpra backend is Debian's 3.1.3, so "through sessiond
# vs plain xpra" mixed two things, sessiond's relay and xpra 3 -> 6. This
# backend runs the xpra 6.5.5 that `make install` builds, with the session's
# own server options (sessiond.agent.xpra_server.xpra_argv, imported from the
# installed venv), over a TCP socket with no sessiond in between, and the same
# client options as bench/peers_xpra_backend.py (plus --mmap=no: a local
# client would otherwise share pixels through a memory file, which a client
# through sessiond never can). Run both backends in one sitting; the
# difference is what sessiond adds. The client attaches to a local Unix
# socket that a thread here forwards to the harness's TCP proxy, as
# svclient's bridge does (this minimal xpra build has no TLS module, and its
# client refuses tcp:// URLs without it).
"""BACKEND = PlainXpraBackend: the session's xpra server and client, without sessiond."""

import glob
import os
import socket
import sys
import threading

PREFIX = os.environ.get("SESSIOND_PREFIX", "/opt/sessiond")
sys.path[:0] = glob.glob(os.path.join(PREFIX, "venv", "lib", "python3*", "site-packages"))
from sessiond.agent.xpra_server import xpra_argv  # noqa: E402 - the installed copy, found above

harness = globals()["harness"]  # the harness module, given by xpra_baseline.py
XPRA = os.path.join(PREFIX, "xpra-venv", "bin", "xpra")
XPRA_CONF = os.path.join(PREFIX, "xpra-venv", "etc", "xpra")
# The client of bench/peers_xpra_backend.py, without mmap (see the header).
CLIENT_OPTS = ["--mdns=no", "--dbus=no", "--audio=no", "--tray=no", "--notifications=no", "--splash=no",
               "--opengl=no", "--webcam=no", "--printing=no", "--file-transfer=no", "--clipboard=no",
               "--remote-logging=no", "--bell=no", "--mmap=no", "-d", "paint"]


class PlainXpraBackend(harness.XpraBackend):
    """The harness's xpra backend with this build's xpra and the session's server options."""

    name = "xpra-6.5.5-plain"

    def __init__(self, workdir: str) -> None:
        self.XPRA = XPRA
        super().__init__(workdir)
        os.makedirs(os.path.join(workdir, "xpra-run", "xpra"), mode=0o700, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = harness.child_env({"XPRA_SYSTEM_CONF_DIRS": XPRA_CONF, "XPRA_DEFAULT_CONF_DIRS": XPRA_CONF,
                                 "XPRA_USER_CONF_DIRS": XPRA_CONF})
        env.pop("XPRA_CONF_FILENAME", None)
        return env

    def server_cmd(self, display: int, port: int) -> list[str]:
        xvfb = (f"Xvfb +extension Composite -screen 0 {harness.SCREEN_W}x{harness.SCREEN_H}x24+32 -dpi 96 "
                "-nolisten tcp -noreset")
        argv = xpra_argv(self.XPRA, f":{display}", os.path.join(self.workdir, "xpra-run"), to_client=False,
                         from_client=False)
        # xpra_argv turns off what the session never needs: its own display, and starting commands.
        argv = [a for a in argv if a not in ("--use-display=yes", "--commands=no")]
        return [*argv, "--use-display=no", f"--xvfb={xvfb}", f"--bind-tcp=127.0.0.1:{port}",
                f"--start-child={harness.XTERM_CMD}", "--start-env=PS1=$ ", "--start-env=HISTFILE=/dev/null"]

    def client_cmd(self, port: int) -> list[str]:
        path = os.path.join(self.workdir, "client.sock")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen(1)
        threading.Thread(target=_forward, args=(listener, port), daemon=True).start()
        return [self.XPRA, "attach", f"socket://{path}", *CLIENT_OPTS]


def _forward(listener: socket.socket, port: int) -> None:
    """Accept the client once; pump its socket to and from 127.0.0.1:port."""
    local, _ = listener.accept()
    listener.close()
    remote = socket.create_connection(("127.0.0.1", port))
    remote.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=_pump, args=(remote, local), daemon=True).start()
    _pump(local, remote)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    while data := src.recv(65536):
        dst.sendall(data)
    dst.shutdown(socket.SHUT_WR)


BACKEND = PlainXpraBackend
