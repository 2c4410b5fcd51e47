# The viewer's SessionWindow in a real Qt (PySide6, the offscreen platform: no
# X server), driven the way ViewerUi drives it and with a recorder in place of
# the link: patches are painted before apply_patches returns (no wait for
# another turn of the event loop, which is latency), the stale shade darkens
# the pixels and goes again, an app that does not answer a close gets the
# "not responding" choice, and maximize goes both ways without echo.
"""SessionWindow under Qt offscreen: paint, stale shade, force-close dialog, maximize."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from client.fb_memory import SWAP_RB
from client.viewer.damage import LatencyTrace, Patch, WindowState


def px(red: int, green: int, blue: int, pad: int) -> bytes:
    """One pixel as a patch holds it: the framebuffer's memory order (Qt's RGB32: B, G, R, pad on little-endian)."""
    return bytes((blue, green, red, pad) if SWAP_RB else (red, green, blue, pad))


@dataclass
class RecordingLink:
    """What SessionWindow calls on ViewerLink, recorded."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    closes: list[tuple[int, bool]] = field(default_factory=list)
    trace: LatencyTrace = field(default_factory=lambda: LatencyTrace("unused: never closed"))

    def call(self, method: str, *args: object) -> None:
        self.calls.append((method, *args))

    def key(self, window: int, keysym: int, down: bool) -> None:
        self.calls.append(("key", window, keysym, down))

    def close(self, window: int, force: bool) -> None:
        self.closes.append((window, force))

    def fit_screen(self, width: int, height: int) -> None:
        self.calls.append(("fit_screen", width, height))


@pytest.fixture(scope="module")
def qt() -> Any:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication(["test_viewer_window"])


def state(**changes: Any) -> WindowState:
    base = WindowState(7, "Stubborn", "stub", "normal", True, 0, 40, 30, 64, 48, "normal", True)
    return replace(base, **changes)


def make(qt: Any, **changes: Any) -> tuple[Any, RecordingLink]:
    from client.viewer.window import SessionWindow

    link = RecordingLink()
    window = SessionWindow(link, state(**changes), True)
    window.show()
    settle(qt)
    link.calls.clear()
    return window, link


def settle(qt: Any, seconds: float = 0.15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        qt.processEvents()
        time.sleep(0.01)


def pixel(window: Any, x: int, y: int) -> tuple[int, int, int]:
    colour = window.grab().toImage().pixelColor(x, y)
    return colour.red(), colour.green(), colour.blue()


def test_patches_are_painted_before_apply_patches_returns(qt: Any) -> None:
    window, link = make(qt)
    link.trace.marks.clear()
    window.apply_patches([Patch(7, 64, 48, 2, 1, 4, 3, px(250, 10, 20, 255) * 12)])
    assert [name for name, _ in link.trace.marks] == ["copied", "paint", "painted"]
    assert window.image.pixelColor(5, 3).getRgb()[:3] == (250, 10, 20)
    assert window.image.pixelColor(6, 3).getRgb()[:3] == (48, 48, 48)  # outside the patch: not drawn yet
    assert pixel(window, 2, 1) == (250, 10, 20)


def test_a_patch_past_the_image_is_not_written(qt: Any) -> None:
    window, _link = make(qt)
    window.apply_patches([Patch(7, 64, 48, 0, 0, 64, 48, px(9, 9, 9, 255) * 64 * 48)])
    window.apply_patches([Patch(7, 64, 48, 62, 46, 4, 4, px(200, 0, 0, 255) * 16)])  # 2 px too wide, too tall
    assert window.image.pixelColor(63, 47).getRgb()[:3] == (9, 9, 9)


@pytest.mark.parametrize("width", [64, 41])  # 4-byte pixels, rows never padded
def test_whole_row_and_narrow_patches_land_where_they_belong(qt: Any, width: int) -> None:
    window, _link = make(qt, width=width)
    window.apply_patches([Patch(7, width, 48, 0, 10, width, 3, px(1, 2, 3, 255) * width * 3),
                          Patch(7, width, 48, 5, 20, 4, 2, px(4, 5, 6, 255) * 8)])  # fmt: skip
    image = window.image
    assert image.pixelColor(0, 10).getRgb()[:3] == image.pixelColor(width - 1, 12).getRgb()[:3] == (1, 2, 3)
    assert image.pixelColor(0, 9).getRgb()[:3] == image.pixelColor(width - 1, 13).getRgb()[:3] == (48, 48, 48)
    assert image.pixelColor(5, 20).getRgb()[:3] == image.pixelColor(8, 21).getRgb()[:3] == (4, 5, 6)
    assert image.pixelColor(4, 20).getRgb()[:3] == image.pixelColor(9, 21).getRgb()[:3] == (48, 48, 48)
    assert image.pixelColor(5, 22).getRgb()[:3] == (48, 48, 48)


def test_a_scroll_paints_from_the_patches_and_copies_only_when_the_image_is_needed(qt: Any) -> None:
    window, _link = make(qt)
    for shade in range(1, 6):  # five frames over the same rows: each replaces the last one not yet copied
        window.apply_patches([Patch(7, 64, 48, 0, 8, 64, 30, px(shade, 2 * shade, 3 * shade, 255) * 64 * 30)])
    assert len(window.canvas._unmerged) == 1  # each repaint was drawn from its patch: no copy, no image paint
    window.apply_patches([Patch(7, 64, 48, 5, 1, 2, 2, px(7, 7, 7, 255) * 4)])
    assert len(window.canvas._unmerged) == 2  # does not cover the scroll's rows: both kept
    window.update()  # an expose: painted from the image, every patch copied in first
    settle(qt)
    assert not window.canvas._unmerged
    assert pixel(window, 10, 20) == (5, 10, 15) and pixel(window, 5, 1) == (7, 7, 7)
    assert pixel(window, 10, 40) == (48, 48, 48)  # never drawn
    assert window.image.pixelColor(63, 37).getRgb()[:3] == (5, 10, 15)


def test_patches_not_yet_copied_are_bounded_by_one_image(qt: Any) -> None:
    window, _link = make(qt)
    window.hide()  # nothing is painted, so nothing asks for the image
    for x in range(40):
        window.apply_patches([Patch(7, 64, 48, x, 0, 1, 48, px(x, 0, 0, 255) * 48)])
    assert sum(len(p.pixels) for p in window.canvas._unmerged) <= window.canvas._image.sizeInBytes()
    assert window.image.pixelColor(39, 47).getRgb()[:3] == (39, 0, 0)
    assert window.image.pixelColor(0, 0).getRgb()[:3] == (0, 0, 0)


def test_typing_keeps_few_patches_not_yet_copied(qt: Any) -> None:
    from client.viewer.canvas import MAX_UNMERGED_PATCHES

    window, _link = make(qt)
    for cell in range(40):  # one small patch per keystroke, none covering another
        window.apply_patches([Patch(7, 64, 48, cell % 16 * 4, cell // 16 * 8, 4, 8, px(cell, 1, 2, 255) * 32)])
        assert len(window.canvas._unmerged) <= MAX_UNMERGED_PATCHES
    assert window.image.pixelColor(0, 0).getRgb()[:3] == (0, 1, 2)
    assert window.image.pixelColor(28, 16).getRgb()[:3] == (39, 1, 2)
    assert pixel(window, 0, 0) == (0, 1, 2) and pixel(window, 28, 16) == (39, 1, 2)


def test_a_lone_small_repaint_is_followed_by_one_pixel_once_the_window_is_quiet(qt: Any) -> None:
    from client.viewer.window import ECHO_SYNC_MS

    window, link = make(qt, width=256, height=128)
    window.apply_patches([Patch(7, 256, 128, 8, 4, 6, 13, px(90, 80, 70, 255) * 78)])  # an echo's cell
    link.trace.marks.clear()
    settle(qt, ECHO_SYNC_MS / 1000 + 0.1)
    assert [name for name, _ in link.trace.marks] == ["paint", "painted"]  # the one pixel, once
    assert pixel(window, 8, 4) == (90, 80, 70) and pixel(window, 13, 16) == (90, 80, 70)
    window.apply_patches([Patch(7, 256, 128, 0, 0, 256, 128, px(5, 6, 7, 255) * 256 * 128)])  # a whole window
    link.trace.marks.clear()
    settle(qt, ECHO_SYNC_MS / 1000 + 0.1)
    assert link.trace.marks == []  # larger repaints are not followed
    assert pixel(window, 8, 4) == (5, 6, 7)
    window.apply_patches([Patch(7, 256, 128, 8, 4, 6, 13, px(1, 2, 3, 255) * 78)])  # small, right after
    link.trace.marks.clear()
    settle(qt, ECHO_SYNC_MS / 1000 + 0.1)
    assert link.trace.marks == []  # nor small ones soon after a larger one (a scroll)
    assert pixel(window, 8, 4) == (1, 2, 3)


def test_pad_bytes_do_not_change_what_is_painted(qt: Any) -> None:
    # RGB32 (RGBX8888) is opaque whatever the fourth byte holds: a pad of 0 paints the same colour.
    window, _link = make(qt)
    window.apply_patches([Patch(7, 64, 48, 0, 0, 64, 48, px(30, 60, 90, 0) * 64 * 48)])
    assert pixel(window, 10, 10) == (30, 60, 90)
    window.apply_patches([Patch(7, 64, 48, 3, 3, 4, 4, px(90, 60, 30, 7) * 16)])
    assert pixel(window, 4, 4) == (90, 60, 30) and pixel(window, 10, 10) == (30, 60, 90)


def test_stale_shade_darkens_the_window_until_it_is_current_again(qt: Any) -> None:
    window, _link = make(qt)
    window.apply_patches([Patch(7, 64, 48, 0, 0, 64, 48, px(255, 255, 255, 255) * 64 * 48)])
    assert pixel(window, 10, 10) == (255, 255, 255)
    window.set_stale(True)
    shaded = pixel(window, 10, 10)
    assert all(140 <= c <= 150 for c in shaded), shaded  # white under black at alpha 110/255
    window.set_stale(False)
    assert pixel(window, 10, 10) == (255, 255, 255)


def test_an_unanswered_close_offers_force_close(qt: Any) -> None:
    window, link = make(qt)
    window.close()
    assert link.closes == [(7, False)] and window.not_responding is None
    window.apply_state(state(close_unanswered=True))
    box = window.not_responding
    assert box is not None and box.isVisible()
    assert box.windowTitle() == "Not responding - Stubborn"
    window.close()  # closing again while asked: force
    assert link.closes[-1] == (7, True) and not box.isVisible()


def test_wait_leaves_the_app_and_the_next_close_asks_again(qt: Any) -> None:
    from PySide6.QtWidgets import QMessageBox

    window, link = make(qt)
    window.close()
    window.apply_state(state(close_unanswered=True))
    box = window.not_responding
    assert box is not None
    wait = next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.RejectRole)
    wait.click()
    settle(qt)
    assert not box.isVisible() and link.closes == [(7, False)]
    window.apply_state(state(close_unanswered=True, title="Stubborn 2"))  # no new close asked: no dialog
    assert not box.isVisible()
    window.close()
    assert link.closes == [(7, False), (7, False)]
    window.apply_state(state(close_unanswered=True))
    assert box.isVisible()
    force = next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole)
    force.click()
    assert link.closes[-1] == (7, True)


def test_session_maximize_and_restore_are_mirrored_without_echo(qt: Any) -> None:
    window, link = make(qt)
    window.apply_state(state(state="maximized", x=0, y=0, width=1024, height=768))
    settle(qt)
    assert window.isMaximized()
    window.apply_state(state())
    settle(qt)
    assert not window.isMaximized() and not window.isMinimized()
    assert [c for c in link.calls if c[0] in ("maximize", "restore", "minimize", "move_resize")] == []


def test_local_maximize_is_sent_as_maximize_not_as_a_size(qt: Any) -> None:
    window, link = make(qt)
    window.showMaximized()
    settle(qt)
    assert ("maximize", 7) in link.calls
    window.apply_state(state())  # a message the session sent before it had our maximize: no echo
    settle(qt)
    assert window.isMaximized()
    window.apply_state(state(state="maximized", x=0, y=0, width=1024, height=768))
    settle(qt)
    assert [c for c in link.calls if c[0] == "move_resize"] == []  # a size would un-maximize it in the session
    # the session's screen is asked to take the maximized window's size instead
    assert link.calls[-1] == ("fit_screen", window.width(), window.height())
    link.calls.clear()
    window.showNormal()
    settle(qt)
    assert link.calls[0] == ("restore", 7)
