"""isolation.enter with PID/net namespaces, hostname and cgroup: the fork paths."""

from __future__ import annotations

import io
import os
import signal
from typing import Any

from test_isolation_enter import ACCOUNT, PASSING, RecorderOps, lookup_same, make_spec

from isolation import init, linux
from isolation.enter import EXIT_DROP_FAILED, EXIT_SETUP_FAILED, run
from isolation.privcheck import DropCheck
from isolation.spec import to_json

ALL = ("mount", "ipc", "uts", "pid", "net")


class ForkingOps(RecorderOps):
    """RecorderOps plus the PID-namespace operations; fork() returns scripted pids."""

    def __init__(self, forks: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.forks = forks

    def fork(self) -> int:
        self._rec("fork")
        return self.forks.pop(0)

    def supervise(self, child: int) -> int:
        self._rec("supervise", child)
        return 42

    def run_init(self, agent: int) -> int:
        self._rec("run_init", agent)
        return 43

    def set_parent_death_signal(self) -> None:
        self._rec("set_parent_death_signal")

    def join_cgroup(self, session_id: str) -> None:
        self._rec("join_cgroup", session_id)

    def mount_proc(self) -> None:
        self._rec("mount_proc")

    def set_hostname(self, name: str) -> None:
        self._rec("set_hostname", name)

    def loopback_up(self) -> None:
        self._rec("loopback_up")


def enter(ops: ForkingOps, checks: tuple[DropCheck, ...] = PASSING, **spec: Any) -> tuple[int, str]:
    err = io.StringIO()
    data = to_json(make_spec(namespaces=ALL, hostname="box", cgroup=True, **spec))
    return run(io.BytesIO(data), err, ops, checks=checks, lookup=lookup_same), err.getvalue()


def test_supervisor_only_unshares_forks_and_waits() -> None:
    ops = ForkingOps([1234])
    assert enter(ops) == (42, "")
    flags = linux.CLONE_NEWNS | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS | linux.CLONE_NEWPID | linux.CLONE_NEWNET
    assert ops.calls == [("unshare", flags), ("fork",), ("supervise", 1234)]


def test_child_joins_cgroup_first_then_mounts_drops_and_becomes_init() -> None:
    ops = ForkingOps([0, 77])
    assert enter(ops) == (43, "")
    names = ops.names()
    assert names[:5] == ["unshare", "fork", "set_parent_death_signal", "join_cgroup", "make_rprivate"]
    assert ops.calls[3] == ("join_cgroup", "s1")
    assert names.index("mount_proc") < names.index("setresuid")
    assert ("set_hostname", "box") in ops.calls and "loopback_up" in names
    # parent-death signal re-armed after the credential change, before the agent fork
    drop = names.index("scope_abstract_sockets")
    assert names[drop - 1] == "set_no_new_privs" and names[drop + 1] == "set_parent_death_signal"
    assert names[-2:] == ["fork", "run_init"] and ops.calls[-1] == ("run_init", 77)
    assert "execve" not in names


def test_grandchild_execs_the_agent() -> None:
    ops = ForkingOps([0, 0])
    assert enter(ops) == (0, "")
    assert ops.names()[-2:] == ["fork", "execve"]
    assert ops.calls[-1][1] == "/usr/bin/agent"


def test_cgroup_join_failure_aborts_before_any_mount() -> None:
    ops = ForkingOps([0], fail="join_cgroup")
    status, err = enter(ops)
    assert status == EXIT_SETUP_FAILED and "sandbox setup failed" in err
    assert "make_rprivate" not in ops.names() and "setresuid" not in ops.names()


def test_failing_check_in_child_never_forks_the_agent() -> None:
    ops = ForkingOps([0])
    status, _ = enter(ops, checks=(DropCheck("nope", lambda _a: False),))
    assert status == EXIT_DROP_FAILED
    assert ops.names().count("fork") == 1 and "execve" not in ops.names()


def test_fork_failure_is_a_setup_failure() -> None:
    class NoFork(ForkingOps):
        def fork(self) -> int:
            raise OSError(11, "Resource temporarily unavailable")

    status, err = enter(NoFork([]))
    assert status == EXIT_SETUP_FAILED and "fork" in err


def test_forwarder_queues_until_target_then_forwards(monkeypatch: Any) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    forwarder = init.SignalForwarder()
    forwarder._handle(signal.SIGTERM, None)
    assert sent == []
    forwarder.set_target(99)
    forwarder._handle(signal.SIGHUP, None)
    assert sent == [(99, signal.SIGTERM), (99, signal.SIGHUP)]
    forwarder.forget()
    assert forwarder.target is None and forwarder.pending == []


def test_exit_codes_of_the_wait_loops() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    assert init.wait_for(pid) == 7
    # reap_until waits for any child: run it in a child of its own, so it can
    # never reap a process another test started.
    helper = os.fork()
    if helper == 0:
        orphan_parent = os.fork()
        if orphan_parent == 0:
            os._exit(0)
        victim = os.fork()
        if victim == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(init.reap_until(victim) - 128)
    assert init.wait_for(helper) == signal.SIGKILL
    assert ACCOUNT.uid == 1500
