# Running commands inside a user's session from a test, as root: nsenter into
# the agent's mount, PID and IPC namespaces as the user, with the session's X
# display and runtime directory, so what runs there is an app of the session.
"""in_session(), give() and app_copies() for the clipboard and file tests."""

from __future__ import annotations

import os
import pwd
import subprocess
import time

from svtest import TestUser


def agent_pid(user: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-u", user, "-f", "sessiond.agent"], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        if len(pids) == 1:
            return pids[0]
        time.sleep(0.1)
    raise AssertionError(f"no single agent for {user}")


def in_session(user: TestUser, *argv: str, stdin: bytes | None = None, timeout: float = 60,
               background: bool = False) -> subprocess.CompletedProcess[bytes] | subprocess.Popen[bytes]:  # fmt: skip
    """Run ARGV as USER inside the session (its namespaces, its X display, its runtime dir)."""
    pid, uid = agent_pid(user.name), pwd.getpwnam(user.name).pw_uid
    display = ":" + subprocess.run(["nsenter", "-t", str(pid), "-m", "--", "ls", "/tmp/.X11-unix"],
                                   capture_output=True, text=True, check=True).stdout.split()[0][1:]  # fmt: skip
    home = pwd.getpwnam(user.name).pw_dir
    argv_all = ["nsenter", "-t", str(pid), "-m", "-p", "-i", "-S", str(uid), "-G", str(uid), "--", "env", "-i",
                "PATH=/usr/bin:/bin", f"HOME={home}", f"DISPLAY={display}", f"XDG_RUNTIME_DIR=/run/user/{uid}",
                *argv]  # fmt: skip
    if background:
        return subprocess.Popen(argv_all, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return subprocess.run(argv_all, input=stdin, capture_output=True, timeout=timeout)


def give(user: TestUser, name: str, data: bytes) -> str:
    """Put DATA into the user's home as NAME, owned by the user; returns the path."""
    entry = pwd.getpwnam(user.name)
    path = os.path.join(entry.pw_dir, name)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def app_copies(user: TestUser, path: str, mime: str) -> None:
    """xclip in the session takes CLIPBOARD with the file's content (it keeps serving in the background)."""
    done = in_session(user, "sh", "-c", f'xclip -selection clipboard -t "{mime}" -i "$0" >/dev/null 2>&1', path)
    assert done.returncode == 0, done.stderr  # type: ignore[union-attr]
    time.sleep(0.5)  # the agent reads the new owner's TARGETS
