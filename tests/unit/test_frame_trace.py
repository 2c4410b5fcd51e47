"""The keystroke timeline: the agent's FrameTrace (off by default, bounded,
written in batches), the pipeline's marks for one echo, the echo sent without
a coalescing timer, and bench/keystroke_timeline.py's chaining of the
viewer's and the agent's marks into one row per keystroke."""

from __future__ import annotations

import io
import os
import sys
from typing import Any, Callable

import pytest

from protocol.base import Encoding
from protocol.media import FrameEnd, Region
from protocol.messages import Key
from sessiond.agent import frame_trace
from sessiond.agent.display import FRAME_COALESCE_SECONDS, DisplayPipeline
from sessiond.agent.frame_trace import TRACE_BATCH, TRACE_ENV, FrameTrace, parse_trace_line
from sessiond.agent.settings import AgentSettings
from test_link_estimate import Link

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import keystroke_timeline as timeline  # noqa: E402 - the bench folder is not a package


class DelayLoop:
    """call_later that records each delay asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, Callable[[], None]]] = []

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any:
        self.calls.append((delay, fn))
        return self

    def cancel(self) -> None:
        pass


class EchoOnce:
    """Damaged until one frame takes it: a glyph and the cursor, one region."""

    def __init__(self) -> None:
        self.damaged = False

    def pending(self) -> bool:
        return self.damaged

    def mark_all(self) -> None:
        self.damaged = True

    def frame(self, encoder: Any) -> list[Any]:
        self.damaged = False
        return [Region(6, 0, 12, 13, Encoding.JPEG, b"\0" * 40)]


def test_trace_is_off_unless_the_environment_says_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACE_ENV, raising=False)
    assert not FrameTrace().enabled
    monkeypatch.setenv(TRACE_ENV, "yes")
    assert not FrameTrace().enabled
    monkeypatch.setenv(TRACE_ENV, "1")
    assert FrameTrace().enabled
    off = FrameTrace(enabled=False)
    off.mark("key")
    assert off.pending == [] and off.flush() == 0


def test_trace_writes_in_batches_and_its_lines_parse_back() -> None:
    out = io.StringIO()
    trace = FrameTrace(enabled=True, out=out)
    for _ in range(TRACE_BATCH + 3):
        trace.mark("notify")
    assert trace.flush() == TRACE_BATCH and len(trace.pending) == 3
    assert trace.flush() == 3 and trace.flush() == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == TRACE_BATCH + 3
    parsed = parse_trace_line(lines[0])
    assert parsed is not None and parsed[0] == "notify" and parsed[1] > 0
    assert parse_trace_line("agent: something else 1.0") is None
    assert parse_trace_line("frame-trace key notanumber") is None


def test_trace_keeps_at_most_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frame_trace, "MAX_TRACE_PENDING", 5)
    trace = FrameTrace(enabled=True, out=io.StringIO())
    for _ in range(6):
        trace.mark("frame")
    assert len(trace.pending) == 5


def test_an_echo_from_an_idle_pipeline_is_sent_without_a_coalescing_timer() -> None:
    """The first damage after idle: the frame is scheduled at once (delay 0),
    the whole echo goes in that one frame, and the trace has its marks in order."""
    loop, link, source = DelayLoop(), Link(), EchoOnce()
    settings = AgentSettings(socket="/x", frames_in_flight=2, display_adaptive=False)
    pipeline = DisplayPipeline(loop, settings, source, lambda: link, lambda: None)  # type: ignore[arg-type]
    pipeline.trace = FrameTrace(enabled=True, out=io.StringIO())
    pipeline.opened()
    loop.calls.pop(0)[1]()  # the client's first full frame
    link.conn.sent.clear()
    pipeline.trace.pending.clear()
    pipeline.last_frame_at = 0.0  # long ago: idle, not a stream
    pipeline.typed(Key(keysym=0x61, down=True))
    source.damaged = True  # the echo's damage notify
    pipeline.schedule()
    assert FRAME_COALESCE_SECONDS == 0.0
    delay, send = loop.calls.pop(0)
    assert delay == 0.0
    send()
    assert [type(m) for m in link.conn.sent] == [Region, FrameEnd]
    assert [name for name, _ in pipeline.trace.pending] == ["key", "frame", "encoded", "out"]


def test_timeline_chains_a_press_not_its_release_and_drops_broken_chains() -> None:
    viewer = {"sent": [1.0, 1.0001, 2.0], "frame": [1.006], "woke": [1.0062], "painted": [1.007]}
    agent = {"key": [1.001, 1.0011, 2.001], "notify": [1.002], "frame": [1.0021], "encoded": [1.0026],
             "out": [1.0027]}  # fmt: skip
    rows = timeline.timelines(viewer, agent)
    assert len(rows) == 1 and rows[0]["sent"] == 1.0  # the release and the unechoed key are not rows
    figures = timeline.stage_medians(rows)
    assert figures["n"] == 1
    assert figures["agent: notify -> frame starts (coalescing wait)"] == pytest.approx(0.1)
    assert figures["total KEY sent -> painted"] == pytest.approx(7.0)
    assert timeline.stage_medians([])["n"] == 0


def test_sessiond_passes_the_trace_switch_to_the_agent_only_when_on(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Any) -> None:  # fmt: skip
    from sessiond.config import load_config
    from sessiond.spawn import session_env

    config = load_config(None, {"server": {"state_dir": str(tmp_path)}})
    monkeypatch.delenv(TRACE_ENV, raising=False)
    assert TRACE_ENV not in session_env(config, "token", "s1")
    monkeypatch.setenv(TRACE_ENV, "0")
    assert TRACE_ENV not in session_env(config, "token", "s1")
    monkeypatch.setenv(TRACE_ENV, "1")
    env = session_env(config, "token", "s1")
    assert env[TRACE_ENV] == "1" and env["SESSIOND_LINK_TOKEN"] == "token"
