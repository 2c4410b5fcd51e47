# The Python client's copy of a seamless session's windows: the records the
# windows channel describes, and one framebuffer per window that the display
# channel's WINDOW_TARGET + REGIONs fill.
#
# Why here and not in session.py: the window table has rules of its own
# (MAX_WINDOWS, ids that must exist, a stacking order naming each window
# once) and a composition step (screenshot), and both are tested with plain
# messages, no connection. A window's pixels are kept whole even where other
# windows cover it; composing paints them bottom to top, so the composed
# screen equals what the session's X server would show.
"""WindowTable: windows, stacking, focus and per-window framebuffers."""

from __future__ import annotations

import io
from dataclasses import field

from PIL import Image

from client.framebuffer import Framebuffer, store_glyphs
from media.glyphs import GlyphCache
from protocol.base import Encoding
from protocol.frozen import plain_dataclass
from protocol.messages import Message, Region
from protocol.windows import (
    MAX_WINDOWS,
    WindowCloseUnanswered,
    WindowDestroy,
    WindowFocus,
    WindowGeometry,
    WindowIcon,
    WindowMetadata,
    WindowNew,
    WindowRestack,
    WindowTarget,
)


class WindowLimitError(ValueError):
    """The server announced more than MAX_WINDOWS windows."""


@plain_dataclass
class ClientWindow:
    """One window as the client knows it."""

    info: WindowNew | WindowMetadata
    x: int
    y: int
    width: int
    height: int
    framebuffer: Framebuffer | None = None
    icon_png: bytes = b""
    close_unanswered: bool = False

    @property
    def id(self) -> int:
        """The window id."""
        return self.info.id

    @property
    def minimized(self) -> bool:
        """True while the window is minimized (not drawn)."""
        return self.info.state == "minimized"


@plain_dataclass
class WindowTable:
    """Every window of the session, bottom to top, and their pixels."""

    windows: dict[int, ClientWindow] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    focus: int = 0
    # The display channel's glyph cache (GLYPHS regions), shared by every window's framebuffer.
    glyph_cache: GlyphCache = field(default_factory=GlyphCache)
    # True once the server spoke on the windows channel (seamless mode).
    seamless: bool = False
    _target: int = 0

    def message(self, message: Message | None) -> None:
        """One windows-channel message (None: the channel closed)."""
        if message is None:
            return
        self.seamless = True
        if isinstance(message, WindowNew):
            if message.id not in self.windows and len(self.windows) >= MAX_WINDOWS:
                raise WindowLimitError(f"more than {MAX_WINDOWS} windows")
            old = self.windows.get(message.id)
            self.windows[message.id] = ClientWindow(message, message.x, message.y, message.width, message.height,
                                                    old.framebuffer if old else None)  # fmt: skip
            if message.id not in self.order:
                self.order.append(message.id)
        elif isinstance(message, WindowMetadata):
            win = self.windows.get(message.id)
            if win is not None:
                win.info = message
                win.x, win.y, win.width, win.height = message.x, message.y, message.width, message.height
                win.close_unanswered = False
        elif isinstance(message, WindowGeometry):
            win = self.windows.get(message.window)
            if win is not None:
                win.x, win.y, win.width, win.height = message.x, message.y, message.width, message.height
        elif isinstance(message, WindowRestack):
            self.order = [w for w in message.order if w in self.windows]
            self.order += [w for w in self.windows if w not in self.order]
        elif isinstance(message, WindowDestroy):
            self.windows.pop(message.window, None)
            if message.window in self.order:
                self.order.remove(message.window)
        elif isinstance(message, WindowIcon):
            win = self.windows.get(message.window)
            if win is not None:
                win.icon_png = message.png
        elif isinstance(message, WindowFocus):
            self.focus = message.window
        elif isinstance(message, WindowCloseUnanswered):
            win = self.windows.get(message.window)
            if win is not None:
                win.close_unanswered = True

    # -- pixels --------------------------------------------------------------------
    def target(self, message: WindowTarget) -> None:
        """The following REGIONs are pixels of message.window (0: the desktop)."""
        self._target = message.window
        if message.window == 0:
            return
        win = self.windows.get(message.window)
        if win is None:
            return  # destroyed meanwhile (or not announced yet): its regions are dropped
        if win.framebuffer is None:
            win.framebuffer = Framebuffer(message.width, message.height, self.glyph_cache)
        elif (win.framebuffer.width, win.framebuffer.height) != (message.width, message.height):
            win.framebuffer.resize(message.width, message.height)

    def region(self, region: Region) -> bool:
        """Apply a region to the targeted window; False if it is the desktop's."""
        if self._target == 0:
            return False
        win = self.windows.get(self._target)
        if win is not None and win.framebuffer is not None:
            win.framebuffer.apply(region)  # RegionError if it does not fit the announced buffer
        elif region.encoding == Encoding.GLYPHS:  # pixels dropped, but later regions may use its glyphs
            store_glyphs(bytes(region.data), region.w, region.h, self.glyph_cache)
        return True

    def frame_end(self) -> None:
        """A frame ended. The target lasts across frames (the server sends
        WINDOW_TARGET only when the window or its size changes)."""

    # -- views -----------------------------------------------------------------------
    def stacked(self) -> list[ClientWindow]:
        """The windows bottom to top."""
        return [self.windows[w] for w in self.order if w in self.windows]

    def compose(self, width: int, height: int) -> Image.Image:
        """The screen: every shown window's pixels painted bottom to top on black."""
        screen = Image.new("RGB", (width, height))
        for win in self.stacked():
            if win.minimized or win.framebuffer is None:
                continue
            screen.paste(win.framebuffer.image(), (win.x, win.y))
        return screen

    def icon(self, window: int) -> Image.Image | None:
        """The window's icon, decoded (None if it has none)."""
        win = self.windows.get(window)
        if win is None or not win.icon_png:
            return None
        return Image.open(io.BytesIO(win.icon_png), formats=["PNG"])

    def listing(self) -> list[dict[str, object]]:
        """The windows bottom to top as plain data (svclient windows --json)."""
        return [
            {"id": w.id, "app": w.info.app_id, "title": w.info.title, "kind": w.info.kind, "managed": w.info.managed,
             "transient_for": w.info.transient_for, "x": w.x, "y": w.y, "width": w.width, "height": w.height,
             "state": w.info.state, "focused": w.id == self.focus, "wm_class": list(w.info.wm_class),
             "modal": w.info.modal, "decorated": w.info.decorated}
            for w in self.stacked()
        ]  # fmt: skip
