# USB redirection end to end, with real components only: sessiond, TLS, PAM
# users, sandboxed agents, and svclient sharing a virtual bulk-loopback device.
# Inside the session (entered with nsenter, as the user), Debian's `usbip list
# -r` -- a USB/IP peer nobody here wrote -- lists exactly that device, and a
# user-space USB/IP driver imports it and reads back the bytes it wrote.
# Another user's session sees nothing; a forbidden class is refused; changing
# the policy while the device is imported detaches it.
"""USB/IP over the usb channel: listing, import, bulk echo, isolation, policy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from svtest import VENV_BIN, Server, TestUser, start_sessiond, stop_sessiond, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]

PYTHON = os.path.join(VENV_BIN, "python")
SVCLIENT = os.path.join(VENV_BIN, "svclient")


@pytest.fixture(scope="module")
def usb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_sessiond(str(tmp_path_factory.mktemp("usb")),
                            extra="[usb]\nallow = *\ndeny = class:08\nrecheck_interval = 0.2\n")  # fmt: skip
    yield server
    stop_sessiond(server)


@pytest.fixture(scope="module")
def ursula(user_factory: object) -> TestUser:
    return user_factory("svt-usb-u")  # type: ignore[operator, no-any-return]


@pytest.fixture(scope="module")
def victor(user_factory: object) -> TestUser:
    return user_factory("svt-usb-v")  # type: ignore[operator, no-any-return]


class Sharer:
    """A running `svclient usb share` process and the lines it printed."""

    def __init__(self, server: Server, user: TestUser, *devices: str) -> None:
        argv = [SVCLIENT, "--server", server.address, "--user", user.name, "--password-file", user.password_file,
                "--known-hosts", server.known_hosts, "--no-resume", "usb", "share", *devices]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def line(self, stream: str = "stdout") -> str:
        pipe = self.process.stdout if stream == "stdout" else self.process.stderr
        assert pipe is not None
        return pipe.readline()

    def stop(self) -> tuple[int, str]:
        self.process.terminate()
        try:
            _out, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _out, err = self.process.communicate()
        return self.process.returncode, err


def agent_pid(user: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-u", user, "-f", "sessiond.agent"], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        if len(pids) == 1:
            return pids[0]
        time.sleep(0.1)
    raise AssertionError(f"no single agent for {user}")


def in_session(user: TestUser, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ARGV as USER inside the user's session (its mount, PID and IPC namespaces)."""
    pid = agent_pid(user.name)
    environ = f"XDG_RUNTIME_DIR=/run/user/{_uid(user.name)}"
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "-p", "-i", "-S", str(_uid(user.name)),
                           "-G", str(_uid(user.name)), "--", "env", "-i", "PATH=/usr/sbin:/usr/bin:/bin", environ,
                           *argv], capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def driver(user: TestUser, *args: str) -> subprocess.CompletedProcess[str]:
    return in_session(user, PYTHON, "-m", "sessiond.agent.usb_driver", *args)


def test_shared_device_is_listed_imported_and_echoes(usb_server: Server, ursula: TestUser,
                                                     victor: TestUser) -> None:  # fmt: skip
    assert svclient(usb_server, victor, "login").returncode == 0  # victor has a session too
    sharer = Sharer(usb_server, ursula, "virtual:loopback")
    try:
        shared = sharer.line()
        assert shared.startswith("shared vusb-1 (1209:0001 sessiond bulk loopback)"), shared + sharer.line("stderr")

        # A real USB/IP peer nobody here wrote: Debian's usbip, over TCP, through
        # the session's private network namespace.
        listed = in_session(ursula, PYTHON, "-m", "sessiond.agent.usb_netns", "--", "usbip", "list", "-r",
                            "127.0.0.1")  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert "vusb-1" in listed.stdout and "1209:0001" in listed.stdout, listed.stdout
        assert re.findall(r"^\s+(\S+): .*\((\w{4}:\w{4})\)$", listed.stdout, re.M) == [("vusb-1", "1209:0001")]

        devices = driver(ursula, "list")
        assert devices.returncode == 0, devices.stderr
        assert json.loads(devices.stdout) == [{"busid": "vusb-1", "vid_pid": "1209:0001", "classes": [255]}]

        echoed = driver(ursula, "loopback", "vusb-1", "--count", "1000", "--size", "64")
        assert echoed.returncode == 0, echoed.stderr + usb_server.log()
        result = json.loads(echoed.stdout)
        assert result["device_descriptor"].startswith("1201000200000040" + "0912" + "0100")  # 1209:0001
        assert result["product"] == "sessiond bulk loopback"
        assert result["echoed"] == 1000

        # Another user's session has no endpoint at all, and nothing to list.
        other = driver(victor, "list")
        assert other.returncode == 1 and "usbip.sock" in other.stderr, other.stdout + other.stderr
        # From the host the endpoint is not at its path, and through the agent's
        # /proc/PID/root another user is refused.
        path = f"/run/user/{_uid(ursula.name)}/usbip.sock"
        assert not os.path.exists(path)
        probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
                 "try:\n    s.connect(sys.argv[1]); print('connected')\nexcept OSError as e:\n    print(e.errno)\n")
        uid = str(_uid(victor.name))
        sneak = subprocess.run(["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", PYTHON, "-c", probe,
                                f"/proc/{agent_pid(ursula.name)}/root{path}"], capture_output=True, text=True)
        assert sneak.stdout.strip() == "13", sneak.stdout + sneak.stderr  # EACCES
    finally:
        sharer.stop()


def test_forbidden_class_is_refused(usb_server: Server, ursula: TestUser) -> None:
    sharer = Sharer(usb_server, ursula, "virtual:storage")
    try:
        status = sharer.process.wait(timeout=30)
        err = sharer.process.stderr.read() if sharer.process.stderr else ""
        assert status == 1
        assert "refused vusb-1 (1209:0002 sessiond storage stub)" in err
        assert "denied by the server's USB policy (rule class:08)" in err
    finally:
        sharer.stop()
    devices = driver(ursula, "list")
    assert json.loads(devices.stdout or "[]") == [] or devices.returncode == 1


def test_policy_change_detaches_an_imported_device(usb_server: Server, ursula: TestUser) -> None:
    sharer = Sharer(usb_server, ursula, "virtual:loopback")
    pid = agent_pid(ursula.name)
    script = ("import sys, time\nfrom sessiond.agent.usb_driver import UsbipImporter, UsbipError\n"
              "imp = UsbipImporter.connect(sys.argv[1]); imp.import_device('vusb-1')\n"
              "imp.bulk_out(1, b'before'); print(imp.bulk_in(1, 64).decode(), flush=True)\n"
              "sys.stdin.readline()\n"
              "try:\n    imp.bulk_out(1, b'after'); print('still attached')\n"
              "except (UsbipError, OSError) as exc:\n    print('detached:', exc)\n")  # fmt: skip
    config = open(usb_server.config, encoding="utf-8").read()
    try:
        assert sharer.line().startswith("shared vusb-1"), sharer.line("stderr")
        uid = str(_uid(ursula.name))
        inside = subprocess.Popen(["nsenter", "-t", str(pid), "-m", "-p", "-i", "-S", uid, "-G", uid, "--", PYTHON,
                                   "-c", script, f"/run/user/{uid}/usbip.sock"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert inside.stdout is not None and inside.stdin is not None
        assert inside.stdout.readline().strip() == "before"
        with open(usb_server.config, "w", encoding="utf-8") as handle:
            handle.write(config.replace("allow = *", "allow = class:03"))
        revoked = sharer.line("stderr")
        assert revoked.startswith("detached vusb-1"), revoked
        assert "not allowed by the server's USB policy" in revoked
        out, err = inside.communicate("\n", timeout=30)
        assert out.startswith("detached:"), out + err
        assert sharer.process.wait(timeout=10) == 1
    finally:
        with open(usb_server.config, "w", encoding="utf-8") as handle:
            handle.write(config)
        sharer.stop()


def test_unshare_takes_the_device_back(usb_server: Server, ursula: TestUser) -> None:
    sharer = Sharer(usb_server, ursula, "virtual:loopback")
    try:
        shared = sharer.line()
        assert shared.startswith("shared vusb-1"), shared + sharer.line("stderr")
        assert json.loads(driver(ursula, "list").stdout)[0]["busid"] == "vusb-1"
        taken = subprocess.run([SVCLIENT, "--server", usb_server.address, "--user", ursula.name, "usb", "unshare",
                                "virtual:loopback"], capture_output=True, text=True, timeout=30)  # fmt: skip
        assert taken.returncode == 0, taken.stderr
        assert f"stopped svclient pid {sharer.process.pid}" in taken.stdout
        sharer.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        listed = driver(ursula, "list")
        while time.monotonic() < deadline and listed.returncode == 0 and json.loads(listed.stdout):
            time.sleep(0.2)
            listed = driver(ursula, "list")
        assert listed.returncode != 0 or json.loads(listed.stdout) == [], listed.stdout
        again = subprocess.run([SVCLIENT, "--server", usb_server.address, "--user", ursula.name, "usb", "unshare",
                                "virtual:loopback"], capture_output=True, text=True, timeout=30)  # fmt: skip
        assert again.returncode == 2 and "not shared by a running svclient" in again.stderr
    finally:
        sharer.stop()
