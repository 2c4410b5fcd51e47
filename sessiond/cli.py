# `sessiond run`: the daemon in the foreground, logging to stdout. Expected
# failures (bad config, port in use, not root) are one clear line and exit 2,
# never a traceback.
"""Command line of the sessiond daemon."""

from __future__ import annotations

import argparse
import os
import sys

from sessiond.config import ConfigError, load_config

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


def run(config_path: str | None, overrides: dict[str, dict[str, str]]) -> int:
    """Run sessiond until SIGINT/SIGTERM; returns the exit status."""
    try:
        config = load_config(config_path, overrides)
    except ConfigError as exc:
        print(f"sessiond: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if os.geteuid() != 0:
        print("sessiond: must run as root (it authenticates users and starts their sessions)", file=sys.stderr)
        return EXIT_USAGE

    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from sessiond.daemon import build_service
    from sessiond.startup_pages import RELEASE_DELAY_SECONDS, release_startup_pages

    # Milliseconds in the time stamps: a login's steps (PAM, sandbox, agent, launch) take tens of them.
    observer = textFileLogObserver(sys.stdout, timeFormat=LOG_TIME_FORMAT)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    root, fingerprint = build_service(config, reactor)
    try:
        root.startService()
    except CannotListenError as exc:
        where = exc.interface if exc.interface else exc.port
        if isinstance(where, bytes):
            where = where.decode("utf-8", "replace")
        print(f"sessiond: cannot listen on {where}: {exc.socketError} "
              "(is another sessiond running, or the port in use?)", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    host, port = config.listen
    actual = root.listener._port.getHost().port  # type: ignore[attr-defined]
    print(f"sessiond listening on {host}:{actual} (TLS 1.3, certificate sha256 {fingerprint})", flush=True)
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    # cryptography's extension: what only start-up used goes back to the system (sessiond/startup_pages.py)
    reactor.callLater(RELEASE_DELAY_SECONDS, release_startup_pages)
    reactor.run()  # type: ignore[attr-defined]
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run(args.config, overrides_from(args))
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
