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
# XPRA_VERSION, sent by the agent before any data, names the session's xpra
# server version, so a client can refuse to start an xpra client that
# cannot talk to it, with a message naming both versions.
# USER_ACTIVITY (control channel, agent -> sessiond only): the user's input
# in an xpra session reaches the X server through xpra, never through
# sessiond's input channel, so the agent reports that the X server had input
# (its idle time, from the X server, not from the stream) and sessiond's idle
# policies see an xpra user as active (docs/xpra.md, "Idle policies").
"""XPRA_VERSION, XPRA_DATA and USER_ACTIVITY: the xpra version, the opaque stream, input seen."""

from __future__ import annotations

from typing import Final

from protocol.base import U32_MAX, ChannelKind, Message, Sender
from protocol.control import ControlMessage
from protocol.schema import BYTES, JSON, JSON_INT, TEXT, Declared, message, wire

# HELLO capability of a client that only launches apps (svclient launch):
# when another connection holds the user's session (an attached xpra client),
# sessiond does not take the session over for it; it launches beside it and
# refuses it channels (CHANNEL_KIND_UNAVAILABLE). Without another connection
# it is an ordinary login, except in an xpra session (below).
LAUNCH_BESIDE: Final = "launch.beside"
# HELLO capability of a client that cannot show an xpra display (the web
# client): in a session whose display is xpra it is a launcher beside the
# session's connection whether or not one is attached (it never holds the
# session), and is told whether one is (SESSION_ATTACHED). In other sessions
# it is an ordinary client. A LAUNCH_BESIDE client is the same in an xpra
# session: nothing there is shown to it.
LAUNCH_BESIDE_XPRA: Final = "launch.beside-xpra"
# Largest chunk of the xpra stream in one frame: the size one read of a Unix
# socket returns at most on the bridges, and small enough that two frames
# fit the default window many times over (a keystroke never waits long
# behind a bulk chunk on the same channel).
MAX_XPRA_CHUNK: Final = 64 * 1024
# Bytes of a version string ("6.5.5-r0"): xpra's own are far shorter.
MAX_XPRA_VERSION: Final = 64


@message(0x01, "XPRA_DATA", kind=ChannelKind.XPRA, sender=Sender.ANY)
class XpraData(Declared):
    """The next bytes of the xpra stream (1..MAX_XPRA_CHUNK), either direction."""

    data: bytes = wire(BYTES(MAX_XPRA_CHUNK, 1))


@message(0x02, "XPRA_VERSION", kind=ChannelKind.XPRA, sender=Sender.SERVER)
class XpraVersion(Declared):
    """The session's xpra server version, first on the channel (server -> client)."""

    version: str = wire(TEXT(MAX_XPRA_VERSION))


@message(0x32, "USER_ACTIVITY", sender=Sender.SERVER, codec=JSON)
class UserActivity(ControlMessage):
    """agent -> sessiond: the session's X server had user input `idle_ms`
    milliseconds ago (refused on any connection that is not a link)."""

    idle_ms: int = wire(JSON_INT.within(0, U32_MAX))


XPRA_MESSAGES: tuple[type[Message], ...] = (XpraData, XpraVersion)
