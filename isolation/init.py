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
# its event loop runs.
#
# Memory: both loops would otherwise keep the whole entry process alive (and,
# with a zygote, the whole preloaded agent: isolation/zygote.py), twice. So
# once the child to wait for exists, each of them execs this very file as a
# script in a fresh, minimal interpreter (`python -I -S init.py supervise|init
# PID`: no site, no user paths, only os and signal): ~3.8 MiB PSS each. The
# cost is a window of a few milliseconds, right after the exec and before the
# handlers are back, in which a forwarded signal is not forwarded: SIGTERM
# then ends the supervisor at once (the init and the agent die with it, by
# their parent-death signal) or, sent to the init (PID 1 ignores signals it
# has no handler for), is lost and sessiond's SIGKILL after its grace period
# ends the session instead. Only the start of a session is exposed to it.
# Installed, the same loops exist as a native program, isolation/wait.c
# (`make install` builds it into the venv's libexec/): ~0.2 MiB PSS instead
# of a ~3.9 MiB interpreter, and an exec window of microseconds. waiter_argvs
# prefers it; this file's loops are the fallback where it was not built.
"""SignalForwarder, supervisor wait and init reaper loop for PID-namespace sandboxes;
run as a script, the same loops in a minimal interpreter (waiter_argvs)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
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


# The two roles this file takes when run as a script.
SUPERVISE = "supervise"
INIT = "init"
# Exit status when the script is run with arguments it does not know.
EXIT_USAGE = 71
# The largest pid Linux hands out (PID_MAX_LIMIT); a larger PID argument is refused.
MAX_PID = 4_194_304


# The native waiter (isolation/wait.c), installed next to the interpreter's
# venv; sessiond's procwatch recognises either waiter's command line.
NATIVE_WAITER = "sessiond-wait"


def native_waiter_path() -> str:
    """Where `make install` puts the native waiter: <venv>/libexec/sessiond-wait."""
    return os.path.join(sys.prefix, "libexec", NATIVE_WAITER)


def python_waiter_argv(role: str, child: int) -> list[str]:
    """argv that runs this file's loop for ROLE on CHILD in a minimal interpreter
    (isolated: no environment, no site, no user or current directory on its path)."""
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), role, str(child)]


def waiter_argvs(role: str, child: int) -> list[list[str]]:
    """The waiters to exec for ROLE on CHILD, best first: the native one if installed, then this file."""
    native = native_waiter_path()
    argvs = [[native, role, str(child)]] if os.access(native, os.X_OK) else []
    return [*argvs, python_waiter_argv(role, child)]


def main(argv: list[str]) -> int:
    """`init.py supervise|init PID`: forward the signals to PID and wait (init: reap all) for it."""
    digits = argv[1] if len(argv) == 2 else ""
    child = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= len(str(MAX_PID)) else 0
    if len(argv) != 2 or argv[0] not in (SUPERVISE, INIT) or not 0 < child <= MAX_PID:
        sys.stderr.write("usage: init.py supervise|init PID\n")
        return EXIT_USAGE
    forwarder = SignalForwarder()
    forwarder.install()
    forwarder.set_target(child)
    return wait_for(child) if argv[0] == SUPERVISE else reap_until(child)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
