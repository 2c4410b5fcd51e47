# Why this module exists: what a client may see and do with published apps
# is one policy applied in three places (the list, a launch, an icon).  The
# gateway speaks the protocol; this module answers its three questions from
# the catalog, the entitlements and the icon themes, so that an app a user
# is not entitled to is invisible in the list AND refused at launch AND has
# no icon, by the same function, whatever the client sends.
"""AppPublisher: per-user listing, launch plans and icons of published apps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from apps.catalog import AppEntry, Catalog, UnknownApp
from apps.entitlements import Entitlements, Principal, principal_for
from apps.icon_renders import IconRenderQueue
from apps.icons import DEFAULT_ICON_DIRS, IconError, IconResolver, render_png

LISTING_ICON_SIZE = 48  # the size "icon available" is decided at: the common launcher size


class NotEntitled(PermissionError):  # noqa: N818 -- mirrors the NOT_ENTITLED reason code
    """The user may not see or launch this app (the message names both)."""

    def __init__(self, user: str, app_id: str) -> None:
        super().__init__(f"user {user!r} is not entitled to the application {app_id!r}; ask your administrator")
        self.user = user
        self.app_id = app_id


@dataclass(frozen=True)
class PublishedApp:
    """One app as a given user sees it: localized, with ``icon`` "" when none can be served."""

    id: str
    name: str
    generic_name: str
    comment: str
    categories: tuple[str, ...]
    icon: str


@dataclass(frozen=True)
class LaunchPlan:
    """What the session agent must run for an entitled launch."""

    app_id: str
    argv: tuple[str, ...]
    cwd: str


class AppPublisher:
    """Answers list, launch and icon requests for one user at a time."""

    def __init__(
        self,
        catalog: Catalog,
        entitlements: Entitlements | None = None,
        icons: IconResolver | None = None,
        *,
        principal_of: Callable[[str], Principal] = principal_for,
        run_in_thread: Callable[..., defer.Deferred[Any]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.catalog = catalog
        self.entitlements = entitlements if entitlements is not None else Entitlements()
        self.icons = icons if icons is not None else IconResolver()
        self._principal_of = principal_of
        self._renders = IconRenderQueue(render_png, run_in_thread=run_in_thread, clock=clock)

    def listing(self, user: str, locale: str = "") -> list[PublishedApp]:
        """The apps ``user`` is entitled to, localized to ``locale``, sorted by shown name."""
        principal = self._principal_of(user)
        shown = [
            self._published(entry, locale)
            for entry in self.catalog.entries()
            if self.entitlements.allows(principal, entry.id)
        ]
        return sorted(shown, key=lambda app: (app.name.casefold(), app.id))

    def plan_launch(self, user: str, app_id: str, args: Sequence[str] = ()) -> LaunchPlan:
        """The argv and working directory for an entitled launch.

        Raises UnknownApp, NotEntitled (checked before anything about the
        app is revealed beyond its existence) or ExecError for refused args.
        """
        entry = self._entitled_entry(user, app_id)
        argv = self.catalog.argv_for(entry.id, args)
        return LaunchPlan(entry.id, tuple(argv), entry.path)

    def icon_png(self, user: str, app_id: str, size: int) -> defer.Deferred[bytes]:
        """PNG of the app's icon at ``size``; fails with UnknownApp, NotEntitled or IconError.

        The file is found in the calling thread (cached lookups); decoding
        and resizing run in the icon pool (apps.icon_renders: coalesced per
        file and size, bounded, never on the threads that run PAM), and each
        user's requests are rate-limited (IconRateLimited).
        """
        try:
            self._renders.admit(user)
            self.icons.check_size(size)
            entry = self._entitled_entry(user, app_id)
            path = self.icons.find(entry.icon, size) if entry.icon else None
            if path is None:
                raise IconError(f"{entry.name} has no PNG or XPM icon")
            cached = self.icons.cached(path, size)
        except (UnknownApp, NotEntitled, IconError) as error:
            return defer.fail(error)
        if cached is not None:
            return defer.succeed(cached)
        d = self._renders.render(path, size)

        def store(data: bytes) -> bytes:
            self.icons.store(path, size, data)
            return data

        d.addCallback(store)
        return d

    def _entitled_entry(self, user: str, app_id: str) -> AppEntry:
        entry = self.catalog.get(app_id)
        if entry is None:
            raise UnknownApp(app_id)
        if not self.entitlements.allows(self._principal_of(user), app_id):
            raise NotEntitled(user, app_id)
        return entry

    def _published(self, entry: AppEntry, locale: str) -> PublishedApp:
        has_icon = bool(entry.icon) and self.icons.find(entry.icon, LISTING_ICON_SIZE) is not None
        return PublishedApp(
            id=entry.id,
            name=entry.localized("Name", locale),
            generic_name=entry.localized("GenericName", locale),
            comment=entry.localized("Comment", locale),
            categories=entry.categories,
            icon=entry.icon if has_icon else "",
        )


def publisher_from_config(catalog: Catalog, config: Any) -> AppPublisher:
    """Build the publisher from sessiond's Config ([apps] icons, [entitlements])."""
    entitlements = Entitlements(
        config.entitlements.rules,
        default_everyone=config.entitlements.default,
    )
    icon_dirs = tuple(config.apps.icon_dirs) or DEFAULT_ICON_DIRS
    icons = IconResolver(icon_dirs, theme=config.apps.icon_theme)
    return AppPublisher(catalog, entitlements, icons)

