# The uids a warm slot's X server runs as ([session] x_uids).
#
# Why a uid per slot: a slot starts its Xvfb before anyone logged in, so the
# server cannot run as the user (unknown yet) and must not run as root. It
# runs as a uid of its own (isolation/xslot.py), from a range that belongs to
# no account: no file on the host is owned by it, no other process runs as
# it, and two sessions' X servers (different uids) cannot signal or ptrace
# each other. The uid goes with the slot into its session and is released
# when the sandbox's supervisor ends (its PID namespace, and with it every
# process of that uid, is gone then).
#
# Allocation is the lowest uid of the range that no slot or session of this
# daemon holds and that is not the real, effective or saved uid of any
# process in /proc; the /proc scan also covers sessions a previous sessiond
# started (adopted after a restart) and an X server still being torn down.
# Two daemons on one host (a test run, an operator's second instance) would
# each see the other's uid as free in the instant between allocation and its
# Xvfb's start, so a held uid is also locked host-wide: an flock on
# LOCK_DIR/UID, taken without waiting and held (by an open descriptor) for
# as long as the uid is; a daemon that dies lets go of its locks with it,
# and the /proc scan still covers the sessions it left running. The lock
# files stay (unlinking one another daemon may have open would let two
# daemons lock two different files of one name).
#
# The range is checked once at start against the account databases and
# /etc/subuid, /etc/subgid: if it overlaps any of them, there is no
# pre-started X at all (one error in the log), slots work as without it.
"""parse_x_uids() for the config, XUidRange.check() at start, XUidPool.allocate()/release()."""

from __future__ import annotations

import contextlib
import fcntl
import grp
import os
import pwd
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from isolation.slot import MAX_X_UID, MIN_X_UID

# Largest range accepted: a slot per uid, far more than sessions one host runs.
MAX_X_UID_COUNT = 65536
# Where subordinate id ranges are declared (shadow-utils, user namespaces).
SUBID_FILES = ("/etc/subuid", "/etc/subgid")
# Lines read from one subid file at most (a file of this many ranges is already absurd).
MAX_SUBID_LINES = 100_000
PROC = "/proc"
# Host-wide locks of held uids (see the header): root's, under /run.
LOCK_DIR = "/run/sessiond-x-uids"


def parse_x_uids(value: str) -> tuple[int, int]:
    """[session] x_uids = "FIRST-LAST" -> (FIRST, LAST); ValueError naming the bound crossed."""
    first_text, dash, last_text = value.strip().partition("-")
    if not dash or not first_text.strip().isdigit() or not last_text.strip().isdigit():
        raise ValueError("must be FIRST-LAST (two uids)")
    first, last = int(first_text), int(last_text)
    if not MIN_X_UID <= first <= last <= MAX_X_UID:
        raise ValueError(f"must satisfy {MIN_X_UID} <= FIRST <= LAST <= {MAX_X_UID}")
    if last - first + 1 > MAX_X_UID_COUNT:
        raise ValueError(f"must hold at most {MAX_X_UID_COUNT} uids")
    return first, last


def _subid_ranges(path: str) -> list[tuple[int, int]]:
    """The (first, last) ranges of an /etc/subuid-style file ("name:first:count"); missing: none."""
    ranges: list[tuple[int, int]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle):
                if number >= MAX_SUBID_LINES:
                    break
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() and int(parts[2]) > 0:
                    ranges.append((int(parts[1]), int(parts[1]) + int(parts[2]) - 1))
    except FileNotFoundError:
        pass
    return ranges


@dataclass(frozen=True)
class XUidRange:
    """[session] x_uids: the range a daemon's slot X servers take their uids from."""

    first: int
    last: int

    def overlaps(self, users: Iterable[tuple[str, int]] | None = None,
                 groups: Iterable[tuple[str, int]] | None = None,
                 subid_files: Iterable[str] = SUBID_FILES) -> str | None:  # fmt: skip
        """What in the account databases or subid files lies in the range (a sentence), or None."""
        users = users if users is not None else ((entry.pw_name, entry.pw_uid) for entry in pwd.getpwall())
        groups = groups if groups is not None else ((entry.gr_name, entry.gr_gid) for entry in grp.getgrall())
        for kind, entries in (("user", users), ("group", groups)):
            for name, number in entries:
                if self.first <= number <= self.last:
                    return f"{kind} {name!r} has id {number}"
        for path in subid_files:
            for first, last in _subid_ranges(path):
                if first <= self.last and self.first <= last:
                    return f"{path} delegates {first}-{last}"
        return None


def uids_in_use(proc: str = PROC) -> set[int]:
    """Every real, effective and saved uid of the processes in PROC now."""
    used: set[int] = set()
    try:
        names = os.listdir(proc)
    except OSError:
        return used
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"Uid:"):
                        used.update(int(word) for word in line.split()[1:4])
                        break
        except (OSError, ValueError):
            continue  # the process ended meanwhile
    return used


@dataclass
class XUidPool:
    """Hands out the lowest free uid of RANGE (see the header); release() gives one back.
    lock_dir: where the host-wide locks live (None: none, for tests of one pool alone)."""

    range: XUidRange
    in_use: Callable[[], set[int]] = uids_in_use
    lock_dir: str | None = LOCK_DIR
    _locks: dict[int, int | None] = field(default_factory=dict)  # held uid -> its lock's descriptor

    @property
    def held(self) -> set[int]:
        """The uids this pool holds now."""
        return set(self._locks)

    def allocate(self) -> int | None:
        """The lowest uid of the range nobody holds or runs as, now held (and locked host-wide);
        None if the range is exhausted."""
        busy = self.in_use()
        for uid in range(self.range.first, self.range.last + 1):
            if uid in self._locks or uid in busy:
                continue
            locked, fd = self._lock(uid)
            if locked:
                self._locks[uid] = fd
                return uid
        return None

    def _lock(self, uid: int) -> tuple[bool, int | None]:
        """(True, its descriptor) if UID's host-wide lock is ours now, (True, None) without a lock
        directory, (False, None) if another daemon holds it."""
        if self.lock_dir is None:
            return True, None
        os.makedirs(self.lock_dir, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.lock_dir, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o600)  # fmt: skip
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False, None
        return True, fd

    def release(self, uid: int) -> None:
        """UID's slot or session ended: it and its lock are free again; idempotent."""
        fd = self._locks.pop(uid, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
