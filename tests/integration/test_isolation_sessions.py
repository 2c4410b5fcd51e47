# Two real users, each with a real session (sessiond + svclient + PAM + Xvfb +
# xterm), checked against the isolation promises of docs/security.md: what B
# can see and touch of A, what A's cgroup limits do to A and not to B, and
# that logoff leaves nothing of A behind. "Inside B's session" means a
# process entered into B's namespaces with B's credentials and no privileges.
"""Session sandboxes end to end: pid/mount/net isolation, cgroup limits, logoff."""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from svtest import Server, TestUser, start_sessiond, stop_sessiond, svclient
from test_warm_pool import X_UIDS

# What runs as a session's X uid: Xvfb and the keymap compiler it runs through a shell.
X_PROGRAM_NAMES = ("Xvfb", "xkbcomp", "sh")

pytestmark = [pytest.mark.integration, pytest.mark.root]

CGROUP = "/sys/fs/cgroup"
# A's per-user override: small enough that the hog and the fork bomb hit it fast.
A_MEMORY = 300 << 20
A_PIDS = 64
A_CPU_WEIGHT = 200  # twice the default share; B keeps the default 100
POLL_S = 0.1
WAIT_S = 30.0

OUTSIDE_PROBE = r"""
import ctypes, errno, json, os, signal, sys
pids = [int(p) for p in sys.argv[1:]]
out = {"kill": [], "ptrace": [], "environ": [], "root": []}
libc = ctypes.CDLL("libc.so.6", use_errno=True)
for pid in pids:
    try:
        os.kill(pid, signal.SIGTERM); out["kill"].append("sent")
    except OSError as exc:
        out["kill"].append(errno.errorcode[exc.errno])
    rc = libc.ptrace(16, pid, None, None)  # PTRACE_ATTACH
    out["ptrace"].append("attached" if rc == 0 else errno.errorcode[ctypes.get_errno()])
    for key, path in (("environ", f"/proc/{pid}/environ"), ("root", f"/proc/{pid}/root/tmp")):
        try:
            open(path, "rb").close() if key == "environ" else os.listdir(path)
            out[key].append("opened")
        except OSError as exc:
            out[key].append(errno.errorcode[exc.errno])
print(json.dumps(out))
"""

INSIDE_PROBE = r"""
import errno, json, os, socket, sys
marker = sys.argv[1]
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
owners = sorted({os.stat(f"/proc/{p}").st_uid for p in pids if os.path.exists(f"/proc/{p}")})
abstract = []
for n in range(10):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(f"\0/tmp/.X11-unix/X{n}"); abstract.append("connected")
    except OSError as exc:
        abstract.append(errno.errorcode[exc.errno])
    finally:
        s.close()
print(json.dumps({"pids": pids, "owners": owners, "abstract": abstract,
                  "tmp": os.path.exists(f"/tmp/{marker}"), "shm": os.path.exists(f"/dev/shm/{marker}"),
                  "var_tmp": os.path.exists(f"/var/tmp/{marker}"),
                  "hostname": socket.gethostname()}))
"""


def cgroup_dir(controller: str, session: str) -> str:
    return f"{CGROUP}/{controller}/sessiond/{session}"


def session_pids(session: str) -> list[int]:
    with open(f"{cgroup_dir('pids', session)}/cgroup.procs") as handle:
        return [int(p) for p in handle.read().split()]


def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as handle:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in handle)}


def agent_of(session: str) -> int:
    for pid in session_pids(session):
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            if b"sessiond.agent" in handle.read():
                return pid
    raise AssertionError(f"no agent in session {session}")


def as_user(user: str, argv: list[str], enter_pid: int | None = None) -> dict[str, object]:
    """Run argv as USER without privileges, inside ENTER_PID's namespaces if given."""
    prefix = ["nsenter", "-t", str(enter_pid), "-p", "-m", "-i", "-u", "-n", "--"] if enter_pid else []
    drop = ["setpriv", "--reuid", user, "--regid", str(pwd.getpwnam(user).pw_gid), "--init-groups",
            "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
    done = subprocess.run([*prefix, *drop, *argv], capture_output=True, text=True, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def wait_for(predicate: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def two(user_factory: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    a: TestUser = user_factory("svt-sbx-a")  # type: ignore[operator]
    b: TestUser = user_factory("svt-sbx-b")  # type: ignore[operator]
    extra = f"[limits]\nusers = {a.name}: memory_max={A_MEMORY} pids_max={A_PIDS} cpu_weight={A_CPU_WEIGHT}\n"
    server = start_sessiond(str(tmp_path_factory.mktemp("sbx")), extra=extra)
    try:
        ids = {}
        for user in (a, b):
            launched = svclient(server, user, "launch", "xterm")
            assert launched.returncode == 0, launched.stderr + server.log()
            login = svclient(server, user, "login")
            ids[user.name] = login.stdout.strip()
        ids["a"], ids["b"] = a.name, b.name
        server.users = {"a": a, "b": b}  # type: ignore[attr-defined]
        yield server, ids
    finally:
        stop_sessiond(server)


def test_every_process_runs_as_the_user_without_privileges(two: tuple[Server, dict[str, str]]) -> None:
    _server, ids = two
    for name in (ids["a"], ids["b"]):
        entry = pwd.getpwnam(name)
        pids = session_pids(ids[name])
        names = set()
        for pid in pids:
            fields = status(pid)
            names.add(fields["Name"])
            x_uid = int(fields["Uid"].split()[0])
            if x_uid in X_UIDS:  # a warm or early slot's pre-started X server (isolation/xslot.py)
                assert fields["Name"] in X_PROGRAM_NAMES, (pid, fields["Name"])
                assert fields["Uid"].split() == fields["Gid"].split() == [str(x_uid)] * 4, (pid, fields["Name"])
                assert int(fields["CapEff"], 16) == int(fields["CapPrm"], 16) == 1 << 15  # CAP_IPC_OWNER alone
                assert int(fields["CapBnd"], 16) == 1 << 15
            else:
                assert fields["Uid"].split() == [str(entry.pw_uid)] * 4, (pid, fields["Name"])
                assert fields["Gid"].split() == [str(entry.pw_gid)] * 4, (pid, fields["Name"])
                assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
            assert fields["NoNewPrivs"] == "1"
            assert fields["NSpid"].split()[-1] != fields["NSpid"].split()[0]  # in its own pid ns
        assert {"Xvfb", "xterm"} <= names, names


def test_b_cannot_see_signal_or_ptrace_a(two: tuple[Server, dict[str, str]]) -> None:
    _server, ids = two
    a_pids = session_pids(ids[ids["a"]])
    inside = as_user(ids["b"], ["/usr/bin/python3", "-c", INSIDE_PROBE, "none"], agent_of(ids[ids["b"]]))
    assert [uid for uid in inside["owners"] if uid not in X_UIDS] == [pwd.getpwnam(ids["b"]).pw_uid]  # type: ignore[union-attr]
    assert len([uid for uid in inside["owners"] if uid in X_UIDS]) <= 1  # type: ignore[union-attr]
    assert max(inside["pids"]) < min(a_pids)  # only B's own, small namespace pids  # type: ignore[type-var]
    ps = subprocess.run(["nsenter", "-t", str(agent_of(ids[ids["b"]])), "-p", "-m", "--",
                         "setpriv", "--reuid", ids["b"], "--regid", str(pwd.getpwnam(ids["b"]).pw_gid),
                         "--init-groups", "--", "ps", "-eo", "user="],
                        capture_output=True, text=True, timeout=30)  # fmt: skip
    assert {user for user in ps.stdout.split() if not (user.isdigit() and int(user) in X_UIDS)} == {ids["b"]}, ps.stdout
    outside = as_user(ids["b"], ["/usr/bin/python3", "-c", OUTSIDE_PROBE, *map(str, a_pids)])
    assert set(outside["kill"]) == {"EPERM"}  # type: ignore[arg-type]
    assert set(outside["ptrace"]) == {"EPERM"}  # type: ignore[arg-type]
    assert set(outside["environ"]) == {"EACCES"} and set(outside["root"]) == {"EACCES"}  # type: ignore[arg-type]


def test_b_cannot_reach_a_display_tmp_or_shm(two: tuple[Server, dict[str, str]]) -> None:
    _server, ids = two
    marker = f"svt-marker-{os.getpid()}"
    write = (f"open('/tmp/{marker}','w').write('a'); open('/dev/shm/{marker}','w').write('a'); "
             f"open('/var/tmp/{marker}','w').write('a'); print('{{}}')")
    as_user(ids["a"], ["/usr/bin/python3", "-c", write], agent_of(ids[ids["a"]]))
    seen_a = as_user(ids["a"], ["/usr/bin/python3", "-c", INSIDE_PROBE, marker], agent_of(ids[ids["a"]]))
    assert seen_a["tmp"] and seen_a["shm"] and seen_a["var_tmp"]  # the marker is really there, inside A
    seen_b = as_user(ids["b"], ["/usr/bin/python3", "-c", INSIDE_PROBE, marker], agent_of(ids[ids["b"]]))
    assert not seen_b["tmp"] and not seen_b["shm"] and not seen_b["var_tmp"]
    for shared in ("/tmp", "/dev/shm", "/var/tmp"):
        assert not os.path.exists(f"{shared}/{marker}"), shared
    # network = host: no session's X server has an abstract socket anyone could reach
    listening = subprocess.run(["ss", "-xlpH"], capture_output=True, text=True, check=True).stdout
    session_pids_all = set(session_pids(ids[ids["a"]])) | set(session_pids(ids[ids["b"]]))
    abstract_owners = {int(pid) for line in listening.splitlines() if "@/tmp/.X11-unix" in line
                       for pid in re.findall(r"pid=(\d+)", line)}  # fmt: skip
    assert not abstract_owners & session_pids_all, listening


def test_apps_cannot_connect_to_abstract_sockets_bound_outside_the_session(
        two: tuple[Server, dict[str, str]]) -> None:  # fmt: skip
    """Anyone on the host may bind "\\0/tmp/.X11-unix/X<N>", and X clients try that name
    before the socket file, so an impostor could receive a session's X connections.
    Landlock scoping (isolation/landlock.py) keeps the session's processes off every
    abstract socket bound outside it: the shell in B's xterm gets EPERM, the impostor
    nothing."""
    server, ids = two
    name = f"sessiond-test-impostor-{os.getpid()}"
    home = pwd.getpwnam(ids["b"]).pw_dir
    result = os.path.join(home, f"{name}.out")
    impostor = socket.socket(socket.AF_UNIX)
    try:
        impostor.bind(f"\0{name}")
        impostor.listen(8)
        impostor.setblocking(False)
        probe = (f"python3 -c \"import socket, errno; r = socket.socket(socket.AF_UNIX).connect_ex(chr(0) + "
                 f"'{name}'); open('{result}', 'w').write(errno.errorcode[r] if r else 'connected')\"")  # fmt: skip
        typed = svclient(server, server.users["b"], "type", probe)  # type: ignore[attr-defined]
        assert typed.returncode == 0, typed.stderr
        assert svclient(server, server.users["b"], "key", "Return").returncode == 0  # type: ignore[attr-defined]
        wait_for(lambda: os.path.exists(result), "the probe typed into B's xterm")
        with open(result) as handle:
            assert handle.read() == "EPERM"
        with pytest.raises(BlockingIOError):
            impostor.accept()
    finally:
        impostor.close()


def test_memory_hog_dies_in_a_and_b_keeps_working(two: tuple[Server, dict[str, str]]) -> None:
    server, ids = two
    users = server.users  # type: ignore[attr-defined]
    oom = f"{cgroup_dir('memory', ids[ids['a']])}/memory.oom_control"
    with open(f"{cgroup_dir('memory', ids[ids['a']])}/memory.limit_in_bytes") as handle:
        assert int(handle.read()) == A_MEMORY
    typed = svclient(server, users["a"], "type", "python3 -c \"b = b'x' * (1 << 30)\"")
    assert typed.returncode == 0, typed.stderr
    assert svclient(server, users["a"], "key", "Return").returncode == 0

    def oom_kills() -> int:
        with open(oom) as handle:
            return int(dict(line.split() for line in handle)["oom_kill"])

    wait_for(lambda: oom_kills() >= 1, "an OOM kill in A's cgroup")
    assert svclient(server, users["a"], "screenshot", os.devnull).returncode == 0  # A's session lives
    launched = svclient(server, users["b"], "launch", "xclock")
    assert launched.returncode == 0, launched.stderr


def test_fork_bomb_stops_at_a_pids_limit_and_b_is_unaffected(two: tuple[Server, dict[str, str]]) -> None:
    server, ids = two
    users = server.users  # type: ignore[attr-defined]
    pids_dir = cgroup_dir("pids", ids[ids["a"]])
    typed = svclient(server, users["a"], "type", "f(){ f|f& };f")
    assert typed.returncode == 0, typed.stderr
    assert svclient(server, users["a"], "key", "Return").returncode == 0

    def refused_forks() -> int:
        with open(f"{pids_dir}/pids.events") as handle:
            return int(handle.read().split()[1])

    wait_for(lambda: refused_forks() > 0, "A's fork bomb to hit pids.max")
    with open(f"{pids_dir}/pids.current") as handle:
        assert int(handle.read()) <= A_PIDS
    b_before = len(session_pids(ids[ids["b"]]))
    launched = svclient(server, users["b"], "launch", "xterm")
    assert launched.returncode == 0, launched.stderr
    assert len(session_pids(ids[ids["b"]])) > b_before


def test_cpu_is_shared_by_weight_and_not_capped_by_default(two: tuple[Server, dict[str, str]]) -> None:
    """The kernel holds each session's weight (v1 cpu.shares = weight * 1024 / 100)
    and no CFS quota: a session alone may use every idle core."""
    _server, ids = two

    def read(session: str, name: str) -> str:
        with open(f"{cgroup_dir('cpu', session)}/{name}") as handle:
            return handle.read().strip()

    a, b = ids[ids["a"]], ids[ids["b"]]
    assert (read(a, "cpu.shares"), read(b, "cpu.shares")) == (str(A_CPU_WEIGHT * 1024 // 100), "1024")
    assert read(a, "cpu.cfs_quota_us") == read(b, "cpu.cfs_quota_us") == "-1"


def test_the_sessions_parent_weighs_at_least_its_live_sessions(two: tuple[Server, dict[str, str]]) -> None:
    """Against root-level tasks all sessions together weigh the sum of their own
    weights (isolation.cgroup_tree), not one task's worth: with A (200) and B (100)
    live, the parent holds at least 2048 + 1024 shares. (Other sessions on the
    host, e.g. of other test runs, may add to it, never take from it.)"""
    _server, ids = two
    with open(f"{CGROUP}/cpu/sessiond/cpu.shares") as handle:
        parent = int(handle.read())
    own = 0
    for session in (ids[ids["a"]], ids[ids["b"]]):
        with open(f"{cgroup_dir('cpu', session)}/cpu.shares") as handle:
            own += int(handle.read())
    assert own == A_CPU_WEIGHT * 1024 // 100 + 1024
    assert parent >= own


def test_logoff_of_a_leaves_nothing_and_b_lives_on(two: tuple[Server, dict[str, str]]) -> None:
    server, ids = two
    users = server.users  # type: ignore[attr-defined]
    session = ids[ids["a"]]
    uid = pwd.getpwnam(ids["a"]).pw_uid
    done = svclient(server, users["a"], "logoff")
    assert done.returncode == 0, done.stderr + server.log()
    wait_for(lambda: not os.path.exists(cgroup_dir("pids", session)), "A's cgroup to be removed")
    for controller in ("memory", "pids", "cpu", "cpuacct", "freezer"):
        assert not os.path.exists(cgroup_dir(controller, session)), controller
    survivors = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                owner = os.stat(f"/proc/{name}").st_uid
                with open(f"/proc/{name}/cgroup") as handle:
                    in_cgroup = session in handle.read()
            except OSError:
                continue
            if owner == uid or in_cgroup:
                survivors.append(name)
    assert survivors == []
    assert svclient(server, users["b"], "screenshot", os.devnull).returncode == 0
