# The cgroup tree the session backends stand on: the file operations
# (CgroupFS, RealFS) and the CPU weight of the parent every session sits under.
#
# Why a module of its own: isolation.cgroups is the per-session half (create,
# join, kill, remove one session); this is what spans sessions. The file
# layer is one Protocol so both backends and the parent's weight run on a
# dict in unit tests.
# Why the parent's weight: the CPU controller shares time level by level.
# All sessions live in one parent (cgroups.PARENT) next to everything else
# at the root: the daemon, ssh logins, system services (on v1 with
# autogroup, one group per login session or daemon, 1024 each; on v2,
# systemd's slices, 100 each). Left at the kernel's default the parent
# weighs ONE such group, so however many sessions run, together they get
# what one root-level service gets, and a busy session's xterm, Xvfb and
# agent queue behind root-level tasks (issue 15: run-queue waits of seconds
# per 5 s window on a loaded host). The fix follows the sessions: the parent
# weighs the sum of its live sessions' own weights (a session cgroup without
# processes does not count), sessions still share the parent by their own
# weights, and an idle parent stays at one session's worth. The weight is a
# class weight: when some sessions are idle, the busy ones share the whole
# sum, so against root-level tasks they get what all sessions together may
# get, never more. It is recomputed from the kernel's own files (not a count
# kept in the daemon) whenever a session cgroup is created or removed, so it
# is right after a daemon restart and with several daemons on one host.
"""CgroupFS / RealFS, and the sessions' parent weight: session_weights_sum(), rebalance()."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import Protocol

# Session cgroups read per rebalance; past this the parent keeps the sum so
# far (far above the sessions one host can run: bounds the work per create).
MAX_SESSIONS_READ = 4096
# Bounds of the weight files: v1 cpu.shares (kernel MIN/MAX_SHARES), v2 cpu.weight.
V1_SHARES_RANGE = (2, 262_144)
V2_WEIGHT_RANGE = (1, 10_000)


class CgroupFS(Protocol):
    """File operations the backends need; RealFS is the kernel's cgroupfs."""

    def read(self, path: str) -> str: ...
    def write(self, path: str, text: str) -> None: ...
    def exists(self, path: str) -> bool: ...
    def mkdir(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...
    def rename(self, source: str, target: str) -> None: ...
    def listdir(self, path: str) -> list[str]: ...


class RealFS:
    """CgroupFS on the real filesystem (one write() per value, as the kernel wants)."""

    def read(self, path: str) -> str:
        with open(path, encoding="ascii") as handle:
            return handle.read()

    def write(self, path: str, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            os.write(fd, text.encode("ascii"))
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def mkdir(self, path: str) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def rename(self, source: str, target: str) -> None:
        os.rename(source, target)

    def listdir(self, path: str) -> list[str]:
        """Names of the subdirectories (child cgroups) of `path`."""
        return [entry.name for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False)]


def session_weights_sum(weights: Iterable[int], floor: int, bounds: tuple[int, int]) -> int:
    """The parent's weight: the sum of its sessions' WEIGHTS, at least FLOOR
    (one default session, so an empty parent is not starved when the next
    session starts), clamped to the file's BOUNDS (low, high)."""
    low, high = bounds
    return max(low, min(high, max(floor, sum(weights))))


def _child_weights(fs: CgroupFS, parent: str, weight_file: str, joining: str) -> list[int]:
    """Weights of the session cgroups under PARENT that hold processes, plus
    JOINING's (being created: its first process joins right after). An empty
    cgroup competes for nothing (e.g. one left behind by a daemon that was
    killed), and a child that vanished or reads oddly, e.g. being removed
    right now, is skipped."""
    weights = []
    for name in fs.listdir(parent)[:MAX_SESSIONS_READ]:
        with contextlib.suppress(OSError, ValueError):
            if name == joining or fs.read(f"{parent}/{name}/cgroup.procs").strip():
                weights.append(int(fs.read(f"{parent}/{name}/{weight_file}").strip()))
    return weights


def rebalance(fs: CgroupFS, parent: str, weight_file: str, floor: int, bounds: tuple[int, int],
              joining: str = "") -> int:
    """Set PARENT's WEIGHT_FILE (cpu.shares or cpu.weight) to the sum of the
    values of that file in its live sessions (and in JOINING, the session
    being created); returns the value written. OSError if the parent cannot
    be listed or written."""
    weight = session_weights_sum(_child_weights(fs, parent, weight_file, joining), floor, bounds)
    fs.write(f"{parent}/{weight_file}", str(weight))
    return weight
