# The agent's link socket (issue 12 item 8), against a real session: a stray
# connection to it -- from root without the link token, or from the session's
# own user -- must never cost the working link to sessiond, and so never the
# session. Before, the agent dropped its authenticated link as soon as any
# new connection reached its socket.
"""Integration: stray connections to the agent socket leave the session working."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from protocol.frames import encode_frame
from protocol.messages import Hello
from svtest import Server, TestUser, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]

HELLO = encode_frame(0, Hello.TYPE, Hello(version=1, capabilities=(), software="stray").encode())


@pytest.fixture(scope="module")
def lina(user_factory: object) -> TestUser:
    return user_factory("svt-link-l")  # type: ignore[operator, no-any-return]


def still_works(server: Server, user: TestUser, session: str) -> None:
    again = svclient(server, user, "login")
    assert again.returncode == 0 and again.stdout.strip() == session, again.stderr + server.log()[-2000:]
    assert svclient(server, user, "type", "true").returncode == 0


def test_stray_connections_to_the_agent_socket_cost_nothing(sessiond_server: Server, lina: TestUser) -> None:
    launched = svclient(sessiond_server, lina, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr
    session = svclient(sessiond_server, lina, "login").stdout.strip()
    path = os.path.join(sessiond_server.runtime_dir, "sessions", session, "agent.sock")
    assert os.path.exists(path)
    # 1. root, never authenticating: held open while the user works on.
    with socket.socket(socket.AF_UNIX) as stray:
        stray.connect(path)
        stray.sendall(HELLO)
        time.sleep(0.5)
        still_works(sessiond_server, lina, session)
    # 2. the session's own user: refused by the agent (SO_PEERCRED), the session goes on.
    probe = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
             "s.settimeout(5); print('eof' if s.recv(100) == b'' else 'data')")  # fmt: skip
    as_lina = ["setpriv", f"--reuid={lina.name}", f"--regid={lina.name}", "--init-groups"]
    done = subprocess.run([*as_lina, "/usr/bin/python3", "-c", probe, path], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.stdout.strip() == "eof" or "Permission denied" in done.stderr, done.stdout + done.stderr
    still_works(sessiond_server, lina, session)
    assert sessiond_server.alive()
