# The session's xpra server, for sessions whose display is xpra
# ([session] display = xpra, docs/xpra.md).
#
# Why the agent runs it on its own Xvfb (xpra --use-display) instead of
# letting xpra start an X server: the session keeps one X server, started
# and hardened by the agent (private socket dir, no TCP, no abstract
# socket), and published apps keep starting in it through the agent's
# launcher; xpra becomes that display's window manager and compositor, so
# the agent does not run its own (the session starts in desktop mode).
#
# Why so many options: xpra is a full remote-desktop server with network
# listeners, mDNS, D-Bus, an HTML server, its own authentication, sound,
# printing and file transfer. In a session only its Unix socket is wanted,
# in the session's private runtime directory, reached only by the agent
# (the sandbox, the 0700 directory and the socket's 0600 mode). Every other
# listener and every side channel that would bypass sessiond's policies is
# turned off on the command line, and xpra reads no configuration file but
# the one directory given here (not /etc/xpra of a distribution package,
# not the user's ~/.config/xpra, which could turn a listener back on).
#
# Input: the user's keys reach the X server through xpra, not sessiond's
# input channel; an IdleWatch (sessiond.agent.x_activity) runs with the
# server and reports them to sessiond's idle policies.
#
# Sound: sessiond carries it (the session's one PulseAudio, Opus on the
# audio channels); xpra runs with audio off, so there is never a second
# sound server in the session.
"""XpraServer: argv, start and supervision of the session's xpra server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from typing import Any, Final

from sessiond.agent.x_activity import IdleWatch

# Seconds to wait for the server's socket after starting it.
XPRA_START_TIMEOUT: Final = 60.0
# Restarts after an unexpected exit before giving up (a crash loop costs CPU billed to the user).
MAX_XPRA_RESTARTS: Final = 3
# Seconds between a SIGTERM and a SIGKILL at shutdown.
XPRA_STOP_GRACE: Final = 5.0
# The directory (under the session's runtime dir) and name of the socket.
XPRA_DIR: Final = "xpra"
XPRA_SOCKET: Final = "xpra.sock"
# xpra's configuration directories: only this one (see the header).
CONF_ENV: Final = ("XPRA_SYSTEM_CONF_DIRS", "XPRA_DEFAULT_CONF_DIRS", "XPRA_USER_CONF_DIRS")
# The refresh rates (Hz) xpra may assume of a client's screen. xpra paces a
# window's updates to the rate the client reports; a screen that reports none
# or a bogus one (Xvfb, Xvnc and nested X servers say 0 Hz) became 5 Hz, so
# the second damage of a keystroke (xterm's cursor) waited up to 200 ms and
# typing lagged (docs/xpra.md, "Measured"). The floor is xpra's own default
# for a client that says nothing.
REFRESH_RATE_RANGE: Final = "50-144"

# Off in every session: network listeners and discovery, side channels,
# and features whose data would bypass sessiond's policies and audit.
_FIXED_OPTIONS: Final = (
    "--daemon=no", "--use-display=yes", "--resize-display=no",
    "--mdns=no", "--dbus=no", "--dbus-control=no", "--dbus-launch=",
    "--html=off", "--http=no", "--ssl=off", "--ssh-upgrade=no", "--rfb-upgrade=0", "--websocket-upgrade=no",
    "--audio=no", "--speaker=off", "--microphone=off", "--pulseaudio=no", "--av-sync=no",
    "--webcam=no", "--printing=no", "--file-transfer=no", "--open-files=no", "--open-url=no",
    "--notifications=no", "--systemd-run=no", "--start-via-proxy=no",
    "--start-new-commands=no", "--commands=no", "--shell=no",
    "--xsettings=no", "--system-tray=no", "--sharing=no", "--lock=no", "--input-method=none",
    "--exit-with-children=no", "--exit-with-client=no", "--remote-logging=no", "--auth=none",
)  # fmt: skip


def clipboard_direction(to_client: bool, from_client: bool) -> str:
    """xpra's --clipboard-direction for sessiond's [clipboard] policy."""
    if to_client and from_client:
        return "both"
    if to_client:
        return "to-client"
    if from_client:
        return "to-server"
    return "disabled"


def xpra_argv(xpra: str, display: str, runtime_dir: str, *, to_client: bool, from_client: bool) -> list[str]:
    """The command line of the session's xpra server (seamless, on `display`)."""
    sock_dir = os.path.join(runtime_dir, XPRA_DIR)
    direction = clipboard_direction(to_client, from_client)
    return [
        xpra, "seamless", display, *_FIXED_OPTIONS,
        f"--bind={os.path.join(sock_dir, XPRA_SOCKET)}", f"--socket-dirs={sock_dir}", f"--socket-dir={sock_dir}",
        f"--log-dir={sock_dir}", f"--sessions-dir={sock_dir}",
        f"--clipboard={'no' if direction == 'disabled' else 'yes'}", f"--clipboard-direction={direction}",
        f"--refresh-rate={REFRESH_RATE_RANGE}",
    ]  # fmt: skip


def xpra_env(base: dict[str, str], display: str, runtime_dir: str, conf_dir: str) -> dict[str, str]:
    """The server's environment: the session's, with only `conf_dir` for configuration."""
    env = {k: v for k, v in base.items() if not k.startswith(("SESSIOND_", "XPRA_"))}
    env.update({name: conf_dir for name in CONF_ENV})
    env["DISPLAY"] = display
    env["XDG_RUNTIME_DIR"] = runtime_dir
    return env


class XpraServer:
    """Starts the session's xpra server and restarts it (a bounded number of
    times) if it exits while the session runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, argv: list[str], env: dict[str, str],
                 log: Callable[[str], None], link: Callable[[], Any] | None = None) -> None:  # fmt: skip
        """link: the agent's current link, for the IdleWatch that runs with the server (None: no watch)."""
        self.loop = loop
        self.watch = IdleWatch(loop, env["DISPLAY"], link, log) if link is not None else None
        self.argv = argv
        self.env = env
        self.log = log
        self.socket = next(a.split("=", 1)[1] for a in argv if a.startswith("--bind="))
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.error = ""  # why the server is not running, once it gave up
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the server in the background (after READY: not on the session's start-up path)."""
        os.makedirs(os.path.dirname(self.socket), mode=0o700, exist_ok=True)
        os.chmod(os.path.dirname(self.socket), 0o700)
        self._task = self.loop.create_task(self._supervise())
        if self.watch is not None:
            self.watch.start()

    @property
    def ready(self) -> bool:
        """The server runs and its socket exists."""
        return self.process is not None and self.process.returncode is None and os.path.exists(self.socket)

    async def wait_ready(self, timeout: float = XPRA_START_TIMEOUT) -> bool:
        """True once the socket exists, False if the server gave up or `timeout` passed."""
        deadline = self.loop.time() + timeout
        while self.loop.time() < deadline and not self.error and not self._stopping:
            if self.ready:
                return True
            await asyncio.sleep(0.1)
        return self.ready

    async def _supervise(self) -> None:
        while not self._stopping:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket)
            try:
                self.process = await asyncio.create_subprocess_exec(
                    *self.argv, env=self.env, stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                self.error = f"cannot start xpra ({self.argv[0]}): {exc}; install it with `make install`"
                self.log(f"xpra: {self.error}")
                return
            self.log(f"xpra: server started, pid {self.process.pid}, socket {self.socket}")
            code = await self.process.wait()
            if self._stopping:
                return
            self.restarts += 1
            if self.restarts > MAX_XPRA_RESTARTS:
                self.error = f"xpra exited with status {code} {self.restarts} times; not restarted again"
                self.log(f"xpra: {self.error}")
                return
            self.log(f"xpra: server exited with status {code}; restart {self.restarts} of {MAX_XPRA_RESTARTS}")
            await asyncio.sleep(1.0)

    def stop(self) -> None:
        """Terminate the server (its process group), then kill it after XPRA_STOP_GRACE."""
        self._stopping = True
        if self.watch is not None:
            self.watch.stop()
        if self._task is not None:
            self._task.cancel()
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        self.loop.call_later(XPRA_STOP_GRACE, self._kill, process)

    @staticmethod
    def _kill(process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def xpra_version(xpra: str) -> str:
    """The version of the xpra package next to `xpra` ("6.5.5"), read from its
    venv's metadata without running it; "" if unknown."""
    from importlib import metadata  # noqa: PLC0415 - only xpra sessions need it

    venv_lib = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(xpra))), "lib")
    with contextlib.suppress(OSError):
        for entry in os.listdir(venv_lib):
            site = os.path.join(venv_lib, entry, "site-packages")
            for dist in metadata.distributions(path=[site]):
                if dist.metadata["Name"] == "xpra":
                    return str(dist.version)
    return ""
