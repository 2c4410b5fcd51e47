# The narrow interface between the window manager's logic and an X connection.
#
# Why: the window manager (wm.py) is a state machine over ICCCM/EWMH
# semantics; whether its requests reach a real X server (x_wm.py, python-xlib)
# or a recorder fake in a unit test must not matter to it.  So the X side is
# reduced to the handful of operations a WM needs, in plain ints and atom
# *names*, and X events arrive translated into the frozen dataclasses below.
# Property reads take a size limit that the adapter passes to the server
# (GetProperty's long-length), so an app's oversized property is never read
# into memory, let alone decoded.
"""WmBackend protocol (what wm.py asks of X) and the X events it consumes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from protocol.frozen import frozen_dataclass
from sessiond.agent.window_model import Rect


class WmSelectionError(RuntimeError):
    """Another window manager runs on this display (holds WM_S0 or the root's
    SubstructureRedirect); the message names it where it can."""


@frozen_dataclass
class TopLevel:
    """A child of the root as the X server sees it."""

    id: int
    geometry: Rect
    border_width: int
    override_redirect: bool
    mapped: bool


# -- X events, translated --------------------------------------------------------
@frozen_dataclass
class MapRequest:
    """A client asked to map a top-level window (SubstructureRedirect)."""

    window: int


@frozen_dataclass
class ConfigureRequest:
    """A client asked to move/resize/restack a top-level window; None for
    fields it did not ask to change."""

    window: int
    x: int | None = None
    y: int | None = None
    width: int | None = None
    height: int | None = None
    border_width: int | None = None
    # "above" / "below" / None (other stack modes are treated as "above").
    stack_mode: str | None = None


@frozen_dataclass
class MapNotify:
    """A root child was mapped (managed windows: by us; override-redirect: by the app)."""

    window: int
    override_redirect: bool


@frozen_dataclass
class UnmapNotify:
    """A root child was unmapped (synthetic: an ICCCM withdraw message)."""

    window: int
    synthetic: bool = False


@frozen_dataclass
class DestroyNotify:
    """A root child was destroyed."""

    window: int


@frozen_dataclass
class ConfigureNotify:
    """A root child's geometry changed (we track override-redirect ones from this)."""

    window: int
    geometry: Rect
    border_width: int
    override_redirect: bool


@frozen_dataclass
class PropertyNotify:
    """A property of a watched window changed (atom name)."""

    window: int
    name: str


@frozen_dataclass
class ClientMessage:
    """A ClientMessage sent to the root or a client window (format 32 data)."""

    window: int
    message_type: str
    data: tuple[int, ...]


WmXEvent = (MapRequest | ConfigureRequest | MapNotify | UnmapNotify | DestroyNotify | ConfigureNotify
            | PropertyNotify | ClientMessage)  # fmt: skip


class WmBackend(Protocol):
    """What the window manager needs from an X server.

    Requests about a window that vanished meanwhile are silently dropped by
    the adapter (X is asynchronous: any window can be destroyed at any time).
    """

    def acquire_wm_selection(self) -> None:
        """Own WM_S0 and SubstructureRedirect on the root; WmSelectionError if taken."""

    def top_levels(self) -> list[TopLevel]:
        """The root's children, bottom to top."""

    def top_level(self, window: int) -> TopLevel | None:
        """One root child's state, None if it no longer exists."""

    def get_text(self, window: int, name: str, max_bytes: int) -> bytes | None:
        """Up to max_bytes of an 8-bit property (any type), None if unset."""

    def get_cardinals(self, window: int, name: str, max_items: int) -> list[int] | None:
        """Up to max_items of a 32-bit property (CARDINAL, WINDOW, WM_SIZE_HINTS...)."""

    def get_atoms(self, window: int, name: str, max_items: int) -> list[str]:
        """Up to max_items atom names of an ATOM property (empty if unset)."""

    def atom_name(self, atom: int) -> str:
        """The name of an atom id received in a ClientMessage ("" if unknown)."""

    def watch(self, window: int) -> None:
        """Ask for PropertyNotify on a client window."""

    def configure(self, window: int, geometry: Rect, border_width: int | None = None) -> None:
        """Move/resize a window (and set its border width)."""

    def send_configure_notify(self, window: int, geometry: Rect) -> None:
        """Tell a client its (unchanged) geometry with a synthetic ConfigureNotify."""

    def restack(self, bottom_to_top: Sequence[int]) -> None:
        """Stack the given root children in this order, bottom to top."""

    def map(self, window: int) -> None:
        """Map a window."""

    def unmap(self, window: int) -> None:
        """Unmap a window."""

    def set_property(self, window: int, name: str, type_name: str, values: Sequence[int | str]) -> None:
        """Replace a 32-bit property; str values are atom names (type ATOM)."""

    def set_root_property(self, name: str, type_name: str, values: Sequence[int | str]) -> None:
        """Replace a 32-bit property on the root window (and the WM check window
        for _NET_SUPPORTING_WM_CHECK)."""

    def set_focus(self, window: int) -> None:
        """Give the keyboard focus to a window (0: to nobody, PointerRoot)."""

    def send_protocol(self, window: int, protocol: str) -> None:
        """Send a WM_PROTOCOLS ClientMessage (WM_DELETE_WINDOW, WM_TAKE_FOCUS)."""

    def kill_client(self, window: int) -> None:
        """XKillClient: close the connection of the app that created the window."""

    def flush(self) -> None:
        """Send queued requests to the server."""
