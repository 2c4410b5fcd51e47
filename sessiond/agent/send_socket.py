# The agent's end of `sessiond-send`: a tiny local protocol for handing files over.
#
# Why a socket of our own, and this protocol: a program in the session (a
# shell script, an app's "export" action) must be able to say "send these
# files to my device" without knowing anything about sessiond's wire.  The
# socket lives in the session's $XDG_RUNTIME_DIR, is created 0600, and each
# connection is checked with SO_PEERCRED: only the session user's own
# processes may use it.  The request passes open file descriptors
# (SCM_RIGHTS), not paths: the agent sends exactly the file the user named
# at the moment they named it, with no path to re-resolve (no TOCTOU, no
# symlink games), and reading rights are the caller's.
#
# Protocol (AF_UNIX, SOCK_SEQPACKET, so one message is one request):
#   request: JSON {"v": 1, "names": [NAME, ...]}, at most MAX_REQUEST_BYTES,
#            with one fd per name in SCM_RIGHTS, 1..MAX_FILES_PER_REQUEST;
#   reply:   JSON {"v": 1, "results": [{"name", "ok", "message"}, ...]};
#   then the agent closes the connection.  A truncated message (MSG_TRUNC or
#   MSG_CTRUNC), a count mismatch or bad JSON gets an error reply and the
#   close; fds received are closed unless handed to the offer callback.
"""Agent side of sessiond-send: a 0600, SO_PEERCRED-checked SEQPACKET socket taking fds."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import struct
from collections.abc import Callable
from typing import Any

from sessiond.agent.clipboard_policy import FilePolicy
from sessiond.agent.outbox import OfferFile, OutgoingFile
from media.transfer_names import UnusableName, sanitise_name

SEND_SOCKET_NAME = "sessiond-send.sock"
PROTOCOL_VERSION = 1
# One request's JSON (names only; the files travel as fds).
MAX_REQUEST_BYTES = 64 * 1024
# Files per request (fds in one SCM_RIGHTS message).
MAX_FILES_PER_REQUEST = 32
# Connections served at once; more are closed at accept.
MAX_CONNECTIONS = 4
# A client must send its request within this long after connecting.
REQUEST_TIMEOUT_SECONDS = 5.0
# A reply is small: at most this per file result message.
MAX_MESSAGE_CHARS = 200
_UCRED = struct.Struct("3i")  # pid, uid, gid


def send_socket_path(runtime_dir: str) -> str:
    """Where the socket lives in a session's runtime directory.

    Both ends take that directory from audio_server.runtime_dir() (the
    session's XDG_RUNTIME_DIR, else a private directory under /tmp), so
    they agree even where XDG_RUNTIME_DIR is not set.
    """
    return os.path.join(runtime_dir, SEND_SOCKET_NAME)


class SendSocketServer:
    """Accepts sessiond-send requests from the session user and offers their files."""

    def __init__(self, loop: asyncio.AbstractEventLoop, path: str, policy: FilePolicy, offer: OfferFile,
                 log: Callable[[str], None]) -> None:  # fmt: skip
        self._loop = loop
        self.path = path
        self.policy = policy
        self._offer = offer
        self._log = log
        self._conns: dict[socket.socket, asyncio.TimerHandle] = {}
        if os.path.lexists(path):
            os.unlink(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        old_umask = os.umask(0o177)
        try:
            self._sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self._sock.listen(MAX_CONNECTIONS)
        loop.add_reader(self._sock.fileno(), self._accept)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._log(f"sessiond-send: accept failed: {exc}")
                return
            conn.setblocking(False)
            if len(self._conns) >= MAX_CONNECTIONS or not _same_user(conn):
                conn.close()
                continue
            self._conns[conn] = self._loop.call_later(REQUEST_TIMEOUT_SECONDS, self._drop, conn)
            self._loop.add_reader(conn.fileno(), self._readable, conn)

    def _drop(self, conn: socket.socket) -> None:
        timer = self._conns.pop(conn, None)
        if timer is not None:
            timer.cancel()
            self._loop.remove_reader(conn.fileno())
        conn.close()

    def _readable(self, conn: socket.socket) -> None:
        try:
            data, fds, flags, _ = socket.recv_fds(conn, MAX_REQUEST_BYTES, MAX_FILES_PER_REQUEST,
                                                  socket.MSG_CMSG_CLOEXEC)  # fmt: skip
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._log(f"sessiond-send: receive failed: {exc}")
            self._drop(conn)
            return
        try:
            if not data and not fds:  # the peer closed without asking
                return
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                reply = _error(f"request larger than {MAX_REQUEST_BYTES} bytes or {MAX_FILES_PER_REQUEST} files")
            else:
                reply = self._handle(data, fds)
                fds = []  # _handle owns them now
            try:
                conn.send(json.dumps(reply).encode())
            except OSError:
                pass
        finally:
            for fd in fds:
                os.close(fd)
            self._drop(conn)

    def _handle(self, data: bytes, fds: list[int]) -> dict[str, Any]:
        try:
            request = json.loads(data)
            names = request["names"]
            if request.get("v") != PROTOCOL_VERSION or not isinstance(names, list) or len(names) != len(fds) \
                    or not all(isinstance(n, str) for n in names) or not names:  # fmt: skip
                raise ValueError("malformed")
        except (ValueError, KeyError, TypeError):
            for fd in fds:
                os.close(fd)
            return _error("malformed request")
        results = [self._offer_one(name, fd) for name, fd in zip(names, fds)]
        return {"v": PROTOCOL_VERSION, "results": results}

    def _offer_one(self, name: str, fd: int) -> dict[str, Any]:
        def refuse(why: str) -> dict[str, Any]:
            os.close(fd)
            return {"name": name[:MAX_MESSAGE_CHARS], "ok": False, "message": why[:MAX_MESSAGE_CHARS]}

        if not self.policy.to_client:
            return refuse("sending files to the client is not allowed in this session")
        try:
            safe = sanitise_name(os.path.basename(name))
        except UnusableName as exc:
            return refuse(str(exc))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return refuse("not a regular file")
        if st.st_size > self.policy.max_file_bytes:
            return refuse(f"larger than the limit of {self.policy.max_file_bytes} bytes")
        refused = self._offer(OutgoingFile(safe, st.st_size, fd, "send"))
        if refused is not None:
            return refuse(refused)
        return {"name": safe, "ok": True, "message": f"offered to the client ({st.st_size} bytes)"}

    def close(self) -> None:
        """Stop accepting, drop open connections and remove the socket."""
        self._loop.remove_reader(self._sock.fileno())
        for conn in list(self._conns):
            self._drop(conn)
        self._sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    _pid, uid, _gid = _UCRED.unpack(creds)
    return bool(uid == os.getuid())


def _error(message: str) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "error": message[:MAX_MESSAGE_CHARS], "results": []}
