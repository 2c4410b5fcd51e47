# How the agent answers its link to sessiond: authentication of the link,
# one event at a time behind the error boundary, dispatched per channel
# (control, display, input, windows, audio; usb, transfers and xpra take
# theirs first), and what a lost link releases.
#
# Why a mixin of its own: main.py holds what a session runs (Xvfb, capture,
# input, apps, the X event loop) and its process entry; everything here exists
# because sessiond talks to the agent over one link, on top of the same state.
#
# The link token is compared in constant time with the C function hmac uses
# when OpenSSL is absent (_operator._compare_digest): importing hmac loads
# OpenSSL's libcrypto (~0.5 MiB of relocated data per session) for one call.
"""LinkEvents: the Agent's link, channel dispatch and control messages."""

from __future__ import annotations

import asyncio
import time
from _operator import _compare_digest as compare_digest  # hmac's, without OpenSSL (header)
from typing import TYPE_CHECKING, Callable

from protocol.connection import ChannelClosed, ChannelOpened, MessageReceived, MessageRefused
from protocol.errors import ReasonCode
from protocol.messages import (
    AppExited,
    Auth,
    AuthResult,
    ChannelKind,
    ClockReport,
    DesktopSize,
    Hello,
    LaunchResult,
    Message,
    Ping,
    Pong,
    ResizeRequest,
    SpawnApp,
)
from protocol.windows import WINDOW_REQUESTS
from protocol.windows_admin import WindowList, WindowListRequest, WindowSummary
from sessiond.agent.apps import AppLauncher
from sessiond.agent.audio import AudioService
from sessiond.agent.boundary import LogLimiter, guard
from sessiond.agent.display import DisplayPipeline
from sessiond.agent.input_channel import InputChannel
from sessiond.agent.link import LinkProtocol
from sessiond.agent.screen import ResizeCoalescer
from sessiond.agent.seamless import Seamless
from sessiond.agent.transfers import TransferService
from sessiond.agent.usb import UsbService
from sessiond.agent.xinput import InputInjector
from sessiond.agent.xpra_channel import XpraChannels

SOFTWARE = "sessiond-agent 0.1.0"
DISPLAY_CHANNEL = int(ChannelKind.DISPLAY)
INPUT_CHANNEL = int(ChannelKind.INPUT)
# Seconds between CLOCK_REPORTs while a client listens to the session's sound.
CLOCK_REPORT_SECONDS = 1.0
# App answers (LAUNCH_RESULT, APP_EXITED) held while no link is up, sent once one is: the
# login's launch answers before its link exists; an app may end while sessiond restarts.
# Beyond this the oldest are dropped (sessiond forgets such an app when its session ends).
MAX_APP_BACKLOG = 16


class LinkEvents:
    """Link methods of Agent (which provides the attributes below)."""

    loop: asyncio.AbstractEventLoop
    link: LinkProtocol | None
    session_id: str
    _token: str
    width: int
    height: int
    drop_log: LogLimiter
    injector: InputInjector
    seamless: Seamless | None
    windows_channel: int | None
    input: InputChannel
    display: DisplayPipeline
    resizes: ResizeCoalescer
    audio: AudioService
    apps: AppLauncher
    usb: UsbService
    transfers: TransferService
    xpra_channels: XpraChannels
    app_backlog: list[LaunchResult | AppExited]  # held for the next link (MAX_APP_BACKLOG)
    log: Callable[[str], None]

    if TYPE_CHECKING:  # provided by Agent (never defined here: MRO)

        def _x_readable(self) -> None: ...

        def schedule_frame(self) -> None: ...

    # -- link ----------------------------------------------------------------
    def link_connected(self, link: LinkProtocol) -> None:
        """A connection reached the socket: it becomes the link only once it
        authenticates (link_authenticated), so a stray connection never costs
        the working link."""

    def link_authenticated(self, link: LinkProtocol) -> None:
        if self.link is link:
            return
        if self.link is not None:
            self.log("a new, authenticated sessiond link replaces the previous one")
            self.link.drop()
        self.link = link
        self.display.closed()
        self.windows_channel = None
        if self.seamless is not None:
            self.seamless.channel_closed()
        self.audio.link_lost()

    def link_lost(self, link: LinkProtocol) -> None:
        if self.link is link:
            self.link = None
            self.injector.release_all()
            self.display.closed()
            self.windows_channel = None
            if self.seamless is not None:
                self.seamless.channel_closed()
            self.audio.link_lost()
            self.usb.reset()
            self.transfers.link_lost()
            self.xpra_channels.link_lost()

    def link_writable(self, link: LinkProtocol) -> None:
        self.schedule_frame()
        self.transfers.writable()

    def handle_event(self, link: LinkProtocol, event: object) -> None:
        """One event from the link, behind the error boundary: a failure
        costs that message (or, for a peer violation, its channel), never
        the link or the session."""
        channel = getattr(event, "channel", 0)
        guard(self.drop_log, link.conn, channel,
              lambda: f"session {self.session_id or '-'}: {type(getattr(event, 'message', event)).__name__}",
              lambda: self._dispatch(link, event))  # fmt: skip
        if isinstance(event, MessageReceived) and self._credited(event):
            # Credit goes back whether or not the message could be handled.
            link.conn.consumed(event.channel, event.wire_size)

    def _credited(self, event: MessageReceived) -> bool:
        """True for the channels whose credit this loop returns (usb returns its own)."""
        return event.channel in (DISPLAY_CHANNEL, INPUT_CHANNEL) or (
            event.channel != 0 and (self.audio.handles(event.kind) or event.kind is ChannelKind.WINDOWS))

    def _dispatch(self, link: LinkProtocol, event: object) -> None:
        if self.usb.handles(link, event) or self.transfers.handles(link, event) or self.xpra_channels.handles(
                link, event):  # fmt: skip
            return
        if isinstance(event, MessageReceived):
            if event.channel == 0:
                self._control(link, event.message)
            elif event.channel == DISPLAY_CHANNEL:
                self._display_message(event.message)
            elif event.channel == INPUT_CHANNEL:
                self.display.typed(event.message)  # a tap's frame ack; a key's echo skips the max_fps slot
                try:
                    self.input.message(event.message)
                finally:
                    self._x_readable()  # flush, and pick up events the requests read in
            elif event.kind is ChannelKind.WINDOWS:
                self._windows_message(event.message)
            elif self.audio.handles(event.kind):
                self.audio.message(link, event.channel, event.message)
        elif isinstance(event, ChannelOpened) and event.by_peer:
            if event.channel == DISPLAY_CHANNEL and event.kind is ChannelKind.DISPLAY:
                self._display_opened(link)
            elif event.kind is ChannelKind.WINDOWS:
                self._windows_opened(link, event.channel)
            elif self.audio.handles(event.kind):
                self.audio.channel_opened(link, event.channel, event.kind)
        elif isinstance(event, MessageRefused):
            self.drop_log(f"session {self.session_id or '-'}: refused a malformed message on channel "
                          f"{event.channel} ({event.kind.name}): {event.message}; that channel is closed")  # fmt: skip
            if event.channel == INPUT_CHANNEL:
                self.injector.release_all()
        elif isinstance(event, ChannelClosed):
            self.audio.channel_closed(event.channel)
            if event.channel == INPUT_CHANNEL:
                self.injector.release_all()  # no key stays down (and auto-repeats) once its client is gone
            if event.channel == DISPLAY_CHANNEL:
                self.display.closed()
                self.resizes.cancel()
            if event.channel == self.windows_channel and self.seamless is not None:
                self.windows_channel = None
                self.seamless.channel_closed()

    def _control(self, link: LinkProtocol, message: object) -> None:
        if isinstance(message, Hello):
            link.conn.hello(capabilities=(), software=SOFTWARE)
        elif isinstance(message, Auth):
            ok = message.method == "link" and compare_digest(message.token.encode(), self._token.encode())
            if ok:
                link.authenticated = True
                self.link_authenticated(link)
                link.conn.send(0, AuthResult(ok=True, session=self.session_id))
                backlog, self.app_backlog = self.app_backlog, []
                for held in backlog:
                    link.conn.send(0, held)
            else:
                link.conn.send(0, AuthResult(ok=False, code=ReasonCode.AUTH_FAILED, message="bad link token"))
                link.conn.close(ReasonCode.AUTH_FAILED, "bad link token")
        elif isinstance(message, SpawnApp):
            self.apps.spawn(message)
        elif isinstance(message, Ping):
            link.conn.send(0, Pong(token=message.token))
        elif isinstance(message, WindowListRequest):
            link.conn.send(0, self._window_list(message.request))

    def _window_list(self, request: int) -> WindowList:
        """A summary of the session's windows for sessiond (sessionctl show)."""
        if self.seamless is None:
            return WindowList(request=request, mode="desktop", windows=(), total=0)
        rows, total = self.seamless.summary()
        windows = tuple(WindowSummary(**row) for row in rows)  # type: ignore[arg-type]
        return WindowList(request=request, mode="seamless", windows=windows, total=total)

    def _report_clocks(self) -> None:
        """While audio-out is open: the audio and video clocks against ours
        (CLOCK_REPORT), so a client can measure their drift."""
        self.loop.call_later(CLOCK_REPORT_SECONDS, self._report_clocks)
        out = self.audio.out
        link = self.link
        if out is None or not out.started or link is None or not link.authenticated:
            return
        link.conn.send(0, ClockReport(agent_us=int(time.monotonic() * 1_000_000), audio_pts=out.pts,
                                      audio_rate=out.encoder.sample_rate, frame_seq=self.display.frame_seq,
                                      frame_us=self.display.last_frame_us))  # fmt: skip
        link.flush()

    def _app_event(self, message: LaunchResult | AppExited) -> None:
        if self.link is not None and self.link.authenticated:
            self.link.conn.send(0, message)
            self.link.flush()
        else:
            self.app_backlog.append(message)
            if len(self.app_backlog) > MAX_APP_BACKLOG:
                dropped = self.app_backlog.pop(0)
                self.drop_log(f"no link to sessiond: dropped {type(dropped).__name__} of pid {dropped.pid}")

    # -- display ---------------------------------------------------------------
    def _display_opened(self, link: LinkProtocol) -> None:
        link.conn.send(DISPLAY_CHANNEL, DesktopSize(width=self.width, height=self.height))
        self.display.opened()

    def _display_message(self, message: object) -> None:
        if isinstance(message, ResizeRequest):
            self.resizes.request(message.width, message.height)
        else:
            self.display.message(message)

    def _windows_opened(self, link: LinkProtocol, channel: int) -> None:
        if self.seamless is None:
            link.conn.close_channel(channel, int(ReasonCode.CHANNEL_KIND_UNAVAILABLE), "the session is in desktop mode")
            return
        self.windows_channel = channel
        def send(message: Message) -> None:
            link.conn.send(channel, message)
            self.loop.call_soon(link.flush)  # a timer's event (WINDOW_CLOSE_UNANSWERED) has no flush behind it

        self.seamless.channel_opened(send)
        link.flush()

    def _windows_message(self, message: Message) -> None:
        if self.seamless is not None and isinstance(message, WINDOW_REQUESTS):
            self.seamless.request(message)
            self._x_readable()  # the WM's requests read events in: handle them now
