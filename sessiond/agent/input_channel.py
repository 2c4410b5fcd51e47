# The agent's handler of the input channel: KEY, KEY_TAP(_ACK), POINTER, BUTTON,
# WHEEL and SYNC from the client, injected into the session's X server.
#
# Why its own object: the input channel is one kind with one owner (the
# per-kind handler table of STYLE.md), and what it may do on bad input is
# narrow -- drop that one event and log it.  The injector already refuses
# what it cannot type; this handler adds nothing that can raise except the
# X connection itself, and the agent's error boundary (boundary.guard)
# catches that too.
"""InputChannel: client input events -> InputInjector / FocusManager."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from protocol.messages import Button, Key, KeyTap, KeyTapAck, Message, Pointer, Sync, SyncDone, Wheel
from protocol.windows import WindowButton, WindowPointer, WindowWheel


class Injector(Protocol):
    """What InputChannel needs of sessiond.agent.xinput.InputInjector."""

    def key(self, keysym: int, down: bool) -> bool:
        """Press or release a keysym; False if dropped."""
        ...

    def pointer(self, x: int, y: int) -> bool:
        """Move the pointer."""
        ...

    def button(self, x: int, y: int, button: int, down: bool) -> bool:
        """Press or release a button at (x, y)."""
        ...

    def wheel(self, x: int, y: int, dx: int, dy: int) -> bool:
        """Scroll at (x, y)."""
        ...

    def sync(self) -> None:
        """Wait for the X server to process what was sent."""
        ...


class Focus(Protocol):
    """What InputChannel needs of sessiond.agent.windows.FocusManager."""

    def focus_at(self, x: int, y: int) -> None:
        """Focus and raise the top-level window at (x, y)."""
        ...


class WindowInput(Protocol):
    """What InputChannel needs for window-relative input (seamless mode)."""

    def origin(self, window: int) -> tuple[int, int] | None:
        """Screen position of the window's top-left corner; None if not shown."""
        ...

    def pressed(self, window: int) -> None:
        """A button went down in the window: raise and focus it."""
        ...


class InputChannel:
    """Turns input messages into X input; `reply` sends SYNC_DONE back."""

    def __init__(self, injector: Injector, focus: Focus, reply: Callable[[Message], None],
                 windows: WindowInput | None = None) -> None:  # fmt: skip
        """windows: translates WINDOW_POINTER/BUTTON/WHEEL (None: they are dropped)."""
        self.injector = injector
        self.focus = focus
        self.windows = windows
        self.reply = reply
        self.dropped = 0

    def message(self, message: Message) -> None:
        """Inject one input message; counts those the injector refused."""
        injector = self.injector
        done = True
        if isinstance(message, Key):
            done = injector.key(message.keysym, message.down)
            if not done and not message.down:
                done = True  # releasing a key that is not held is a no-op, not a drop
        elif isinstance(message, (KeyTap, KeyTapAck)):
            done = injector.key(message.keysym, True)
            if done:
                injector.key(message.keysym, False)
        elif isinstance(message, Pointer):
            done = injector.pointer(message.x, message.y)
        elif isinstance(message, Button):
            if message.down:
                self.focus.focus_at(message.x, message.y)
            done = injector.button(message.x, message.y, message.button, message.down)
        elif isinstance(message, Wheel):
            done = injector.wheel(message.x, message.y, message.dx, message.dy)
        elif isinstance(message, (WindowPointer, WindowButton, WindowWheel)):
            done = self._window_input(message)
        elif isinstance(message, Sync):
            injector.sync()
            self.reply(SyncDone(seq=message.seq))
        if not done:
            self.dropped += 1

    def _window_input(self, message: WindowPointer | WindowButton | WindowWheel) -> bool:
        """Window-relative input at the window's current place; dropped for a
        window that is gone or minimized, or a point off the X screen."""
        origin = self.windows.origin(message.window) if self.windows is not None else None
        if origin is None:
            return False
        x, y = origin[0] + message.x, origin[1] + message.y
        if not (0 <= x <= 0xFFFF and 0 <= y <= 0xFFFF):
            return False
        injector = self.injector
        if isinstance(message, WindowPointer):
            return injector.pointer(x, y)
        if isinstance(message, WindowButton):
            if message.down and self.windows is not None:
                self.windows.pressed(message.window)
            return injector.button(x, y, message.button, message.down)
        return injector.wheel(x, y, message.dx, message.dy)
