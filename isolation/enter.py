# `python -m isolation.enter`: the privileged child that builds the sandbox.
#
# Why a separate process: sessiond is a long-running Twisted daemon holding
# sockets, threads and secrets; forking it and calling unshare/setuid in the
# child would inherit all of that. Instead sessiond spawns this small program
# (argv only, no shell, a clean environment), writes one SandboxSpec on its
# stdin and closes it. Running as root, this program creates the namespaces
# and private mounts, drops every privilege, VERIFIES the drop from the
# kernel's point of view, and execs the session program as the user with an
# environment built only from the spec and the account. With a PID namespace
# it forks first: this process stays outside as the sandbox's supervisor (the
# pid sessiond tracks), the child joins the session cgroup, builds the sandbox
# as PID 1's predecessor, drops privileges and forks once more: it stays as
# the namespace's init (isolation/init.py), its child execs the agent. Any doubt ends the
# start with a distinct exit status and one line on stderr:
#   70 a privilege-drop check failed, 71 bad spec, 72 namespace/mount failed,
#   127 the program could not be exec'd.
# The system calls go through a SandboxOps object so the whole sequence can
# be unit-tested with a recorder fake. With --zygote (isolation/zygote.py)
# the agent's code is imported before the spec is read and the agent runs in
# the forked process instead of being exec'd.
"""Build the session sandbox from a spec on stdin, drop root, verify, exec."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import BinaryIO, Protocol, TextIO

from isolation import init, landlock, linux, zygote
from isolation.accounts import Account, AccountError, lookup_account
from isolation.cgroups import CgroupError, detect_backend
from isolation.privcheck import DEFAULT_CHECKS, DropCheck, first_failure
from isolation.spec import MAX_SPEC_BYTES, SandboxSpec, SpecError, from_json

EXIT_DROP_FAILED = 70
EXIT_BAD_SPEC = 71
EXIT_SETUP_FAILED = 72
EXIT_EXEC_FAILED = 127

# Where per-user runtime directories live (XDG Base Directory / logind layout).
RUNTIME_BASE = "/run/user"
X11_SOCKET_DIR = "/tmp/.X11-unix"
# tmpfs sizes: each mount's ceiling on RAM a session can pin; the session
# cgroup's memory limit (tmpfs pages are charged to it) bounds the total. Xvfb framebuffers live in SysV shm,
# not here, so these can stay modest.
TMP_TMPFS_SIZE = "1024m"
# /var/tmp is private like /tmp (files there are meant to survive a reboot, not
# to be shared between sessions); it shares /tmp's ceiling.
VAR_TMP_DIR = "/var/tmp"
SHM_TMPFS_SIZE = "512m"
RUNTIME_TMPFS_SIZE = "64m"
# Smallest uid enter.py re-checks against; the login policy (min_uid) is
# sessiond's and was applied when the spec was built; here only "not root".
ENTER_MIN_UID = 1
# Read granularity for the spec on stdin.
READ_CHUNK = 4096

PROG = "isolation.enter"


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
        """Exec init.py's loop in a minimal interpreter (see isolation/init.py: it keeps
        none of this process's memory); if that exec fails, wait in this process."""
        argv = init.waiter_argv(role, child)
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


class EnterFailure(Exception):
    """Abort the start with `status` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_spec(stdin: BinaryIO) -> SandboxSpec:
    """Read stdin to EOF (at most MAX_SPEC_BYTES) and decode the spec."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stdin.read(READ_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > MAX_SPEC_BYTES:
            raise EnterFailure(EXIT_BAD_SPEC, f"bad spec: more than {MAX_SPEC_BYTES} bytes")
        chunks.append(chunk)
    try:
        return from_json(b"".join(chunks))
    except SpecError as exc:
        raise EnterFailure(EXIT_BAD_SPEC, f"bad spec: {exc}") from None


def check_account(spec: SandboxSpec, lookup: Callable[..., Account]) -> None:
    """Refuse a spec whose account differs from the account database now."""
    try:
        current = lookup(spec.account.name, min_uid=ENTER_MIN_UID)
    except AccountError as exc:
        raise EnterFailure(EXIT_BAD_SPEC, f"bad spec: {exc}") from None
    if current != spec.account:
        raise EnterFailure(
            EXIT_BAD_SPEC,
            f"bad spec: account {spec.account.name!r} does not match the account database",
        )


def runtime_dir(account: Account) -> str:
    """XDG_RUNTIME_DIR for `account` inside the sandbox."""
    return f"{RUNTIME_BASE}/{account.uid}"


def unshare_namespaces(ops: SandboxOps, spec: SandboxSpec) -> None:
    """Create the spec's namespaces (pid applies to the next child)."""
    flags = 0
    for name in spec.namespaces:
        flags |= linux.NAMESPACE_FLAGS[name]
    try:
        ops.unshare(flags)
    except OSError as exc:
        raise EnterFailure(EXIT_SETUP_FAILED, f"sandbox setup failed: {exc}") from None


def build_mounts(ops: SandboxOps, spec: SandboxSpec) -> None:
    """Join the cgroup, lay out the private mounts, name the host, raise lo (still root)."""
    acc = spec.account
    try:
        if spec.cgroup:
            ops.join_cgroup(spec.session_id)
        ops.make_rprivate()
        if "pid" in spec.namespaces:
            ops.mount_proc()
        if spec.hostname:
            ops.set_hostname(spec.hostname)
        if "net" in spec.namespaces:
            ops.loopback_up()
        if spec.private_tmp:
            ops.mount_tmpfs("/tmp", f"mode=1777,size={TMP_TMPFS_SIZE}")
            ops.make_root_dir(X11_SOCKET_DIR, 0o1777)
            ops.mount_tmpfs("/dev/shm", f"mode=1777,size={SHM_TMPFS_SIZE}")
            ops.make_root_dir(VAR_TMP_DIR, 0o1777)
            ops.mount_tmpfs(VAR_TMP_DIR, f"mode=1777,size={TMP_TMPFS_SIZE}")
        ops.make_root_dir(RUNTIME_BASE, 0o755)
        ops.make_root_dir(runtime_dir(acc), 0o700)
        ops.mount_tmpfs(
            runtime_dir(acc),
            f"mode=0700,uid={acc.uid},gid={acc.gid},size={RUNTIME_TMPFS_SIZE}",
        )
    except OSError as exc:
        raise EnterFailure(EXIT_SETUP_FAILED, f"sandbox setup failed: {exc}") from None


def drop_privileges(ops: SandboxOps, account: Account, checks: Sequence[DropCheck]) -> bool:
    """Drop to `account` with no capabilities and no_new_privs, verify, then
    scope abstract sockets and signals (isolation/landlock.py); False if the
    kernel cannot scope."""
    steps: tuple[tuple[str, Callable[[], None]], ...] = (
        ("clear ambient capabilities", ops.clear_ambient_caps),
        ("drop capability bounding set", ops.drop_bounding_set),
        ("setgroups", lambda: ops.setgroups(account.groups)),
        ("setresgid", lambda: ops.setresgid(account.gid)),
        ("setresuid", lambda: ops.setresuid(account.uid)),
        ("clear capabilities", ops.clear_all_caps),
        ("set no_new_privs", ops.set_no_new_privs),
    )
    for what, step in steps:
        try:
            step()
        except OSError as exc:
            raise EnterFailure(
                EXIT_DROP_FAILED, f"privilege drop failed at {what}: {exc}"
            ) from None
    failed = first_failure(list(checks), account)
    if failed is not None:
        raise EnterFailure(EXIT_DROP_FAILED, f"privilege drop check failed: {failed}")
    try:
        return ops.scope_abstract_sockets()
    except OSError as exc:
        raise EnterFailure(EXIT_DROP_FAILED, f"Landlock scoping failed: {exc}") from None


def session_env(spec: SandboxSpec) -> dict[str, str]:
    """The program's whole environment: the spec's env plus account fields."""
    acc = spec.account
    env = dict(spec.env)
    env.update(
        HOME=acc.home,
        USER=acc.name,
        LOGNAME=acc.name,
        SHELL=acc.shell or "/bin/sh",
        XDG_RUNTIME_DIR=runtime_dir(acc),
    )
    return env


def _fork(ops: SandboxOps) -> int:
    try:
        return ops.fork()
    except OSError as exc:
        raise EnterFailure(EXIT_SETUP_FAILED, f"sandbox setup failed: fork: {exc}") from None


def _die_with_supervisor(ops: SandboxOps) -> None:
    try:
        ops.set_parent_death_signal()
    except OSError as exc:
        raise EnterFailure(EXIT_SETUP_FAILED, f"sandbox setup failed: {exc}") from None


def run(stdin: BinaryIO, stderr: TextIO, ops: SandboxOps,
        checks: Sequence[DropCheck] = DEFAULT_CHECKS,
        lookup: Callable[..., Account] = lookup_account) -> int:
    """Do the whole start; returns an exit status (only if exec did not happen)."""
    try:
        spec = read_spec(stdin)
        if ops.geteuid() != 0:
            raise EnterFailure(EXIT_SETUP_FAILED, "must run as root (euid 0)")
        check_account(spec, lookup)
        unshare_namespaces(ops, spec)
        pid_ns = "pid" in spec.namespaces
        if pid_ns:
            child = _fork(ops)
            if child != 0:
                return ops.supervise(child)  # outside: wait, forward signals
            _die_with_supervisor(ops)
        build_mounts(ops, spec)
        if not drop_privileges(ops, spec.account, checks) and "net" not in spec.namespaces:
            stderr.write(f"{PROG}: warning: no Landlock scoping (Linux < 6.12): the session shares the "
                         "host's abstract Unix sockets (docs/security.md)\n")  # fmt: skip
        if pid_ns:
            _die_with_supervisor(ops)  # the credential change cleared it
    except EnterFailure as failure:
        stderr.write(f"{PROG}: {failure}\n")
        stderr.flush()
        return failure.status
    workdir = spec.working_dir()
    try:
        ops.chdir(workdir)
    except OSError as exc:
        stderr.write(f"{PROG}: warning: cannot enter {workdir}: {exc.strerror}; using /\n")
        stderr.flush()
        ops.chdir("/")
    ops.umask(0o077)
    ops.stdin_from_devnull()
    ops.close_fds(spec.keep_fds)
    if pid_ns:
        try:
            agent = _fork(ops)
        except EnterFailure as failure:
            stderr.write(f"{PROG}: {failure}\n")
            return failure.status
        if agent != 0:
            return ops.run_init(agent)  # PID 1: reap, forward signals
    try:
        ops.execve(spec.argv[0], spec.argv, session_env(spec))
    except OSError as exc:
        stderr.write(f"{PROG}: cannot execute {spec.argv[0]}: {exc.strerror}\n")
        stderr.flush()
        return EXIT_EXEC_FAILED
    return 0  # only reachable with a fake execve


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point for `python -m isolation.enter [--zygote]`."""
    options = list(sys.argv[1:] if argv is None else argv)
    if options not in ([], [zygote.ZYGOTE_FLAG]):
        sys.stderr.write(f"{PROG}: usage: python -m isolation.enter [{zygote.ZYGOTE_FLAG}] < spec.json\n")
        sys.exit(EXIT_BAD_SPEC)
    in_process_agent = bool(options)
    if in_process_agent:
        zygote.preload()  # before the spec: a warm slot waits here with the agent's code loaded
    sys.exit(run(sys.stdin.buffer, sys.stderr, LinuxOps(in_process_agent)))


if __name__ == "__main__":
    main()
