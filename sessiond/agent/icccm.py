# Decoding ICCCM/EWMH window properties into window-model fields, within bounds.
#
# Why: every property a client sets on its window is untrusted input from an
# app in the session: a title of megabytes, a _NET_WM_ICON claiming a
# 65535x65535 entry, size hints of 0 or 2**31.  The WM adapter reads each
# property with a length limit (so the X connection never hands us more than
# these bounds), and the pure functions here turn what was read into model
# values, refusing or cutting anything out of range.  read_fields lists which
# properties make up a window's metadata and reads each with its limit.  No
# Xlib import: unit tests feed raw values directly, or through a fake backend.
"""Bounded reading and pure decoding of WM_NAME, WM_CLASS, WM_NORMAL_HINTS, _NET_WM_ICON, types, states."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any, Final

from sessiond.agent.window_model import (
    MAX_CLASS_BYTES,
    MAX_ICON_SIDE,
    MAX_TITLE_BYTES,
    Icon,
    SizeHints,
    WindowKind,
    WindowModel,
    truncate_utf8,
)
from sessiond.agent.wm_backend import WmBackend

# Bytes read of a title property: enough for MAX_TITLE_BYTES plus one partial
# character; the rest of a longer title never leaves the X server.
TITLE_READ_BYTES: Final = MAX_TITLE_BYTES + 4
# Bytes read of WM_CLASS (two NUL-terminated strings).
CLASS_READ_BYTES: Final = 2 * MAX_CLASS_BYTES + 2
# 32-bit items read of _NET_WM_ICON: the largest allowed icon plus its header,
# plus room for a few smaller sizes in front of it.  An app listing a larger
# icon first gets its smaller ones ignored too; it is told nothing.
ICON_READ_ITEMS: Final = 2 * (MAX_ICON_SIDE * MAX_ICON_SIDE + 2)
# WM_NORMAL_HINTS is 18 CARD32s (ICCCM 4.1.2.3).
NORMAL_HINTS_ITEMS: Final = 18
# Atoms read of _NET_WM_WINDOW_TYPE / _NET_WM_STATE / WM_PROTOCOLS.
MAX_ATOM_ITEMS: Final = 32
# _MOTIF_WM_HINTS: flags, functions, decorations, input mode, status.
MOTIF_HINTS_ITEMS: Final = 5
MOTIF_HINTS_DECORATIONS: Final = 2
# Largest size/increment value taken from hints; X sizes are 16-bit.
MAX_HINT_VALUE: Final = 32767

# WM_SIZE_HINTS flags.
P_MIN_SIZE: Final = 16
P_MAX_SIZE: Final = 32
P_RESIZE_INC: Final = 64
P_ASPECT: Final = 128
P_BASE_SIZE: Final = 256

# EWMH window types, in the order a list is searched (the first known one wins).
WINDOW_TYPES: Final = {
    "_NET_WM_WINDOW_TYPE_NORMAL": WindowKind.NORMAL,
    "_NET_WM_WINDOW_TYPE_DIALOG": WindowKind.DIALOG,
    "_NET_WM_WINDOW_TYPE_UTILITY": WindowKind.UTILITY,
    "_NET_WM_WINDOW_TYPE_TOOLBAR": WindowKind.TOOLBAR,
    "_NET_WM_WINDOW_TYPE_SPLASH": WindowKind.SPLASH,
    "_NET_WM_WINDOW_TYPE_MENU": WindowKind.MENU,
    "_NET_WM_WINDOW_TYPE_DROPDOWN_MENU": WindowKind.MENU,
    "_NET_WM_WINDOW_TYPE_POPUP_MENU": WindowKind.MENU,
    "_NET_WM_WINDOW_TYPE_COMBO": WindowKind.MENU,
    "_NET_WM_WINDOW_TYPE_TOOLTIP": WindowKind.TOOLTIP,
    "_NET_WM_WINDOW_TYPE_NOTIFICATION": WindowKind.NOTIFICATION,
}


def decode_title(net_wm_name: bytes | None, wm_name: bytes | None) -> str:
    """The window title: _NET_WM_NAME (UTF-8) if set, else WM_NAME (Latin-1
    for STRING; COMPOUND_TEXT is read the same way), cut to MAX_TITLE_BYTES."""
    if net_wm_name:
        text = net_wm_name.decode("utf-8", "replace")
    elif wm_name:
        text = wm_name.decode("latin-1")
    else:
        return ""
    return truncate_utf8(text.replace("\x00", " ").strip(), MAX_TITLE_BYTES)


def decode_wm_class(value: bytes | None) -> tuple[str, str]:
    """(instance, class) from WM_CLASS's two NUL-terminated strings."""
    if not value:
        return ("", "")
    parts = value.split(b"\x00")
    instance = parts[0].decode("latin-1")
    klass = parts[1].decode("latin-1") if len(parts) > 1 else ""
    return truncate_utf8(instance, MAX_CLASS_BYTES), truncate_utf8(klass, MAX_CLASS_BYTES)


def _hint(value: int) -> int:
    """A hint value as a non-negative int no larger than an X size."""
    if value >= 2**31:  # CARD32 holding a negative INT32
        return 0
    return min(value, MAX_HINT_VALUE)


def decode_size_hints(values: Sequence[int] | None) -> SizeHints:
    """SizeHints from WM_NORMAL_HINTS (short or missing properties give defaults)."""
    if not values or len(values) < NORMAL_HINTS_ITEMS:
        # Pre-ICCCM 15-item hints carry no base size; read what is there.
        values = list(values or []) + [0] * (NORMAL_HINTS_ITEMS - len(values or []))
    v = [_hint(x) for x in values[:NORMAL_HINTS_ITEMS]]
    flags = values[0]
    hints: dict[str, object] = {}
    if flags & P_MIN_SIZE:
        hints["min_width"], hints["min_height"] = max(1, v[5]), max(1, v[6])
    if flags & P_MAX_SIZE:
        hints["max_width"], hints["max_height"] = v[7], v[8]
    if flags & P_RESIZE_INC:
        hints["width_inc"], hints["height_inc"] = max(1, v[9]), max(1, v[10])
    if flags & P_ASPECT and v[12] > 0 and v[14] > 0:
        hints["min_aspect"], hints["max_aspect"] = (v[11], v[12]), (v[13], v[14])
    if flags & P_BASE_SIZE:
        hints["base_width"], hints["base_height"] = v[15], v[16]
    elif flags & P_MIN_SIZE:  # ICCCM: the minimum stands in for a missing base
        hints["base_width"], hints["base_height"] = v[5], v[6]
    return SizeHints(**hints)  # type: ignore[arg-type]


def choose_icon(values: Sequence[int] | None, wanted: int = MAX_ICON_SIDE) -> Icon | None:
    """The largest _NET_WM_ICON entry of at most MAX_ICON_SIDE per side
    (closest to `wanted`), or None.

    The property is a list of (width, height, width*height ARGB pixels);
    sizes are checked before anything is sliced or copied, and a truncated
    or malformed entry ends the walk.
    """
    if not values:
        return None
    best: tuple[int, int, int] | None = None  # (width, height, offset of pixels)
    pos, count = 0, len(values)
    while pos + 2 <= count:
        width, height = values[pos], values[pos + 1]
        if width <= 0 or height <= 0 or width > 0xFFFF or height > 0xFFFF:
            break
        pixels = width * height
        if pos + 2 + pixels > count:
            break  # truncated by the read limit, or lying about its size
        fits = width <= MAX_ICON_SIDE and height <= MAX_ICON_SIDE
        if fits and (best is None or abs(max(width, height) - wanted) < abs(max(best[0], best[1]) - wanted)):
            best = (width, height, pos + 2)
        pos += 2 + pixels
    if best is None:
        return None
    width, height, start = best
    argb = array("I", (x & 0xFFFFFFFF for x in values[start:start + width * height]))
    if argb.itemsize != 4:  # pragma: no cover - every Linux ABI has a 4-byte "I"
        raise RuntimeError("array('I') is not 32-bit here")
    return Icon(width, height, argb.tobytes())


def window_kind(types: Sequence[str], override_redirect: bool, transient_for: int) -> WindowKind:
    """The model kind from _NET_WM_WINDOW_TYPE; without one, a transient is a
    dialog (EWMH) and an override-redirect window stays OVERRIDE_REDIRECT."""
    for name in types:
        kind = WINDOW_TYPES.get(name)
        if kind is not None:
            if override_redirect and kind is WindowKind.NORMAL:
                return WindowKind.OVERRIDE_REDIRECT
            return kind
    if override_redirect:
        return WindowKind.OVERRIDE_REDIRECT
    return WindowKind.DIALOG if transient_for else WindowKind.NORMAL


def decorations_wanted(kind: WindowKind, motif_hints: Sequence[int] | None) -> bool:
    """Whether the client should draw a title bar: normal windows and dialogs
    do, unless _MOTIF_WM_HINTS turns decorations off."""
    if kind not in (WindowKind.NORMAL, WindowKind.DIALOG, WindowKind.UTILITY, WindowKind.TOOLBAR):
        return False
    if motif_hints and len(motif_hints) >= MOTIF_HINTS_ITEMS - 2 and motif_hints[0] & MOTIF_HINTS_DECORATIONS:
        return motif_hints[2] != 0
    return True


def read_fields(x: WmBackend, window: int, override_redirect: bool, model: WindowModel) -> dict[str, Any]:
    """WindowInfo fields of window (plus "protocols", the WM_PROTOCOLS names).

    transient_for only names windows the model holds; for an unmanaged window
    without WM_TRANSIENT_FOR the owner is guessed from _NET_WM_PID.
    """
    transient = (x.get_cardinals(window, "WM_TRANSIENT_FOR", 1) or [0])[0]
    transient = transient if transient != window and transient in model else 0
    types = x.get_atoms(window, "_NET_WM_WINDOW_TYPE", MAX_ATOM_ITEMS)
    kind = window_kind(types, override_redirect, transient)
    states = set(x.get_atoms(window, "_NET_WM_STATE", MAX_ATOM_ITEMS))
    protocols = frozenset(x.get_atoms(window, "WM_PROTOCOLS", MAX_ATOM_ITEMS))
    pid = (x.get_cardinals(window, "_NET_WM_PID", 1) or [0])[0]
    fields: dict[str, Any] = {
        "kind": kind, "transient_for": transient, "pid": pid, "modal": "_NET_WM_STATE_MODAL" in states,
        "polite_close": "WM_DELETE_WINDOW" in protocols, "protocols": protocols,
        "title": decode_title(x.get_text(window, "_NET_WM_NAME", TITLE_READ_BYTES),
                                    x.get_text(window, "WM_NAME", TITLE_READ_BYTES)),
        "wm_class": decode_wm_class(x.get_text(window, "WM_CLASS", CLASS_READ_BYTES)),
    }  # fmt: skip
    if override_redirect:
        fields["decorated"] = False
        fields["managed"] = False
        fields["transient_for"] = transient or owner_by_pid(model, pid)
        return fields
    fields["size_hints"] = decode_size_hints(
        x.get_cardinals(window, "WM_NORMAL_HINTS", NORMAL_HINTS_ITEMS))
    motif = x.get_cardinals(window, "_MOTIF_WM_HINTS", MOTIF_HINTS_ITEMS)
    fields["decorated"] = decorations_wanted(kind, motif)
    return fields


def owner_by_pid(model: WindowModel, pid: int) -> int:
    """For a menu/tooltip without WM_TRANSIENT_FOR: the focused window if it
    belongs to the same process, else that process's topmost window, else 0."""
    if not pid:
        return 0
    if model.focus and model.get(model.focus).pid == pid:
        return model.focus
    same = [w.id for w in model.windows() if w.managed and w.pid == pid]
    return same[-1] if same else 0
