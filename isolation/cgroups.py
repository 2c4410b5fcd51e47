# One cgroup per session, on cgroup v1 or v2 behind one interface.
#
# Why: limits, accounting and "kill everything on logoff" all hang on the
# session's cgroup: every process of the session is in it (isolation.enter
# puts the sandbox's first process there before anything is exec'd, and
# children inherit it), so the kernel enforces memory/pids/CPU ceilings per
# session, bills tmpfs and CPU to it, and a logoff can find every process no
# matter how it double-forked. Hosts differ: this one has only v1 controllers
# (memory, pids, cpu, cpuacct, freezer as separate hierarchies), newer ones are
# v2-only (one tree, cgroup.kill). Both backends are written against a tiny
# CgroupFS (isolation.cgroup_tree) so the unit tests run them on a dict.
"""CgroupV1 / CgroupV2 backends, detection, usage, kill-all and removal."""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from isolation.limits import DEFAULT_CPU_WEIGHT, SessionLimits, cpu_shares
from isolation.cgroup_tree import V1_SHARES_RANGE, V2_WEIGHT_RANGE, CgroupFS, RealFS, rebalance
from isolation.spec import check_session_id

CGROUP_ROOT = "/sys/fs/cgroup"
# Parent of every session's cgroup, under each hierarchy.
PARENT = "sessiond"
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
# Controllers without which limits cannot be enforced: refuse rather than
# start an unlimited session.
V1_REQUIRED = ("memory", "pids", "cpu")
V2_REQUIRED = ("memory", "pids", "cpu")
# CFS period: the kernel default 100 ms.
CPU_PERIOD_US = 100_000
# kill_all gives up after this many sweeps (each: freeze, SIGKILL all, thaw);
# a fork bomb is frozen, so one or two sweeps normally suffice.
MAX_KILL_SWEEPS = 50
# Pause between sweeps and while waiting for a freeze / for rmdir (EBUSY while
# the killed tasks are reaped).
SWEEP_PAUSE_S = 0.01
# How long remove() retries an rmdir that fails with EBUSY.
REMOVE_TIMEOUT_S = 2.0
MOUNTS_PATH = "/proc/self/mounts"


class CgroupError(Exception):
    """A session cgroup could not be created, joined, limited or removed."""


@dataclass(frozen=True)
class Usage:
    """What a session consumes now: resident memory (incl. tmpfs) and CPU time."""

    memory_bytes: int
    cpu_seconds: float
    tasks: int


class CgroupBackend(Protocol):
    """One session cgroup per session id, on whatever cgroup version the host has."""

    def create(self, session_id: str, limits: SessionLimits) -> None: ...
    def attach(self, session_id: str, pid: int) -> None: ...
    def pids(self, session_id: str) -> list[int]: ...
    def exists(self, session_id: str) -> bool: ...
    def kill_all(self, session_id: str) -> int: ...
    def remove(self, session_id: str) -> None: ...
    def usage(self, session_id: str) -> Usage: ...
    def rename(self, old: str, new: str) -> None: ...
    def member(self, session_id: str, proc_cgroup: str) -> bool: ...
    def names(self) -> list[str]: ...
    def remove_empty(self, session_id: str) -> None: ...


def _pid_list(text: str) -> list[int]:
    return [int(word) for word in text.split()]


def pidfd_kill(pid: int, still_member: Callable[[int], bool]) -> bool:
    """SIGKILL `pid` through a pidfd, only if it is still in the session's cgroup.

    Without a freezer the cgroup's pid list can go stale before the kill: the
    process may exit and its pid be reused by someone else's process. Opening
    a pidfd pins the process the pid names now; checking membership after
    that, then signalling through the fd, kills exactly a process of the
    session or nothing. Returns True if a signal was sent.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if not still_member(pid):
            return False
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


def _stat_value(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _sep, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


class _Common(abc.ABC):
    """Shared kill/remove logic; subclasses name directories and files."""

    def __init__(self, root: str, fs: CgroupFS | None, kill: Callable[[int, int], None],
                 sleep: Callable[[float], None],
                 checked_kill: Callable[[int, Callable[[int], bool]], bool] = pidfd_kill) -> None:
        self.root = root
        self.fs: CgroupFS = fs or RealFS()
        self.kill = kill
        self.checked_kill = checked_kill
        self.sleep = sleep

    @abc.abstractmethod
    def dirs(self, session_id: str) -> list[str]:
        """The session's cgroup directories, one per hierarchy."""

    @abc.abstractmethod
    def procs_file(self, session_id: str) -> str:
        """The cgroup.procs file a process joins the session through."""

    @abc.abstractmethod
    def _freeze(self, session_id: str, frozen: bool) -> None:
        """Freeze or thaw every process of the session."""

    @abc.abstractmethod
    def rebalance_parent(self, joining: str = "") -> int:
        """Give the sessions' parent the summed weight of its live sessions and of
        JOINING, the one being created (isolation.cgroup_tree)."""

    @abc.abstractmethod
    def can_freeze(self, session_id: str) -> bool:
        """True if _freeze really stops the session's processes (else kill by pidfd)."""

    def rename(self, old: str, new: str) -> None:
        """Rename cgroup OLD to NEW in every hierarchy, with its processes in it: no process
        migrates, so no RCU grace period is waited for (a join of cgroup.procs on v1 waits for
        one: ~6-20 ms here). All or nothing: a failed step renames back; CgroupError. The
        kernel renames only v1 cgroups (v2 refuses with EPERM)."""
        check_session_id(old)
        check_session_id(new)
        done: list[tuple[str, str]] = []
        try:
            for source, target in zip(self.dirs(old), self.dirs(new)):
                self.fs.rename(source, target)
                done.append((source, target))
        except OSError as exc:
            for source, target in reversed(done):
                with contextlib.suppress(OSError):
                    self.fs.rename(target, source)
            raise CgroupError(f"cannot rename cgroup {old} to {new}: {exc.strerror or exc}") from None

    def member(self, session_id: str, proc_cgroup: str) -> bool:
        """True if PROC_CGROUP (a process's /proc/PID/cgroup) puts it in the session's cgroup in
        every hierarchy this backend uses."""
        want = f"/{PARENT}/{check_session_id(session_id)}"
        paths: dict[str, str] = {}
        for line in proc_cgroup.splitlines():
            _number, _sep, rest = line.partition(":")
            controllers, _sep, path = rest.partition(":")
            for controller in controllers.split(","):
                paths[controller] = path
        return all(paths.get(name) == want for name in self.hierarchy_names())

    @abc.abstractmethod
    def hierarchy_names(self) -> tuple[str, ...]:
        """The controller lists /proc/PID/cgroup names this backend's hierarchies by
        (v2: the unified line's empty name)."""

    def exists(self, session_id: str) -> bool:
        """True if the session's cgroup exists."""
        return self.fs.exists(self.procs_file(check_session_id(session_id)))

    def pids(self, session_id: str) -> list[int]:
        """Pids (in sessiond's PID namespace) of every process in the cgroup."""
        return _pid_list(self.fs.read(self.procs_file(check_session_id(session_id))))

    def names(self) -> list[str]:
        """The names of the cgroups under the sessions' parent (sessions' and slots')."""
        parent = self.procs_file("x").rsplit("/", 2)[0]
        try:
            return self.fs.listdir(parent)
        except FileNotFoundError:
            return []

    def remove_empty(self, session_id: str) -> None:
        """Remove the cgroup's directories without killing anything (missing is fine);
        CgroupError if one still holds a process."""
        for directory in reversed(self.dirs(check_session_id(session_id))):
            try:
                self.fs.rmdir(directory)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise CgroupError(f"cannot remove {directory}: {exc.strerror or exc}") from None

    def attach(self, session_id: str, pid: int) -> None:
        """Move `pid` (0: the caller) into the session's cgroup in every hierarchy."""
        check_session_id(session_id)
        for directory in self.dirs(session_id):
            try:
                self.fs.write(f"{directory}/cgroup.procs", str(pid))
            except OSError as exc:
                raise CgroupError(f"cannot join {directory}: {exc.strerror or exc}") from None

    def kill_all(self, session_id: str) -> int:
        """SIGKILL every process in the cgroup until it is empty; returns how many.

        The cgroup is frozen while its pids are read and killed, so nothing
        can fork between the read and the kill. Where there is no freezer
        (v1 without the freezer hierarchy), each pid is pinned with a pidfd
        and checked to still be in the cgroup before the kill, so a reused
        pid never costs an unrelated process.
        """
        check_session_id(session_id)
        if not self.exists(session_id):
            return 0
        killed = 0
        frozen = self.can_freeze(session_id)
        member = lambda pid: pid in self.pids(session_id)  # noqa: E731 - read afresh per kill
        for _sweep in range(MAX_KILL_SWEEPS):
            self._freeze(session_id, True)
            pids = self.pids(session_id)
            for pid in pids:
                if not frozen:  # the list may be stale: pin each process, re-check, then kill
                    killed += self.checked_kill(pid, member)
                    continue
                with contextlib.suppress(ProcessLookupError):
                    self.kill(pid, signal.SIGKILL)
                    killed += 1
            self._freeze(session_id, False)  # frozen tasks die only once thawed
            if not pids:
                return killed
            self.sleep(SWEEP_PAUSE_S)
        raise CgroupError(f"session {session_id}: processes survive {MAX_KILL_SWEEPS} kill sweeps")

    def remove(self, session_id: str) -> None:
        """Kill what is left, then remove the cgroup directories (missing is fine)."""
        self.kill_all(session_id)
        deadline = time.monotonic() + REMOVE_TIMEOUT_S
        for directory in reversed(self.dirs(check_session_id(session_id))):
            while True:
                try:
                    self.fs.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(f"cannot remove {directory}: {exc.strerror}") from None
                    self.sleep(SWEEP_PAUSE_S)
        with contextlib.suppress(OSError):  # the session is gone; a stale parent weight only errs generous
            self.rebalance_parent()


class CgroupV1(_Common):
    """Legacy hierarchies: one directory per controller."""

    version = 1

    def __init__(self, root: str = CGROUP_ROOT, fs: CgroupFS | None = None,
                 kill: Callable[[int, int], None] = os.kill,
                 sleep: Callable[[float], None] = time.sleep,
                 checked_kill: Callable[[int, Callable[[int], bool]], bool] = pidfd_kill) -> None:
        super().__init__(root, fs, kill, sleep, checked_kill)
        self.controllers = tuple(c for c in V1_CONTROLLERS
                                 if self.fs.exists(f"{root}/{c}/cgroup.procs"))
        missing = [c for c in V1_REQUIRED if c not in self.controllers]
        if missing:
            raise CgroupError(f"cgroup v1 controllers missing under {root}: {', '.join(missing)}")

    def _dir(self, controller: str, session_id: str) -> str:
        return f"{self.root}/{controller}/{PARENT}/{session_id}"

    def hierarchy_names(self) -> tuple[str, ...]:
        return self.controllers

    def dirs(self, session_id: str) -> list[str]:
        return [self._dir(c, session_id) for c in self.controllers]

    def procs_file(self, session_id: str) -> str:
        return f"{self._dir('pids', session_id)}/cgroup.procs"

    def create(self, session_id: str, limits: SessionLimits) -> None:
        """Create the session's directory under every controller and set limits."""
        check_session_id(session_id)
        try:
            for controller in self.controllers:
                self.fs.mkdir(f"{self.root}/{controller}/{PARENT}")
                self.fs.mkdir(self._dir(controller, session_id))
            memory = self._dir("memory", session_id)
            if limits.memory_bytes is not None:
                self.fs.write(f"{memory}/memory.limit_in_bytes", str(limits.memory_bytes))
                # Without swap accounting a capped session could swap instead of
                # being OOM-killed; cap memory+swap at the same value when present.
                if self.fs.exists(f"{memory}/memory.memsw.limit_in_bytes"):
                    self.fs.write(f"{memory}/memory.memsw.limit_in_bytes", str(limits.memory_bytes))
            if limits.pids is not None:
                self.fs.write(f"{self._dir('pids', session_id)}/pids.max", str(limits.pids))
            cpu = self._dir("cpu", session_id)
            self.fs.write(f"{cpu}/cpu.shares", str(cpu_shares(limits.cpu_weight)))
            if limits.cpu_percent is not None:
                self.fs.write(f"{cpu}/cpu.cfs_period_us", str(CPU_PERIOD_US))
                self.fs.write(f"{cpu}/cpu.cfs_quota_us", str(CPU_PERIOD_US * limits.cpu_percent // 100))
            self.rebalance_parent(session_id)
        except OSError as exc:
            raise CgroupError(f"cannot create the cgroup of session {session_id}: {exc}") from None

    def rebalance_parent(self, joining: str = "") -> int:
        floor = cpu_shares(DEFAULT_CPU_WEIGHT)
        return rebalance(self.fs, f"{self.root}/cpu/{PARENT}", "cpu.shares", floor, V1_SHARES_RANGE, joining)

    def can_freeze(self, session_id: str) -> bool:
        return "freezer" in self.controllers

    def _freeze(self, session_id: str, frozen: bool) -> None:
        if "freezer" not in self.controllers:
            return
        state = f"{self._dir('freezer', session_id)}/freezer.state"
        with contextlib.suppress(FileNotFoundError):
            self.fs.write(state, "FROZEN" if frozen else "THAWED")
            if frozen:
                for _ in range(MAX_KILL_SWEEPS):
                    if self.fs.read(state).strip() == "FROZEN":
                        return
                    self.sleep(SWEEP_PAUSE_S)

    def usage(self, session_id: str) -> Usage:
        """Memory in use (incl. page cache and tmpfs), CPU seconds, task count."""
        check_session_id(session_id)
        memory = int(self.fs.read(f"{self._dir('memory', session_id)}/memory.usage_in_bytes"))
        cpu_ns = 0
        if "cpuacct" in self.controllers:
            cpu_ns = int(self.fs.read(f"{self._dir('cpuacct', session_id)}/cpuacct.usage"))
        tasks = int(self.fs.read(f"{self._dir('pids', session_id)}/pids.current"))
        return Usage(memory_bytes=memory, cpu_seconds=cpu_ns / 1e9, tasks=tasks)


class CgroupV2(_Common):
    """Unified hierarchy: one directory, controllers enabled via subtree_control."""

    version = 2

    def __init__(self, root: str = CGROUP_ROOT, fs: CgroupFS | None = None,
                 kill: Callable[[int, int], None] = os.kill,
                 sleep: Callable[[float], None] = time.sleep,
                 checked_kill: Callable[[int, Callable[[int], bool]], bool] = pidfd_kill) -> None:
        super().__init__(root, fs, kill, sleep, checked_kill)
        available = self.fs.read(f"{root}/cgroup.controllers").split()
        missing = [c for c in V2_REQUIRED if c not in available]
        if missing:
            raise CgroupError(f"cgroup v2 at {root} lacks controllers: {', '.join(missing)}")

    def _dir(self, session_id: str) -> str:
        return f"{self.root}/{PARENT}/{session_id}"

    def hierarchy_names(self) -> tuple[str, ...]:
        return ("",)

    def dirs(self, session_id: str) -> list[str]:
        return [self._dir(session_id)]

    def procs_file(self, session_id: str) -> str:
        return f"{self._dir(session_id)}/cgroup.procs"

    def create(self, session_id: str, limits: SessionLimits) -> None:
        """Create PARENT/session_id with memory, pids and cpu enabled; set limits."""
        check_session_id(session_id)
        enable = " ".join(f"+{c}" for c in V2_REQUIRED)
        try:
            self.fs.write(f"{self.root}/cgroup.subtree_control", enable)
            self.fs.mkdir(f"{self.root}/{PARENT}")
            self.fs.write(f"{self.root}/{PARENT}/cgroup.subtree_control", enable)
            directory = self._dir(session_id)
            self.fs.mkdir(directory)
            if limits.memory_bytes is not None:
                self.fs.write(f"{directory}/memory.max", str(limits.memory_bytes))
                self.fs.write(f"{directory}/memory.swap.max", "0")
            if limits.pids is not None:
                self.fs.write(f"{directory}/pids.max", str(limits.pids))
            self.fs.write(f"{directory}/cpu.weight", str(limits.cpu_weight))
            if limits.cpu_percent is not None:
                quota = CPU_PERIOD_US * limits.cpu_percent // 100
                self.fs.write(f"{directory}/cpu.max", f"{quota} {CPU_PERIOD_US}")
            self.rebalance_parent(session_id)
        except OSError as exc:
            raise CgroupError(f"cannot create the cgroup of session {session_id}: {exc}") from None

    def rebalance_parent(self, joining: str = "") -> int:
        return rebalance(self.fs, f"{self.root}/{PARENT}", "cpu.weight", DEFAULT_CPU_WEIGHT, V2_WEIGHT_RANGE,
                         joining)

    def can_freeze(self, session_id: str) -> bool:
        directory = self._dir(session_id)
        return self.fs.exists(f"{directory}/cgroup.kill") or self.fs.exists(f"{directory}/cgroup.freeze")

    def _freeze(self, session_id: str, frozen: bool) -> None:
        directory = self._dir(session_id)
        if frozen and self.fs.exists(f"{directory}/cgroup.kill"):
            with contextlib.suppress(FileNotFoundError):
                self.fs.write(f"{directory}/cgroup.kill", "1")  # kernel kills atomically
            return
        if self.fs.exists(f"{directory}/cgroup.freeze"):
            with contextlib.suppress(FileNotFoundError):
                self.fs.write(f"{directory}/cgroup.freeze", "1" if frozen else "0")

    def usage(self, session_id: str) -> Usage:
        """memory.current, cpu.stat usage_usec, pids.current."""
        directory = self._dir(check_session_id(session_id))
        memory = int(self.fs.read(f"{directory}/memory.current"))
        cpu_us = _stat_value(self.fs.read(f"{directory}/cpu.stat"), "usage_usec")
        tasks = int(self.fs.read(f"{directory}/pids.current"))
        return Usage(memory_bytes=memory, cpu_seconds=cpu_us / 1e6, tasks=tasks)


def _cgroup2_mount(mounts: str, root: str) -> bool:
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == root and fields[2] == "cgroup2":
            return True
    return False


def detect_backend(root: str = CGROUP_ROOT, fs: CgroupFS | None = None,
                   mounts: str | None = None) -> CgroupV1 | CgroupV2:
    """The backend for this host: v2 if `root` itself is cgroup2 with the
    controllers we need, else v1 if its hierarchies exist; CgroupError if neither."""
    fs = fs or RealFS()
    if mounts is None:
        mounts = fs.read(MOUNTS_PATH)
    if _cgroup2_mount(mounts, root):
        return CgroupV2(root, fs)
    if fs.exists(f"{root}/memory/cgroup.procs"):
        return CgroupV1(root, fs)
    raise CgroupError(f"no usable cgroup v1 or v2 hierarchy under {root}")
