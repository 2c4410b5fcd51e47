# Resizing the session's X screen to the client's window, through RandR.
#
# Why this works on Xvfb: Xvfb (21.x) offers RandR 1.5 with one output named
# "screen" and one CRTC, and accepts any mode up to the size it was started
# with (its framebuffer is allocated once, at start).  So the agent starts
# Xvfb at the largest size a client may ask for and sets the real size with
# RandR: create a mode of the wanted size, add it to the output, point the
# CRTC at it and set the screen size.  Apps see an ordinary RandR screen
# change, as on a desktop whose monitor changed resolution.
#
# Why coalescing: a browser window being dragged asks for a new size on every
# animation frame; every resize costs a full-screen repaint and a new capture
# segment, so requests arriving close together are folded into one (the
# latest wins) and at most one resize runs per RESIZE_COALESCE_SECONDS.
"""Set the X screen size with RandR; clamp and coalesce client resize requests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from Xlib import X

from sessiond.agent.settings import clamp_size

# At most one resize per this many seconds; requests in between coalesce.
RESIZE_COALESCE_SECONDS = 0.1
# Our modes are named with this prefix, so we only ever delete our own.
MODE_PREFIX = "sessiond-"
# Physical size reported with the screen: the same DPI Xvfb is started with.
SCREEN_DPI = 96
MM_PER_INCH = 25.4
# RandR rotation value "no rotation" (RR_Rotate_0).
ROTATE_0 = 1
# SetCrtcConfig status "success" (RRSetConfigSuccess).
RR_SET_CONFIG_SUCCESS = 0


class ScreenError(RuntimeError):
    """The X server cannot be resized; the message says why."""


def _mm(pixels: int) -> int:
    return max(1, round(pixels * MM_PER_INCH / SCREEN_DPI))


class ScreenResizer:
    """Sets the size of screen 0 of a python-xlib Display with RandR."""

    def __init__(self, display: Any, max_width: int, max_height: int) -> None:
        if not display.has_extension("RANDR"):
            raise ScreenError("the X server has no RANDR extension; the screen cannot be resized")
        self._display = display
        self._root = display.screen().root
        limits = self._root.xrandr_get_screen_size_range()
        # The X server's own limit (Xvfb: the size it was started with) wins.
        self.max_width = min(max_width, int(limits.max_width))
        self.max_height = min(max_height, int(limits.max_height))

    def size(self) -> tuple[int, int]:
        """The current size of the root window."""
        geometry = self._root.get_geometry()
        return int(geometry.width), int(geometry.height)

    def set_size(self, width: int, height: int) -> tuple[int, int]:
        """Resize the screen to width x height (clamped); return the size it now has."""
        width, height = clamp_size(width, height, self.max_width, self.max_height)
        current = self.size()
        if current == (width, height):
            return current
        display, root = self._display, self._root
        resources = root.xrandr_get_screen_resources()
        if not resources.outputs or not resources.crtcs:
            raise ScreenError("the X server offers no RandR output to resize")
        output, crtc = resources.outputs[0], resources.crtcs[0]
        stamp = resources.config_timestamp
        old_mode = display.xrandr_get_crtc_info(crtc, stamp).mode
        mode = self._mode_for(resources, output, width, height)
        if width > current[0] or height > current[1]:
            # The CRTC must fit inside the screen: grow the screen first.
            grown = max(width, current[0]), max(height, current[1])
            root.xrandr_set_screen_size(grown[0], grown[1], _mm(grown[0]), _mm(grown[1]))
        reply = display.xrandr_set_crtc_config(crtc, stamp, 0, 0, mode, ROTATE_0, [output])
        if reply.status != RR_SET_CONFIG_SUCCESS:
            raise ScreenError(f"the X server refused a {width}x{height} mode (RandR status {reply.status})")
        root.xrandr_set_screen_size(width, height, _mm(width), _mm(height))
        self._forget_mode(resources, output, old_mode, keep=mode)
        display.sync()
        return self.size()

    def _mode_for(self, resources: Any, output: int, width: int, height: int) -> int:
        usable = self._output_modes(output)
        for info in resources.modes:
            if info.width == width and info.height == height and info.id in usable:
                return int(info.id)
        name = f"{MODE_PREFIX}{width}x{height}"
        info = {
            "id": 0, "width": width, "height": height, "dot_clock": 0,
            "h_sync_start": 0, "h_sync_end": 0, "h_total": 0, "h_skew": 0,
            "v_sync_start": 0, "v_sync_end": 0, "v_total": 0,
            "name_length": len(name), "flags": 0,
        }  # fmt: skip
        mode = int(self._root.xrandr_create_mode(info, name).mode)
        self._display.xrandr_add_output_mode(output, mode)
        return mode

    def _output_modes(self, output: int) -> set[int]:
        info = self._display.xrandr_get_output_info(output, X.CurrentTime)
        return {int(m) for m in info.modes}

    def _forget_mode(self, resources: Any, output: int, mode: int, keep: int) -> None:
        """Delete a mode we created and no longer use, so modes cannot pile up."""
        if mode == keep or not _mode_names(resources).get(mode, "").startswith(MODE_PREFIX):
            return
        self._display.xrandr_delete_output_mode(output, mode)
        self._display.xrandr_destroy_mode(mode)


def _mode_names(resources: Any) -> dict[int, str]:
    """Mode id -> name: RandR sends all names as one string, cut by name_length."""
    names: dict[int, str] = {}
    blob = resources.mode_names
    text = blob.decode("latin-1") if isinstance(blob, bytes) else str(blob)
    offset = 0
    for info in resources.modes:
        names[int(info.id)] = text[offset : offset + info.name_length]
        offset += info.name_length
    return names


class Timer(Protocol):
    """What call_later returns (asyncio.TimerHandle fits)."""

    def cancel(self) -> None: ...


class ResizeCoalescer:
    """Folds resize requests so that at most one resize runs per `window` seconds.

    The first request after a quiet spell is applied at once (a one-off
    `svclient resize` answers without delay); later ones within `window` of
    the last resize wait for the window to pass, and only the latest size is
    applied then.  Every request is answered by exactly one later apply call.
    """

    def __init__(
        self,
        apply: Callable[[int, int], None],
        call_later: Callable[[float, Callable[[], None]], Timer],
        clock: Callable[[], float] = time.monotonic,
        window: float = RESIZE_COALESCE_SECONDS,
    ) -> None:
        self._apply = apply
        self._call_later = call_later
        self._clock = clock
        self._window = window
        self._pending: tuple[int, int] | None = None
        self._timer: Timer | None = None
        self._last_apply: float | None = None

    @property
    def pending(self) -> tuple[int, int] | None:
        """The size waiting to be applied, if any."""
        return self._pending

    def request(self, width: int, height: int) -> None:
        """Ask for width x height; applied now or at the end of the current window."""
        self._pending = (width, height)
        if self._timer is not None:
            return  # the scheduled apply will pick up the latest size
        now = self._clock()
        wait = 0.0 if self._last_apply is None else self._last_apply + self._window - now
        if wait <= 0:
            self._fire()
        else:
            self._timer = self._call_later(wait, self._fire)

    def _fire(self) -> None:
        self._timer = None
        size, self._pending = self._pending, None
        if size is None:
            return
        self._last_apply = self._clock()
        self._apply(*size)

    def cancel(self) -> None:
        """Drop a pending request (the display channel closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = None
