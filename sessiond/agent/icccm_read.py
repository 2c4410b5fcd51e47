# Reading a window's ICCCM/EWMH properties through a WmBackend, within bounds.
#
# Why: one place lists which properties make up a window's metadata and reads
# each with its size limit (the limit travels to the X server as GetProperty's
# long-length, so an oversized property is never transferred); icccm.py's pure
# decoders then turn the values into model fields.
"""read_fields: a window's model fields from its properties."""

from __future__ import annotations

from typing import Any

from sessiond.agent import icccm
from sessiond.agent.window_model import WindowModel
from sessiond.agent.wm_backend import WmBackend


def read_fields(x: WmBackend, window: int, override_redirect: bool, model: WindowModel) -> dict[str, Any]:
    """WindowInfo fields of window (plus "protocols", the WM_PROTOCOLS names).

    transient_for only names windows the model holds; for an unmanaged window
    without WM_TRANSIENT_FOR the owner is guessed from _NET_WM_PID.
    """
    transient = (x.get_cardinals(window, "WM_TRANSIENT_FOR", 1) or [0])[0]
    transient = transient if transient != window and transient in model else 0
    types = x.get_atoms(window, "_NET_WM_WINDOW_TYPE", icccm.MAX_ATOM_ITEMS)
    kind = icccm.window_kind(types, override_redirect, transient)
    states = set(x.get_atoms(window, "_NET_WM_STATE", icccm.MAX_ATOM_ITEMS))
    protocols = frozenset(x.get_atoms(window, "WM_PROTOCOLS", icccm.MAX_ATOM_ITEMS))
    pid = (x.get_cardinals(window, "_NET_WM_PID", 1) or [0])[0]
    fields: dict[str, Any] = {
        "kind": kind, "transient_for": transient, "pid": pid, "modal": "_NET_WM_STATE_MODAL" in states,
        "polite_close": "WM_DELETE_WINDOW" in protocols, "protocols": protocols,
        "title": icccm.decode_title(x.get_text(window, "_NET_WM_NAME", icccm.TITLE_READ_BYTES),
                                    x.get_text(window, "WM_NAME", icccm.TITLE_READ_BYTES)),
        "wm_class": icccm.decode_wm_class(x.get_text(window, "WM_CLASS", icccm.CLASS_READ_BYTES)),
    }  # fmt: skip
    if override_redirect:
        fields["decorated"] = False
        fields["managed"] = False
        fields["transient_for"] = transient or owner_by_pid(model, pid)
        return fields
    fields["size_hints"] = icccm.decode_size_hints(
        x.get_cardinals(window, "WM_NORMAL_HINTS", icccm.NORMAL_HINTS_ITEMS))
    motif = x.get_cardinals(window, "_MOTIF_WM_HINTS", icccm.MOTIF_HINTS_ITEMS)
    fields["decorated"] = icccm.decorations_wanted(kind, motif)
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
