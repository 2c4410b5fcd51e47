# The viewer's video paint: an H264 region changes only the rows its picture
# changed (Framebuffer.video_rows), so the DamageCollector crops and the GUI
# paints only those, and a window built from the patches alone still ends
# equal to the framebuffer after every picture.  Real libx264 and FFmpeg
# from PyAV's wheel, the real client library; no Qt.
"""Unit tests: H264 regions become patches of their changed rows only."""

from __future__ import annotations

from client.viewer.damage import DamageCollector, Patch
from client.windows import WindowTable
from protocol.messages import Encoding, FrameEnd, Region
from protocol.video import pack
from protocol.windows import WindowTarget
from sessiond.agent.h264 import H264Encoder
from test_video_bands import pictures
from test_viewer_core import FakeClient, drive, window_new

WIDTH, HEIGHT = 96, 160  # the window and its video area (x, y) inside it
VIDEO = (8, 16, 64, 128)


def paste(canvas: bytearray, patch: Patch) -> None:
    """What the GUI's canvas does with a patch: its rows over the window's pixels."""
    stride = patch.fb_width * 4
    for row in range(patch.h):
        start = (patch.y + row) * stride + patch.x * 4
        canvas[start : start + patch.w * 4] = patch.pixels[row * patch.w * 4 : (row + 1) * patch.w * 4]


def test_h264_patches_hold_only_the_changed_rows_and_the_window_stays_exact() -> None:
    client = FakeClient(windows=WindowTable())
    client.windows.message(window_new(5, width=WIDTH, height=HEIGHT))
    collector = DamageCollector(client, lambda: None, lambda: None)
    drive(client, collector, WindowTarget(window=5, width=WIDTH, height=HEIGHT))
    x, y, w, h = VIDEO
    encoder = H264Encoder(w, h, bitrate=4_000_000)
    first = client.windows.windows[5].framebuffer
    assert first is not None
    canvas = bytearray(first.pixels(0, 0, WIDTH, HEIGHT)[2])  # the window as the GUI has it before the video
    painted_rows = []
    moving = pictures(30, w, h)
    for index, data in enumerate(moving + [moving[-1]] * 5):  # then a still picture
        unit = pack(0, encoder.encode_pixels(data, w * 4, 0, 0), key=index == 0)
        drive(client, collector, Region(x, y, w, h, Encoding.H264, unit))
        drive(client, collector, FrameEnd(seq=index + 1))
        patches = collector.take()
        for patch in patches:
            paste(canvas, patch)
        painted_rows.append(sum(patch.h for patch in patches))
        fb = client.windows.windows[5].framebuffer
        assert fb is not None
        assert bytes(canvas) == fb.pixels(0, 0, WIDTH, HEIGHT)[2], f"picture {index}"
    assert painted_rows[0] == h  # the key picture: the video area whole
    # A moving 8-row block in 128 rows: 16-row bands of it change, never the whole area.
    assert max(painted_rows[5:30]) < h, str(painted_rows)
    assert painted_rows[-1] == 0, "a still picture repainted rows"
