# A defined CPU load for the benches: N processes that burn CPU, started
# and ended by the bench itself, optionally in a cgroup beside sessiond's
# sessions (bench_video.py --load N [--load-in-sessions]).
#
"""start_load(), stop_load(): N CPU burners, at the root or beside the sessions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

# N processes that burn CPU (a Python busy loop each, normal
# priority, not pinned) from before the session starts until it stops, so
# "under load" means the same thing in every run and for every variant.
# Where they run matters: sessiond puts every session into a cgroup under
# one parent ("sessiond", cpu weight 100 = one nice-0 task's), so N burners
# outside it get N shares against one for all sessions together (Xvfb, the
# player and the agent), while with --load-in-sessions they run in a cgroup
# of their own beside the sessions (as another session's work would).
BURN = "while True: pass"
CGROUP_ROOT = "/sys/fs/cgroup"


def _load_cgroup() -> str:
    """A new cpu cgroup beside the sessions' (cgroup v1 cpu hierarchy, else v2)."""
    v1 = os.path.join(CGROUP_ROOT, "cpu")
    parent = os.path.join(v1 if os.path.isdir(v1) else CGROUP_ROOT, "sessiond")
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, f"bench-load-{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    return path


def start_load(count: int, in_sessions: bool = False) -> tuple[list[subprocess.Popen[bytes]], str | None]:
    """`count` CPU-burning processes, in a cgroup beside the sessions' if
    `in_sessions` (stop_load() ends them and removes it)."""
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(count)]
    group = _load_cgroup() if in_sessions and count else None
    if group is not None:
        for burner in burners:
            with open(os.path.join(group, "cgroup.procs"), "w", encoding="ascii") as handle:
                handle.write(str(burner.pid))
    return burners, group


def stop_load(load: tuple[list[subprocess.Popen[bytes]], str | None]) -> None:
    """End the processes start_load() started (by their own pid), remove their cgroup."""
    burners, group = load
    for burner in burners:
        burner.send_signal(signal.SIGKILL)
        burner.wait()
    if group is not None:
        os.rmdir(group)
