# The client-facing side of sessiond: one ClientHandler per TLS connection.
# It terminates the control channel itself (hello, PAM login, app list,
# launch) and relays every other channel to the user's session through the
# session's ChannelRelay; display, input, audio and URB frames arrive
# undecoded (sessiond.relay.relayed). Client control messages are never
# forwarded to the agent: only sessiond builds SpawnApp, from the server-side
# catalog. A failure handling one message costs that channel (closed with a
# reason code) or, on the control channel, this connection; never the session.
"""ClientHandler and GatewayFactory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from apps.catalog import Catalog, UnknownApp
from apps.icon_renders import IconRateLimited
from apps.icons import IconError
from apps.publisher import AppPublisher, NotEntitled, publisher_from_config
from isolation.accounts import AccountError, lookup_account
from protocol.connection import (
    ChannelClosed,
    ChannelOpened,
    Connection,
    ConnectionClosed,
    MessageReceived,
    Role,
    WindowUpdated,
    default_accept_kind,
)
from protocol.events import FrameReceived
from protocol.errors import ReasonCode
from protocol.control_session import APPS_CHANGED_CAPABILITY, AUTH_LAUNCH_CAPABILITY, AUTH_SCREEN_CAPABILITY
from protocol.messages import (
    ChannelKind,
    AppListRequest,
    Auth,
    AuthResult,
    Close,
    Hello,
    Icon,
    IconRequest,
    Launch,
    Logoff,
    Message,
    Ping,
    Pong,
    SessionAttached,
    SessionInfo,
)
from sessiond.app_notices import AppNotices
from sessiond.auth import AuthOutcome, FailureLimiter, PamAuthenticator, delayed
from sessiond.launching import (
    FirstLaunch,
    LaunchersFull,
    beside_login,
    check_launch,
    launch_app,
    launched,
    run_checked,
)
from sessiond.metrics import Metrics
from protocol.media import FrameEnd
from sessiond.preauth import authenticated as preauth_authenticated
from sessiond.relay import relayed
from sessiond.sessions import ClientPeer, Session, SessionError
from sessiond.farm.directory import FarmError
from sessiond.farm.etcd_codec import EtcdError
from sessiond.farm.login import redirect_result, ticket_valid
from sessiond.supervisor import Redirect, SessionSupervisor
from transport.twisted_wire import FrameProtocol

if TYPE_CHECKING:
    from sessiond.config import Config

log = Logger()

SOFTWARE = "sessiond 0.1.0"
CAPABILITIES = ("display.raw-lz4", "display.png", "display.jpeg", "display.fill", "display.copy", "display.palette",
                "input.keysym", "input.key-tap", APPS_CHANGED_CAPABILITY, AUTH_LAUNCH_CAPABILITY,
                AUTH_SCREEN_CAPABILITY)


class ClientHandler(FrameProtocol, ClientPeer):
    """One client connection: login, then relay to the user's session."""

    role = Role.SERVER

    def __init__(self, factory: GatewayFactory) -> None:
        super().__init__()
        self.factory = factory
        self.session: Session | None = None
        self.user = ""
        self._authenticating = False
        self._login_timer: Any = None
        self._method = ""
        self._chain_expires: float | None = None  # a resume's token chain end (None: a password login)
        self.apps_notices = False  # the client understands APPS_CHANGED
        self.capabilities: tuple[str, ...] = ()  # said in the client's HELLO
        self.beside = False  # launches beside the session's connection, never holds it (sessiond.launching)
        self._auth_launch: Launch | None = None  # AUTH's launch, until the login answers it
        self._first: FirstLaunch | None = None  # that launch, checked once PAM said yes
        self._auth_screen: tuple[int, int] | None = None  # AUTH's screen: the size of a session it starts

    def make_connection(self) -> Connection:  # no channels for a launcher beside the session's connection
        return Connection(self.role, relay=relayed, accept_kind=lambda kind: default_accept_kind(kind) and (
            self.session is None or self.session.client is self))  # (sessiond.launching)

    @property
    def address(self) -> str:
        peer = self.transport.getPeer()
        return str(getattr(peer, "host", peer))

    def on_connected(self) -> None:
        timeout = self.factory.config.auth.login_timeout
        self._login_timer = self.factory.reactor.callLater(timeout, self._login_timed_out)

    def _login_timed_out(self) -> None:
        if self.session is None:
            self.close(ReasonCode.TIMEOUT, "no login within the time limit")

    def on_lost(self, reason: Failure) -> None:
        self.factory.app_notices.forget(self)
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        if self.session is not None:
            if not self.beside:  # a launcher never connected the session: audited by its launches
                log.info("client {address} of {user} disconnected; session {session} keeps running",
                         address=self.address, user=self.user, session=self.session.id)  # fmt: skip
                self.factory.registry.audit("disconnect", user=self.user, session=self.session.id,
                                            address=self.address)  # fmt: skip
            self.session.detach(self)
            self.session = None

    def on_closed(self, event: ConnectionClosed) -> None:
        if self.session is not None:
            self.session.detach(self)
            self.session = None

    # -- events ----------------------------------------------------------------
    def event_received(self, event: object) -> None:
        if isinstance(event, MessageReceived) and event.channel == 0:
            self._control(event.message)
            return
        session = self.session
        if session is None or session.client is not self:  # (a launcher beside the session's connection)
            return
        relay = session.relay
        if isinstance(event, FrameReceived):
            if event.kind is ChannelKind.INPUT:
                session.touch()
            relay.from_client(event.channel, event.type, event.payload, None, event.wire_size)
        elif isinstance(event, MessageReceived):
            relay.from_client(event.channel, event.message.TYPE, b"", event.message, event.wire_size)
        elif isinstance(event, ChannelOpened):
            if event.by_peer:
                relay.client_channel_opened(event.channel, event.kind)
        elif isinstance(event, ChannelClosed):
            relay.client_channel_closed(event.channel)
        elif isinstance(event, WindowUpdated):
            relay.client_granted(event.channel, event.increment)

    def event_failed(self, event: object, exc: Exception) -> None:
        """One message failed: a data channel is closed with a reason, a control failure closes this
        connection; the session keeps running either way."""
        channel = getattr(event, "channel", 0)
        session = self.session
        log.failure("client {address} of {user}: handling {event} on channel {channel} failed",
                    address=self.address, user=self.user, event=type(event).__name__, channel=channel,
                    session=session.id if session is not None else "")  # fmt: skip
        if channel and session is not None:
            session.relay.fail_channel(channel, ReasonCode.INTERNAL_ERROR, "internal error handling this channel")
        elif channel and channel in self.conn.open_channels() and not self.conn.closed:
            self.conn.close_channel(channel, ReasonCode.INTERNAL_ERROR, "internal error handling this channel")
        else:
            self.close(ReasonCode.INTERNAL_ERROR, "internal error handling a control message")

    def _control(self, message: Message) -> None:
        if isinstance(message, Hello):
            self.capabilities = message.capabilities  # LAUNCH_BESIDE: launches only (sessiond.launching)
            self.apps_notices = APPS_CHANGED_CAPABILITY in message.capabilities  # (sessiond/app_notices.py)
            self.conn.hello(capabilities=CAPABILITIES, software=SOFTWARE)
        elif isinstance(message, Auth):
            self._auth(message)
        elif isinstance(message, AppListRequest):
            self._send(self.factory.app_notices.answer(self, self.user, message.locale, self.apps_notices))
        elif isinstance(message, IconRequest):
            self._icon(message)
        elif isinstance(message, Launch):
            self._launch(message)
        elif isinstance(message, Ping):
            self._send(Pong(token=message.token))
        elif isinstance(message, Logoff):
            self._logoff()
        elif isinstance(message, Close):
            pass
        else:
            self.close(ReasonCode.UNEXPECTED_MESSAGE, f"{type(message).__name__} is not accepted from a client")

    def _send(self, message: Message) -> None:
        if not self.conn.closed:
            self.conn.send(0, message)
            self.flush()

    # -- login -----------------------------------------------------------------
    def _auth(self, message: Auth) -> None:
        if self._authenticating or self.session is not None:
            self.close(ReasonCode.PROTOCOL_ERROR, "already logged in or logging in")
            return
        if message.method not in ("password", "resume", "ticket"):
            self._refuse(ReasonCode.AUTH_FAILED, f"authentication method {message.method!r} is not supported")
            return
        self._authenticating = True
        self._method = message.method
        self._auth_launch = message.launch  # started with the session, answered after AUTH_RESULT
        self._auth_screen = message.screen
        self.factory.supervisor.login_started(message.user)  # a sandbox entry may start now (warm_pool.py)

        def check() -> defer.Deferred[AuthOutcome]:
            if message.method == "resume":
                expires = self.factory.registry.redeem_token(message.user, message.token)
                if expires is None:
                    reason = "the resume token is invalid, used or expired; log in with your password"
                    return defer.succeed(AuthOutcome(False, message.user, reason))
                # The token's replacement ends no later than it would have (the chain
                # ends a lifetime after the password login), and the account must
                # still pass PAM's account stage.
                self._chain_expires = expires
                return self.factory.authenticator.account_allowed(message.user)
            if message.method == "ticket":
                return defer.Deferred.fromCoroutine(self._ticket(message.user, message.token))
            return self.factory.authenticator.authenticate(message.user, message.password)

        # One attempt in flight per address, counted when it starts (sessiond/auth.py).
        d = self.factory.limiter.attempt(self.address, message.user, check)
        d.addCallback(self._auth_checked)
        d.addErrback(self._auth_crashed)

    async def _ticket(self, user: str, ticket: str) -> AuthOutcome:
        try:
            valid = await ticket_valid(self.factory.supervisor.directory, user, ticket)
        except EtcdError as exc:  # the ticket cannot be checked: a clear refusal, not an internal error
            return AuthOutcome(False, user, f"the redirect ticket cannot be checked now ({exc}); log in again")
        if not valid:
            return AuthOutcome(False, user, "the redirect ticket is invalid, used or expired; log in again")
        return await self.factory.authenticator.account_allowed(user)  # type: ignore[no-any-return]

    def _auth_checked(self, outcome: AuthOutcome) -> Any:
        if outcome.limited:
            log.warn("login for {user} from {address} refused: {why}", user=outcome.user, address=self.address,
                     why=outcome.reason)  # fmt: skip
            self._refuse(ReasonCode.RATE_LIMITED, outcome.reason)
            return None
        if not outcome.ok:
            log.info("login failed for {user} from {address}", user=outcome.user, address=self.address)
            self.factory.registry.audit("login_failed", user=outcome.user, address=self.address,
                                        detail=f"method={self._method}")  # fmt: skip
            self.factory.metrics.logins_failed += 1
            delay = self.factory.config.auth.failure_delay
            d = delayed(self.factory.reactor, delay, outcome)
            d.addCallback(lambda o: self._refuse(ReasonCode.AUTH_FAILED, o.reason))
            return d
        preauth_authenticated(self.transport)  # the pre-auth grace and caps no longer apply
        try:
            account = lookup_account(outcome.user, min_uid=self.factory.config.auth.min_uid)
        except AccountError as exc:
            self._refuse(ReasonCode.NOT_ENTITLED, str(exc))
            return None
        self.user = account.name
        log.info("login ok for {user} from {address}", user=account.name, address=self.address)
        self.factory.registry.audit("login", user=account.name, address=self.address, detail=f"method={self._method}")
        self.factory.metrics.logins_ok += 1
        if self._auth_launch is not None:  # checked now, so that a session starting for this login can run it
            checked = check_launch(self.factory.publisher, account.name, self._auth_launch)
            self._first = FirstLaunch(self._auth_launch, checked)
        d2 = self.factory.supervisor.get_or_start(account, self._first, self._auth_screen)
        d2.addCallbacks(self._session_ready, self._session_failed)
        return d2

    def _auth_crashed(self, failure: Failure) -> None:
        log.failure("authentication crashed", failure)
        self._refuse(ReasonCode.INTERNAL_ERROR, "internal error during login")

    def _refuse(self, code: int, message: str) -> None:
        if code == ReasonCode.RATE_LIMITED:
            self.factory.registry.audit("login_rate_limited", address=self.address)
        self._authenticating = False
        if self._lost:
            return
        self._send(AuthResult(ok=False, code=code, message=message))
        self.close(code, message)

    def _session_ready(self, session: Session | Redirect) -> Any:
        if isinstance(session, Redirect):
            d = defer.Deferred.fromCoroutine(redirect_result(self.factory.supervisor.directory, session))
            d.addCallbacks(self._redirect, self._session_failed)
            return d
        self._authenticating = False
        if self._lost or self.conn.closed:
            self._first_launch(session, answer=False)
            return None
        resumed = session.last_connect is not None
        self.beside = beside_login(self.capabilities, session.display, session.client is not None)
        try:
            session.attach(self, self.address)
        except (SessionError, LaunchersFull) as exc:
            code = ReasonCode.LIMIT_EXCEEDED if isinstance(exc, LaunchersFull) else ReasonCode.SESSION_UNAVAILABLE
            self._first_launch(session, answer=False)
            self._refuse(code, str(exc))
            return
        self.session = session
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        registry = self.factory.registry
        if not self.beside:  # a launcher's login is audited as "login", then by its launches
            registry.audit("reconnect" if resumed else "connect", user=self.user, session=session.id,
                           address=self.address)  # fmt: skip
        lifetime = self.factory.config.auth.resume_token_lifetime
        token = registry.issue_token(self.user, lifetime, not_after=self._chain_expires)
        notice, session.notice = session.notice, ""
        self._send(AuthResult(ok=True, user=self.user, session=session.id, message=notice, resume_token=token,
                              display=session.display))  # fmt: skip
        self._send(SessionInfo(session=session.id, user=self.user, width=session.width, height=session.height))
        if self.beside:
            self._send(SessionAttached(attached=session.client is not None))
        self._first_launch(session, answer=True)

    def _first_launch(self, session: Session, answer: bool) -> None:
        """AUTH's launch, after AUTH_RESULT: refused, or taken by the session that started for this
        login (audited now, its LAUNCH_RESULT once the app's window maps), or launched now in the
        running session. Unanswered (the login went no further): audited only if it runs."""
        first, self._auth_launch, self._first = self._first, None, None  # (set together in _auth_checked)
        registry, send = self.factory.registry, self._send if answer else (lambda _message: None)
        if first is None:
            return
        if first.result is not None:
            launched(registry, session, self.user, self.address, first.message, send, first.result)
        elif answer:
            run_checked(registry, session, self.user, self.address, first.message, first.checked, send)

    def _redirect(self, result: AuthResult) -> None:
        self._authenticating = False
        self.factory.registry.audit("farm_redirect", user=self.user, session=result.session, address=self.address,
                                    detail=result.redirect)  # fmt: skip
        if not self._lost:
            self._send(result)
            self.close(ReasonCode.NORMAL, "redirected")

    def _session_failed(self, failure: Failure) -> None:
        log.error("no session for {user}: {why}", user=self.user, why=failure.getErrorMessage())
        if failure.check(FarmError):
            self._refuse(ReasonCode.SESSION_UNAVAILABLE, failure.getErrorMessage())
            return
        self._refuse(ReasonCode.SESSION_UNAVAILABLE, f"the session could not start: {failure.getErrorMessage()}")

    # -- apps ------------------------------------------------------------------
    def _launch(self, message: Launch) -> None:
        if self.session is None:
            self.close(ReasonCode.NOT_AUTHENTICATED, "log in first")
            return
        launch_app(self.factory.publisher, self.factory.registry, self.session, self.user, self.address, message,
                   self._send)  # fmt: skip

    def _icon(self, message: IconRequest) -> None:
        def answer(png: bytes) -> None:
            self._send(Icon.with_png(message.request, message.app, message.size, png))

        def refuse(failure: Failure) -> None:
            error = failure.trap(UnknownApp, NotEntitled, IconRateLimited, IconError)
            code = {UnknownApp: ReasonCode.UNKNOWN_APP, NotEntitled: ReasonCode.NOT_ENTITLED,
                    IconRateLimited: ReasonCode.LIMIT_EXCEEDED}.get(error, ReasonCode.UNKNOWN_APP)  # fmt: skip
            self._send(Icon(request=message.request, app=message.app, size=message.size, ok=False, code=code,
                            message=failure.getErrorMessage()))  # fmt: skip

        d = self.factory.publisher.icon_png(self.user, message.app, message.size)
        d.addCallbacks(answer, refuse)
        d.addErrback(lambda failure: log.failure("icon request failed", failure))

    def _logoff(self) -> None:
        session = self.session
        if session is None:
            self.close(ReasonCode.NOT_AUTHENTICATED, "log in first")
            return
        log.info("{user} logs off session {session}", user=self.user, session=session.id)
        self.factory.registry.audit("logoff", user=self.user, session=session.id, address=self.address)
        self.factory.registry.revoke_tokens(self.user)  # logged off: no token brings anyone back in
        self.session = None
        session.detach(self)
        session.terminate().addCallback(lambda _: self.close(ReasonCode.NORMAL, "logged off"))

    # -- ClientPeer ------------------------------------------------------------
    def count_relayed(self, channel: int, type_: int, wire_size: int) -> None:
        if channel == ChannelKind.DISPLAY:
            self.factory.metrics.count_relayed(type_ == FrameEnd.TYPE, wire_size)

    def notify(self, message: Message) -> None:
        self._send(message)

    def take_over(self, reason: str) -> None:
        self.session = None
        self.close(ReasonCode.NORMAL, reason)


class GatewayFactory(protocol.Factory):
    """Builds ClientHandlers sharing the supervisor, catalog and limiter."""

    def __init__(self, config: Config, supervisor: SessionSupervisor, catalog: Catalog, reactor: Any,
                 authenticator: PamAuthenticator | None = None, metrics: Metrics | None = None) -> None:  # fmt: skip
        self.config = config
        self.registry = supervisor.registry
        self.metrics = metrics or Metrics()
        self.supervisor = supervisor
        self.catalog = catalog
        # Entitlements and icons over the catalog; the one place list, launch and icon are decided.
        self.publisher: AppPublisher = publisher_from_config(catalog, config)
        self.app_notices = AppNotices(self.publisher, reactor)  # APP_LIST answers, APPS_CHANGED on reloads
        self.reactor = reactor
        self.authenticator = authenticator or PamAuthenticator(config.auth.pam_service)
        self.limiter = FailureLimiter(config.auth.max_failures, config.auth.failure_window)

    def buildProtocol(self, addr: Any) -> ClientHandler:  # noqa: N802 - Twisted name
        handler = ClientHandler(self)
        handler.factory = self
        return handler
