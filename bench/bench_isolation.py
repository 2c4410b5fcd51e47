# What the session sandbox costs: start-up time of the real agent inside a
# full sandbox (cgroup + pid/mount/ipc/uts namespaces + privilege drop, via
# isolation.enter) against a plain spawn of the same agent as the same user
# (setpriv, no namespaces, no cgroup), and idle memory per session (PSS of
# everything in the session's cgroup plus its root supervisor) with 1 and 20
# sessions, each running agent + Xvfb + xterm through real sessiond/svclient.
# Prints ratios against the baseline measured in the same run; never gates CI.
"""Sandbox creation overhead and idle PSS per session."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from svtest import VENV_BIN, create_user, start_sessiond, stop_sessiond, svclient  # noqa: E402

from isolation.accounts import lookup_account  # noqa: E402
from isolation.launcher import spawn_sandboxed  # noqa: E402
from isolation.limits import SessionLimits  # noqa: E402
from isolation.sandbox import create_sandbox  # noqa: E402

PYTHON = os.path.join(VENV_BIN, "python")
BENCH_USER = "svbench"
# Bounds the wait for one agent's READY line.
READY_TIMEOUT_S = 30.0


def agent_argv(socket_path: str) -> tuple[str, ...]:
    return (PYTHON, "-m", "sessiond.agent", "--socket", socket_path, "--width", "1024", "--height", "768")


def wait_ready(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != b"READY":
        raise RuntimeError(f"agent did not start: {line!r}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def time_plain(user: str, workdir: str) -> float:
    sock = os.path.join(workdir, f"plain-{secrets.token_hex(4)}.sock")
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "SESSIOND_LINK_TOKEN": "x", "HOME": "/"}
    start = time.perf_counter()
    proc = subprocess.Popen(["setpriv", "--reuid", user, "--regid", user, "--init-groups", "--",
                             *agent_argv(sock)], stdout=subprocess.PIPE, env=env, cwd="/")
    wait_ready(proc)
    elapsed = time.perf_counter() - start
    stop(proc)
    return elapsed


def time_sandboxed(user: str, workdir: str) -> float:
    account = lookup_account(user)
    session_id = f"bench-{secrets.token_hex(4)}"
    sock = os.path.join(workdir, f"{session_id}.sock")
    start = time.perf_counter()
    sandbox = create_sandbox(session_id, SessionLimits(memory_bytes=2 << 30, pids=1024, cpu_percent=100))
    spec = sandbox.spec(account, agent_argv(sock), {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                                                    "SESSIOND_LINK_TOKEN": "x"})
    proc = spawn_sandboxed(spec, python=PYTHON, stdout=subprocess.PIPE)
    wait_ready(proc)
    elapsed = time.perf_counter() - start
    stop(proc)
    sandbox.destroy()
    return elapsed


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def session_pss_mib(session_id: str) -> tuple[float, float]:
    """(PSS of the cgroup's processes, PSS of the root supervisor) in MiB."""
    with open(f"/sys/fs/cgroup/pids/sessiond/{session_id}/cgroup.procs") as handle:
        pids = [int(p) for p in handle.read().split()]
    inside = sum(pss_kib(pid) for pid in pids)
    supervisors = set()
    for pid in pids:
        with open(f"/proc/{pid}/status") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        if fields["NSpid"].split()[-1] == "1":
            supervisors.add(int(fields["PPid"]))
    return inside / 1024, sum(pss_kib(p) for p in supervisors) / 1024


def idle_pss(count: int, tmp: str) -> tuple[float, float]:
    """Median per-session PSS (inside, supervisor) with COUNT idle sessions."""
    os.makedirs(tmp, exist_ok=True)
    server = start_sessiond(tmp)
    users = []
    try:
        for i in range(count):
            user = create_user(f"svbench{i}", tmp)
            users.append(user)
            done = svclient(server, user, "launch", "xterm")
            if done.returncode != 0:
                raise RuntimeError(done.stderr + server.log())
        time.sleep(2.0)  # let every session go idle
        ids = [svclient(server, user, "login").stdout.strip() for user in users]
        samples = [session_pss_mib(sid) for sid in ids]
        return (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples))
    finally:
        stop_sessiond(server)
        for user in users:
            subprocess.run(["userdel", "-r", user.name], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sessions", type=int, nargs="*", default=[1, 20])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="svbench-") as tmp:
        os.chmod(tmp, 0o755)
        create_user(BENCH_USER, tmp)
        sock_dir = ""
        try:
            # Not under /tmp: the sandbox has a private /tmp.
            sock_dir = tempfile.mkdtemp(prefix="svbench-", dir="/run")
            os.chmod(sock_dir, 0o1777)
            plain = statistics.median(time_plain(BENCH_USER, sock_dir) for _ in range(args.runs))
            boxed = statistics.median(time_sandboxed(BENCH_USER, sock_dir) for _ in range(args.runs))
            print(f"agent start to READY, median of {args.runs}: plain spawn {plain * 1000:.1f} ms, "
                  f"full sandbox {boxed * 1000:.1f} ms, overhead {(boxed - plain) * 1000:+.1f} ms "
                  f"(ratio {boxed / plain:.2f})")
        finally:
            subprocess.run(["userdel", "-r", BENCH_USER], capture_output=True)
            shutil.rmtree(sock_dir, ignore_errors=True)
        for count in args.sessions:
            inside, supervisor = idle_pss(count, os.path.join(tmp, f"pss{count}"))
            print(f"idle PSS per session with {count} session(s): agent+Xvfb+xterm+init {inside:.1f} MiB, "
                  f"root supervisor {supervisor:.1f} MiB, total {inside + supervisor:.1f} MiB "
                  f"(budget 50 MiB, ratio {(inside + supervisor) / 50:.2f})")


if __name__ == "__main__":
    main()
