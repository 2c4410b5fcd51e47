# The launcher follows the server's catalog: with a server that announces
# changes, AppsWatch asks for APP_LIST only when APPS_CHANGED comes (and once
# after a reconnect); with an older server it asks every APPS_POLL_SECONDS.
# Either way it tells the GUI only of a list that changed, fetches an icon
# only for a new app (or a changed icon name), and sits out while the
# connection is down. Also what the viewer asks of the session's screen
# (ViewerLink.fit_screen): once per size, seamless mode only. Recorder clients
# and a task.Clock: no sleeps, no sockets.
"""AppsWatch: notices, the old-server poll, diffing, icon cache, reconnect gaps; the screen fit."""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, task

from client.session import ConnectionEnded
from client.viewer.apps import APPS_POLL_SECONDS, AppsWatch
from protocol.control_session import APPS_CHANGED_CAPABILITY
from protocol.errors import ReasonCode
from protocol.messages import AppInfo, AppList, AppsChanged, Hello


def app(app_id: str, name: str, icon: str = "") -> AppInfo:
    return AppInfo(id=app_id, name=name, comment=f"{name}!", categories=(), icon=icon)


@dataclass
class CatalogClient:
    """list_apps() answers with `apps`; icon() records what was fetched."""

    apps: list[AppInfo] = field(default_factory=list)
    icons_fetched: list[str] = field(default_factory=list)
    transport: Any = object()
    _end: Any = None
    announces: bool = False  # the server's HELLO says APPS_CHANGED_CAPABILITY
    lists: int = 0
    waiters: list[defer.Deferred[AppsChanged]] = field(default_factory=list)

    @property
    def conn(self) -> Any:
        said = (APPS_CHANGED_CAPABILITY,) if self.announces else ("display.png",)
        return types.SimpleNamespace(peer_hello=Hello(version=1, capabilities=said, software="sessiond"))

    def list_apps(self) -> defer.Deferred[AppList]:
        self.lists += 1
        return defer.succeed(AppList(apps=tuple(self.apps)))

    def apps_changed(self) -> defer.Deferred[AppsChanged]:
        self.waiters.append(defer.Deferred())
        return self.waiters[-1]

    def push(self) -> None:
        """The server sends APPS_CHANGED (each waiter hears it once, as SessionClient's)."""
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(AppsChanged())

    def end(self) -> None:
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.errback(ConnectionEnded(ReasonCode.NORMAL, "connection lost"))

    def icon(self, app_id: str, size: int, request: int) -> defer.Deferred[bytes]:
        self.icons_fetched.append(app_id)
        return defer.succeed(b"PNG:" + app_id.encode())


def make(client: CatalogClient | None, notes: list[str] | None = None) -> tuple[task.Clock, AppsWatch, list[list[Any]]]:
    clock = task.Clock()
    shown: list[list[Any]] = []
    watch = AppsWatch(clock, lambda: client, 5.0, shown.append,  # type: ignore[arg-type, return-value]
                      (notes if notes is not None else []).append)  # fmt: skip
    return clock, watch, shown


def test_with_notices_the_list_is_asked_only_when_the_server_says_it_changed() -> None:
    client = CatalogClient([app("xterm", "XTerm", "utilities-terminal")], announces=True)
    notes: list[str] = []
    clock, watch, shown = make(client, notes)
    watch.start()  # as the viewer does: armed before the first list
    defer.ensureDeferred(watch.first())
    assert len(client.waiters) == 1
    clock.advance(APPS_POLL_SECONDS * 10)
    assert client.lists == 1 and watch.polls == 0 and notes == []  # no polling
    client.apps.append(app("newclock", "New clock", "x-office-calendar"))
    client.push()
    assert [row[0] for row in shown[-1]] == ["xterm", "newclock"] and client.lists == 2
    assert client.icons_fetched == ["xterm", "newclock"]
    client.apps = client.apps[1:]
    client.push()  # re-armed after the first notice
    assert [row[0] for row in shown[-1]] == ["newclock"] and watch.notices == 2 and len(shown) == 3


def test_after_a_reconnect_the_list_is_asked_once_and_the_new_connection_followed() -> None:
    old = CatalogClient([app("xterm", "XTerm")], announces=True)
    current = {"client": old}
    clock = task.Clock()
    shown: list[list[Any]] = []
    watch = AppsWatch(clock, lambda: current["client"], 5.0, shown.append)  # type: ignore[arg-type, return-value]
    watch.start()
    defer.ensureDeferred(watch.first())
    old.end()  # the connection dropped: its wait fails quietly
    new = CatalogClient([app("xterm", "XTerm"), app("xcalc", "XCalc")], announces=True)
    current["client"] = new
    watch.reconnected()  # the change made while away is seen now
    assert [row[0] for row in shown[-1]] == ["xterm", "xcalc"] and new.lists == 1
    new.apps = []
    new.push()
    assert shown[-1] == [] and new.lists == 2


def test_an_old_server_is_polled_and_the_user_told_so() -> None:
    client = CatalogClient([app("xterm", "XTerm", "utilities-terminal"), app("xcalc", "XCalc")])
    notes: list[str] = []
    clock, watch, shown = make(client, notes)
    defer.ensureDeferred(watch.first())
    assert shown == [[("xterm", "XTerm", "XTerm!", b"PNG:xterm"), ("xcalc", "XCalc", "XCalc!", b"")]]
    watch.start()
    assert notes == [f"the server does not announce app changes; asking every {APPS_POLL_SECONDS:g} s"]
    clock.advance(APPS_POLL_SECONDS)
    clock.advance(APPS_POLL_SECONDS)
    assert watch.polls == 2 and len(shown) == 1  # nothing changed: the GUI hears nothing
    client.apps.append(app("newclock", "New clock", "x-office-calendar"))
    clock.advance(APPS_POLL_SECONDS)
    assert [row[0] for row in shown[-1]] == ["xterm", "xcalc", "newclock"] and shown[-1][2][3] == b"PNG:newclock"
    assert client.icons_fetched == ["xterm", "newclock"]  # xterm's icon was not fetched again
    client.apps = [a for a in client.apps if a.id != "xcalc"]
    clock.advance(APPS_POLL_SECONDS)
    assert [row[0] for row in shown[-1]] == ["xterm", "newclock"] and len(shown) == 3
    client.apps[0] = app("xterm", "XTerm", "other-icon")
    clock.advance(APPS_POLL_SECONDS)
    assert client.icons_fetched == ["xterm", "newclock", "xterm"]  # a changed icon name is fetched


def test_no_polls_while_disconnected_and_stop_ends_them() -> None:
    client = CatalogClient([app("xterm", "XTerm")])
    clock, watch, shown = make(client)
    defer.ensureDeferred(watch.first())
    watch.start()
    client.transport = None  # the connection dropped: reconnecting
    client.apps = []
    clock.advance(APPS_POLL_SECONDS)
    assert len(shown) == 1
    client.transport = object()
    clock.advance(APPS_POLL_SECONDS)
    assert shown[-1] == []
    watch.stop()
    client.apps = [app("xcalc", "XCalc")]
    clock.advance(APPS_POLL_SECONDS * 3)
    assert shown[-1] == [] and watch.polls == 2


def test_a_failed_poll_is_skipped_not_fatal() -> None:
    client = CatalogClient([app("xterm", "XTerm")])
    clock, watch, shown = make(client)
    defer.ensureDeferred(watch.first())
    watch.start()
    client.list_apps = lambda: defer.fail(ConnectionEnded(ReasonCode.TIMEOUT, "slow"))  # type: ignore[method-assign]
    clock.advance(APPS_POLL_SECONDS)
    del client.list_apps  # the dataclass method again
    client.apps.append(app("xcalc", "XCalc"))
    clock.advance(APPS_POLL_SECONDS)
    assert [row[0] for row in shown[-1]] == ["xterm", "xcalc"] and watch.polls == 2


class ScreenClient:
    """The part of SessionClient that ViewerLink.fit_screen uses: the screen's size and resize()."""

    def __init__(self, width: int, height: int) -> None:
        self.framebuffer = types.SimpleNamespace(width=width, height=height)
        self.transport = object()
        self.resized: list[tuple[int, int]] = []

    def resize(self, width: int, height: int) -> defer.Deferred[None]:
        self.resized.append((width, height))
        return defer.fail(ConnectionEnded(ReasonCode.NORMAL, "no answer: the connection went"))


def test_the_session_screen_is_asked_once_per_size_and_only_in_seamless_mode() -> None:
    import argparse

    from client.viewer.link import ViewerLink

    link = ViewerLink(argparse.Namespace(timeout=5.0), events=None)  # type: ignore[arg-type]
    client = ScreenClient(1280, 1024)
    link.client = client  # type: ignore[assignment]
    link._fit_screen((1280, 1000))
    assert client.resized == []  # desktop mode: the window's own size is sent instead
    link.seamless = True
    link._fit_screen((1280, 1024))  # the size it has
    link._fit_screen((1280, 1000))  # a local maximized window's
    link._fit_screen((1280, 1000))  # asked already (the answer may be clamped): not again
    assert client.resized == [(1280, 1000)]  # (the failed answer was swallowed, not logged as unhandled)
