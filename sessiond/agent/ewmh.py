# EWMH/ICCCM conventions the window manager publishes and obeys, as data.
#
# Why: which atoms we advertise, which WM_STATE and _NET_WM_STATE values a
# window carries in each model state, which root lists we keep up to date, and
# how an app's ClientMessages (_NET_ACTIVE_WINDOW, _NET_CLOSE_WINDOW,
# WM_CHANGE_STATE, _NET_WM_STATE) map onto WindowRequests are X conventions,
# not window-management decisions; kept here so wm.py reads as the state
# machine it is.  Everything goes through a WmBackend: no Xlib import.
"""EWMH constants, property publishing and ClientMessage -> WindowRequests mapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from sessiond.agent.window_model import WindowInfo, WindowModel, WindowRequests, WindowState
from sessiond.agent.wm_backend import ClientMessage, WmBackend

# ICCCM WM_STATE values.
WITHDRAWN_STATE: Final = 0
NORMAL_STATE: Final = 1
ICONIC_STATE: Final = 3
# _NET_WM_STATE ClientMessage actions.
NET_WM_STATE_REMOVE, NET_WM_STATE_ADD, NET_WM_STATE_TOGGLE = 0, 1, 2
MAXIMIZED_ATOMS: Final = frozenset({"_NET_WM_STATE_MAXIMIZED_VERT", "_NET_WM_STATE_MAXIMIZED_HORZ"})
# Properties whose change re-reads a window's metadata (the icon is read on its own).
METADATA_PROPERTIES: Final = frozenset({
    "WM_NAME", "_NET_WM_NAME", "WM_CLASS", "WM_TRANSIENT_FOR", "_NET_WM_WINDOW_TYPE",
    "WM_PROTOCOLS", "WM_NORMAL_HINTS", "_MOTIF_WM_HINTS", "_NET_WM_STATE",
})  # fmt: skip
# What we advertise in _NET_SUPPORTED.
SUPPORTED: Final = (
    "_NET_SUPPORTED", "_NET_SUPPORTING_WM_CHECK", "_NET_ACTIVE_WINDOW", "_NET_CLIENT_LIST",
    "_NET_CLIENT_LIST_STACKING", "_NET_CLOSE_WINDOW", "_NET_WM_NAME", "_NET_WM_ICON", "_NET_WM_PID",
    "_NET_WM_WINDOW_TYPE", "_NET_WM_STATE", "_NET_WM_STATE_MODAL", "_NET_WM_STATE_HIDDEN",
    "_NET_WM_STATE_MAXIMIZED_VERT", "_NET_WM_STATE_MAXIMIZED_HORZ",
)  # fmt: skip


def set_wm_state(x: WmBackend, window: int, state: int) -> None:
    """ICCCM WM_STATE (Withdrawn, Normal or Iconic; no icon window)."""
    x.set_property(window, "WM_STATE", "WM_STATE", [state, 0])


def write_net_wm_state(x: WmBackend, info: WindowInfo) -> None:
    """_NET_WM_STATE of a managed window from its model state."""
    atoms = ["_NET_WM_STATE_MODAL"] if info.modal else []
    if info.state is WindowState.MINIMIZED:
        atoms.append("_NET_WM_STATE_HIDDEN")
    elif info.state is WindowState.MAXIMIZED:
        atoms.extend(sorted(MAXIMIZED_ATOMS))
    x.set_property(info.id, "_NET_WM_STATE", "ATOM", atoms)


def publish(x: WmBackend, model: WindowModel, client_list: list[int]) -> None:
    """_NET_CLIENT_LIST (map order), _NET_CLIENT_LIST_STACKING and _NET_ACTIVE_WINDOW on the root."""
    stacking = [w for w in model.stacking if model.get(w).managed]
    x.set_root_property("_NET_CLIENT_LIST", "WINDOW", list(client_list))
    x.set_root_property("_NET_CLIENT_LIST_STACKING", "WINDOW", stacking)
    x.set_root_property("_NET_ACTIVE_WINDOW", "WINDOW", [model.focus])


def _wanted(action: int, now: bool) -> bool:
    return {NET_WM_STATE_ADD: True, NET_WM_STATE_REMOVE: False}.get(action, not now)


def client_message(ev: ClientMessage, info: WindowInfo, requests: WindowRequests,
                   atom_name: Callable[[int], str]) -> bool:  # fmt: skip
    """Turn an app's ClientMessage about a managed window into requests.

    Returns True for _NET_WM_STATE_MODAL toggles the caller must apply to the
    model itself (modality is metadata, not a request).
    """
    data = ev.data
    if ev.message_type == "_NET_ACTIVE_WINDOW":
        requests.raise_focus(ev.window)
    elif ev.message_type == "_NET_CLOSE_WINDOW":
        requests.close(ev.window)
    elif ev.message_type == "WM_CHANGE_STATE" and data[:1] == (ICONIC_STATE,):
        requests.minimize(ev.window)
    elif ev.message_type == "_NET_WM_STATE" and len(data) >= 3:
        atoms = {atom_name(a) for a in data[1:3] if a}
        action = data[0]
        if atoms & MAXIMIZED_ATOMS:
            on = info.state is WindowState.MAXIMIZED
            if _wanted(action, on) and not on:
                requests.maximize(ev.window)
            elif on and not _wanted(action, on):
                requests.restore(ev.window)
        if "_NET_WM_STATE_HIDDEN" in atoms and action != NET_WM_STATE_REMOVE:
            requests.minimize(ev.window)
        if "_NET_WM_STATE_MODAL" in atoms:
            return _wanted(action, info.modal) != info.modal
    return False
