# User activity of an xpra session, for sessiond's idle policies.
#
# Why: sessiond's [policy] idle_disconnect and idle_logoff count a session's
# input from its own input channel. With display = xpra the user's keys and
# pointer reach the session through xpra (the stream sessiond relays without
# reading it), so an xpra user looked idle however much they typed. The X
# server itself knows when it last had input from any device: the
# MIT-SCREEN-SAVER idle time, which xpra's injected input (XTEST) resets as
# a real keyboard does. The stream's pings and keepalives never reach the X
# server's input, so they do not count, and nothing here parses the stream.
#
# How: every ACTIVITY_POLL_SECONDS the agent asks the X server (on a
# connection of its own, so the agent's event loop connection is untouched)
# for its idle time; if there was input since the previous poll, it sends
# one USER_ACTIVITY on the link, at most one per poll. An app that resets
# the screen saver (XResetScreenSaver, as video players do) counts as
# activity too: the X server does not tell the two apart (docs/xpra.md).
"""IdleWatch: report the session X server's input to sessiond (USER_ACTIVITY)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Final

from Xlib import display as xdisplay_mod
from Xlib import error as XError  # noqa: N812 - python-xlib's module name

from protocol.xpra import UserActivity

# Seconds between two looks at the X server's idle time (one round trip each).
ACTIVITY_POLL_SECONDS: Final = 2.0


class IdleWatch:
    """Polls the session X server's idle time; sends USER_ACTIVITY after input."""

    def __init__(self, loop: asyncio.AbstractEventLoop, display: str, link: Callable[[], Any],
                 log: Callable[[str], None], poll: float = ACTIVITY_POLL_SECONDS) -> None:  # fmt: skip
        self.loop = loop
        self.display_name = display
        self.link = link  # the current LinkProtocol or None
        self.log = log
        self.poll = poll
        self.reports = 0
        self._x: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0  # loop time of the previous poll

    def start(self) -> None:
        """Open the X connection and start polling; logs and gives up if the server lacks the extension."""
        try:
            self._x = xdisplay_mod.Display(self.display_name)
        except (XError.DisplayError, OSError) as exc:
            self.log(f"idle watch: cannot open {self.display_name}: {exc}; xpra input will not count as activity")
            return
        if not self._x.has_extension("MIT-SCREEN-SAVER"):
            self.log("idle watch: the X server has no MIT-SCREEN-SAVER; xpra input will not count as activity")
            self.stop()
            return
        self._last = self.loop.time()
        self._timer = self.loop.call_later(self.poll, self._tick)
        self.log(f"idle watch: input on {self.display_name} counts as activity (looked at every {self.poll:g} s)")

    def idle_ms(self) -> int:
        """Milliseconds since the X server's last input event (from any device, XTEST included)."""
        return int(self._x.screen().root.screensaver_query_info().idle)

    def _tick(self) -> None:
        try:
            idle = self.idle_ms()
        except (XError.ConnectionClosedError, XError.XError, OSError) as exc:
            self.log(f"idle watch: the X server stopped answering ({exc}); stopped")
            self.stop()
            return
        now = self.loop.time()
        if idle <= (now - self._last) * 1000:  # input since the previous poll (however late this one runs)
            self.report(idle)
        self._last = now
        self._timer = self.loop.call_later(self.poll, self._tick)

    def report(self, idle_ms: int) -> bool:
        """Send USER_ACTIVITY on the link if there is one; True if sent."""
        link = self.link()
        if link is None or not link.authenticated:
            return False
        link.conn.send(0, UserActivity(idle_ms=max(0, idle_ms)))
        link.flush()
        self.reports += 1
        return True

    def stop(self) -> None:
        """Stop polling and close the X connection (idempotent)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._x is not None:
            with contextlib.suppress(Exception):
                self._x.close()
            self._x = None
