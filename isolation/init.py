# The two waiting processes of a sandbox with a PID namespace.
#
# Why: after unshare(CLONE_NEWPID) the namespace only exists for children, so
# isolation.enter forks. Two small loops then wait:
#  - the supervisor (the original enter process, root, outside the namespace)
#    is what sessiond spawned and tracks; it forwards SIGTERM/SIGINT/SIGHUP to
#    the namespace's init and exits with its status, so sessiond's view of
#    "the agent process" is unchanged;
#  - the init (PID 1 inside, already the user with no privileges) forwards the
#    same signals to the agent and reaps every orphan re-parented to it, so
#    zombies never pile up against the session's pids limit. When the agent
#    exits, init exits, and the kernel kills whatever is left in the namespace.
# The agent is not PID 1 itself because PID 1 ignores default-action signals,
# must reap arbitrary orphans, and the agent's SIGTERM handler only exists once
# its event loop runs; a forked Python init shares its pages copy-on-write
# with the supervisor, so it costs about 1 MiB of PSS.
"""SignalForwarder, supervisor wait and init reaper loop for PID-namespace sandboxes."""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType

# Signals that mean "end the session politely"; passed down the chain.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# Exit status convention for "killed by signal N" (as shells report it).
SIGNAL_EXIT_BASE = 128


class SignalForwarder:
    """Forwards FORWARDED_SIGNALS to a target pid; queues them until one is set."""

    def __init__(self) -> None:
        self.target: int | None = None
        self.pending: list[int] = []
        self.installed = False

    def install(self) -> None:
        """Catch the forwarded signals in this process (idempotent)."""
        if not self.installed:
            for signum in FORWARDED_SIGNALS:
                signal.signal(signum, self._handle)
            self.installed = True

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.target is None:
            self.pending.append(signum)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.target, signum)

    def forget(self) -> None:
        """In a freshly forked child: nothing to forward to yet, nothing queued."""
        self.target = None
        self.pending = []

    def set_target(self, pid: int) -> None:
        """Forward to `pid` from now on, starting with anything queued."""
        self.target = pid
        pending, self.pending = self.pending, []
        for signum in pending:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def exit_code(status: int) -> int:
    """A waitpid status as an exit code; death by signal N becomes 128+N."""
    code = os.waitstatus_to_exitcode(status)
    return SIGNAL_EXIT_BASE - code if code < 0 else code


def wait_for(child: int) -> int:
    """Wait for `child` (retrying on signals) and return its exit code."""
    _pid, status = os.waitpid(child, 0)
    return exit_code(status)


def reap_until(agent: int) -> int:
    """As PID 1: reap every child; return the exit code once `agent` has exited."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return SIGNAL_EXIT_BASE + signal.SIGKILL  # agent vanished unseen
        if pid == agent:
            return exit_code(status)
