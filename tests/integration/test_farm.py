# A farm of three real sessiond hosts on one real etcd. Each host runs in its
# own network namespace with its own address on a veth pair (tests/netns.py);
# etcd and the clients stay on the host side. The hosts run real sessions
# (Xvfb, PAM users); users log in with the installed svclient, which follows
# the farm's redirect. Cutting a host off from etcd removes its route to etcd
# inside its namespace while its clients' link stays up.
"""Integration: placement, redirect with ticket, one session per user, host loss, abandoned redirects."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from etcdtest import Cluster, start_cluster
from farmtest import HOSTS, LEASE_TTL, TICKET_TTL, Farm, ended, login, wait_for
from netns import FarmNet, make_farm_net
from svtest import svclient


@pytest.fixture(scope="module")
def net() -> Iterator[FarmNet]:
    farm_net = make_farm_net(HOSTS)
    try:
        yield farm_net
    finally:
        farm_net.close()


@pytest.fixture(scope="module")
def etcd(net: FarmNet) -> Iterator[Cluster]:
    cluster = start_cluster(1, address=net.etcd_address)
    yield cluster
    cluster.close()


@pytest.fixture
def farm(tmp_path: object, net: FarmNet, etcd: Cluster) -> Iterator[Farm]:
    """Three hosts, each in its namespace, on one etcd."""
    f = Farm(str(tmp_path), net, etcd)
    try:
        f.start()
        yield f
    finally:
        f.stop()
        for ns in net.namespaces.values():
            ns.restore_etcd(net.etcd_address)


def test_login_through_another_host_reaches_the_session(farm: Farm, user_factory: object) -> None:
    user = user_factory("farmr")  # type: ignore[operator]
    session = login(farm["a"], user)
    [home] = farm.holder(session)
    other = next(name for name in HOSTS if name != home)
    again = svclient(farm[other], user, "login", resume=False)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == session  # the same session, served by the host holding it
    assert farm.holder(session) == [home]
    # The holder's certificate came vouched for by the first host: pinned without a notice.
    assert f"pinned the certificate of {farm[home].address}" not in again.stderr
    assert f"on host {home}" in again.stderr  # svclient says where the session is
    assert "redirecting" in farm[other].log()
    svclient(farm[home], user, "logoff", resume=False)


def test_logins_through_one_host_spread_by_load_within_capacity(farm: Farm, user_factory: object) -> None:
    users = [user_factory(f"farm{i}") for i in range(9)]  # type: ignore[operator]
    sessions = [login(farm["a"], user) for user in users]
    try:
        where = [farm.holder(sid) for sid in sessions]
        assert all(len(h) == 1 for h in where), where
        counts = {name: sum(1 for h in where if h == [name]) for name in HOSTS}
        assert counts == {"a": 3, "b": 3, "c": 3}  # capacity 3 each: none above it, all used
        refused = svclient(farm["a"], user_factory("farmx"), "login", resume=False)  # type: ignore[operator]
        assert refused.returncode != 0 and "full" in refused.stderr, refused.stderr
    finally:
        for user, h in zip(users, [farm.holder(sid) for sid in sessions]):
            svclient(farm[h[0]], user, "logoff", resume=False)


def test_simultaneous_logins_through_two_hosts_give_one_session(farm: Farm, user_factory: object) -> None:
    from concurrent.futures import ThreadPoolExecutor

    user = user_factory("farms")  # type: ignore[operator]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda name: svclient(farm[name], user, "login", resume=False), ["a", "b"]))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    sessions = {r.stdout.strip() for r in results}
    assert len(sessions) == 1
    [session] = sessions
    assert len(farm.holder(session)) == 1
    svclient(farm[farm.holder(session)[0]], user, "logoff", resume=False)


def test_killed_host_sessions_are_lost_and_replaced_elsewhere(farm: Farm, user_factory: object) -> None:
    user = user_factory("farmk")  # type: ignore[operator]
    session = login(farm["a"], user)
    [home] = farm.holder(session)
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
    assert new != session and farm.holder(new) not in ([], [home])
    assert f"host {home}" in out.stderr and "lost" in out.stderr  # the message says what happened
    svclient(farm[farm.holder(new)[0]], user, "logoff", resume=False)
    # The killed host comes back: its old session was replaced, so it is ended, not adopted twice.
    farm.start_host(home)
    wait_for(lambda: ended(farm[home], session), 30, "the replaced session to end")


def test_admin_hosts_farm_list_and_drain(farm: Farm, user_factory: object) -> None:
    import json
    from concurrent.futures import ThreadPoolExecutor

    from svtest import sessionctl

    user = user_factory("farmd")  # type: ignore[operator]
    session = login(farm["a"], user)
    [home] = farm.holder(session)
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
        assert farm.holder(placed) not in ([], [home])
        assert not waiting.done()  # home still has a session
        svclient(farm[home], user, "logoff", resume=False)
        drained = waiting.result(timeout=30)
    assert drained.returncode == 0 and "last session ended" in drained.stdout, drained.stderr
    assert sessionctl(farm["a"], "drain", home, "--undo").returncode == 0
    svclient(farm[farm.holder(placed)[0]], other, "logoff", resume=False)


def test_host_cut_off_from_etcd_refuses_placements_and_keeps_its_session(farm: Farm, net: FarmNet,
                                                                        user_factory: object) -> None:  # fmt: skip
    from seamless_client import SeamlessClient
    from svtest import sessionctl

    for name in ("a", "c"):
        assert sessionctl(farm["b"], "drain", name, "--no-wait").returncode == 0
    user = user_factory("farmc")  # type: ignore[operator]
    session = login(farm["b"], user)
    assert farm.holder(session) == ["b"]
    for name in ("a", "c"):
        assert sessionctl(farm["b"], "drain", name, "--undo").returncode == 0
    connected = SeamlessClient(farm["b"], user)  # the user's client, connected before the cut
    net.namespaces["b"].cut_etcd(net.etcd_address)  # b's route to etcd only: its clients still reach it
    cut = time.monotonic()
    newcomer = user_factory("farmn")  # type: ignore[operator]
    refused = svclient(farm["b"], newcomer, "login", resume=False)
    assert refused.returncode != 0 and "etcd" in refused.stderr, refused.stderr  # a clear refusal, no session
    assert time.monotonic() - cut < LEASE_TTL + 10
    # The connected client goes on over the same connection, well past the lease: it starts an app and sees it.
    connected.pump_until(lambda: time.monotonic() - cut > LEASE_TTL + 1, LEASE_TTL + 5)
    assert connected.launch("xterm", 1).ok
    assert connected.window_of("xterm", 30) is not None
    connected.close()
    again = svclient(farm["b"], user, "screenshot", os.path.join(os.path.dirname(farm["b"].config), "s.png"),
                     resume=False)  # fmt: skip
    assert again.returncode == 0, again.stderr  # the connected session goes on, pixels and all
    assert "1024x768" in again.stdout
    svclient(farm["b"], user, "logoff", resume=False)


def test_abandoned_redirect_releases_the_claim(farm: Farm, user_factory: object) -> None:
    """A client sent from a to b that never arrives: once its ticket has expired, b frees the key and
    the slot, and the user's next login works (a fresh session, not a redirect to a ghost)."""
    import json

    from protocol.control_session import Auth
    from protocol.frames import FrameDecoder
    from svtest import HELLO, frame, sessionctl, tls_connect

    for name in ("a", "c"):
        assert sessionctl(farm["a"], "drain", name, "--no-wait").returncode == 0
    user = user_factory("farmz")  # type: ignore[operator]
    sock = tls_connect(farm["a"])  # a client that reads the redirect and goes away
    sock.sendall(HELLO + frame(0, Auth(method="password", user=user.name, password=user.password)))
    decoder, result = FrameDecoder(), None
    while result is None:
        for f in decoder.feed(sock.recv(65536)):
            if f.channel == 0 and f.type == 0x03:
                result = json.loads(f.payload)
    sock.close()
    assert not result["ok"] and result["redirect"] == farm["b"].address and result["ticket"]

    def placed_on_b() -> int:
        hosts = json.loads(sessionctl(farm["a"], "hosts", "--json").stdout)
        return int({h["host_id"]: h["placed"] for h in hosts}["b"])

    assert placed_on_b() == 1  # claimed on b before the client was sent there
    rows = json.loads(sessionctl(farm["a"], "list", "--farm", "--json").stdout)
    assert [(r["user"], r["session_id"], r["host_id"]) for r in rows] == [(user.name, result["session"], "b")]
    released = time.monotonic()
    wait_for(lambda: placed_on_b() == 0, 5 * TICKET_TTL + 10, "b to release the abandoned claim")
    assert time.monotonic() - released >= TICKET_TTL  # not before the ticket could have been used
    assert json.loads(sessionctl(farm["a"], "list", "--farm", "--json").stdout) == []
    assert "the client never came" in farm["b"].log()
    for name in ("a", "c"):
        assert sessionctl(farm["a"], "drain", name, "--undo").returncode == 0
    session = login(farm["a"], user)  # not stuck: a new session somewhere
    assert session != result["session"] and len(farm.holder(session)) == 1
    farm.logoff(user, session)


def test_svclient_launch_through_another_host_launches_beside_the_connected_client(
        farm: Farm, user_factory: object) -> None:  # fmt: skip
    """The redirected login of `svclient launch` still says launch.beside: the user's connected client on
    the session's host keeps the session and shows the app (issue 17: an attached xpra client)."""
    from seamless_client import SeamlessClient

    user = user_factory("farml")  # type: ignore[operator]
    session = login(farm["a"], user)
    [home] = farm.holder(session)
    other = next(name for name in HOSTS if name != home)
    connected = SeamlessClient(farm[home], user)  # holds the session
    launched = svclient(farm[other], user, "launch", "xterm", resume=False)
    assert launched.returncode == 0, launched.stderr
    assert "it shows in the client the session is open in" in launched.stdout, launched.stdout
    assert connected.window_of("xterm", 30) is not None  # still connected (not taken over): it shows xterm
    connected.close()
    farm.logoff(user, session)
