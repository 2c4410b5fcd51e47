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
import signal as signals
import time
from typing import TYPE_CHECKING, Any, Callable, Protocol

from twisted.internet import defer, error, protocol
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from isolation.accounts import Account
from isolation.launcher import enter_argv, enter_env, prepare_session_dir, remove_session_dir
from isolation.limits import limits_from_settings, resolve_limits
from isolation.sandbox import CgroupError, Sandbox, create_sandbox, open_sandbox
from isolation.spec import to_json
from protocol.connection import frame_cost
from protocol.errors import ReasonCode
from protocol.messages import AppExited, ChannelKind, LaunchResult, Message, SpawnApp
from sessiond.agent_link import AgentLink, AgentProcess
from sessiond.procwatch import PidWatcher, process_matches, tree_usage
from sessiond.registry import Registry, SessionRecord
from sessiond.usb_policy import UsbGate, UsbPolicy, UsbPolicyWatcher

if TYPE_CHECKING:
    from sessiond.config import Config

log = Logger()

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


class ClientPeer(Protocol):
    """What a Session needs from the attached client connection."""

    def relay_to_client(self, channel: int, message: Message) -> None: ...

    def grant_to_client(self, channel: int, increment: int) -> None: ...

    def notify(self, message: Message) -> None: ...

    def take_over(self, reason: str) -> None: ...

    def close_client_channel(self, channel: int, code: int, message: str) -> None: ...


class Session:
    """One user's session: agent process, link, attached client, channels."""

    sandbox: Sandbox | None = None  # the session's cgroup (isolation.sandbox)

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
        self.usb = UsbGate(self, supervisor.usb_policy)  # device policy on the usb channel
        self.registry: Registry = supervisor.registry
        self.created = time.time()
        self.last_connect: float | None = None
        self.last_disconnect: float | None = None
        self.last_input = self.created
        self.client_address = ""
        self.agent_pid: int | None = None
        self._watcher: PidWatcher | None = None
        self._terminating = False
        self._kill_timer: Any = None
        self._exit_waiters: list[defer.Deferred[None]] = []

    # -- start-up ------------------------------------------------------------
    def start(self, reactor: Any) -> defer.Deferred[Session]:
        self.reactor = reactor
        runtime = os.path.join(self.config.runtime_dir, "sessions")
        self.session_dir = prepare_session_dir(runtime, self.id, self.account)
        self.registry.add_session(id=self.id, user=self.account.name, uid=self.account.uid, socket=self.socket_path,
                                  session_dir=self.session_dir, link_token=self.link_token, width=self.width,
                                  height=self.height)  # fmt: skip
        python = str(self.config.get("session", "python"))
        display = self.config.section("display")
        argv = (
            python, "-m", "sessiond.agent",
            "--socket", self.socket_path,
            "--width", str(self.width), "--height", str(self.height),
            "--max-width", str(self.config.get("session", "max_width")),
            "--max-height", str(self.config.get("session", "max_height")),
            "--jpeg-quality", str(display["jpeg_quality"]),
            "--max-fps", str(display["max_fps"]),
            "--frames-in-flight", str(display["frames_in_flight"]),
            "--display-max-kbps", str(display["max_kbps"]),
            "--audio-max-kbps", str(self.config.get("audio", "max_kbps")),
            "--launch-timeout", str(self.config.get("apps", "launch_timeout")),
        )  # fmt: skip
        env = {
            "PATH": str(self.config.get("session", "path")),
            "LANG": str(self.config.get("session", "lang")),
            "SESSIOND_LINK_TOKEN": self.link_token,
            "SESSIOND_SESSION_ID": self.id,
        }
        settings = self.config.section("session")
        overrides = self.config.section("limits")
        limits = resolve_limits(limits_from_settings(settings), self.account,
                                users=overrides["users"], groups=overrides["groups"])  # type: ignore[arg-type]
        try:
            self.sandbox = create_sandbox(self.id, limits)
        except CgroupError as exc:
            log.error("session {session}: cannot create its sandbox: {why}", session=self.id, why=str(exc))
            self.set_state(SessionState.ENDING)
            self._end()
            return defer.fail(SessionError("the session sandbox could not be created; see the server log"))
        spec = self.sandbox.spec(self.account, argv, env, network=str(settings["network"]),
                                 hostname=str(settings["hostname"]))
        self.process = reactor.spawnProcess(
            AgentProcess(self), python, enter_argv(python), env=enter_env(), path="/",
            childFDs={0: "w", 1: "r", 2: "r"},
        )  # fmt: skip
        self.process.write(to_json(spec))
        self.process.closeStdin()
        self.agent_pid = self.process.pid
        timeout = float(self.config.get("session", "start_timeout"))  # type: ignore[arg-type]
        self._start_timer = reactor.callLater(timeout, self._start_timed_out)
        log.info("session {session} starting for {user} (pid {pid})", session=self.id, user=self.account.name,
                 pid=self.process.pid)  # fmt: skip
        return self._started

    def adopt(self, reactor: Any, record: SessionRecord) -> defer.Deferred[Session]:
        """Take over a session a previous sessiond started (after a restart).

        The agent must still be alive (pid, cmdline) and accept the stored
        link token; otherwise the session is ended and its leftovers removed.
        """
        self.reactor = reactor
        self.id, self.link_token, self.session_dir = record.id, record.link_token, record.session_dir
        self.width, self.height, self.created = record.width, record.height, record.created
        self.last_connect, self.last_disconnect = record.last_connect, record.last_disconnect
        self.client_address = record.client_address
        self.agent_pid = record.agent_pid
        self.apps = {int(pid): app for pid, app in record.apps.items()}
        timeout = float(self.config.get("session", "start_timeout"))  # type: ignore[arg-type]
        self._start_timer = reactor.callLater(timeout, self._start_timed_out)
        if self.agent_pid is None or not process_matches(self.agent_pid, self.account.uid, self.id):
            reactor.callLater(0, self._fail_start, "its agent is no longer running")
            return self._started
        self._watcher = PidWatcher(reactor, self.agent_pid, lambda: self.agent_exited(None, None))
        log.info("session {session} of {user}: re-adopting agent pid {pid}", session=self.id,
                 user=self.account.name, pid=self.agent_pid)  # fmt: skip
        self.agent_ready()
        return self._started

    def set_state(self, state: SessionState, **fields: Any) -> None:
        """Change the state in memory and in the registry."""
        self.state = state
        self.registry.update_session(self.id, state=state.value, **fields)

    def touch(self) -> None:
        """The user did something (input): resets the idle timers."""
        self.last_input = time.time()

    def usage(self) -> tuple[int, float]:
        """(memory bytes, CPU seconds) of the session's processes.

        From the session's cgroup (which bills tmpfs, Xvfb and every app);
        the agent's /proc process tree where there is no cgroup.
        """
        if self.sandbox is None and self.agent_pid is not None:
            self.sandbox = open_sandbox(self.id)  # re-adopted after a restart
        if self.sandbox is not None and not self.sandbox.destroyed:
            used = self.sandbox.usage()
            return used.memory_bytes, used.cpu_seconds
        if self.agent_pid is None:
            return 0, 0.0
        return tree_usage(self.agent_pid)

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
            self.set_state(SessionState.DISCONNECTED, agent_pid=self.agent_pid)
            if self._start_timer is not None and self._start_timer.active():
                self._start_timer.cancel()
            log.info("session {session} ready for {user}", session=self.id, user=self.account.name)
            self._started.callback(self)

    def _start_timed_out(self) -> None:
        self._fail_start("the session agent did not start in time")

    def _fail_start(self, why: str) -> None:
        if self.state is SessionState.STARTING:
            log.error("session {session} failed to start: {why}", session=self.id, why=why)
            self.set_state(SessionState.ENDING)
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
            self.set_state(SessionState.ENDING)
            if self._signal("TERM"):
                self._kill_timer = self.reactor.callLater(AGENT_STOP_GRACE, self._signal, "KILL")
            else:
                self._end()
        d: defer.Deferred[None] = defer.Deferred()
        self._exit_waiters.append(d)
        if self.state is SessionState.ENDED:
            self._fire_exit_waiters()
        return d

    def release(self) -> None:
        """sessiond is stopping but the session stays: drop the link quietly."""
        self._terminating = True
        if self.client is not None:
            self.client.take_over("sessiond is restarting; reconnect to resume your session")
            self.client = None
        if self.link is not None and self.link.transport is not None:
            self.link.drop()
        if self.state is SessionState.ACTIVE:
            self.set_state(SessionState.DISCONNECTED, last_disconnect=time.time())
        if self._watcher is not None:
            self._watcher.stop()

    def _signal(self, name: str) -> bool:
        if self.process is not None:
            if self.process.pid is None:
                return False
            try:
                self.process.signalProcess(name)
            except error.ProcessExitedAlready:
                return False
            return True
        if self.agent_pid is None or self._watcher is None:
            return False
        try:
            os.kill(self.agent_pid, getattr(signals, f"SIG{name}"))
        except ProcessLookupError:
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
        self.set_state(SessionState.ENDED, ended=time.time())
        if self._watcher is not None:
            self._watcher.stop()
        for d, _app in self._launches.values():
            d.callback(LaunchResult(request=0, ok=False, code=ReasonCode.SESSION_UNAVAILABLE,
                                    message="the session ended"))  # fmt: skip
        self._launches.clear()
        client, self.client = self.client, None
        if client is not None:
            client.take_over("the session ended")
        if self.link is not None:
            self.link.drop()
        if self.session_dir:
            remove_session_dir(os.path.dirname(self.session_dir), self.id)
        self._destroy_sandbox()
        self.supervisor.session_ended(self)

    def _destroy_sandbox(self) -> None:
        """Kill every process left in the session's cgroup and remove it."""
        sandbox = self.sandbox if self.sandbox is not None else open_sandbox(self.id)
        if sandbox is None:
            return
        try:
            sandbox.destroy()
        except CgroupError as exc:
            log.error("session {session}: sandbox cleanup failed: {why}", session=self.id, why=str(exc))

    # -- clients ---------------------------------------------------------------
    def attach(self, client: ClientPeer, address: str = "") -> None:
        """Make CLIENT the session's one connection (taking over any other)."""
        if self.state in (SessionState.ENDED, SessionState.ENDING) or self.link is None:
            raise SessionError("the session has ended")
        previous = self.client
        if previous is not None and previous is not client:
            self.detach(previous)
            previous.take_over("the session was opened from another connection")
        self.client = client
        self.client_address = address
        self.last_connect = self.last_input = time.time()
        self.set_state(SessionState.ACTIVE, last_connect=self.last_connect, client_address=address)

    def detach(self, client: ClientPeer) -> None:
        if self.client is not client:
            return
        self.client = None
        if self.state is SessionState.ACTIVE:
            self.last_disconnect = time.time()
            self.set_state(SessionState.DISCONNECTED, last_disconnect=self.last_disconnect)
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
        self.usb.channel_closed(channel)
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

    def link_channel_closed(self, channel: int, code: int = 0, message: str = "", by_agent: bool = False) -> None:
        """The agent side of CHANNEL closed; if the agent closed it (audio
        unavailable, a misbehaving usb peer), the client is told why."""
        self._link_open.discard(channel)
        if by_agent and channel in self._client_channels:
            self._client_channels.pop(channel, None)
            self._pending.pop(channel, None)
            self.usb.channel_closed(channel)
            if self.client is not None:
                self.client.close_client_channel(channel, code, message)

    def from_client(self, channel: int, message: Message) -> None:
        if self._client_channels.get(channel) is ChannelKind.USB and not self.usb.from_client(channel, message):
            return
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
        if self._client_channels.get(channel) is ChannelKind.USB and not self.usb.from_agent(channel, message):
            return
        if self.client is not None and channel in self._client_channels:
            self.client.relay_to_client(channel, message)
        elif self.link is not None and channel in self._link_open:
            # Nobody to deliver to: hand the credit straight back.
            self.link.conn.grant(channel, frame_cost(message))

    def client_granted(self, channel: int, increment: int) -> None:
        """The client gave sessiond credit on CHANNEL: pass it to the agent."""
        increment = self.usb.client_credit(channel, increment)
        if increment and self.link is not None and channel in self._link_open:
            self.link.conn.grant(channel, increment)
            self.link.flush()

    def agent_granted(self, channel: int, increment: int) -> None:
        increment = self.usb.agent_credit(channel, increment)
        if increment and self.client is not None and channel in self._client_channels:
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
                self.registry.update_session(self.id, apps={str(p): a for p, a in self.apps.items()})
            d.callback(result)

    def forward_to_client(self, message: Message) -> None:
        """A control message from the agent meant for the client (CLOCK_REPORT)."""
        if self.client is not None:
            self.client.notify(message)

    def app_exited(self, message: AppExited) -> None:
        if self.apps.pop(message.pid, None) is not None:
            self.registry.update_session(self.id, apps={str(p): a for p, a in self.apps.items()})
        if self.client is not None:
            self.client.notify(message)
        if not self.apps and not self._launches and self.config.get("apps", "end_session_with_last_app"):
            log.info("session {session}: its last app exited; ending it", session=self.id)
            self.terminate()

    def describe(self, now: float | None = None) -> dict[str, object]:
        """The admin view of this session (sessionctl, /admin/)."""
        now = time.time() if now is None else now
        memory, cpu = self.usage()
        return {
            "id": self.id, "user": self.account.name, "state": self.state.value,
            "apps": sorted(set(self.apps.values())), "client_address": self.client_address,
            "started": self.created, "last_connect": self.last_connect, "last_disconnect": self.last_disconnect,
            "idle_seconds": round(max(0.0, now - self.last_input), 3), "memory_bytes": memory,
            "cpu_seconds": round(cpu, 3), "width": self.width, "height": self.height, "agent_pid": self.agent_pid,
        }  # fmt: skip


class SessionSupervisor:
    """Owns every session; one per user (a second login resumes it)."""

    def __init__(self, config: Config, reactor: Any, registry: Registry) -> None:
        self.config = config
        self.reactor = reactor
        self.registry = registry
        self.sessions: dict[str, Session] = {}
        self._starting: dict[str, defer.Deferred[Session]] = {}
        self._usb_watcher = UsbPolicyWatcher(config, reactor, lambda: list(self.sessions.values()))

    def adopt_all(self) -> defer.Deferred[object]:
        """Re-adopt the live sessions a previous sessiond left (restart/crash)."""
        from isolation.accounts import AccountError, lookup_account

        waits = []
        for record in self.registry.live_sessions():
            try:
                account = lookup_account(record.user, min_uid=1)
            except AccountError as exc:
                log.warn("session {session}: cannot re-adopt: {why}", session=record.id, why=str(exc))
                self.registry.update_session(record.id, state=SessionState.ENDED.value, ended=time.time())
                continue
            session = Session(self, account)
            self.sessions[account.name] = session
            d = session.adopt(self.reactor, record)
            self._starting[account.name] = d
            d.addBoth(self._adopted, session)
            waits.append(d)
        return defer.DeferredList(waits, consumeErrors=True)

    def _adopted(self, result: Any, session: Session) -> None:
        self._starting.pop(session.account.name, None)
        if isinstance(result, Failure):
            self.registry.audit("adopt_failed", user=session.account.name, session=session.id,
                                detail=result.getErrorMessage())  # fmt: skip
        else:
            self.registry.audit("adopted", user=session.account.name, session=session.id)

    def usb_policy(self) -> UsbPolicy:
        """The USB device policy in force ([usb], reloaded while devices are shared)."""
        return self._usb_watcher.current()

    def usb_watch(self) -> None:
        """A device is shared: keep watching the policy for changes."""
        self._usb_watcher.ensure_running()

    def by_id(self, session_id: str) -> Session | None:
        return next((s for s in self.sessions.values() if s.id == session_id), None)

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
        """On a clean stop: log every session off, or leave them for the next
        sessiond to re-adopt ([server] on_stop); fires when done."""
        if self.config.get("server", "on_stop") == "logoff":
            return defer.DeferredList([s.terminate() for s in list(self.sessions.values())])
        for session in list(self.sessions.values()):
            session.release()
        return defer.succeed(None)

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
