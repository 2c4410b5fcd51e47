# `make demo` as a user meets it: the demo user and its 0600 password file,
# the printed address, a working login with that password, and a clean stop
# on Ctrl-C that leaves no session process behind.
"""The demo launcher (what `make demo` runs after installing)."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time

import pytest

from svtest import REPO, VENV_BIN, free_port, remove_user

pytestmark = [pytest.mark.integration, pytest.mark.root]


def test_demo_creates_user_serves_and_stops_cleanly(tmp_path: object) -> None:
    existed = True
    try:
        pwd.getpwnam("svdemo")
    except KeyError:
        existed = False
    state = os.path.join(str(tmp_path), "demo")
    port = free_port()
    demo = subprocess.Popen([os.path.join(VENV_BIN, "python"), "-m", "sessiond.demo", "--port", str(port),
                             "--state-dir", state, "--apps", os.path.join(REPO, "conf", "apps")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and demo.stdout is not None:
            line = demo.stdout.readline()
            lines.append(line)
            if "sessiond listening on" in line or not line:
                break
        output = "".join(lines)
        assert f"127.0.0.1:{port}" in output and "svdemo" in output, output
        password_file = os.path.join(state, "demo-password")
        assert f"password file: {password_file}" in output
        assert os.stat(password_file).st_mode & 0o777 == 0o600
        client = [os.path.join(VENV_BIN, "svclient"), "--server", f"127.0.0.1:{port}", "--user", "svdemo",
                  "--password-file", password_file, "--known-hosts", os.path.join(str(tmp_path), "kh"),
                  "--token-dir", os.path.join(str(tmp_path), "tokens")]  # fmt: skip
        launched = subprocess.run([*client, "launch", "xterm"], capture_output=True, text=True, timeout=60)
        assert launched.returncode == 0, launched.stderr
        listed = subprocess.run([*client, "apps"], capture_output=True, text=True, timeout=60)
        assert "xterm" in listed.stdout
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        assert demo.wait(timeout=20) == 0
        left = subprocess.run(["pgrep", "-u", "svdemo"], capture_output=True, text=True).stdout.split()
        assert left == [], f"processes of svdemo still running: {left}"
    finally:
        if demo.poll() is None:
            demo.kill()
        if not existed:
            remove_user("svdemo")
