# A warm slot's X server, started before the login.
#
# Why: Xvfb's start (~35-45 ms here) was on every login's critical path after
# PAM. A slot that got its slot line (isolation/slot.py) starts it ahead:
# inside the slot's fresh namespaces and private /tmp (enter.py lays them out
# first), as a uid of its own from a reserved range that belongs to no
# account (the daemon hands each slot a different one), with no
# supplementary groups, no_new_privs, and of all capabilities only
# CAP_IPC_OWNER, in every set (bounding, permitted, effective, inheritable
# and ambient, so it survives the exec). Why that one: Xvfb itself shmat()s
# the SysV segments its clients pass to MIT-SHM (the agent's capture
# segments, an app's own), created mode 0600 by the user; as another uid it
# could not. The segments live in the session's private IPC namespace, so
# the capability reaches only the session's own segments. As with enter's
# drop, every credential is re-read from the kernel (privcheck.X_SERVER_CHECKS)
# before Xvfb is exec'd, and any doubt ends the launcher, which ends the slot
# (EXIT_X_FAILED, one line on stderr; the pool's back-off replaces the slot).
#
# The Xvfb command line comes from the agent's own builder (xserver.py,
# imported by name through isolation/zygote.py like the rest of the agent's
# code), from the slot line's numbers only: no argv or path from the daemon.
"""XSlotOps, launch_x_server() (fork the launcher: drop to the X uid, exec Xvfb) and await_x_server()."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol

from isolation.accounts import Account
from isolation.privcheck import DropCheck, first_failure
from isolation.slot import X_DISPLAY_ENV, X_PID_ENV, X_SHMID_ENV, SlotParams

# Exit status of a slot whose X server could not be started (enter.py's others: 70-72, 127).
EXIT_X_FAILED = 74
# From the launcher's fork to Xvfb writing its display number; Xvfb takes
# ~45 ms, a loaded host a few seconds.
X_START_TIMEOUT_SECONDS = 10.0
# Largest display number line accepted from the -displayfd pipe ("65535\n" fits).
MAX_DISPLAYFD_BYTES = 16
MAX_DISPLAY_NUMBER = 65535
# Xvfb's stderr read for the framebuffer's segment id and for error messages.
MAX_XVFB_OUTPUT_BYTES = 4096
# A SysV shm id is a non-negative int.
MAX_SHMID = 2**31 - 1
# What the failure line quotes of Xvfb's output at most.
MAX_REPORTED_BYTES = 300


class XSlotError(Exception):
    """The slot's X server could not be started (the message says why)."""


class XSlotOps(Protocol):
    """The operations start_x_server needs; isolation.ops.LinuxOps is the real one."""

    def fork(self) -> int: ...
    def xvfb_pipe(self) -> tuple[int, int]: ...
    def xvfb_output(self) -> int: ...
    def close(self, fd: int) -> None: ...
    def set_parent_death_signal(self) -> None: ...
    def clear_ambient_caps(self) -> None: ...
    def bound_to_ipc_owner(self) -> None: ...
    def set_keep_caps(self) -> None: ...
    def setgroups(self, groups: Sequence[int]) -> None: ...
    def setresgid(self, gid: int) -> None: ...
    def setresuid(self, uid: int) -> None: ...
    def keep_only_ipc_owner(self) -> None: ...
    def set_no_new_privs(self) -> None: ...
    def exec_xvfb(self, argv: Sequence[str], env: Mapping[str, str], displayfd: int, output: int) -> None: ...
    def report(self, output: int, line: str) -> None: ...
    def exit_now(self, status: int) -> NoReturn: ...
    def read_display_number(self, fd: int, timeout: float) -> int | None: ...
    def read_output(self, fd: int, limit: int) -> bytes: ...


@dataclass(frozen=True)
class RunningX:
    """The slot's running Xvfb: its pid (in the slot's PID namespace), display and framebuffer segment."""

    pid: int
    number: int
    shmid: int

    def env(self) -> dict[str, str]:
        """What the agent gets to adopt the server (validated again there)."""
        return {X_DISPLAY_ENV: f":{self.number}", X_PID_ENV: str(self.pid), X_SHMID_ENV: str(self.shmid)}


def x_account(params: SlotParams) -> Account:
    """The X uid as the account privcheck verifies: gid the same, no groups."""
    return Account(name="x-slot", uid=params.x_uid, gid=params.x_uid, groups=(), home="/", shell="")


XvfbCommand = Callable[[int], tuple[list[str], dict[str, str]]]


def launch(ops: XSlotOps, params: SlotParams, command: XvfbCommand, displayfd: int, output: int,
           checks: Sequence[DropCheck]) -> NoReturn:  # fmt: skip
    """In the forked launcher (root): become the X uid with CAP_IPC_OWNER only, verify, exec Xvfb."""
    steps: tuple[tuple[str, Callable[[], None]], ...] = (
        ("clear ambient capabilities", ops.clear_ambient_caps),
        ("bound capabilities to CAP_IPC_OWNER", ops.bound_to_ipc_owner),
        ("keep capabilities across setuid", ops.set_keep_caps),
        ("setgroups", lambda: ops.setgroups(())),
        ("setresgid", lambda: ops.setresgid(params.x_uid)),
        ("setresuid", lambda: ops.setresuid(params.x_uid)),
        ("keep only CAP_IPC_OWNER", ops.keep_only_ipc_owner),
        ("set no_new_privs", ops.set_no_new_privs),
    )
    try:
        for what, step in steps:
            try:
                step()
            except OSError as exc:
                raise XSlotError(f"X server privilege drop failed at {what}: {exc}") from None
        failed = first_failure(list(checks), x_account(params))
        if failed is not None:
            raise XSlotError(f"X server privilege drop check failed: {failed}")
        argv, env = command(displayfd)
        try:
            ops.set_parent_death_signal()  # after the credential change, which clears it
            ops.exec_xvfb(argv, env, displayfd, output)
        except OSError as exc:
            raise XSlotError(f"cannot execute {argv[0]}: {exc.strerror or exc}") from None
    except XSlotError as exc:
        ops.report(output, str(exc))
    except Exception as exc:  # noqa: BLE001 - nothing may return from the launcher into the slot's code
        ops.report(output, f"X server launcher failed: {exc!r}")
    ops.exit_now(EXIT_X_FAILED)


@dataclass(frozen=True)
class StartingX:
    """A launched Xvfb not yet known to be ready: its pid, the -displayfd pipe's read end, its output."""

    pid: int
    ready_fd: int
    output: int


def launch_x_server(ops: XSlotOps, params: SlotParams, command: XvfbCommand,
                    checks: Sequence[DropCheck]) -> StartingX:  # fmt: skip
    """Fork the launcher (which becomes Xvfb); returns at once, so the slot's imports overlap Xvfb's start."""
    try:
        read_fd, write_fd = ops.xvfb_pipe()
        output = ops.xvfb_output()
        pid = ops.fork()
    except OSError as exc:
        raise XSlotError(f"cannot start the X server: {exc}") from None
    if pid == 0:
        ops.close(read_fd)
        launch(ops, params, command, write_fd, output, checks)
    ops.close(write_fd)
    return StartingX(pid=pid, ready_fd=read_fd, output=output)


def await_x_server(ops: XSlotOps, starting: StartingX) -> RunningX:
    """Wait (bounded) for Xvfb's display number and framebuffer segment."""
    try:
        number = ops.read_display_number(starting.ready_fd, X_START_TIMEOUT_SECONDS)
        text = ops.read_output(starting.output, MAX_XVFB_OUTPUT_BYTES)
    finally:
        ops.close(starting.ready_fd)
        ops.close(starting.output)
    if number is None:
        tail = text.decode("utf-8", "replace").strip().replace("\n", " | ")[-MAX_REPORTED_BYTES:]
        raise XSlotError(f"the X server did not start within {X_START_TIMEOUT_SECONDS:g} s: {tail or '(no output)'}")
    shmid = framebuffer_shmid(text)
    if shmid is None:
        raise XSlotError("the X server did not name its framebuffer segment (-shmem)")
    return RunningX(pid=starting.pid, number=number, shmid=shmid)


def parse_display_number(data: bytes) -> int | None:
    """The "N\\n" Xvfb writes on its -displayfd, or None if DATA is not that."""
    text = data.split(b"\n", 1)[0].strip()
    if not text.isdigit() or len(text) > len(str(MAX_DISPLAY_NUMBER)):
        return None
    number = int(text)
    return number if number <= MAX_DISPLAY_NUMBER else None


def framebuffer_shmid(output: bytes) -> int | None:
    """The segment id in Xvfb -shmem's "screen 0 shmid N" line, or None."""
    marker = b"screen 0 shmid "
    start = output.find(marker)
    if start < 0:
        return None
    digits = output[start + len(marker):].split(maxsplit=1)
    text = digits[0] if digits else b""
    if not text.isdigit() or len(text) > len(str(MAX_SHMID)) or int(text) > MAX_SHMID:
        return None
    return int(text)
