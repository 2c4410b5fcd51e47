"""Unit tests for sessiond.warm_pool and isolation.zygote (fake reactor, no processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from twisted.internet import error, protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from isolation import enter, init, zygote
from isolation.launcher import enter_argv
from sessiond.warm_pool import REFILL_DELAY_SECONDS, RESPAWN_MIN_SECONDS, WarmPool


class FakeTransport:
    """What reactor.spawnProcess returns, recording signals and writes."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[str] = []
        self.written = b""

    def signalProcess(self, name: str) -> None:  # noqa: N802 - Twisted name
        self.signals.append(name)

    def write(self, data: bytes) -> None:
        self.written += data


class FakeReactor(Clock):
    """A Clock that also 'spawns' processes: records argv, env and the protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[Any, list[str], dict[str, str]]] = []

    def spawnProcess(self, proto: Any, executable: str, args: list[str], env: dict[str, str],  # noqa: N802
                     path: str, childFDs: dict[int, str]) -> FakeTransport:  # noqa: N803 - Twisted name
        transport = FakeTransport(1000 + len(self.spawned))
        proto.makeConnection(transport)
        self.spawned.append((proto, args, env))
        return transport


class Recorder(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.ended: list[Any] = []

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.out += data

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        self.ended.append(reason)


PYTHON = "/opt/sessiond/venv/bin/python"


def test_the_pool_spawns_zygotes_and_refills_after_each_claim() -> None:
    reactor = FakeReactor()
    pool = WarmPool(reactor, PYTHON, 2)
    pool.start()
    assert [args for _p, args, _e in reactor.spawned] == [enter_argv(PYTHON, zygote=True)] * 2
    assert all("--zygote" in args for _p, args, _e in reactor.spawned)
    first = pool.claim()
    second = pool.claim()
    assert first is not None and second is not None and first is not second
    assert pool.claim() is None, "a slot is handed out once, never twice"
    reactor.advance(REFILL_DELAY_SECONDS)
    assert len(reactor.spawned) == 4 and len(pool.idle) == 2


def test_a_claimed_slot_reports_to_its_session_only() -> None:
    reactor = FakeReactor()
    pool = WarmPool(reactor, PYTHON, 1)
    pool.start()
    slot = pool.claim()
    assert slot is not None
    owner = Recorder()
    transport = slot.claim(owner)
    assert transport.pid == 1000 and owner.transport is transport
    slot.outReceived(b"READY\n")
    slot.processEnded(Failure(error.ProcessDone(0)))
    assert owner.out == b"READY\n" and len(owner.ended) == 1
    assert len(pool.idle) == 0, "the pool refills on the next turn, not from the claimed slot's exit"


def test_a_slot_that_dies_unclaimed_is_replaced_after_a_growing_delay() -> None:
    reactor = FakeReactor()
    pool = WarmPool(reactor, PYTHON, 1)
    pool.start()
    pool.idle[0].processEnded(Failure(error.ProcessTerminated(71)))
    assert pool.idle == [] and len(reactor.spawned) == 1
    reactor.advance(RESPAWN_MIN_SECONDS)
    assert len(reactor.spawned) == 2
    pool.idle[0].processEnded(Failure(error.ProcessTerminated(71)))
    reactor.advance(RESPAWN_MIN_SECONDS)
    assert len(reactor.spawned) == 2, "the second death in a row waits twice as long"
    reactor.advance(RESPAWN_MIN_SECONDS)
    assert len(reactor.spawned) == 3


def test_stopping_kills_waiting_slots_and_spawns_no_more() -> None:
    reactor = FakeReactor()
    pool = WarmPool(reactor, PYTHON, 2)
    pool.start()
    transports = [proto.transport for proto, _a, _e in reactor.spawned]
    pool.stop()
    assert [t.signals for t in transports] == [["KILL"], ["KILL"]]
    reactor.advance(100)
    assert len(reactor.spawned) == 2 and pool.claim() is None


def test_a_discarded_slot_is_killed_without_a_respawn_warning() -> None:
    reactor = FakeReactor()
    pool = WarmPool(reactor, PYTHON, 1)
    pool.start()
    slot = pool.claim()
    assert slot is not None
    slot.discard()
    assert slot.transport.signals == ["KILL"]  # type: ignore[union-attr]
    slot.processEnded(Failure(error.ProcessTerminated(signal=9)))
    reactor.advance(REFILL_DELAY_SECONDS)
    assert len(reactor.spawned) == 2, "only the claim's own refill"


def test_a_pool_of_zero_spawns_nothing() -> None:
    reactor = FakeReactor()
    pool = WarmPool(reactor, PYTHON, 0)
    pool.start()
    assert reactor.spawned == [] and pool.claim() is None


def test_only_this_interpreter_running_the_agent_runs_in_process() -> None:
    assert zygote.runs_in_process((sys.executable, "-m", "sessiond.agent"))
    assert not zygote.runs_in_process(("/usr/bin/python3-other", "-m", "sessiond.agent"))
    assert not zygote.runs_in_process((sys.executable, "-m", "sessiond.agent", "--extra"))
    assert not zygote.runs_in_process(("/bin/sh", "-c", "true"))


def test_enter_refuses_options_other_than_zygote(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        enter.main(["--anything"])
    assert exited.value.code == enter.EXIT_BAD_SPEC
    assert "usage" in capsys.readouterr().err


def test_the_command_line_is_rewritten_in_place() -> None:
    script = ("import sys; from isolation import zygote\n"
              "ok = zygote.set_command_line([sys.executable, '-m', 'x'])\n"
              "print(ok, open('/proc/self/cmdline','rb').read().rstrip(b'\\0').split(b'\\0'))\n")
    done = subprocess.run([sys.executable, "-c", script, "padding-so-the-new-line-fits"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == f"True [{sys.executable.encode()!r}, b'-m', b'x']"


AGENT_ENTRIES = {
    "exec": ("import runpy\ntry:\n    runpy.run_module('sessiond.agent', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"),
    "zygote": "from isolation import zygote\nzygote.preload()\n",
}


@pytest.mark.parametrize("entry", sorted(AGENT_ENTRIES))
def test_the_agent_loads_without_openssl(entry: str) -> None:
    """Both ways the agent starts (exec'd: no link token here, so it stops at once; zygote)
    refuse ssl before asyncio is imported, and asyncio still works."""
    script = ("import sys\n" + AGENT_ENTRIES[entry] + "import asyncio\nasyncio.run(asyncio.sleep(0))\n"
              "print(sys.modules.get('ssl'), 'sessiond.agent.main' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "SESSIOND_LINK_TOKEN"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["None", "True"], done.stderr


WAITER_PARENT = """
import os, signal, sys, time
from isolation import init
child = os.fork()
if child == 0:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(5))
    print("ready", flush=True)
    time.sleep(60)
    os._exit(1)
argvs = init.waiter_argvs(sys.argv[1], child)
argv = argvs[0] if sys.argv[2] == "native" else argvs[-1]
os.execv(argv[0], argv)
"""
# The two waiters: the native one (isolation/wait.c, built by make install)
# and init.py's loop in a minimal interpreter (the fallback).
WAITERS = ("native", "python")


def _catches_sigterm(pid: int) -> bool:
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
    if b"init.py" not in cmdline and init.NATIVE_WAITER.encode() not in cmdline:
        return False
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        caught = int(next(line for line in handle if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (15 - 1)))


def test_the_installed_waiter_is_the_native_one() -> None:
    """make install built isolation/wait.c, so sandboxes wait in it, not in a ~3.9 MiB interpreter."""
    assert os.access(init.native_waiter_path(), os.X_OK), init.native_waiter_path()
    assert init.waiter_argvs("init", 7)[0] == [init.native_waiter_path(), "init", "7"]


@pytest.mark.parametrize("waiter", WAITERS)
@pytest.mark.parametrize("role", ["supervise", "init"])
def test_the_exec_d_waiter_forwards_sigterm_and_exits_with_the_childs_status(role: str, waiter: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WAITER_PARENT, role, waiter], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = 400
        while deadline and not _catches_sigterm(proc.pid):
            subprocess.run(["sleep", "0.05"], check=True)  # exec'd, but its handler is not in yet
            deadline -= 1
        cmdline = open(f"/proc/{proc.pid}/cmdline", "rb").read().split(b"\0")
        if waiter == "native":
            assert cmdline[0] == init.native_waiter_path().encode() and cmdline[1] == role.encode()
        else:
            assert cmdline[1:3] == [b"-I", b"-S"] and cmdline[4] == role.encode()
        proc.send_signal(15)
        assert proc.wait(timeout=30) == 5
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("waiter", WAITERS)
def test_a_child_killed_by_a_signal_is_128_plus_n(waiter: str) -> None:
    script = ("import os, sys, time\nfrom isolation import init\nchild = os.fork()\n"
              "if child == 0:\n    time.sleep(60)\n    os._exit(1)\n"
              "os.kill(child, 9)\nargvs = init.waiter_argvs('supervise', child)\n"
              "argv = argvs[0] if sys.argv[1] == 'native' else argvs[-1]\nos.execv(argv[0], argv)\n")
    done = subprocess.run([sys.executable, "-c", script, waiter], capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + 9, done.stderr


@pytest.mark.parametrize("waiter", WAITERS)
@pytest.mark.parametrize("args", [["run", "x"], ["supervise", "0"], ["init", "12a"], ["init", "99999999999"],
                                  ["supervise"], []])
def test_the_waiter_refuses_other_arguments(waiter: str, args: list[str]) -> None:
    argvs = init.waiter_argvs("supervise", 1)
    argv = (argvs[0] if waiter == "native" else argvs[-1])[:-2] + args
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == init.EXIT_USAGE and "usage" in done.stderr


def _run_agent_in_process(as_nobody: bool) -> subprocess.CompletedProcess[str]:
    script = ("import os, sys\nfrom isolation import zygote\n"
              "zygote.run_in_process([sys.executable, '-m', 'sessiond.agent'], {'PATH': '/usr/bin:/bin'})\n")
    env = {**os.environ, "SESSIOND_LINK_TOKEN": "from-the-parent"}
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    return subprocess.run([*prefix, sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd="/")  # fmt: skip


def test_the_agent_run_in_process_gets_only_the_session_environment() -> None:
    """run_in_process does what execve of `python -m sessiond.agent` would: the agent sees only
    the session's environment (here without a link token, so it stops with 73)."""
    done = _run_agent_in_process(as_nobody=os.geteuid() == 0)
    assert done.returncode == 73, done.stderr
    assert "no link token" in done.stderr, "the parent's environment reached the agent"


def test_the_agent_run_in_process_still_refuses_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("run the tests as root: the agent's own root check needs root to be seen")
    done = _run_agent_in_process(as_nobody=False)
    assert done.returncode == 70 and "refusing to run as root" in done.stderr, done.stderr
