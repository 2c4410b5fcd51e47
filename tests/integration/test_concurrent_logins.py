# Twenty users log in at the same moment on this 2-core machine, each
# launching an xterm: every one of them must get a working session of their
# own (the launch returns only once the client has the window's first
# frame), with twenty distinct session ids. The distribution of login ->
# first frame is bench/bench_logins.py's job; this test asserts only what
# the users notice: nobody is refused, nobody shares a session.
"""Integration: 20 concurrent logins all get working, separate sessions."""

from __future__ import annotations

import os
import subprocess

import pytest

from svtest import VENV_BIN, Server, TestUser, sessionctl

pytestmark = [pytest.mark.integration, pytest.mark.root]

USERS = 20
# Generous: twenty sandboxes, X servers and xterms start on 2 cores at once.
LAUNCH_TIMEOUT = 180


def svclient_argv(server: Server, user: TestUser, *command: str) -> list[str]:
    return [os.path.join(VENV_BIN, "svclient"), "--server", server.address, "--user", user.name,
            "--password-file", user.password_file, "--known-hosts", server.known_hosts, "--no-resume",
            "--timeout", str(LAUNCH_TIMEOUT), *command]  # fmt: skip


def test_twenty_users_log_in_at_once(sessiond_server: Server, user_factory: object) -> None:
    users = [user_factory(f"svt-crowd-{i}") for i in range(USERS)]  # type: ignore[operator]
    # Pin the certificate once, so twenty first contacts do not race on known_hosts.
    first = subprocess.run(svclient_argv(sessiond_server, users[0], "login"), capture_output=True, text=True,
                           timeout=LAUNCH_TIMEOUT)  # fmt: skip
    assert first.returncode == 0, first.stderr
    crowd = [subprocess.Popen(svclient_argv(sessiond_server, user, "launch", "xterm"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for user in users]  # fmt: skip
    results = [(process.communicate(timeout=LAUNCH_TIMEOUT + 30), process.returncode) for process in crowd]
    failed = [(users[i].name, out, err) for i, ((out, err), code) in enumerate(results) if code != 0]
    assert not failed, f"{len(failed)} of {USERS} launches failed: {failed[:3]}\n{sessiond_server.log()[-3000:]}"
    assert all("launched xterm" in out for (out, _err), _code in results)
    ids = []
    for user in users:
        login = subprocess.run(svclient_argv(sessiond_server, user, "login"), capture_output=True, text=True,
                               timeout=LAUNCH_TIMEOUT)  # fmt: skip
        assert login.returncode == 0, login.stderr
        ids.append(login.stdout.strip())
    assert len(set(ids)) == USERS, ids
    listed = sessionctl(sessiond_server, "list")
    assert listed.returncode == 0, listed.stderr
    assert all(session in listed.stdout for session in ids)
    for user in users:  # end them: the module's server serves other tests
        subprocess.run(svclient_argv(sessiond_server, user, "logoff"), capture_output=True, timeout=60)
