# Early slots through the real thing (sessiond/warm_pool.py): with the
# default `warm_pool = 0`, an AUTH spawns the root sandbox entry at once so
# that it starts while PAM checks the password. What a user and an admin
# would see: nothing is waiting before anyone logs in; a wrong password
# starts nothing as that user (the slot that AUTH spawned is root, with no
# child); the next good login is served by that slot, every one of its
# session's processes is that user's, and its xterm shows.
"""Integration: an AUTH's early sandbox entry serves the login, never runs as a user before PAM."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from svtest import Server, TestUser, start_sessiond, stop_sessiond, svclient
from test_warm_pool import SLOT_TIMEOUT, check_session_is_users, served_by, uids, waiting_slots

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_sessiond(str(tmp_path_factory.mktemp("sessiond-early")))  # defaults: warm_pool = 0
    yield started
    stop_sessiond(started)


def refuse_login(server: Server, user: TestUser, tmp: str) -> None:
    """USER logs in with a wrong password (a file under TMP) and is refused."""
    wrong = f"{tmp}/wrong-password"
    with open(wrong, "w", encoding="utf-8") as handle:
        handle.write(user.password + "-not\n")
    refused = svclient(server, user, "login", password_file=wrong)
    assert refused.returncode != 0 and "refused" in refused.stderr, refused.stderr


def test_a_failed_login_starts_nothing_as_the_user_and_its_slot_serves_the_next_login(
        server: Server, user_factory: object, tmp_path: object) -> None:  # fmt: skip
    mallory: TestUser = user_factory("svt-early-m")  # type: ignore[operator]
    bob: TestUser = user_factory("svt-early-b")  # type: ignore[operator]
    assert waiting_slots(server) == [], "warm_pool = 0: nothing waits before a login"
    refuse_login(server, mallory, str(tmp_path))
    deadline = time.monotonic() + SLOT_TIMEOUT
    while not waiting_slots(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    slots = waiting_slots(server)
    assert len(slots) == 1, "the AUTH spawned one sandbox entry\n" + server.log()
    assert uids(slots[0]) == {0}, "it is the root entry, as before any spec"
    running = subprocess.run(["pgrep", "-u", mallory.name], capture_output=True, text=True)
    assert not running.stdout.strip(), "a process of a user whose password was wrong"

    launched = svclient(server, bob, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + server.log()
    assert "launched xterm" in launched.stdout
    assert served_by(server, bob) == (slots[0], True), "bob's login takes the waiting entry"
    check_session_is_users(slots[0], bob)


def test_a_login_on_an_idle_server_is_served_by_its_own_early_slot(server: Server, user_factory: object) -> None:
    carol: TestUser = user_factory("svt-early-c")  # type: ignore[operator]
    assert waiting_slots(server) == []
    launched = svclient(server, carol, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + server.log()
    pid, warm = served_by(server, carol)
    assert warm, "the session started from the entry its AUTH spawned\n" + server.log()
    check_session_is_users(pid, carol)
    assert waiting_slots(server) == [], "warm_pool = 0: no slot is kept after the login"
