# Why this module exists: admins publish, edit and withdraw apps while users
# are connected (apps/reload.py re-reads the catalog within its
# reload_interval), and a launcher that shows yesterday's list until the user
# reconnects is wrong: an app is missing, or a click answers "no longer
# published". Clients used to poll APP_LIST (the viewer every 3 s, the web
# client never after login); now sessiond tells each attached client that
# asked for the list, once its own list (entitlements and locale applied)
# differs from what it last received: one small APPS_CHANGED, and the client
# asks again. Nothing is sent to a client whose list did not change (an app
# another group sees, a comment in a locale it does not use).
#
# Bounded and coalesced: a reload waits APPS_NOTICE_DELAY for the next one
# (an admin copying ten files makes one notice), and a client gets at most
# one notice until it asks again, so a catalog edited in a loop costs each
# client one small message per round trip, never a queue. Only clients that
# said APPS_CHANGED_CAPABILITY in HELLO hear it (an older client would refuse
# an unknown message type and close its connection).
"""AppNotices: answer APP_LIST_REQUEST and tell clients when their list changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from twisted.logger import Logger

from apps.publisher import AppPublisher, PublishedApp
from protocol.messages import AppInfo, AppList, AppsChanged, Message

# Seconds a catalog reload waits for further reloads before clients are told (one notice per burst).
APPS_NOTICE_DELAY = 1.0

log = Logger(namespace="sessiond.app_notices")


class AppsPeer(Protocol):
    """A logged-in client connection (sessiond.gateway.ClientHandler)."""

    def notify(self, message: Message) -> None: ...


@dataclass(frozen=True)
class _Listed:
    """What one client was last sent: for whom, in which locale, which apps."""

    user: str
    locale: str
    apps: tuple[AppInfo, ...]


def app_info(app: PublishedApp) -> AppInfo:
    """One APP_LIST entry of a published app."""
    return AppInfo(id=app.id, name=app.name, comment=app.comment, categories=tuple(app.categories),
                   icon=app.icon)  # fmt: skip


class AppNotices:
    """The APP_LIST answers of every client, and APPS_CHANGED when one goes stale.

    ``clock`` is the reactor (a task.Clock in tests); ``catalog_reloaded`` is
    an ``on_reload`` callback of apps.reload.CatalogReloader.
    """

    def __init__(self, publisher: AppPublisher, clock: Any) -> None:
        self.publisher = publisher
        self.clock = clock
        self._waiting: dict[AppsPeer, _Listed] = {}  # clients to tell, until told once
        self._round: Any = None
        self.notices = 0

    def answer(self, peer: AppsPeer, user: str, locale: str, notify: bool) -> AppList:
        """The APP_LIST for ``user`` in ``locale``; with ``notify`` (the client
        said APPS_CHANGED_CAPABILITY), ``peer`` is told when it goes stale."""
        apps = self._listing(user, locale)
        if notify:
            self._waiting[peer] = _Listed(user, locale, apps)
        return AppList(apps=apps)

    def forget(self, peer: AppsPeer) -> None:
        """The connection ended: nothing more for it."""
        self._waiting.pop(peer, None)

    def catalog_reloaded(self) -> None:
        """The catalog was re-read: compare every waiting client's list after APPS_NOTICE_DELAY
        (later reloads meanwhile join the same round)."""
        if self._round is None or not self._round.active():
            self._round = self.clock.callLater(APPS_NOTICE_DELAY, self.compare)

    def compare(self) -> int:
        """Tell each waiting client whose list changed (once); return how many were told."""
        self._round = None
        fresh: dict[tuple[str, str], tuple[AppInfo, ...]] = {}
        told = 0
        for peer, listed in list(self._waiting.items()):
            key = (listed.user, listed.locale)
            try:
                if key not in fresh:
                    fresh[key] = self._listing(*key)
                if fresh[key] == listed.apps:
                    continue
                del self._waiting[peer]  # one notice until it asks again
                peer.notify(AppsChanged())
                told += 1
            except Exception:  # noqa: BLE001 - one client's failure must not keep the others uninformed
                self._waiting.pop(peer, None)
                log.failure("telling {user} that the published apps changed failed", user=listed.user)
        if told:
            log.info("published apps changed for {count} connected client(s)", count=told)
        self.notices += told
        return told

    def _listing(self, user: str, locale: str) -> tuple[AppInfo, ...]:
        return tuple(app_info(app) for app in self.publisher.listing(user, locale))
