# Why these tests: a client's launcher must follow the catalog without
# polling, and a burst of catalog edits must not become a burst of messages.
# The notices are checked on a real Catalog and AppPublisher over files in a
# temporary directory, with recorder peers and a task.Clock (no sleeps), then
# through a real gateway ClientHandler (relay_harness.Wired) to see that only
# a client that said the capability in HELLO is told.
"""Tests for sessiond.app_notices: APPS_CHANGED after catalog reloads."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import task

from apps.catalog import Catalog
from apps.entitlements import Entitlements, Principal, parse_rules
from apps.publisher import AppPublisher
from protocol.connection import MessageReceived
from protocol.control_session import APPS_CHANGED_CAPABILITY
from protocol.messages import AppList, AppListRequest, AppsChanged, Hello, Message
from relay_harness import Wired
from sessiond.app_notices import APPS_NOTICE_DELAY, AppNotices
from sessiond.gateway import CAPABILITIES


class Peer:
    """A client connection that records what it was told."""

    def __init__(self, fail: bool = False) -> None:
        self.told: list[Message] = []
        self.fail = fail

    def notify(self, message: Message) -> None:
        if self.fail:
            raise RuntimeError("the connection broke while telling it")
        self.told.append(message)


def entry(directory: Path, app_id: str, name: str) -> None:
    (directory / f"{app_id}.desktop").write_text(f"[Desktop Entry]\nType=Application\nName={name}\nExec=prog\n")


def build(directory: Path, rules: str = "") -> tuple[Catalog, AppNotices, task.Clock]:
    catalog = Catalog([str(directory)])
    entitlements = Entitlements(parse_rules(rules))
    publisher = AppPublisher(catalog, entitlements, principal_of=lambda user: Principal(user, frozenset()))
    clock = task.Clock()
    return catalog, AppNotices(publisher, clock), clock


def reload(catalog: Catalog, notices: AppNotices) -> None:
    """What apps.reload.CatalogReloader does on a change."""
    catalog.reload()
    notices.catalog_reloaded()


def test_a_burst_of_edits_makes_one_notice_after_the_delay(tmp_path: Path) -> None:
    entry(tmp_path, "a", "A")
    catalog, notices, clock = build(tmp_path)
    peer = Peer()
    listed = notices.answer(peer, "alice", "", notify=True)
    assert [app.id for app in listed.apps] == ["a"]
    entry(tmp_path, "b", "B")
    reload(catalog, notices)
    clock.advance(APPS_NOTICE_DELAY / 2)
    entry(tmp_path, "c", "C")
    reload(catalog, notices)  # within the first reload's delay: the same round
    assert peer.told == []
    clock.advance(APPS_NOTICE_DELAY / 2)
    assert peer.told == [AppsChanged()]
    clock.advance(APPS_NOTICE_DELAY * 10)
    assert peer.told == [AppsChanged()]


def test_one_notice_until_the_client_asks_again(tmp_path: Path) -> None:
    entry(tmp_path, "a", "A")
    catalog, notices, clock = build(tmp_path)
    peer = Peer()
    notices.answer(peer, "alice", "", notify=True)
    entry(tmp_path, "b", "B")
    reload(catalog, notices)
    clock.advance(APPS_NOTICE_DELAY)
    entry(tmp_path, "c", "C")  # a second round before the client asked again
    reload(catalog, notices)
    clock.advance(APPS_NOTICE_DELAY)
    assert peer.told == [AppsChanged()]
    assert [app.id for app in notices.answer(peer, "alice", "", notify=True).apps] == ["a", "b", "c"]
    (tmp_path / "b.desktop").unlink()  # withdrawn
    reload(catalog, notices)
    clock.advance(APPS_NOTICE_DELAY)
    assert peer.told == [AppsChanged(), AppsChanged()]


def test_no_notice_when_the_users_own_list_is_unchanged(tmp_path: Path) -> None:
    entry(tmp_path, "a", "A")
    catalog, notices, clock = build(tmp_path, rules="secret: bob")
    alice, bob, quiet = Peer(), Peer(), Peer()
    notices.answer(alice, "alice", "", notify=True)
    notices.answer(bob, "bob", "", notify=True)
    notices.answer(quiet, "bob", "", notify=False)  # did not say the capability
    entry(tmp_path, "secret", "Secret")  # only bob may see it
    reload(catalog, notices)
    clock.advance(APPS_NOTICE_DELAY)
    assert (alice.told, bob.told, quiet.told) == ([], [AppsChanged()], [])
    reload(catalog, notices)  # re-read, nothing different for alice
    clock.advance(APPS_NOTICE_DELAY)
    assert alice.told == []


def test_a_forgotten_or_failing_client_costs_nobody_else(tmp_path: Path) -> None:
    entry(tmp_path, "a", "A")
    catalog, notices, clock = build(tmp_path)
    gone, broken, fine = Peer(), Peer(fail=True), Peer()
    for peer in (gone, broken, fine):
        notices.answer(peer, "alice", "", notify=True)
    notices.forget(gone)
    entry(tmp_path, "b", "B")
    reload(catalog, notices)
    assert notices.compare() == 1  # (the round also runs from the clock: nothing left for it)
    clock.advance(APPS_NOTICE_DELAY)
    assert (gone.told, broken.told, fine.told) == ([], [], [AppsChanged()])


def _control_messages(wired: Wired) -> list[Message]:
    return [e.message for e in wired.client_events if isinstance(e, MessageReceived) and e.channel == 0]


def test_the_gateway_tells_only_clients_that_said_the_capability(tmp_path: Path) -> None:
    assert APPS_CHANGED_CAPABILITY in CAPABILITIES  # said in the server's HELLO
    told = {}
    for said in ((APPS_CHANGED_CAPABILITY,), ()):
        apps = tmp_path / f"apps{len(said)}"
        apps.mkdir()
        entry(apps, "a", "A")
        wired = Wired(str(tmp_path / f"state{len(said)}"), capabilities=said, apps=(str(apps),))
        hello = next(m for m in _control_messages(wired) if isinstance(m, Hello))
        assert APPS_CHANGED_CAPABILITY in hello.capabilities
        wired.client.send(0, AppListRequest())
        wired.pump()
        lists = [m for m in _control_messages(wired) if isinstance(m, AppList)]
        assert [app.id for app in lists[-1].apps] == ["a"]
        entry(apps, "new", "New")
        wired.catalog.reload()
        wired.app_notices.catalog_reloaded()
        wired.clock.advance(APPS_NOTICE_DELAY)
        wired.pump()
        told[said] = [m for m in _control_messages(wired) if isinstance(m, AppsChanged)]
        assert wired.client_alive() and wired.session_alive()
    assert told == {(APPS_CHANGED_CAPABILITY,): [AppsChanged()], (): []}
