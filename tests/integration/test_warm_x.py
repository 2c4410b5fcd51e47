# Pre-started X servers in warm and early slots (isolation/xslot.py) through
# the real thing: the installed sessiond, real PAM users, real namespaces,
# cgroups and Xvfb. What an admin or a user would see: the slot's Xvfb is
# running before anyone logs in and is the very server the session then uses;
# it runs as a uid of the reserved range with CAP_IPC_OWNER only, inside the
# session's cgroup and PID namespace; every other process is the user's; an
# X client's 0600 MIT-SHM segment works; two sessions get two uids, and an
# ended session's uid is taken again; a slot whose X server dies while it
# waits is replaced; an x_uids range that overlaps an account gives slots
# without X (one log line); an exhausted range too. On cgroup v1 a slot waits
# in a cgroup of its own that its login renames to the session's (with the
# session's limits written), and a dead slot's cgroup is removed.
"""Integration: warm and early slots start the session's X server before the login, as an X uid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from isolation.cgroups import PARENT, CgroupV1, detect_backend

from session_shell import agent_pid, in_session
from test_early_slot import refuse_login
from svtest import VENV_BIN, Server, TestUser, start_sessiond, stop_sessiond, svclient
from test_warm_pool import (
    SLOT_TIMEOUT,
    STARTING_RE,
    X_UIDS,
    _stat,
    check_session_is_users,
    descendants,
    served_by,
    uids,
    wait_for_slot,
)

pytestmark = [pytest.mark.integration, pytest.mark.root]

CAP_IPC_OWNER_MASK = 1 << 15
# An X client of the session's own that captures through MIT-SHM with a 0600 segment
# (sessiond.agent.xshm: shmget mode 0600, then XShmAttach: Xvfb shmat()s it as the X uid).
SHM_PROBE = ("import os, sys; from sessiond.agent.xshm import ShmCapture, SHM_MODE; "
             "c = ShmCapture(os.environ['DISPLAY']); frame = c.capture(); "
             "print(oct(SHM_MODE), len(frame))")  # fmt: skip


def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        return {key: value.strip() for key, _, value in (line.partition(":") for line in handle)}


def x_servers(slot: int) -> list[int]:
    """The Xvfb processes below SLOT, not counting an Xvfb's own child (the fork that runs
    xkbcomp while the server starts has Xvfb's name until it execs)."""
    stats = {}
    for pid in descendants(slot):
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            stats[pid] = _stat(pid)
    found = [pid for pid, (_ppid, words) in stats.items() if words[0] == "Xvfb"]
    return [pid for pid in found if stats[pid][0] not in found]


def x_server_of(slot: int) -> int:
    """The Xvfb below SLOT (a waiting slot or a session's supervisor)."""
    found = x_servers(slot)
    assert len(found) == 1, f"Xvfb processes below {slot}: {found}"
    return found[0]


def wait_x_server(slot: int) -> int:
    """The Xvfb below SLOT once it runs (a slot starts it right after its spawn)."""
    deadline = time.monotonic() + SLOT_TIMEOUT
    while not x_servers(slot) and time.monotonic() < deadline:
        time.sleep(0.1)
    return x_server_of(slot)


def wait_slot_ready(slot: int) -> int:
    """SLOT's Xvfb once the slot waits for its spec with the server up (the slot holds a pidfd
    on it only then, isolation/ops.py spec_before_x_exit): killing the server earlier is a failed
    start, not a death while waiting."""
    xvfb = wait_x_server(slot)
    deadline = time.monotonic() + SLOT_TIMEOUT
    while time.monotonic() < deadline:
        for pid in descendants(slot):
            with contextlib.suppress(OSError):
                links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
                if "anon_inode:[pidfd]" in links:
                    return xvfb
        time.sleep(0.05)
    raise AssertionError(f"slot {slot} does not wait for a login with its X server up")


def check_x_server(xvfb: int, user: TestUser) -> int:
    """Xvfb runs as one X uid with CAP_IPC_OWNER only, in the session's cgroup and PID namespace."""
    fields = status(xvfb)
    ids = {int(value) for value in fields["Uid"].split()}
    assert len(ids) == 1 and ids <= set(X_UIDS), fields["Uid"]
    x_uid = ids.pop()
    assert {int(value) for value in fields["Gid"].split()} == {x_uid}
    assert fields["Groups"] == ""
    for name in ("CapEff", "CapPrm", "CapAmb", "CapBnd", "CapInh"):
        assert int(fields[name], 16) == CAP_IPC_OWNER_MASK, (name, fields[name])
    assert fields["NoNewPrivs"] == "1"
    agent = agent_pid(user.name)
    assert os.readlink(f"/proc/{xvfb}/ns/pid") == os.readlink(f"/proc/{agent}/ns/pid")
    with open(f"/proc/{xvfb}/cgroup", encoding="ascii") as mine, open(f"/proc/{agent}/cgroup", encoding="ascii") as its:
        assert mine.read() == its.read(), "Xvfb is not in the session's cgroup"
    return x_uid


def check_user_sees_the_app(server: Server, user: TestUser, shot: str) -> None:
    taken = svclient(server, user, "screenshot", shot)
    assert taken.returncode == 0, taken.stderr
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 16)
        area = rgb.width * rgb.height
    # xterm's window: its white background (and black text) on the black screen.
    assert colours is not None and dict((c, n) for n, c in colours).get((255, 255, 255), 0) > area // 100, \
        f"the client's screen shows no xterm: {sorted(colours or [])[-3:]}"


def check_mit_shm(user: TestUser) -> None:
    probe = in_session(user, f"{VENV_BIN}/python", "-c", SHM_PROBE)
    assert probe.returncode == 0, probe.stderr  # type: ignore[union-attr]
    assert probe.stdout.split()[0] == b"0o600", probe.stdout  # type: ignore[union-attr]


def cgroup_paths(pid: int) -> dict[str, str]:
    """PID's cgroup per hierarchy (controller -> path), from /proc/PID/cgroup."""
    paths = {}
    with open(f"/proc/{pid}/cgroup", encoding="ascii") as handle:
        for line in handle:
            _number, _sep, rest = line.strip().partition(":")
            controllers, _sep, path = rest.partition(":")
            for controller in controllers.split(","):
                paths[controller] = path
    return paths


def session_id_of(server: Server, user: TestUser) -> str:
    for match in STARTING_RE.finditer(server.log()):
        if match.group(2) == user.name:
            return match.group(1)
    raise AssertionError(f"no session started for {user.name}\n" + server.log())


def read_cgroup(controller: str, name: str, knob: str) -> str:
    with open(f"/sys/fs/cgroup/{controller}/{PARENT}/{name}/{knob}", encoding="ascii") as handle:
        return handle.read().strip()


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_sessiond(str(tmp_path_factory.mktemp("sessiond-warm-x")), session="warm_pool = 1\n")
    yield started
    stop_sessiond(started)


def test_a_warm_slots_x_server_runs_before_the_login_and_serves_the_session(
        warm: Server, user_factory: object, tmp_path: object) -> None:  # fmt: skip
    alice: TestUser = user_factory("svt-wx-a")  # type: ignore[operator]
    bob: TestUser = user_factory("svt-wx-b")  # type: ignore[operator]
    carol: TestUser = user_factory("svt-wx-c")  # type: ignore[operator]
    slot = wait_for_slot(warm)
    xvfb = wait_x_server(slot)
    started = _stat(xvfb)
    launched = svclient(warm, alice, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + warm.log()
    assert "warm sandbox with its X server" in warm.log()
    assert served_by(warm, alice) == (slot, True)
    assert x_server_of(slot) == xvfb and _stat(xvfb) == started, "the session's Xvfb is the one started before"
    check_session_is_users(slot, alice)
    alice_x = check_x_server(xvfb, alice)
    check_mit_shm(alice)
    check_user_sees_the_app(warm, alice, f"{tmp_path}/alice.png")
    listed = in_session(alice, "ls", "-A", "/tmp", "/tmp/.X11-unix", "/dev/shm", "/var/tmp")
    names = set(listed.stdout.decode().split()) - {"/tmp:", "/tmp/.X11-unix:", "/dev/shm:", "/var/tmp:"}  # type: ignore[union-attr]
    assert names <= {".X11-unix", ".X0-lock", "X0"}, f"a fresh session's /tmp holds {names}"

    refill = wait_for_slot(warm, not_pid=slot)
    launched = svclient(warm, bob, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + warm.log()
    assert served_by(warm, bob) == (refill, True)
    bob_x = check_x_server(wait_x_server(refill), bob)
    assert bob_x != alice_x, "two sessions share an X uid"

    # Alice leaves: once her sandbox is gone her uid is free, and the next slot spawned takes it
    # (the one waiting now was spawned while she ran; a third login takes it first).
    third = wait_for_slot(warm, not_pid=refill)
    assert int(status(wait_x_server(third))["Uid"].split()[0]) not in (alice_x, bob_x)
    ended = svclient(warm, alice, "logoff")
    assert ended.returncode == 0, ended.stderr
    deadline = time.monotonic() + SLOT_TIMEOUT
    while os.path.exists(f"/proc/{xvfb}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{xvfb}"), "alice's X server outlived her session"
    launched = svclient(warm, carol, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + warm.log()
    assert served_by(warm, carol) == (third, True)
    fourth = wait_for_slot(warm, not_pid=third)
    assert int(status(wait_x_server(fourth))["Uid"].split()[0]) == alice_x, "an ended session's X uid is not reused"


def test_a_slot_waits_in_a_cgroup_of_its_own_that_its_login_renames_to_the_sessions(
        warm: Server, user_factory: object) -> None:  # fmt: skip
    # What an admin sees in /sys/fs/cgroup: a waiting slot's X server (and the slot) in a cgroup
    # sessiond/slot-*, without limits and billed its memory; after the login the very same
    # cgroup is the session's, with the session's limits, and no slot cgroup is left. The login
    # moved no process (a join waits for an RCU grace period; isolation/slot_cgroup.py). On a
    # v2 host the kernel renames no cgroup: slots wait where sessiond runs and join at the login.
    hana: TestUser = user_factory("svt-wx-h")  # type: ignore[operator]
    slot = wait_for_slot(warm)
    xvfb = wait_x_server(slot)
    v1 = isinstance(detect_backend(), CgroupV1)
    before = cgroup_paths(xvfb)
    if v1:
        name = before["memory"].rpartition("/")[2]
        assert before["memory"] == f"/{PARENT}/{name}" and name.startswith("slot-"), before
        assert {before[c] for c in ("memory", "pids", "cpu")} == {f"/{PARENT}/{name}"}, before
        assert cgroup_paths(slot)["memory"] != before["memory"], "the slot's supervisor stays outside"
        assert read_cgroup("pids", name, "pids.max") == "max", "a slot cgroup has no limits before its user is known"
        assert int(read_cgroup("memory", name, "memory.usage_in_bytes")) > 1 << 20, "the slot's memory is not billed"
    else:
        assert f"/{PARENT}/" not in before.get("", ""), before
    launched = svclient(warm, hana, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + warm.log()
    assert served_by(warm, hana) == (slot, True)
    session = session_id_of(warm, hana)
    after = cgroup_paths(xvfb)
    assert {after[c] for c in ("memory", "pids")} == {f"/{PARENT}/{session}"}, after
    assert cgroup_paths(agent_pid(hana.name)) == after, "the agent and the X server are in one cgroup"
    assert read_cgroup("pids", session, "pids.max") == "1024", "the session's limit (pids_max) is not written"
    assert int(read_cgroup("memory", session, "memory.limit_in_bytes")) == 2 << 30
    if v1:
        assert not os.path.exists(f"/sys/fs/cgroup/memory/{PARENT}/{name}"), "the slot cgroup is left behind"
    ended = svclient(warm, hana, "logoff")
    assert ended.returncode == 0, ended.stderr


def test_a_slot_whose_x_server_dies_while_it_waits_is_replaced_and_the_login_still_works(
        warm: Server, user_factory: object, tmp_path: object) -> None:  # fmt: skip
    gina: TestUser = user_factory("svt-wx-g")  # type: ignore[operator]
    slot = wait_for_slot(warm)
    xvfb = wait_slot_ready(slot)
    waiting_in = cgroup_paths(xvfb)["pids"]
    os.kill(xvfb, signal.SIGKILL)  # the OOM killer, an admin's kill
    deadline = time.monotonic() + SLOT_TIMEOUT
    while os.path.exists(f"/proc/{slot}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{slot}"), "a slot without its X server still waits for a login"
    assert "the slot's X server exited before the login" in warm.log()
    if waiting_in.rpartition("/")[2].startswith("slot-"):  # removed once sessiond has reaped the slot
        deadline = time.monotonic() + SLOT_TIMEOUT
        while os.path.exists(f"/sys/fs/cgroup/pids{waiting_in}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/sys/fs/cgroup/pids{waiting_in}"), "a dead slot's cgroup is left behind"
    refill = wait_for_slot(warm, not_pid=slot)
    wait_x_server(refill)
    launched = svclient(warm, gina, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + warm.log()
    assert served_by(warm, gina) == (refill, True)
    check_user_sees_the_app(warm, gina, f"{tmp_path}/gina.png")


@pytest.fixture(scope="module")
def early(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_sessiond(str(tmp_path_factory.mktemp("sessiond-early-x")))  # warm_pool = 0: early slots
    yield started
    stop_sessiond(started)


def test_an_early_slot_refused_once_serves_the_next_user_with_its_x_server(
        early: Server, user_factory: object, tmp_path: object) -> None:  # fmt: skip
    mallory: TestUser = user_factory("svt-ex-m")  # type: ignore[operator]
    carol: TestUser = user_factory("svt-ex-c")  # type: ignore[operator]
    refuse_login(early, mallory, str(tmp_path))
    slot = wait_for_slot(early)
    assert uids(slot) == {0}
    xvfb = wait_x_server(slot)
    started = _stat(xvfb)
    assert not subprocess.run(["pgrep", "-u", mallory.name], capture_output=True, text=True).stdout.strip()

    launched = svclient(early, carol, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + early.log()
    assert served_by(early, carol) == (slot, True)
    assert _stat(xvfb) == started, "carol's session uses the X server the refused login's slot started"
    check_session_is_users(slot, carol)
    check_x_server(xvfb, carol)
    check_mit_shm(carol)
    check_user_sees_the_app(early, carol, f"{tmp_path}/carol.png")
    listed = in_session(carol, "ls", "-A", "/tmp", "/dev/shm", "/var/tmp")
    names = set(listed.stdout.decode().split()) - {"/tmp:", "/dev/shm:", "/var/tmp:"}  # type: ignore[union-attr]
    assert names <= {".X11-unix", ".X0-lock"}, f"the session's /tmp holds more than the X server's: {names}"


def test_a_range_overlapping_an_account_gives_slots_without_x(tmp_path_factory: pytest.TempPathFactory,
                                                                user_factory: object) -> None:  # fmt: skip
    dave: TestUser = user_factory("svt-ox-d")  # type: ignore[operator]
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond-overlap")),
                            session="warm_pool = 1\nx_uids = 1-1000\n")  # fmt: skip
    try:
        slot = wait_for_slot(server)
        time.sleep(1.0)  # a slot with X would have its Xvfb by now (it starts before the preload)
        assert descendants(slot) == [], "a slot started an X server with an overlapping range"
        assert server.log().count("[session] x_uids = 1-1000 is not free") == 1, server.log()
        launched = svclient(server, dave, "launch", "xterm")
        assert launched.returncode == 0, launched.stderr + server.log()
        assert served_by(server, dave) == (slot, True)
    finally:
        stop_sessiond(server)


def test_an_exhausted_range_gives_slots_without_x(tmp_path_factory: pytest.TempPathFactory,
                                                  user_factory: object) -> None:  # fmt: skip
    erin: TestUser = user_factory("svt-nx-e")  # type: ignore[operator]
    frank: TestUser = user_factory("svt-nx-f")  # type: ignore[operator]
    first = X_UIDS[-1]
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond-one-uid")),
                            session=f"warm_pool = 1\nx_uids = {first}-{first}\n")  # fmt: skip
    try:
        slot = wait_for_slot(server)
        launched = svclient(server, erin, "launch", "xterm")
        assert launched.returncode == 0, launched.stderr + server.log()
        assert check_x_server(x_server_of(slot), erin) == first
        refill = wait_for_slot(server, not_pid=slot)
        time.sleep(1.0)
        assert descendants(refill) == [], "the only X uid is erin's: the next slot has no X server"
        assert "every uid of [session] x_uids is in use" in server.log()
        launched = svclient(server, frank, "launch", "xterm")
        assert launched.returncode == 0, launched.stderr + server.log()
        assert served_by(server, frank) == (refill, True)
        check_session_is_users(refill, frank)
        assert not [pid for pid in descendants(refill) if uids(pid) & set(X_UIDS)]
    finally:
        stop_sessiond(server)
