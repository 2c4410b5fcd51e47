# The session agent: runs as the user inside the session sandbox. It owns the
# session's Xvfb and apps, turns X damage into display frames (capture only
# what changed, encode per region, pace by client acknowledgements), injects
# input through XTEST, and talks to sessiond over one Unix socket with the
# frame protocol. In seamless mode (the default) it is also the session's
# window manager and captures each window on its own (seamless.py); in
# desktop mode it captures the root and only manages focus (windows.py). The
# frame pacing lives in display.py, the link's channel dispatch in
# link_events.py.
"""Entry point and event loop of the per-session agent."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
from typing import TYPE_CHECKING

from Xlib import display as xdisplay_mod
from Xlib import error as XError  # noqa: N812 - python-xlib's module name

from isolation.slot import X_SLOT_ENVS
from protocol.messages import AppExited, DesktopSize, LaunchResult, Message, SpawnApp
from sessiond.agent.apps import AppLauncher
from sessiond.agent.audio import AudioService
from sessiond.agent.audio_server import SoundServer
from sessiond.agent.boundary import LogLimiter
from sessiond.agent.display import DisplayPipeline
from sessiond.agent.frame_sources import DesktopSource
from sessiond.agent.idle_release import IdleRelease, malloc_trim, release_display
from sessiond.agent.input_channel import InputChannel
from sessiond.agent.link import LinkProtocol
from sessiond.agent.link_events import CLOCK_REPORT_SECONDS, DISPLAY_CHANNEL, INPUT_CHANNEL, LinkEvents
from sessiond.agent.screen import ResizeCoalescer, ScreenError, ScreenResizer
from sessiond.agent.settings import FIRST_LAUNCH_ENV, SETTINGS_ENV, AgentSettings, SettingsError
from sessiond.agent.startup import AGENT_LOG, StartupMarks, keep_agent_extensions, log_to_file
from sessiond.agent.transfers import TransferService
from sessiond.agent.usb import UsbService
from sessiond.agent.seamless import Seamless
from sessiond.agent.window_model import Rect, WindowInfo
from sessiond.agent.windows import FocusManager
from sessiond.agent.xinput import InputInjector
from sessiond.agent.xpra_channel import XpraChannels
from sessiond.agent.xserver import adopt_xvfb, start_xvfb

if TYPE_CHECKING:
    from collections.abc import Callable

    from sessiond.agent.xpra_server import XpraServer

# Exit status when the agent finds itself privileged (fail closed).
EXIT_PRIVILEGED = 70
EXIT_START_FAILED = 73
# X events handled per drain before the loop serves the link again.
MAX_X_EVENTS_PER_DRAIN = 512


class Agent(LinkEvents):
    """Everything one session runs: X server, capture, input, apps, link."""

    def __init__(self, args: AgentSettings, token: str, marks: StartupMarks | None = None,
                 first_launch: str = "") -> None:  # fmt: skip
        """FIRST_LAUNCH: the login's launch (FIRST_LAUNCH_ENV's SPAWN_APP JSON), "" for none."""
        self.args = args
        self.marks = marks or StartupMarks()
        self._token = token
        self.loop = asyncio.get_running_loop()
        self.link: LinkProtocol | None = None
        self.app_backlog: list[LaunchResult | AppExited] = []  # app answers until a link is up (link_events)
        self.session_id = os.environ.get("SESSIOND_SESSION_ID", "")
        # Started at the largest size a client may ask for; RandR sets the real size.
        screen = args.x_screen()
        max_width, max_height = screen.width, screen.height
        resizable = (max_width, max_height) != (args.width, args.height)
        # Seamless: windows are redirected and the root is never shown, so Xvfb paints
        # no background and no cursor on it and its framebuffer is released (_release_unshown).
        seamless = not screen.root_shown and args.display != "xpra"
        # A warm slot's server, started before the login (isolation/xslot.py), else our own.
        adopted = adopt_xvfb({name: os.environ.pop(name) for name in X_SLOT_ENVS if name in os.environ}, *screen)
        self.xserver = adopted or start_xvfb(max_width, max_height, depth=screen.depth,
                                             shared_framebuffer=resizable or seamless,
                                             root_shown=screen.root_shown)  # fmt: skip
        self.marks.mark("Xvfb ready")
        self.x = xdisplay_mod.Display(self.xserver.display)
        self.screen = ScreenResizer(self.x, max_width, max_height)
        self.xserver.release_outside(*self.screen.set_size(args.width, args.height))
        self.resizes = ResizeCoalescer(self._resize, self.loop.call_later)
        self.width, self.height = self.screen.size()
        self.drop_log = LogLimiter(self.log)  # dropped messages: bounded lines per second
        app_env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
        app_env["DISPLAY"] = self.xserver.display
        self.audio = AudioService(self.loop, SoundServer(), self.log, max_kbps=args.audio_max_kbps,
                                  on_demand=args.sound_server_on_demand)  # fmt: skip
        app_env.update(self.audio.prepare(app_env))  # PULSE_SERVER: the session's own sound server
        self.apps = AppLauncher(self.loop, app_env, launch_timeout=args.launch_timeout, report=self._app_event,
                                before_spawn=self.audio.ready_for_apps,
                                log_path=os.path.join(os.path.dirname(args.socket), AGENT_LOG))  # fmt: skip
        # The login's launch starts now, on the screen's final size: the rest of the set-up, the
        # link and the client's AUTH_RESULT take place while it starts (the window manager adopts
        # a window mapped before it is up; the focus watch reports it).
        self._first_launch(first_launch)
        self.injector = InputInjector(self.x, log=self.drop_log)
        self.desktop: DesktopSource | None = None
        self.seamless: Seamless | None = None
        self.focus: FocusManager | None = None
        self.windows_channel: int | None = None  # the open windows channel (seamless)
        if seamless:
            self.seamless = Seamless(self.loop, self.x, self.xserver.display, Rect(0, 0, self.width, self.height),
                                     self.log, self._window_new)  # fmt: skip
            self.loop.add_reader(self.seamless.fileno(), self._pixels_readable)
            self.input = InputChannel(self.injector, self.seamless, self._reply_input, windows=self.seamless)
            self.display = DisplayPipeline(self.loop, args, self.seamless.source, lambda: self.link, self._drain_x)
            self._release_unshown(self.width, self.height)
        else:
            self.desktop = DesktopSource(self.xserver.display, self.loop.call_later)
            self.loop.add_reader(self.desktop.fileno(), self._desktop_damage)
            self.width, self.height = self.desktop.size
            self.focus = FocusManager(self.x, on_map=self._window_mapped)
            self.input = InputChannel(self.injector, self.focus, self._reply_input)
            self.display = DisplayPipeline(self.loop, args, self.desktop, lambda: self.link, self._drain_x)
        self.x.flush()
        display = self.display  # after an idle spell its rebuildable buffers go back (idle_release.py)
        # The capture buffers: the desktop's, or the windows' (composite.WindowPixels).
        buffers = self.seamless.source.pixels if self.seamless is not None else self.desktop
        idle = args.idle_release_seconds
        self.idle = IdleRelease(self.loop, lambda: display.last_frame_at,
                                lambda: release_display(display.encoder.release_idle, buffers, self.log, idle),
                                idle_seconds=idle)  # fmt: skip
        # USB/IP endpoint; listens only once the client opens a usb channel.
        self.usb = UsbService(self.loop, self.log, os.environ.get("XDG_RUNTIME_DIR") or os.path.dirname(args.socket))
        self.transfers = TransferService(self.loop, self.xserver.display, args, self.log)  # clipboard, files
        self.xpra: XpraServer | None = None
        runtime = os.path.dirname(args.socket)  # the session's private runtime directory
        xpra_socket: str | None = None  # None: xpra channels are refused
        xpra_version: Callable[[], str] = lambda: ""  # noqa: E731 - never asked without a socket
        if args.display == "xpra":  # xpra's module only where it runs
            from sessiond.agent import xpra_server  # noqa: PLC0415

            argv = xpra_server.xpra_argv(args.xpra, self.xserver.display, runtime, to_client=args.clip_to_client,
                                         from_client=args.clip_from_client)  # fmt: skip
            conf_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(args.xpra))), "etc", "xpra")
            env = xpra_server.xpra_env(app_env, self.xserver.display, runtime, conf_dir)
            self.xpra = xpra_server.XpraServer(self.loop, argv, env, self.log, link=lambda: self.link)
            xpra_socket = os.path.join(runtime, xpra_server.XPRA_DIR, xpra_server.XPRA_SOCKET)
            xpra_version = functools.partial(xpra_server.xpra_version, args.xpra)
        xpra = self.xpra
        self.xpra_channels = XpraChannels(
            xpra_socket, version=xpra_version, log=self.log,
            ready=(lambda: xpra.wait_ready()) if xpra is not None else None)  # fmt: skip
        self.stopped = asyncio.Event()
        self.loop.add_reader(self.x.fileno(), self._x_readable)
        self.loop.call_soon(self._x_readable)  # events read in during set-up
        self.loop.call_later(CLOCK_REPORT_SECONDS, self._report_clocks)

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def _first_launch(self, encoded: str) -> None:
        """Start the login's launch (ENCODED: a SPAWN_APP's JSON, "" for none).
        Its answers wait for the link (LinkEvents._app_event). With the sound server on demand
        its socket listens first and the app is exec'd in this call; an eager sound server is
        waited for as by any launch, once the loop runs."""
        if not encoded:
            return
        try:
            request = SpawnApp.decode(encoded.encode("utf-8"))
        except ValueError as exc:  # sessiond wrote it: a bug, never the user's input
            self.log(f"the login's launch is malformed ({exc}); not started")
            return
        if self.audio.on_demand:
            self.audio.start_server()  # only its socket: an app that connects starts it
            self.apps.spawn_now(request)
        else:
            self.apps.spawn(request)
        self.marks.mark("first launch")

    # -- X events ------------------------------------------------------------
    def _x_readable(self) -> bool:
        """Handle the X connection's events; True if none is left queued."""
        try:
            drained = self._drain_x()
        except XError.ConnectionClosedError as exc:
            self.log(f"the session's X server went away ({exc}); ending the session")
            self.loop.remove_reader(self.x.fileno())
            self.stopped.set()
            return False
        self.schedule_frame()
        return drained

    def _drain_x(self) -> bool:
        """Handle queued X events (at most MAX_X_EVENTS_PER_DRAIN); True if none is left."""
        # python-xlib reads whatever the server sent into its own queue on
        # every request and flush, after which the socket is no longer
        # readable and add_reader stays silent: so drain until the queue is
        # empty *after* the final flush, or an event can sit there unseen.
        # Bounded, so a client drawing without pause cannot keep the loop
        # here forever: what is left is picked up on the next loop turn.
        for _ in range(MAX_X_EVENTS_PER_DRAIN):
            if not self.x.pending_events():
                self.x.flush()
                if not self.x.pending_events():
                    self._flush_link()
                    return True
                continue
            event = self.x.next_event()
            if self.seamless is not None:
                handled = self.seamless.handle_x_event(event)
            else:
                handled = self._desktop_event(event)
            if not handled:
                self.injector.handle_event(event)  # MappingNotify: keyboard remapped
        self.x.flush()
        self._flush_link()
        self.loop.call_soon(self._x_readable)
        return False

    def _flush_link(self) -> None:
        """Send what the X events queued (window events: a menu that closed
        damages no other window, so no frame would carry its WINDOW_DESTROY)."""
        if self.link is not None:
            self.link.flush()

    def _desktop_event(self, event: object) -> bool:
        return self.focus is not None and self.focus.handle_event(event)

    def _desktop_damage(self) -> None:
        if self.desktop is not None and self.desktop.drain():
            self.display.trace.mark("notify")
            self.display.damaged(drained=False)  # the frame drains the X connection first

    def _window_mapped(self, window: int, pid: int | None) -> None:
        self.apps.window_mapped(window, pid)

    def _window_new(self, info: WindowInfo) -> str:
        """Seamless: a window appeared; complete its launch, return its app id."""
        # Composite filled the new window's pixmap from the root below it: those reads
        # made root pages resident again, though the root is never shown.
        self._release_unshown(self.width, self.height)
        if not info.managed:  # a menu or tooltip completes no launch
            return self.apps.app_of(info.pid)
        return self.apps.window_mapped(info.id, info.pid or None) or self.apps.app_of(info.pid)

    def _pixels_readable(self) -> None:
        # A window's structure change reaches both connections; python-xlib
        # may already hold its copy in its queue, where the socket's
        # readability no longer announces it: drain that queue too.
        drained = self._x_readable()
        if self.seamless is not None and self.seamless.pixels_readable():
            self.display.trace.mark("notify")
            self.display.damaged(drained)  # just drained: the frame need not again

    def schedule_frame(self) -> None:
        """Arrange for a frame if there is damage and the client keeps up."""
        self.display.schedule()

    # -- display ---------------------------------------------------------------
    def _resize(self, width: int, height: int) -> None:
        """Resize the X screen (clamped), re-create the capture, answer DESKTOP_SIZE."""
        if width > self.screen.max_width or height > self.screen.max_height:
            self.log(f"a client asked for a {width}x{height} screen; this session's largest is "
                     f"{self.screen.max_width}x{self.screen.max_height} ([session] max_width/max_height); clamped")
        try:
            size = self.screen.set_size(width, height)
        except (ScreenError, XError.XError) as exc:
            self.log(f"cannot resize the screen to {width}x{height}: {exc}")
            size = self.screen.size()
        if size != (self.width, self.height):
            self._release_unshown(*size)
            self.width, self.height = size
            if self.desktop is not None:
                # The shared segment is sized for the old root; XShmGetImage of a
                # root smaller or larger than the image fails, so start afresh.
                self.desktop.recreate()
                self.width, self.height = self.desktop.size
            if self.seamless is not None:
                self.seamless.resized(*size)
        link = self.link
        if link is None or not self.display.open:
            return
        # Frames already sent stay valid (they fit the old size and arrive
        # first); everything after this answer is drawn at the new size.
        link.conn.send(DISPLAY_CHANNEL, DesktopSize(width=self.width, height=self.height))
        link.flush()
        self.display.refresh()

    def _release_unshown(self, width: int, height: int) -> None:
        """Free the framebuffer pages nobody sees: outside the WIDTH x HEIGHT screen,
        and in seamless mode all of them (manual redirection: the root shows nothing,
        and without a background or cursor sprite Xvfb never paints it; ~8-11 MiB at 1080p)."""
        if self.seamless is not None:
            self.xserver.release_outside(0, 0)
        else:
            self.xserver.release_outside(width, height)

    # -- input -------------------------------------------------------------------
    def _reply_input(self, message: Message) -> None:
        if self.link is not None:
            self.link.conn.send(INPUT_CHANNEL, message)

    # -- shutdown ----------------------------------------------------------------
    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.x.fileno())
        self.apps.terminate_all()
        if self.xpra is not None:
            self.xpra.stop()
        self.audio.stop()
        self.usb.stop()
        self.transfers.stop()
        if self.link is not None:
            self.link.drop()
        for source in (self.seamless, self.desktop):
            if source is not None:
                with contextlib.suppress(Exception):
                    self.loop.remove_reader(source.fileno())
        try:
            if self.seamless is not None:
                self.seamless.close()
            if self.desktop is not None:
                self.desktop.close()
        finally:
            self.xserver.stop()


def load_settings() -> AgentSettings:
    """The settings sessiond serialized into our environment (sessiond.agent.settings)."""
    return AgentSettings.from_json(os.environ.pop(SETTINGS_ENV, ""))


async def run(args: AgentSettings, token: str, marks: StartupMarks | None = None, first_launch: str = "") -> int:
    agent = Agent(args, token, marks, first_launch)
    stop = agent.stopped
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        agent.loop.add_signal_handler(signum, stop.set)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    old_umask = os.umask(0o177)
    try:
        server = await agent.loop.create_unix_server(lambda: LinkProtocol(agent), path=args.socket)
    finally:
        os.umask(old_umask)
    agent.marks.mark("set up")
    agent.marks.report()
    print("READY", flush=True)
    malloc_trim()  # the heap the imports and the set-up freed goes back (not on the start-up's path)
    agent.audio.start_server()  # after READY: not on the session's start-up path (on demand: only its socket)
    if agent.xpra is not None:
        agent.xpra.start()  # after READY too: the first XPRA channel waits for its socket
    log_to_file(os.path.join(os.path.dirname(args.socket), AGENT_LOG))
    try:
        await stop.wait()
    finally:
        server.close()
        agent.shutdown()
        try:
            os.unlink(args.socket)
        except OSError:
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    marks = StartupMarks()
    keep_agent_extensions()  # before the first Display() (startup.py)
    if os.geteuid() == 0 or os.getuid() == 0:
        print("sessiond-agent: refusing to run as root", file=sys.stderr)
        return EXIT_PRIVILEGED
    token = os.environ.pop("SESSIOND_LINK_TOKEN", "")
    if not token:
        print("sessiond-agent: no link token in the environment", file=sys.stderr)
        return EXIT_START_FAILED
    try:
        args = load_settings()
    except SettingsError as exc:
        print(f"sessiond-agent: {exc}", file=sys.stderr)
        return EXIT_START_FAILED
    try:
        return asyncio.run(run(args, token, marks, os.environ.pop(FIRST_LAUNCH_ENV, "")))
    except Exception as exc:  # noqa: BLE001 - report start failures in one line
        print(f"sessiond-agent: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_START_FAILED


if __name__ == "__main__":
    sys.exit(main())
