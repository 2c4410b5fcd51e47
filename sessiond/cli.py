# `sessiond run`: the daemon in the foreground, logging to stdout. Expected
# failures (bad config, port in use, not root) are one clear line and exit 2,
# never a traceback.
"""Command line of the sessiond daemon."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

from sessiond.startup_pages import pause_collector

EXIT_USAGE = 2
# Log time stamps: RFC 3339 with microseconds (bench/bench_warm_start.py reads them).
LOG_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sessiond", description="session-virtualization application server")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", help="sessiond.conf (INI); embedded defaults when omitted")
    run.add_argument("--listen", help="override [server] listen, HOST:PORT")
    run.add_argument("--state-dir", help="override [server] state_dir")
    run.add_argument("--runtime-dir", help="override [server] runtime_dir")
    run.add_argument("--apps", help="override [apps] directories (colon-separated)")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for section, key, value in (
        ("server", "listen", args.listen),
        ("server", "state_dir", args.state_dir),
        ("server", "runtime_dir", args.runtime_dir),
        ("apps", "directories", args.apps),
    ):
        if value:
            out.setdefault(section, {})[key] = value
    return out


def _warm_up(reactor: Any, work: Callable[[], None]) -> None:
    """WORK in the reactor's thread pool; a failure is logged (the first login then meets it)."""
    from twisted.internet import threads
    from twisted.logger import Logger

    threads.deferToThread(work).addErrback(lambda failure: Logger(namespace="sessiond.cli").failure(
        "warming up for the first login failed", failure))  # fmt: skip


def _cannot_listen(where: object, error: object) -> int:
    print(f"sessiond: cannot listen on {where}: {error} "
          "(is another sessiond running, or the port in use?)", file=sys.stderr)  # fmt: skip
    return EXIT_USAGE


def run(config_path: str | None, overrides: dict[str, dict[str, str]]) -> int:
    """Run sessiond until SIGINT/SIGTERM; returns the exit status."""
    pause_collector()  # until it serves (sessiond/startup_pages.py); the config's imports too
    from sessiond.config import ConfigError, load_config
    from sessiond.early_listen import LISTEN_BACKLOG, ListenError, bind_listener

    try:
        config = load_config(config_path, overrides)
    except ConfigError as exc:
        print(f"sessiond: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if os.geteuid() != 0:
        print("sessiond: must run as root (it authenticates users and starts their sessions)", file=sys.stderr)
        return EXIT_USAGE

    host, port = config.listen
    # Before the imports below (most of the start): clients queue from now on (sessiond/early_listen.py).
    try:
        listening = bind_listener(host, port, LISTEN_BACKLOG)
    except ListenError as exc:
        return _cannot_listen(exc.where, exc.error)

    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from sessiond.auth import load_pam
    from sessiond.daemon import build_service
    from sessiond.startup_pages import (GARBAGE_DELAY_SECONDS, RELEASE_DELAY_SECONDS, collect_startup_garbage,
                                        release_startup_pages, serving_starts)  # fmt: skip

    # Milliseconds in the time stamps: a login's steps (PAM, sandbox, agent, launch) take tens of them.
    observer = textFileLogObserver(sys.stdout, timeFormat=LOG_TIME_FORMAT)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    root, fingerprint = build_service(config, reactor, listening=listening)
    try:
        root.startService()
    except CannotListenError as exc:
        where = exc.interface if exc.interface else exc.port
        if isinstance(where, bytes):
            where = where.decode("utf-8", "replace")
        return _cannot_listen(where, exc.socketError)
    actual = root.listener._port.getHost().port  # type: ignore[attr-defined]
    print(f"sessiond listening on {host}:{actual} (TLS 1.3, certificate sha256 {fingerprint})", flush=True)
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    # cryptography's extension: what only start-up used goes back to the system (sessiond/startup_pages.py)
    reactor.callLater(RELEASE_DELAY_SECONDS, release_startup_pages)
    reactor.callLater(GARBAGE_DELAY_SECONDS, collect_startup_garbage)
    # What the first login needs and the start did not: loaded while no client has logged in yet.
    reactor.callWhenRunning(_warm_up, reactor, load_pam)
    serving_starts()
    reactor.run()  # type: ignore[attr-defined]
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run(args.config, overrides_from(args))
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
