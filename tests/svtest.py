# Helpers for integration tests: real Linux users with real passwords
# (checked by PAM), and a real sessiond started from the installed virtualenv
# on a free port with a test configuration, driven by the installed svclient.
"""Integration-test helpers (imported by conftest.py and tests)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass

from protocol.frames import FrameDecoder, encode_frame
from protocol.limits import ALPN
from protocol.messages import Hello, encode_message

PREFIX = os.environ.get("SESSIOND_PREFIX", "/opt/sessiond")
VENV_BIN = os.path.join(PREFIX, "venv", "bin")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTEN_RE = re.compile(r"sessiond listening on ([0-9.]+):(\d+)")
# Appended to every test user's name, so that two checkouts installed under
# different prefixes can run their integration tests on one host at once.
USER_SUFFIX = os.environ.get("SVTEST_USER_SUFFIX", "")


def user_name(base: str) -> str:
    """The Linux name of the test user BASE in this run (SVTEST_USER_SUFFIX appended)."""
    return base + USER_SUFFIX


@dataclass
class TestUser:
    """A Linux user created for a test, with its password in a 0600 file."""

    __test__ = False
    name: str
    password: str
    password_file: str


def remove_user(name: str) -> None:
    """Remove NAME and anything left running as it (a crashed earlier run)."""
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and subprocess.run(["pgrep", "-u", name], capture_output=True).returncode == 0:
        time.sleep(0.05)
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)


def create_user(name: str, directory: str) -> TestUser:
    name = user_name(name)
    remove_user(name)
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
    password = secrets.token_urlsafe(12)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    path = os.path.join(directory, f"{name}.password")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    os.chmod(path, 0o600)
    return TestUser(name, password, path)


@dataclass
class Server:
    host: str
    port: int
    process: subprocess.Popen[str]
    log_path: str
    state_dir: str
    runtime_dir: str
    known_hosts: str
    config: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def alive(self) -> bool:
        return self.process.poll() is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sessiond(tmp: str, extra: str = "", on_stop: str = "logoff", port: int = 0,
                   runtime: str | None = None, server: str = "", host: str = "127.0.0.1",
                   session: str = "", wrap: tuple[str, ...] = (), apps: str = "") -> Server:  # fmt: skip
    """Start the installed sessiond with a test config; wait until it listens.

    Starting again with the same TMP, PORT and RUNTIME is a restart of the
    same installation (same state directory, registry, certificate).
    SERVER is appended to the [server] section (key = value lines); HOST is the
    address to listen on (farm tests use several 127.0.0.x).
    SESSION: more [session] lines (e.g. "mode = desktop\n"); without it,
    $SVTEST_MODE (seamless or desktop) runs a whole suite in that mode.
    WRAP: argv prefix, e.g. `ip netns exec NS` to run the host in a network namespace.
    APPS: the catalog directories ([apps] directories; default the repository's conf/apps).
    """
    if not session and os.environ.get("SVTEST_MODE"):
        session = f"mode = {os.environ['SVTEST_MODE']}\n"
    state = os.path.join(tmp, "state")
    runtime = runtime or f"/run/sessiond-test-{secrets.token_hex(4)}"
    config = os.path.join(tmp, "sessiond.conf")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(
            f"[server]\nlisten = {host}:{port}\nstate_dir = {state}\nruntime_dir = {runtime}\n"
            f"on_stop = {on_stop}\n{server}"
            f"[auth]\nfailure_delay = 0.3\nmax_failures = 4\nfailure_window = 60\n"
            f"[session]\nwidth = 1024\nheight = 768\npython = {VENV_BIN}/python\n{session}"
            f"[apps]\ndirectories = {apps or REPO + '/conf/apps'}\n{extra}"
        )
    log_path = os.path.join(tmp, "sessiond.log")
    log = open(log_path, "a", encoding="utf-8")
    already = os.path.getsize(log_path)
    process = subprocess.Popen([*wrap, os.path.join(VENV_BIN, "sessiond"), "run", "--config", config],
                               stdout=log, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            handle.seek(already)
            match = LISTEN_RE.search(handle.read())
        if match:
            return Server(match.group(1), int(match.group(2)), process, log_path, state, runtime,
                          os.path.join(tmp, "known_hosts"), config)  # fmt: skip
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        raise RuntimeError(f"sessiond did not start:\n{handle.read()}")


def copy_catalog(directory: str) -> str:
    """A catalog DIRECTORY a test may edit while sessiond runs: a copy of conf/apps (start_sessiond(apps=...))."""
    for name in os.listdir(os.path.join(REPO, "conf", "apps")):
        shutil.copy(os.path.join(REPO, "conf", "apps", name), directory)
    return directory


def stop_sessiond(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    shutil.rmtree(server.runtime_dir, ignore_errors=True)


def sessionctl(server: Server, *command: str) -> subprocess.CompletedProcess[str]:
    """Run the installed sessionctl against SERVER's control socket."""
    return subprocess.run([os.path.join(VENV_BIN, "sessionctl"), "--config", server.config, *command],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def svclient(server: Server, user: TestUser, *command: str, timeout: float = 60, password_file: str | None = None,
             resume: bool | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the installed svclient against SERVER as USER.

    Resume tokens are kept per server (svclient's default behaviour); an
    explicit PASSWORD_FILE means "log in with this password" (no token).
    """
    argv = [os.path.join(VENV_BIN, "svclient"), "--server", server.address, "--user", user.name,
            "--password-file", password_file or user.password_file, "--known-hosts", server.known_hosts,
            "--token-dir", os.path.join(os.path.dirname(server.known_hosts), "tokens")]  # fmt: skip
    if resume is False or (resume is None and password_file is not None):
        argv.append("--no-resume")
    argv.extend(command)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


# -- raw protocol access over real TLS (for tests of bad input and pacing) --

def tls_connect(server: Server, *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLSocket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols([ALPN])
    if max_version is not None:
        context.maximum_version = max_version
    raw = socket.create_connection((server.host, server.port), timeout=10)
    return context.wrap_socket(raw)


def frame(channel: int, message: object) -> bytes:
    type_, payload = encode_message(message)  # type: ignore[arg-type]
    return encode_frame(channel, type_, payload)


HELLO = frame(0, Hello(version=1, capabilities=(), software="test"))


def read_close(sock: ssl.SSLSocket, decoder: FrameDecoder) -> tuple[int, str]:
    """Read frames until the server's CLOSE; return (code, message)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        for f in decoder.feed(data):
            if f.channel == 0 and f.type == 0x0C:
                body = json.loads(f.payload)
                return body["code"], body["message"]
    raise AssertionError("connection ended without a CLOSE frame")


def wait_auth(sock: ssl.SSLSocket, decoder: FrameDecoder) -> bool:
    """Read until AUTH_RESULT; return its ok field."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for f in decoder.feed(sock.recv(65536)):
            if f.channel == 0 and f.type == 0x03:
                return bool(json.loads(f.payload)["ok"])
    raise AssertionError("no AUTH_RESULT")


