# The processes of one user's session, for the benches' CPU and process counts.
#
# Why not `pgrep -u USER` alone: a session started from a warm or early slot
# runs its Xvfb as an X uid of its own, not as the user (`[session] warm_x`,
# docs/security.md "Warm start"), so a bench that looked for the user's
# processes lost the X server's CPU or could not find the display. The
# session's processes are the user's and every other process in the same
# PID namespace as one of them (never the host's own namespace, where a
# process of the user's outside any session may run).
"""session_pids(user): the user's processes and their sandboxes' other processes."""

from __future__ import annotations

import os
import subprocess


def _pid_namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None  # ended meanwhile


def session_pids(user: str) -> list[int]:
    """USER's pids, then those of any other process sharing a PID namespace with one of them
    (a slot's Xvfb, running as an X uid), the host's namespace excepted."""
    own = [int(pid) for pid in subprocess.run(["pgrep", "-u", user], capture_output=True, text=True).stdout.split()]
    host = _pid_namespace("self")
    sandboxes = {_pid_namespace(pid) for pid in own} - {host, None}
    others = [int(entry) for entry in os.listdir("/proc")
              if entry.isdigit() and int(entry) not in own and _pid_namespace(entry) in sandboxes]  # fmt: skip
    return own + others
