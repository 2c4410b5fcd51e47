# "xpra through sessiond": a backend for the peer harness
# (../shared/peers/xpra_baseline.py --backend-file bench/peers_xpra_backend.py).
#
# Why: issue 17 puts an xpra server inside sessiond's sandboxed sessions and
# relays its stream over sessiond's TLS connection. This backend measures that
# path with the harness's fixed workload, so it can be compared with plain xpra
# (the harness's own backend) in the same sitting: the installed sessiond runs
# with [session] display = xpra; the client is `svclient xpra --launch APP`,
# which attaches the installed xpra 6.5.5 client; the harness's counting proxy
# sits between svclient and sessiond (so bytes are TLS bytes). The harness types
# on the session's X display through a symlink to its socket (the session's /tmp
# is private), found from the session's cgroup once the agent has started Xvfb.
# Run it with a --workdir outside /tmp and /var/tmp (the session cannot see those).
"""BACKEND = SessiondXpraBackend: the harness workload through svclient xpra and sessiond."""

import os
import secrets
import subprocess
import threading
import time

PREFIX = os.environ.get("SESSIOND_PREFIX", "/opt/sessiond")
VENV_BIN = os.path.join(PREFIX, "venv", "bin")
XPRA = os.path.join(PREFIX, "xpra-venv", "bin", "xpra")
XPRA_CONF = os.path.join(PREFIX, "xpra-venv", "etc", "xpra")
USER = "svpeersxp"
APP_ID = "xbench-xterm"
SCREEN = (1920, 1080)
# The harness's xterm, started by a published app so the entitlement path is the real one
# (bash's default prompt: a desktop entry's Exec cannot set PS1='$ ' without a shell).
DESKTOP_ENTRY = """[Desktop Entry]
Type=Application
Name=bench xterm
Exec=xterm -geometry 180x50 -e /bin/bash --noprofile --norc
"""
CLIENT_OPTS = ["--mdns=no", "--dbus=no", "--audio=no", "--tray=no", "--notifications=no", "--splash=no",
               "--opengl=no", "--webcam=no", "--printing=no", "--file-transfer=no", "--clipboard=no",
               "--remote-logging=no", "--bell=no", "-d", "paint"]
PASSWORD = secrets.token_urlsafe(12)


def _user() -> None:
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
    subprocess.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n", text=True, check=True)


class SessiondXpraBackend:
    """start_server/client_cmd/server_ready_wall/session_pids/stop, as the harness expects."""

    name = "xpra-through-sessiond"
    CLIENT_LOG_PAINTS = True  # the xpra client logs paints with -d paint, as for plain xpra
    CORE_ROLES = ("server", "xvfb", "xterm")  # server = the session's xpra server
    MEM_EXCLUDE = ("daemon", "svclient")

    def __init__(self, workdir: str) -> None:
        _user()
        self.workdir = workdir
        # The session's /tmp and /var/tmp are private: run with --workdir outside them (e.g. /srv/pb);
        # the session user reads scroll.sh and scroll.txt there and writes scroll_lines.
        os.chmod(workdir, 0o777)
        os.chmod(os.path.dirname(os.path.abspath(workdir)), 0o755)
        self.server = None
        self.server_log = None
        self.display = 0
        self.link = None
        self.ready_wall = None
        self.runtime = f"/run/sessiond-peers-xp-{secrets.token_hex(4)}"
        self.apps = os.path.join(workdir, "apps")
        os.makedirs(self.apps, exist_ok=True)
        os.chmod(self.apps, 0o755)
        with open(os.path.join(self.apps, APP_ID + ".desktop"), "w") as handle:
            handle.write(DESKTOP_ENTRY)
        self.password_file = os.path.join(workdir, "password")
        with open(self.password_file, "w") as handle:
            handle.write(PASSWORD + "\n")
        os.chmod(self.password_file, 0o600)
        version = subprocess.run([XPRA, "--version"], capture_output=True, text=True).stdout.strip()
        self.version = f"sessiond ({PREFIX}) with display = xpra; {version} server and client"
        self._stop = threading.Event()

    def make_parsers(self) -> tuple[None, None]:
        """The proxy sees TLS, not xpra packets: no stream parsers (bytes only)."""
        return None, None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DISPLAY")}
        env.update({"XPRA_SYSTEM_CONF_DIRS": XPRA_CONF, "XPRA_DEFAULT_CONF_DIRS": XPRA_CONF,
                    "XPRA_USER_CONF_DIRS": XPRA_CONF, "HOME": self.workdir})
        return env

    def start_server(self, display: int, port: int, logfile: str):  # noqa: ANN201 - the harness's Popen
        self.display = display
        config = os.path.join(self.workdir, "sessiond.conf")
        with open(config, "w") as handle:
            handle.write(f"[server]\nlisten = 127.0.0.1:{port}\nstate_dir = {self.workdir}/state\n"
                         f"runtime_dir = {self.runtime}\non_stop = logoff\n"
                         f"[session]\nwidth = {SCREEN[0]}\nheight = {SCREEN[1]}\npython = {VENV_BIN}/python\n"
                         f"display = xpra\nxpra = {XPRA}\ncpu_max = max\n[apps]\ndirectories = {self.apps}\n")
        self.server_log = logfile
        self.lf = open(logfile, "w")  # noqa: SIM115 - closed in stop()
        self.server = subprocess.Popen([os.path.join(VENV_BIN, "sessiond"), "run", "--config", config],
                                       stdout=self.lf, stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._watch_session, daemon=True).start()
        return self.server

    def client_cmd(self, port: int) -> list[str]:
        return [os.path.join(VENV_BIN, "svclient"), "--server", f"127.0.0.1:{port}", "--user", USER,
                "--password-file", self.password_file, "--known-hosts", os.path.join(self.workdir, "known_hosts"),
                "--no-resume", "xpra", "--launch", APP_ID, "--xpra-command", XPRA, "--", *CLIENT_OPTS]

    # -- the session's processes ---------------------------------------------------------------
    def _session_procs(self) -> list[int]:
        base = "/sys/fs/cgroup/pids/sessiond"
        pids: list[int] = []
        for entry in os.listdir(base) if os.path.isdir(base) else ():
            path = os.path.join(base, entry, "cgroup.procs")
            if os.path.isfile(path) and self._owned(path):
                with open(path) as handle:
                    pids += [int(p) for p in handle.read().split()]
        return pids

    @staticmethod
    def _owned(procs: str) -> bool:
        with open(procs) as handle:
            first = handle.read().split()
        return bool(first) and os.stat(f"/proc/{first[0]}").st_uid == int(
            subprocess.run(["id", "-u", USER], capture_output=True, text=True).stdout)

    @staticmethod
    def _comm(pid: int) -> str:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                return handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    def _watch_session(self) -> None:
        """Link the session's X socket to /tmp/.X11-unix/X<display> once its Xvfb runs; note xpra's readiness."""
        while not self._stop.is_set() and self.link is None:
            for pid in self._session_procs():
                cmd = self._comm(pid)
                sockets = f"/proc/{pid}/root/tmp/.X11-unix"
                if cmd.startswith("Xvfb") and os.path.isdir(sockets) and os.listdir(sockets):
                    target = os.path.join(sockets, sorted(os.listdir(sockets))[0])  # the session's only X server
                    link = f"/tmp/.X11-unix/X{self.display}"
                    if not os.path.lexists(link):
                        os.symlink(target, link)
                        self.link = link
            time.sleep(0.02)
        while not self._stop.is_set() and self.ready_wall is None:
            for pid in self._session_procs():
                log = f"/proc/{pid}/root{self.runtime}"
                if "seamless" in self._comm(pid) and os.path.isdir(log):
                    self.ready_wall = time.time()  # the xpra server process exists; its socket follows
            time.sleep(0.02)

    def server_ready_wall(self) -> float | None:
        return self.ready_wall

    def session_pids(self) -> dict[str, int]:
        out = {"daemon": self.server.pid}
        for pid in self._session_procs():
            cmd = self._comm(pid)
            if "seamless" in cmd and "server" not in out:
                out["server"] = pid
            elif cmd.startswith("Xvfb") and "xvfb" not in out:
                out["xvfb"] = pid
            elif cmd.startswith("xterm") and "xterm" not in out:
                out["xterm"] = pid
            elif "sessiond.agent" in cmd:
                out["agent"] = pid
            elif cmd.startswith("pulseaudio"):
                out["pulseaudio"] = pid
            elif cmd.startswith("/bin/bash") and "bash" not in out:
                out["bash"] = pid
        return out

    def server_env(self) -> dict[str, str]:
        return {}

    def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()
            self.lf.close()
            self.server = None
        if self.link is not None and os.path.lexists(self.link):
            os.unlink(self.link)


BACKEND = SessiondXpraBackend
