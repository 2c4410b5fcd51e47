# What the scheduler did to the bench's processes: run-queue wait per
# process, and the CPU weight of the sessions' parent cgroup.
#
# Why: a session's xterm can be slow because its processes wait for a CPU
# (other tasks run) rather than because they work more. The kernel keeps
# both per task in /proc/PID/schedstat (ns on CPU, ns runnable but waiting),
# so a bench can say how much of a window each process spent queued. The
# parent weight decides how the sessions, all under one parent cgroup, fare
# against everything at the root level (issue 15, helper "lines"); the bench
# can pin it for a run to measure that, and says what it was.
"""run_delay() / wait_used() from schedstat; parent_weight() / pin_parent_weight() for the sessions' cgroup."""

from __future__ import annotations

import os

from spine_workloads import process_label

CGROUP_ROOT = "/sys/fs/cgroup"
# The parent of every session cgroup (isolation.cgroups.PARENT).
PARENT = "sessiond"
# Where the weight lives: cgroup v1 cpu.shares, else v2 cpu.weight.
V1_SHARES = f"{CGROUP_ROOT}/cpu/{PARENT}/cpu.shares"
V2_WEIGHT = f"{CGROUP_ROOT}/{PARENT}/cpu.weight"


def run_delay(pid: int) -> float:
    """Seconds PID has spent runnable but waiting for a CPU (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as handle:
            fields = handle.read().split()
    except OSError:
        return 0.0
    return int(fields[1]) / 1e9 if len(fields) > 1 else 0.0


def wait_used(pids: dict[int, str], before: dict[int, float]) -> dict[str, float]:
    """Run-queue wait seconds per label since BEFORE (pid -> run_delay then);
    PIDS maps each pid to its label ('' = look it up)."""
    used: dict[str, float] = {}
    for pid, label in pids.items():
        name = label or process_label(pid)
        used[name] = used.get(name, 0.0) + run_delay(pid) - before.get(pid, 0.0)
    return used


def _weight_file() -> str | None:
    for path in (V1_SHARES, V2_WEIGHT):
        if os.path.exists(path):
            return path
    return None


def parent_weight() -> str:
    """The parent's weight now, e.g. 'cpu.shares 1024' ('none' before any session)."""
    path = _weight_file()
    if path is None:
        return "none"
    with open(path, encoding="ascii") as handle:
        return f"{os.path.basename(path)} {handle.read().strip()}"


def pin_parent_weight(value: int) -> str:
    """Write VALUE as the parent's weight (cpu.shares on v1, cpu.weight on v2);
    returns the previous value to restore. The parent is created if missing."""
    v1 = os.path.isdir(f"{CGROUP_ROOT}/cpu")
    path = V1_SHARES if v1 else V2_WEIGHT
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, encoding="ascii") as handle:
        previous = handle.read().strip()
    with open(path, "w", encoding="ascii") as handle:
        handle.write(str(value))
    return previous


def restore_parent_weight(previous: str) -> None:
    """Put back what pin_parent_weight() returned."""
    path = _weight_file()
    if path is not None:
        with open(path, "w", encoding="ascii") as handle:
            handle.write(previous)
