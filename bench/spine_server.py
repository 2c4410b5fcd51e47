# The real sessiond the benchmark talks to, and the real users it logs in as.
#
# Why not tests/svtest.start_sessiond: the bench needs a 1920x1080 screen and
# an extra apps directory (the redraw app), and sessiond's INI loader rejects
# a duplicated [session] or [apps] section, so that helper's fixed config
# cannot be extended. This module writes its own config and starts the
# installed sessiond under the bench's Twisted reactor, so readiness is the
# "listening" line arriving on sessiond's output (an event, not a poll).
# Users come from svtest.create_user (the tests' helper, reused as is).
"""BenchServer: start/stop the installed sessiond; bench users."""

from __future__ import annotations

import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, error, protocol, task
from twisted.python.failure import Failure

TESTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from svtest import LISTEN_RE, PREFIX, VENV_BIN, TestUser, create_user  # noqa: E402, F401 - PREFIX: for the benches

# Seconds sessiond may take to print its listening line.
START_TIMEOUT_SECONDS = 20.0
# Seconds sessiond gets to end its sessions on SIGTERM before SIGKILL.
STOP_TIMEOUT_SECONDS = 15.0
# Seconds to wait for killed leftover processes to disappear.
KILL_WAIT_SECONDS = 5.0
# Output kept in memory to find the listening line (it comes first).
MAX_STARTUP_OUTPUT = 64 * 1024


class _SessiondProcess(protocol.ProcessProtocol):
    """Copies sessiond's output to a log file; fires when it listens."""

    def __init__(self, log_path: str) -> None:
        self.log = open(log_path, "wb")
        self.listening: defer.Deferred[tuple[str, int]] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._head = b""

    def outReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted name
        self.log.write(data)
        self.log.flush()
        if self.listening.called or len(self._head) > MAX_STARTUP_OUTPUT:
            return
        self._head += data
        match = LISTEN_RE.search(self._head.decode("utf-8", "replace"))
        if match:
            self.listening.callback((match.group(1), int(match.group(2))))

    errReceived = outReceived  # noqa: N815 - Twisted name

    def processEnded(self, reason: Failure) -> None:  # noqa: N802 - Twisted name
        self.log.close()
        if not self.listening.called:
            self.listening.errback(RuntimeError(f"sessiond exited before listening: {reason.getErrorMessage()}"))
        self.ended.callback(None)


@dataclass
class BenchServer:
    """A running sessiond with the bench configuration."""

    host: str
    port: int
    tmp: str
    runtime_dir: str
    log_path: str
    _process: Any = field(repr=False)
    _watcher: _SessiondProcess = field(repr=False)

    @property
    def pid(self) -> int:
        """sessiond's process id."""
        return int(self._process.pid)

    def log(self) -> str:
        """sessiond's output so far (for error reports)."""
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    async def stop(self, reactor: Any) -> None:
        """SIGTERM (sessiond ends its sessions), SIGKILL after a grace period."""
        if not self._watcher.ended.called:
            try:
                self._process.signalProcess("TERM")
            except error.ProcessExitedAlready:
                pass
            killer = reactor.callLater(STOP_TIMEOUT_SECONDS, self._kill)
            await self._watcher.ended
            if killer.active():
                killer.cancel()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def _kill(self) -> None:
        try:
            self._process.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass


def write_config(tmp: str, width: int, height: int, app_dirs: list[str],
                 display: dict[str, int] | None = None,
                 extra: dict[str, dict[str, str]] | None = None,
                 venv_bin: str = VENV_BIN) -> tuple[str, str]:  # fmt: skip
    """Write the bench sessiond.conf; returns (config path, runtime dir).
    DISPLAY overrides [display] keys (pacing experiments); None keeps the defaults.
    EXTRA adds keys per section ([session] keys join the bench's own [session]).
    VENV_BIN: the installation whose python the sessions run."""
    extra = {name: dict(keys) for name, keys in (extra or {}).items()}
    session_keys = extra.pop("session", {})
    session_keys.setdefault("mode", "desktop")  # see below; a bench may ask for seamless
    session_extra = "".join(f"{key} = {value}\n" for key, value in session_keys.items())
    runtime = f"/run/sessiond-bench-{secrets.token_hex(4)}"
    config = os.path.join(tmp, "sessiond.conf")
    # Sessions outlive a sessiond restart by default; the bench wants them gone.
    on_stop = "on_stop = logoff\n"
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(
            f"[server]\nlisten = 127.0.0.1:0\nstate_dir = {os.path.join(tmp, 'state')}\nruntime_dir = {runtime}\n"
            f"{on_stop}"
            f"[auth]\nfailure_delay = 0.3\n"
            # the workloads read the client's desktop framebuffer (seamless mode,
            # the default since issue 13, has one surface per window instead)
            f"[session]\nwidth = {width}\nheight = {height}\npython = {venv_bin}/python\n"
            f"{session_extra}"
            f"[apps]\ndirectories = {':'.join(app_dirs)}\n"
        )
        if display:
            handle.write("[display]\n" + "".join(f"{key} = {value}\n" for key, value in display.items()))
        for name, keys in extra.items():
            handle.write(f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items()))
    return config, runtime


async def start_sessiond(reactor: Any, tmp: str, width: int, height: int, app_dirs: list[str],
                         display: dict[str, int] | None = None,
                         extra: dict[str, dict[str, str]] | None = None, venv_bin: str = VENV_BIN
                         ) -> BenchServer:  # fmt: skip
    """Start the installed sessiond; returns once it listens (EXTRA, VENV_BIN: see write_config;
    another VENV_BIN runs another installation, e.g. a baseline checkout)."""
    config, runtime = write_config(tmp, width, height, app_dirs, display, extra, venv_bin)
    log_path = os.path.join(tmp, "sessiond.log")
    watcher = _SessiondProcess(log_path)
    sessiond = os.path.join(venv_bin, "sessiond")
    process = reactor.spawnProcess(watcher, sessiond, [sessiond, "run", "--config", config], env=dict(os.environ))
    watcher.listening.addTimeout(START_TIMEOUT_SECONDS, reactor)
    try:
        host, port = await watcher.listening
    except Exception:
        if not watcher.ended.called:
            process.signalProcess("KILL")
        raise
    return BenchServer(host, port, tmp, runtime, log_path, process, watcher)


class BenchUsers:
    """Creates real users for the bench and removes them (even on failure)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.created: list[str] = []

    def create(self, name: str) -> TestUser:
        """A fresh user NAME with a random password (PAM checks it)."""
        user = create_user(name, self.directory)  # the name may carry SVTEST_USER_SUFFIX
        self.created.append(user.name)
        return user

    def remove_all(self) -> list[str]:
        """Delete every created user; returns error lines (empty if clean).

        Sessions should be gone already (sessiond ended them); a process a
        user still owns is killed by its pid before the user is deleted.
        """
        problems = []
        for name in self.created:
            leftover = [int(p) for p in subprocess.run(["pgrep", "-u", name], capture_output=True,
                                                       text=True).stdout.split()]  # fmt: skip
            if leftover:
                problems.append(f"{name}: killed {len(leftover)} leftover process(es) {leftover}")
                kill_and_wait(leftover)
            done = subprocess.run(["userdel", "-r", name], capture_output=True, text=True)
            # userdel -r reports a missing mail spool with status 12; the user is gone anyway.
            if done.returncode not in (0, 12):
                problems.append(f"{name}: userdel failed: {done.stderr.strip()}")
        self.created.clear()
        return problems


def run_bench(name: str, tmp_prefix: str, work: Callable[[Any, str, BenchUsers], Awaitable[None]],
              remove: tuple[str, ...] = ()) -> int:  # fmt: skip
    """Run WORK(reactor, tmp, users) under Twisted's reactor with a fresh
    temporary directory and bench users; if it raises, print the traceback and
    one "NAME: FAILED" line.  Either way the users, the directories in REMOVE
    and the temporary directory are removed.  Returns the exit status."""
    status = {"code": 0}

    async def body(reactor: Any) -> None:
        tmp = tempfile.mkdtemp(prefix=tmp_prefix)
        users = BenchUsers(tmp)
        try:
            await work(reactor, tmp, users)
        except Exception as exc:  # noqa: BLE001 - one line and the traceback, then clean up
            traceback.print_exc()
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            status["code"] = 1
        finally:
            for problem in users.remove_all():
                print(f"{name}: cleanup: {problem}", file=sys.stderr)
            for directory in (*remove, tmp):
                shutil.rmtree(directory, ignore_errors=True)

    try:
        task.react(lambda reactor: defer.ensureDeferred(body(reactor)))
    except SystemExit as exc:
        if exc.code not in (0, None):
            return int(exc.code)
    return status["code"]


def kill_and_wait(pids: list[int]) -> None:
    """SIGKILL each pid and wait (pidfd readiness) until it has exited."""
    poller = select.poll()
    fds = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        fds.append(fd)
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        poller.register(fd, select.POLLIN)
    try:
        waiting = set(fds)
        deadline = time.monotonic() + KILL_WAIT_SECONDS
        while waiting and time.monotonic() < deadline:
            for fd, _mask in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                waiting.discard(fd)
                poller.unregister(fd)
    finally:
        for fd in fds:
            os.close(fd)
