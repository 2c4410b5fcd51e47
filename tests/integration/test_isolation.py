"""Real sandboxes: real users (useradd), real namespaces and mounts, as root.

Each test starts /opt/sessiond/venv/bin/python -c PROBE as a test user
through spawn_sandboxed and asserts on what the probe saw from inside.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from isolation.accounts import Account, lookup_account
from isolation.launcher import enter_argv, enter_env, spawn_sandboxed
from isolation.spec import SandboxSpec, to_json
from svtest import VENV_BIN, user_name

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, useradd)"),
    pytest.mark.skipif(shutil.which("useradd") is None, reason="needs useradd"),
]

PYTHON = os.path.join(VENV_BIN, "python")
USER_A, USER_B, GROUP = user_name("svt-iso-a"), user_name("svt-iso-b"), user_name("svt-iso-g")
# Generous bound for a sandbox start plus a tiny probe on a loaded 2-core VM.
TIMEOUT_S = 60

PROBE = r"""
import json, os, stat, sys
marker = sys.argv[1]
out = {}
out["resuid"] = list(os.getresuid())
out["resgid"] = list(os.getresgid())
out["groups"] = sorted(os.getgroups())
with open("/proc/self/status") as f:
    fields = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
out["status"] = {k: v.strip() for k, v in fields.items()
                 if k.startswith("Cap") or k == "NoNewPrivs"}
try:
    os.setuid(0)
    out["setuid0"] = "succeeded"
except PermissionError:
    out["setuid0"] = "EPERM"
for d in ("/tmp", "/dev/shm", os.environ["XDG_RUNTIME_DIR"]):
    with open(os.path.join(d, marker), "w") as f:
        f.write("inside")
st = os.stat("/tmp/.X11-unix")
out["x11"] = [st.st_uid, stat.S_IMODE(st.st_mode)]
rd = os.environ["XDG_RUNTIME_DIR"]
st = os.stat(rd)
out["runtime"] = [rd, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)]
out["tmp"] = sorted(os.listdir("/tmp"))
out["env"] = dict(os.environ)
out["cwd"] = os.getcwd()
out["umask"] = os.umask(0)
print(json.dumps(out), flush=True)
if len(sys.argv) > 2:          # hold the sandbox open until fd argv[2] hits EOF
    os.read(int(sys.argv[2]), 1)
"""


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=TIMEOUT_S)


def _remove_users() -> None:
    for user in (USER_A, USER_B):
        subprocess.run(["userdel", "-r", user], capture_output=True, timeout=TIMEOUT_S)
    subprocess.run(["groupdel", GROUP], capture_output=True, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def users() -> Iterator[tuple[Account, Account]]:
    _remove_users()  # leftovers of an interrupted run
    _run(["groupadd", GROUP])
    _run(["useradd", "-m", "-s", "/bin/sh", "-G", GROUP, USER_A])
    _run(["useradd", "-m", "-s", "/bin/sh", USER_B])
    accounts = lookup_account(USER_A), lookup_account(USER_B)
    try:
        yield accounts
    finally:
        _remove_users()
        for account in accounts:  # the empty host mount points enter.py made
            with contextlib.suppress(OSError):
                os.rmdir(f"/run/user/{account.uid}")


def _spec(account: Account, marker: str, *extra: str, **changes: Any) -> SandboxSpec:
    fields: dict[str, Any] = {
        "account": account,
        "session_id": f"it-{marker[:20]}",
        "argv": (PYTHON, "-c", PROBE, marker, *extra),
        # LANG set: else the probe's Python would add LC_CTYPE itself (PEP 538).
        "env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "SESSIOND_TEST": "1"},
    }
    fields.update(changes)
    return SandboxSpec(**fields)


def _probe(spec: SandboxSpec) -> tuple[dict[str, Any], str]:
    proc = spawn_sandboxed(spec, python=PYTHON, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result, err.decode()


def _marker() -> str:
    return f"svt-iso-{uuid.uuid4().hex}"


def test_credentials_capabilities_and_no_way_back(
        users: tuple[Account, Account], monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = users
    monkeypatch.setenv("SVT_PARENT_SECRET", "leak")
    monkeypatch.setenv("LD_PRELOAD", "")
    marker = _marker()
    seen, err = _probe(_spec(a, marker))
    assert err == ""
    assert seen["resuid"] == [a.uid] * 3
    assert seen["resgid"] == [a.gid] * 3
    group_gid = next(g for g in a.groups if g != a.gid)
    assert seen["groups"] == sorted(a.groups) and group_gid in seen["groups"]
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(seen["status"][name], 16) == 0, name
    assert seen["status"]["NoNewPrivs"] == "1"
    assert seen["setuid0"] == "EPERM"
    assert seen["env"] == {
        "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "SESSIOND_TEST": "1",
        "HOME": a.home, "USER": a.name, "LOGNAME": a.name, "SHELL": "/bin/sh",
        "XDG_RUNTIME_DIR": f"/run/user/{a.uid}",
    }
    assert seen["cwd"] == a.home
    assert seen["umask"] == 0o077


def test_private_tmp_shm_and_runtime_dir(users: tuple[Account, Account]) -> None:
    a, _ = users
    host_marker = _marker()
    with open(f"/tmp/{host_marker}", "w") as handle:
        handle.write("host")
    try:
        marker = _marker()
        seen, _ = _probe(_spec(a, marker))
    finally:
        os.unlink(f"/tmp/{host_marker}")
    assert marker in seen["tmp"] and host_marker not in seen["tmp"]
    assert ".X11-unix" in seen["tmp"]
    assert seen["x11"] == [0, 0o1777]
    assert seen["runtime"] == [f"/run/user/{a.uid}", a.uid, a.gid, 0o700]
    for host_dir in ("/tmp", "/dev/shm", f"/run/user/{a.uid}"):
        assert not os.path.exists(os.path.join(host_dir, marker)), host_dir


def _readline(proc: subprocess.Popen[bytes]) -> bytes:
    stdout = proc.stdout
    assert stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(stdout, selectors.EVENT_READ)
        if not sel.select(TIMEOUT_S):
            proc.kill()
            pytest.fail("sandboxed probe did not report in time")
    return stdout.readline()


def test_two_users_do_not_see_each_others_tmp(users: tuple[Account, Account]) -> None:
    a, b = users
    hold_r, hold_w = os.pipe()
    marker_a = _marker()
    proc_a = spawn_sandboxed(_spec(a, marker_a, str(hold_r), keep_fds=(hold_r,)),
                             python=PYTHON, stdout=subprocess.PIPE)
    os.close(hold_r)
    try:
        seen_a = json.loads(_readline(proc_a))  # a's sandbox is up, marker written
        seen_b, _ = _probe(_spec(b, _marker()))
    finally:
        os.close(hold_w)  # lets a's probe finish
        proc_a.wait(timeout=TIMEOUT_S)
        if proc_a.stdout is not None:
            proc_a.stdout.close()
    assert proc_a.returncode == 0
    assert marker_a in seen_a["tmp"]
    assert marker_a not in seen_b["tmp"]
    assert seen_b["resuid"] == [b.uid] * 3
    assert seen_b["groups"] == [b.gid]  # not in the group a belongs to
    assert seen_b["runtime"][1:] == [b.uid, b.gid, 0o700]


def _raw_enter(doc: dict[str, Any]) -> tuple[int, str]:
    proc = subprocess.run(enter_argv(PYTHON), input=json.dumps(doc).encode(),
                          env=enter_env(), cwd="/", capture_output=True,
                          timeout=TIMEOUT_S)
    assert proc.stdout == b""
    return proc.returncode, proc.stderr.decode()


@pytest.mark.parametrize(
    ("account_changes", "message"),
    [
        ({"name": "root", "uid": 0, "gid": 0, "groups": [0], "home": "/root"}, "root"),
        ({"name": "svt-iso-nobody"}, "unknown user"),
        ({"uid": 0}, "root"),
        ({"groups": [1]}, "does not match"),
    ],
)
def test_root_unknown_or_forged_account_is_refused(
        users: tuple[Account, Account], account_changes: dict[str, Any],
        message: str) -> None:
    a, _ = users
    doc = json.loads(to_json(_spec(a, "refused", argv=("/usr/bin/id",))))
    doc["account"].update(account_changes)
    status, err = _raw_enter(doc)
    assert status == 71
    assert message in err and err.count("\n") == 1


def test_missing_program_exits_127_and_bad_cwd_falls_back(
        users: tuple[Account, Account]) -> None:
    a, _ = users
    proc = spawn_sandboxed(_spec(a, "x", argv=("/nonexistent/agent",)), python=PYTHON,
                           stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 127
    assert b"cannot execute /nonexistent/agent" in err
    seen, warning = _probe(_spec(a, _marker(), cwd="/root"))
    assert seen["cwd"] == "/"
    assert "cannot enter /root" in warning


def test_host_runtime_dir_is_not_the_users(users: tuple[Account, Account]) -> None:
    a, _ = users
    _probe(_spec(a, _marker()))
    info = os.lstat(f"/run/user/{a.uid}")
    assert stat.S_ISDIR(info.st_mode)
    # Created as an empty root-only mount point on the host; the user's files
    # only ever live in the sandbox's tmpfs.
    assert os.listdir(f"/run/user/{a.uid}") == []


NS_PROBE = r"""
import json, os, socket
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
client = socket.create_connection(server.getsockname(), timeout=5)
print(json.dumps({"pid": os.getpid(), "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                  "ifs": [n for _, n in socket.if_nameindex()], "host": socket.gethostname(),
                  "lo_flags": (int(open("/sys/class/net/lo/flags").read(), 16)
                               if os.path.exists("/sys/class/net/lo/flags") else None),
                  "cgroup": open("/proc/self/cgroup").read()}), flush=True)
"""


def test_pid_net_uts_namespaces_and_cgroup(users: tuple[Account, Account]) -> None:
    from isolation.limits import SessionLimits
    from isolation.sandbox import create_sandbox

    a, _ = users
    sandbox = create_sandbox(f"it-ns-{uuid.uuid4().hex[:8]}", SessionLimits(pids=32))
    try:
        spec = sandbox.spec(a, (PYTHON, "-c", NS_PROBE), {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                            network="loopback", hostname="svt-box")
        proc = spawn_sandboxed(spec, python=PYTHON, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == 0, err.decode()
        seen = json.loads(out)
        assert seen["pid"] == 2 and seen["procs"] == [1, 2]  # init and the program, nothing else
        assert seen["ifs"] == ["lo"] and seen["host"] == "svt-box"
        assert f"pids:/sessiond/{sandbox.session_id}" in seen["cgroup"]
        assert sandbox.pids() == []  # everything exited with the program
        with open(f"/sys/fs/cgroup/pids/sessiond/{sandbox.session_id}/pids.max") as handle:
            assert handle.read().strip() == "32"
    finally:
        sandbox.destroy()
    assert not os.path.exists(f"/sys/fs/cgroup/pids/sessiond/{sandbox.session_id}")


def test_kill_reaches_processes_that_escaped_the_process_tree(users: tuple[Account, Account]) -> None:
    from isolation.limits import SessionLimits
    from isolation.sandbox import create_sandbox

    a, _ = users
    sandbox = create_sandbox(f"it-kill-{uuid.uuid4().hex[:8]}", SessionLimits())
    daemonize = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n"
                 "print('ok', flush=True)\ntime.sleep(600)\n")
    spec = sandbox.spec(a, (PYTHON, "-c", daemonize), {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    proc = spawn_sandboxed(spec, python=PYTHON, stdout=subprocess.PIPE)
    try:
        assert _readline(proc) == b"ok\n"
        assert len(sandbox.pids()) == 3  # init, the program, its daemonized child
        assert sandbox.kill() == 3
        assert proc.wait(timeout=TIMEOUT_S) == 128 + 9  # the supervisor reports init's SIGKILL
    finally:
        sandbox.destroy()
        if proc.stdout is not None:
            proc.stdout.close()
