# sessiond's side of one session agent: the process (READY on stdout, its
# stderr to the log until it switches to its own log file) and the
# Unix-socket link speaking the frame protocol, on which sessiond is the
# CLIENT role and authenticates with the session's link token.
#
# The link's Connection relays display, input, audio and URB frames
# undecoded (sessiond.relay.relayed); only control messages and the USB
# control messages policy needs are decoded. A failure handling one event
# from the agent costs that channel (closed for the client with a reason),
# never the link: losing the link ends the user's session.
"""AgentLink, AgentProcess and the LinkOwner they report to."""

from __future__ import annotations

import socket
import struct

from typing import Any, Callable, Protocol

from twisted.internet import protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from protocol.connection import ChannelClosed, ChannelOpened, Connection, MessageReceived, Role, WindowUpdated
from protocol.errors import ReasonCode
from protocol.events import FrameReceived
from protocol.messages import AppExited, Auth, AuthResult, ClockReport, LaunchResult, Message
from protocol.windows_admin import WindowList
from protocol.xpra import UserActivity
from sessiond.relay import ChannelRelay, relayed
from sessiond.session_windows import WindowLister
from transport.twisted_wire import FrameProtocol

log = Logger()

SOFTWARE = "sessiond 0.1.0"
# Longest line the agent may print on stdout/stderr before it is cut; the
# agent is the user's process, so its output is untrusted.
MAX_AGENT_LINE = 4096


def peer_uid(transport: Any) -> int | None:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED,
    from the kernel: what it was when it connect()ed or listen()ed), or None."""
    try:
        sock = transport.getHandle()
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class LinkOwner(Protocol):
    """What the link and the process watcher report to (a Session)."""

    id: str
    link_token: str
    uid: int
    relay: ChannelRelay

    def agent_ready(self) -> None: ...

    def agent_exited(self, status: int | None, signal: int | None) -> None: ...

    def link_ready(self, link: AgentLink) -> None: ...

    def link_lost(self, link: AgentLink) -> None: ...

    def launch_finished(self, result: LaunchResult) -> None: ...

    def app_exited(self, message: AppExited) -> None: ...

    def forward_to_client(self, message: Message) -> None: ...

    def touch(self, idle: float = 0.0) -> None: ...

    @property
    def window_lister(self) -> WindowLister: ...


class AgentLink(FrameProtocol):
    """sessiond's end of the Unix-socket link to one session agent."""

    role = Role.CLIENT

    def __init__(self, session: LinkOwner, credentials: Callable[[Any], int | None] = peer_uid) -> None:
        super().__init__()
        self.session = session
        self._peer_uid = credentials  # tests on in-memory transports pass their own

    def make_connection(self) -> Connection:
        return Connection(self.role, relay=relayed)

    def on_connected(self) -> None:
        # The socket lives in a directory the session user owns: they could put
        # something else there (a symlink to another user's agent socket). The
        # kernel says who listens at the other end; only the session's own
        # user will do, before a token is sent or anything is believed.
        uid = self._peer_uid(self.transport)
        if uid != self.session.uid:
            log.error("session {session}: the agent socket is served by uid {uid}, not the session's uid "
                      "{expected}; refusing the link", session=self.session.id, uid=uid, expected=self.session.uid)
            self.drop()
            return
        self.conn.hello(capabilities=(), software=SOFTWARE)
        self.conn.send(0, Auth(method="link", token=self.session.link_token))
        self.flush()

    def event_received(self, event: object) -> None:
        session, relay = self.session, self.session.relay
        if isinstance(event, FrameReceived):
            relay.from_agent(event.channel, event.type, event.payload, None, event.wire_size)
        elif isinstance(event, MessageReceived):
            message = event.message
            if event.channel != 0:
                relay.from_agent(event.channel, message.TYPE, b"", message, event.wire_size)
            elif isinstance(message, AuthResult):
                if message.ok:
                    session.link_ready(self)
                else:
                    self.close(ReasonCode.AUTH_FAILED, "agent refused the link token")
            elif isinstance(message, LaunchResult):
                session.launch_finished(message)
            elif isinstance(message, AppExited):
                session.app_exited(message)
            elif isinstance(message, ClockReport):
                session.forward_to_client(message)
            elif isinstance(message, WindowList):
                session.window_lister.answered(message)
            elif isinstance(message, UserActivity):  # input through xpra (sessiond.agent.x_activity)
                session.touch(message.idle_ms / 1000)
        elif isinstance(event, ChannelOpened) and not event.by_peer:
            relay.link_channel_opened(event.channel)
        elif isinstance(event, ChannelClosed):
            relay.link_channel_closed(event.channel, event.code, event.message, by_agent=event.by_peer)
        elif isinstance(event, WindowUpdated):
            relay.agent_granted(event.channel, event.increment)

    def event_failed(self, event: object, exc: Exception) -> None:
        """One event from the agent failed: log it and close its channel; the link stays."""
        channel = getattr(event, "channel", 0)
        log.failure("session {session} of {user}: handling {event} from the agent on channel {channel} failed",
                    session=self.session.id, user=self.session.relay.user, event=type(event).__name__,
                    channel=channel)  # fmt: skip
        if channel:
            self.session.relay.fail_channel(channel, ReasonCode.INTERNAL_ERROR, "internal error in the session relay")

    def on_lost(self, reason: Failure) -> None:
        self.session.link_lost(self)


class AgentProcess(protocol.ProcessProtocol):
    """Watches the agent process: READY on stdout, stderr to the log."""

    def __init__(self, session: LinkOwner) -> None:
        self.session = session
        self._out = b""
        self._err = b""

    def outReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted name
        self._out = self._lines(self._out + data, self._stdout_line)

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self._err = self._lines(self._err + data, self._stderr_line)

    def _lines(self, buffer: bytes, handler: Callable[[str], None]) -> bytes:
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            handler(line[:MAX_AGENT_LINE].decode("utf-8", "replace"))
        if len(buffer) > MAX_AGENT_LINE:
            handler(buffer[:MAX_AGENT_LINE].decode("utf-8", "replace"))
            buffer = b""
        return buffer

    def _stdout_line(self, line: str) -> None:
        if line == "READY":
            self.session.agent_ready()
        else:
            log.info("agent {session}: {line}", session=self.session.id, line=line)

    def _stderr_line(self, line: str) -> None:
        log.info("agent {session} stderr: {line}", session=self.session.id, line=line)

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        status = getattr(reason.value, "exitCode", None)
        signal = getattr(reason.value, "signal", None)
        self.session.agent_exited(status, signal)
