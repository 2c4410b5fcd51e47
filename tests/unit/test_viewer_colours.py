# Every encoding's pixels, decoded by the client's Framebuffer (which keeps
# them in Qt's RGB32 order: B, G, R, pad on a little-endian machine), cut
# into patches by the viewer's DamageCollector and painted by a real
# SessionWindow (Qt offscreen): what the window shows must be exactly the
# framebuffer's RGB image, colour for colour. Red shown as blue, a stale row,
# or a pad byte Qt would not take as opaque, fails here.
"""The viewer paints each encoding's pixels with the session's colours (Qt offscreen)."""

from __future__ import annotations

import io
import os
from typing import Any

import lz4.block
import pytest
from PIL import Image

from client import glyph_paint
from client.viewer.damage import DamageCollector
from media import glyphs, palette
from protocol.messages import Encoding, FrameEnd, Region
from protocol.windows import WindowTarget
from unit.test_viewer_core import FakeClient, drive, window_new
from unit.test_viewer_window import RecordingLink, state

WIDTH, HEIGHT = 48, 40


@pytest.fixture(scope="module")
def qt() -> Any:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication(["test_viewer_colours"])


def gradient(w: int, h: int) -> Image.Image:
    """Every pixel a different colour, red and blue never equal."""
    return Image.frombytes("RGB", (w, h), bytes(v for i in range(w * h) for v in (i * 7 % 256, i % 251, 255 - i % 256)))


def glyph_region(colours: bytes) -> tuple[bytes, int, int]:
    cell = bytes([1, 0, 0, 1, 1, 0] * 4)  # 6 x 4 cell, two colours
    defs = [(0, glyphs.pack_cell(cell, 6, 4))]
    return glyphs.encode(6, 4, colours, defs, [0], bytes(4 * 2)), 24, 8


def regions() -> list[Region]:
    """One region of each lossless encoding, with colours whose red and blue differ."""
    tile = gradient(20, 10)
    png = io.BytesIO()
    gradient(12, 9).save(png, "PNG")
    indices = bytes(i % 3 for i in range(16 * 6))
    glyph_data, gw, gh = glyph_region(bytes((250, 20, 5, 3, 40, 230)))
    return [Region(0, 0, WIDTH, HEIGHT, Encoding.FILL, bytes((200, 30, 10))),
            Region(2, 1, 20, 10, Encoding.RAW_LZ4, lz4.block.compress(tile.tobytes(), store_size=True)),
            Region(24, 1, 16, 6, Encoding.PALETTE,
                   palette.encode(16, 6, 8, bytes((255, 0, 0, 0, 0, 255, 10, 200, 90)), indices)),
            Region(1, 14, gw, gh, Encoding.GLYPHS, glyph_data),
            Region(30, 20, 12, 9, Encoding.PNG, png.getvalue()),
            Region(5, 30, 10, 5, Encoding.COPY, palette.COPY_SOURCE.pack(2, 1))]  # fmt: skip


def shown(window: Any) -> bytes:
    """The window's pixels as Qt paints them, as RGB bytes."""
    from PySide6.QtGui import QImage

    image = window.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    return b"".join(bytes(image.constScanLine(row))[: WIDTH * 3] for row in range(HEIGHT))  # type: ignore[call-overload]


@pytest.mark.parametrize("glyphs_by", ["pillow", "numpy", "native"], ids=lambda by: f"{by}-glyphs")
def test_every_encoding_is_painted_with_the_session_colours(qt: Any, glyphs_by: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from client.viewer.window import SessionWindow

    # numpy and ctypes imported here first: an import in preload's thread while this one waits in join() and
    # Qt is loaded does not finish (PySide's import hook); the viewer never joins that thread.
    import ctypes as _ctypes  # noqa: F401, PLC0415
    import numpy as _  # noqa: F401, PLC0415

    thread = glyph_paint.preload()
    if thread is not None:
        thread.join()
    assert glyph_paint.native() is not None, "the C painter is not built (make install)"
    if glyphs_by != "native":
        monkeypatch.setattr(glyph_paint, "_native", None)
    if glyphs_by == "numpy":
        assert glyph_paint.load_numpy(), "numpy (requirements-viewer.txt) is not installed"
    else:
        monkeypatch.setattr(glyph_paint, "_numpy", None)
    client = FakeClient()
    client.windows.message(window_new(5, width=WIDTH, height=HEIGHT))
    window = SessionWindow(RecordingLink(), state(id=5, width=WIDTH, height=HEIGHT), True)
    window.show()
    collector = DamageCollector(client, lambda: window.apply_patches(collector.take()), lambda: None)
    drive(client, collector, WindowTarget(window=5, width=WIDTH, height=HEIGHT))
    framebuffer = client.windows.windows[5].framebuffer
    assert framebuffer is not None
    for seq, region in enumerate(regions()):
        drive(client, collector, region)
        drive(client, collector, FrameEnd(seq=seq))  # painted from the frame's patch, before the next frame
        expected = framebuffer.image().tobytes()
        assert shown(window) == expected, region.encoding
    assert framebuffer.pixel(0, 0) == (200, 30, 10) and framebuffer.pixel(24, 1) == (255, 0, 0)
    memory = framebuffer._memory.buffer
    assert memory is not None and set(memory[3::4]) == {255}  # RGB32's pad: opaque wherever it came from
    assert window.image.convertToFormat(window.image.Format.Format_RGB888).pixelColor(24, 1).getRgb()[:3] == (255, 0, 0)
