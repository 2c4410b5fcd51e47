# A farm of three real sessiond hosts on one real etcd. The hosts listen on
# their own loopback addresses (127.0.0.2-4), not yet in network namespaces
# (docs/farm.md says what remains), and run real sessions (Xvfb, PAM users).
# Users log in with the installed svclient, which follows the farm's redirect.
"""Integration: placement, redirect with ticket, one session per user, host loss."""

from __future__ import annotations

import os
import signal
import time
from typing import Iterator

import pytest

from etcdtest import Cluster, start_cluster
from svtest import Server, start_sessiond, stop_sessiond, svclient

HOSTS = ("a", "b", "c")
ADDRESS = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}
LEASE_TTL = 3


def _free_port(address: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    cluster = start_cluster(1)
    yield cluster
    cluster.close()


class Link:
    """A TCP forwarder standing for one host's network link to etcd; cut() is the link going down
    (listener and every open connection closed, new connections refused)."""

    def __init__(self, target: str) -> None:
        import socket
        import threading

        host, port = target.rsplit("//", 1)[1].split(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: list[object] = []
        self.up = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while self.up:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                return
            upstream = socket.create_connection(self.target)
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: object, b: object) -> None:
        try:
            while data := a.recv(65536):  # type: ignore[attr-defined]
                b.sendall(data)  # type: ignore[attr-defined]
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()  # type: ignore[attr-defined]
                except OSError:
                    pass

    def cut(self) -> None:
        import socket

        self.up = False
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
        except OSError:
            pass
        self.listener.close()
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]
                s.close()  # type: ignore[attr-defined]
            except OSError:
                pass


def start_host(tmp: str, etcd: Cluster, name: str, capacity: int = 3, endpoints: str = "") -> Server:
    address = ADDRESS[name]
    port = _free_port(address)
    farm = (f"[farm]\netcd = {endpoints or ','.join(etcd.endpoints)}\nhost_id = {name}\nadvertise = {address}:{port}\n"
            f"capacity = {capacity}\nlease_ttl = {LEASE_TTL}\nprefix = /{os.path.basename(tmp)}/\n")  # fmt: skip
    return start_sessiond(os.path.join(tmp, name), extra=farm, port=port, host=address)


@pytest.fixture
def link(etcd: Cluster) -> Iterator[Link]:
    """Host b's link to etcd."""
    forwarder = Link(etcd.endpoints[0])
    yield forwarder
    forwarder.cut()


def _farm(tmp: str, etcd: Cluster, link: Link | None) -> Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    try:
        for name in HOSTS:
            os.makedirs(os.path.join(tmp, name))
            endpoints = link.url if link is not None and name == "b" else ""
            servers[name] = start_host(tmp, etcd, name, endpoints=endpoints)
        wait_for(lambda: all("registered under lease" in s.log() for s in servers.values()), 20, "hosts to join")
        yield servers
    finally:
        for server in servers.values():
            stop_sessiond(server)


@pytest.fixture
def farm(tmp_path: object, etcd: Cluster) -> Iterator[dict[str, Server]]:
    """Three hosts on one etcd."""
    yield from _farm(str(tmp_path), etcd, None)


@pytest.fixture
def farm_b_linked(tmp_path: object, etcd: Cluster, link: Link) -> Iterator[dict[str, Server]]:
    """Three hosts; b reaches etcd only through LINK."""
    yield from _farm(str(tmp_path), etcd, link)


def wait_for(check: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def holder(farm: dict[str, Server], session: str) -> list[str]:
    """The hosts whose log shows SESSION starting (exactly one when all is well)."""
    return [name for name, server in farm.items() if f"session {session} starting" in server.log()]


def login(server: Server, user: object) -> str:
    out = svclient(server, user, "login", resume=False)  # type: ignore[arg-type]
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_login_through_another_host_reaches_the_session(farm: dict[str, Server], user_factory: object) -> None:
    user = user_factory("farmr")  # type: ignore[operator]
    session = login(farm["a"], user)
    [home] = holder(farm, session)
    other = next(name for name in HOSTS if name != home)
    again = svclient(farm[other], user, "login", resume=False)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == session  # the same session, served by the host holding it
    assert holder(farm, session) == [home]
    # The holder's certificate came vouched for by the first host: pinned without a notice.
    assert f"pinned the certificate of {farm[home].address}" not in again.stderr
    assert f"on host {home}" in again.stderr  # svclient says where the session is
    assert "redirecting" in farm[other].log()
    svclient(farm[home], user, "logoff", resume=False)


def test_logins_through_one_host_spread_by_load_within_capacity(farm: dict[str, Server], user_factory: object) -> None:
    users = [user_factory(f"farm{i}") for i in range(9)]  # type: ignore[operator]
    sessions = [login(farm["a"], user) for user in users]
    try:
        where = [holder(farm, sid) for sid in sessions]
        assert all(len(h) == 1 for h in where), where
        counts = {name: sum(1 for h in where if h == [name]) for name in HOSTS}
        assert counts == {"a": 3, "b": 3, "c": 3}  # capacity 3 each: none above it, all used
        refused = svclient(farm["a"], user_factory("farmx"), "login", resume=False)  # type: ignore[operator]
        assert refused.returncode != 0 and "full" in refused.stderr, refused.stderr
    finally:
        for user, h in zip(users, [holder(farm, sid) for sid in sessions]):
            svclient(farm[h[0]], user, "logoff", resume=False)


def test_simultaneous_logins_through_two_hosts_give_one_session(farm: dict[str, Server], user_factory: object) -> None:
    from concurrent.futures import ThreadPoolExecutor

    user = user_factory("farms")  # type: ignore[operator]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda name: svclient(farm[name], user, "login", resume=False), ["a", "b"]))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    sessions = {r.stdout.strip() for r in results}
    assert len(sessions) == 1
    [session] = sessions
    assert len(holder(farm, session)) == 1
    svclient(farm[holder(farm, session)[0]], user, "logoff", resume=False)


def test_killed_host_sessions_are_lost_and_replaced_elsewhere(tmp_path: object, farm: dict[str, Server],
                                                              etcd: Cluster, user_factory: object) -> None:  # fmt: skip
    user = user_factory("farmk")  # type: ignore[operator]
    session = login(farm["a"], user)
    [home] = holder(farm, session)
    os.kill(farm[home].process.pid, signal.SIGKILL)
    farm[home].process.wait()
    killed = time.monotonic()
    survivor = next(name for name in HOSTS if name != home)
    out = svclient(farm[survivor], user, "login", resume=False)
    deadline = killed + LEASE_TTL + 3
    while out.returncode != 0 and time.monotonic() < deadline:  # until the lease runs out
        time.sleep(0.5)
        out = svclient(farm[survivor], user, "login", resume=False)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - killed < LEASE_TTL + 3
    new = out.stdout.strip()
    assert new != session and holder(farm, new) not in ([], [home])
    assert f"host {home}" in out.stderr and "lost" in out.stderr  # the message says what happened
    svclient(farm[holder(farm, new)[0]], user, "logoff", resume=False)
    # The killed host comes back: its old session was replaced, so it is ended, not adopted twice.
    farm[home] = start_host(str(tmp_path), etcd, home)
    wait_for(lambda: _ended(farm[home], session), 30, "the replaced session to end")


def _ended(server: Server, session: str) -> bool:
    return any(session in line and ("ended" in line or "exited" in line) for line in server.log().splitlines())


def test_admin_hosts_farm_list_and_drain(farm: dict[str, Server], user_factory: object) -> None:
    import json
    from concurrent.futures import ThreadPoolExecutor

    from svtest import sessionctl

    user = user_factory("farmd")  # type: ignore[operator]
    session = login(farm["a"], user)
    [home] = holder(farm, session)
    hosts = json.loads(sessionctl(farm["c"], "hosts", "--json").stdout)
    assert sorted(h["host_id"] for h in hosts) == list(HOSTS) and all(h["state"] == "ok" for h in hosts)
    assert {h["host_id"]: h["placed"] for h in hosts}[home] == 1
    rows = json.loads(sessionctl(farm["c"], "list", "--farm", "--json").stdout)
    found = [(r["user"], r["session_id"], r["host_id"], r["state"]) for r in rows]
    assert found == [(user.name, session, home, "live")]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(sessionctl, farm["a"], "drain", home)
        wait_for(lambda: any(h["state"] == "draining" for h in json.loads(sessionctl(farm["a"], "hosts", "--json")
                                                                         .stdout)), 10, "the drain")  # fmt: skip
        other = user_factory("farme")  # type: ignore[operator]
        placed = login(farm[home], other)  # through the draining host: placed elsewhere
        assert holder(farm, placed) not in ([], [home])
        assert not waiting.done()  # home still has a session
        svclient(farm[home], user, "logoff", resume=False)
        drained = waiting.result(timeout=30)
    assert drained.returncode == 0 and "last session ended" in drained.stdout, drained.stderr
    assert sessionctl(farm["a"], "drain", home, "--undo").returncode == 0
    svclient(farm[holder(farm, placed)[0]], other, "logoff", resume=False)


def test_host_cut_off_from_etcd_refuses_placements_and_keeps_its_session(
        farm_b_linked: dict[str, Server], link: Link, user_factory: object) -> None:  # fmt: skip
    from svtest import sessionctl

    farm = farm_b_linked
    for name in ("a", "c"):
        assert sessionctl(farm["b"], "drain", name, "--no-wait").returncode == 0
    user = user_factory("farmc")  # type: ignore[operator]
    session = login(farm["b"], user)
    assert holder(farm, session) == ["b"]
    for name in ("a", "c"):
        assert sessionctl(farm["b"], "drain", name, "--undo").returncode == 0
    link.cut()
    cut = time.monotonic()
    newcomer = user_factory("farmn")  # type: ignore[operator]
    refused = svclient(farm["b"], newcomer, "login", resume=False)
    assert refused.returncode != 0 and "etcd" in refused.stderr, refused.stderr  # a clear refusal, no session
    assert time.monotonic() - cut < LEASE_TTL + 10
    again = svclient(farm["b"], user, "screenshot", os.path.join(os.path.dirname(farm["b"].config), "s.png"),
                     resume=False)  # fmt: skip
    assert again.returncode == 0, again.stderr  # the connected session goes on, pixels and all
    assert "1024x768" in again.stdout
    svclient(farm["b"], user, "logoff", resume=False)
