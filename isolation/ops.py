# The system operations isolation.enter performs, behind one Protocol.
#
# Why a module of its own: enter.py is the sequence (what happens in which
# order and what each failure means); this is the surface that touches the
# kernel. Keeping the SandboxOps Protocol and its real implementation
# (LinuxOps) here lets the sequence be unit-tested against a recorder fake
# and keeps each file small enough to review line by line: every method is
# one system call or a tiny, fixed group of them, with no data-driven
# branching beyond the spec's typed fields.
"""SandboxOps (the operations enter needs) and LinuxOps (the real kernel)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn, Protocol

from isolation import init, landlock, linux, xslot, zygote
from isolation.cgroups import CgroupError, detect_backend


class SandboxOps(Protocol):
    """The system operations enter needs; LinuxOps is the real one."""

    def geteuid(self) -> int: ...
    def unshare(self, flags: int) -> None: ...
    def fork(self) -> int: ...
    def supervise(self, child: int) -> int: ...
    def run_init(self, agent: int) -> int: ...
    def set_parent_death_signal(self) -> None: ...
    def join_cgroup(self, session_id: str) -> None: ...
    def make_rprivate(self) -> None: ...
    def mount_proc(self) -> None: ...
    def set_hostname(self, name: str) -> None: ...
    def loopback_up(self) -> None: ...
    def mount_tmpfs(self, target: str, options: str) -> None: ...
    def make_root_dir(self, path: str, mode: int) -> None: ...
    def drop_bounding_set(self) -> None: ...
    def clear_ambient_caps(self) -> None: ...
    def setgroups(self, groups: Sequence[int]) -> None: ...
    def setresgid(self, gid: int) -> None: ...
    def setresuid(self, uid: int) -> None: ...
    def clear_all_caps(self) -> None: ...
    def set_no_new_privs(self) -> None: ...
    def scope_abstract_sockets(self) -> bool: ...
    def chdir(self, path: str) -> None: ...
    def umask(self, mask: int) -> None: ...
    def stdin_from_devnull(self) -> None: ...
    def close_fds(self, keep: Sequence[int]) -> None: ...
    def execve(self, path: str, argv: Sequence[str], env: Mapping[str, str]) -> None: ...


class LinuxOps:
    """SandboxOps on the real kernel (linux.py and os)."""

    def __init__(self, in_process_agent: bool = False) -> None:
        self.forwarder = init.SignalForwarder()
        # A zygote (isolation.zygote) runs the agent here instead of exec'ing it.
        self.in_process_agent = in_process_agent

    def geteuid(self) -> int:
        return os.geteuid()

    def unshare(self, flags: int) -> None:
        linux.unshare(flags)

    def fork(self) -> int:
        # Handlers go in before the fork, so a SIGTERM from sessiond in the
        # window before the wait loop is queued and forwarded, not lost.
        if not self.forwarder.installed:
            # Leave sessiond's process group first (see execve below).
            with contextlib.suppress(PermissionError):
                os.setsid()
        self.forwarder.install()
        pid = os.fork()
        if pid == 0:
            self.forwarder.forget()
        return pid

    def supervise(self, child: int) -> int:
        self.forwarder.set_target(child)
        return self._become_waiter(init.SUPERVISE, child, lambda: init.wait_for(child))

    def run_init(self, agent: int) -> int:
        self.forwarder.set_target(agent)
        return self._become_waiter(init.INIT, agent, lambda: init.reap_until(agent))

    def _become_waiter(self, role: str, child: int, wait_here: Callable[[], int]) -> int:
        """Exec the native waiter, else init.py's loop in a minimal interpreter (see
        isolation/init.py: either keeps none of this process's memory); if no exec
        succeeds, wait in this process."""
        for argv in init.waiter_argvs(role, child):
            with contextlib.suppress(OSError):
                os.execv(argv[0], argv)
        return wait_here()

    def set_parent_death_signal(self) -> None:
        linux.set_parent_death_signal(signal.SIGKILL)

    def join_cgroup(self, session_id: str) -> None:
        try:
            detect_backend().attach(session_id, 0)
        except CgroupError as exc:
            raise OSError(0, str(exc)) from None

    def make_rprivate(self) -> None:
        linux.make_rprivate("/")

    def mount_proc(self) -> None:
        linux.mount_proc("/proc")

    def set_hostname(self, name: str) -> None:
        socket.sethostname(name)

    def loopback_up(self) -> None:
        linux.interface_up("lo")

    def mount_tmpfs(self, target: str, options: str) -> None:
        linux.mount("tmpfs", target, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, options)

    def make_root_dir(self, path: str, mode: int) -> None:
        """Create `path` root-owned with `mode` unless it exists; refuse symlinks."""
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode):
                raise OSError(f"{path} exists and is not a directory") from None
            if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
                raise OSError(f"{path} is writable by group/other") from None
            return
        os.chown(path, 0, 0, follow_symlinks=False)
        os.chmod(path, mode, follow_symlinks=False)

    def drop_bounding_set(self) -> None:
        linux.drop_bounding_set()

    def clear_ambient_caps(self) -> None:
        linux.clear_ambient_caps()

    def setgroups(self, groups: Sequence[int]) -> None:
        os.setgroups(list(groups))

    def setresgid(self, gid: int) -> None:
        os.setresgid(gid, gid, gid)

    def setresuid(self, uid: int) -> None:
        os.setresuid(uid, uid, uid)

    def clear_all_caps(self) -> None:
        linux.clear_all_caps()

    def set_no_new_privs(self) -> None:
        linux.set_no_new_privs()

    def scope_abstract_sockets(self) -> bool:
        return landlock.scope_abstract_unix_sockets()

    def chdir(self, path: str) -> None:
        os.chdir(path)

    def umask(self, mask: int) -> None:
        os.umask(mask)

    def stdin_from_devnull(self) -> None:
        null = os.open(os.devnull, os.O_RDONLY)
        if null != 0:
            os.dup2(null, 0)
            os.close(null)

    def close_fds(self, keep: Sequence[int]) -> None:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2 and fd not in keep:
                # The listdir fd itself is in the list, already closed.
                with contextlib.suppress(OSError):
                    os.close(fd)
        for fd in keep:
            os.set_inheritable(fd, True)

    # The slot's X server (isolation/xslot.py: XSlotOps).

    def xvfb_pipe(self) -> tuple[int, int]:
        return os.pipe()

    def xvfb_output(self) -> int:
        return os.memfd_create("xvfb-output", os.MFD_CLOEXEC)

    def close(self, fd: int) -> None:
        os.close(fd)

    def bound_to_ipc_owner(self) -> None:
        linux.drop_bounding_set_except(linux.CAP_IPC_OWNER)

    def set_keep_caps(self) -> None:
        linux.set_keep_caps(True)

    def keep_only_ipc_owner(self) -> None:
        linux.set_only_cap(linux.CAP_IPC_OWNER)

    def exec_xvfb(self, argv: Sequence[str], env: Mapping[str, str], displayfd: int, output: int) -> None:
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(output, 2)
        os.set_inheritable(displayfd, True)
        self.close_fds((displayfd,))
        for signum in (signal.SIGPIPE, signal.SIGXFSZ, *init.FORWARDED_SIGNALS):
            signal.signal(signum, signal.SIG_DFL)
        os.execvpe(argv[0], list(argv), dict(env))

    def report(self, output: int, line: str) -> None:
        with contextlib.suppress(OSError):
            os.write(output, line.encode("utf-8", "replace") + b"\n")

    def exit_now(self, status: int) -> NoReturn:
        os._exit(status)

    def read_display_number(self, fd: int, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        data = b""
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, xslot.MAX_DISPLAYFD_BYTES)
            data += chunk
            if not chunk or len(data) > xslot.MAX_DISPLAYFD_BYTES:
                return None
        return xslot.parse_display_number(data)

    def read_output(self, fd: int, limit: int) -> bytes:
        return os.pread(fd, limit, 0)

    def spec_before_x_exit(self, pid: int) -> bool:
        # Wait for the spec (stdin readable: data or the end) or PID's exit, whichever is
        # first; a zombie counts as exited. Both ends come from the same select, so an X
        # server that dies while the slot waits ends the slot instead of its login.
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        try:
            readable, _, _ = select.select([sys.stdin.fileno(), pidfd], [], [])
            return sys.stdin.fileno() in readable
        finally:
            os.close(pidfd)

    def attach_to_cgroup(self, session_id: str, pid: int) -> None:
        try:
            detect_backend().attach(session_id, pid)
        except CgroupError as exc:
            raise OSError(0, str(exc)) from None

    def in_cgroup(self, session_id: str, pid: int) -> bool:
        # /proc is this PID namespace's (private_mounts), as PID is this namespace's pid.
        try:
            with open(f"/proc/{pid or 'self'}/cgroup", encoding="ascii") as handle:
                text = handle.read()
            return detect_backend().member(session_id, text)
        except (OSError, CgroupError, UnicodeDecodeError):
            return False

    def execve(self, path: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        # A session of its own: the sandbox leaves sessiond's process group
        # and controlling terminal, so a Ctrl-C aimed at sessiond (or a
        # signal to its group) never reaches the user's session.
        with contextlib.suppress(PermissionError):
            os.setsid()
        if self.in_process_agent and zygote.runs_in_process(argv):
            zygote.run_in_process(argv, env)  # exits with the agent's status
            sys.exit(0)
        # Python ignores SIGPIPE and SIGXFSZ; exec keeps ignored signals, and
        # session programs (shells, pipelines) expect the defaults.
        for signum in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(signum, signal.SIG_DFL)
        os.execve(path, list(argv), dict(env))
