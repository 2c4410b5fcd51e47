# The window model's events as windows-channel messages, and the client's
# window requests as calls on the window manager.
#
# Why apart from the WM and the agent loop: this is the one place that knows
# both the X-free model (window_model.py) and the wire (protocol/windows.py),
# so each can change without the other, and it is pure (no X, no loop), so
# the mapping is unit-tested with plain values. Icons are PNG-encoded here
# (the model keeps ARGB); an icon whose PNG would exceed the wire bound is
# halved until it fits, so a peer never sees an oversized WINDOW_ICON.
"""WindowEvent -> protocol message, protocol request -> WindowRequests."""

from __future__ import annotations

import io
from collections.abc import Iterable

from PIL import Image

from protocol.messages import Message
from protocol.windows import (
    MAX_ICON_PNG_BYTES,
    MAX_ICON_SIDE,
    WindowClose,
    WindowCloseUnanswered,
    WindowDestroy,
    WindowFocus,
    WindowForceClose,
    WindowGeometry,
    WindowIcon,
    WindowMaximize,
    WindowMetadata,
    WindowMinimize,
    WindowMoveResize,
    WindowNew,
    WindowRaise,
    WindowRestack,
    WindowRestore,
)
from sessiond.agent.window_model import (
    CloseUnanswered,
    FocusChanged,
    Icon,
    Rect,
    UnknownWindowError,
    WindowDestroyed,
    WindowEvent,
    WindowGeometryChanged,
    WindowIconChanged,
    WindowInfo,
    WindowMetadataChanged,
    WindowRequests,
    WindowRestacked,
)
from sessiond.agent.window_model import WindowNew as ModelWindowNew

_I16 = (-0x8000, 0x7FFF)
_U16 = 0xFFFF


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def info_fields(info: WindowInfo) -> dict[str, object]:
    """The WINDOW_NEW / WINDOW_METADATA fields of a window record."""
    g, h = info.geometry, info.size_hints
    min_aspect = h.min_aspect or (0, 0)
    max_aspect = h.max_aspect or (0, 0)
    return {
        "id": info.id, "x": _clamp(g.x, *_I16), "y": _clamp(g.y, *_I16),
        "width": _clamp(g.width, 1, _U16), "height": _clamp(g.height, 1, _U16),
        "kind": info.kind.value, "managed": info.managed, "transient_for": info.transient_for,
        "title": info.title, "app_id": info.app_id, "wm_class": tuple(info.wm_class), "modal": info.modal,
        "decorated": info.decorated, "state": info.state.value, "polite_close": info.polite_close,
        "min_width": _clamp(h.min_width, 0, _U16), "min_height": _clamp(h.min_height, 0, _U16),
        "max_width": _clamp(h.max_width, 0, _U16), "max_height": _clamp(h.max_height, 0, _U16),
        "base_width": _clamp(h.base_width, 0, _U16), "base_height": _clamp(h.base_height, 0, _U16),
        "width_inc": _clamp(h.width_inc, 0, _U16), "height_inc": _clamp(h.height_inc, 0, _U16),
        "min_aspect_x": _clamp(min_aspect[0], 0, _U16), "min_aspect_y": _clamp(min_aspect[1], 0, _U16),
        "max_aspect_x": _clamp(max_aspect[0], 0, _U16), "max_aspect_y": _clamp(max_aspect[1], 0, _U16),
    }  # fmt: skip


def icon_png(icon: Icon) -> tuple[int, int, bytes]:
    """(width, height, PNG) of an ARGB icon, halved until the PNG fits MAX_ICON_PNG_BYTES."""
    # ARGB little-endian u32 per pixel is B, G, R, A in memory.
    image = Image.frombuffer("RGBA", (icon.width, icon.height), icon.argb, "raw", "BGRA", 0, 1)
    image.thumbnail((MAX_ICON_SIDE, MAX_ICON_SIDE))
    while True:
        out = io.BytesIO()
        image.save(out, "PNG", optimize=False)
        data = out.getvalue()
        if len(data) <= MAX_ICON_PNG_BYTES or max(image.size) <= 1:
            return image.width, image.height, data
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)))


def to_messages(event: WindowEvent) -> list[Message]:
    """The windows-channel messages one model event becomes (usually one)."""
    if isinstance(event, ModelWindowNew):
        return [WindowNew(**info_fields(event.window))]  # type: ignore[arg-type]
    if isinstance(event, WindowMetadataChanged):
        return [WindowMetadata(**info_fields(event.window))]  # type: ignore[arg-type]
    if isinstance(event, WindowGeometryChanged):
        g = event.geometry
        return [WindowGeometry(event.id, _clamp(g.x, *_I16), _clamp(g.y, *_I16),
                               _clamp(g.width, 1, _U16), _clamp(g.height, 1, _U16))]  # fmt: skip
    if isinstance(event, WindowRestacked):
        return [WindowRestack(event.order)]
    if isinstance(event, WindowDestroyed):
        return [WindowDestroy(event.id)]
    if isinstance(event, WindowIconChanged):
        if event.icon is None:
            return [WindowIcon(event.id, 0, 0, b"")]
        width, height, png = icon_png(event.icon)
        if len(png) > MAX_ICON_PNG_BYTES:
            return []
        return [WindowIcon(event.id, width, height, png)]
    if isinstance(event, FocusChanged):
        return [WindowFocus(event.id)]
    if isinstance(event, CloseUnanswered):
        return [WindowCloseUnanswered(event.id)]
    return []


def replay_messages(events: Iterable[WindowEvent]) -> list[Message]:
    """The messages of a replay (model.replay()): a (re)connecting client's whole state."""
    return [m for event in events for m in to_messages(event)]


def apply_request(wm: WindowRequests, message: Message) -> bool:
    """Carry out one client request on `wm`; False if it named a window that
    is gone (ignored: it may have closed while the request was in flight) or
    was not a request."""
    try:
        if isinstance(message, WindowMoveResize):
            wm.move_resize(message.window, Rect(message.x, message.y, message.width, message.height))
        elif isinstance(message, WindowRaise):
            wm.raise_focus(message.window)
        elif isinstance(message, WindowMinimize):
            wm.minimize(message.window)
        elif isinstance(message, WindowMaximize):
            wm.maximize(message.window)
        elif isinstance(message, WindowRestore):
            wm.restore(message.window)
        elif isinstance(message, WindowClose):
            wm.close(message.window)
        elif isinstance(message, WindowForceClose):
            wm.force_close(message.window)
        else:
            return False
    except UnknownWindowError:
        return False
    return True
