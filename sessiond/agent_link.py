# sessiond's side of one session agent: the process (READY on stdout, its
# stderr to the log until it switches to its own log file) and the
# Unix-socket link speaking the frame protocol, on which sessiond is the
# CLIENT role and authenticates with the session's link token.
"""AgentLink and AgentProcess."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from twisted.internet import protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from protocol.connection import ChannelClosed, ChannelOpened, MessageReceived, Role, WindowUpdated
from protocol.errors import ReasonCode
from protocol.messages import AppExited, Auth, AuthResult, ClockReport, LaunchResult
from transport.twisted_wire import FrameProtocol

if TYPE_CHECKING:
    from sessiond.sessions import Session

log = Logger()

SOFTWARE = "sessiond 0.1.0"
# Longest line the agent may print on stdout/stderr before it is cut; the
# agent is the user's process, so its output is untrusted.
MAX_AGENT_LINE = 4096


class AgentLink(FrameProtocol):
    """sessiond's end of the Unix-socket link to one session agent."""

    role = Role.CLIENT

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def on_connected(self) -> None:
        self.conn.hello(capabilities=(), software=SOFTWARE)
        self.conn.send(0, Auth(method="link", token=self.session.link_token))
        self.flush()

    def event_received(self, event: object) -> None:
        session = self.session
        if isinstance(event, MessageReceived):
            message = event.message
            if event.channel != 0:
                session.from_agent(event.channel, message)
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
        elif isinstance(event, ChannelOpened) and not event.by_peer:
            session.link_channel_opened(event.channel)
        elif isinstance(event, ChannelClosed):
            session.link_channel_closed(event.channel, event.code, event.message, by_agent=event.by_peer)
        elif isinstance(event, WindowUpdated):
            session.agent_granted(event.channel, event.increment)

    def on_lost(self, reason: Failure) -> None:
        self.session.link_lost(self)


class AgentProcess(protocol.ProcessProtocol):
    """Watches the agent process: READY on stdout, stderr to the log."""

    def __init__(self, session: Session) -> None:
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
