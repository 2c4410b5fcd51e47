# The daemon's start as a user sees it (issue 15, start -> first pixels):
# sessiond binds its TLS port before its imports (sessiond/early_listen.py),
# so a client started together with it connects at once and waits in the
# kernel's queue until the daemon serves. What must hold: that client's login
# works and its app shows up as launched, whether or not the daemon has said
# "listening" yet; and a port in use is still one clear line and exit 2.
"""Integration: a client connecting while sessiond starts is served; a busy port is one clear error."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

import pytest

from svtest import VENV_BIN, Server, TestUser, free_port, start_sessiond, stop_sessiond, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]

# Seconds the daemon may take to bind its port on a loaded machine.
BIND_TIMEOUT = 20.0


def wait_for_port(port: int) -> None:
    """Returns once 127.0.0.1:PORT accepts a TCP connection (what a starting client sees)."""
    deadline = time.monotonic() + BIND_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=BIND_TIMEOUT).close()
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def test_a_client_started_with_the_daemon_logs_in_and_launches(user_factory: object, tmp_path: object) -> None:
    user: TestUser = user_factory("svt-dstart")  # type: ignore[operator]
    port = free_port()
    started: list[Server] = []
    starting = threading.Thread(target=lambda: started.append(start_sessiond(str(tmp_path), port=port)))
    starting.start()
    try:
        wait_for_port(port)
        # svclient needs only the address and its known-hosts file (start_sessiond's layout).
        early = Server("127.0.0.1", port, None, "", "", "", os.path.join(str(tmp_path), "known_hosts"), "")  # type: ignore[arg-type]
        launched = svclient(early, user, "launch", "xterm")
        starting.join()
        assert started, "sessiond did not start"
        assert launched.returncode == 0, launched.stderr + started[0].log()
        assert "launched xterm" in launched.stdout
    finally:
        starting.join()
        for server in started:
            stop_sessiond(server)


def test_a_port_in_use_is_one_clear_line_and_exit_2(tmp_path: object) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        config = os.path.join(str(tmp_path), "sessiond.conf")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(f"[server]\nlisten = 127.0.0.1:{port}\nstate_dir = {tmp_path}/state\n"
                         f"runtime_dir = {tmp_path}/run\n")  # fmt: skip
        done = subprocess.run([os.path.join(VENV_BIN, "sessiond"), "run", "--config", config],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "sessiond: cannot listen on 127.0.0.1: [Errno 98]" in done.stderr
    assert "(is another sessiond running, or the port in use?)" in done.stderr and "Traceback" not in done.stderr
