"""sessiond.agent.screen with fakes: clamping, coalescing of resize requests,
and the order of RandR requests (a CRTC must always fit inside the screen)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from sessiond.agent.screen import (
    MODE_PREFIX,
    RESIZE_COALESCE_SECONDS,
    ResizeCoalescer,
    ScreenError,
    ScreenResizer,
)
from sessiond.agent.settings import MIN_SIDE, clamp_size

MAX = (3840, 2160)


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ((800, 600), (800, 600)),
        ((1, 1), (MIN_SIDE, MIN_SIDE)),
        ((MIN_SIDE - 1, 700), (MIN_SIDE, 700)),
        ((MIN_SIDE, MIN_SIDE), (MIN_SIDE, MIN_SIDE)),
        ((3841, 2160), (3840, 2160)),
        ((65535, 65535), MAX),
        ((5000, 100), (3840, 100)),
    ],
)
def test_clamp_size(asked: tuple[int, int], expected: tuple[int, int]) -> None:
    assert clamp_size(*asked, *MAX) == expected


class FakeLoop:
    """A clock and call_later whose time only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[FakeTimer] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in [t for t in self.timers if t.when <= self.now and not t.cancelled]:
            self.timers.remove(timer)
            timer.callback()

    def live(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]


class FakeTimer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def coalescer() -> tuple[ResizeCoalescer, FakeLoop, list[tuple[int, int]]]:
    loop = FakeLoop()
    applied: list[tuple[int, int]] = []
    return ResizeCoalescer(lambda w, h: applied.append((w, h)), loop.call_later, lambda: loop.now), loop, applied


def test_first_request_is_applied_at_once() -> None:
    resizes, loop, applied = coalescer()
    resizes.request(800, 600)
    assert applied == [(800, 600)]
    assert loop.live() == []


def test_requests_within_the_window_coalesce_to_the_latest() -> None:
    resizes, loop, applied = coalescer()
    resizes.request(800, 600)
    loop.advance(0.01)
    for width in range(801, 900):  # a window being dragged
        resizes.request(width, 600)
        loop.advance(0.0005)
    assert applied == [(800, 600)]
    assert resizes.pending == (899, 600)
    assert len(loop.live()) == 1
    loop.advance(RESIZE_COALESCE_SECONDS)
    assert applied == [(800, 600), (899, 600)]
    assert resizes.pending is None
    assert loop.live() == []


def test_no_two_resizes_closer_than_the_window() -> None:
    resizes, loop, applied = coalescer()
    times: list[float] = []
    resizes._apply = lambda w, h: times.append(loop.now)  # noqa: SLF001 - record when, not what
    for step in range(200):
        resizes.request(600 + step, 400)
        loop.advance(0.007)
    loop.advance(1.0)
    assert len(times) >= 10
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= RESIZE_COALESCE_SECONDS - 1e-9
    assert applied == []


def test_a_request_after_a_quiet_spell_is_immediate() -> None:
    resizes, loop, applied = coalescer()
    resizes.request(800, 600)
    loop.advance(RESIZE_COALESCE_SECONDS + 0.001)
    resizes.request(1024, 768)
    assert applied == [(800, 600), (1024, 768)]


def test_cancel_drops_the_pending_request() -> None:
    resizes, loop, applied = coalescer()
    resizes.request(800, 600)
    resizes.request(1024, 768)
    resizes.cancel()
    loop.advance(1.0)
    assert applied == [(800, 600)]
    resizes.request(640, 480)
    assert applied == [(800, 600), (640, 480)]


# -- ScreenResizer against a recorder fake of python-xlib's RandR methods --

class FakeRandR:
    """One output and one CRTC, like Xvfb; records every request in order."""

    OUTPUT, CRTC = 60, 59

    def __init__(self, size: tuple[int, int], limit: tuple[int, int] = MAX) -> None:
        self.size = size
        self.limit = limit
        self.calls: list[tuple[Any, ...]] = []
        self.modes: dict[int, tuple[str, int, int]] = {58: (f"{limit[0]}x{limit[1]}", *limit)}
        self.output_modes = {58}
        self.crtc_mode = 58
        self.next_id = 80
        self.crtc_status = 0
        self.root = SimpleNamespace(
            get_geometry=lambda: SimpleNamespace(width=self.size[0], height=self.size[1]),
            xrandr_get_screen_size_range=lambda: SimpleNamespace(max_width=limit[0], max_height=limit[1]),
            xrandr_get_screen_resources=self._resources,
            xrandr_create_mode=self._create_mode,
            xrandr_set_screen_size=self._set_screen_size,
        )

    # display methods
    def has_extension(self, name: str) -> bool:
        return name == "RANDR"

    def screen(self) -> Any:
        return SimpleNamespace(root=self.root)

    def sync(self) -> None:
        self.calls.append(("sync",))

    def xrandr_get_crtc_info(self, crtc: int, stamp: int) -> Any:
        return SimpleNamespace(mode=self.crtc_mode)

    def xrandr_get_output_info(self, output: int, stamp: int) -> Any:
        return SimpleNamespace(modes=sorted(self.output_modes))

    def xrandr_add_output_mode(self, output: int, mode: int) -> None:
        self.calls.append(("add_output_mode", mode))
        self.output_modes.add(mode)

    def xrandr_delete_output_mode(self, output: int, mode: int) -> None:
        self.calls.append(("delete_output_mode", mode))
        self.output_modes.discard(mode)

    def xrandr_destroy_mode(self, mode: int) -> None:
        self.calls.append(("destroy_mode", mode))
        del self.modes[mode]

    def xrandr_set_crtc_config(self, crtc: int, stamp: int, x: int, y: int, mode: int, rotation: int,
                               outputs: list[int]) -> Any:  # fmt: skip
        _name, width, height = self.modes[mode]
        if width > self.size[0] or height > self.size[1]:
            raise AssertionError(f"CRTC {width}x{height} set while the screen is {self.size}")
        self.calls.append(("set_crtc_config", width, height))
        if self.crtc_status == 0:
            self.crtc_mode = mode
        return SimpleNamespace(status=self.crtc_status)

    # root methods
    def _resources(self) -> Any:
        ids = sorted(self.modes)
        names = "".join(self.modes[i][0] for i in ids)
        infos = [SimpleNamespace(id=i, width=self.modes[i][1], height=self.modes[i][2],
                                 name_length=len(self.modes[i][0])) for i in ids]  # fmt: skip
        return SimpleNamespace(outputs=[self.OUTPUT], crtcs=[self.CRTC], config_timestamp=1, modes=infos,
                               mode_names=names.encode())  # fmt: skip

    def _create_mode(self, info: dict[str, int], name: str) -> Any:
        self.next_id += 1
        self.modes[self.next_id] = (name, info["width"], info["height"])
        self.calls.append(("create_mode", name))
        return SimpleNamespace(mode=self.next_id)

    def _set_screen_size(self, width: int, height: int, mm_w: int, mm_h: int) -> None:
        assert mm_w > 0 and mm_h > 0  # the server refuses 0 mm (BadValue)
        self.calls.append(("set_screen_size", width, height))
        self.size = (width, height)


def test_shrinking_sets_the_crtc_before_the_screen() -> None:
    fake = FakeRandR(MAX)
    resizer = ScreenResizer(fake, *MAX)
    assert resizer.set_size(800, 600) == (800, 600)
    names = [c for c in fake.calls if c[0] in ("set_crtc_config", "set_screen_size")]
    assert names == [("set_crtc_config", 800, 600), ("set_screen_size", 800, 600)]
    assert ("create_mode", f"{MODE_PREFIX}800x600") in fake.calls


def test_growing_grows_the_screen_first_and_forgets_the_old_mode() -> None:
    fake = FakeRandR(MAX)
    resizer = ScreenResizer(fake, *MAX)
    resizer.set_size(800, 600)
    small_mode = fake.crtc_mode
    fake.calls.clear()
    assert resizer.set_size(1920, 1080) == (1920, 1080)
    sizes = [c for c in fake.calls if c[0] in ("set_crtc_config", "set_screen_size")]
    assert sizes == [("set_screen_size", 1920, 1080), ("set_crtc_config", 1920, 1080),
                     ("set_screen_size", 1920, 1080)]  # fmt: skip
    assert ("destroy_mode", small_mode) in fake.calls
    # The X server's own mode is never deleted; ours never pile up.
    resizer.set_size(MAX[0], MAX[1])
    assert set(fake.modes) == {58}


def test_requests_are_clamped_to_the_server_limit() -> None:
    fake = FakeRandR((1280, 800), limit=(1920, 1080))
    resizer = ScreenResizer(fake, *MAX)  # configured larger than the X server allows
    assert resizer.set_size(9999, 9999) == (1920, 1080)
    assert resizer.set_size(0, 10) == (MIN_SIDE, MIN_SIDE)


def test_same_size_sends_nothing() -> None:
    fake = FakeRandR((1280, 800))
    ScreenResizer(fake, *MAX).set_size(1280, 800)
    assert fake.calls == []


def test_refused_mode_is_an_error() -> None:
    fake = FakeRandR(MAX)
    fake.crtc_status = 3
    with pytest.raises(ScreenError, match="refused a 800x600 mode"):
        ScreenResizer(fake, *MAX).set_size(800, 600)


def test_no_randr_is_an_error() -> None:
    fake = FakeRandR(MAX)
    fake.has_extension = lambda name: False  # type: ignore[method-assign]
    with pytest.raises(ScreenError, match="no RANDR"):
        ScreenResizer(fake, *MAX)
