# Choosing the session's X display number.
#
# Why this module exists: X clients built on libxcb (xterm, Qt, GTK, the
# agent's own libX11 capture connection) connect to display N by trying the
# abstract Unix socket "\0/tmp/.X11-unix/XN" first and fall back to the
# socket file only if that connect fails with ENOENT or ECONNREFUSED
# (libxcb's _xcb_open).  Abstract names live in the network namespace, which
# a session shares with the host by default ([session] network = host).  The
# session's Xvfb listens only on its socket file (-nolisten local), but any
# X server or user on the host may have bound the abstract name of the same
# number: Landlock scoping (isolation/landlock.py) then refuses the connect
# with EPERM, which libxcb does not fall back from, so every X client of the
# session failed ("cannot open X display ':0'") whenever the host had an X
# server of its own on :0 (a workstation's desktop, a test's Xvfb).  Without
# scoping (older kernels) the connect would reach that foreign server.
#
# So Xvfb is given a number whose abstract name nobody has bound and whose
# lock and socket files are free (the session's /tmp is private, but the
# tests start Xvfb in the host's /tmp too).  Someone who binds the name after
# this check can make the session's later X clients fail (EPERM), never
# receive them; docs/security.md says so.
"""free_display_numbers(): display numbers whose abstract X socket name and files are free."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterator
from typing import Final

# Display numbers looked at before giving up (a host with this many X servers
# bound in the abstract namespace is not a place to start one more).
MAX_DISPLAY_PROBES: Final = 64
X11_SOCKET_DIR: Final = "/tmp/.X11-unix"
# connect() results that mean nobody has bound an abstract name (as libxcb reads them).
_UNBOUND: Final = frozenset({errno.ENOENT, errno.ECONNREFUSED})


def abstract_name_taken(number: int) -> bool:
    """True if the abstract socket name of display `number` is bound by anyone:
    a connect that succeeds (nothing is sent), is refused by Landlock (EPERM: bound
    outside the session) or fails otherwise; libxcb would not fall back to the file."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        return probe.connect_ex(f"\0{X11_SOCKET_DIR}/X{number}") not in _UNBOUND
    finally:
        probe.close()


# Where Linux lists the Unix sockets of the reader's network namespace (abstract names with "@").
PROC_NET_UNIX: Final = "/proc/net/unix"
# Bytes of it read at most (~100 bytes a socket: far more sockets than a host has).
MAX_PROC_NET_UNIX_BYTES: Final = 32 * 1024 * 1024


def bound_abstract_displays(table: str = PROC_NET_UNIX) -> set[int]:
    """Display numbers whose abstract X socket name is bound in this network namespace, from
    /proc/net/unix: without connecting to anyone (a warm slot checks as root, before the
    session's Landlock scoping, and must not reach a host process's socket; isolation/xslot.py)."""
    prefix = f"@{X11_SOCKET_DIR}/X"
    found: set[int] = set()
    with open(table, "rb") as handle:
        text = handle.read(MAX_PROC_NET_UNIX_BYTES).decode("utf-8", "replace")
    for line in text.splitlines()[1:]:
        path = line.split()[-1] if len(line.split()) >= 8 else ""
        digits = path[len(prefix):] if path.startswith(prefix) else ""
        if digits.isascii() and digits.isdigit() and len(digits) <= 5:
            found.add(int(digits))
    return found


def files_taken(number: int, tmp: str = "/tmp") -> bool:
    """True if display `number`'s lock file or socket file exists in `tmp`."""
    return os.path.lexists(f"{tmp}/.X{number}-lock") or os.path.lexists(f"{tmp}/.X11-unix/X{number}")


def free_display_numbers(start: int = 0, taken: Callable[[int], bool] | None = None) -> Iterator[int]:
    """Display numbers from `start` (up to MAX_DISPLAY_PROBES of them looked at)
    whose files and abstract name are free, lowest first."""
    is_taken = taken or (lambda number: files_taken(number) or abstract_name_taken(number))
    for number in range(start, start + MAX_DISPLAY_PROBES):
        if not is_taken(number):
            yield number
