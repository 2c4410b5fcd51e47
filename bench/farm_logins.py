# Login -> first frame through a farm (bench_farm.py --logins): a user whose
# session lives on host B logs in through host A, is redirected with a
# ticket, and waits for B's first frame; measured alternately in the same
# run against the same login on a single host (no [farm]) whose session also
# exists already. The difference is what the redirect costs: A's PAM check
# and placement read, the ticket in etcd, a second TLS connection to B and
# the ticket's transactional redeem. Run as root after `make install`.
"""farm_logins(): login -> first frame via a redirect, against a single host, same run."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any

from svtest import Server, create_user, free_port, remove_user, sessionctl, start_sessiond, stop_sessiond, svclient

from client.known_hosts import KnownHosts
from client.redirect import follow
from client.session import Redirected, SessionClient, connect
from protocol.messages import ChannelKind

USER = "svb-farm"  # plus SVTEST_USER_SUFFIX (svtest.create_user)


async def _first_frame(client: SessionClient) -> None:
    frame = client.next_frame()
    await client.open_channel(ChannelKind.DISPLAY)
    await frame


async def _single(reactor: Any, server: Server, known: KnownHosts, name: str, password: str) -> float:
    started = time.perf_counter()
    client = await connect(reactor, server.host, server.port, known)
    await client.login(name, password)
    await _first_frame(client)
    client.disconnect()
    return time.perf_counter() - started


async def _farm(reactor: Any, a: Server, known: KnownHosts, name: str, password: str) -> float:
    started = time.perf_counter()
    client = await connect(reactor, a.host, a.port, known)
    try:
        await client.login(name, password)
        raise RuntimeError("host a did not redirect: the bench measures nothing")
    except Redirected as redirect:
        client.disconnect()
        client, _result, _server = await follow(reactor, redirect, name, known)
    await _first_frame(client)
    client.disconnect()
    return time.perf_counter() - started


def farm_logins(reactor: Any, endpoints: list[str], runs: int) -> Any:
    """A Deferred firing with {"farm": [...], "single": [...]} seconds per login."""
    from twisted.internet import defer, task

    tmp = tempfile.mkdtemp(prefix="svb-farm-")
    user = create_user(USER, tmp)
    servers: list[Server] = []
    for name in ("a", "b", "single"):
        os.makedirs(os.path.join(tmp, name))

    def farm_host(name: str, address: str) -> Server:
        port = free_port()
        extra = (f"[farm]\netcd = {','.join(endpoints)}\nhost_id = {name}\nadvertise = {address}:{port}\n"
                 f"lease_ttl = 5\nprefix = /bench-{os.path.basename(tmp)}/\n")  # fmt: skip
        return start_sessiond(os.path.join(tmp, name), extra=extra, port=port, host=address)

    async def body() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"farm": [], "single": []}
        try:
            a = farm_host("a", "127.0.0.2")
            servers.append(a)
            b = farm_host("b", "127.0.0.3")
            servers.append(b)
            single = start_sessiond(os.path.join(tmp, "single"))
            servers.append(single)
            await task.deferLater(reactor, 2.0, lambda: None)  # both hosts registered
            sessionctl(a, "drain", "a", "--no-wait")  # so the session is placed on B
            for server in (b, single):  # the session exists on B and on the single host
                done = svclient(server, user, "login")
                if done.returncode != 0:
                    raise RuntimeError(done.stderr)
            sessionctl(a, "drain", "a", "--undo")
            known = KnownHosts(os.path.join(tmp, "known_hosts"))
            for _ in range(runs):
                out["farm"].append(await _farm(reactor, a, known, user.name, user.password))
                out["single"].append(await _single(reactor, single, known, user.name, user.password))
                await task.deferLater(reactor, 0.1, lambda: None)
        finally:
            for server in servers:
                stop_sessiond(server)
            remove_user(user.name)
            shutil.rmtree(tmp, ignore_errors=True)
        return out

    return defer.Deferred.fromCoroutine(body())
