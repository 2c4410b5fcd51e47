# The seamless-mode half of SessionClient: the windows channel, window
# requests, window-relative input and the composed screen.
#
# Why a mixin of its own: session.py holds the connection, login and the
# desktop display; everything that exists only because a session has separate
# windows lives here, on top of the same connection and waiters.
"""WindowsMixin: SessionClient's windows channel and window requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from twisted.internet import defer

from client.framebuffer import Framebuffer
from client.windows import WindowTable
from protocol.errors import ReasonCode
from protocol.messages import ChannelKind, Message
from protocol.windows import (
    WindowButton,
    WindowClose,
    WindowFocus,
    WindowForceClose,
    WindowMaximize,
    WindowMinimize,
    WindowMoveResize,
    WindowPointer,
    WindowRaise,
    WindowRestore,
    WindowWheel,
)

WINDOWS = int(ChannelKind.WINDOWS)


class WindowsMixin:
    """Windows-channel methods of SessionClient (which provides the attributes below)."""

    conn: Any
    windows: WindowTable
    framebuffer: Framebuffer | None
    channel_handlers: dict[int, Callable[[Message | None], None]]
    _waiters: list[tuple[Callable[[Message], bool], defer.Deferred[Any]]]
    _replay_waiter: defer.Deferred[Any] | None
    _end: Exception | None
    # The exception a refused windows channel raises (session.RemoteError).
    remote_error: Callable[[int, str], Exception]

    if TYPE_CHECKING:  # provided by SessionClient / FrameProtocol (never defined here: MRO)

        def flush(self) -> None: ...

        def _deliver(self, message: Message) -> None: ...

        async def open_channel(self, kind: ChannelKind) -> None: ...

        def send_input(self, message: Message) -> None: ...

    async def open_windows(self) -> None:
        """Open the windows channel; returns once the server has replayed
        every window (its replay ends with WINDOW_FOCUS); changes keep
        arriving in client.windows. RemoteError in desktop mode."""
        self.channel_handlers[WINDOWS] = self._window_message
        replayed = self.window_event(lambda m: isinstance(m, WindowFocus))
        self._replay_waiter = replayed
        await self.open_channel(ChannelKind.WINDOWS)
        await replayed

    def _window_message(self, message: Message | None) -> None:
        self.windows.message(message)
        if message is not None:
            self._deliver(message)
            return
        waiter, self._replay_waiter = self._replay_waiter, None
        if waiter is not None and not waiter.called:
            self._waiters = [(m, d) for m, d in self._waiters if d is not waiter]
            waiter.errback(self.remote_error(ReasonCode.CHANNEL_KIND_UNAVAILABLE, "the session has no windows channel"))

    def window_event(self, matches: Callable[[Message], bool]) -> defer.Deferred[Any]:
        """Fires with the next windows-channel message that `matches`."""
        if self._end is not None:
            return defer.fail(self._end)
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiters.append((matches, d))
        return d

    def window_request(self, message: Message) -> None:
        """Send a window request (move/resize, raise, minimize, ...)."""
        self.conn.send(WINDOWS, message)
        self.flush()

    def move_resize(self, window: int, x: int, y: int, width: int, height: int) -> None:
        """Ask to move/resize a window (screen pixels)."""
        self.window_request(WindowMoveResize(window, x, y, width, height))

    def raise_window(self, window: int) -> None:
        """Raise and focus a window."""
        self.window_request(WindowRaise(window))

    def minimize(self, window: int) -> None:
        """Minimize a window."""
        self.window_request(WindowMinimize(window))

    def maximize(self, window: int) -> None:
        """Maximize a window."""
        self.window_request(WindowMaximize(window))

    def restore(self, window: int) -> None:
        """Restore a minimized or maximized window."""
        self.window_request(WindowRestore(window))

    def close_window(self, window: int, force: bool = False) -> None:
        """Ask the app to close a window (force: disconnect it)."""
        self.window_request(WindowForceClose(window) if force else WindowClose(window))

    def screen_image(self) -> Any:
        """The session's screen as an RGB image: the desktop framebuffer, or
        in seamless mode the windows composed in stacking order."""
        if self.framebuffer is None:
            raise ValueError("no DESKTOP_SIZE received yet")
        if self.windows.seamless:
            return self.windows.compose(self.framebuffer.width, self.framebuffer.height)
        return self.framebuffer.image()

    def window_pointer(self, window: int, x: int, y: int) -> None:
        """Move the pointer to (x, y) of a window."""
        self.send_input(WindowPointer(window, x, y))

    def window_button(self, window: int, x: int, y: int, button: int, down: bool) -> None:
        """Press/release a button at (x, y) of a window (a press raises and focuses it)."""
        self.send_input(WindowButton(window, x, y, button, down))

    def window_wheel(self, window: int, x: int, y: int, dx: int, dy: int) -> None:
        """Scroll at (x, y) of a window."""
        self.send_input(WindowWheel(window, x, y, dx, dy))


