# Starting and watching the session's applications. The argv comes from
# sessiond (built from the server-side catalog, never from the client); the
# agent only runs it, reports when its first window maps (so a client can
# type into it right away), and reports when it exits.
"""AppLauncher: app processes of one session."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Awaitable, Callable

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


class AppLauncher:
    """Spawns apps with the session environment and reports on them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, env: dict[str, str], *, launch_timeout: float,
                 report: Callable[[LaunchResult | AppExited], None],
                 before_spawn: Callable[[], Awaitable[None]] | None = None) -> None:  # fmt: skip
        self.loop = loop
        self.env = env
        self.launch_timeout = launch_timeout
        self.report = report
        self.before_spawn = before_spawn
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self._waiting: list[_Pending] = []
        self._apps: dict[int, str] = {}  # pid -> app id of the launch (seamless windows carry it)
        self._tasks: set[asyncio.Task[None]] = set()
        # SESSIOND_FRAME_TRACE=1: "launch", "exec" and "mapped" of each launch, written at the map
        # (bench/startup_breakdown.py splits LAUNCH -> first frame with them).
        self.trace = FrameTrace()

    def spawn(self, request: SpawnApp) -> None:
        task = self.loop.create_task(self._run(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, request: SpawnApp) -> None:
        self.trace.mark("launch")
        if len(self.processes) >= MAX_APPS:
            self.report(LaunchResult(request=request.request, ok=False, code=ReasonCode.LIMIT_EXCEEDED,
                                     message=f"at most {MAX_APPS} apps per session"))  # fmt: skip
            return
        if self.before_spawn is not None:
            await self.before_spawn()  # e.g. the session's sound server is up
        cwd = request.cwd or self.env.get("HOME") or "/"
        if not os.path.isdir(cwd):
            cwd = self.env.get("HOME") or "/"
        try:
            process = await asyncio.create_subprocess_exec(
                *request.argv, cwd=cwd, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            self.report(LaunchResult(request=request.request, ok=False, code=ReasonCode.UNKNOWN_APP,
                                     message=f"cannot start {request.argv[0]}: {exc.strerror}"))  # fmt: skip
            return
        self.trace.mark("exec")
        self.processes[process.pid] = process
        self._apps[process.pid] = request.app
        pending = _Pending(process.pid, request.app, request.request)
        self._waiting.append(pending)
        exited = self.loop.create_task(process.wait())
        done, _ = await asyncio.wait({pending.mapped, exited}, timeout=self.launch_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if pending in self._waiting:
            self._waiting.remove(pending)
        if pending.mapped.done():
            pass  # window_mapped reported it, ahead of the window's first frame
        elif exited in done:
            self.report(LaunchResult(request=request.request, ok=False, code=ReasonCode.UNKNOWN_APP,
                                     message=f"{request.app} exited with status {process.returncode} "
                                             "before showing a window", pid=process.pid))  # fmt: skip
        else:
            self.report(LaunchResult(request=request.request, ok=True, message="started; no window yet",
                                     pid=process.pid))  # fmt: skip
        status = await exited
        self.processes.pop(process.pid, None)
        self._apps.pop(process.pid, None)
        self.report(AppExited(app=request.app, pid=process.pid, status=status))

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
        return self._apps.get(pid, "")

    def terminate_all(self) -> None:
        for pid in list(self.processes):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
