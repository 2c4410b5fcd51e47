# What a caller asks of a session connection (SessionClient): login (password,
# resume token, farm ticket), the app list, icons and launches, channels,
# resize and refresh, input and its sync, logoff; and the errors those raise.
# Each request returns a Deferred (or is a coroutine) answered by the
# server's matching message, or failed with the connection's end.
#
# Why a mixin of its own: session.py holds the connection itself (TLS pin,
# HELLO, the error boundary and the event dispatch, the framebuffer); the
# calling side lives here, on top of the same waiters, as window_client.py
# does for the windows channel.
"""SessionRequests: SessionClient's requests; ConnectionEnded, RemoteError, Redirected."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet import defer

from protocol.connection import frame_cost
from protocol.control_session import AUTH_LAUNCH_CAPABILITY, AUTH_SCREEN_CAPABILITY
from protocol.errors import ReasonCode
from protocol.messages import (
    AppExited,
    AppList,
    AppListRequest,
    AppsChanged,
    Auth,
    AuthResult,
    Button,
    ChannelKind,
    DesktopSize,
    Error,
    Icon,
    IconRequest,
    Key,
    Launch,
    LaunchResult,
    Logoff,
    Message,
    Pointer,
    RefreshRequest,
    ResizeRequest,
    Sync,
    SyncDone,
    VideoCaps,
    Wheel,
)

DISPLAY = int(ChannelKind.DISPLAY)
INPUT = int(ChannelKind.INPUT)
AUDIO_OUT = int(ChannelKind.AUDIO_OUT)
AUDIO_IN = int(ChannelKind.AUDIO_IN)


class ConnectionEnded(Exception):
    """The server closed the connection (code and message from its CLOSE)."""

    def __init__(self, code: int, message: str) -> None:
        try:
            name = ReasonCode(code).name
        except ValueError:
            name = str(code)
        super().__init__(f"{message} ({name})" if message else name)
        self.code = code
        self.message = message


class RemoteError(Exception):
    """The server refused a request (login, launch)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Redirected(RemoteError):
    """AUTH_RESULT sent the client to another host of the farm (client/redirect.py follows it);
    code that does not follow redirects sees a RemoteError with the server's message."""

    def __init__(self, result: AuthResult) -> None:
        super().__init__(result.code, result.message or f"redirected to {result.redirect}")
        self.result = result


def _launch_answer(request: int) -> Callable[[Message], bool]:
    """Matches the answer to LAUNCH number REQUEST (or the ERROR a refused message gets)."""
    return lambda m: isinstance(m, LaunchResult) and m.request == request or isinstance(m, Error)


class SessionRequests:
    """Request methods of SessionClient (which provides the attributes below)."""

    conn: Any
    transport: Any
    ended: defer.Deferred[ConnectionEnded]
    channel_handlers: dict[int, Callable[[Message | None], None]]
    video_codecs: int
    _waiters: list[tuple[Callable[[Message], bool], defer.Deferred[Any]]]
    _frame_waiters: list[defer.Deferred[int]]
    _channel_waiters: dict[int, defer.Deferred[None]]
    _sync_seq: int
    _end: ConnectionEnded | None
    _login_launch: defer.Deferred[Any] | None  # the answer to the last login's launch

    if TYPE_CHECKING:  # provided by SessionClient and its bases (never defined here: MRO)

        def flush(self) -> None: ...

        def drop(self) -> None: ...

        def display_opened(self) -> None: ...

        def window_event(self, matches: Callable[[Message], bool]) -> defer.Deferred[Any]: ...

    # -- requests --------------------------------------------------------------------
    def _request(self, message: Message, matches: Callable[[Message], bool]) -> defer.Deferred[Any]:
        d = self.window_event(matches)  # (a waiter for any delivered message, not only the windows channel's)
        if self._end is None:
            self.conn.send(0, message)
            self.flush()
        return d

    async def login(self, user: str, password: str, launch: Launch | None = None,
                    screen: tuple[int, int] | None = None) -> AuthResult:  # fmt: skip
        """Log in with a password; starts or resumes the user's session. LAUNCH: an app to start
        with the login (login_launched() answers it). SCREEN: the client's screen, whose size a
        seamless session this login starts takes (a running session keeps its own; resize()
        changes it)."""
        return await self._authenticate(Auth(method="password", user=user, password=password), launch, screen)

    async def resume(self, user: str, token: str, launch: Launch | None = None,
                     screen: tuple[int, int] | None = None) -> AuthResult:  # fmt: skip
        """Log in with a resume token from an earlier login (single use); LAUNCH, SCREEN as for login()."""
        return await self._authenticate(Auth(method="resume", user=user, token=token), launch, screen)

    async def ticket(self, user: str, ticket: str, launch: Launch | None = None,
                     screen: tuple[int, int] | None = None) -> AuthResult:  # fmt: skip
        """Log in with a farm redirect's ticket (client/redirect.py; single use); LAUNCH, SCREEN as for login()."""
        return await self._authenticate(Auth(method="ticket", user=user, token=ticket), launch, screen)

    async def _authenticate(self, auth: Auth, launch: Launch | None = None,
                            screen: tuple[int, int] | None = None) -> AuthResult:  # fmt: skip
        """AUTH_RESULT on success; RemoteError on refusal, Redirected when a farm sends us on.
        LAUNCH goes in the AUTH where the server starts it with the login (AUTH_LAUNCH_CAPABILITY:
        a new session runs it before the client hears of its login), else as a LAUNCH right
        behind a successful AUTH_RESULT. SCREEN goes in the AUTH where the server starts a new
        seamless session at that size (AUTH_SCREEN_CAPABILITY). A LAUNCH that comes with a SCREEN is meant
        for a screen of that size: a server that cannot take the screen gets no LAUNCH from the
        login (login_carries_launch() is false), and the caller launches once it has fitted the
        session's screen."""
        hello = self.conn.peer_hello
        said = hello.capabilities if hello is not None else ()
        with_screen = screen is not None and AUTH_SCREEN_CAPABILITY in said
        if screen is not None and not with_screen:
            launch = None
        with_auth = launch is not None and AUTH_LAUNCH_CAPABILITY in said
        if with_screen:
            auth = dataclasses.replace(auth, screen=screen)
        self._login_launch = None
        if launch is not None:  # its waiter before the AUTH: the answer may follow AUTH_RESULT at once
            self._login_launch = self.window_event(_launch_answer(launch.request))
            self._login_launch.addErrback(lambda failure: failure.value)  # kept for login_launched(), never unhandled
        result: AuthResult = await self._request(dataclasses.replace(auth, launch=launch) if with_auth else auth,
                                                 lambda m: isinstance(m, AuthResult))  # fmt: skip
        if not result.ok and self._login_launch is not None:  # no login, no launch: nothing will answer
            self._waiters = [(matches, d) for matches, d in self._waiters if d is not self._login_launch]
            self._login_launch = None
        if not result.ok and result.redirect:
            raise Redirected(result)
        if not result.ok:
            raise RemoteError(result.code, result.message)
        if launch is not None and not with_auth:
            self.conn.send(0, launch)
            self.flush()
        return result

    def login_carries_launch(self) -> bool:
        """The last login took a launch (in its AUTH or behind it): login_launched() answers it."""
        return self._login_launch is not None

    async def login_launched(self) -> LaunchResult:
        """The LAUNCH_RESULT of the last login's launch; RemoteError if it was refused."""
        if self._login_launch is None:
            raise RuntimeError("the login carried no launch")
        result = await self._login_launch
        if isinstance(result, Exception):  # the connection ended first
            raise result
        if not result.ok:
            raise RemoteError(result.code, result.message)
        return result

    async def logoff(self) -> None:
        """End the session; returns once the server has closed the connection."""
        self.conn.send(0, Logoff())
        self.flush()
        end = await self.ended
        if end.code != ReasonCode.NORMAL:
            raise end

    async def list_apps(self, locale: str = "") -> AppList:
        """The apps published to this user, names and comments in ``locale`` when translated."""
        return await self._request(AppListRequest(locale=locale), lambda m: isinstance(m, AppList))  # type: ignore[no-any-return]

    async def icon(self, app: str, size: int, request: int = 1) -> bytes:
        """The PNG icon of ``app`` at ``size`` x ``size``; RemoteError if the server has none for us."""
        answer: Icon = await self._request(
            IconRequest(request=request, app=app, size=size),
            lambda m: isinstance(m, Icon) and m.request == request,
        )
        if not answer.ok:
            raise RemoteError(answer.code, answer.message)
        return answer.png

    def apps_changed(self) -> defer.Deferred[AppsChanged]:
        """Fires at the server's next APPS_CHANGED: list_apps() would answer differently now."""
        return self.window_event(lambda m: isinstance(m, AppsChanged))  # (any message the client delivers)

    def app_exited(self, pid: int) -> defer.Deferred[AppExited]:
        """Fires with APP_EXITED once the app with ``pid`` (from its LAUNCH_RESULT) ends."""
        return self.window_event(lambda m: isinstance(m, AppExited) and m.pid == pid)

    async def launch(self, app: str, args: tuple[str, ...] = (), request: int = 1) -> LaunchResult:
        result: LaunchResult = await self._request(Launch(request=request, app=app, args=args),
                                                   _launch_answer(request))  # fmt: skip
        if not result.ok:
            raise RemoteError(result.code, result.message)
        return result

    async def open_channel(self, kind: ChannelKind) -> None:
        d: defer.Deferred[None] = defer.Deferred()
        self._channel_waiters[int(kind)] = d
        self.conn.open_channel(int(kind), kind)
        self.flush()
        await d
        if kind is ChannelKind.DISPLAY:
            self.display_opened()
        if kind is ChannelKind.DISPLAY and self.video_codecs:
            self.conn.send(DISPLAY, VideoCaps(codecs=self.video_codecs))  # H264 regions welcome
            self.flush()

    async def open_audio(self, handler: Callable[[Message | None], None]) -> None:
        """Open audio-out; HANDLER gets AUDIO_FORMAT once capture runs, then AUDIO_DATA (None: closed)."""
        self.channel_handlers[AUDIO_OUT] = handler
        await self.open_channel(ChannelKind.AUDIO_OUT)

    def send_mic(self, message: Message) -> bool:
        """Queue a MIC_FORMAT/MIC_DATA on audio-in; False (dropped) if the session is not keeping up."""
        if self.conn.send_window(AUDIO_IN) < frame_cost(message):
            return False
        self.conn.send(AUDIO_IN, message)
        self.flush()
        return True

    def refresh(self) -> None:
        """Ask the session to send everything on screen again (REFRESH_REQUEST)."""
        if DISPLAY in self.conn.open_channels():
            self.conn.send(DISPLAY, RefreshRequest())
            self.flush()

    def next_frame(self) -> defer.Deferred[int]:
        """Fires with the sequence number of the next complete frame."""
        if self._end is not None:
            return defer.fail(self._end)
        d: defer.Deferred[int] = defer.Deferred()
        self._frame_waiters.append(d)
        return d

    def resize(self, width: int, height: int) -> defer.Deferred[DesktopSize]:
        """Ask for a width x height desktop; fires with the server's DESKTOP_SIZE answer.

        The display channel must be open and its first DESKTOP_SIZE received.
        The server clamps the size, so the answer may differ from the request.
        """
        if self._end is not None:
            return defer.fail(self._end)
        d: defer.Deferred[DesktopSize] = defer.Deferred()
        self._waiters.append((lambda m: isinstance(m, DesktopSize), d))
        self.conn.send(DISPLAY, ResizeRequest(width=width, height=height))
        self.flush()
        return d

    def send_input(self, message: Message) -> None:
        self.conn.send(INPUT, message)
        self.flush()

    def key(self, keysym: int, down: bool) -> None:
        self.send_input(Key(keysym=keysym, down=down))

    def pointer(self, x: int, y: int) -> None:
        self.send_input(Pointer(x=x, y=y))

    def button(self, x: int, y: int, button: int, down: bool) -> None:
        self.send_input(Button(x=x, y=y, button=button, down=down))

    def wheel(self, x: int, y: int, dx: int, dy: int) -> None:
        self.send_input(Wheel(x=x, y=y, dx=dx, dy=dy))

    async def sync(self) -> None:
        """Wait until the session has injected every input sent so far."""
        self._sync_seq += 1
        seq = self._sync_seq
        d = self._request_on_input(Sync(seq=seq), lambda m: isinstance(m, SyncDone) and m.seq == seq)
        await d

    def _request_on_input(self, message: Message, matches: Callable[[Message], bool]) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiters.append((matches, d))
        self.send_input(message)
        return d

    def disconnect(self) -> None:
        if self.transport is not None:
            self.drop()
