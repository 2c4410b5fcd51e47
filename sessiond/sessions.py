# The session supervisor: one session per user, each a sandboxed agent
# process reached over a Unix socket (the "link") that speaks the same frame
# protocol as clients. sessiond relays display/input channels between the
# attached client and the link without decoding pixels, and passes flow
# control credit through: credit the client grants sessiond is granted on to
# the agent, and vice versa, so sessiond never holds more than one window of
# data per channel for a slow client.
"""SessionSupervisor, Session and the agent link."""

from __future__ import annotations

import enum
import json
import os
import secrets
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet import defer, error, protocol
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from isolation.accounts import Account
from isolation.launcher import enter_argv, enter_env, prepare_session_dir, remove_session_dir
from isolation.spec import SandboxSpec, to_json
from protocol.connection import ChannelClosed, ChannelOpened, MessageReceived, Role, WindowUpdated, frame_cost
from protocol.errors import ReasonCode
from protocol.messages import AppExited, Auth, AuthResult, ChannelKind, LaunchResult, Message, SpawnApp
from sessiond.wire import FrameProtocol

if TYPE_CHECKING:
    from sessiond.config import Config

log = Logger()

SOFTWARE = "sessiond 0.1.0"
# Longest line the agent may print on stdout/stderr before it is cut; the
# agent is the user's process, so its output is untrusted.
MAX_AGENT_LINE = 4096
# Client messages held while the agent-side channel is still opening; the
# client's own window bounds this further.
MAX_PENDING_PER_CHANNEL = 1024
# Seconds an agent gets to stop its Xvfb and apps after SIGTERM.
AGENT_STOP_GRACE = 5.0
# Launches in flight per session.
MAX_PENDING_LAUNCHES = 16


class SessionState(enum.Enum):
    STARTING = "starting"
    ACTIVE = "active"
    DISCONNECTED = "disconnected"
    ENDING = "ending"
    ENDED = "ended"


class SessionError(Exception):
    """A session could not be started or is gone."""


class ClientPeer:
    """What a Session needs from the attached client connection."""

    def relay_to_client(self, channel: int, message: Message) -> None:
        raise NotImplementedError  # pragma: no cover - interface

    def grant_to_client(self, channel: int, increment: int) -> None:
        raise NotImplementedError  # pragma: no cover - interface

    def notify(self, message: Message) -> None:
        raise NotImplementedError  # pragma: no cover - interface

    def take_over(self, reason: str) -> None:
        raise NotImplementedError  # pragma: no cover - interface


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
        elif isinstance(event, ChannelOpened) and not event.by_peer:
            session.link_channel_opened(event.channel)
        elif isinstance(event, ChannelClosed):
            session.link_channel_closed(event.channel)
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


class Session:
    """One user's session: agent process, link, attached client, channels."""

    def __init__(self, supervisor: SessionSupervisor, account: Account) -> None:
        self.supervisor = supervisor
        self.config = supervisor.config
        self.account = account
        self.id = secrets.token_hex(8)
        self.link_token = secrets.token_urlsafe(32)
        self.state = SessionState.STARTING
        self.width = int(self.config.get("session", "width"))  # type: ignore[call-overload]
        self.height = int(self.config.get("session", "height"))  # type: ignore[call-overload]
        self.session_dir = ""
        self.process: Any = None
        self.link: AgentLink | None = None
        self.client: ClientPeer | None = None
        self._started: defer.Deferred[Session] = defer.Deferred()
        self._start_timer: Any = None
        self._next_request = 1
        self._launches: dict[int, tuple[defer.Deferred[LaunchResult], str]] = {}
        self._link_open: set[int] = set()
        self._client_channels: dict[int, ChannelKind] = {}
        self._pending: dict[int, list[Message]] = {}
        self.apps: dict[int, str] = {}
        self._terminating = False
        self._kill_timer: Any = None
        self._exit_waiters: list[defer.Deferred[None]] = []

    # -- start-up ------------------------------------------------------------
    def start(self, reactor: Any) -> defer.Deferred[Session]:
        self.reactor = reactor
        runtime = os.path.join(self.config.runtime_dir, "sessions")
        self.session_dir = prepare_session_dir(runtime, self.id, self.account)
        python = str(self.config.get("session", "python"))
        display = self.config.section("display")
        argv = (
            python, "-m", "sessiond.agent",
            "--socket", self.socket_path,
            "--width", str(self.width), "--height", str(self.height),
            "--jpeg-quality", str(display["jpeg_quality"]),
            "--max-fps", str(display["max_fps"]),
            "--frames-in-flight", str(display["frames_in_flight"]),
            "--launch-timeout", str(self.config.get("apps", "launch_timeout")),
        )  # fmt: skip
        env = {
            "PATH": str(self.config.get("session", "path")),
            "LANG": str(self.config.get("session", "lang")),
            "SESSIOND_LINK_TOKEN": self.link_token,
            "SESSIOND_SESSION_ID": self.id,
        }
        spec = SandboxSpec(account=self.account, session_id=self.id, argv=argv, env=env)
        self.process = reactor.spawnProcess(
            AgentProcess(self), python, enter_argv(python), env=enter_env(), path="/",
            childFDs={0: "w", 1: "r", 2: "r"},
        )  # fmt: skip
        self.process.write(to_json(spec))
        self.process.closeStdin()
        timeout = float(self.config.get("session", "start_timeout"))  # type: ignore[arg-type]
        self._start_timer = reactor.callLater(timeout, self._start_timed_out)
        log.info("session {session} starting for {user} (pid {pid})", session=self.id, user=self.account.name,
                 pid=self.process.pid)  # fmt: skip
        return self._started

    @property
    def socket_path(self) -> str:
        return os.path.join(self.session_dir, "agent.sock")

    def agent_ready(self) -> None:
        endpoint = UNIXClientEndpoint(self.reactor, self.socket_path, timeout=5)
        d = endpoint.connect(protocol.Factory.forProtocol(lambda: AgentLink(self)))
        d.addErrback(lambda f: self._fail_start(f"cannot reach the session agent: {f.getErrorMessage()}"))

    def link_ready(self, link: AgentLink) -> None:
        self.link = link
        if self.state is SessionState.STARTING:
            self.state = SessionState.DISCONNECTED
            if self._start_timer is not None and self._start_timer.active():
                self._start_timer.cancel()
            log.info("session {session} ready for {user}", session=self.id, user=self.account.name)
            self._started.callback(self)

    def _start_timed_out(self) -> None:
        self._fail_start("the session agent did not start in time")

    def _fail_start(self, why: str) -> None:
        if self.state is SessionState.STARTING:
            log.error("session {session} failed to start: {why}", session=self.id, why=why)
            self.state = SessionState.ENDING
            self._started.errback(SessionError(why))
            self.terminate()

    # -- lifecycle -------------------------------------------------------------
    def terminate(self) -> defer.Deferred[None]:
        """End the session: SIGTERM the agent (it stops its Xvfb and apps),
        SIGKILL after AGENT_STOP_GRACE; fires once the agent has exited."""
        if self.state is SessionState.ENDED:
            return defer.succeed(None)
        if not self._terminating:
            self._terminating = True
            self.state = SessionState.ENDING
            if self._signal("TERM"):
                self._kill_timer = self.reactor.callLater(AGENT_STOP_GRACE, self._signal, "KILL")
            else:
                self._end()
        d: defer.Deferred[None] = defer.Deferred()
        self._exit_waiters.append(d)
        if self.state is SessionState.ENDED:
            self._fire_exit_waiters()
        return d

    def _signal(self, name: str) -> bool:
        if self.process is None or self.process.pid is None:
            return False
        try:
            self.process.signalProcess(name)
        except error.ProcessExitedAlready:
            return False
        return True

    def agent_exited(self, status: int | None, signal: int | None) -> None:
        log.info("session {session} agent exited (status {status}, signal {signal})",
                 session=self.id, status=status, signal=signal)  # fmt: skip
        if self._kill_timer is not None and self._kill_timer.active():
            self._kill_timer.cancel()
        self._fail_start(f"the session agent exited early (status {status})")
        self._end()
        self._fire_exit_waiters()

    def _fire_exit_waiters(self) -> None:
        waiters, self._exit_waiters = self._exit_waiters, []
        for d in waiters:
            d.callback(None)

    def link_lost(self, link: AgentLink) -> None:
        if self.link is link:
            self.link = None
            self._link_open.clear()
            if self.state is not SessionState.ENDED and not self._terminating:
                log.warn("session {session}: lost the link to its agent; ending the session", session=self.id)
                self.terminate()

    def _end(self) -> None:
        if self.state is SessionState.ENDED:
            return
        self.state = SessionState.ENDED
        for d, _app in self._launches.values():
            d.callback(LaunchResult(request=0, ok=False, code=ReasonCode.SESSION_UNAVAILABLE,
                                    message="the session ended"))  # fmt: skip
        self._launches.clear()
        client, self.client = self.client, None
        if client is not None:
            client.take_over("the session ended")
        if self.link is not None:
            self.link.transport.loseConnection()
        if self.session_dir:
            remove_session_dir(os.path.dirname(self.session_dir), self.id)
        self.supervisor.session_ended(self)

    # -- clients ---------------------------------------------------------------
    def attach(self, client: ClientPeer) -> None:
        """Make CLIENT the session's one connection (taking over any other)."""
        if self.state in (SessionState.ENDED, SessionState.ENDING) or self.link is None:
            raise SessionError("the session has ended")
        previous = self.client
        if previous is not None and previous is not client:
            self.detach(previous)
            previous.take_over("the session was opened from another connection")
        self.client = client
        self.state = SessionState.ACTIVE

    def detach(self, client: ClientPeer) -> None:
        if self.client is not client:
            return
        self.client = None
        if self.state is SessionState.ACTIVE:
            self.state = SessionState.DISCONNECTED
        for channel in list(self._client_channels):
            self.client_channel_closed(channel)

    # -- channel relay ---------------------------------------------------------
    def client_channel_opened(self, channel: int, kind: ChannelKind) -> None:
        if self.link is None:
            return
        self._client_channels[channel] = kind
        self._pending[channel] = []
        if channel not in self._link_open:
            self.link.conn.open_channel(channel, kind)
            self.link.flush()

    def client_channel_closed(self, channel: int) -> None:
        self._client_channels.pop(channel, None)
        self._pending.pop(channel, None)
        if self.link is not None and channel in self._link_open:
            self._link_open.discard(channel)
            self.link.conn.close_channel(channel)
            self.link.flush()

    def link_channel_opened(self, channel: int) -> None:
        self._link_open.add(channel)
        if channel not in self._client_channels and self.link is not None:
            self._link_open.discard(channel)
            self.link.conn.close_channel(channel)
        for message in self._pending.pop(channel, []):
            self._to_agent(channel, message)
        if self.link is not None:
            self.link.flush()

    def link_channel_closed(self, channel: int) -> None:
        self._link_open.discard(channel)

    def from_client(self, channel: int, message: Message) -> None:
        if channel in self._link_open:
            self._to_agent(channel, message)
            if self.link is not None:
                self.link.flush()
            return
        pending = self._pending.get(channel)
        if pending is not None and len(pending) < MAX_PENDING_PER_CHANNEL:
            pending.append(message)
        else:
            log.warn("session {session}: dropped client message on channel {channel}", session=self.id,
                     channel=channel)  # fmt: skip

    def _to_agent(self, channel: int, message: Message) -> None:
        if self.link is not None:
            self.link.conn.send(channel, message)

    def from_agent(self, channel: int, message: Message) -> None:
        if self.client is not None and channel in self._client_channels:
            self.client.relay_to_client(channel, message)
        elif self.link is not None and channel in self._link_open:
            # Nobody to deliver to: hand the credit straight back.
            self.link.conn.grant(channel, frame_cost(message))

    def client_granted(self, channel: int, increment: int) -> None:
        """The client gave sessiond credit on CHANNEL: pass it to the agent."""
        if self.link is not None and channel in self._link_open:
            self.link.conn.grant(channel, increment)
            self.link.flush()

    def agent_granted(self, channel: int, increment: int) -> None:
        if self.client is not None and channel in self._client_channels:
            self.client.grant_to_client(channel, increment)

    # -- apps --------------------------------------------------------------------
    def launch(self, app: str, argv: list[str], cwd: str) -> defer.Deferred[LaunchResult]:
        """Ask the agent to start ARGV; fires with the agent's LaunchResult."""
        if self.link is None:
            return defer.succeed(LaunchResult(request=0, ok=False, code=ReasonCode.SESSION_UNAVAILABLE,
                                              message="the session is not running"))  # fmt: skip
        if len(self._launches) >= MAX_PENDING_LAUNCHES:
            return defer.succeed(LaunchResult(request=0, ok=False, code=ReasonCode.LIMIT_EXCEEDED,
                                              message="too many launches in progress"))  # fmt: skip
        request = self._next_request
        self._next_request += 1
        d: defer.Deferred[LaunchResult] = defer.Deferred()
        self._launches[request] = (d, app)
        self.link.conn.send(0, SpawnApp(request=request, app=app, argv=tuple(argv), cwd=cwd))
        self.link.flush()
        return d

    def launch_finished(self, result: LaunchResult) -> None:
        entry = self._launches.pop(result.request, None)
        if entry is not None:
            d, app = entry
            if result.ok:
                self.apps[result.pid] = app
            d.callback(result)

    def app_exited(self, message: AppExited) -> None:
        self.apps.pop(message.pid, None)
        if self.client is not None:
            self.client.notify(message)

    def describe(self) -> dict[str, object]:
        return {"id": self.id, "user": self.account.name, "state": self.state.value,
                "width": self.width, "height": self.height}  # fmt: skip


class SessionSupervisor:
    """Owns every session; one per user (a second login resumes it)."""

    def __init__(self, config: Config, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self.sessions: dict[str, Session] = {}
        self._starting: dict[str, defer.Deferred[Session]] = {}

    def get_or_start(self, account: Account) -> defer.Deferred[Session]:
        """The user's running session, or a new one once its agent is up."""
        existing = self.sessions.get(account.name)
        if existing is not None and existing.state in (SessionState.ACTIVE, SessionState.DISCONNECTED) \
                and existing.link is not None:
            return defer.succeed(existing)
        waiting = self._starting.get(account.name)
        if waiting is not None:
            d: defer.Deferred[Session] = defer.Deferred()
            waiting.addBoth(_chain_to(d))
            return d
        session = Session(self, account)
        self.sessions[account.name] = session
        started = session.start(self.reactor)
        self._starting[account.name] = started

        def done(result: Any) -> Any:
            self._starting.pop(account.name, None)
            return result

        started.addBoth(done)
        out: defer.Deferred[Session] = defer.Deferred()
        started.addBoth(_chain_to(out))
        return out

    def session_ended(self, session: Session) -> None:
        if self.sessions.get(session.account.name) is session:
            del self.sessions[session.account.name]

    def stop_all(self) -> defer.Deferred[object]:
        """Terminate every session; fires when all agents have exited."""
        return defer.DeferredList([s.terminate() for s in list(self.sessions.values())])

    def describe(self) -> str:
        return json.dumps([s.describe() for s in self.sessions.values()])


def _chain_to(d: defer.Deferred[Any]) -> Callable[[Any], Any]:
    def chain(result: Any) -> Any:
        if isinstance(result, Failure):
            d.errback(result)
            return None
        d.callback(result)
        return result

    return chain
