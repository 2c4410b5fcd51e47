# Lifecycle benchmarks from issue 4, against baselines measured in the same
# run: reconnecting to an existing session until its first frame (with a
# resume token, and with a password through PAM) against the bare floor of a
# TLS connect + HELLO; and `sessionctl list --json --all` with 10,000 ended
# sessions in the registry against the same command with none.
#
# Run as root after `make install`: /opt/sessiond/venv/bin/python bench/bench_lifecycle.py
"""Reconnect-to-first-frame and admin listing benchmarks."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

TESTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
sys.path.insert(0, TESTS_DIR)

from svtest import VENV_BIN, create_user, remove_user, start_sessiond, stop_sessiond, svclient  # noqa: E402

from client.known_hosts import KnownHosts  # noqa: E402
from client.session import connect  # noqa: E402
from protocol.messages import ChannelKind  # noqa: E402
from sessiond.registry import Registry  # noqa: E402

USER = "svb-life"
# Synthetic ended sessions put in the registry for the listing bench.
SYNTHETIC_ROWS = 10_000


async def reconnects(reactor: Any, host: str, port: int, known: KnownHosts, password: str, runs: int
                     ) -> dict[str, list[float]]:  # fmt: skip
    """Seconds per run for: the TLS+HELLO floor, token reconnect, password reconnect."""
    from twisted.internet import task

    out: dict[str, list[float]] = {"floor": [], "token": [], "password": []}
    token = ""
    for _ in range(runs):
        started = time.perf_counter()
        client = await connect(reactor, host, port, known)
        out["floor"].append(time.perf_counter() - started)
        client.disconnect()
        for how in ("password", "token"):
            started = time.perf_counter()
            client = await connect(reactor, host, port, known)
            if how == "token" and token:
                result = await client.resume(USER, token)
            else:
                result = await client.login(USER, password)
            token = result.resume_token
            frame = client.next_frame()
            await client.open_channel(ChannelKind.DISPLAY)
            await frame
            out[how].append(time.perf_counter() - started)
            client.disconnect()
            await task.deferLater(reactor, 0.1, lambda: None)
    return out


def timed(argv: list[str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
    return seconds


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="svb-life-")
    user = create_user(USER, tmp)
    servers = []
    try:
        os.makedirs(os.path.join(tmp, "a"))
        server = start_sessiond(os.path.join(tmp, "a"))
        servers.append(server)
        assert svclient(server, user, "launch", "xterm").returncode == 0
        from twisted.internet import defer, task

        results: dict[str, list[float]] = {}

        def run(reactor: Any) -> Any:
            async def body() -> None:
                known = KnownHosts(os.path.join(tmp, "kh"))
                results.update(await reconnects(reactor, server.host, server.port, known, user.password, args.runs))
            return defer.ensureDeferred(body())

        try:
            task.react(run)
        except SystemExit:
            pass
        stop_sessiond(server)
        # Listing: a registry with SYNTHETIC_ROWS ended sessions, and one live.
        big = os.path.join(tmp, "b")
        os.makedirs(big)
        registry = Registry(os.path.join(big, "state"))
        with registry.db:
            for n in range(SYNTHETIC_ROWS):
                registry.add_session(id=f"synthetic{n:06d}", user=f"user{n % 500}", uid=10000 + n % 500,
                                     socket="/nonexistent", session_dir="/nonexistent", link_token="x",
                                     width=1920, height=1080)  # fmt: skip
        registry.db.execute("UPDATE sessions SET state = 'ended', ended = created")
        registry.close()
        listed = start_sessiond(big)
        servers.append(listed)
        assert svclient(listed, user, "login").returncode == 0
        ctl = [os.path.join(VENV_BIN, "sessionctl"), "--config", listed.config, "list", "--json"]
        empty = timed(ctl, args.runs)
        full = timed([*ctl, "--all"], args.runs)
        rows = subprocess.run([*ctl, "--all"], capture_output=True, text=True).stdout.count('"id"')
    finally:
        for server in servers:
            stop_sessiond(server)
        remove_user(USER)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"sessiond lifecycle benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"nproc {os.cpu_count()}; medians of {args.runs}")
    floor = statistics.median(results["floor"])
    for label, key in (("reconnect -> first frame (resume token)", "token"),
                       ("reconnect -> first frame (password, PAM)", "password")):  # fmt: skip
        ours = statistics.median(results[key])
        print(f"{label:<44} {ms(results[key]):>10}   floor TLS connect+HELLO {ms(results['floor'])}   "
              f"ratio {ours / floor:.2f}x   target 150 ms")
    print(f"{'sessionctl list --json --all (' + str(rows) + ' rows)':<44} {ms(full):>10}   "
          f"baseline same command, 1 live row {ms(empty)}   "
          f"ratio {statistics.median(full) / statistics.median(empty):.2f}x"
          f"   target 200 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
