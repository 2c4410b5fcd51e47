# Seamless windows on the wire: the windows channel (kind 7), the display
# message that points REGIONs at a window, and input in window coordinates.
#
# Why a channel of its own: window events are small, ordered and must never
# wait behind a megabyte of pixels, so the windows kind sits between input and
# display in KIND_PRIORITY. Metadata (title, class, hints) is JSON because it
# is rare and has text; everything per-move/per-click is a fixed struct.
# Pixels stay on the display channel (REGION unchanged): WINDOW_TARGET names
# the window the following REGIONs of a frame belong to, so every encoder,
# the frame pacing and FRAME_ACK work per window as they did for the desktop.
# Input carries its window and window-relative coordinates: a click lands in
# the window the user clicked even while a move is in flight, and the agent
# knows which window to raise without a hit test. Every bound is here.
"""Windows channel messages, WINDOW_TARGET (display) and window input."""

from __future__ import annotations

import struct
from typing import ClassVar, Final, Self

from protocol.base import I16_MAX, I16_MIN, U16_MAX, U32_MAX, ChannelKind, Message, Sender
from protocol.control import JsonMessage
from protocol.schema import (
    BOOL,
    BYTES,
    CUSTOM,
    FLAG,
    I16,
    JSON,
    JSON_INT,
    JSON_SINT,
    NESTED,
    STR,
    STRS,
    U8,
    U16,
    U32,
    Declared,
    message,
    shared,
    wire,
)

WINDOWS: Final = ChannelKind.WINDOWS
DISPLAY: Final = ChannelKind.DISPLAY
INPUT: Final = ChannelKind.INPUT

# Windows per session (managed and override-redirect together): a client keeps
# at most this many window records and framebuffers; a WINDOW_NEW past it, or
# a WINDOW_RESTACK naming more, costs the windows channel (LIMIT_EXCEEDED).
MAX_WINDOWS: Final = 256
# UTF-8 bytes of a title (the agent cuts longer ones; a peer sending more is malformed).
MAX_TITLE_BYTES: Final = 512
# UTF-8 bytes of each WM_CLASS string and of the app id.
MAX_CLASS_BYTES: Final = 128
# Largest icon side in pixels.
MAX_ICON_SIDE: Final = 128
# Largest WINDOW_ICON PNG: a 128x128 RGBA icon that compresses badly still fits.
MAX_ICON_PNG_BYTES: Final = 96 * 1024
# Window kinds and states as they travel (strings, like the agent's model).
WINDOW_KINDS: Final = frozenset(
    {"normal", "dialog", "utility", "toolbar", "splash", "menu", "tooltip", "notification", "override-redirect"}
)
WINDOW_STATES: Final = frozenset({"normal", "minimized", "maximized"})

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ID = U32.within(1, U32_MAX)  # a window id; 0 is never a window
_COORD = JSON_SINT.within(I16_MIN, I16_MAX)  # X positions are 16-bit signed
_SIDE = JSON_INT.within(1, U16_MAX)
_HINT = JSON_INT.within(0, U16_MAX)
_SIDE16 = U16.within(1, U16_MAX)


def _check_text(name: str, value: str, limit: int) -> None:
    if len(value.encode("utf-8")) > limit:
        raise ValueError(f"{name} longer than {limit} bytes")


class _JsonWindowMessage(JsonMessage):
    """A windows-channel message carried as canonical JSON (metadata: rare, textual)."""

    KIND: ClassVar[ChannelKind | None] = WINDOWS


@shared
class _WindowInfoFields(_JsonWindowMessage):
    """Everything a client is told about one window (WINDOW_NEW, WINDOW_METADATA).

    Hints of 0 mean "none" for max size and base size; aspect ratios are
    x/y (width:height) pairs, 0/0 for none. `polite_close`: CLOSE asks the app first
    (else it forces at once). `managed`: False for menus/tooltips the app
    places itself (the client draws no frame and never moves them).
    """

    id: int = wire(JSON_INT.within(1, U32_MAX))
    x: int = wire(_COORD)
    y: int = wire(_COORD)
    width: int = wire(_SIDE)
    height: int = wire(_SIDE)
    kind: str = wire(STR)
    managed: bool = wire(BOOL)
    transient_for: int = wire(JSON_INT.within(0, U32_MAX))
    title: str = wire(STR)
    app_id: str = wire(STR)
    wm_class: tuple[str, ...] = wire(STRS)
    modal: bool = wire(BOOL)
    decorated: bool = wire(BOOL)
    state: str = wire(STR)
    polite_close: bool = wire(BOOL)
    min_width: int = wire(_HINT)
    min_height: int = wire(_HINT)
    max_width: int = wire(_HINT)
    max_height: int = wire(_HINT)
    base_width: int = wire(_HINT)
    base_height: int = wire(_HINT)
    width_inc: int = wire(_HINT)
    height_inc: int = wire(_HINT)
    min_aspect_x: int = wire(_HINT, default=0)
    min_aspect_y: int = wire(_HINT, default=0)
    max_aspect_x: int = wire(_HINT, default=0)
    max_aspect_y: int = wire(_HINT, default=0)

    def check(self) -> None:
        """Known kind and state, bounded texts, WM_CLASS as (instance, class)."""
        if self.kind not in WINDOW_KINDS:
            raise ValueError(f"unknown window kind {self.kind!r}")
        if self.state not in WINDOW_STATES:
            raise ValueError(f"unknown window state {self.state!r}")
        _check_text("title", self.title, MAX_TITLE_BYTES)
        _check_text("app_id", self.app_id, MAX_CLASS_BYTES)
        if len(self.wm_class) != 2:  # noqa: PLR2004 - instance and class
            raise ValueError("wm_class must be [instance, class]")
        for part in self.wm_class:
            _check_text("wm_class", part, MAX_CLASS_BYTES)


@message(0x01, "WINDOW_NEW", sender=Sender.SERVER, codec=JSON)
class WindowNew(_WindowInfoFields):
    """A window appeared, with its geometry in screen pixels and its metadata (server -> client)."""


@message(0x02, "WINDOW_METADATA", sender=Sender.SERVER, codec=JSON)
class WindowMetadata(_WindowInfoFields):
    """A known window's metadata changed; every field is sent again (server -> client)."""


@message(0x03, "WINDOW_GEOMETRY", kind=WINDOWS, sender=Sender.SERVER)
class WindowGeometry(Declared):
    """A window moved or was resized, in screen pixels (server -> client)."""

    window: int = wire(_ID)
    x: int = wire(I16)
    y: int = wire(I16)
    width: int = wire(_SIDE16)
    height: int = wire(_SIDE16)


def _window_ids(value: object) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError("order must be a sequence of window ids")  # noqa: TRY004
    if len(value) > MAX_WINDOWS:
        raise ValueError(f"more than {MAX_WINDOWS} windows in a stacking order")
    ids = tuple(value)
    for wid in ids:
        if isinstance(wid, bool) or not isinstance(wid, int) or not 0 < wid <= U32_MAX:
            raise ValueError(f"window id {wid!r} is not a u32 other than 0")
    if len(set(ids)) != len(ids):
        raise ValueError("a stacking order names a window twice")
    return ids


_U32S = struct.Struct(">I")


@message(0x04, "WINDOW_RESTACK", kind=WINDOWS, sender=Sender.SERVER, codec=CUSTOM, max_payload=4 * MAX_WINDOWS)
class WindowRestack(Declared):
    """The stacking order, bottom to top, naming every window once: u32 ids,
    at most MAX_WINDOWS (server -> client)."""

    order: tuple[int, ...] = wire(NESTED(_window_ids, "u32s"))

    def encode(self) -> bytes:
        """The ids as consecutive big-endian u32."""
        return b"".join(_U32S.pack(wid) for wid in self.order)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Length checked (a multiple of 4, at most MAX_WINDOWS ids) before unpacking."""
        if len(payload) % 4 or len(payload) > 4 * MAX_WINDOWS:
            raise ValueError(f"WINDOW_RESTACK payload of {len(payload)} bytes")
        return cls(tuple(v for (v,) in _U32S.iter_unpack(payload)))


@message(0x05, "WINDOW_DESTROY", kind=WINDOWS, sender=Sender.SERVER)
class WindowDestroy(Declared):
    """A window went away (server -> client)."""

    window: int = wire(_ID)


@message(0x06, "WINDOW_ICON", kind=WINDOWS, sender=Sender.SERVER)
class WindowIcon(Declared):
    """A window's icon as a PNG of width x height (at most MAX_ICON_SIDE); an
    empty png with 0 x 0: the window has no icon any more (server -> client)."""

    window: int = wire(_ID)
    width: int = wire(U16.within(0, MAX_ICON_SIDE))
    height: int = wire(U16.within(0, MAX_ICON_SIDE))
    png: bytes = wire(BYTES(MAX_ICON_PNG_BYTES))

    def check(self) -> None:
        """0 x 0 with no data, or a PNG signature with a size of at least 1 x 1."""
        if not self.png:
            if self.width or self.height:
                raise ValueError("an empty icon must be 0 x 0")
            return
        if not self.width or not self.height:
            raise ValueError("an icon must be at least 1 x 1")
        if not self.png.startswith(_PNG_SIGNATURE):
            raise ValueError("icon data is not a PNG")


@message(0x07, "WINDOW_FOCUS", kind=WINDOWS, sender=Sender.SERVER)
class WindowFocus(Declared):
    """The keyboard focus moved to `window` (0: no window) (server -> client)."""

    window: int = wire(U32)


@message(0x08, "WINDOW_CLOSE_UNANSWERED", kind=WINDOWS, sender=Sender.SERVER)
class WindowCloseUnanswered(Declared):
    """A polite close got no answer in the grace period: offer "force close" (server -> client)."""

    window: int = wire(_ID)


@message(0x10, "WINDOW_MOVE_RESIZE", kind=WINDOWS, sender=Sender.CLIENT)
class WindowMoveResize(Declared):
    """Move and/or resize a window to this screen rectangle; the server
    constrains the size by the hints and answers with WINDOW_GEOMETRY (client -> server)."""

    window: int = wire(_ID)
    x: int = wire(I16)
    y: int = wire(I16)
    width: int = wire(_SIDE16)
    height: int = wire(_SIDE16)


@message(0x11, "WINDOW_RAISE", kind=WINDOWS, sender=Sender.CLIENT)
class WindowRaise(Declared):
    """Raise a window with its dialogs and give it the keyboard; restores a minimized one (client -> server)."""

    window: int = wire(_ID)


@message(0x12, "WINDOW_MINIMIZE", kind=WINDOWS, sender=Sender.CLIENT)
class WindowMinimize(Declared):
    """Minimize a window with its dialogs (client -> server)."""

    window: int = wire(_ID)


@message(0x13, "WINDOW_MAXIMIZE", kind=WINDOWS, sender=Sender.CLIENT)
class WindowMaximize(Declared):
    """Make a window as large as the screen and its hints allow (client -> server)."""

    window: int = wire(_ID)


@message(0x14, "WINDOW_RESTORE", kind=WINDOWS, sender=Sender.CLIENT)
class WindowRestore(Declared):
    """Undo minimize or maximize, then raise and focus (client -> server)."""

    window: int = wire(_ID)


@message(0x15, "WINDOW_CLOSE", kind=WINDOWS, sender=Sender.CLIENT)
class WindowClose(Declared):
    """Ask the app to close the window (WM_DELETE_WINDOW); WINDOW_CLOSE_UNANSWERED
    if it does not, or forced at once if the app has no polite close (client -> server)."""

    window: int = wire(_ID)


@message(0x16, "WINDOW_FORCE_CLOSE", kind=WINDOWS, sender=Sender.CLIENT)
class WindowForceClose(Declared):
    """Disconnect the app's hold on the window without asking (client -> server)."""

    window: int = wire(_ID)


@message(0x07, "WINDOW_TARGET", kind=DISPLAY, sender=Sender.SERVER)
class WindowTarget(Declared):
    """The REGIONs that follow, up to the next WINDOW_TARGET or FRAME_END, are
    pixels of `window`, positioned relative to its top-left corner, whose
    pixel buffer is width x height (server -> client). Window 0 is the desktop
    (the screen); a frame without WINDOW_TARGET is the desktop."""

    window: int = wire(U32)
    width: int = wire(_SIDE16)
    height: int = wire(_SIDE16)


@message(0x08, "WINDOW_POINTER", kind=INPUT, sender=Sender.CLIENT)
class WindowPointer(Declared):
    """The pointer moved to (x, y) relative to `window`'s top-left corner (client -> server)."""

    window: int = wire(_ID)
    x: int = wire(I16)
    y: int = wire(I16)


@message(0x09, "WINDOW_BUTTON", kind=INPUT, sender=Sender.CLIENT)
class WindowButton(Declared):
    """Mouse button 1..255 went down or up at (x, y) of `window`; a press
    raises and focuses the window first (client -> server)."""

    window: int = wire(_ID)
    x: int = wire(I16)
    y: int = wire(I16)
    button: int = wire(U8.within(1, U8.high))
    down: bool = wire(FLAG)


@message(0x0A, "WINDOW_WHEEL", kind=INPUT, sender=Sender.CLIENT)
class WindowWheel(Declared):
    """Scroll by (dx, dy) steps at (x, y) of `window`; +dy scrolls down (client -> server)."""

    window: int = wire(_ID)
    x: int = wire(I16)
    y: int = wire(I16)
    dx: int = wire(I16)
    dy: int = wire(I16)


WINDOWS_MESSAGES: Final[tuple[type[Message], ...]] = (
    WindowNew,
    WindowMetadata,
    WindowGeometry,
    WindowRestack,
    WindowDestroy,
    WindowIcon,
    WindowFocus,
    WindowCloseUnanswered,
    WindowMoveResize,
    WindowRaise,
    WindowMinimize,
    WindowMaximize,
    WindowRestore,
    WindowClose,
    WindowForceClose,
)
# Requests a client sends on the windows channel, by message class.
WINDOW_REQUESTS: Final[tuple[type[Message], ...]] = WINDOWS_MESSAGES[8:]
DISPLAY_WINDOW_MESSAGES: Final[tuple[type[Message], ...]] = (WindowTarget,)
INPUT_WINDOW_MESSAGES: Final[tuple[type[Message], ...]] = (WindowPointer, WindowButton, WindowWheel)
