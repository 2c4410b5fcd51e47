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


def _default_sigint() -> None:
    """Ctrl-C as at a terminal: a test run started in the background (`cmd &` in a script) inherits
    SIGINT ignored, Python then keeps it ignored and Twisted installs no handler, so the demo never
    saw the test's Ctrl-C (it failed so in two clean-clone runs, never at a terminal)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_demo_creates_user_serves_and_stops_cleanly(tmp_path: object) -> None:
    existed = True
    try:
        pwd.getpwnam("svdemo")
    except KeyError:
        existed = False
    state = os.path.join(str(tmp_path), "demo")
    port = free_port()
    # Its output goes to a file, not a pipe: nobody reads a pipe after the start-up lines, and the
    # daemon's log filled one (64 KiB) under load, so the demo blocked writing and never stopped.
    log_path = os.path.join(str(tmp_path), "demo.log")
    with open(log_path, "w", encoding="utf-8") as log:
        demo = subprocess.Popen([os.path.join(VENV_BIN, "python"), "-m", "sessiond.demo", "--port", str(port),
                                 "--state-dir", state, "--apps", os.path.join(REPO, "conf", "apps")],
                                stdout=log, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=_default_sigint)  # fmt: skip
    try:
        output = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and demo.poll() is None and "sessiond listening on" not in output:
            time.sleep(0.2)
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                output = handle.read()
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
        try:
            assert demo.wait(timeout=20) == 0
        except subprocess.TimeoutExpired:
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                raise AssertionError(f"the demo did not stop within 20 s of Ctrl-C:\n{handle.read()[-4000:]}") from None
        left = subprocess.run(["pgrep", "-u", "svdemo"], capture_output=True, text=True).stdout.split()
        assert left == [], f"processes of svdemo still running: {left}"
    finally:
        if demo.poll() is None:
            demo.kill()
        if not existed:
            remove_user("svdemo")
