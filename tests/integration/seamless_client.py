# A synchronous protocol client for the seamless-mode integration tests: one
# real TLS connection to sessiond, the real protocol.Connection, and the
# Python client's own window table (client/windows.py), pumped from the test
# thread so a test can send a request and wait for what the user would see.
"""SeamlessClient: login, windows + display + input channels, wait helpers."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

from client.framebuffer import Framebuffer
from client.windows import ClientWindow, WindowTable
from protocol.connection import Connection, MessageReceived, Role
from protocol.messages import (
    Auth,
    AuthResult,
    ChannelKind,
    DesktopSize,
    FrameAck,
    FrameEnd,
    Launch,
    LaunchResult,
    Message,
    Region,
)
from protocol.windows import WindowTarget
from svtest import Server, TestUser, tls_connect

DISPLAY, INPUT, WINDOWS = int(ChannelKind.DISPLAY), int(ChannelKind.INPUT), int(ChannelKind.WINDOWS)


class SeamlessClient:
    """A logged-in client with the windows, display and input channels open."""

    def __init__(self, server: Server, user: TestUser, *, display: bool = True, windows: bool = True) -> None:
        self.sock: ssl.SSLSocket = tls_connect(server)
        self.sock.settimeout(0.2)
        self.conn = Connection(Role.CLIENT)
        self.windows = WindowTable()
        self.desktop: Framebuffer | None = None
        self.messages: list[Message] = []  # every windows/control message, in order
        self.frames = 0
        self.display_bytes = 0  # display-channel bytes received (header + payload)
        self.windows_bytes = 0  # windows-channel bytes received
        self.conn.hello(capabilities=(), software="seamless test")
        password = open(user.password_file, encoding="utf-8").read().strip()
        self.conn.send(0, Auth(method="password", user=user.name, password=password))
        result = self.wait(lambda m: isinstance(m, AuthResult), 30)
        assert result.ok, result
        channels = tuple(c for c, want in ((WINDOWS, windows), (INPUT, True), (DISPLAY, display)) if want)
        for channel in channels:
            self.conn.open_channel(channel, ChannelKind(channel))
        self.pump_until(lambda: all(c in self.conn.open_channels() for c in channels), 10)

    def pump(self, seconds: float = 0.05) -> None:
        """Send what is queued, read what arrives for about `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            out = self.conn.data_to_send()
            if out:
                self.sock.sendall(out)
            try:
                data = self.sock.recv(1 << 20)
            except (TimeoutError, ssl.SSLWantReadError):
                data = None
            if data == b"":
                raise ConnectionError("server closed the connection")
            if data:
                for event in self.conn.receive_data(data):
                    self._event(event)
            if time.monotonic() >= deadline:
                out = self.conn.data_to_send()
                if out:
                    self.sock.sendall(out)
                return

    def _event(self, event: object) -> None:
        if not isinstance(event, MessageReceived):
            return
        message, channel = event.message, event.channel
        if channel == DISPLAY:
            self.display_bytes += event.wire_size
            if isinstance(message, DesktopSize):
                self.desktop = Framebuffer(message.width, message.height)
            elif isinstance(message, WindowTarget):
                self.windows.target(message)
            elif isinstance(message, Region):
                if not self.windows.region(message) and self.desktop is not None:
                    self.desktop.apply(message)
            elif isinstance(message, FrameEnd):
                self.windows.frame_end()
                self.frames += 1
                self.conn.send(DISPLAY, FrameAck(message.seq))
        else:
            if channel == WINDOWS:
                self.windows_bytes += event.wire_size
                self.windows.message(message)
            self.messages.append(message)
        if channel != 0:
            self.conn.consumed(channel, event.wire_size)

    def pump_until(self, done: Callable[[], Any], seconds: float) -> Any:
        """Pump until done() is truthy (returned) or fail after `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            result = done()
            if result:
                return result
            self.pump(0.05)
        raise AssertionError(f"timed out after {seconds}s")

    def pump_until_quiet(self, quiet: float = 1.0, seconds: float = 20) -> None:
        """Pump until no display bytes have arrived for `quiet` seconds (fail after `seconds`)."""
        deadline = time.monotonic() + seconds
        seen, since = self.display_bytes, time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() >= deadline:
                raise AssertionError(f"the display was still sending after {seconds}s")
            self.pump(0.05)
            if self.display_bytes != seen:
                seen, since = self.display_bytes, time.monotonic()

    def wait(self, matches: Callable[[Message], bool], seconds: float = 15) -> Any:
        """The first message (since the start) that matches; waits for it."""
        return self.pump_until(lambda: next((m for m in self.messages if matches(m)), None), seconds)

    def send(self, channel: int, message: Message) -> None:
        """Queue and send one message."""
        self.conn.send(channel, message)
        self.pump(0.01)

    def launch(self, app: str, request: int, args: tuple[str, ...] = ()) -> LaunchResult:
        """Launch an app and wait for its LAUNCH_RESULT."""
        self.send(0, Launch(request=request, app=app, args=args))
        result = self.wait(lambda m: isinstance(m, LaunchResult) and m.request == request, 30)
        assert result.ok, result
        return result  # type: ignore[no-any-return]

    def window_of(self, app: str, seconds: float = 15) -> ClientWindow:
        """The (first) managed window whose app id is `app`, once it has pixels."""
        def find() -> ClientWindow | None:
            for win in self.windows.stacked():
                if win.info.app_id == app and win.info.managed and win.framebuffer is not None:
                    return win
            return None
        return self.pump_until(find, seconds)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Drop the connection (like a network failure)."""
        self.sock.close()
