# The thin client's connection: TLS 1.3 with a pinned server certificate,
# then HELLO, login, and the display/input channels. Each request returns a
# Deferred (the requests and their errors: session_requests.py); the
# framebuffer is reconstructed from the display channel and
# every frame is acknowledged after it is drawn (that acknowledgement is
# what paces the server): at once when FRAME_END says ack_now, else held
# and sent with the next write (a keystroke), in the same TLS record; acks
# are cumulative, so one answers every frame before it. In seamless mode the windows channel describes the
# session's windows and client.windows keeps one framebuffer per window.
"""SessionClient: one connection to sessiond, Deferred-based."""

from __future__ import annotations

from typing import Any, Callable

from cryptography.hazmat.primitives import serialization
from twisted.internet import defer, interfaces, ssl
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.python.failure import Failure
from zope.interface import implementer

from client.frame_acks import FrameAcks
from client.frame_hold import FrameHold, FrameTooLarge
from client.framebuffer import Framebuffer, RegionError
from client.known_hosts import KnownHosts
from client.session_requests import DISPLAY, INPUT, ConnectionEnded, RemoteError, SessionRequests
from client.session_requests import Redirected as Redirected  # re-exported: callers import it from here
from client.window_client import WindowsMixin
from client.windows import WindowTable
from protocol.connection import (
    ChannelClosed,
    ChannelOpened,
    ConnectionClosed,
    MessageReceived,
    Role,
    WindowUpdated,
    frame_cost,
)
from protocol.control_session import APPS_CHANGED_CAPABILITY
from protocol.errors import ReasonCode
from protocol.limits import ALPN
from protocol.media import CAPS_GLYPHS, CAPS_H264, CAPS_TILE
from protocol.messages import (
    ChannelKind,
    ClockReport,
    DesktopSize,
    FrameEnd,
    Hello,
    Message,
    Region,
    SessionInfo,
)
from protocol.windows import WindowTarget
from transport.tls import fingerprint
from transport.twisted_wire import FrameProtocol

SOFTWARE = "svclient 0.1.0"
CAPABILITIES = ("display.raw-lz4", "display.png", "display.jpeg", "display.fill", "display.copy", "display.palette",
                "input.keysym", "input.key-tap", "display.tile", APPS_CHANGED_CAPABILITY)
# CLOCK_REPORTs kept (one a second while audio-out is open).
MAX_CLOCK_REPORTS = 3600
WINDOWS = int(ChannelKind.WINDOWS)


@implementer(interfaces.IHandshakeListener)
class SessionClient(SessionRequests, WindowsMixin, FrameAcks, FrameProtocol):
    """Client side of the native protocol."""

    role = Role.CLIENT
    remote_error = RemoteError
    capabilities: tuple[str, ...] = CAPABILITIES  # said in HELLO (svclient launch adds LAUNCH_BESIDE)

    def __init__(self, server: str, known_hosts: KnownHosts, on_new_host: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.server = server
        self.known_hosts = known_hosts
        self.on_new_host = on_new_host
        self.ready: defer.Deferred[Hello] = defer.Deferred()
        self.ended: defer.Deferred[ConnectionEnded] = defer.Deferred()
        self.framebuffer: Framebuffer | None = None
        self.windows = WindowTable()
        self._replay_waiter: defer.Deferred[Any] | None = None
        self.session_info: SessionInfo | None = None
        self.last_frame = 0
        self._waiters: list[tuple[Callable[[Message], bool], defer.Deferred[Any]]] = []
        self._frame_waiters: list[defer.Deferred[int]] = []
        self._channel_waiters: dict[int, defer.Deferred[None]] = {}
        # channel -> handler of its messages (None: the channel closed); the handler's channel gets credit back.
        self.channel_handlers: dict[int, Callable[[Message | None], None]] = {}
        # channel -> called when the server grants credit on it (paced senders: file upload).
        self.credit_handlers: dict[int, Callable[[], None]] = {}
        # Called with every display-channel message once it is applied (the viewer's damage tracking).
        self.display_observers: list[Callable[[Message], None]] = []
        # Called before a display message that may write pixels is applied (the viewer's FrameGate turn).
        self.display_gate: Callable[[], None] | None = None
        # True: a frame's display messages are held until its FRAME_END and applied then, all at
        # once (client/frame_hold.py: the viewer paints from the memory meanwhile); bounded in bytes.
        self.hold_frames = False
        self.frame_hold = FrameHold()
        self._sync_seq = 0
        # The session's latest CLOCK_REPORTs (audio/video clocks), newest last.
        self.clock_reports: list[ClockReport] = []
        self._end: ConnectionEnded | None = None
        self._login_launch: defer.Deferred[Any] | None = None  # the last login's launch's answer
        # VIDEO_CAPS bits sent when the display channel opens (0: no video, stills only).
        self.video_codecs = CAPS_H264 | CAPS_TILE | CAPS_GLYPHS

    def display_opened(self) -> None:
        """A new display channel: its glyph cache starts empty (and no TILE colours are known)."""
        super().display_opened()
        self.windows.glyph_cache.reset()
        self.frame_hold.clear()  # the last channel's frame will never end

    # -- TLS ---------------------------------------------------------------------
    def handshakeCompleted(self) -> None:  # noqa: N802 - Twisted name
        cert = self.transport.getPeerCertificate()
        if cert is None:
            self._fail(ConnectionEnded(ReasonCode.PROTOCOL_ERROR, "the server sent no certificate"))
            return
        der = cert.to_cryptography().public_bytes(serialization.Encoding.DER)
        try:
            known = self.known_hosts.check(self.server, fingerprint(der))
        except Exception as exc:  # noqa: BLE001 - HostKeyMismatch or a bad file: refuse before sending anything
            self._fail(exc)
            return
        if not known and self.on_new_host is not None:
            self.on_new_host(fingerprint(der))
        self._waiters.append((lambda m: isinstance(m, Hello), self.ready))
        self.conn.hello(capabilities=self.capabilities, software=SOFTWARE)
        self.flush()

    def _fail(self, exc: Exception) -> None:
        self._lost = True
        self.transport.abortConnection()
        self._error_all(exc)

    # -- events --------------------------------------------------------------------
    def event_received(self, event: object) -> None:
        """One event from the server, behind the client's error boundary: a
        message the client cannot handle closes the connection with a reason
        code (the server, or a man in the middle, is misbehaving); it never
        raises into the reactor."""
        try:
            self._event(event)
        except Exception as exc:  # noqa: BLE001 - the boundary of one message
            what = type(getattr(event, "message", event)).__name__
            self.refuse(ReasonCode.INTERNAL_ERROR, f"cannot handle {what}: {type(exc).__name__}: {exc}")

    def refuse(self, code: ReasonCode, message: str) -> None:
        """Close the connection because of what the server sent: CLOSE with
        CODE goes out, and every waiter (and `ended`) sees ConnectionEnded(CODE)."""
        if self._end is None:
            self._end = ConnectionEnded(code, message)
        self.close(code, message)
        self._error_all(self._end)

    def _channel_failed(self, channel: int, exc: Exception) -> None:
        """A channel's handler could not take a message (an undecodable audio
        packet, a USB reply that breaks the rules): close that channel with a
        reason code, and tell its handler it is closed (None)."""
        code = ReasonCode.MALFORMED_MESSAGE if isinstance(exc, ValueError) else ReasonCode.INTERNAL_ERROR
        text = f"{type(exc).__name__}: {exc}"
        self.log.warn("closing channel {channel}: {code} {text}", channel=channel, code=code.name, text=text)
        handler = self.channel_handlers.pop(channel, None)
        if channel in self.conn.open_channels():
            self.conn.close_channel(channel, code, text)
            self.flush()
        if handler is not None:
            handler(None)

    def _event(self, event: object) -> None:
        if isinstance(event, MessageReceived):
            if event.channel == DISPLAY:
                self._display_received(event.message)
            elif event.channel == INPUT:
                self.conn.consumed(INPUT, frame_cost(event.message))
                self._deliver(event.message)
            elif event.channel in self.channel_handlers:
                try:
                    self.channel_handlers[event.channel](event.message)
                except Exception as exc:  # noqa: BLE001 - one channel's boundary: it costs that channel
                    self._channel_failed(event.channel, exc)
                self.conn.consumed(event.channel, frame_cost(event.message))
            else:
                if isinstance(event.message, SessionInfo):
                    self.session_info = event.message
                elif isinstance(event.message, ClockReport):
                    self.clock_reports.append(event.message)
                    del self.clock_reports[:-MAX_CLOCK_REPORTS]
                self._deliver(event.message)
        elif isinstance(event, WindowUpdated):
            on_credit = self.credit_handlers.get(event.channel)
            if on_credit is not None:
                on_credit()
        elif isinstance(event, ChannelOpened) and not event.by_peer:
            waiter = self._channel_waiters.pop(event.channel, None)
            if waiter is not None:
                waiter.callback(None)
        elif isinstance(event, ChannelClosed):
            handler = self.channel_handlers.pop(event.channel, None)
            if handler is not None:
                handler(None)
            waiter = self._channel_waiters.pop(event.channel, None)
            if waiter is not None:
                waiter.errback(RemoteError(event.code, event.message or "channel refused"))

    def _display_received(self, wire_message: Message) -> None:
        """One display-channel message: drawn now, or (hold_frames) kept until its frame's
        FRAME_END, which draws every message kept and then itself."""
        cost = frame_cost(wire_message)
        if self.hold_frames and not self._hold_display(wire_message, cost):
            return
        for message in self._unfold(wire_message):
            if self.hold_frames and not isinstance(message, FrameEnd):
                self.frame_hold.hold(message)
                continue
            for held in self.frame_hold.release():
                self._apply_display(held)
                if self._end is not None:  # a held message was refused: the connection is closed
                    return
            self._apply_display(message)
        self.conn.consumed(DISPLAY, cost)

    def _hold_display(self, message: Message, cost: int) -> bool:
        """Reserve COST bytes of the frame being held for MESSAGE (hold_frames); False
        if that crossed MAX_HELD_FRAME_BYTES: the connection is closed (LIMIT_EXCEEDED)."""
        if isinstance(message, FrameEnd):
            return True
        try:
            self.frame_hold.reserve(cost)
        except FrameTooLarge as exc:
            self.frame_hold.clear()
            self.refuse(ReasonCode.LIMIT_EXCEEDED, str(exc))
            return False
        return True

    def _apply_display(self, message: Message) -> None:
        """Draw one display message: the viewer's gate turn first, its observers after."""
        if self.display_gate is not None and isinstance(message, (Region, DesktopSize, WindowTarget)):
            self.display_gate()
        self._display(message)
        for observer in self.display_observers:  # after the message is applied (client/viewer)
            observer(message)

    def _deliver(self, message: Message) -> None:
        for index, (matches, d) in enumerate(self._waiters):
            if matches(message):
                del self._waiters[index]
                d.callback(message)
                return

    def _display(self, message: Message) -> None:
        if isinstance(message, DesktopSize):
            try:  # the size is checked (MAX_FRAMEBUFFER_SIDE) before anything is allocated
                if self.framebuffer is None:
                    self.framebuffer = Framebuffer(message.width, message.height, self.windows.glyph_cache)
                else:
                    self.framebuffer.resize(message.width, message.height)
            except RegionError as exc:
                self.refuse(ReasonCode.LIMIT_EXCEEDED, f"desktop size refused: {exc}")
                return
            self._deliver(message)  # answers resize()
        elif isinstance(message, WindowTarget):
            try:
                self.windows.target(message)
            except RegionError as exc:
                self.refuse(ReasonCode.LIMIT_EXCEEDED, f"window size refused: {exc}")
        elif isinstance(message, Region):
            try:
                if self.windows.region(message):
                    return
            except RegionError as exc:
                self.refuse(ReasonCode.MALFORMED_MESSAGE, f"bad window region: {exc}")
                return
            if self.framebuffer is None:
                self.refuse(ReasonCode.UNEXPECTED_MESSAGE, "region before desktop size")
                return
            try:
                self.framebuffer.apply(message)
            except RegionError as exc:
                self.refuse(ReasonCode.MALFORMED_MESSAGE, f"bad region: {exc}")
        elif isinstance(message, FrameEnd):
            self.windows.frame_end()
            self._frame_ended(message)
            self.flush()
            waiters, self._frame_waiters = self._frame_waiters, []
            for d in waiters:
                d.callback(message.seq)

    def on_closed(self, event: ConnectionClosed) -> None:
        self._end = ConnectionEnded(event.code, event.message)
        self._error_all(self._end)

    def on_lost(self, reason: Failure) -> None:
        end = self._end or ConnectionEnded(ReasonCode.NORMAL, f"connection lost: {reason.getErrorMessage()}")
        self._error_all(end)
        if not self.ended.called:
            self.ended.callback(end)

    def _error_all(self, exc: Exception) -> None:
        waiters = [d for _m, d in self._waiters] + self._frame_waiters + list(self._channel_waiters.values())
        self._waiters, self._frame_waiters, self._channel_waiters = [], [], {}
        if not self.ready.called and self.ready not in waiters:
            waiters.append(self.ready)
        for d in waiters:
            if not d.called:
                d.errback(exc)


def client_tls_options() -> ssl.CertificateOptions:
    """TLS 1.3 only; certificate checked by pin in handshakeCompleted."""
    return ssl.CertificateOptions(
        verify=False,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_3,
        acceptableProtocols=[ALPN.encode("ascii")],
    )


async def connect(reactor: Any, host: str, port: int, known_hosts: KnownHosts,
                  on_new_host: Callable[[str], None] | None = None, timeout: float = 10.0,
                  capabilities: tuple[str, ...] = CAPABILITIES) -> SessionClient:  # fmt: skip
    """Connect, verify the pinned certificate, exchange HELLO (saying `capabilities`)."""
    from twisted.internet.protocol import Factory

    server = f"{host}:{port}"
    client = SessionClient(server, known_hosts, on_new_host)
    client.capabilities = capabilities
    endpoint = wrapClientTLS(client_tls_options(), HostnameEndpoint(reactor, host, port, timeout=timeout))
    await endpoint.connect(Factory.forProtocol(lambda: client))
    await client.ready
    return client


async def with_timeout(reactor: Any, d: Any, seconds: float, what: str) -> Any:
    """Await D (a Deferred or coroutine), failing with a readable
    ConnectionEnded(TIMEOUT) after SECONDS."""
    deferred = defer.ensureDeferred(d) if not isinstance(d, defer.Deferred) else d
    deferred.addTimeout(seconds, reactor)
    try:
        return await deferred
    except defer.TimeoutError as exc:
        raise ConnectionEnded(ReasonCode.TIMEOUT, f"timed out waiting for {what}") from exc
