# The xpra channel: an opaque byte stream between the user's local xpra
# client (bridged by svclient) and the session's xpra server (bridged by the
# agent).
#
# Why one message with nothing but bytes: sessiond never parses xpra packets
# (they are the user's data, and xpra's own packet format is not ours to
# validate in root). The only structure the wire needs is a bound on one
# chunk, so a reader knows from the frame header what it will buffer; the
# stream itself is reassembled by the xpra peers. A chunk is never empty:
# an empty DATA carries nothing and would only cost a frame header.
"""XPRA_DATA: one chunk of the opaque xpra stream, in either direction."""

from __future__ import annotations

from typing import Final

from protocol.base import ChannelKind, Message, Sender
from protocol.schema import BYTES, Declared, message, wire

# Largest chunk of the xpra stream in one frame: the size one read of a Unix
# socket returns at most on the bridges, and small enough that two frames
# fit the default window many times over (a keystroke never waits long
# behind a bulk chunk on the same channel).
MAX_XPRA_CHUNK: Final = 64 * 1024


@message(0x01, "XPRA_DATA", kind=ChannelKind.XPRA, sender=Sender.ANY)
class XpraData(Declared):
    """The next bytes of the xpra stream (1..MAX_XPRA_CHUNK), either direction."""

    data: bytes = wire(BYTES(MAX_XPRA_CHUNK, 1))


XPRA_MESSAGES: tuple[type[Message], ...] = (XpraData,)
