"""The Python client's GLYPHS path (docs/protocol.md 7c): regions drawn into
the framebuffer, one glyph cache per display channel shared by the desktop
and every seamless window, definitions kept from regions whose pixels are
dropped, the cache emptied when the channel opens, VIDEO_CAPS bit 2, and a
malformed region closing the connection with MALFORMED_MESSAGE."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.testing import StringTransport

from client.framebuffer import Framebuffer, RegionError
from client.known_hosts import KnownHosts
from client.session import SessionClient
from client.windows import WindowTable
from media import glyphs
from protocol.connection import MessageReceived
from protocol.errors import ReasonCode
from protocol.media import CAPS_GLYPHS
from protocol.messages import ChannelKind, DesktopSize, Encoding, Region
from protocol.windows import WindowNew, WindowTarget

DISPLAY = int(ChannelKind.DISPLAY)
RED_WHITE = bytes((255, 0, 0, 255, 255, 255))
DIAGONAL = glyphs.pack_cell(bytes((1, 0, 0, 1)), 2, 2)  # top-left and bottom-right set


def region(x: int, y: int, w: int, h: int, defs: list[tuple[int, bytes]], used: list[int], cells: bytes) -> Region:
    return Region(x, y, w, h, Encoding.GLYPHS, glyphs.encode(2, 2, RED_WHITE, defs, used, cells))


def test_a_glyphs_region_draws_its_cells() -> None:
    fb = Framebuffer(8, 4)
    fb.apply(region(2, 2, 4, 2, [(9, DIAGONAL)], [9], b"\x00\x00"))
    assert [fb.pixel(x, y) for x, y in ((2, 2), (3, 2), (2, 3), (3, 3), (4, 2), (5, 3))] == [
        (255, 255, 255), (255, 0, 0), (255, 0, 0), (255, 255, 255), (255, 255, 255), (255, 255, 255)]
    assert fb.pixel(0, 0) == (0, 0, 0)  # outside the region: untouched


def test_the_cache_is_shared_by_the_desktop_and_the_windows_and_survives_dropped_pixels() -> None:
    table = WindowTable()
    desktop = Framebuffer(4, 4, table.glyph_cache)
    table.target(WindowTarget(5, 4, 2))  # a window the client does not know (yet): its pixels are dropped
    assert table.region(region(0, 0, 4, 2, [(1, DIAGONAL)], [1], b"\x00\x00"))
    desktop.apply(region(0, 0, 2, 2, [], [1], b"\x00"))  # ... but its glyph is in the cache
    assert desktop.pixel(0, 0) == (255, 255, 255)
    with pytest.raises(RegionError):  # a dropped region is still checked
        table.region(region(0, 0, 4, 2, [], [2], b"\x00\x00"))


def test_a_malformed_glyphs_region_is_a_region_error_and_leaves_the_cache() -> None:
    fb = Framebuffer(8, 8)
    bad = Region(0, 0, 4, 2, Encoding.GLYPHS, glyphs.encode(2, 2, RED_WHITE, [(0, DIAGONAL)], [0], b"\x00\x01"))
    with pytest.raises(RegionError, match="index 1"):
        fb.apply(bad)
    assert fb.glyph_cache.slots == {}


def connected_client(tmp_path: Any) -> SessionClient:
    client = SessionClient("server:4443", KnownHosts(str(tmp_path / "known_hosts")))
    client.makeConnection(StringTransport())
    return client


def test_the_client_announces_glyphs_and_a_new_display_channel_empties_its_cache(tmp_path: Any) -> None:
    client = connected_client(tmp_path)
    assert client.video_codecs & CAPS_GLYPHS
    client.windows.glyph_cache.slots[3] = (2, 2, bytes(4))
    client.display_opened()
    assert client.windows.glyph_cache.slots == {}


def test_a_region_naming_an_empty_slot_closes_the_connection(tmp_path: Any) -> None:
    client = connected_client(tmp_path)
    client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, DesktopSize(64, 64)))
    waiting = client.next_frame()
    failures: list[Any] = []
    waiting.addErrback(failures.append)
    client.event_received(MessageReceived(DISPLAY, ChannelKind.DISPLAY, region(0, 0, 2, 2, [], [7], b"\x00")))
    assert client.conn.closed
    assert failures and failures[0].value.code == ReasonCode.MALFORMED_MESSAGE
    assert "slot 7" in failures[0].value.message


def test_window_framebuffers_use_the_tables_cache() -> None:
    table = WindowTable()
    fields: dict[str, Any] = dict(
        id=7, x=0, y=0, width=4, height=2, kind="normal", managed=True, transient_for=0, title="t",
        app_id="xterm", wm_class=("xterm", "XTerm"), modal=False, decorated=True, state="normal",
        polite_close=True, min_width=1, min_height=1, max_width=0, max_height=0, base_width=0,
        base_height=0, width_inc=1, height_inc=1)  # fmt: skip
    table.message(WindowNew(**fields))
    table.target(WindowTarget(7, 4, 2))
    table.region(region(0, 0, 4, 2, [(4, DIAGONAL)], [4], b"\x00\x00"))
    window = table.windows[7].framebuffer
    assert window is not None and window.glyph_cache is table.glyph_cache and 4 in table.glyph_cache.slots


def test_store_glyphs_keeps_a_regions_definitions_or_refuses_it_whole() -> None:
    from client.framebuffer import store_glyphs

    cache = glyphs.GlyphCache()
    data = glyphs.encode(2, 2, RED_WHITE, [(4, DIAGONAL)], [4], b"\x00\x00")
    cell_w, cell_h, colours, used, indices = store_glyphs(data, 4, 2, cache)
    assert (cell_w, cell_h, colours, indices) == (2, 2, RED_WHITE, b"\x00\x00")
    assert used == [cache.slots[4][2]] and cache.slots[4][:2] == (2, 2)
    bad = glyphs.encode(2, 2, RED_WHITE, [(5, DIAGONAL)], [5, 9], b"\x00\x01")  # slot 9 holds nothing
    with pytest.raises(RegionError, match="slot 9"):
        store_glyphs(bad, 4, 2, cache)
    assert set(cache.slots) == {4}  # slot 5 of the refused region was not stored
