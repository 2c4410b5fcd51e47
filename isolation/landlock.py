# Keeping a session's processes out of the host's abstract Unix sockets.
#
# Why this module exists: abstract Unix sockets ("\0/tmp/.X11-unix/X0") have
# no file and no permissions; they live in the network namespace.  A session
# that shares the host's network namespace ([session] network = host, the
# default) therefore shares them with every local user.  X clients (libxcb,
# python-xlib) try the abstract name of their display before the socket file,
# so anybody on the host who binds "\0/tmp/.X11-unix/X<N>" first would receive
# the X connections of a session's agent and apps, keystrokes included, even
# though the session's own Xvfb listens only on its private socket file
# (-nolisten local).  Found when a test's client-side Xvfb caught an agent.
#
# Landlock's scoping (ABI 6, Linux 6.12) closes it: after
# landlock_restrict_self() with LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET, processes
# of the domain may connect only to abstract sockets bound inside the same
# domain; a connect to one bound outside fails with EPERM.  libxcb does not
# fall back to the socket file after EPERM (only after ENOENT/ECONNREFUSED),
# so the agent gives Xvfb a display number whose abstract name nobody has
# bound (sessiond/agent/display_number.py).  The restriction is inherited and cannot be
# lifted, and needs no privilege (no_new_privs is set first).  Signals get
# the same scoping: a session's processes may signal only their own.
#
# Older kernels have no scoping; scope_abstract_unix_sockets() then reports
# False and the caller says so in the session's log (docs/security.md).  A
# session with its own network namespace ([session] network = loopback) has
# its own abstract namespace anyway.
"""Landlock scoping of abstract Unix sockets and signals (ctypes)."""

from __future__ import annotations

import ctypes
import os

# x86_64 and aarch64 share the generic syscall numbers for Landlock.
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
LANDLOCK_SCOPE_SIGNAL = 1 << 1
# The first ABI whose ruleset attribute has the "scoped" field.
SCOPE_ABI = 6

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 if Landlock is absent or disabled."""
    result = _syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                      ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))  # fmt: skip
    return int(result) if result > 0 else 0


def scope_abstract_unix_sockets() -> bool:
    """Restrict the caller (and everything it starts) to abstract Unix sockets
    and signal targets of its own Landlock domain.  False if the kernel cannot
    scope; OSError if it can but refused.  Needs no_new_privs (or
    CAP_SYS_ADMIN) already set."""
    if abi_version() < SCOPE_ABI:
        return False
    attr = _RulesetAttr(0, 0, LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL)
    fd = _syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                  ctypes.c_uint32(0))  # fmt: skip
    if fd < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"landlock_create_ruleset: {os.strerror(errno)}")
    try:
        if _syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"landlock_restrict_self: {os.strerror(errno)}")
    finally:
        os.close(fd)
    return True
