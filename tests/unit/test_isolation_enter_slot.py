"""isolation.enter with a slot line (run_slot, isolation/xslot.py): the whole sequence against a
recorder fake, the X launcher's drop, and every refusal."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import pytest
from test_isolation_enter import ACCOUNT, PASSING, lookup_same, make_spec
from test_isolation_enter_pid import ForkingOps

from isolation import linux
from isolation.enter import EXIT_BAD_SPEC, EXIT_DROP_FAILED, read_slot_line, run_slot
from isolation.privcheck import DropCheck
from isolation.slot import MAX_SLOT_LINE_BYTES, X_SCREEN_ENV, SlotParams, slot_line
from isolation.spec import to_json
from isolation.xslot import EXIT_X_FAILED

NAMESPACES = ("mount", "ipc", "uts", "pid")
PARAMS = SlotParams(x_uid=1900000003, namespaces=NAMESPACES, width=2560, height=1440, depth=24, root_shown=False)
XVFB = (["Xvfb", ":0", "-shmem", "-displayfd", "4"], {"PATH": "/usr/bin"})


class LauncherExited(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class SlotOps(ForkingOps):
    """ForkingOps plus the X launcher's operations (isolation/xslot.py XSlotOps)."""

    def __init__(self, forks: list[int], number: int | None = 3,
                 output: bytes = b"screen 0 shmid 32769\n", x_lives: bool = True,
                 members: tuple[tuple[str, int], ...] = (), **kwargs: Any) -> None:  # fmt: skip
        super().__init__(forks, **kwargs)
        self.members = set(members)  # (cgroup, pid) pairs in_cgroup() says yes to; joins add theirs
        self.number = number
        self.output = output
        self.x_lives = x_lives  # False: the X server exits while the slot waits for its spec
        self.reported: list[str] = []

    def xvfb_pipe(self) -> tuple[int, int]:
        self._rec("xvfb_pipe")
        return 3, 4

    def xvfb_output(self) -> int:
        self._rec("xvfb_output")
        return 6

    def close(self, fd: int) -> None:
        self._rec("close", fd)

    def bound_to_ipc_owner(self) -> None:
        self._rec("bound_to_ipc_owner")

    def set_keep_caps(self) -> None:
        self._rec("set_keep_caps")

    def keep_only_ipc_owner(self) -> None:
        self._rec("keep_only_ipc_owner")

    def exec_xvfb(self, argv: Sequence[str], env: Mapping[str, str], displayfd: int, output: int) -> None:
        self._rec("exec_xvfb", tuple(argv), dict(env), displayfd, output)

    def report(self, output: int, line: str) -> None:
        self._rec("report", output)
        self.reported.append(line)

    def exit_now(self, status: int) -> NoReturn:
        self._rec("exit_now", status)
        raise LauncherExited(status)

    def read_display_number(self, fd: int, timeout: float) -> int | None:
        self._rec("read_display_number", fd)
        return self.number

    def read_output(self, fd: int, limit: int) -> bytes:
        self._rec("read_output", fd)
        return self.output

    def attach_to_cgroup(self, session_id: str, pid: int) -> None:
        self._rec("attach_to_cgroup", session_id, pid)

    def in_cgroup(self, session_id: str, pid: int) -> bool:
        self._rec("in_cgroup", session_id, pid)
        return (session_id, pid) in self.members

    def spec_before_x_exit(self, pid: int) -> bool:
        self._rec("spec_before_x_exit", pid)
        return self.x_lives


def spec_data(**changes: Any) -> bytes:
    env = {"PATH": "/usr/bin:/bin", X_SCREEN_ENV: PARAMS.screen}
    return to_json(make_spec(**{"namespaces": NAMESPACES, "hostname": "box", "cgroup": True, "env": env,
                                **changes}))  # fmt: skip


def slot(ops: SlotOps, data: bytes | None = None, x_checks: tuple[DropCheck, ...] = PASSING,
         preloads: list[str] | None = None) -> tuple[int, str]:  # fmt: skip
    err = io.StringIO()
    preload = (lambda: preloads.append("preload")) if preloads is not None else (lambda: None)
    status = run_slot(io.BytesIO(spec_data() if data is None else data), err, ops, PARAMS,
                      lambda fd: (XVFB[0], XVFB[1]), preload, checks=PASSING, x_checks=x_checks,
                      lookup=lookup_same)  # fmt: skip
    return status, err.getvalue()




def test_the_x_server_starts_before_the_spec_and_the_agent_gets_it() -> None:
    ops = SlotOps(forks=[0, 17, 0])  # the sandbox's init, Xvfb (pid 17), the agent
    status, err = slot(ops)
    assert (status, err) == (0, "")
    flags = linux.CLONE_NEWNS | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS | linux.CLONE_NEWPID
    assert ops.calls[:23] == [
        ("unshare", flags), ("fork",), ("set_parent_death_signal",),
        ("make_rprivate",), ("mount_proc",),
        ("mount_tmpfs", "/tmp", "mode=1777,size=1024m"), ("make_root_dir", "/tmp/.X11-unix", 0o1777),
        ("mount_tmpfs", "/dev/shm", "mode=1777,size=512m"), ("make_root_dir", "/var/tmp", 0o1777),
        ("mount_tmpfs", "/var/tmp", "mode=1777,size=1024m"),
        ("xvfb_pipe",), ("xvfb_output",), ("fork",), ("close", 4),
        ("read_display_number", 3), ("read_output", 6), ("close", 3), ("close", 6),
        ("spec_before_x_exit", 17), ("in_cgroup", "s1", 0), ("join_cgroup", "s1"),
        ("in_cgroup", "s1", 17), ("attach_to_cgroup", "s1", 17),
    ]  # fmt: skip
    names = ops.names()
    assert names[23:26] == ["set_hostname", "make_root_dir", "make_root_dir"]
    assert names.index("setresuid") < names.index("execve")
    assert ("setresuid", ACCOUNT.uid) in ops.calls
    execve = ops.calls[-1]
    assert execve[0] == "execve"
    env = execve[3]
    assert env["SESSIOND_X_DISPLAY"] == ":3" and env["SESSIOND_X_PID"] == "17" and env["SESSIOND_X_SHMID"] == "32769"
    assert env[X_SCREEN_ENV] == "2560x1440x24-root" and env["USER"] == "alice"


SLOT_CGROUP = "slot-00112233445566aa"


def test_a_slot_with_a_cgroup_waits_in_it_from_before_its_x_server_and_moves_nothing_at_the_claim() -> None:
    # sessiond renamed the slot's cgroup to the session's before it wrote the spec: the slot
    # and its X server are in the session's cgroup already, and no process migrates.
    ops = SlotOps(forks=[0, 17, 0], members=(("s1", 0), ("s1", 17)))
    status, err = run_slot_with(ops, SlotParams(**{**PARAMS.__dict__, "cgroup": SLOT_CGROUP}))
    assert (status, err) == (0, "")
    names = ops.names()
    assert ops.calls[3] == ("join_cgroup", SLOT_CGROUP), "joined right after the fork, before any mount"
    assert names.index("join_cgroup") < names.index("xvfb_pipe")
    assert [call for call in ops.calls if call[0] in ("join_cgroup", "attach_to_cgroup", "in_cgroup")] == [
        ("join_cgroup", SLOT_CGROUP), ("in_cgroup", "s1", 0), ("in_cgroup", "s1", 17)]
    assert names.index("in_cgroup") < names.index("setresuid") < names.index("execve")


def test_a_slot_whose_cgroup_was_not_renamed_joins_the_sessions_at_the_claim() -> None:
    ops = SlotOps(forks=[0, 17, 0])
    status, err = run_slot_with(ops, SlotParams(**{**PARAMS.__dict__, "cgroup": SLOT_CGROUP}))
    assert (status, err) == (0, "")
    assert [call for call in ops.calls if call[0] in ("join_cgroup", "attach_to_cgroup")] == [
        ("join_cgroup", SLOT_CGROUP), ("join_cgroup", "s1"), ("attach_to_cgroup", "s1", 17)]
    assert ops.names().index("attach_to_cgroup") < ops.names().index("setresuid")


def test_a_slot_that_cannot_join_its_cgroup_warns_once_and_still_serves_its_login() -> None:
    ops = SlotOps(forks=[0, 17, 0], fail="join_cgroup", fail_path=SLOT_CGROUP)
    status, err = run_slot_with(ops, SlotParams(**{**PARAMS.__dict__, "cgroup": SLOT_CGROUP}))
    assert status == 0 and err.count("\n") == 1 and "cannot join the slot's cgroup" in err, err
    assert ("join_cgroup", "s1") in ops.calls and ("attach_to_cgroup", "s1", 17) in ops.calls
    assert "execve" in ops.names()


def run_slot_with(ops: SlotOps, params: SlotParams) -> tuple[int, str]:
    err = io.StringIO()
    status = run_slot(io.BytesIO(spec_data()), err, ops, params, lambda fd: (XVFB[0], XVFB[1]),
                      checks=PASSING, x_checks=PASSING, lookup=lookup_same)  # fmt: skip
    return status, err.getvalue()


def test_the_supervisor_stays_outside_and_supervises() -> None:
    ops = SlotOps(forks=[23])
    assert slot(ops) == (42, "")
    assert ops.names() == ["unshare", "fork", "supervise"]


def test_the_launcher_becomes_the_x_uid_with_cap_ipc_owner_only_then_execs_xvfb() -> None:
    ops = SlotOps(forks=[0, 0])
    with pytest.raises(LauncherExited):
        slot(ops)
    launcher = ops.calls[ops.calls.index(("fork",), 2) + 1:]
    assert launcher == [
        ("close", 3), ("clear_ambient_caps",), ("bound_to_ipc_owner",), ("set_keep_caps",),
        ("setgroups", ()), ("setresgid", PARAMS.x_uid), ("setresuid", PARAMS.x_uid),
        ("keep_only_ipc_owner",), ("set_no_new_privs",), ("set_parent_death_signal",),
        ("exec_xvfb", tuple(XVFB[0]), XVFB[1], 4, 6),
        ("exit_now", EXIT_X_FAILED),  # only reached because the fake exec returns
    ]  # fmt: skip


@pytest.mark.parametrize("step", ["bound_to_ipc_owner", "setgroups", "setresuid", "keep_only_ipc_owner",
                                  "set_no_new_privs", "exec_xvfb"])  # fmt: skip
def test_a_failing_launcher_step_reports_one_line_and_exits_74(step: str) -> None:
    ops = SlotOps(forks=[0, 0], fail=step)
    with pytest.raises(LauncherExited) as exited:
        slot(ops)
    assert exited.value.status == EXIT_X_FAILED
    assert len(ops.reported) == 1 and "\n" not in ops.reported[0]
    assert step == "exec_xvfb" or "exec_xvfb" not in ops.names()


def test_a_failing_x_drop_check_never_execs_xvfb() -> None:
    ops = SlotOps(forks=[0, 0])
    with pytest.raises(LauncherExited):
        slot(ops, x_checks=(DropCheck("CapEff is exactly CAP_IPC_OWNER", lambda _a: False),))
    assert "exec_xvfb" not in ops.names()
    assert ops.reported == ["X server privilege drop check failed: CapEff is exactly CAP_IPC_OWNER"]


@pytest.mark.parametrize(("number", "output", "why"), [
    (None, b"Fatal server error: no screens\n", "did not start"),
    (3, b"nothing about a segment\n", "framebuffer segment"),
])  # fmt: skip
def test_an_x_server_that_fails_ends_the_slot_with_74_before_the_spec(number: int | None, output: bytes,
                                                                       why: str) -> None:  # fmt: skip
    ops = SlotOps(forks=[0, 17], number=number, output=output)
    preloads: list[str] = []
    status, err = slot(ops, preloads=preloads)
    assert status == EXIT_X_FAILED and why in err and err.count("\n") == 1, err
    assert preloads == ["preload"], "the imports overlap Xvfb's start"
    assert "join_cgroup" not in ops.names() and "setresuid" not in ops.names()


def test_an_x_server_that_dies_while_the_slot_waits_ends_the_slot_not_its_login() -> None:
    ops = SlotOps(forks=[0, 17], x_lives=False)
    status, err = slot(ops)
    assert status == EXIT_X_FAILED and "exited before the login" in err and err.count("\n") == 1, err
    assert not {"join_cgroup", "attach_to_cgroup", "setresuid", "execve"} & set(ops.names())


@pytest.mark.parametrize(("changes", "why"), [
    ({"env": {"PATH": "/bin"}}, X_SCREEN_ENV),
    ({"env": {X_SCREEN_ENV: "2560x1440x24+root"}}, X_SCREEN_ENV),
    ({"namespaces": (*NAMESPACES, "net")}, "namespaces"),
    ({"private_tmp": False}, "private /tmp"),
])  # fmt: skip
def test_a_spec_that_does_not_fit_the_slot_is_refused_before_anything_of_the_user(changes: dict[str, Any],
                                                                                   why: str) -> None:  # fmt: skip
    ops = SlotOps(forks=[0, 17])
    status, err = slot(ops, spec_data(**changes))
    assert status == EXIT_BAD_SPEC and why in err, err
    assert not {"join_cgroup", "attach_to_cgroup", "setresuid", "execve"} & set(ops.names())


def test_the_users_drop_is_still_verified() -> None:
    ops = SlotOps(forks=[0, 17, 0])
    err = io.StringIO()
    status = run_slot(io.BytesIO(spec_data()), err, ops, PARAMS, lambda fd: (XVFB[0], XVFB[1]),
                      checks=(DropCheck("CapEff is 0", lambda _a: False),), x_checks=PASSING,
                      lookup=lookup_same)  # fmt: skip
    assert status == EXIT_DROP_FAILED and "CapEff is 0" in err.getvalue()
    assert "execve" not in ops.names()


def test_the_slot_line_is_one_bounded_line_before_the_spec() -> None:
    stream = io.BytesIO(slot_line(PARAMS) + spec_data())
    assert read_slot_line(stream) == PARAMS
    assert stream.read() == spec_data()
    for data, why in ((b'{"x_uid":1}', "no complete line"), (b"x" * (MAX_SLOT_LINE_BYTES + 1) + b"\n", "more than"),
                      (b'{"x_uid":1}\n', "missing")):  # fmt: skip
        with pytest.raises(Exception, match=why) as refused:
            read_slot_line(io.BytesIO(data))
        assert getattr(refused.value, "status", None) == EXIT_BAD_SPEC
