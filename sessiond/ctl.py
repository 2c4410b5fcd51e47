# sessionctl: the admin's command line. It talks to sessiond over the
# root-only Unix socket (JSON lines); plain sockets, no reactor, so it starts
# fast. Every listing has --json.
"""sessionctl command line."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import sys
from typing import Any

import configparser

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3
# Where sessiond puts its control socket unless [admin] socket says otherwise
# (the defaults of sessiond/config.py; read here without importing the
# daemon's configuration module, which pulls in Twisted: sessionctl must
# start fast).
DEFAULT_RUNTIME_DIR = "/run/sessiond"
CONTROL_SOCKET_NAME = "control.sock"
# Largest answer accepted from sessiond (a listing of many sessions, an audit log).
MAX_ANSWER_BYTES = 64 * 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sessionctl", description="list and control sessiond sessions (root)")
    parser.add_argument("--config", help="sessiond.conf, to find the control socket ([admin] socket)")
    parser.add_argument("--socket", help="control socket path (overrides --config)")
    sub = parser.add_subparsers(dest="command", required=True)
    lst = sub.add_parser("list", help="list sessions")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--user")
    lst.add_argument("--state", help="starting, active, disconnected, ending, ended")
    lst.add_argument("--all", action="store_true", help="include ended sessions (history from the registry)")
    lst.add_argument("--farm", action="store_true", help="every session of the farm with its host (docs/farm.md)")
    hosts = sub.add_parser("hosts", help="hosts of the farm with their load and state")
    hosts.add_argument("--json", action="store_true")
    drain = sub.add_parser("drain", help="stop new sessions on HOST and wait until its last session ended")
    drain.add_argument("host")
    drain.add_argument("--undo", action="store_true", help="take new sessions again")
    drain.add_argument("--no-wait", action="store_true", help="return at once")
    drain.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="show one session")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    for name, text in (("disconnect", "disconnect a session's client (the session keeps running)"),
                       ("logoff", "end a session and every app in it")):  # fmt: skip
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("id")
    revoke = sub.add_parser("revoke", help="invalidate a user's resume tokens (their next login needs the password)")
    revoke.add_argument("user")
    revoke.add_argument("--json", action="store_true")
    audit = sub.add_parser("audit", help="show the audit log")
    audit.add_argument("--since", help="ISO time (2026-11-26T10:00) or seconds since the epoch")
    audit.add_argument("--json", action="store_true")
    return parser


def control_socket(config_path: str | None) -> str:
    """The control socket named by CONFIG_PATH ([admin] socket, else
    [server] runtime_dir/control.sock), or the default one."""
    if config_path is None:
        return os.path.join(DEFAULT_RUNTIME_DIR, CONTROL_SOCKET_NAME)
    parser = configparser.ConfigParser(interpolation=None, default_section="\0no-default")
    with open(config_path, encoding="utf-8") as handle:
        parser.read_file(handle, source=config_path)
    socket_path = parser.get("admin", "socket", fallback="").strip()
    if socket_path:
        return os.path.abspath(socket_path)
    runtime = parser.get("server", "runtime_dir", fallback="").strip() or DEFAULT_RUNTIME_DIR
    return os.path.join(os.path.abspath(runtime), CONTROL_SOCKET_NAME)


def parse_since(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise SystemExit(f"sessionctl: --since {value!r} is neither an ISO time nor seconds") from exc
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


def request(path: str, obj: dict[str, Any], timeout: float | None = 60) -> bytes:
    """Send one request; return the result as JSON text (raises RequestFailed). TIMEOUT None: wait."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(obj).encode("utf-8") + b"\n")
        reader = sock.makefile("rb")
        status = json.loads(reader.readline(MAX_ANSWER_BYTES) or b'{"ok": false, "error": "no answer"}')
        if not status.get("ok"):
            raise RequestFailed(status.get("error", "request failed"), status.get("code", "refused"))
        result = reader.readline(MAX_ANSWER_BYTES)
        if not result.endswith(b"\n"):
            raise RequestFailed("the answer was cut short or too large", "refused")
        return result


class RequestFailed(Exception):
    """sessiond refused the request; `code` says why (unknown-id, bad-request, refused)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _time(value: float | None) -> str:
    if not value:
        return "-"
    return datetime.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def print_table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Aligned columns under HEADER."""
    lines = [header, *rows]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip())


def print_sessions(rows: list[dict[str, Any]]) -> None:
    header = ("ID", "USER", "STATE", "DISPLAY", "APPS", "CLIENT", "STARTED", "IDLE", "MEMORY", "CPU")
    lines = [header] + [
        (r["id"], r["user"], r["state"], r.get("display") or "-", ",".join(r["apps"]) or "-",
         r["client_address"] or "-", _time(r["started"]), f"{r['idle_seconds']:.0f}s",
         f"{r['memory_bytes'] / 2**20:.1f}M", f"{r['cpu_seconds']:.1f}s")  # fmt: skip
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0:
        print("sessionctl: must run as root (the control socket is root-only)", file=sys.stderr)
        return EXIT_USAGE
    path = args.socket
    if not path:
        try:
            path = control_socket(args.config)
        except (OSError, configparser.Error) as exc:
            print(f"sessionctl: cannot read {args.config}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    command: dict[str, Any] = {"command": args.command}
    if args.command == "list" and args.farm:
        command = {"command": "farm-list"}
    elif args.command == "list":
        command.update(user=args.user, state=args.state, all=args.all)
    elif args.command == "drain":
        command.update(host=args.host, undo=args.undo, wait=not (args.undo or args.no_wait))
    elif args.command in ("show", "disconnect", "logoff"):
        command["id"] = args.id
    elif args.command == "revoke":
        command["user"] = args.user
    elif args.command == "audit":
        command["since"] = parse_since(args.since)
    waits = args.command == "drain" and command["wait"]
    if waits:
        print(f"drain: {args.host} takes no new sessions; waiting for its last session to end", file=sys.stderr)
    try:
        raw = request(path, command, None if waits else 60)
    except (FileNotFoundError, ConnectionRefusedError):
        print(f"sessionctl: sessiond is not running (no control socket at {path})", file=sys.stderr)
        return EXIT_NO_DAEMON
    except RequestFailed as exc:
        print(f"sessionctl: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.code in ("unknown-id", "bad-request") else EXIT_FAILED
    if getattr(args, "json", False):
        sys.stdout.buffer.write(raw)  # sessiond's compact JSON, passed through
        return 0
    result = json.loads(raw)
    if args.command == "list" and args.farm:
        print_table(("USER", "SESSION", "HOST", "ADDRESS", "STATE", "CLAIMED"),
                    [(r["user"], r["session_id"], r["host_id"], r["advertise"] or "-", r["state"], _time(r["claimed"]))
                     for r in result])  # fmt: skip
    elif args.command == "list":
        print_sessions(result)
    elif args.command == "hosts":
        print_table(("HOST", "ADDRESS", "STATE", "SESSIONS", "CAPACITY", "CPU", "MEM FREE"),
                    [(r["host_id"] + (" *" if r["this"] else ""), r["advertise"] or "-", r["state"], r["placed"],
                      r["load"]["capacity"], f"{r['load']['cpu_load']:.2f}",
                      f"{r['load']['mem_available'] / 2**30:.1f}G") for r in result])  # fmt: skip
    elif args.command == "drain":
        if "drained_at" in result:
            print(f"drain: {result['host']}: its last session ended at {_time(result['drained_at'])}")
        else:
            print(f"drain: {result['host']}: {'draining' if result['draining'] else 'taking new sessions again'}")
    elif args.command == "show":
        for key, value in result.items():
            if key == "windows":
                continue
            print(f"{key}: {_time(value) if key in ('started', 'last_connect', 'last_disconnect') else value}")
        for window in result.get("windows", []):
            print(f"window {window['id']:#x}: {window['app'] or '-'} {window['state']} {window['geometry']} "
                  f"{window['title']!r}")
    elif args.command == "audit":
        for entry in result:
            print(f"{_time(entry['time'])}  {entry['event']:<26} user={entry['user'] or '-'} "
                  f"session={entry['session'] or '-'} address={entry['address'] or '-'} {entry['detail']}")  # fmt: skip
    elif args.command == "revoke":
        print(f"revoke: {result['user']}: {result['revoked']} resume token(s) revoked; "
              "the next login needs the password")
    else:
        print(f"{args.command}: {args.id}: done")
    return 0


def run(argv: list[str] | None = None) -> int:
    """main() that exits quietly when its output pipe closes (| head)."""
    try:
        return main(argv)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(run())
