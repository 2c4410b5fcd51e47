# The only module that talks to libc directly.
#
# Why: Python 3.11 has no os.unshare, os.mount, prctl or capset. Rather than
# shelling out to util-linux or bubblewrap, the few system calls the sandbox
# needs are bound here with ctypes, each wrapped so that a failure raises
# OSError with the real errno (never a silent -1). Keeping every ctypes call
# in one small module makes the privileged surface easy to audit and lets
# enter.py be unit-tested against a fake of this module's functions.
"""Thin, checked ctypes bindings: unshare, mount, prctl, capset; lo up."""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

# clone(2)/unshare(2) flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# Map of SandboxSpec namespace names to unshare flags. "pid" takes effect for
# the first child forked after unshare (enter.py forks for it).
NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
}

# mount(2) flags (linux/mount.h).
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 0x40000

# prctl(2) options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# The one capability a slot's X server keeps (linux/capability.h): shmat() of
# SysV segments its clients own (isolation/xslot.py).
CAP_IPC_OWNER = 15

# Network interface ioctls (linux/sockios.h) and flags (linux/if.h).
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
# struct ifreq: 16-byte name, then a union padded to 24 bytes.
IFREQ_SIZE = 40
IFNAMSIZ = 16

# capset(2) ABI version with 64-bit capability sets (linux/capability.h).
LINUX_CAPABILITY_VERSION_3 = 0x20080522
# Capability sets in version 3 are two 32-bit words each.
CAPABILITY_U32S_3 = 2

# Highest capability number to assume if /proc/sys/kernel/cap_last_cap is
# unreadable: the bounding set is 64 bits wide; dropping an unknown cap is
# EINVAL, which drop_bounding_set tolerates only above the kernel's last cap.
CAP_LAST_CAP_FALLBACK = 63
CAP_LAST_CAP_PATH = "/proc/sys/kernel/cap_last_cap"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_libc = ctypes.CDLL("libc.so.6", use_errno=True)

_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_unshare.restype = ctypes.c_int

_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                   ctypes.c_ulong, ctypes.c_char_p]
_mount.restype = ctypes.c_int

_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                   ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int

_capset = _libc.capset
_capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_capset.restype = ctypes.c_int


def _check(result: int, what: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _path(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    """unshare(2): move this process into new namespaces given by CLONE_* flags."""
    _check(_unshare(flags), f"unshare(0x{flags:x})")


def mount(source: str | None, target: str, fstype: str | None,
          flags: int, data: str | None = None) -> None:
    """mount(2) with the raw flags; raises OSError naming the target."""
    _check(
        _mount(_path(source), os.fsencode(target), _path(fstype), flags, _path(data)),
        f"mount {fstype or ''} on {target}",
    )


def make_rprivate(target: str = "/") -> None:
    """Make every mount under `target` private, so nothing propagates to the host."""
    mount(None, target, None, MS_REC | MS_PRIVATE)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns the call's result or raises OSError."""
    return _check(_prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


def cap_last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open(CAP_LAST_CAP_PATH, "rb") as handle:
            value = int(handle.read(16).strip())
    except (OSError, ValueError):
        return CAP_LAST_CAP_FALLBACK
    return min(value, CAP_LAST_CAP_FALLBACK)


def drop_bounding_set() -> None:
    """Drop every capability from the bounding set (needs CAP_SETPCAP)."""
    for cap in range(cap_last_cap() + 1):
        prctl(PR_CAPBSET_DROP, cap)


def drop_bounding_set_except(keep: int) -> None:
    """Drop every capability but KEEP from the bounding set (needs CAP_SETPCAP)."""
    for cap in range(cap_last_cap() + 1):
        if cap != keep:
            prctl(PR_CAPBSET_DROP, cap)


def set_keep_caps(keep: bool) -> None:
    """PR_SET_KEEPCAPS: keep the permitted set across the next switch away from uid 0."""
    prctl(PR_SET_KEEPCAPS, int(keep))


def set_only_cap(cap: int) -> None:
    """capset(2): effective, permitted and inheritable = {CAP}, then raise CAP in the ambient
    set, so an execve of an unprivileged program keeps exactly CAP."""
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * CAPABILITY_U32S_3)()
    word, bit = divmod(cap, 32)
    data[word].effective = data[word].permitted = data[word].inheritable = 1 << bit
    _check(_capset(ctypes.byref(header), data), f"capset({cap})")
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def clear_ambient_caps() -> None:
    """Empty the ambient capability set."""
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def clear_all_caps() -> None:
    """capset(2): empty the effective, permitted and inheritable sets."""
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * CAPABILITY_U32S_3)()
    _check(_capset(ctypes.byref(header), data), "capset(0)")


def set_no_new_privs() -> None:
    """Set no_new_privs: execve can never grant privileges again (setuid, fcaps)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_parent_death_signal(signum: int) -> None:
    """Ask the kernel to send `signum` to this process when its parent dies."""
    prctl(PR_SET_PDEATHSIG, signum)


def mount_proc(target: str = "/proc") -> None:
    """Mount a fresh procfs for the caller's PID namespace on `target`."""
    mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def interface_up(name: str = "lo") -> None:
    """Set IFF_UP on interface `name` in the caller's network namespace."""
    encoded = name.encode("ascii")
    if not encoded or len(encoded) >= IFNAMSIZ:
        raise OSError(0, f"invalid interface name {name!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(f"{IFNAMSIZ}sh", encoded, 0).ljust(IFREQ_SIZE, b"\0")
        reply = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request)
        flags = struct.unpack_from("h", reply, IFNAMSIZ)[0]
        request = struct.pack(f"{IFNAMSIZ}sh", encoded, flags | IFF_UP).ljust(IFREQ_SIZE, b"\0")
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, request)
