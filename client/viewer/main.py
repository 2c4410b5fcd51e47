# Entry point of `svclient view`. Everything that can make the viewer fail
# before a window appears is checked first and reported in one line, without
# a traceback and before any password prompt: PySide6 missing, no local
# display (DISPLAY unset or not answering), a Qt platform plugin that is
# absent or cannot load its libraries (Qt itself would abort the process).
# Then the link starts connecting and logging in on its reactor thread while
# the main thread loads Qt and builds the QApplication (client/viewer/early.py
# says why); Qt runs the main thread and the link its reactor thread; Ctrl+C
# and closing the launcher disconnect, leaving the session running.
"""run_viewer: checks, then the Qt event loop with the link's reactor thread."""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import importlib.util
import os
import signal
import sys
from typing import Any, NamedTuple, cast

from client.cli import EXIT_CONNECT, EXIT_USAGE

# How often (ms) the Qt loop lets Python run its signal handlers (Ctrl+C).
SIGNAL_POLL_MS = 200
# Longest wait for the link's first AUTH before Qt is loaded anyway (a password prompt, a slow server).
AUTH_SENT_WAIT_SECONDS = 2.0


class NoDisplay(Exception):
    """The viewer cannot show windows here; the message says why."""


def _plugin_dir() -> str:
    """Qt's platform plugins, found without loading PySide6 (that happens while the link connects)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("No module named 'PySide6'")
    return os.path.join(list(spec.submodule_search_locations)[0], "Qt", "plugins", "platforms")


class LocalDisplay(NamedTuple):
    """What check_display found: the Qt platform, and the primary screen's free area (width,
    height) where X says it (None: not known before Qt is up)."""

    platform: str
    free_area: tuple[int, int] | None


# Environment variables with which Qt's screen sizes are no longer X's pixels (a scale factor, a DPI).
QT_SCALING_ENVS = ("QT_SCALE_FACTOR", "QT_SCREEN_SCALE_FACTORS", "QT_AUTO_SCREEN_SCALE_FACTOR", "QT_FONT_DPI",
                   "QT_USE_PHYSICAL_DPI", "QT_ENABLE_HIGHDPI_SCALING")  # fmt: skip
# X's default resolution: an Xft.dpi other than this makes Qt 6 scale (device pixel ratio Xft.dpi / 96).
X_DEFAULT_DPI = 96


def free_area(display: Any, environ: dict[str, str] | None = None) -> tuple[int, int] | None:
    """The primary screen's free area as Qt's xcb platform computes it (QScreen.availableGeometry):
    the RandR primary output's CRTC (else the first output showing something, else the whole X
    screen), within the window manager's _NET_WORKAREA (its first desktop's). Read before Qt loads,
    so that a seamless login can carry it (ViewerLink); Qt's own figure follows once it is up.
    None where Qt would scale it (QT_SCALING_ENVS, an Xft.dpi other than 96): Qt then says it."""
    from Xlib import Xatom, error  # type: ignore[import-untyped]

    env = os.environ if environ is None else environ
    if any(env.get(name) for name in QT_SCALING_ENVS):
        return None
    screen = display.screen()
    root = screen.root
    area = (0, 0, screen.width_in_pixels, screen.height_in_pixels)
    try:
        resources_db = root.get_full_property(Xatom.RESOURCE_MANAGER, Xatom.STRING)
        for line in (resources_db.value if resources_db is not None else b"").splitlines():
            name, _, value = (line.decode(errors="replace") if isinstance(line, bytes) else line).partition(":")
            if name.strip() == "Xft.dpi" and value.strip() not in ("", str(X_DEFAULT_DPI)):
                return None
        if display.has_extension("RANDR"):
            resources = root.xrandr_get_screen_resources()
            primary = root.xrandr_get_output_primary().output
            for output in [primary] * bool(primary) + [o for o in resources.outputs if o != primary]:
                crtc = display.xrandr_get_output_info(output, resources.config_timestamp).crtc
                if crtc:
                    info = display.xrandr_get_crtc_info(crtc, resources.config_timestamp)
                    if info.width and info.height:
                        area = (info.x, info.y, info.width, info.height)
                        break
        work = root.get_full_property(display.intern_atom("_NET_WORKAREA"), Xatom.CARDINAL)
    except error.XError:
        return None
    x, y, width, height = area
    if work is not None and len(work.value) >= 4:
        wx, wy, ww, wh = (int(v) for v in work.value[:4])
        left, top = max(x, wx), max(y, wy)
        width, height = min(x + width, wx + ww) - left, min(y + height, wy + wh) - top
    return (width, height) if width > 0 and height > 0 else None


def check_display(environ: dict[str, str] | None = None, plugins: str | None = None) -> LocalDisplay:
    """The Qt platform to use and what the local screen offers; NoDisplay if it cannot work here."""
    env = os.environ if environ is None else environ
    platform = (env.get("QT_QPA_PLATFORM") or "").split(";")[0].split(":")[0]
    if not platform:
        if env.get("DISPLAY"):
            platform = "xcb"
        elif env.get("WAYLAND_DISPLAY"):
            platform = "wayland"
        else:
            raise NoDisplay("no local display: DISPLAY is not set (the viewer needs an X or Wayland desktop)")
    directory = plugins if plugins is not None else _plugin_dir()
    path = os.path.join(directory, f"libq{platform}.so")
    if not os.path.exists(path):
        known = sorted(n[4:-3] for n in os.listdir(directory) if n.startswith("libq") and n.endswith(".so"))
        raise NoDisplay(f"Qt platform {platform!r} is not available (QT_QPA_PLATFORM); have: {', '.join(known)}")
    try:
        ctypes.CDLL(path)
    except OSError as exc:
        raise NoDisplay(f"the Qt {platform} platform cannot load: {exc}") from None
    if platform == "xcb":
        if not env.get("DISPLAY"):
            raise NoDisplay("no local display: DISPLAY is not set")
        from Xlib import display, error  # type: ignore[import-untyped]

        try:
            local = display.Display(env["DISPLAY"])
        except (error.DisplayError, error.ConnectionClosedError, OSError, ValueError, OverflowError) as exc:
            raise NoDisplay(f"cannot open the local display {env['DISPLAY']}: {exc}") from None
        try:
            return LocalDisplay(platform, free_area(local, env))
        finally:
            local.close()
    return LocalDisplay(platform, None)


def run_viewer(args: argparse.Namespace) -> int:
    """Run the viewer until Ctrl+C, the launcher closes or the session ends."""
    try:
        local = check_display()
    except ImportError as exc:
        print(f"svclient: the viewer needs PySide6 (pip install 'sessiond[viewer]'): {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NoDisplay as exc:
        print(f"svclient: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    # `kill -USR1 <pid>` writes every thread's Python stack to stderr (a viewer that hangs).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from client.viewer.damage import TRACE_ENV, LatencyTrace
    from client.viewer.early import EarlyEvents
    from client.viewer.link import ViewerLink

    trace = LatencyTrace(os.environ.get(TRACE_ENV) or None)
    link = ViewerLink(args, EarlyEvents(), trace)
    # Seamless: the session's screen takes the local free area, so the login carries it (and the first
    # launch with it) instead of waiting for Qt to say it; Qt's figure corrects it if it differs.
    link.local_screen = local.free_area
    link.start()  # connects and logs in while Qt loads
    # Qt's imports would compete with the connect, TLS and AUTH for the one interpreter lock; once AUTH is
    # out the reactor thread waits for PAM and the session's start, and Qt loads meanwhile.
    link.auth_sent.wait(AUTH_SENT_WAIT_SECONDS)
    try:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication

        from client.viewer.app import ViewerUi
    except ImportError as exc:
        link.stop()
        print(f"svclient: the viewer needs PySide6 (pip install 'sessiond[viewer]'): {exc}", file=sys.stderr)
        return EXIT_USAGE

    trace.mark("qt loaded")
    app = cast(QApplication, QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "svclient"]))
    app.setApplicationName("svclient")
    app.setQuitOnLastWindowClosed(False)
    ui = ViewerUi(app, args, link)
    signal.signal(signal.SIGINT, lambda *_: app.exit(0))
    signal.signal(signal.SIGTERM, lambda *_: app.exit(0))
    poll = QTimer()
    poll.timeout.connect(lambda: None)  # wakes Python so the handlers above run
    poll.start(SIGNAL_POLL_MS)
    ui.start()
    code = app.exec()
    ui.stop()
    ui.trace.close()
    code = ui.exit_code or code
    # Leave now, without the interpreter's finalization: nothing is left to write (the trace is
    # closed, stdio is flushed below), and a stuck reactor's non-daemon pool threads, or Qt and
    # PySide objects torn down in the wrong order, would keep a viewer the user closed running
    # (a CI run saw a viewer still running 30 s after its launcher closed).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
