# The launcher's app list, kept current on the reactor thread.
#
# Admins publish and withdraw apps by editing the catalog directories while
# sessiond runs (apps/reload.py re-reads them within its reload_interval);
# users expect the launcher to follow without reconnecting. A server that
# says `apps.changed` in its HELLO sends APPS_CHANGED when this user's list
# changed (sessiond/app_notices.py): the viewer then asks again, and asks
# nothing otherwise. After a reconnect it asks once (a notice sent while the
# connection was down is lost) and follows the new connection.
#
# An older server never sends the notice: for it alone the viewer keeps a
# slow poll (APPS_POLL_SECONDS), because a farm being upgraded host by host
# mixes both and a launcher that silently stops following would be worse.
# Icons are fetched only for an app that is new or whose icon name changed,
# and the GUI hears only of a list that differs from the last one.
"""AppsWatch: the published apps for the launcher, followed and diffed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task

from client.session import ConnectionEnded, RemoteError, SessionClient, with_timeout
from protocol.control_session import APPS_CHANGED_CAPABILITY

# Seconds between two APP_LIST_REQUESTs, only with a server that does not send APPS_CHANGED.
APPS_POLL_SECONDS = 10.0
# Size of the launcher's app icons (pixels, the server scales).
ICON_SIZE = 48

# (id, name, comment, PNG icon or b"") per app, in the server's order.
AppRow = tuple[str, str, str, bytes]


def announces_changes(client: SessionClient) -> bool:
    """True if the server said in its HELLO that it sends APPS_CHANGED."""
    hello = client.conn.peer_hello
    return hello is not None and APPS_CHANGED_CAPABILITY in hello.capabilities


class AppsWatch:
    """Follows the apps (start(), then first() lists them now; reconnected() after a
    new connection); `shown` gets the rows whenever they differ from the last ones it got."""

    def __init__(self, reactor: Any, client: Callable[[], SessionClient | None], timeout: float,
                 shown: Callable[[list[AppRow]], None], note: Callable[[str], None] = lambda _text: None
                 ) -> None:  # fmt: skip
        self.reactor = reactor
        self.client = client
        self.timeout = timeout
        self.shown = shown
        self.note = note
        self._icons: dict[tuple[str, str], bytes] = {}  # (app id, icon name) -> PNG
        self._last: list[AppRow] | None = None
        self._loop: task.LoopingCall | None = None
        self._following = False
        self._request = 0
        self.polls = 0  # lists asked by the slow poll
        self.notices = 0  # APPS_CHANGED heard

    async def first(self) -> None:
        """List the apps now (errors go to the caller: the viewer cannot start without them)."""
        client = self.client()
        if client is not None:
            await self._list(client)

    def start(self) -> None:
        """Follow the list from now on (reactor thread)."""
        self._following = True
        client = self.client()
        if client is not None:
            self._follow(client)

    def reconnected(self) -> None:
        """A new connection: ask once (changes while away were not heard), then follow it."""
        client = self.client()
        if self._following and client is not None:
            self._follow(client)
            defer.ensureDeferred(self._refresh())

    def stop(self) -> None:
        """Stop following."""
        self._following = False
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _follow(self, client: SessionClient) -> None:
        if announces_changes(client):
            if self._loop is not None and self._loop.running:
                self._loop.stop()
            self._loop = None
            self._arm(client)
        elif self._loop is None:
            self.note(f"the server does not announce app changes; asking every {APPS_POLL_SECONDS:g} s")
            self._loop = task.LoopingCall(self._poll)
            self._loop.clock = self.reactor
            self._loop.start(APPS_POLL_SECONDS, now=False)

    def _arm(self, client: SessionClient) -> None:
        def changed(_message: object) -> None:
            if self._following and client is self.client():
                self.notices += 1
                self._arm(client)  # before asking: the server sends the next notice after our request
                defer.ensureDeferred(self._refresh())

        # The connection ending fails the wait; reconnected() arms one on the next connection.
        client.apps_changed().addCallbacks(changed, lambda _failure: None)

    def _poll(self) -> defer.Deferred[None]:
        self.polls += 1
        return defer.ensureDeferred(self._refresh())

    async def _refresh(self) -> None:
        client = self.client()
        if client is None or client.transport is None or getattr(client, "_end", None) is not None:
            return  # reconnecting: reconnected() asks again
        try:
            await self._list(client)
        except (RemoteError, ConnectionEnded):
            return  # the connection is going (or slow): the next notice, poll or reconnect asks again

    async def _list(self, client: SessionClient) -> None:
        listing = await with_timeout(self.reactor, client.list_apps(), self.timeout, "the app list")
        rows: list[AppRow] = []
        for app in listing.apps:
            rows.append((app.id, app.name, app.comment, await self._icon(client, app.id, app.icon)))
        live = {(app.id, app.icon) for app in listing.apps}
        self._icons = {key: png for key, png in self._icons.items() if key in live}
        if rows != self._last:
            self._last = rows
            self.shown(rows)

    async def _icon(self, client: SessionClient, app: str, icon: str) -> bytes:
        if not icon:
            return b""
        if (app, icon) not in self._icons:
            self._request += 1
            try:
                png = await with_timeout(self.reactor, client.icon(app, ICON_SIZE, self._request), self.timeout,
                                         "an icon")  # fmt: skip
            except RemoteError:
                png = b""
            self._icons[(app, icon)] = png
        return self._icons[(app, icon)]
