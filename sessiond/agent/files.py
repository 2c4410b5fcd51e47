# Writing files the client sends into the session user's ~/Downloads.
#
# Why: the agent runs as the session user inside the sandbox, so files it
# creates have exactly the user's rights there and sessiond (root) never
# writes into a home.  The writer takes a declared size up front, checks it
# against the policy before creating anything, and then accepts chunks in
# order; it never writes past the declared size.  The file is created with
# O_EXCL|O_NOFOLLOW relative to an open directory fd: a name that exists
# (file, directory or symlink) is never replaced or followed, the next
# " (n)" name is tried instead.  An aborted transfer (client gone, channel
# closed, too much data) removes its partial file -- but only if the name
# still refers to the file we created, never whatever replaced it.
"""Chunked, size-bounded, non-overwriting file writer for incoming transfers."""

from __future__ import annotations

import os
import stat

from sessiond.agent.clipboard_policy import FilePolicy
from media.transfer_names import candidate_names, sanitise_name

# Mode of a ~/Downloads the agent has to create.
DOWNLOADS_DIR_MODE = 0o700
# Mode of received files (before the umask): the user's own, like a browser download.
FILE_MODE = 0o644
# Incoming transfers one session may have open at once (each holds an fd).
MAX_OPEN_INCOMING = 8


class TransferRefused(Exception):
    """The transfer is not allowed or not possible; the message is for the user."""


def downloads_dir_fd(home: str, policy: FilePolicy) -> int:
    """An O_DIRECTORY fd on the downloads directory under home, created 0700 if missing.

    The directory itself may be a symlink the user made (their choice, in
    their home); the files in it are never followed.
    """
    relative = os.path.normpath(policy.downloads_dir)
    if os.path.isabs(relative) or relative == ".." or relative.startswith("../"):
        raise TransferRefused(f"the downloads directory {policy.downloads_dir!r} is not inside the home")
    path = os.path.join(home, relative)
    try:
        os.makedirs(path, mode=DOWNLOADS_DIR_MODE, exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise TransferRefused(f"cannot use {path}: {exc.strerror}") from exc


class IncomingFile:
    """One file being received: created at start, filled chunk by chunk, finished or aborted."""

    def __init__(self, dir_fd: int, name: str, size: int, policy: FilePolicy) -> None:
        if not policy.from_client:
            raise TransferRefused("files from the client are not allowed in this session")
        if size < 0 or size > policy.max_file_bytes:
            raise TransferRefused(f"{size} bytes is more than the limit of {policy.max_file_bytes}")
        self.size = size
        self.received = 0
        self.name, self._fd = _create_exclusive(dir_fd, sanitise_name(name))
        self._identity = os.fstat(self._fd)
        self._dir_fd = os.dup(dir_fd)  # ours until the transfer ends (abort unlinks through it)
        self.done = False

    def write(self, chunk: bytes) -> None:
        """Append one chunk; a chunk past the declared size aborts the transfer."""
        if self.done:
            raise TransferRefused("the transfer is already over")
        if self.received + len(chunk) > self.size:
            self.abort()
            raise TransferRefused(f"more data than the {self.size} bytes announced")
        view = memoryview(chunk)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self.abort()
            raise TransferRefused(f"cannot write {self.name}: {exc.strerror}") from exc
        self.received += len(chunk)

    def finish(self) -> str:
        """Close the complete file and return its name; aborts if data is missing."""
        if self.done:
            raise TransferRefused("the transfer is already over")
        if self.received != self.size:
            self.abort()
            raise TransferRefused(f"{self.received} of {self.size} bytes arrived")
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            os.close(self._dir_fd)
            self.done = True
        return self.name

    def abort(self) -> None:
        """Close and remove the partial file (only if the name is still our file); idempotent."""
        if self.done:
            return
        self.done = True
        os.close(self._fd)
        try:
            now = os.stat(self.name, dir_fd=self._dir_fd, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (self._identity.st_dev, self._identity.st_ino):
                os.unlink(self.name, dir_fd=self._dir_fd)
        except OSError:
            pass  # already gone
        finally:
            os.close(self._dir_fd)


def _create_exclusive(dir_fd: int, name: str) -> tuple[str, int]:
    """Create the first free name of name, "name (1)", ... in dir_fd; (name, fd)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for candidate in candidate_names(name):
        try:
            fd = os.open(candidate, flags, FILE_MODE, dir_fd=dir_fd)
        except FileExistsError:
            continue
        except OSError as exc:
            raise TransferRefused(f"cannot create {candidate}: {exc.strerror}") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # cannot happen with O_CREAT|O_EXCL; fail closed
            os.close(fd)
            raise TransferRefused(f"{candidate} is not a regular file")
        return candidate, fd
    raise TransferRefused(f"too many files named like {name}")


class IncomingTransfers:
    """The session's incoming files by transfer id, bounded, all aborted when the client goes."""

    def __init__(self, home: str, policy: FilePolicy) -> None:
        self._home = home
        self.policy = policy
        self._open: dict[int, IncomingFile] = {}

    def start(self, transfer_id: int, name: str, size: int) -> IncomingFile:
        """Begin a transfer (TransferRefused if over the limits or not allowed)."""
        if transfer_id in self._open:
            raise TransferRefused(f"transfer {transfer_id} is already in progress")
        if len(self._open) >= MAX_OPEN_INCOMING:
            raise TransferRefused(f"at most {MAX_OPEN_INCOMING} files may be received at once")
        # Opened per transfer: a ~/Downloads removed or replaced since the
        # last one is found (or made) anew, never written into while deleted.
        dir_fd = downloads_dir_fd(self._home, self.policy)
        try:
            incoming = IncomingFile(dir_fd, name, size, self.policy)
        finally:
            os.close(dir_fd)
        self._open[transfer_id] = incoming
        return incoming

    def data(self, transfer_id: int, chunk: bytes) -> None:
        """One chunk of a transfer in progress (a failure aborts and forgets it)."""
        incoming = self._open.get(transfer_id)
        if incoming is None:
            raise TransferRefused(f"no transfer {transfer_id}")
        try:
            incoming.write(chunk)
        except TransferRefused:
            del self._open[transfer_id]
            raise

    def end(self, transfer_id: int) -> str:
        """The transfer's last chunk arrived: finish it and return the file's name."""
        incoming = self._open.pop(transfer_id, None)
        if incoming is None:
            raise TransferRefused(f"no transfer {transfer_id}")
        return incoming.finish()

    def abort(self, transfer_id: int) -> None:
        """The peer cancelled one transfer: remove its partial file."""
        incoming = self._open.pop(transfer_id, None)
        if incoming is not None:
            incoming.abort()

    def abort_all(self) -> None:
        """The client went away: remove every partial file."""
        for incoming in self._open.values():
            incoming.abort()
        self._open.clear()

    def close(self) -> None:
        """The agent is stopping: abort_all."""
        self.abort_all()
