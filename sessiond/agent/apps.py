# Starting and watching the session's applications. The argv comes from
# sessiond (built from the server-side catalog, never from the client); the
# agent only runs it, reports when its first window maps (so a client can
# type into it right away), and reports when it exits.
"""AppLauncher: app processes of one session."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Coroutine
from typing import Any, Awaitable, Callable

from protocol.errors import ReasonCode
from protocol.messages import AppExited, LaunchResult, SpawnApp
from sessiond.agent.frame_trace import FrameTrace

# Apps running at once in one session (more is refused, not queued).
MAX_APPS = 64


class _Pending:
    def __init__(self, pid: int, app: str, request: int) -> None:
        self.pid = pid
        self.app = app
        self.request = request
        self.mapped: asyncio.Future[int] = asyncio.get_running_loop().create_future()


async def _exit_status(loop: asyncio.AbstractEventLoop, process: subprocess.Popen[bytes]) -> int:
    """PROCESS's exit status once it ended (negative: the signal that killed it), as asyncio's
    Process.wait() gives it; waited for through a pidfd, so the loop is never blocked."""
    fd = os.pidfd_open(process.pid)
    ended = loop.create_future()
    loop.add_reader(fd, lambda: ended.done() or ended.set_result(None))
    try:
        await ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return process.wait()


class AppLauncher:
    """Spawns apps with the session environment and reports on them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, env: dict[str, str], *, launch_timeout: float,
                 report: Callable[[LaunchResult | AppExited], None],
                 before_spawn: Callable[[], Awaitable[None]] | None = None,
                 log_path: str | None = None) -> None:  # fmt: skip
        """LOG_PATH: the file the apps' stderr goes to (None: the agent's own stderr)."""
        self.loop = loop
        self.env = env
        self.launch_timeout = launch_timeout
        self.report = report
        self.before_spawn = before_spawn
        self.log_path = log_path
        self.processes: dict[int, str] = {}  # pid -> app id of the launch (seamless windows carry it)
        self._waiting: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # SESSIOND_FRAME_TRACE=1: "launch", "exec" and "mapped" of each launch, written at the map
        # (bench/startup_breakdown.py splits LAUNCH -> first frame with them).
        self.trace = FrameTrace()

    def spawn(self, request: SpawnApp) -> None:
        """Start REQUEST once the loop runs (after before_spawn); its answers go to report."""
        self._track(self._run(request))

    def spawn_now(self, request: SpawnApp) -> None:
        """Exec REQUEST in this call, without before_spawn: the login's launch, while the agent is
        still setting up and its loop does not run yet (an asyncio spawn would wait for that)."""
        self.trace.mark("launch")
        if len(self.processes) >= MAX_APPS:  # refused once the loop runs (see below)
            self.loop.call_soon(self._room, request)
            return
        cwd, stderr = self._cwd(request), self._stderr()
        try:
            process = subprocess.Popen(request.argv, cwd=cwd, env=self.env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)  # fmt: skip
        except OSError as exc:  # answered once the loop runs, as from spawn(): the caller is mid set-up
            self.loop.call_soon(self._cannot_start, request, exc)
            return
        finally:
            if stderr is not None:
                os.close(stderr)
        self.trace.mark("exec")
        pending = self._pending(request, process.pid)  # now: its window may map before the watch runs
        self._track(self._watch(request, pending, _exit_status(self.loop, process)))

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _room(self, request: SpawnApp) -> bool:
        if len(self.processes) < MAX_APPS:
            return True
        self.report(LaunchResult(request=request.request, ok=False, code=ReasonCode.LIMIT_EXCEEDED,
                                 message=f"at most {MAX_APPS} apps per session"))  # fmt: skip
        return False

    def _cwd(self, request: SpawnApp) -> str:
        cwd = request.cwd or self.env.get("HOME") or "/"
        return cwd if os.path.isdir(cwd) else self.env.get("HOME") or "/"

    def _stderr(self) -> int | None:
        """The apps' stderr: the session's log (log_path), whatever the agent's own is at the
        time (before READY its stderr is a pipe to sessiond, which an app must not hold)."""
        if self.log_path is None:
            return None
        try:
            return os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)

    def _cannot_start(self, request: SpawnApp, exc: OSError) -> None:
        self.report(LaunchResult(request=request.request, ok=False, code=ReasonCode.UNKNOWN_APP,
                                 message=f"cannot start {request.argv[0]}: {exc.strerror}"))  # fmt: skip

    async def _run(self, request: SpawnApp) -> None:
        self.trace.mark("launch")
        if not self._room(request):
            return
        if self.before_spawn is not None:
            await self.before_spawn()  # e.g. the session's sound server is up
        stderr = self._stderr()
        try:
            process = await asyncio.create_subprocess_exec(
                *request.argv, cwd=self._cwd(request), env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            self._cannot_start(request, exc)
            return
        finally:
            if stderr is not None:
                os.close(stderr)
        self.trace.mark("exec")
        await self._watch(request, self._pending(request, process.pid), process.wait())

    def _pending(self, request: SpawnApp, pid: int) -> _Pending:
        """REQUEST runs as PID: its launch waits for its first window (window_mapped)."""
        self.processes[pid] = request.app
        pending = _Pending(pid, request.app, request.request)
        self._waiting.append(pending)
        return pending

    async def _watch(self, request: SpawnApp, pending: _Pending, exit_status: Awaitable[int]) -> None:
        """The launch's answer (its first window mapped, it exited first, or launch_timeout
        passed), then APP_EXITED with EXIT_STATUS."""
        pid = pending.pid
        exited = asyncio.ensure_future(exit_status)
        done, _ = await asyncio.wait({pending.mapped, exited}, timeout=self.launch_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if pending in self._waiting:
            self._waiting.remove(pending)
        if pending.mapped.done():
            pass  # window_mapped reported it, ahead of the window's first frame
        elif exited in done:
            self.report(LaunchResult(request=request.request, ok=False, code=ReasonCode.UNKNOWN_APP,
                                     message=f"{request.app} exited with status {exited.result()} "
                                             "before showing a window", pid=pid))  # fmt: skip
        else:
            self.report(LaunchResult(request=request.request, ok=True, message="started; no window yet",
                                     pid=pid))  # fmt: skip
        status = await exited
        self.processes.pop(pid, None)
        self.report(AppExited(app=request.app, pid=pid, status=status))

    def window_mapped(self, window: int, pid: int | None) -> str:
        """A top-level window appeared: complete the matching launch; the app
        id of that launch ("" if no launch was waiting).  LAUNCH_RESULT is
        reported here, synchronously, so it leaves before any frame that
        shows the window: a client may wait for a frame after it."""
        if not self._waiting:
            return ""
        match = next((p for p in self._waiting if p.pid == pid), None) or self._waiting[0]
        self._waiting.remove(match)
        if not match.mapped.done():
            self.trace.mark("mapped")
            match.mapped.set_result(window)
            self.report(LaunchResult(request=match.request, ok=True, message="window mapped", pid=match.pid))
            self.trace.flush()  # one write per launch, after its reply went out
        return match.app

    def app_of(self, pid: int) -> str:
        """The app id launched as process `pid` ("" if unknown)."""
        return self.processes.get(pid, "")

    def terminate_all(self) -> None:
        for pid in list(self.processes):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
