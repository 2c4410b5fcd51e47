# The counting and parsing of the scroll bench (bench/scroll_feed.py,
# bench/bench_scroll.py): the text it pushes through the xterm must be
# deterministic with no two lines alike (else a damage-driven pipeline
# could send nothing), the feeder's count must equal the lines it wrote,
# and a malformed result line must be refused, not turned into a figure.
# No timing is asserted: the feeder runs for a few milliseconds into a pipe.
"""Unit tests of the scroll bench's text, line counting and result parsing."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))

import scroll_feed  # noqa: E402


def test_scroll_text_is_deterministic_full_width_and_never_repeats() -> None:
    bodies = scroll_feed.scroll_bodies(200)
    assert bodies == scroll_feed.scroll_bodies(200)
    text = scroll_feed.numbered(bodies, 0, 1000)  # wraps round the 200 bodies 5 times
    lines = text.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 1001
    assert {len(line) for line in lines[:-1]} == {scroll_feed.LINE_WIDTH}
    assert len(set(lines[:-1])) == 1000


def test_feeder_counts_exactly_the_lines_it_wrote() -> None:
    read_fd, write_fd = os.pipe()
    received: list[bytes] = []
    drain = threading.Thread(target=lambda: received.extend(iter(lambda: os.read(read_fd, 65536), b"")))
    drain.start()
    try:
        lines, took = scroll_feed.feed(write_fd, scroll_feed.scroll_bodies(64), 7, 0.05)
    finally:
        os.close(write_fd)
        drain.join()
        os.close(read_fd)
    text = b"".join(received)
    assert lines > 0 and took > 0
    assert text.count(b"\n") == lines
    assert text.startswith(b"00000007 ")


def test_result_line_round_trips_and_bad_lines_are_refused() -> None:
    assert scroll_feed.parse_result(scroll_feed.format_result(88832, 5.0004)) == (88832, 5.0004)
    for bad in (b"", b"12", b"1 2 3", b"x 1.0", b"-1 1.0", b"5 0", b"5 nan", b"1 " + b"9" * 70):
        with pytest.raises(ValueError):
            scroll_feed.parse_result(bad)
    assert scroll_feed.parse_round(b"5.0\n") == 5.0
    assert scroll_feed.parse_round(b"") is None and scroll_feed.parse_round(b"stop\n") is None
    for bad in (b"0\n", b"-1\n", b"601\n", b"soon\n"):
        with pytest.raises(ValueError):
            scroll_feed.parse_round(bad)


def test_report_averages_the_windows_and_gives_ratios_against_no_client() -> None:
    import bench_scroll
    from byte_proxy import ByteCount

    def window(lines: int, frames: int, down: int, cpu: dict[str, float]) -> Any:
        return bench_scroll.ScrollRun(lines, 5.0, frames, ByteCount(100, down), cpu)

    ours = [window(100000, 200, 5_000_000, {"Xvfb": 2.0, "agent": 1.0}),
            window(50000, 100, 3_000_000, {"Xvfb": 1.0, "agent": 2.0})]
    base = [window(200000, 0, 0, {"Xvfb": 3.0, "agent": 0.01}), window(100000, 0, 0, {"Xvfb": 3.0})]
    mean = bench_scroll.mean_run(ours)
    assert (mean.lines, mean.frames, mean.bytes.down) == (75000, 150, 4_000_000)
    assert mean.cpu == {"Xvfb": 1.5, "agent": 1.5}
    viewer = [window(60000, 150, 2_000_000, {"Xvfb": 2.0, "client's Xvfb": 0.5})]
    text = bench_scroll.report([("library", ours), ("viewer", viewer)], base)
    rows = {line.split("  ")[0]: line.split() for line in text.splitlines()}
    assert rows["scroll workload"][2:] == ["with", "library", "ratio", "with", "viewer", "ratio", "no", "client"]
    assert rows["lines/s through the xterm"][-5:] == ["15000", "0.5x", "12000", "0.4x", "30000"]
    assert rows["frames/s at the client"][-6:] == ["30.0", "n/a", "30.0", "n/a", "no", "client"]
    assert rows["kB/s down (TLS)"][3:5] == ["800", "n/a"]
    assert rows["CPU-s Xvfb"][-5:] == ["1.50", "0.5x", "2.00", "0.667x", "3.00"]
    assert rows["CPU-s agent"][-5:] == ["1.50", "n/a", "0.00", "n/a", "0.01"]  # idle baseline: no ratio
    assert rows["CPU-s client's Xvfb"][-5:] == ["0.00", "n/a", "0.50", "n/a", "0.00"]
    assert rows["CPU-s all"][-5:] == ["3.00", "0.998x", "2.50", "0.832x", "3.00"]
    # a client that was not measured (no viewer) gets no column
    assert "viewer" not in bench_scroll.report([("library", ours), ("viewer", [])], base).splitlines()[0]
    with pytest.raises(ValueError):
        bench_scroll.mean_run([])


def test_on_off_gives_the_ratios_of_the_medians_with_glyphs_on_and_off() -> None:
    import bench_scroll
    from byte_proxy import ByteCount

    def window(lines: int, frames: int, down: int, cpu: float) -> Any:
        return bench_scroll.ScrollRun(lines, 5.0, frames, ByteCount(100, down), {"agent": cpu})

    on = [window(100000, 300, 1_000_000, 2.0), window(100000, 300, 2_000_000, 9.0), window(1, 300, 3_000_000, 2.0)]
    off = [window(100000, 250, 8_000_000, 4.0)]
    text = bench_scroll.on_off([("library glyphs", on), ("library no glyphs", off), ("viewer glyphs", on)])
    assert text.splitlines() == [  # the viewer has no "off" windows: no line
        "library, glyphs on vs off (medians of 3/1 windows): kB/s 400.0 vs 1600.0 (0.25x); "
        "frames/s 60.0 vs 50.0 (1.20x); lines/s 20000.0 vs 20000.0 (1.00x); CPU-s all 2.0 vs 4.0 (0.50x)"]
