# With SESSIOND_FRAME_TRACE=1 a launch leaves its moments in the agent's log
# (launch, exec, the map), and bench/startup_breakdown.py reads them with the
# display pipeline's first frame after the map: what splits LAUNCH -> first
# frame into the agent's wait, the exec, the app's own start and the encode.
"""Tests of AppLauncher's trace marks and startup_breakdown's reading of them."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time

from protocol.messages import LaunchResult, SpawnApp
from sessiond.agent.apps import AppLauncher
from sessiond.agent.frame_trace import FrameTrace, parse_trace_line

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import startup_breakdown  # noqa: E402 - the bench folder is not a package


def test_a_traced_launch_writes_launch_exec_and_mapped_once_mapped() -> None:
    out = io.StringIO()
    reports: list[object] = []

    async def run() -> None:
        launcher = AppLauncher(asyncio.get_running_loop(), {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                               launch_timeout=10.0, report=reports.append)  # fmt: skip
        launcher.trace = FrameTrace(enabled=True, out=out)
        launcher.spawn(SpawnApp(request=7, app="sleeper", argv=("sleep", "30")))
        while not launcher.processes:
            await asyncio.sleep(0.01)
        assert out.getvalue() == ""  # nothing written before the map
        pid = next(iter(launcher.processes))
        assert launcher.window_mapped(0x200001, pid) == "sleeper"
        launcher.terminate_all()
        while launcher.processes:
            await asyncio.sleep(0.01)

    asyncio.run(run())
    marks = [parse_trace_line(line) for line in out.getvalue().splitlines()]
    assert [mark[0] for mark in marks if mark] == ["launch", "exec", "mapped"]
    assert isinstance(reports[0], LaunchResult) and reports[0].ok and reports[0].request == 7


def test_an_untraced_launch_writes_nothing() -> None:
    out = io.StringIO()
    trace = FrameTrace(enabled=False, out=out)
    trace.mark("launch")
    assert trace.flush() == 0 and out.getvalue() == ""


def test_the_breakdown_takes_the_launch_and_the_first_frame_after_the_map() -> None:
    now = time.monotonic()
    stamp = "2026-12-06T14:00:00.000000+0000 [sessiond#info]"
    log = (f"{stamp} session abc starting for ann (warm slot)\n"
           f"{stamp} agent abc stderr: frame-trace frame {now - 0.5:.6f}\n"
           f"{stamp} agent other stderr: frame-trace launch {now - 0.45:.6f}\n")  # fmt: skip
    agent_log = "".join(f"frame-trace {name} {now + at:.6f}\n" for name, at in
                        [("out", -0.40), ("launch", -0.30), ("exec", -0.29), ("mapped", -0.25),
                         ("notify", -0.249), ("frame", -0.248), ("encoded", -0.23), ("out", -0.229),
                         ("frame", -0.1), ("out", -0.09)])  # fmt: skip
    marks = startup_breakdown.server_marks(log, "ann", {"abc": agent_log, "other": "frame-trace out 1.0\n"})
    offset = time.time() - time.monotonic()
    expected = {"launch": -0.30, "exec": -0.29, "mapped": -0.25, "notify": -0.249, "frame": -0.248,
                "encoded": -0.23, "out": -0.229, "open frame": -0.5, "open out": -0.40}  # fmt: skip
    for name, at in expected.items():
        assert abs(marks[f"trace: {name}"] - (now + at + offset)) < 0.01, name
    assert sorted(name for name in marks if name.startswith("trace:")) == sorted(f"trace: {n}" for n in expected)
    # Without the agent's own log only sessiond's line is there: the display open's frame start.
    assert [name for name in startup_breakdown.server_marks(log, "ann") if name.startswith("trace:")] == [
        "trace: open frame"]
