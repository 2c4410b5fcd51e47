# sessiond wire protocol, sans-IO: bytes in, typed events out, bytes back.
#
# Why a package of its own: the daemon (Twisted), the session agent (asyncio),
# the CLI client and the tests all speak the same protocol through one
# implementation that performs no I/O. Nothing in here imports an event loop.
"""sessiond wire protocol (version 1): framing, messages, Connection."""

from protocol.limits import ALPN, PROTOCOL_VERSION

__all__ = ["ALPN", "PROTOCOL_VERSION"]
