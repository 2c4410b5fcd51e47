# The arithmetic and the guards of the scroll-floor bench
# (bench/bench_scroll_floor.py): CPU per 1000 lines and the ratios against
# condition (a) are what its report is read for, so they are checked on
# windows whose answers are known; a missing peer harness or an X server that
# never answers must stop the bench with a message, not yield figures.
# No timing is asserted.
"""Unit tests of bench_scroll_floor's per-line figures, report and guards."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))

import bench_scroll_floor as floor  # noqa: E402


def _window(cond: str, lines_per_s: float, xvfb: float, xterm: float, **more: float) -> floor.Window:
    return floor.Window(cond, lines_per_s, {"xvfb": xvfb, "xterm": xterm, **more})


def test_cpu_per_thousand_lines_uses_the_whole_window() -> None:
    window = _window("a", 20000, 1.7, 0.8)  # 100,000 lines in the 5 s window
    assert window.per_kline("xvfb") == pytest.approx(17.0)
    assert window.per_kline("xterm") == pytest.approx(8.0)
    assert window.per_kline("agent") == 0.0


def test_report_gives_medians_and_ratios_against_a() -> None:
    by_condition = {
        "plain": [_window("plain", 20000, 2.2, 0.8)],
        "a": [_window("a", 20000, 2.0, 0.8), _window("a", 10000, 1.0, 0.4), _window("a", 40000, 9.0, 9.0)],
        "c": [_window("c", 20000, 2.0, 0.88, agent=0.5)],
    }
    text = floor.report(by_condition, 60.0)
    rows = {line.split("  ")[0]: line.split() for line in text.splitlines()}
    # (a)'s medians: Xvfb 20 ms per 1000 lines, xterm 8 ms (the 40,000 lines/s outlier is not the median).
    assert rows["CPU-ms Xvfb per 1000 lines"][-5:] == ["22.00", "1.10x", "20.00", "20.00", "1.00x"]
    assert rows["CPU-ms xterm per 1000 lines"][-5:] == ["8.00", "1.00x", "8.00", "8.80", "1.10x"]
    assert rows["lines/s through the xterm"][-5:] == ["20000", "1.00x", "20000", "20000", "1.00x"]
    # No ratio against a zero: (a) has no agent.
    assert rows["CPU-s agent"] == ["CPU-s", "agent", "0.00", "0.00", "0.50"]
    # 28 ms per 1000 lines at 50,400 lines/s for 5 s: 7.06 CPU-s.
    assert "would use 7.06 CPU-s" in text


def test_a_missing_peer_harness_stops_the_bench(tmp_path: str) -> None:
    with pytest.raises(SystemExit, match="peer harness is not at"):
        floor.load_harness(str(tmp_path))


def test_an_x_server_that_closes_its_displayfd_pipe_is_an_error() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"36")  # no newline: the server died mid-line
    os.close(write_fd)
    try:
        with pytest.raises(RuntimeError, match="did not become ready"):
            floor._read_line(read_fd)
    finally:
        os.close(read_fd)


def test_displayfd_line_is_read_whole() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"362\n")
    try:
        assert floor._read_line(read_fd) == b"362\n"
    finally:
        os.close(read_fd)
        os.close(write_fd)
