# Stacking and focus rules over the window model: pure functions.
#
# Why: "dialogs above their parent", "a modal dialog keeps the keyboard over
# its parent", "menus above everything" and "when the focused window goes,
# the topmost remaining one takes over" are rules about the model, not about
# X.  Kept apart from wm.py so a Wayland compositor applies the same rules and
# unit tests check them on plain records.
"""Transient groups, raise order, modal focus redirection and focus fallback."""

from __future__ import annotations

from collections.abc import Collection

from sessiond.agent.window_model import WindowKind, WindowModel, WindowState


def group(model: WindowModel, window: int) -> list[int]:
    """window and its managed transients (recursively), in stacking order."""
    order = model.stacking
    members, frontier = [window], [window]
    while frontier:
        parent = frontier.pop()
        kids = [w for w in order if w not in members and model.get(w).managed
                and model.get(w).transient_for == parent]  # fmt: skip
        members.extend(kids)
        frontier.extend(kids)
    return sorted(members, key=order.index)


def raised(model: WindowModel, window: int) -> list[int]:
    """The stacking order (bottom to top) after raising window: it and its
    dialogs go above every other managed window, keeping their own order;
    unmanaged windows (menus, tooltips) stay above all managed ones."""
    members = group(model, window)
    rest = [w for w in model.stacking if w not in members]
    managed = [w for w in rest if model.get(w).managed]
    unmanaged = [w for w in rest if not model.get(w).managed]
    return managed + members + unmanaged


def modal_for(model: WindowModel, window: int) -> int:
    """The window that should get the keyboard when window is activated: its
    topmost shown modal dialog (recursively), else window itself."""
    for w in reversed(group(model, window)):
        info = model.get(w)
        if w != window and info.modal and info.state is not WindowState.MINIMIZED:
            return modal_for(model, w)
    return window


def focus_candidate(model: WindowModel, focusable: Collection[WindowKind]) -> int:
    """The topmost shown managed window of a focusable kind, 0 if none."""
    for info in reversed(list(model.windows())):
        if info.managed and info.kind in focusable and info.state is not WindowState.MINIMIZED:
            return info.id
    return 0
