# The viewer's connection, on a Twisted reactor in a worker thread: Qt owns
# the main thread (and Python's signal handling), Twisted owns the socket.
# Logging in is svclient's own (client.cli.open_session: resume token, then
# password file/env/prompt, known_hosts pinning, farm redirects), so the
# viewer behaves like every other subcommand.
#
# Everything the GUI asks for crosses with reactor.callFromThread; everything
# the GUI must learn goes out through LinkEvents, whose implementation (the Qt
# bridge) turns each call into a queued Qt signal. A connection that drops
# without the server's CLOSE (network loss, a killed socket) is retried with
# the resume token the last login stored, the windows shown stale meanwhile;
# a CLOSE from the server (logoff, the session opened elsewhere, a refusal)
# ends the viewer with the server's reason.
"""ViewerLink: connect, log in, keep the session's windows flowing, reconnect."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any, Protocol

from twisted.internet import defer

from client.audio import Player
from client.cli import EXIT_REFUSED, UsageError, describe_failure, open_session, open_windows
from client.session import ConnectionEnded, RemoteError, SessionClient, with_timeout
from client.viewer.apps import AppRow, AppsWatch
from client.viewer.damage import DamageCollector, LatencyTrace, Patch, Snapshot, snapshot_of
from client.viewer.gate import FrameGate
from protocol.messages import ChannelKind, Launch, Message
from protocol.windows import WindowFocus

WINDOWS = int(ChannelKind.WINDOWS)
# How long the viewer keeps trying to get a lost connection back.
RECONNECT_GIVE_UP_SECONDS = 300.0
# Pause between reconnect attempts: doubled from the first up to the last.
RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY = 0.5, 5.0
# How long stop() waits for the reactor thread to end.
STOP_WAIT_SECONDS = 5.0
# Keys typed into a window the session has not focused wait (at most this long)
# for its WINDOW_FOCUS: the session's window manager and its key injection are
# separate X connections, so keys sent right behind a raise could reach the
# previously focused app.
FOCUS_WAIT_SECONDS = 0.5
# Keys held back while waiting for focus (more are dropped: a stuck session must not grow the queue).
MAX_HELD_KEYS = 256


class LinkEvents(Protocol):
    """What the link tells the GUI; every method is called on the reactor thread."""

    def windows_changed(self, snapshot: Snapshot) -> None: ...

    def pixels_ready(self) -> None: ...

    def status(self, text: str, stale: bool) -> None: ...

    def finished(self, message: str, code: int) -> None: ...

    def apps_listed(self, apps: list[tuple[str, str, str, bytes]]) -> None: ...


class ViewerLink:
    """The session connection; start() runs it, stop() ends it (session kept)."""

    def __init__(self, args: argparse.Namespace, events: LinkEvents, trace: LatencyTrace | None = None) -> None:
        from twisted.internet import reactor

        self.args = args
        self.events = events
        self.trace = trace if trace is not None else LatencyTrace(None)
        self.reactor: Any = reactor
        self.client: SessionClient | None = None
        self.seamless = False
        self.collector: DamageCollector | None = None
        self.gate = FrameGate()  # the framebuffer memory's turns: reactor writes, GUI paints (client/viewer/gate.py)
        self.player: Player | None = None
        self._stopping = False
        self._request = 0
        self._held_keys: list[tuple[int, bool]] = []
        self._focus_wait: Any = None
        self.apps = AppsWatch(self.reactor, lambda: self.client, args.timeout, self._apps_shown,
                              lambda text: self.events.status(text, False))  # fmt: skip
        self._apps_listed = False
        # The local screen's free area (set by the GUI before start()): the session's screen is asked
        # to take it, so that placement and maximize in the session match the local desktop.
        self.local_screen: tuple[int, int] | None = None
        self._screen_asked: tuple[int, int] | None = None
        self._display_open = False  # the current connection's display channel is open
        # Fired once the GUI knows the local screen (set_local_screen): in seamless mode the first
        # launches wait for it, so an app's window is placed on the screen size the session will have.
        self.gui_up: defer.Deferred[None] = defer.Deferred()
        self._thread = threading.Thread(target=self._run, name="svclient-reactor", daemon=True)
        # Set once the first AUTH went out (or the first connection failed): from then on the reactor
        # thread waits for the server, and the GUI thread can load Qt without slowing the login down.
        self.auth_sent = threading.Event()

    # -- thread plumbing -----------------------------------------------------------
    def start(self) -> None:
        """Run the reactor thread and connect."""
        self.reactor.callWhenRunning(lambda: defer.ensureDeferred(self._main()))
        self._thread.start()

    def _run(self) -> None:
        self.reactor.run(installSignalHandlers=False)

    def stop(self) -> None:
        """Disconnect (the session keeps running) and end the reactor thread."""
        if not self._thread.is_alive():
            return
        self.reactor.callFromThread(self._shutdown)
        self._thread.join(timeout=STOP_WAIT_SECONDS)

    def alive(self) -> bool:
        """True while the reactor thread runs (stop() could not end it in time)."""
        return self._thread.is_alive()

    def _shutdown(self) -> None:
        self._stopping = True
        self.apps.stop()
        if self.player is not None:
            self.player.close()
        if self.client is not None:
            self.client.disconnect()
        self.reactor.callLater(0.05, self.reactor.stop)

    def call(self, method: str, *args: Any) -> None:
        """Call a SessionClient method on the reactor thread (dropped while disconnected)."""
        self.reactor.callFromThread(self._call, method, args)

    def _call(self, method: str, args: tuple[Any, ...]) -> None:
        client = self.client
        if client is None or client.transport is None or getattr(client, "_end", None) is not None:
            return
        try:
            getattr(client, method)(*args)
        except Exception as exc:  # noqa: BLE001 - one request's boundary (e.g. channel not open yet)
            self.events.status(f"{method} failed: {exc}", False)

    def key(self, window: int, keysym: int, down: bool) -> None:
        """Send a key to WINDOW (from any thread): the session focuses it first."""
        self.reactor.callFromThread(self._key, window, keysym, down)

    def _key(self, window: int, keysym: int, down: bool) -> None:
        client = self.client
        if client is None or getattr(client, "_end", None) is not None:
            return
        if not self.seamless or window == 0 or client.windows.focus == window:
            if not self._held_keys:
                self.trace.mark("sent")  # before encoding: the library's part includes it, as in bench_spine
                client.key(keysym, down)
                return
        if self._focus_wait is None:
            client.raise_window(window)
            wanted = window

            def focused(message: Message) -> bool:
                return isinstance(message, WindowFocus) and message.window == wanted

            self._focus_wait = client.window_event(focused)
            self._focus_wait.addTimeout(FOCUS_WAIT_SECONDS, self.reactor)
            self._focus_wait.addBoth(self._release_keys)
        if len(self._held_keys) < MAX_HELD_KEYS:
            self._held_keys.append((keysym, down))

    def _release_keys(self, _result: object) -> None:
        self._focus_wait = None
        held, self._held_keys = self._held_keys, []
        client = self.client
        if client is not None and getattr(client, "_end", None) is None:
            for keysym, down in held:
                client.key(keysym, down)

    def close(self, window: int, force: bool) -> None:
        """Ask WINDOW's app to close it, or (FORCE) disconnect the app (from any thread)."""
        self.reactor.callFromThread(self._close, window, force)

    def _close(self, window: int, force: bool) -> None:
        client = self.client
        win = client.windows.windows.get(window) if client is not None else None
        if win is not None and not force:
            win.close_unanswered = False  # set again only by this request's own WINDOW_CLOSE_UNANSWERED
        self._call("close_window", (window, force))

    def repaint(self, window: int) -> None:
        """Send WINDOW's whole current picture to the GUI again (from any thread)."""
        self.reactor.callFromThread(lambda: self.collector.refresh([window]) if self.collector is not None else None)

    def fit_screen(self, width: int, height: int) -> None:
        """Ask the session for a WIDTH x HEIGHT screen (from any thread): the size of a local
        maximized window, so the session's maximized windows fill it (seamless mode only)."""
        self.reactor.callFromThread(self._fit_screen, (width, height))

    def _fit_screen(self, size: tuple[int, int] | None) -> None:
        client = self.client
        if not self.seamless or size is None or client is None or client.transport is None:
            return
        fb = client.framebuffer
        if size == self._screen_asked or (fb is not None and size == (fb.width, fb.height)):
            return  # asked already (the session may clamp it: [session] max_width/max_height)
        self._screen_asked = size
        client.resize(*size).addErrback(lambda _failure: None)  # DESKTOP_SIZE answers; a lost one is re-asked

    def set_local_screen(self, size: tuple[int, int] | None) -> None:
        """The local screen's free area (None: unknown), known once Qt is up (from any thread):
        the session's screen is asked to take it, now if the display is open, else when it opens."""
        if not self._thread.is_alive():  # not started yet: the reactor does not run
            self.local_screen = size
            self.gui_up.callback(None)
            return
        self.reactor.callFromThread(self._set_local_screen, size)

    def _set_local_screen(self, size: tuple[int, int] | None) -> None:
        self.local_screen = size
        if self._display_open and size is not None:
            self._fit_screen(self._screen_asked or size)
        if not self.gui_up.called:
            self.gui_up.callback(None)

    def take_patches(self) -> list[Patch]:
        """Pixels waiting for the GUI (GUI thread)."""
        return self.collector.take() if self.collector is not None else []

    def patches_painted(self) -> None:
        """The GUI painted the patches it took (GUI thread; DamageCollector.painted)."""
        if self.collector is not None:
            self.collector.painted()

    def launch(self, app: str) -> None:
        """Launch APP in the session (from any thread)."""
        self.reactor.callFromThread(lambda: defer.ensureDeferred(self._launch(app)))

    # -- the connection ------------------------------------------------------------
    async def _main(self) -> None:
        try:
            await self._connect(first=True)
            while not self._stopping:
                client = self.client
                if client is None:
                    break
                end = await client.ended
                if self._stopping:
                    break
                if getattr(client, "_end", None) is not None:  # the server's CLOSE: no reconnect
                    self._finish(f"connection ended: {end}", 0 if end.code == 0 else EXIT_REFUSED)
                    return
                await self._reconnect(end)
        except Exception as exc:  # noqa: BLE001 - every failure ends the viewer with one line
            failure = describe_failure(exc, self.args.server)
            if failure is None:
                failure = (f"internal error: {type(exc).__name__}: {exc}", EXIT_REFUSED)
            self._finish(*failure)

    def _finish(self, message: str, code: int) -> None:
        self.auth_sent.set()  # no login to wait for
        if not self._stopping:
            self.events.finished(message, code)

    async def _reconnect(self, end: ConnectionEnded) -> None:
        self.gate.close_frame(False)  # (a frame is held whole until its FRAME_END: a cut-off one was never applied)
        self.events.status(f"connection lost ({end}); reconnecting", True)
        deadline = time.monotonic() + RECONNECT_GIVE_UP_SECONDS
        delay = RECONNECT_FIRST_DELAY
        while not self._stopping:
            await self._sleep(delay)
            try:
                await self._connect(first=False)
            except (RemoteError, UsageError):
                raise
            except Exception as exc:  # noqa: BLE001 - unreachable for now: try again
                if describe_failure(exc, self.args.server) is None or time.monotonic() > deadline:
                    raise
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                continue
            self.events.status("reconnected", False)
            return

    def _auth_sent(self) -> None:
        self.trace.mark("auth sent")
        self.auth_sent.set()

    def _sleep(self, seconds: float) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self.reactor.callLater(seconds, d.callback, None)
        return d

    async def _connect(self, first: bool) -> None:
        args, timeout = self.args, self.args.timeout
        self._display_open = False
        # The first app goes with the first login, so a new session starts it as soon as its X server is up
        # (protocol.md section 5). Seamless: the login says the local screen too, which a new session's screen
        # takes, so the app's window is placed on the screen it will have; if the local screen is not known
        # yet, or the server cannot take it, the launches wait for the screen's fit (below).
        seamless_screen = None if args.desktop else (self._screen_asked or self.local_screen)
        with_auth = None
        if first and args.launch and (args.desktop or seamless_screen is not None):
            self._request += 1
            with_auth = Launch(request=self._request, app=args.launch[0])
        client, _result, server = await open_session(self.reactor, args, self._auth_sent, with_auth, seamless_screen)
        self.trace.mark("logged in")
        with_login = with_auth is not None and client.login_carries_launch()
        if self._stopping:
            client.disconnect()
            return
        self.client = client
        title = f"{args.user}@{server}"
        collector = DamageCollector(client, self.events.pixels_ready, lambda: self._windows_changed(client, title),
                                    self.trace, self.gate)  # fmt: skip
        self.collector = collector
        client.display_observers.append(collector)
        client.display_gate = collector.before_write
        client.hold_frames = True  # a frame is applied whole at its FRAME_END: the gate is open only then
        # The start's requests go out at once (one round trip instead of one each): the windows channel
        # first (its handler is wrapped as soon as it opens, before any window message), then input and
        # display; the first connection's launches too where the login carried the first one. Otherwise (in
        # seamless mode) they wait for the session's screen to be fitted to the local one (below), so the
        # app's window is placed on it.
        windows = None if args.desktop else defer.ensureDeferred(open_windows(self.reactor, client, timeout))
        channels = defer.gatherResults([
            defer.ensureDeferred(with_timeout(self.reactor, client.open_channel(kind), timeout, what))
            for kind, what in ((ChannelKind.INPUT, "the input channel"), (ChannelKind.DISPLAY, "the display"))
        ], consumeErrors=True)  # fmt: skip
        launches = None
        if first and (args.desktop or with_login):
            launches = defer.ensureDeferred(self._launch_all(with_login))
        self.seamless = windows is not None and await windows
        if self.seamless:
            inner = client.channel_handlers[WINDOWS]

            def on_window_message(message: Message | None) -> None:
                inner(message)
                self._windows_changed(client, title)

            client.channel_handlers[WINDOWS] = on_window_message
            self._windows_changed(client, title)
        try:
            await channels
        except defer.FirstError as exc:
            raise exc.subFailure.value from None
        client.refresh()
        self._display_open = True
        if self.seamless and first and launches is None and args.launch and self.local_screen is None \
                and not self.gui_up.called:
            await self.gui_up  # the GUI is loading Qt (client/viewer/early.py): the local screen comes with it
        # A new connection: ask again (another client may have resized it), for the last size asked (a local
        # maximized window's) or else the local screen's.
        wanted, self._screen_asked = self._screen_asked or self.local_screen, None
        self._fit_screen(wanted)
        if first and launches is None:  # seamless: right behind the resize, so the app starts on the fitted screen
            launches = defer.ensureDeferred(self._launch_all())
        if args.audio:
            await self._open_audio(client)
        if launches is not None:
            await launches
        if first:
            if not args.launch:
                self.apps.start()  # armed before the first list: a notice during it is not lost
                await self.apps.first()
        else:
            self.apps.reconnected()

    def _windows_changed(self, client: SessionClient, title: str) -> None:
        if client is self.client:
            self.events.windows_changed(snapshot_of(client, title))

    async def _launch_all(self, first_with_login: bool = False) -> None:
        """The command line's apps, one after the other: each window maps (and is placed) in that order.
        FIRST_WITH_LOGIN: the first went with the login; its answer is awaited here."""
        for index, app in enumerate(self.args.launch):
            await self._launch(app, with_login=first_with_login and index == 0)

    async def _launch(self, app: str, with_login: bool = False) -> None:
        client = self.client
        if client is None:
            return
        if not with_login:
            self._request += 1
        try:
            if not with_login:
                self.trace.mark("launch sent")
            answer = client.login_launched() if with_login else client.launch(app, (), self._request)
            result = await with_timeout(self.reactor, answer, self.args.timeout, "the launch")
        except (RemoteError, ConnectionEnded) as exc:
            self.events.status(f"cannot launch {app}: {exc}", False)
            return
        self.events.status(f"launched {app} (pid {result.pid})", False)

    def _apps_shown(self, apps: list[AppRow]) -> None:
        if self._apps_listed:
            self.events.status(f"the published apps changed: {', '.join(app[0] for app in apps) or 'none'}", False)
        self._apps_listed = True
        self.events.apps_listed(apps)

    async def _open_audio(self, client: SessionClient) -> None:
        why = Player.available()
        if why is not None:
            self.events.status(f"no sound: {why}", False)
            return
        if self.player is None:
            self.player = Player()
        player = self.player

        def handler(message: Message | None) -> None:
            if message is not None:
                player.handle(message, time.monotonic())

        try:
            await with_timeout(self.reactor, client.open_audio(handler), self.args.timeout, "the audio channel")
        except (RemoteError, ConnectionEnded) as exc:
            self.events.status(f"no sound: {exc}", False)

