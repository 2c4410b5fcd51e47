# Watching processes sessiond did not spawn itself: after a restart the
# agents are no longer its children, so their exit is learnt from a pidfd
# (readable once the process has exited) in the reactor, not from SIGCHLD.
"""PidWatcher and the identity check used when re-adopting an agent."""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.internet import interfaces
from zope.interface import implementer


@implementer(interfaces.IReadDescriptor)
class PidWatcher:
    """Calls ON_EXIT once when process PID exits (pidfd in the reactor)."""

    def __init__(self, reactor: Any, pid: int, on_exit: Callable[[], None]) -> None:
        self.reactor = reactor
        self.on_exit = on_exit
        self.fd = os.pidfd_open(pid)
        reactor.addReader(self)

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:  # noqa: N802 - Twisted interface
        self.stop()
        self.on_exit()

    def stop(self) -> None:
        if self.fd >= 0:
            self.reactor.removeReader(self)
            os.close(self.fd)
            self.fd = -1

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted interface
        self.stop()

    def logPrefix(self) -> str:  # noqa: N802 - Twisted interface
        return "PidWatcher"


def process_matches(pid: int, uid: int, session_id: str) -> bool:
    """True if PID is alive and looks like that session's sandbox or agent.

    Guards against pid reuse: the process must belong to the session user
    (or be the root sandbox entry) and name the session id or the sandbox
    entry point on its command line.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        owner = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return False
    # The supervisor has exec'd a wait loop: the native one or init.py's (isolation/init.py).
    entry = any(mark in cmdline for mark in ("isolation.enter", "isolation/init.py supervise",
                                             "/libexec/sessiond-wait supervise"))  # fmt: skip
    return owner in (uid, 0) and (session_id in cmdline or entry)


def tree_usage(root_pid: int) -> tuple[int, float]:
    """RSS bytes and CPU seconds of ROOT_PID and its descendants (/proc)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        stats[pid] = (int(fields[21]) * page, (int(fields[11]) + int(fields[12])) / tick)
    memory, cpu, pending = 0, 0.0, [root_pid]
    while pending:
        pid = pending.pop()
        rss, seconds = stats.get(pid, (0, 0.0))
        memory, cpu = memory + rss, cpu + seconds
        pending.extend(children.get(pid, ()))
    return memory, cpu
