# The viewer's Qt-free parts: what crosses from the reactor thread to the GUI
# (DamageCollector's patches, their bound), the minimal key translator, and the
# checks that turn "no display" into one line. The client's window table and
# framebuffers are the real ones; only the connection is absent.
"""client.viewer: damage patches, coalescing bound, keys, display checks."""

from __future__ import annotations

import os
from types import SimpleNamespace
from dataclasses import dataclass, field
from typing import Any

import pytest

from client.fb_memory import swap_colour
from client.framebuffer import Framebuffer
from client.viewer.damage import (
    HANDOFF_MAX_BYTES,
    HANDOFF_WAIT_SECONDS,
    MAX_PATCH_RECTS,
    MAX_PENDING_PATCHES,
    DamageCollector,
    snapshot_of,
)
from client.viewer.main import NoDisplay, check_display
from client.windows import WindowTable
from protocol.base import Encoding
from protocol.messages import FrameEnd, Region
from protocol.windows import WindowFocus, WindowNew, WindowTarget



def rows(image: Any) -> bytes:
    """IMAGE's pixels as a patch holds them: the framebuffer's memory order (Qt's RGB32 on little-endian), pad 255."""
    return b"".join(bytes((*swap_colour(rgb), 255)) for rgb in image.get_flattened_data())

@dataclass
class FakeClient:
    """What DamageCollector reads from a SessionClient."""

    windows: WindowTable = field(default_factory=WindowTable)
    framebuffer: Framebuffer | None = None


def window_new(window: int, title: str = "t", width: int = 40, height: int = 20) -> WindowNew:
    return WindowNew(id=window, x=10, y=20, width=width, height=height, kind="normal", managed=True, transient_for=0,
                     title=title, app_id="xterm", wm_class=("xterm", "XTerm"), modal=False, decorated=True,
                     state="normal", polite_close=True, min_width=1, min_height=1, max_width=0, max_height=0,
                     base_width=0, base_height=0, width_inc=1, height_inc=1)  # fmt: skip


def fill(x: int, y: int, w: int, h: int, rgb: tuple[int, int, int]) -> Region:
    return Region(x=x, y=y, w=w, h=h, encoding=Encoding.FILL, data=bytes(rgb))


def drive(client: FakeClient, collector: DamageCollector, message: Any) -> None:
    """What SessionClient does: apply the message, then tell the observers."""
    if isinstance(message, WindowTarget):
        client.windows.target(message)
    elif isinstance(message, Region):
        client.windows.region(message)
    collector(message)


def make(window: int = 5) -> tuple[FakeClient, DamageCollector, list[int]]:
    client = FakeClient()
    client.windows.message(window_new(window))
    wakes: list[int] = []
    collector = DamageCollector(client, lambda: wakes.append(1), lambda: None)
    return client, collector, wakes


def test_frame_end_turns_changed_rectangles_into_rgb_patches() -> None:
    client, collector, wakes = make()
    drive(client, collector, WindowTarget(window=5, width=40, height=20))
    drive(client, collector, fill(2, 3, 4, 2, (255, 0, 0)))
    assert collector.take() == [] and not wakes  # nothing before FRAME_END
    drive(client, collector, FrameEnd(seq=1))
    patches = collector.take()
    assert len(wakes) == 1 and len(patches) == 1
    patch = patches[0]
    assert (patch.window, patch.fb_width, patch.fb_height) == (5, 40, 20)
    assert (patch.x, patch.y, patch.w, patch.h) == (2, 3, 4, 2)
    assert patch.pixels == bytes((*swap_colour((255, 0, 0)), 255)) * 8  # Qt's RGB32: B, G, R, pad


def test_the_gui_is_woken_once_until_it_takes_the_patches() -> None:
    client, collector, wakes = make()
    drive(client, collector, WindowTarget(window=5, width=40, height=20))
    for seq in range(3):
        drive(client, collector, fill(seq, 0, 1, 1, (1, 2, 3)))
        drive(client, collector, FrameEnd(seq=seq))
    assert len(wakes) == 1 and len(collector.take()) == 3
    drive(client, collector, fill(0, 0, 1, 1, (1, 2, 3)))
    drive(client, collector, FrameEnd(seq=9))
    assert len(wakes) == 2


def test_many_rectangles_in_one_frame_go_as_their_bounding_box() -> None:
    client, collector, _ = make()
    drive(client, collector, WindowTarget(window=5, width=40, height=20))
    for i in range(MAX_PATCH_RECTS + 1):
        drive(client, collector, fill(i, i % 10, 1, 1, (9, 9, 9)))
    drive(client, collector, FrameEnd(seq=1))
    (patch,) = collector.take()
    assert (patch.x, patch.y, patch.w, patch.h) == (0, 0, MAX_PATCH_RECTS + 1, 10)


def test_a_scroll_frame_is_one_patch_of_whole_rows() -> None:
    # xterm's text bands stop short of the window's edges: one patch of the whole window, the
    # unchanged edge pixels included as the framebuffer has them.
    client, collector, _ = make()
    drive(client, collector, WindowTarget(window=5, width=40, height=20))
    for y, h in ((0, 9), (9, 9), (18, 1)):
        drive(client, collector, fill(2, y, 36, h, (7, 8, 9)))
    drive(client, collector, FrameEnd(seq=1))
    (patch,) = collector.take()
    assert (patch.x, patch.y, patch.w, patch.h) == (0, 0, 40, 20)
    framebuffer = client.windows.windows[5].framebuffer
    assert framebuffer is not None and patch.pixels == rows(framebuffer.image())


def test_scattered_small_rectangles_stay_separate_patches() -> None:
    client, collector, _ = make()
    drive(client, collector, WindowTarget(window=5, width=40, height=20))
    drive(client, collector, fill(0, 0, 2, 2, (1, 1, 1)))
    drive(client, collector, fill(30, 15, 2, 2, (2, 2, 2)))
    drive(client, collector, FrameEnd(seq=1))
    assert [(p.x, p.y, p.w, p.h, p.pixels) for p in collector.take()] == [
        (0, 0, 2, 2, bytes((1, 1, 1, 255)) * 4), (30, 15, 2, 2, bytes((2, 2, 2, 255)) * 4)]


def test_pending_patches_past_the_bound_become_one_whole_window_patch() -> None:
    client, collector, _ = make()
    drive(client, collector, WindowTarget(window=5, width=40, height=20))
    for seq in range(MAX_PENDING_PATCHES + 1):
        drive(client, collector, fill(seq % 40, 0, 1, 1, (seq % 256, 0, 0)))
        drive(client, collector, FrameEnd(seq=seq))
    (patch,) = collector.take()  # the GUI fell behind: one patch of the whole, current window
    assert (patch.x, patch.y, patch.w, patch.h) == (0, 0, 40, 20)
    assert len(patch.pixels) == 40 * 20 * 4


def test_regions_of_an_unknown_window_make_no_patch() -> None:
    client, collector, wakes = make()
    drive(client, collector, WindowTarget(window=99, width=10, height=10))
    drive(client, collector, fill(0, 0, 1, 1, (1, 1, 1)))
    drive(client, collector, FrameEnd(seq=1))
    assert collector.take() == [] and not wakes


def test_snapshot_copies_the_window_table() -> None:
    client, _collector, _ = make()
    client.windows.message(window_new(6, "second"))
    client.windows.message(WindowFocus(window=6))
    snap = snapshot_of(client, "me@host")
    assert snap.seamless and snap.focus == 6
    assert [(w.id, w.title, w.x, w.y, w.width, w.height) for w in snap.windows] == [(5, "t", 10, 20, 40, 20),
                                                                                   (6, "second", 10, 20, 40, 20)]


def test_desktop_mode_snapshot_is_one_window_the_size_of_the_screen() -> None:
    client = FakeClient(framebuffer=Framebuffer(320, 200))
    snap = snapshot_of(client, "me@host")
    assert not snap.seamless
    assert [(w.id, w.title, w.width, w.height) for w in snap.windows] == [(0, "me@host", 320, 200)]


def test_no_display_is_reported_not_crashed(tmp_path: Any) -> None:
    with pytest.raises(NoDisplay, match="DISPLAY is not set"):
        check_display({}, str(tmp_path))
    with pytest.raises(NoDisplay, match="'nosuch' is not available"):
        check_display({"QT_QPA_PLATFORM": "nosuch"}, str(tmp_path))
    (tmp_path / "libqbroken.so").write_bytes(b"not an ELF file")
    with pytest.raises(NoDisplay, match="cannot load"):
        check_display({"QT_QPA_PLATFORM": "broken"}, str(tmp_path))


def test_a_display_that_does_not_answer_is_one_line() -> None:
    with pytest.raises(NoDisplay, match="cannot open the local display"):
        check_display({"DISPLAY": f":{os.getpid() % 1000 + 58000}"})
    with pytest.raises(NoDisplay, match="cannot open the local display"):
        check_display({"DISPLAY": ":99999"})  # past the TCP port range: still one line


def test_latency_trace_records_only_when_named_and_writes_on_close(tmp_path: Any) -> None:
    from client.viewer.damage import MAX_TRACE_MARKS, LatencyTrace

    off = LatencyTrace(None)
    off.mark("key")
    off.close()
    assert off.marks == []
    path = tmp_path / "trace"
    on = LatencyTrace(str(path))
    for _ in range(MAX_TRACE_MARKS + 5):
        on.mark("frame")
    on.close()
    lines = path.read_text().splitlines()
    assert len(lines) == MAX_TRACE_MARKS and lines[0].startswith("frame ")


def test_bench_splits_a_keystroke_into_library_and_viewer_time(tmp_path: Any) -> None:
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
    try:
        import bench_viewer
    finally:
        sys.path.pop(0)
    # One keystroke at t=10 s: key event +0.5 ms, sent +1 ms, frame +6 ms, woke +6.2, copied +6.3,
    # paint +6.4, painted +6.5, damage +7; a second keystroke whose repaint never came.
    marks = {"key": [10.0005, 20.0005], "sent": [10.001, 20.001], "frame": [10.006], "woke": [10.0062],
             "copied": [10.0063], "paint": [10.0064], "painted": [10.0065]}  # fmt: skip
    trace = tmp_path / "trace"
    trace.write_text("".join(f"{name} {t:.6f}\n" for name, times in marks.items() for t in times))
    rows = bench_viewer.keystroke_paths([10.0, 20.0], bench_viewer.read_trace(str(trace)), [10.007, 30.0])
    figures = bench_viewer.latency_figures(rows)
    assert figures["latency_n"] == 1
    assert figures["latency_ms"] == pytest.approx(7.0, abs=1e-3)
    assert figures["library_part_ms"] == pytest.approx(5.0, abs=1e-3)
    assert figures["viewer_own_ms"] == pytest.approx(0.5 + 1.0, abs=1e-3)  # key->sent + frame->damage
    assert figures["not_library_ms"] == pytest.approx(2.0, abs=1e-3)


class RecordingEvent:
    """DamageCollector's hand-off event, its waits recorded instead of waited."""

    def __init__(self) -> None:
        self.flag = False
        self.waits: list[float] = []

    def is_set(self) -> bool:
        return self.flag

    def set(self) -> None:
        self.flag = True

    def clear(self) -> None:
        self.flag = False

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return self.flag


def test_a_small_frame_is_handed_to_an_idle_gui_before_the_reactor_goes_on() -> None:
    client = FakeClient()
    client.windows.message(window_new(5, width=200, height=100))
    collector = DamageCollector(client, lambda: None, lambda: None)
    event = collector._painted = RecordingEvent()  # type: ignore[assignment]
    drive(client, collector, WindowTarget(window=5, width=200, height=100))

    def frame(seq: int, w: int, h: int) -> None:
        drive(client, collector, fill(0, 0, w, h, (1, 2, 3)))
        drive(client, collector, FrameEnd(seq=seq))

    frame(1, 6, 13)
    assert event.waits == []  # the GUI has not painted yet (it may not run its loop)
    collector.take()
    collector.painted()
    frame(2, 6, 13)  # an echo, the GUI idle: the reactor waits for its paint
    assert event.waits == [HANDOFF_WAIT_SECONDS] and not event.is_set()
    collector.take()
    frame(3, 6, 13)  # the GUI took the last patches but has not painted them: no wait
    assert event.waits == [HANDOFF_WAIT_SECONDS]
    collector.take()
    collector.painted()
    frame(4, 200, 100)  # a whole window (80 kB): never waited for
    assert event.waits == [HANDOFF_WAIT_SECONDS]
    assert 6 * 13 * 4 <= HANDOFF_MAX_BYTES < 200 * 100 * 4


class _FakeX:
    """The parts of a python-xlib Display free_area reads: one screen, RandR outputs and CRTCs, _NET_WORKAREA."""

    def __init__(self, size: tuple[int, int], crtcs: dict[int, tuple[int, int, int, int]] | None,
                 primary: int = 0, workarea: list[int] | None = None, xresources: bytes = b"") -> None:  # fmt: skip
        self.crtcs = crtcs
        outputs = sorted(crtcs or {})
        resources = SimpleNamespace(outputs=outputs, config_timestamp=1)
        work = None if workarea is None else SimpleNamespace(value=workarea)
        root = SimpleNamespace(xrandr_get_screen_resources=lambda: resources,
                               xrandr_get_output_primary=lambda: SimpleNamespace(output=primary),
                               get_full_property=lambda atom, kind: work if atom == 1 else SimpleNamespace(
                                   value=xresources))  # fmt: skip
        self._screen = SimpleNamespace(root=root, width_in_pixels=size[0], height_in_pixels=size[1])

    def screen(self) -> Any:
        return self._screen

    def has_extension(self, name: str) -> bool:
        return self.crtcs is not None

    def intern_atom(self, name: str) -> int:
        return 1

    def xrandr_get_output_info(self, output: int, stamp: int) -> Any:
        return SimpleNamespace(crtc=output if output in (self.crtcs or {}) and self.crtcs[output][2] else 0)  # type: ignore[index]

    def xrandr_get_crtc_info(self, crtc: int, stamp: int) -> Any:
        x, y, w, h = self.crtcs[crtc]  # type: ignore[index]
        return SimpleNamespace(x=x, y=y, width=w, height=h)


def test_free_area_is_the_primary_outputs_area_within_the_work_area() -> None:
    from client.viewer.main import free_area

    # No RandR, no window manager: the whole X screen.
    assert free_area(_FakeX((1280, 1024), None)) == (1280, 1024)
    # Two monitors side by side; the second is primary; a panel takes 40 rows at the top of the whole desktop.
    two = {1: (0, 0, 1920, 1080), 2: (1920, 0, 1280, 1024)}
    assert free_area(_FakeX((3200, 1080), two, primary=2, workarea=[0, 40, 3200, 1040])) == (1280, 984)
    # No primary output: the first that shows something (an output without a CRTC is skipped).
    assert free_area(_FakeX((3200, 1080), {1: (0, 0, 0, 0), 2: (0, 0, 1600, 900)})) == (1600, 900)
    # A work area that misses the screen altogether says nothing usable.
    assert free_area(_FakeX((1280, 1024), None, workarea=[2000, 0, 100, 100])) is None


def test_free_area_is_left_to_qt_where_qt_scales() -> None:
    from client.viewer.main import free_area

    plain = _FakeX((1280, 1024), None, xresources=b"Xft.antialias:\t1\nXft.dpi:\t96\n")
    assert free_area(plain, {}) == (1280, 1024)
    not_utf8 = _FakeX((1280, 1024), None, xresources=b"*name:\t\xff\xfe\nXft.dpi:\t96\n")
    assert free_area(not_utf8, {}) == (1280, 1024)  # a resource database that is not UTF-8 is no crash
    assert free_area(plain, {"QT_SCALE_FACTOR": "2"}) is None  # Qt's sizes are then half X's pixels
    assert free_area(_FakeX((1280, 1024), None, xresources=b"Xft.dpi:\t144\n"), {}) is None  # Qt 6: ratio 1.5
