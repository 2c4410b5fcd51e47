# `svclient view` window states and what happens around them, end to end with
# real components (a sessiond of this module's own, whose catalog directory
# the test edits; the installed viewer on a client-side Xvfb with openbox;
# the session looked at from inside): the stale shade while the network is
# down and the session's pixels after the reconnect; maximize mirrored both
# ways; an app that ignores WM_DELETE_WINDOW offered a force close; the
# launcher following the published apps without reconnecting.
#
# The viewer connects through a GatedProxy, so the test can hold the network
# "down" (a reconnect that nobody answers) for as long as it looks at the
# shaded windows, then let it through.
"""svclient view: stale shade, reconnect pixels, maximize both ways, force close, live launcher."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image, ImageChops

from svtest import VENV_BIN, Server, TestUser, copy_catalog, start_sessiond, stop_sessiond
from test_seamless import agent_pid
from viewer_desktop import ClientDesktop
from viewer_session import (
    GatedProxy,
    Viewer,
    inside,
    session_pixels,
    session_window,
    viewer_argv,
    wm_delete,
    xterm_title,
)

pytestmark = [pytest.mark.integration, pytest.mark.root]

# Seconds the force-close test waits for the "Not responding" dialog before it closes again (grace: 5 s).
CLOSE_AGAIN_SECONDS = 15.0

# The viewer's shade over a stale window: black at this alpha (client/viewer/window.py STALE_SHADE).
STALE_ALPHA = 110
# Per channel, what rounding in Qt's blending may leave between the shade we compute and the one painted.
SHADE_TOLERANCE = 3
MAXIMIZED = ("_NET_WM_STATE_MAXIMIZED_VERT", "_NET_WM_STATE_MAXIMIZED_HORZ")

# Sends _NET_WM_STATE (argv[3]: 1 add, 0 remove, -1 send nothing) for both maximized atoms of
# window argv[2] to its root, as wmctrl or an app's own maximize does; prints the window's
# _NET_WM_STATE atoms. The display is argv[1], or the session's when "".
_NET_WM_STATE = (
    "import os, sys\n"
    "from Xlib import display, X, protocol\n"
    "name = sys.argv[1] or ':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:]\n"
    "d = display.Display(name)\n"
    "w = d.create_resource_object('window', int(sys.argv[2]))\n"
    "atoms = [d.intern_atom(a) for a in ('_NET_WM_STATE_MAXIMIZED_VERT', '_NET_WM_STATE_MAXIMIZED_HORZ')]\n"
    "if int(sys.argv[3]) >= 0:\n"
    "    ev = protocol.event.ClientMessage(window=w, client_type=d.intern_atom('_NET_WM_STATE'),\n"
    "                                      data=(32, [int(sys.argv[3]), atoms[0], atoms[1], 1, 0]))\n"
    "    d.screen().root.send_event(ev, event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask)\n"
    "d.sync()\n"
    "prop = w.get_full_property(d.intern_atom('_NET_WM_STATE'), X.AnyPropertyType)\n"
    "print(' '.join(d.get_atom_name(a) for a in (prop.value if prop else [])))\n"
)
# An app that says it takes WM_DELETE_WINDOW and never answers it: "Stubborn".
_STUBBORN = (
    "import os, sys\n"
    "from Xlib import display, X\n"
    "d = display.Display(':' + sorted(os.listdir('/tmp/.X11-unix'))[0][1:])\n"
    "w = d.screen().root.create_window(0, 0, 240, 120, 0, X.CopyFromParent,\n"
    "                                  background_pixel=d.screen().white_pixel)\n"
    "w.set_wm_protocols([d.intern_atom('WM_DELETE_WINDOW')])\n"
    "w.set_wm_name('Stubborn'); w.map(); d.flush()\n"
    "print(w.id, flush=True)\n"
    "sys.stdin.read()\n"
)


def net_wm_state_in_session(user: TestUser, window: int, action: int) -> str:
    """Send (0/1) or only read (-1) a session window's maximized state; its _NET_WM_STATE after."""
    argv = ["nsenter", "-t", str(agent_pid(user.name)), "-m", "--", os.path.join(VENV_BIN, "python"), "-c"]
    done = subprocess.run([*argv, _NET_WM_STATE, "", str(window), str(action)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def net_wm_state_local(desktop: ClientDesktop, window: int, action: int) -> None:
    """Ask the client desktop's window manager to (un)maximize a local window."""
    done = subprocess.run([os.path.join(VENV_BIN, "python"), "-c", _NET_WM_STATE, desktop.display, str(window),
                           str(action)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr


def locally_maximized(desktop: ClientDesktop, window: int) -> bool:
    state = desktop.run("xprop", "-id", str(window), "_NET_WM_STATE").stdout
    return all(atom in state for atom in MAXIMIZED)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: Any) -> str:
    """A catalog directory this module may edit (a copy of conf/apps)."""
    return copy_catalog(str(tmp_path_factory.mktemp("apps")))


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any, catalog: str) -> Iterator[Server]:
    started = start_sessiond(str(tmp_path_factory.mktemp("states")), extra="reload_interval = 0.5\n", apps=catalog)
    yield started
    stop_sessiond(started)


@pytest.fixture(scope="module")
def proxy(server: Server) -> Iterator[GatedProxy]:
    gate = GatedProxy(server.port)
    yield gate
    gate.stop()


@pytest.fixture(scope="module")
def desktop() -> Iterator[ClientDesktop]:
    desk = ClientDesktop()
    yield desk
    desk.stop()


@pytest.fixture(scope="module")
def vis(user_factory: Any) -> TestUser:
    return user_factory("svt-vstate")  # type: ignore[no-any-return]


def session_has_windows(user: TestUser) -> bool:
    try:
        return bool([w for w in inside(user) if not w["override"]])
    except (AssertionError, subprocess.CalledProcessError):  # no session (agent) yet
        return False


def proxied(server: Server, proxy: GatedProxy, user: TestUser, *extra: str) -> list[str]:
    return [proxy.address if a == server.address else a for a in viewer_argv(server, user, *extra)]


@pytest.fixture(scope="module")
def viewer(server: Server, proxy: GatedProxy, vis: TestUser, desktop: ClientDesktop,
           tmp_path_factory: Any) -> Iterator[Viewer]:  # fmt: skip
    """svclient view with xterm, through the proxy."""
    view = Viewer(desktop, proxied(server, proxy, vis, "--launch", "xterm"),
                  str(tmp_path_factory.mktemp("viewer") / "viewer.log"))  # fmt: skip
    try:
        desktop.wait_for(lambda: session_has_windows(vis), 60, "xterm in the session")
        desktop.window(xterm_title(vis), 60)
    except AssertionError:
        view.stop()
        raise AssertionError(f"the viewer showed no window:\n{view.log()}\n{server.log()[-3000:]}") from None
    yield view
    print(view.log())
    view.stop()


def _compare(desktop: ClientDesktop, user: TestUser, title: str, path: str, shade: bool) -> str:
    """"" if the local window shows the session window's pixels (shaded as stale if SHADE), else why not."""
    local = desktop.capture(desktop.window(title), path)
    remote = session_pixels(user, session_window(user, title)["id"])
    if local.size != remote.size:
        return f"local {local.size} vs session {remote.size}"
    if shade:
        remote = Image.eval(remote, lambda v: round(v * (255 - STALE_ALPHA) / 255))
        worst = max(extreme[1] for extreme in ImageChops.difference(local, remote).getextrema())
        return "" if worst <= SHADE_TOLERANCE else f"differs from the shaded session pixels by up to {worst}"
    box = ImageChops.difference(local, remote).getbbox()
    return "" if box is None else f"pixels differ in {box}"


def test_stale_shade_while_offline_then_the_session_pixels(viewer: Viewer, desktop: ClientDesktop, vis: TestUser,
                                                           proxy: GatedProxy, tmp_path: Any) -> None:  # fmt: skip
    title = xterm_title(vis)
    desktop.run("xdotool", "windowactivate", "--sync", str(desktop.window(title)))
    last = {"why": ""}

    def matches(shade: bool) -> bool:
        last["why"] = _compare(desktop, vis, title, str(tmp_path / "local.png"), shade)
        return not last["why"]

    desktop.wait_for(lambda: matches(False), 30, "the local xterm to show the session's pixels")
    proxy.shut()  # the reconnect will wait unanswered
    killed = subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=", str(proxy.port)], capture_output=True,
                            text=True)  # fmt: skip
    assert killed.returncode == 0, killed.stderr
    try:
        desktop.wait_for(lambda: "connection lost" in viewer.log(), 30, "the viewer to see the connection go")
        try:
            desktop.wait_for(lambda: matches(True), 30, "the local xterm to be shaded as stale")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {last['why']} ({tmp_path})") from None
        assert "reconnected" not in viewer.log()
    finally:
        proxy.open()
    desktop.wait_for(lambda: "reconnected" in viewer.log(), 60, "the viewer to reconnect")
    try:
        desktop.wait_for(lambda: matches(False), 30, "the session's pixels again, unshaded")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last['why']} ({tmp_path})") from None


def fills_when_maximized(desktop: ClientDesktop, user: TestUser, title: str, path: str) -> None:
    """The local maximized window shows the session window's pixels over its whole area: the same size
    (the session's screen was fitted to it), the same pixels, no undrawn grey beyond them."""
    last = {"why": ""}

    def fills() -> bool:
        last["why"] = _compare(desktop, user, title, path, False)
        return not last["why"]

    try:
        desktop.wait_for(fills, 30, "the maximized local window to show the session's pixels all over")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last['why']} ({path})") from None


def test_session_maximize_and_restore_are_mirrored_locally(viewer: Viewer, desktop: ClientDesktop,
                                                           vis: TestUser, tmp_path: Any) -> None:  # fmt: skip
    title = xterm_title(vis)
    local = desktop.window(title)
    before = session_window(vis, title)
    remote = before["id"]
    assert not locally_maximized(desktop, local)
    net_wm_state_in_session(vis, remote, 1)
    desktop.wait_for(lambda: locally_maximized(desktop, local), 30, "the local xterm to be maximized")
    fills_when_maximized(desktop, vis, title, str(tmp_path / "maximized.png"))
    net_wm_state_in_session(vis, remote, 0)
    desktop.wait_for(lambda: not locally_maximized(desktop, local), 30, "the local xterm to be restored")
    geometry = (before["x"], before["y"], before["width"], before["height"])
    desktop.wait_for(lambda: tuple(desktop.geometry(local).values()) == geometry, 30,
                     "the local xterm to get back the session's geometry")  # fmt: skip
    now = session_window(vis, title)
    assert (now["x"], now["y"], now["width"], now["height"]) == geometry, (before, now)


def test_local_maximize_and_restore_reach_the_session(viewer: Viewer, desktop: ClientDesktop, vis: TestUser,
                                                      proxy: GatedProxy, tmp_path: Any) -> None:  # fmt: skip
    title = xterm_title(vis)
    local = desktop.window(title)
    before = session_window(vis, title)
    net_wm_state_local(desktop, local, 1)
    desktop.wait_for(lambda: all(a in net_wm_state_in_session(vis, before["id"], -1) for a in MAXIMIZED), 30,
                     "the session's xterm to be maximized")  # fmt: skip
    grown = session_window(vis, title)
    assert grown["width"] > before["width"] and grown["height"] > before["height"], (before, grown)
    assert locally_maximized(desktop, local)
    fills_when_maximized(desktop, vis, title, str(tmp_path / "maximized.png"))
    # After a reconnect the session's screen is asked for the maximized window's size again, not the whole screen's.
    reconnects = viewer.log().count("reconnected")
    killed = subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=", str(proxy.port)], capture_output=True,
                            text=True)  # fmt: skip
    assert killed.returncode == 0, killed.stderr
    desktop.wait_for(lambda: viewer.log().count("reconnected") > reconnects, 60, "the viewer to reconnect")
    fills_when_maximized(desktop, vis, title, str(tmp_path / "reconnected.png"))
    net_wm_state_local(desktop, local, 0)
    desktop.wait_for(lambda: not any(a in net_wm_state_in_session(vis, before["id"], -1) for a in MAXIMIZED), 30,
                     "the session's xterm to be restored")  # fmt: skip
    desktop.wait_for(lambda: session_window(vis, title)["width"] == before["width"], 30,
                     "the session's xterm to get its old size back")  # fmt: skip
    assert not locally_maximized(desktop, local)


def close_until_asked(desktop: ClientDesktop, local: int, seconds: float = 60) -> int:
    """Close LOCAL as a user would, again every CLOSE_AGAIN_SECONDS while no "Not responding"
    dialog came (it comes after the session's 5 s grace; under CI load a first close of a
    fresh window was seen lost, as in test_viewer's xcalc and launcher tests); the dialog."""
    deadline = time.monotonic() + seconds
    while True:
        wm_delete(desktop, local)
        try:
            wait = min(CLOSE_AGAIN_SECONDS, max(1.0, deadline - time.monotonic()))
            return desktop.window("Not responding - Stubborn", wait)
        except AssertionError:
            if time.monotonic() >= deadline:
                raise


def test_an_app_that_ignores_close_is_offered_a_force_close(viewer: Viewer, desktop: ClientDesktop,
                                                            vis: TestUser) -> None:  # fmt: skip
    stubborn = subprocess.Popen(["nsenter", "-t", str(agent_pid(vis.name)), "-m", "--",
                                 os.path.join(VENV_BIN, "python"), "-c", _STUBBORN],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        local = desktop.window("Stubborn", 30)
        dialog = close_until_asked(desktop, local)
        desktop.run("xdotool", "windowactivate", "--sync", str(dialog))
        desktop.run("xdotool", "key", "Escape")  # Wait
        desktop.wait_for(lambda: not desktop.windows_named("Not responding - Stubborn"), 30, "the dialog to go")
        assert any(w["title"] == "Stubborn" for w in inside(vis)) and desktop.windows_named("Stubborn")
        dialog = close_until_asked(desktop, local)  # asks the app again: the dialog comes back
        desktop.run("xdotool", "windowactivate", "--sync", str(dialog))
        desktop.run("xdotool", "key", "alt+f")  # Force close
        desktop.wait_for(lambda: all(w["title"] != "Stubborn" for w in inside(vis)), 30,
                         "the stubborn window to go from the session")  # fmt: skip
        desktop.wait_for(lambda: not desktop.windows_named("Stubborn"), 30, "the local window to go")
        assert not desktop.windows_named("Not responding - Stubborn")
        assert desktop.windows_named(xterm_title(vis))  # the other app is untouched
    finally:
        stubborn.kill()
        stubborn.wait()


def test_launcher_follows_the_catalog_without_reconnecting(server: Server, proxy: GatedProxy, catalog: str,
                                                           desktop: ClientDesktop, user_factory: Any,
                                                           tmp_path: Any) -> None:  # fmt: skip
    user = user_factory("svt-vlaunch")
    view = Viewer(desktop, proxied(server, proxy, user), str(tmp_path / "launcher.log"))
    try:
        launcher = desktop.window(f"sessiond apps - {user.name}@{proxy.address}", 60)
        with open(os.path.join(catalog, "newclock.desktop"), "w", encoding="utf-8") as entry:
            entry.write("[Desktop Entry]\nType=Application\nName=Newclock\nComment=A clock published just now\n"
                        "Exec=xclock -title Newclock\nTerminal=false\n")  # fmt: skip
        desktop.wait_for(lambda: "the published apps changed" in view.log() and "newclock" in view.log(), 60,
                         "the viewer to hear of the new app")  # fmt: skip
        desktop.run("xdotool", "windowactivate", "--sync", str(launcher))
        desktop.run("xdotool", "type", "--delay", "30", "Newclock")  # the list's keyboard search selects it
        desktop.run("xdotool", "key", "Return")
        desktop.window("Newclock", 60)  # launched from the updated launcher: its window is shown here
        os.remove(os.path.join(catalog, "newclock.desktop"))
        desktop.wait_for(lambda: view.log().count("the published apps changed") >= 2, 60,
                         "the viewer to hear the app was withdrawn")  # fmt: skip
        assert "connection lost" not in view.log() and "Traceback" not in view.log()
        assert "does not announce app changes" not in view.log()  # told by APPS_CHANGED, not found by polling
    finally:
        assert view.stop() == 0, view.log()
