# Benchmark: a real user's login while the TLS port is flooded before login
# (issue 12 item 2). 500 idle TCP connections and 50 stuck half-way through
# the TLS handshake, from one address and then from many 127.x.y.z addresses;
# prints the median svclient login time under flood against the same without
# it, as a ratio, and sessiond's RSS before, under the flood and after the
# pre-auth timer has cleared it. All traffic stays on loopback. Run as root
# (it creates a user):
#   make install PREFIX=/opt/sessiond && /opt/sessiond/venv/bin/python bench/bench_preauth.py
"""Pre-auth flood bench: login time ratio under flood, and sessiond's RSS."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from flood import close_all, closed_by_server, open_flood, rss_kib  # noqa: E402
from svtest import Server, TestUser, create_user, remove_user, start_sessiond, stop_sessiond, svclient  # noqa: E402

GRACE = 5.0


def login(server: Server, user: TestUser) -> float:
    started = time.monotonic()
    done = svclient(server, user, "login", password_file=user.password_file, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"login failed: {done.stderr}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="logins per measurement (median)")
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--slow-tls", type=int, default=50)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-preauth-")
    user = create_user("benchpa", tmp)
    server = start_sessiond(tmp, server=f"login_grace = {GRACE}\n")
    try:
        login(server, user)  # starts the session; the rest resume it
        pid = server.process.pid
        normal = statistics.median(login(server, user) for _ in range(args.runs))
        print(f"login without flood: {normal * 1000:.0f} ms (median of {args.runs}); RSS {rss_kib(pid)} KiB")
        for spread in (False, True):
            label = "many 127.x.y.z" if spread else "one address"
            socks = open_flood(server.host, server.port, args.idle, args.slow_tls, spread)
            try:
                flooded = statistics.median(login(server, user) for _ in range(args.runs))
                rss = rss_kib(pid)
                ended = closed_by_server(socks, GRACE + 15)
            finally:
                close_all(socks)
            print(f"flood from {label} ({args.idle} idle + {args.slow_tls} slow TLS): login "
                  f"{flooded * 1000:.0f} ms, ratio {flooded / normal:.2f}; RSS under flood {rss} KiB; "
                  f"{ended}/{len(socks)} ended by the server; RSS after {rss_kib(pid)} KiB")
    finally:
        stop_sessiond(server)
        remove_user(user.name)


if __name__ == "__main__":
    main()
