# The sessiond <-> agent exchange that lets root list a session's windows
# (sessionctl show, /admin/) without reading the relayed windows channel.
#
# Why a control request on the link: root already decodes control messages
# from the agent (bounded JSON, MAX_CONTROL_PAYLOAD), so asking for a summary
# adds no new parser to root; the windows channel stays relayed raw. The
# summary is cut by the agent (managed windows only, at most
# MAX_LISTED_WINDOWS rows, short titles) so it always fits one message, and
# root checks every field like any other message from the agent.
"""WINDOW_LIST_REQUEST / WINDOW_LIST: a session's windows for the admin tools."""

from __future__ import annotations

from typing import Final

from protocol.base import I16_MAX, I16_MIN, U16_MAX, U32_MAX, Sender
from protocol.control import ControlMessage
from protocol.schema import JSON, JSON_INT, JSON_SINT, LIST, STR, Record, message, record, wire

# Rows of one WINDOW_LIST (the agent lists managed windows up to this many).
MAX_LISTED_WINDOWS: Final = 64
# Characters of a title in a WINDOW_LIST row.
MAX_LISTED_TITLE: Final = 80


@record
class WindowSummary(Record):
    """One window as sessionctl shows it."""

    id: int = wire(JSON_INT.within(1, U32_MAX))
    app: str = wire(STR)
    title: str = wire(STR)
    x: int = wire(JSON_SINT.within(I16_MIN, I16_MAX))
    y: int = wire(JSON_SINT.within(I16_MIN, I16_MAX))
    width: int = wire(JSON_INT.within(1, U16_MAX))
    height: int = wire(JSON_INT.within(1, U16_MAX))
    state: str = wire(STR)
    kind: str = wire(STR)

    def check(self) -> None:
        """Bounded texts."""
        if len(self.title) > MAX_LISTED_TITLE or len(self.app) > MAX_LISTED_TITLE:
            raise ValueError(f"title and app are at most {MAX_LISTED_TITLE} characters")
        if len(self.state) > 16 or len(self.kind) > 32:  # noqa: PLR2004 - the longest names are shorter
            raise ValueError("state or kind too long")


@message(0x30, "WINDOW_LIST_REQUEST", sender=Sender.CLIENT, codec=JSON)
class WindowListRequest(ControlMessage):
    """sessiond -> agent: list the session's windows (answered by WINDOW_LIST
    with the same request; refused on any connection that is not a link)."""

    request: int = wire(JSON_INT)


@message(0x31, "WINDOW_LIST", sender=Sender.SERVER, codec=JSON)
class WindowList(ControlMessage):
    """agent -> sessiond: the session's mode, its managed windows (at most
    MAX_LISTED_WINDOWS, bottom to top) and how many windows it has in all."""

    request: int = wire(JSON_INT)
    mode: str = wire(STR)
    windows: tuple[WindowSummary, ...] = wire(LIST(WindowSummary))
    total: int = wire(JSON_INT)

    def check(self) -> None:
        """At most MAX_LISTED_WINDOWS rows."""
        if len(self.windows) > MAX_LISTED_WINDOWS:
            raise ValueError(f"more than {MAX_LISTED_WINDOWS} windows listed")
