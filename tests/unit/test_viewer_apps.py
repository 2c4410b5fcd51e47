# The launcher follows the server's catalog: AppsWatch asks for APP_LIST
# every APPS_POLL_SECONDS, tells the GUI only of a list that changed, fetches
# an icon only for a new app (or a changed icon name), and sits out polls
# while the connection is down. A recorder client and a task.Clock: no
# sleeps, no sockets.
"""AppsWatch: polling, diffing, icon cache, reconnect gaps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, task

from client.viewer.apps import APPS_POLL_SECONDS, AppsWatch
from protocol.messages import AppInfo, AppList


def app(app_id: str, name: str, icon: str = "") -> AppInfo:
    return AppInfo(id=app_id, name=name, comment=f"{name}!", categories=(), icon=icon)


@dataclass
class CatalogClient:
    """list_apps() answers with `apps`; icon() records what was fetched."""

    apps: list[AppInfo] = field(default_factory=list)
    icons_fetched: list[str] = field(default_factory=list)
    transport: Any = object()
    _end: Any = None

    def list_apps(self) -> defer.Deferred[AppList]:
        return defer.succeed(AppList(apps=tuple(self.apps)))

    def icon(self, app_id: str, size: int, request: int) -> defer.Deferred[bytes]:
        self.icons_fetched.append(app_id)
        return defer.succeed(b"PNG:" + app_id.encode())


def make(client: CatalogClient | None) -> tuple[task.Clock, AppsWatch, list[list[Any]]]:
    clock = task.Clock()
    shown: list[list[Any]] = []
    watch = AppsWatch(clock, lambda: client, 5.0, shown.append)  # type: ignore[arg-type, return-value]
    return clock, watch, shown


def test_first_lists_with_icons_then_polls_show_only_changes() -> None:
    client = CatalogClient([app("xterm", "XTerm", "utilities-terminal"), app("xcalc", "XCalc")])
    clock, watch, shown = make(client)
    defer.ensureDeferred(watch.first())
    assert shown == [[("xterm", "XTerm", "XTerm!", b"PNG:xterm"), ("xcalc", "XCalc", "XCalc!", b"")]]
    watch.start()
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
    from client.session import ConnectionEnded
    from protocol.errors import ReasonCode

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
