# Why this module exists: admins publish, edit and withdraw applications by
# dropping or deleting .desktop files, and expect clients to see the change
# without restarting sessiond (which would be harmless for sessions, but is
# still a service interruption for logins).  A cheap poll of the catalog
# directories' metadata (names, sizes, mtimes, inodes) decides whether to
# re-read them; polling rather than inotify because it is recursive for
# free, works on every filesystem (NFS, overlay) and costs a few hundred
# stat() calls per interval even for /usr/share/applications.
"""CatalogReloader: re-read the catalog when its directories change."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application import service
from twisted.internet import task
from twisted.logger import Logger

from apps.catalog import DESKTOP_SUFFIX, MAX_CATALOG_ENTRIES, MAX_DIRECTORY_DEPTH, Catalog

DEFAULT_RELOAD_INTERVAL = 2.0  # seconds; the issue asks for "within a few seconds"

Snapshot = frozenset[tuple[str, int, int, int]]


def directory_snapshot(directories: Sequence[str]) -> Snapshot:
    """(path, mtime_ns, size, inode) of every .desktop file and directory under ``directories``.

    Any add, remove, rename or edit changes the snapshot.  Bounded by the
    catalog's own limits (entries and depth); unreadable parts are skipped.
    """
    found: set[tuple[str, int, int, int]] = set()
    for top in directories:
        for root, dirnames, filenames in os.walk(top):
            relative = os.path.relpath(root, top)
            if relative != "." and relative.count(os.sep) + 1 >= MAX_DIRECTORY_DEPTH:
                dirnames.clear()
            names = [root, *(os.path.join(root, f) for f in filenames if f.endswith(DESKTOP_SUFFIX))]
            for path in names:
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                found.add((path, info.st_mtime_ns, info.st_size, info.st_ino))
            if len(found) > MAX_CATALOG_ENTRIES * 2:
                return frozenset(found)
    return frozenset(found)


class CatalogReloader(service.Service):
    """Polls the catalog directories every ``interval`` seconds and reloads on change.

    ``on_reload`` callbacks run after each reload (the icon resolver's
    clear(), for instance).  ``clock`` is the reactor (a task.Clock in tests).
    """

    def __init__(
        self,
        catalog: Catalog,
        directories: Sequence[str],
        *,
        interval: float = DEFAULT_RELOAD_INTERVAL,
        clock: Any = None,
        on_reload: Sequence[Callable[[], None]] = (),
        snapshot: Callable[[Sequence[str]], Snapshot] = directory_snapshot,
        logger: Logger | None = None,
    ) -> None:
        self.catalog = catalog
        self.directories = tuple(directories)
        self.interval = interval
        self._clock = clock
        self._on_reload = tuple(on_reload)
        self._snapshot_of = snapshot
        self._log = logger if logger is not None else Logger(namespace="apps.reload")
        self._last: Snapshot = snapshot(self.directories)
        self._loop: task.LoopingCall | None = None
        self.reloads = 0

    def startService(self) -> None:  # noqa: N802 - Twisted name
        """Start polling (the catalog was read when it was built)."""
        super().startService()
        self._loop = task.LoopingCall(self.check)
        if self._clock is not None:
            self._loop.clock = self._clock
        self._loop.start(self.interval, now=False).addErrback(
            lambda failure: self._log.failure("catalog reload loop stopped", failure)
        )

    def stopService(self) -> Any:  # noqa: N802 - Twisted name
        """Stop polling."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        return super().stopService()

    def check(self) -> bool:
        """Reload if the directories changed since the last check; return whether it did."""
        current = self._snapshot_of(self.directories)
        if current == self._last:
            return False
        self._last = current
        before = {entry.id for entry in self.catalog.entries()}
        self.catalog.reload()
        after = {entry.id for entry in self.catalog.entries()}
        self.reloads += 1
        for callback in self._on_reload:
            callback()
        self._log.info(
            "Application catalog reloaded: {count} apps (added {added}, removed {removed})",
            count=len(after),
            added=sorted(after - before),
            removed=sorted(before - after),
        )
        return True
