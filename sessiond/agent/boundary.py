# Error boundaries of the agent's per-kind handlers.
#
# Why: everything the agent handles arrives from the network (through
# sessiond), and the agent is the user's session: their apps and unsaved
# work.  One message that cannot be handled -- a key the keyboard cannot
# type, a microphone packet that does not decode, a bug in a handler --
# must cost at most that message, or, when the peer broke a rule of the
# channel, that channel (closed with a reason code).  Never the link, never
# the session.  Every per-kind handler runs through guard() below.
"""PeerViolation and guard(): one message's failure stays with that message."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

from protocol.errors import ReasonCode
from protocol.limits import MAX_REASON_TEXT

# Lines per second the agent writes about dropped messages: a client that
# sends nothing but undroppable keys must not fill the session's disk with
# agent.log (it is truncated only at start-up).
MAX_DROP_LOG_LINES_PER_SECOND = 20


class LogLimiter:
    """A log callable that writes at most `per_second` lines per second and
    then one line saying how many were suppressed."""

    def __init__(self, log: Callable[[str], None], per_second: int = MAX_DROP_LOG_LINES_PER_SECOND,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._log = log
        self._per_second = per_second
        self._clock = clock
        self._window = clock()
        self._written = 0
        self._suppressed = 0

    def __call__(self, text: str) -> None:
        now = self._clock()
        if now - self._window >= 1.0:
            if self._suppressed:
                self._log(f"({self._suppressed} more such lines suppressed)")
            self._window, self._written, self._suppressed = now, 0, 0
        if self._written < self._per_second:
            self._written += 1
            self._log(text)
        else:
            self._suppressed += 1


class PeerViolation(Exception):
    """The peer broke a rule of the channel: the channel is closed with `code`."""

    def __init__(self, code: ReasonCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class ChannelCloser(Protocol):
    """What guard() needs of a protocol.Connection."""

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        ...

    def open_channels(self) -> Mapping[int, object]:
        """Usable channels and their kinds."""
        ...

    def close_channel(self, channel: int, code: int = 0, message: str = "") -> None:
        """Send CHANNEL_CLOSE for `channel`."""
        ...


def guard(log: Callable[[str], None], conn: ChannelCloser, channel: int, describe: str | Callable[[], str],
          handler: Callable[[], None]) -> bool:  # fmt: skip
    """Run the handler of one message; True if it completed.

    `describe` names the message in log lines (a callable is called only
    on failure, so the common case formats nothing).

    A PeerViolation closes `channel` (never the control channel 0, whose
    closing would end the link) with its reason code; any other exception
    is logged and the message dropped.  Nothing propagates.
    """
    try:
        handler()
        return True
    except PeerViolation as exc:
        what = describe() if callable(describe) else describe
        if channel == 0 or conn.closed or channel not in conn.open_channels():
            log(f"{what} on channel {channel}: {exc.detail}; dropped")
            return False
        log(f"{what} on channel {channel}: {exc.detail}; closing the channel (code {int(exc.code)})")
        try:
            conn.close_channel(channel, exc.code, exc.detail[:MAX_REASON_TEXT])
        except Exception as close_exc:  # noqa: BLE001 - the boundary itself must not raise
            log(f"{what}: cannot close channel {channel}: {close_exc}")
    except Exception as exc:  # noqa: BLE001 - the boundary: one message, never the session
        what = describe() if callable(describe) else describe
        log(f"{what} on channel {channel} failed and was dropped: {type(exc).__name__}: {exc}")
    return False
