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
# The system calls go through a SandboxOps object (isolation/ops.py) so the
# whole sequence can be unit-tested with a recorder fake. With --zygote
# (isolation/zygote.py) the agent's code is imported before the spec is read and the agent runs in
# the forked process instead of being exec'd.
"""Build the session sandbox from a spec on stdin, drop root, verify, exec."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import BinaryIO, Protocol, TextIO

from isolation import linux, zygote
from isolation.accounts import Account, AccountError, lookup_account
from isolation.ops import LinuxOps, SandboxOps
from isolation.privcheck import DEFAULT_CHECKS, X_SERVER_CHECKS, DropCheck, first_failure
from isolation.slot import MAX_SLOT_LINE_BYTES, X_SCREEN_ENV, SlotLineError, SlotParams, parse_slot_line
from isolation.spec import MAX_SPEC_BYTES, SandboxSpec, SpecError, from_json
from isolation.xslot import EXIT_X_FAILED, XSlotError, XSlotOps, XvfbCommand, await_x_server, launch_x_server

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


def unshare_namespaces(ops: SandboxOps, namespaces: Sequence[str]) -> None:
    """Create NAMESPACES (pid applies to the next child)."""
    flags = 0
    for name in namespaces:
        flags |= linux.NAMESPACE_FLAGS[name]
    try:
        ops.unshare(flags)
    except OSError as exc:
        raise EnterFailure(EXIT_SETUP_FAILED, f"sandbox setup failed: {exc}") from None


def build_mounts(ops: SandboxOps, spec: SandboxSpec) -> None:
    """Join the cgroup, lay out the private mounts, name the host, raise lo (still root)."""
    if spec.cgroup:
        _setup(lambda: ops.join_cgroup(spec.session_id))
    private_mounts(ops, spec.namespaces, spec.private_tmp, spec.hostname)
    runtime_mount(ops, spec.account)


def _setup(step: Callable[[], None]) -> None:
    try:
        step()
    except OSError as exc:
        raise EnterFailure(EXIT_SETUP_FAILED, f"sandbox setup failed: {exc}") from None


def private_mounts(ops: SandboxOps, namespaces: Sequence[str], private_tmp: bool, hostname: str) -> None:
    """rprivate, the namespace's /proc, the hostname, lo up and the private /tmp, /dev/shm, /var/tmp."""
    def steps() -> None:
        ops.make_rprivate()
        if "pid" in namespaces:
            ops.mount_proc()
        if hostname:
            ops.set_hostname(hostname)
        if "net" in namespaces:
            ops.loopback_up()
        if private_tmp:
            ops.mount_tmpfs("/tmp", f"mode=1777,size={TMP_TMPFS_SIZE}")
            ops.make_root_dir(X11_SOCKET_DIR, 0o1777)
            ops.mount_tmpfs("/dev/shm", f"mode=1777,size={SHM_TMPFS_SIZE}")
            ops.make_root_dir(VAR_TMP_DIR, 0o1777)
            ops.mount_tmpfs(VAR_TMP_DIR, f"mode=1777,size={TMP_TMPFS_SIZE}")
    _setup(steps)


def runtime_mount(ops: SandboxOps, acc: Account) -> None:
    """/run/user/UID: a tmpfs of the user's own (XDG_RUNTIME_DIR)."""
    def steps() -> None:
        ops.make_root_dir(RUNTIME_BASE, 0o755)
        ops.make_root_dir(runtime_dir(acc), 0o700)
        ops.mount_tmpfs(
            runtime_dir(acc),
            f"mode=0700,uid={acc.uid},gid={acc.gid},size={RUNTIME_TMPFS_SIZE}",
        )
    _setup(steps)


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


def drop_to_user(ops: SandboxOps, spec: SandboxSpec, checks: Sequence[DropCheck], stderr: TextIO) -> None:
    """drop_privileges to the spec's account; warn when abstract sockets stay the host's
    (no Landlock scoping and no network namespace of the session's own)."""
    if not drop_privileges(ops, spec.account, checks) and "net" not in spec.namespaces:
        stderr.write(f"{PROG}: warning: no Landlock scoping (Linux < 6.12): the session shares the "
                     "host's abstract Unix sockets (docs/security.md)\n")  # fmt: skip


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
        unshare_namespaces(ops, spec.namespaces)
        pid_ns = "pid" in spec.namespaces
        if pid_ns:
            child = _fork(ops)
            if child != 0:
                return ops.supervise(child)  # outside: wait, forward signals
            _die_with_supervisor(ops)
        build_mounts(ops, spec)
        drop_to_user(ops, spec, checks, stderr)
        if pid_ns:
            _die_with_supervisor(ops)  # the credential change cleared it
    except EnterFailure as failure:
        stderr.write(f"{PROG}: {failure}\n")
        stderr.flush()
        return failure.status
    return start_program(ops, stderr, spec, session_env(spec), pid_ns)


def start_program(ops: SandboxOps, stderr: TextIO, spec: SandboxSpec, env: Mapping[str, str],
                  pid_ns: bool) -> int:  # fmt: skip
    """After the verified drop: the working directory, umask and fds, then (with a PID
    namespace, behind this process as init) exec spec.argv with ENV."""
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
        ops.execve(spec.argv[0], spec.argv, env)
    except OSError as exc:
        stderr.write(f"{PROG}: cannot execute {spec.argv[0]}: {exc.strerror}\n")
        stderr.flush()
        return EXIT_EXEC_FAILED
    return 0  # only reachable with a fake execve


class SlotOps(SandboxOps, XSlotOps, Protocol):
    """What a slot with an X server needs: the sandbox's operations, the X launcher's and one more."""

    def attach_to_cgroup(self, session_id: str, pid: int) -> None: ...
    def in_cgroup(self, session_id: str, pid: int) -> bool: ...
    def spec_before_x_exit(self, pid: int) -> bool: ...


def read_slot_line(stdin: BinaryIO) -> SlotParams:
    """The slot line (isolation/slot.py): one line of at most MAX_SLOT_LINE_BYTES, before the spec."""
    line = stdin.readline(MAX_SLOT_LINE_BYTES + 1)
    if not line.endswith(b"\n"):
        what = f"more than {MAX_SLOT_LINE_BYTES} bytes" if len(line) > MAX_SLOT_LINE_BYTES else "no complete line"
        raise EnterFailure(EXIT_BAD_SPEC, f"bad slot line: {what}")
    try:
        return parse_slot_line(line)
    except SlotLineError as exc:
        raise EnterFailure(EXIT_BAD_SPEC, f"bad slot line: {exc}") from None


def check_slot_spec(spec: SandboxSpec, params: SlotParams) -> None:
    """Refuse a spec that does not fit the slot: other namespaces, no private /tmp, another screen."""
    if sorted(spec.namespaces) != sorted(params.namespaces):
        raise EnterFailure(EXIT_BAD_SPEC, f"bad spec: namespaces {sorted(spec.namespaces)} are not the slot's "
                                          f"{sorted(params.namespaces)}")  # fmt: skip
    if not spec.private_tmp:
        raise EnterFailure(EXIT_BAD_SPEC, "bad spec: a slot's X server lives in a private /tmp")
    asked = spec.env.get(X_SCREEN_ENV)
    if asked != params.screen:
        raise EnterFailure(EXIT_BAD_SPEC, f"bad spec: {X_SCREEN_ENV} {asked!r} is not the slot's {params.screen!r}")


def join_slot_cgroup(ops: SlotOps, name: str, stderr: TextIO) -> None:
    """Wait in the slot's own cgroup (isolation/slot_cgroup.py). A failure costs only the
    claim's speed, not the session: the claim then joins the session's cgroup itself."""
    try:
        ops.join_cgroup(name)
    except OSError as exc:
        stderr.write(f"{PROG}: warning: cannot join the slot's cgroup {name}: {exc}; the login will join "
                     "its session's\n")  # fmt: skip
        stderr.flush()


def run_slot(stdin: BinaryIO, stderr: TextIO, ops: SlotOps, params: SlotParams, command: XvfbCommand,
             preload: Callable[[], None] = lambda: None, checks: Sequence[DropCheck] = DEFAULT_CHECKS,
             x_checks: Sequence[DropCheck] = X_SERVER_CHECKS,
             lookup: Callable[..., Account] = lookup_account) -> int:  # fmt: skip
    """A slot with its slot line: namespaces, private mounts and the X server before the spec
    (isolation/xslot.py), then the session as run() starts it, with the server's SESSIOND_X_*."""
    try:
        if ops.geteuid() != 0:
            raise EnterFailure(EXIT_SETUP_FAILED, "must run as root (euid 0)")
        unshare_namespaces(ops, params.namespaces)
        child = _fork(ops)
        if child != 0:
            return ops.supervise(child)  # outside: wait, forward signals
        _die_with_supervisor(ops)
        if params.cgroup:  # before the X server starts: it is born in the slot's cgroup
            join_slot_cgroup(ops, params.cgroup, stderr)
        private_mounts(ops, params.namespaces, True, "")
        try:
            starting = launch_x_server(ops, params, command, x_checks)
            preload()  # the agent's imports while Xvfb starts (an early slot's critical path)
            x_server = await_x_server(ops, starting)
        except XSlotError as exc:
            raise EnterFailure(EXIT_X_FAILED, str(exc)) from None
        if not ops.spec_before_x_exit(x_server.pid):  # it died waiting: the pool replaces this slot
            raise EnterFailure(EXIT_X_FAILED, "the slot's X server exited before the login")
        spec = read_spec(stdin)
        check_slot_spec(spec, params)
        check_account(spec, lookup)
        if spec.cgroup:  # in it already if sessiond renamed the slot's cgroup to the session's
            if not ops.in_cgroup(spec.session_id, 0):
                _setup(lambda: ops.join_cgroup(spec.session_id))
            if not ops.in_cgroup(spec.session_id, x_server.pid):
                _setup(lambda: ops.attach_to_cgroup(spec.session_id, x_server.pid))
        if spec.hostname:
            _setup(lambda: ops.set_hostname(spec.hostname))
        runtime_mount(ops, spec.account)
        drop_to_user(ops, spec, checks, stderr)
        _die_with_supervisor(ops)  # the credential change cleared it
    except EnterFailure as failure:
        stderr.write(f"{PROG}: {failure}\n")
        stderr.flush()
        return failure.status
    return start_program(ops, stderr, spec, {**session_env(spec), **x_server.env()}, True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point for `python -m isolation.enter [--zygote [--x-slot]]`."""
    options = list(sys.argv[1:] if argv is None else argv)
    if options not in ([], [zygote.ZYGOTE_FLAG], [zygote.ZYGOTE_FLAG, zygote.X_SLOT_FLAG]):
        sys.stderr.write(f"{PROG}: usage: python -m isolation.enter [{zygote.ZYGOTE_FLAG} "
                         f"[{zygote.X_SLOT_FLAG}]] < [slot line] spec.json\n")  # fmt: skip
        sys.exit(EXIT_BAD_SPEC)
    in_process_agent = bool(options)
    if zygote.X_SLOT_FLAG in options:
        try:
            params = read_slot_line(sys.stdin.buffer)
        except EnterFailure as failure:
            sys.stderr.write(f"{PROG}: {failure}\n")
            sys.exit(failure.status)
        sys.exit(run_slot(sys.stdin.buffer, sys.stderr, LinuxOps(in_process_agent), params,
                          zygote.xvfb_command(params), zygote.preload))  # fmt: skip
    if in_process_agent:
        zygote.preload()  # before the spec: a warm slot waits here with the agent's code loaded
    sys.exit(run(sys.stdin.buffer, sys.stderr, LinuxOps(in_process_agent)))


if __name__ == "__main__":
    main()
