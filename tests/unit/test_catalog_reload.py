# Why these tests: admins change the catalog by editing files while sessiond
# runs.  Adding, removing and editing an entry must each be noticed on the
# next poll, and nothing must be re-read when nothing changed.  The clock is
# a task.Clock, so the polling runs without sleeping.
"""Tests for apps.reload: CatalogReloader and directory snapshots."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import task

from apps.catalog import Catalog
from apps.reload import CatalogReloader, directory_snapshot


def entry(path: Path, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[Desktop Entry]\nType=Application\nName={name}\nExec=prog\n")


def names(catalog: Catalog) -> list[str]:
    return [e.name for e in catalog.entries()]


def test_snapshot_changes_on_add_edit_remove(tmp_path: Path) -> None:
    entry(tmp_path / "a.desktop", "A")
    first = directory_snapshot([str(tmp_path)])
    assert directory_snapshot([str(tmp_path)]) == first
    (tmp_path / "notes.txt").write_text("ignored")
    os.utime(tmp_path, ns=(1, 1))  # pin the directory mtime: only .desktop files count then
    pinned = directory_snapshot([str(tmp_path)])
    (tmp_path / "other.txt").write_text("ignored")
    os.utime(tmp_path, ns=(1, 1))
    assert directory_snapshot([str(tmp_path)]) == pinned
    entry(tmp_path / "sub" / "b.desktop", "B")
    assert directory_snapshot([str(tmp_path)]) != pinned
    assert directory_snapshot([str(tmp_path / "missing")]) == frozenset()


def test_reloader_polls_and_reloads_only_on_change(tmp_path: Path) -> None:
    entry(tmp_path / "a.desktop", "A")
    catalog = Catalog([str(tmp_path)])
    clock = task.Clock()
    cleared: list[bool] = []
    reloader = CatalogReloader(catalog, [str(tmp_path)], interval=2.0, clock=clock,
                               on_reload=[lambda: cleared.append(True)])  # fmt: skip
    reloader.startService()
    clock.advance(2.0)
    assert reloader.reloads == 0 and names(catalog) == ["A"]

    entry(tmp_path / "b.desktop", "B")  # add
    clock.advance(2.0)
    assert reloader.reloads == 1 and names(catalog) == ["A", "B"]
    assert cleared == [True]

    entry(tmp_path / "b.desktop", "Bee, renamed and longer")  # edit (size changes too)
    clock.advance(2.0)
    assert names(catalog) == ["A", "Bee, renamed and longer"]

    (tmp_path / "a.desktop").unlink()  # remove
    clock.advance(1.0)
    assert names(catalog) == ["A", "Bee, renamed and longer"]  # not yet: the interval is 2 s
    clock.advance(1.0)
    assert names(catalog) == ["Bee, renamed and longer"]
    assert reloader.reloads == 3

    reloader.stopService()
    entry(tmp_path / "c.desktop", "C")
    clock.advance(10.0)
    assert reloader.reloads == 3 and not clock.getDelayedCalls()


def test_check_uses_the_injected_snapshot(tmp_path: Path) -> None:
    catalog = Catalog([str(tmp_path)])
    snapshots = iter([frozenset(), frozenset(), frozenset({("x", 1, 1, 1)})])
    reloader = CatalogReloader(catalog, [str(tmp_path)], snapshot=lambda dirs: next(snapshots))
    assert reloader.check() is False
    assert reloader.check() is True
