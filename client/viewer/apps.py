# The launcher's app list, kept current on the reactor thread.
#
# Admins publish and withdraw apps by editing the catalog directories while
# sessiond runs (apps/reload.py re-reads them within its reload_interval);
# users expect the launcher to follow without reconnecting. The server does
# not push APP_LIST (it answers APP_LIST_REQUEST, as the web client asks at
# login), so the viewer asks again every APPS_POLL_SECONDS while it shows the
# launcher: one small JSON request, answered from the server's catalog in
# memory. Icons are fetched only for an app that is new or whose icon name
# changed, and the GUI hears only of a list that differs from the last one.
"""AppsWatch: the published apps for the launcher, polled and diffed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task

from client.session import ConnectionEnded, RemoteError, SessionClient, with_timeout

# Seconds between two APP_LIST_REQUESTs while the launcher is shown (the server re-reads
# its catalog every [apps] reload_interval, 2 s by default: a change shows within both).
APPS_POLL_SECONDS = 3.0
# Size of the launcher's app icons (pixels, the server scales).
ICON_SIZE = 48

# (id, name, comment, PNG icon or b"") per app, in the server's order.
AppRow = tuple[str, str, str, bytes]


class AppsWatch:
    """Lists the apps now (first()) and then every APPS_POLL_SECONDS (start());
    `shown` gets the rows whenever they differ from the last ones it got."""

    def __init__(self, reactor: Any, client: Callable[[], SessionClient | None], timeout: float,
                 shown: Callable[[list[AppRow]], None]) -> None:  # fmt: skip
        self.reactor = reactor
        self.client = client
        self.timeout = timeout
        self.shown = shown
        self._icons: dict[tuple[str, str], bytes] = {}  # (app id, icon name) -> PNG
        self._last: list[AppRow] | None = None
        self._loop: task.LoopingCall | None = None
        self._request = 0
        self.polls = 0

    async def first(self) -> None:
        """List the apps now (errors go to the caller: the viewer cannot start without them)."""
        client = self.client()
        if client is not None:
            await self._list(client)

    def start(self) -> None:
        """Poll from now on (reactor thread)."""
        if self._loop is None:
            self._loop = task.LoopingCall(lambda: defer.ensureDeferred(self._poll()))
            self._loop.clock = self.reactor
            self._loop.start(APPS_POLL_SECONDS, now=False)

    def stop(self) -> None:
        """No more polls."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    async def _poll(self) -> None:
        self.polls += 1
        client = self.client()
        if client is None or client.transport is None or getattr(client, "_end", None) is not None:
            return  # reconnecting: the next poll after it asks
        try:
            await self._list(client)
        except (RemoteError, ConnectionEnded):
            return  # the connection is going (or slow): the next poll asks again

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
