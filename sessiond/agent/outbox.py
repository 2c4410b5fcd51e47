# ~/Outbox: files an app or the user saves there are offered to the client once.
#
# Why polling, not inotify: a file is ready only when its writer is done,
# and no single event says so -- IN_CLOSE_WRITE fires on every close, and
# apps write, close, reopen and append (or write a temp name and rename).
# So readiness needs a "size and mtime unchanged since the last look" check
# on a timer whatever the notification mechanism, plus a look at who still
# has the file open for writing.  With that timer in place, inotify would
# only save one scandir of a (nearly always empty) directory per second
# (~10 us), at the price of a ctypes binding, a kernel event-stream parser
# and IN_Q_OVERFLOW recovery (a rescan anyway).  Polling is the smaller
# thing that is right.
#
# Bounds: at most MAX_OUTBOX_ENTRIES entries are looked at per poll, and
# what is remembered (files already offered) is pruned to what is still in
# the directory, so memory follows the directory, not its history.
"""Polls ~/Outbox and offers each complete regular file to the client once."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable

from protocol.frozen import frozen_dataclass
from sessiond.agent.clipboard_policy import FilePolicy

# Seconds between looks at the directory.
OUTBOX_POLL_SECONDS = 1.0
# A file whose size and mtime did not change across this many looks is
# complete (with OUTBOX_POLL_SECONDS: unchanged for at least a second).
STABLE_POLLS = 2
# Directory entries looked at per poll (a directory of 100k files costs no more).
MAX_OUTBOX_ENTRIES = 256
# Names apps use while still writing (browsers, office suites, editors, rsync).
PARTIAL_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", "~")
# File descriptors looked at in /proc per readiness check (bounds the cost
# of a session with many processes; past it the file is taken as still open).
MAX_PROC_FDS_SCANNED = 65536


@frozen_dataclass
class OutgoingFile:
    """A file to offer to the client: its name, size, an open read-only fd, and where it came from."""

    name: str
    size: int
    fd: int
    source: str  # "outbox" or "send"


# The integrator's callback: None when the file was taken (it then owns the
# fd), or the reason it was refused (the caller closes the fd).
OfferFile = Callable[[OutgoingFile], "str | None"]
Identity = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns


class OutboxWatcher:
    """Offers every complete regular file that appears in the outbox, once per version."""

    def __init__(self, path: str, policy: FilePolicy, offer: OfferFile, log: Callable[[str], None],
                 open_for_writing: Callable[[int, int], bool] | None = None) -> None:  # fmt: skip
        self.path = path
        self.policy = policy
        self._offer = offer
        self._log = log
        self._open_for_writing = open_for_writing or file_open_for_writing
        self._seen: dict[str, tuple[Identity, int]] = {}  # name -> (identity, unchanged looks)
        self._offered: dict[str, Identity] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.active = False  # offers are made only while a client is attached

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Create the outbox (0700) if missing and poll it every OUTBOX_POLL_SECONDS."""
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        self._schedule(loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        def tick() -> None:
            self.poll()
            self._schedule(loop)

        self._timer = loop.call_later(OUTBOX_POLL_SECONDS, tick)

    def stop(self) -> None:
        """Stop polling."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def forget(self, name: str) -> None:
        """The client never took name (declined, or went away first): offer it again next time."""
        self._offered.pop(name, None)

    def poll(self) -> list[str]:
        """Look once; offer what is complete and new; return the names offered."""
        if not self.policy.to_client:
            return []
        entries = _list(self.path)
        present = set(entries)
        for gone in [name for name in self._seen if name not in present]:
            del self._seen[gone]
        for gone in [name for name in self._offered if name not in present]:
            del self._offered[gone]
        offered = []
        for name in entries:
            identity = self._regular_identity(name)
            if identity is None:
                continue
            previous = self._seen.get(name)
            looks = previous[1] + 1 if previous is not None and previous[0] == identity else 1
            self._seen[name] = (identity, looks)
            if looks < STABLE_POLLS or self._offered.get(name) == identity or not self.active:
                continue
            if identity[2] > self.policy.max_file_bytes:
                continue
            if self._open_for_writing(identity[0], identity[1]):
                continue
            if self._try_offer(name, identity):
                offered.append(name)
        return offered

    def _regular_identity(self, name: str) -> Identity | None:
        if name.startswith(".") or name.endswith(PARTIAL_SUFFIXES):
            return None
        try:
            st = os.lstat(os.path.join(self.path, name))
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None  # directories, symlinks, fifos: never offered
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _try_offer(self, name: str, identity: Identity) -> bool:
        try:
            fd = os.open(os.path.join(self.path, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return False
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != identity[:2]:
            os.close(fd)
            return False
        refused = self._offer(OutgoingFile(name, st.st_size, fd, "outbox"))
        if refused is not None:
            os.close(fd)
            return False
        self._offered[name] = identity
        return True


def _list(path: str) -> list[str]:
    names: list[str] = []
    try:
        with os.scandir(path) as it:
            for entry in it:
                names.append(entry.name)
                if len(names) >= MAX_OUTBOX_ENTRIES:
                    break
    except OSError:
        return []
    return sorted(names)


def file_open_for_writing(dev: int, ino: int, proc: str = "/proc") -> bool:
    """True if some process we can see has (dev, ino) open for writing.

    Only the session user's processes are visible (the agent runs as them),
    which are the ones that write into their Outbox.  Past
    MAX_PROC_FDS_SCANNED descriptors the answer is True (wait, look again).
    """
    scanned = 0
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return False
    for pid in pids:
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # another user's process, or gone
        for fd in fds:
            scanned += 1
            if scanned > MAX_PROC_FDS_SCANNED:
                return True
            try:
                st = os.stat(f"{fd_dir}/{fd}")
                if (st.st_dev, st.st_ino) != (dev, ino):
                    continue
                with open(f"{proc}/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                    for line in info:
                        if line.startswith("flags:"):
                            if (int(line.split()[1], 8) & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR):
                                return True
                            break
            except (OSError, ValueError, IndexError):
                continue
    return False
