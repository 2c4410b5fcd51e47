# Launching apps into a session: the LAUNCH request of a client connection
# (entitlements, audit), the launches in flight and the running apps of a
# session, and the connections that only launch, beside the one connection
# that holds the session.
#
# Why launchers beside the session's connection: a session has one
# connection that shows it (the viewer, the web page, an attached xpra
# client), and a new login takes the session over from it. A client that
# only starts apps must not do that: `svclient launch` from another terminal
# would detach the user's xpra client, and the web page, which cannot show an
# xpra display, would take an xpra session away from the client that does.
# Such a login says so in its HELLO (protocol.xpra.LAUNCH_BESIDE,
# LAUNCH_BESIDE_XPRA); it gets no channel, launches as any client (the
# publisher checks entitlements), is told whether a client holds the session
# (SESSION_ATTACHED) and when the apps exit (APP_EXITED, for `--wait`), and
# is audited by its launches, not as a connect or disconnect of the session.
"""launch_app() for one LAUNCH; SessionApps (a session's launches and apps); Launchers beside a session."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from twisted.internet import defer
from twisted.logger import Logger

from apps.catalog import UnknownApp
from apps.exec_line import ExecError
from apps.publisher import AppPublisher, LaunchPlan, NotEntitled
from isolation.spec import MAX_ENV_VALUE_BYTES
from protocol.errors import ReasonCode
from protocol.messages import AppExited, Launch, LaunchResult, Message, SessionAttached, SpawnApp
from protocol.xpra import LAUNCH_BESIDE, LAUNCH_BESIDE_XPRA
from sessiond.agent.settings import FIRST_LAUNCH_ENV

if TYPE_CHECKING:
    from sessiond.agent_link import AgentLink
    from sessiond.config import Config
    from sessiond.registry import Registry
    from sessiond.sessions import ClientPeer, Session

log = Logger()

# Files/URLs one launch may pass to an app.
MAX_LAUNCH_ARGS: Final = 64
# Launches in flight per session.
MAX_PENDING_LAUNCHES: Final = 16
# Connections launching beside one session at once (web pages, svclient launch): each is a
# logged-in connection of the session's user, kept in a list the session tells about attaches
# and exits; a login beyond this is refused with LIMIT_EXCEEDED.
MAX_LAUNCHERS: Final = 32
# The display whose windows never reach a launcher (sessiond.display_config.DISPLAYS).
XPRA_DISPLAY: Final = "xpra"


class LaunchersFull(Exception):
    """A session has MAX_LAUNCHERS launchers already."""


def beside_login(capabilities: Iterable[str], display: str, held: bool) -> bool:
    """Whether a login saying CAPABILITIES in its HELLO launches beside the session's connection
    instead of holding the session: in an xpra session every launcher does (nothing of that display
    reaches it); elsewhere a LAUNCH_BESIDE client does when another connection HELD the session."""
    said = set(capabilities)
    if display == XPRA_DISPLAY and said & {LAUNCH_BESIDE, LAUNCH_BESIDE_XPRA}:
        return True
    return LAUNCH_BESIDE in said and held


class Launchers:
    """The connections launching beside one session's connection, told what concerns them."""

    def __init__(self) -> None:
        self._peers: list[ClientPeer] = []

    def __len__(self) -> int:
        return len(self._peers)

    def add(self, peer: ClientPeer) -> None:
        """PEER launches beside the session from now on; LaunchersFull past MAX_LAUNCHERS."""
        if peer in self._peers:
            return
        if len(self._peers) >= MAX_LAUNCHERS:
            raise LaunchersFull(f"{MAX_LAUNCHERS} connections already launch into this session; close one")
        self._peers.append(peer)

    def discard(self, peer: ClientPeer) -> None:
        """PEER went away (or logged off)."""
        if peer in self._peers:
            self._peers.remove(peer)

    def tell(self, message: Message) -> None:
        """Send MESSAGE to every launcher."""
        for peer in list(self._peers):
            peer.notify(message)

    def holder_changed(self, attached: bool) -> None:
        """A client now holds the session (ATTACHED) or none does."""
        self.tell(SessionAttached(attached=attached))

    def end(self, reason: str) -> None:
        """The session ended: every launcher's connection is closed with REASON."""
        peers, self._peers = self._peers, []
        for peer in peers:
            peer.take_over(reason)


@dataclasses.dataclass
class LaunchRefused:
    """A launch the catalog or the user's entitlements refuse: what the log, the audit and the client get."""

    code: int
    message: str  # for the client
    detail: str  # for the audit


def check_launch(publisher: AppPublisher, user: str, message: Launch) -> LaunchPlan | LaunchRefused:
    """USER's LAUNCH checked against the catalog and the user's entitlements, before anything runs."""
    if len(message.args) > MAX_LAUNCH_ARGS:
        return LaunchRefused(ReasonCode.LIMIT_EXCEEDED, f"at most {MAX_LAUNCH_ARGS} arguments", "too many arguments")
    try:
        return publisher.plan_launch(user, message.app, message.args)
    except NotEntitled as exc:
        return LaunchRefused(ReasonCode.NOT_ENTITLED, str(exc), f"not entitled to {message.app}")
    except UnknownApp:
        return LaunchRefused(ReasonCode.UNKNOWN_APP, f"no published application {message.app!r}",
                             f"unknown app {message.app}")  # fmt: skip
    except ExecError as exc:
        return LaunchRefused(ReasonCode.MALFORMED_MESSAGE, str(exc), f"bad arguments for {message.app}")


def refuse_launch(registry: Registry, session_id: str, user: str, address: str, message: Launch,
                  refused: LaunchRefused, send: Callable[[Message], None]) -> None:  # fmt: skip
    """Log, audit and answer a refused launch."""
    if refused.code == ReasonCode.NOT_ENTITLED:
        log.warn("{user} from {address} asked to launch {app}, which is not published to them",
                 user=user, address=address, app=message.app)  # fmt: skip
    elif refused.code == ReasonCode.UNKNOWN_APP:
        log.info("{user} asked for unknown app {app}", user=user, app=message.app)
    if refused.code in (ReasonCode.NOT_ENTITLED, ReasonCode.UNKNOWN_APP):
        registry.audit("launch_refused", user=user, session=session_id, address=address, detail=refused.detail)
    send(LaunchResult(request=message.request, ok=False, code=refused.code, message=refused.message))


def launch_app(publisher: AppPublisher, registry: Registry, session: Session, user: str, address: str,
               message: Launch, send: Callable[[Message], None]) -> None:  # fmt: skip
    """One LAUNCH of USER's connection from ADDRESS: checked against the catalog and the user's
    entitlements, audited, run in SESSION; the LAUNCH_RESULT goes to SEND."""
    run_checked(registry, session, user, address, message, check_launch(publisher, user, message), send)


def run_checked(registry: Registry, session: Session, user: str, address: str, message: Launch,
                checked: LaunchPlan | LaunchRefused, send: Callable[[Message], None]) -> None:  # fmt: skip
    """A checked launch (check_launch) refused, or run in SESSION; the LAUNCH_RESULT goes to SEND."""
    if isinstance(checked, LaunchRefused):
        refuse_launch(registry, session.id, user, address, message, checked, send)
        return
    launched(registry, session, user, address, message, send, session.launch(message.app, list(checked.argv),
                                                                             checked.cwd))  # fmt: skip


def launched(registry: Registry, session: Session, user: str, address: str, message: Launch,
             send: Callable[[Message], None], result: defer.Deferred[LaunchResult]) -> None:  # fmt: skip
    """A checked launch is running in SESSION (RESULT: the agent's answer): logged, audited,
    and answered to SEND under the client's request number."""
    log.info("{user} launches {app} in session {session}", user=user, app=message.app, session=session.id)
    registry.audit("launch", user=user, session=session.id, address=address, detail=message.app)
    session.touch()  # starting an app is the user's doing, whichever connection it came from
    result.addCallback(lambda answer: send(dataclasses.replace(answer, request=message.request)))


class FirstLaunch:
    """AUTH's launch, checked after PAM said yes: a session that starts for this login runs it
    as soon as its X server is up (SessionApps.take_first_launch), before the link and the
    client's AUTH_RESULT; otherwise the login launches it as a LAUNCH once attached."""

    def __init__(self, message: Launch, checked: LaunchPlan | LaunchRefused) -> None:
        self.message = message
        self.checked = checked
        self.result: defer.Deferred[LaunchResult] | None = None  # set by the session that took it


class SessionApps:
    """The apps part of a Session (mixed into it): launches in flight, running apps, who hears of their exit."""

    id: str
    config: Config
    registry: Registry
    link: AgentLink | None
    client: ClientPeer | None
    launchers: Launchers
    apps: dict[int, str]
    display: str  # the session's display (sessiond.display_config)
    _launches: dict[int, tuple[defer.Deferred[LaunchResult], str]]
    _next_request: int

    def terminate(self) -> Any: ...  # Session's

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

    def take_first_launch(self, first: FirstLaunch | None, env: dict[str, str]) -> None:
        """The login's checked launch goes into the agent's environment ENV (FIRST_LAUNCH_ENV), so
        the agent starts it before its link is up; FIRST.result is its answer. Left to the login
        (a LAUNCH once attached) if refused, too long for the sandbox's environment, or for an
        xpra display (its apps start once xpra's server runs, after the agent's READY)."""
        if first is None or isinstance(first.checked, LaunchRefused) or self.display == XPRA_DISPLAY:
            return
        plan = first.checked
        spawn = SpawnApp(request=self._next_request, app=first.message.app, argv=tuple(plan.argv), cwd=plan.cwd)
        encoded = spawn.encode()
        if len(encoded) > MAX_ENV_VALUE_BYTES:
            return
        self._next_request += 1
        env[FIRST_LAUNCH_ENV] = encoded.decode("utf-8")
        first.result = defer.Deferred()
        self._launches[spawn.request] = (first.result, spawn.app)

    def launch_finished(self, result: LaunchResult) -> None:
        """The agent's answer to one SPAWN_APP."""
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
        """An app ended: the attached client and the launchers are told (svclient launch --wait)."""
        if self.apps.pop(message.pid, None) is not None:
            self.registry.update_session(self.id, apps={str(p): a for p, a in self.apps.items()})
        if self.client is not None:
            self.client.notify(message)
        self.launchers.tell(message)
        if not self.apps and not self._launches and self.config.apps.end_session_with_last_app:
            log.info("session {session}: its last app exited; ending it", session=self.id)
            self.terminate()
