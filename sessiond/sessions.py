# One user's session: a sandboxed agent
# process reached over a Unix socket (the "link") that speaks the same frame
# protocol as clients. A Session is assembled from small parts: its
# Lifecycle (sessiond.lifecycle, the state machine), its AgentHandle
# (sessiond.spawn: spawn, adoption by pidfd, signals), its ChannelRelay
# (sessiond.relay: routing and credit between client and agent) with the USB
# policy plugged in as a filter, its apps part (sessiond.launching: launches,
# running apps, the connections launching beside the attached client). What
# stays here is the glue: attach and detach, start and end.
"""Session (one user's session) and what it needs from its host."""

from __future__ import annotations

import os
import secrets
import time
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet import defer, protocol
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.logger import Logger

from apps.entitlements import principal_for
from isolation.accounts import Account
from isolation.launcher import prepare_session_dir, remove_session_dir
from protocol.errors import ReasonCode
from protocol.messages import ChannelKind, LaunchResult, Message
from sessiond.session_windows import WindowLister
from sessiond.agent_link import AgentLink, AgentProcess
from sessiond.launching import FirstLaunch, Launchers, SessionApps
from sessiond.lifecycle import Lifecycle, LifecycleEvent, SessionState
from sessiond.registry import Registry, SessionRecord
from sessiond.relay import ChannelRelay, Endpoint
from sessiond.agent.settings import clamp_size
from sessiond.spawn import AgentHandle, CgroupError, agent_settings, session_env
from sessiond.display_config import resolve_display
from sessiond.transfer_config import files_under_clipboard, resolve_clipboard, resolve_files
from sessiond.transfer_filter import ClipboardFilter, FilesFilter
from sessiond.usb_policy import UsbFilter
from sessiond.usb_rules import UsbPolicy

if TYPE_CHECKING:
    from sessiond.config import Config
    from sessiond.warm_pool import WarmSlot
    from sessiond.agent.settings import XScreen

log = Logger()

# Seconds an agent gets to stop its Xvfb and apps after SIGTERM.
AGENT_STOP_GRACE = 5.0

__all__ = ["Session", "SessionHost", "SessionState", "SessionError", "ClientPeer"]


class SessionError(Exception):
    """A session could not be started or is gone."""


class SessionHost(Protocol):
    """What a Session needs from its supervisor (sessiond.supervisor.SessionSupervisor)."""

    config: Config
    registry: Registry

    def usb_policy(self) -> UsbPolicy: ...

    def usb_watch(self) -> None: ...

    def session_ended(self, session: Session) -> None: ...

    def warm_slot(self, screen: XScreen) -> WarmSlot | None: ...


class ClientPeer(Endpoint, Protocol):
    """What a Session needs from the attached client connection."""

    def notify(self, message: Message) -> None: ...

    def take_over(self, reason: str) -> None: ...

    def count_relayed(self, channel: int, type_: int, wire_size: int) -> None: ...


class Session(SessionApps):
    """One user's session: lifecycle, agent, link, attached client and relay."""

    def __init__(self, supervisor: SessionHost, account: Account, session_id: str | None = None,
                 screen: tuple[int, int] | None = None) -> None:  # fmt: skip
        """SCREEN: the client's screen, as the login that starts it said (AUTH's screen): a seamless
        session's screen takes its size, clamped to the X server's; a desktop session's screen,
        shown in one client window, has [session] width x height."""
        self.supervisor = supervisor
        self.config = supervisor.config
        self.registry: Registry = supervisor.registry
        self.account = account
        self.uid = account.uid  # the only uid the agent link may be served by (SO_PEERCRED)
        self.id = session_id or secrets.token_hex(8)
        # Said to the user with the first AUTH_RESULT of this session (a farm's "your session was lost").
        self.notice = ""
        self.link_token = secrets.token_urlsafe(32)
        self.lifecycle = Lifecycle(self._state_changed)
        self.agent = AgentHandle(self.id, account)
        self.relay = ChannelRelay(self.id, account.name)
        self.usb = UsbFilter(self.relay, supervisor.usb_policy, account.name, self._group_names, self._audit,
                             supervisor.usb_watch)  # fmt: skip
        self.relay.filters[ChannelKind.USB] = self.usb
        self.clipboard_policy = resolve_clipboard(self.config.clipboard, account)
        session = self.config.session
        self.display = resolve_display(session.display, session.display_users, session.display_groups, account)
        self.file_policy = files_under_clipboard(resolve_files(self.config.files, account), self.clipboard_policy)
        self.relay.filters[ChannelKind.CLIPBOARD] = ClipboardFilter(self.relay, lambda: self.clipboard_policy,
                                                                    account.name, self._audit)  # fmt: skip
        self.relay.filters[ChannelKind.FILES] = FilesFilter(self.relay, lambda: self.file_policy, account.name,
                                                            self._audit)  # fmt: skip
        self.width, self.height = self.config.session.width, self.config.session.height
        if screen is not None:  # a seamless session's; clamped as the agent clamps a RESIZE_REQUEST
            largest = agent_settings(self.config, "", self.width, self.height, display=self.display).x_screen()
            if not largest.root_shown:
                self.width, self.height = clamp_size(*screen, largest.width, largest.height)
        self.session_dir = ""
        self.reactor: Any = None
        self.link: AgentLink | None = None
        self.client: ClientPeer | None = None
        self.launchers = Launchers()  # connections launching beside the client (sessiond.launching)
        self._started: defer.Deferred[Session] = defer.Deferred()
        self._next_request = 1
        self._launches: dict[int, tuple[defer.Deferred[LaunchResult], str]] = {}
        self.apps: dict[int, str] = {}
        self.created = time.time()
        self.last_connect: float | None = None
        self.last_disconnect: float | None = None
        self.last_input = self.created
        self.client_address = ""
        self._released = False
        self._kill_timer: Any = None
        self._exit_waiters: list[defer.Deferred[None]] = []
        self.window_lister = WindowLister()

    @property
    def state(self) -> SessionState:
        return self.lifecycle.state

    @property
    def agent_pid(self) -> int | None:
        return self.agent.pid

    @property
    def socket_path(self) -> str:
        return os.path.join(self.session_dir, "agent.sock")

    # -- start-up ------------------------------------------------------------
    def start(self, reactor: Any, first: FirstLaunch | None = None) -> defer.Deferred[Session]:
        """Spawn the agent (with the login's FIRST launch, if it can take it: take_first_launch);
        fires once its link is authenticated."""
        self.reactor = reactor
        runtime = os.path.join(self.config.runtime_dir, "sessions")
        self.session_dir = prepare_session_dir(runtime, self.id, self.account)
        self.registry.add_session(id=self.id, user=self.account.name, uid=self.account.uid, socket=self.socket_path,
                                  session_dir=self.session_dir, link_token=self.link_token, width=self.width,
                                  height=self.height, display=self.display)  # fmt: skip
        settings = agent_settings(self.config, self.socket_path, self.width, self.height, self.clipboard_policy,
                                  self.file_policy, self.display)  # fmt: skip
        self.lifecycle.start_timer(reactor, self.config.session.start_timeout, self._start_timed_out)
        slot = self.supervisor.warm_slot(settings.x_screen())
        env = session_env(self.config, self.link_token, self.id)
        self.take_first_launch(first, env)
        try:
            self.agent.spawn(reactor, self.config, settings, env, AgentProcess(self), slot)
        except CgroupError as exc:
            log.error("session {session}: cannot create its sandbox: {why}", session=self.id, why=str(exc))
            self._fail_start("the session sandbox could not be created; see the server log")
            return self._started
        log.info("session {session} starting for {user} (pid {pid}{warm})", session=self.id, user=self.account.name,
                 pid=self.agent.pid, warm=("" if slot is None else ", warm sandbox" if slot.x is None else
                       ", warm sandbox with its X server"))  # fmt: skip
        return self._started

    def adopt(self, reactor: Any, record: SessionRecord) -> defer.Deferred[Session]:
        """Take over a session a previous sessiond started (after a restart).

        The agent must still be alive (pidfd, uid, cmdline) and accept the
        stored link token; otherwise the session is ended and its leftovers removed.
        """
        self.reactor = reactor
        self.link_token, self.session_dir = record.link_token, record.session_dir
        self.width, self.height, self.created = record.width, record.height, record.created
        self.last_connect, self.last_disconnect = record.last_connect, record.last_disconnect
        self.client_address = record.client_address
        self.display = record.display or self.display  # what its agent runs, not what the config now says
        self.apps = {int(pid): app for pid, app in record.apps.items()}
        self.lifecycle.start_timer(reactor, self.config.session.start_timeout, self._start_timed_out)
        if not self.agent.adopt(reactor, record.agent_pid, lambda: self.agent_exited(None, None)):
            reactor.callLater(0, self._fail_start, "its agent is no longer running")
            return self._started
        log.info("session {session} of {user}: re-adopting agent pid {pid}", session=self.id,
                 user=self.account.name, pid=self.agent.pid)  # fmt: skip
        self.agent_ready()
        return self._started

    def agent_ready(self) -> None:
        """The agent printed READY (or was adopted): connect the link."""
        endpoint = UNIXClientEndpoint(self.reactor, self.socket_path, timeout=5)
        d = endpoint.connect(protocol.Factory.forProtocol(lambda: AgentLink(self)))
        d.addErrback(lambda f: self._fail_start(f"cannot reach the session agent: {f.getErrorMessage()}"))

    def link_ready(self, link: AgentLink) -> None:
        self.link = link
        self.relay.link_up(link)
        if self.lifecycle.fire(LifecycleEvent.AGENT_READY):
            log.info("session {session} ready for {user}", session=self.id, user=self.account.name)
            self._started.callback(self)

    def _start_timed_out(self) -> None:
        self._fail_start("the session agent did not start in time", LifecycleEvent.START_TIMEOUT)

    def _fail_start(self, why: str, event: LifecycleEvent = LifecycleEvent.START_FAILED) -> None:
        if self.lifecycle.fire(event):
            log.error("session {session} failed to start: {why}", session=self.id, why=why)
            self._started.errback(SessionError(why))
            self._stop_agent()

    def _state_changed(self, old: SessionState, new: SessionState, event: LifecycleEvent) -> None:
        """Every transition is recorded in the registry, with what it changed."""
        fields: dict[str, Any] = {}
        if event is LifecycleEvent.AGENT_READY:
            fields["agent_pid"] = self.agent.pid
        elif event is LifecycleEvent.ATTACH:
            fields.update(last_connect=self.last_connect, client_address=self.client_address)
        elif event is LifecycleEvent.DETACH:
            fields["last_disconnect"] = self.last_disconnect
        if new is SessionState.ENDED:
            fields["ended"] = time.time()
        self.registry.update_session(self.id, state=new.value, **fields)

    # -- ending ----------------------------------------------------------------
    def terminate(self) -> defer.Deferred[None]:
        """End the session: SIGTERM the agent (it stops its Xvfb and apps),
        SIGKILL after AGENT_STOP_GRACE; fires once the agent has exited."""
        if self.state is SessionState.ENDED:
            return defer.succeed(None)
        was_starting = self.state is SessionState.STARTING
        if self.lifecycle.fire(LifecycleEvent.TERMINATE):
            if was_starting:
                self._started.errback(SessionError("the session was ended while starting"))
            self._stop_agent()
        d: defer.Deferred[None] = defer.Deferred()
        self._exit_waiters.append(d)
        if self.state is SessionState.ENDED:
            self._fire_exit_waiters()
        return d

    def _stop_agent(self) -> None:
        if self.agent.signal("TERM"):
            self._kill_timer = self.reactor.callLater(AGENT_STOP_GRACE, self.agent.signal, "KILL")
        else:
            self._end()

    def release(self) -> None:
        """sessiond is stopping but the session stays: drop the link quietly."""
        self._released = True
        client, self.client = self.client, None
        if client is not None:
            client.take_over("sessiond is restarting; reconnect to resume your session")
            if self.state is SessionState.ACTIVE:
                self.last_disconnect = time.time()
                self.lifecycle.fire(LifecycleEvent.DETACH)
        if self.link is not None and self.link.transport is not None:
            self.link.drop()
        self.agent.stop_watching()

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
            self.relay.link_down()
            self.window_lister.cancel_all()
            if not self.lifecycle.over and not self._released:
                log.warn("session {session}: lost the link to its agent; ending the session", session=self.id)
                self.terminate()

    def _end(self) -> None:
        if self.state is SessionState.ENDED:
            return
        self.lifecycle.force_ended()
        self.agent.stop_watching()
        for d, _app in self._launches.values():
            d.callback(LaunchResult(request=0, ok=False, code=ReasonCode.SESSION_UNAVAILABLE,
                                    message="the session ended"))  # fmt: skip
        self._launches.clear()
        client, self.client = self.client, None
        self.relay.client = None
        if client is not None:
            client.take_over("the session ended")
        self.launchers.end("the session ended")
        if self.link is not None:
            self.link.drop()
        if self.session_dir:
            remove_session_dir(os.path.dirname(self.session_dir), self.id)
        self.agent.destroy_sandbox()
        self.supervisor.session_ended(self)

    # -- clients ---------------------------------------------------------------
    def attach(self, client: ClientPeer, address: str = "") -> None:
        """Make CLIENT the session's one connection (taking over any other), or one of its
        launchers if it launches beside it (sessiond.launching: LaunchersFull past the limit)."""
        if not self.lifecycle.usable or self.link is None:
            raise SessionError("the session has ended")
        if getattr(client, "beside", False):
            self.launchers.add(client)  # the attached client (if any) keeps the session
            return
        previous = self.client
        if previous is not None and previous is not client:
            self.detach(previous)
            previous.take_over("the session was opened from another connection")
        self.client = client
        self.relay.attach(client)
        self.relay.on_sent = client.count_relayed
        self.client_address = address
        self.last_connect = self.last_input = time.time()
        self.lifecycle.fire(LifecycleEvent.ATTACH)
        self.launchers.holder_changed(True)

    def detach(self, client: ClientPeer) -> None:
        if self.client is not client:
            self.launchers.discard(client)
            return
        self.client = None
        if self.state is SessionState.ACTIVE:
            self.last_disconnect = time.time()
            self.lifecycle.fire(LifecycleEvent.DETACH)
        self.relay.detach()
        self.launchers.holder_changed(False)

    def touch(self, idle: float = 0.0) -> None:
        """The user did something (input) `idle` seconds ago: resets the idle timers."""
        self.last_input = max(self.last_input, time.time() - idle)

    # -- views -----------------------------------------------------------------
    def usage(self) -> tuple[int, float]:
        """(memory bytes, CPU seconds) of the session's processes."""
        return self.agent.usage()

    def describe(self, now: float | None = None) -> dict[str, object]:
        """The admin view of this session (sessionctl, /admin/)."""
        now = time.time() if now is None else now
        memory, cpu = self.usage()
        return {
            "id": self.id, "user": self.account.name, "state": self.state.value,
            "apps": sorted(set(self.apps.values())), "client_address": self.client_address,
            "started": self.created, "last_connect": self.last_connect, "last_disconnect": self.last_disconnect,
            "idle_seconds": round(max(0.0, now - self.last_input), 3), "memory_bytes": memory,
            "cpu_seconds": round(cpu, 3), "width": self.width, "height": self.height, "agent_pid": self.agent.pid,
            "display": self.display,
        }  # fmt: skip

    def _group_names(self) -> tuple[str, ...]:
        """The user's groups as the system says NOW (NSS), not as they were at
        login: a user removed from a group loses its USB rights at the next
        check, as entitlements do (apps.entitlements.principal_for)."""
        return tuple(sorted(principal_for(self.account.name).groups))

    def _audit(self, event: str, detail: str) -> None:
        self.registry.audit(event, user=self.account.name, session=self.id, detail=detail)

