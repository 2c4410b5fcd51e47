# Three real sessiond hosts, each in its own network namespace, on a real
# 3-member etcd cluster. Every host talks to the leader first; the leader is
# then killed while users have sessions. What a user does next (log in, be
# placed, be redirected to their session's host, resume with a token) must
# work exactly as before, and no session may be shown lost or replaced.
"""Integration: stopping one of three etcd members changes nothing for users of the farm."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
from etcdtest import Cluster, leader_url, start_cluster
from farmtest import HOSTS, Farm, login, wait_for
from netns import FarmNet, make_farm_net
from svtest import sessionctl, svclient

# Longer than test_farm's: a leader election must fit in the lease's certain-liveness window.
LEASE_TTL = 5


@pytest.fixture
def farm(tmp_path: object) -> Iterator[Farm]:
    net: FarmNet = make_farm_net(HOSTS)
    cluster: Cluster | None = None
    f: Farm | None = None
    try:
        cluster = start_cluster(3, address=net.etcd_address)
        first = leader_url(cluster)
        f = Farm(str(tmp_path), net, cluster, lease_ttl=LEASE_TTL,
                 endpoints=[first] + [u for u in cluster.endpoints if u != first])  # fmt: skip
        f.start()
        yield f
    finally:
        if f is not None:
            f.stop()
        if cluster is not None:
            cluster.close()
        net.close()


def test_stopping_one_of_three_etcd_members_changes_nothing_for_users(farm: Farm, user_factory: object) -> None:
    users = [user_factory(f"farmq{i}") for i in range(3)]  # type: ignore[operator]
    before = {u.name: login(farm["a"], u) for u in users}
    home = {name: farm.holder(sid)[0] for name, sid in before.items()}
    leader = next(m for m in farm.etcd.members if m.client_url == farm.endpoints[0])
    farm.etcd.stop_member(leader, signal.SIGKILL)  # the member every host was talking to
    stopped = time.monotonic()

    # A new user: placed and started (through a, wherever the placement sends them).
    newcomer = user_factory("farmqn")  # type: ignore[operator]
    new_session = login(farm["a"], newcomer)
    assert len(farm.holder(new_session)) == 1
    for user in users:
        # Through a host that does not hold the session: redirected to the same session.
        other = next(h for h in HOSTS if h != home[user.name])
        again = svclient(farm[other], user, "login", resume=False)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == before[user.name]
        # Resume with the token the redirected login stored for the holder (a wrong password proves it).
        holder = dataclasses.replace(farm[home[user.name]], known_hosts=farm[other].known_hosts)
        wrong = os.path.join(os.path.dirname(farm[other].config), "wrong.password")
        with open(wrong, "w", encoding="utf-8") as handle:
            handle.write("not-the-password\n")
        resumed = svclient(holder, user, "login", resume=True, password_file=wrong)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.strip() == before[user.name]

    # Well past a lease TTL after the member died: every host still in the farm, no session lost.
    wait_for(lambda: time.monotonic() - stopped > 2 * LEASE_TTL, 4 * LEASE_TTL, "two lease TTLs")
    hosts = json.loads(sessionctl(farm["b"], "hosts", "--json").stdout)
    assert sorted((h["host_id"], h["state"]) for h in hosts) == [(h, "ok") for h in HOSTS]
    rows = json.loads(sessionctl(farm["c"], "list", "--farm", "--json").stdout)
    assert {r["user"]: (r["session_id"], r["state"]) for r in rows} == {
        **{name: (sid, "live") for name, sid in before.items()}, newcomer.name: (new_session, "live")}
    assert not any("registered under lease" in s.log().split("registered under lease", 1)[1]
                   for s in farm.servers.values())  # fmt: skip  - nobody lost its lease and re-registered
    for user in users:
        farm.logoff(user, before[user.name])
    farm.logoff(newcomer, new_session)
