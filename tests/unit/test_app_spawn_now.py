# AppLauncher.spawn_now: the login's launch is exec'd while the agent is still
# setting up, before its event loop runs (sessiond.agent.main). What its
# caller relies on: the process runs when the call returns; its answers
# (LAUNCH_RESULT, APP_EXITED) come once the loop runs, never inside the call;
# its exit status is the one asyncio's spawn would give; and its stderr goes
# to the session's log, not to the agent's stderr (before READY a pipe to
# sessiond, which the app would otherwise hold open after the agent moved on).
"""Tests of AppLauncher.spawn_now and the apps' stderr."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from protocol.errors import ReasonCode
from protocol.messages import AppExited, LaunchResult, SpawnApp
from sessiond.agent.apps import AppLauncher

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def launcher_with(reports: list[Any], log_path: str | None = None, timeout: float = 10.0) -> AppLauncher:
    return AppLauncher(asyncio.get_running_loop(), dict(ENV), launch_timeout=timeout, report=reports.append,
                       log_path=log_path)  # fmt: skip


async def until(test: Any, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not test():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_spawn_now_runs_the_app_in_the_call_and_reports_its_exit_status_later(tmp_path: Any) -> None:
    reports: list[Any] = []
    log = tmp_path / "agent.log"

    async def run() -> None:
        launcher = launcher_with(reports, str(log), timeout=0.2)
        launcher.spawn_now(SpawnApp(request=3, app="shell", argv=("sh", "-c", "echo oops >&2; exit 7")))
        assert reports == []  # nothing answered inside the call
        await until(lambda: any(isinstance(r, AppExited) for r in reports))

    asyncio.run(run())
    answer, exited = reports
    assert isinstance(answer, LaunchResult) and answer.request == 3 and not answer.ok
    assert answer.code == ReasonCode.UNKNOWN_APP and "exited with status 7" in answer.message
    assert isinstance(exited, AppExited) and exited.status == 7 and exited.app == "shell"
    assert log.read_text() == "oops\n"  # the app's stderr is the session's log


def test_spawn_now_reports_a_killed_app_as_asyncio_would_and_completes_a_mapped_launch() -> None:
    reports: list[Any] = []

    async def run() -> None:
        launcher = launcher_with(reports)
        launcher.spawn_now(SpawnApp(request=5, app="sleeper", argv=("sleep", "30")))
        await until(lambda: launcher.processes)
        pid = next(iter(launcher.processes))
        assert launcher.window_mapped(0x400001, pid) == "sleeper"
        os.kill(pid, signal.SIGKILL)
        await until(lambda: len(reports) == 2)

    asyncio.run(run())
    assert reports[0] == LaunchResult(request=5, ok=True, message="window mapped", pid=reports[0].pid)
    assert isinstance(reports[1], AppExited) and reports[1].status == -signal.SIGKILL


def test_spawn_now_of_a_missing_program_is_refused_once_the_loop_runs() -> None:
    reports: list[Any] = []

    async def run() -> None:
        launcher = launcher_with(reports)
        launcher.spawn_now(SpawnApp(request=9, app="ghost", argv=("/nonexistent/ghost",)))
        assert reports == []  # the caller is mid set-up: not answered inside the call
        await until(lambda: reports)

    asyncio.run(run())
    (answer,) = reports
    assert isinstance(answer, LaunchResult) and answer.request == 9 and not answer.ok
    assert answer.code == ReasonCode.UNKNOWN_APP and "cannot start /nonexistent/ghost" in answer.message


def test_a_launch_through_the_loop_sends_its_stderr_to_the_log_too(tmp_path: Any) -> None:
    reports: list[Any] = []
    log = tmp_path / "agent.log"

    async def run() -> None:
        launcher = launcher_with(reports, str(log), timeout=0.2)
        launcher.spawn(SpawnApp(request=1, app="shell", argv=("sh", "-c", "echo hello >&2")))
        await until(lambda: any(isinstance(r, AppExited) for r in reports))

    asyncio.run(run())
    assert log.read_text() == "hello\n"
    assert isinstance(reports[-1], AppExited) and reports[-1].status == 0


def test_a_window_that_maps_before_the_loop_runs_completes_the_launch() -> None:
    """The desktop focus watch reports windows already mapped when the agent sets it up."""
    reports: list[Any] = []

    async def run() -> None:
        launcher = launcher_with(reports)
        launcher.spawn_now(SpawnApp(request=4, app="sleeper", argv=("sleep", "30")))
        (pid,) = launcher.processes  # known in the call, before any loop turn
        assert launcher.window_mapped(0x400002, pid) == "sleeper"
        await asyncio.sleep(0.05)
        launcher.terminate_all()
        await until(lambda: len(reports) == 2)

    asyncio.run(run())
    assert reports[0] == LaunchResult(request=4, ok=True, message="window mapped", pid=reports[0].pid)
    assert isinstance(reports[1], AppExited) and reports[1].status == -signal.SIGTERM
