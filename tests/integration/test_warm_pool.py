# The warm pool through the real thing: the installed sessiond with
# `[session] warm_pool = 1`, real PAM users, real namespaces and cgroups.
# Assertions are on what a user (or an admin looking at the host) would see:
# which process served the login, whose uid every session process has, what
# the session's /tmp holds, and that the pool is refilled for the next user.
"""Integration: a warm slot serves a login as the right user, with a fresh private /tmp."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from session_shell import agent_pid, in_session
from svtest import Server, TestUser, start_sessiond, stop_sessiond, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]

# Seconds a slot may take to appear (spawn + preload on a loaded 2-core VM).
SLOT_TIMEOUT = 30.0
STARTING_RE = re.compile(r"session (\w+) starting for (\S+) \(pid (\d+)(, warm sandbox[^)]*)?\)")
# [session] x_uids by default: the uids slots' pre-started X servers run as (sessiond/x_uids.py).
X_UIDS = range(1900000000, 1900009999 + 1)
# The programs of a session that run as its X uid: Xvfb and the keymap compiler it may run.
X_PROGRAMS = ("Xvfb", "xkbcomp", "/bin/sh")


def _stat(pid: int) -> tuple[int, list[str]]:
    """(ppid, cmdline words) of PID."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
        ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        words = handle.read().rstrip(b"\0").decode("utf-8", "replace").split("\0")
    return ppid, words


def uids(pid: int) -> set[int]:
    """Real, effective, saved and filesystem uids of PID."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        line = next(line for line in handle if line.startswith("Uid:"))
    return {int(value) for value in line.split()[1:]}


def children() -> dict[int, list[int]]:
    """Every process's children, from /proc now."""
    found: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                found.setdefault(_stat(int(name))[0], []).append(int(name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def descendants(pid: int, tree: dict[int, list[int]] | None = None) -> list[int]:
    tree = children() if tree is None else tree
    below = list(tree.get(pid, []))
    for child in list(below):
        below += descendants(child, tree)
    return below


def _as_root_or_x(pid: int) -> bool:
    try:
        return all(uid == 0 or uid in X_UIDS for uid in uids(pid))
    except (OSError, StopIteration):
        return True  # ended meanwhile


def _is_slot(pid: int, tree: dict[int, list[int]]) -> bool:
    """A zygote entry, or (a slot with a pre-started X server, isolation/xslot.py) the supervisor
    waiter of one, which it exec'd as soon as it forked the slot's init."""
    try:
        words = _stat(pid)[1]
        if "isolation.enter" in words and "--zygote" in words:
            return True
        below = tree.get(pid, [])
        return "supervise" in words and len(below) == 1 and "--x-slot" in _stat(below[0])[1]
    except (OSError, ValueError, IndexError):
        return False


def waiting_slots(server: Server) -> list[int]:
    """sessiond's children that are zygotes no session claimed: nothing below them runs as a user
    (a slot with a pre-started X server has its root init and its Xvfb, as an X uid, below it)."""
    tree = children()
    return [pid for pid in tree.get(server.process.pid, [])
            if _is_slot(pid, tree) and all(map(_as_root_or_x, descendants(pid, tree)))]  # fmt: skip


def wait_for_slot(server: Server, not_pid: int = 0) -> int:
    deadline = time.monotonic() + SLOT_TIMEOUT
    while time.monotonic() < deadline:
        slots = [pid for pid in waiting_slots(server) if pid != not_pid]
        if slots:
            return slots[0]
        time.sleep(0.1)
    raise AssertionError("no warm slot is waiting\n" + server.log())


def served_by(server: Server, user: TestUser) -> tuple[int, bool]:
    """(the pid sessiond started USER's session with, whether it was a warm sandbox), from its log."""
    for match in STARTING_RE.finditer(server.log()):
        if match.group(2) == user.name:
            return int(match.group(3)), bool(match.group(4))
    raise AssertionError(f"no session started for {user.name}\n" + server.log())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_sessiond(str(tmp_path_factory.mktemp("sessiond-warm")), session="warm_pool = 1\n")
    yield started
    stop_sessiond(started)


def check_session_is_users(slot: int, user: TestUser) -> int:
    """Every process of USER's session below SLOT runs as USER; returns the agent's pid."""
    uid = pwd.getpwnam(user.name).pw_uid
    agent = agent_pid(user.name)
    init, _words = _stat(agent)
    assert _stat(init)[0] == slot, "the agent does not descend from the warm slot that served the login"
    assert uids(agent) == {uid} and uids(init) == {uid}, (uids(agent), uids(init))
    seen = in_session(user, "ps", "-eo", "uid=,args=")
    assert seen.returncode == 0, seen.stderr  # type: ignore[union-attr]
    rows = [line.split(None, 1) for line in seen.stdout.decode().splitlines() if line.strip()]  # type: ignore[union-attr]
    users = {int(row[0]) for row in rows if not row[1].startswith(X_PROGRAMS)}
    x_server = {int(row[0]) for row in rows if row[1].startswith(X_PROGRAMS)}
    assert rows and users == {uid}, f"processes of other users in the session: {rows}"
    assert all(x_uid in X_UIDS or x_uid == uid for x_uid in x_server), f"the X server runs as another's uid: {rows}"
    return agent


def test_a_warm_slot_serves_one_login_as_that_user_and_the_pool_refills(server: Server,
                                                                      user_factory: object) -> None:
    alice: TestUser = user_factory("svt-warm-a")  # type: ignore[operator]
    bob: TestUser = user_factory("svt-warm-b")  # type: ignore[operator]
    slot = wait_for_slot(server)
    assert uids(slot) == {0}, "a waiting slot is the root sandbox entry, as before a cold start"
    for user in (alice, bob):
        before = subprocess.run(["pgrep", "-u", user.name], capture_output=True, text=True)
        assert not before.stdout.strip(), "a user's process exists before login"

    launched = svclient(server, alice, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + server.log()
    assert served_by(server, alice) == (slot, True)
    check_session_is_users(slot, alice)
    listed = in_session(alice, "ls", "-A", "/tmp", "/dev/shm", "/var/tmp")
    assert listed.returncode == 0, listed.stderr  # type: ignore[union-attr]
    names = set(listed.stdout.decode().split()) - {"/tmp:", "/dev/shm:", "/var/tmp:"}  # type: ignore[union-attr]
    assert names <= {".X11-unix", ".X0-lock", ".X1-lock"}, f"left over in a fresh session: {names}"
    marked = in_session(alice, "sh", "-c", "echo secret > /tmp/alice-was-here && echo x > /dev/shm/alice-shm")
    assert marked.returncode == 0, marked.stderr  # type: ignore[union-attr]

    refill = wait_for_slot(server, not_pid=slot)
    assert refill != slot and uids(refill) == {0}

    launched = svclient(server, bob, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + server.log()
    assert served_by(server, bob) == (refill, True), "bob's login should take the refilled slot"
    check_session_is_users(refill, bob)
    listed = in_session(bob, "ls", "-A", "/tmp", "/dev/shm")
    assert listed.returncode == 0, listed.stderr  # type: ignore[union-attr]
    assert b"alice" not in listed.stdout, listed.stdout  # type: ignore[union-attr]
    # Alice's session is untouched by bob's: her marker is still hers, in her /tmp only.
    kept = in_session(alice, "cat", "/tmp/alice-was-here")
    assert kept.stdout == b"secret\n"  # type: ignore[union-attr]
    assert os.stat(f"/proc/{agent_pid(alice.name)}").st_uid == pwd.getpwnam(alice.name).pw_uid
    wait_for_slot(server, not_pid=refill)  # and the pool is full again
