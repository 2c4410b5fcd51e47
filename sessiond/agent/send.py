# `sessiond-send FILE...`: send files from inside a session to the user's device.
#
# Why a separate, tiny command: apps and scripts in the session need one
# obvious way to push a file out ("save to ~/Outbox" being the other).  It
# opens each file itself (with the caller's rights, following a symlink the
# caller named on purpose), passes the open descriptors to the agent over
# the session's private socket (see send_socket.py for the protocol and its
# bounds) and prints what happened to each file.  It never talks to the
# network and needs nothing but the standard library.
"""The sessiond-send command (runs inside a session)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import stat
import sys

from sessiond.agent.audio_server import runtime_dir
from sessiond.agent.send_socket import MAX_FILES_PER_REQUEST, MAX_REQUEST_BYTES, PROTOCOL_VERSION, send_socket_path

# How long to wait for the agent's answer.
REPLY_TIMEOUT_SECONDS = 10.0
# Largest reply read (results for MAX_FILES_PER_REQUEST files fit easily).
MAX_REPLY_BYTES = 64 * 1024
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


def send_files(paths: list[str], runtime: str) -> tuple[int, list[str]]:
    """Hand paths to the agent listening in the runtime directory; (exit status, lines to print)."""
    fds: list[int] = []
    lines: list[str] = []
    try:
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError as exc:
                return EXIT_USAGE, [f"sessiond-send: cannot open {path}: {exc.strerror}"]
            fds.append(fd)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return EXIT_USAGE, [f"sessiond-send: {path} is not a regular file"]
        request = json.dumps({"v": PROTOCOL_VERSION, "names": [os.path.basename(p) for p in paths]}).encode()
        if len(request) > MAX_REQUEST_BYTES:
            return EXIT_USAGE, ["sessiond-send: the file names are too long for one request"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(REPLY_TIMEOUT_SECONDS)
            try:
                sock.connect(send_socket_path(runtime))
                socket.send_fds(sock, [request], fds)
                reply = json.loads(sock.recv(MAX_REPLY_BYTES))
            except (OSError, ValueError) as exc:
                why = f"the session agent did not answer ({exc}); is this a sessiond session?"
                return EXIT_USAGE, [f"sessiond-send: {why}"]
    finally:
        for fd in fds:
            os.close(fd)
    if reply.get("error"):
        return EXIT_USAGE, [f"sessiond-send: {reply['error']}"]
    status = EXIT_OK
    for result in reply.get("results", []):
        if result.get("ok"):
            lines.append(f"{result.get('name')}: {result.get('message')}")
        else:
            status = EXIT_REFUSED
            lines.append(f"{result.get('name')}: not sent: {result.get('message')}")
    return status, lines


def main(argv: list[str] | None = None) -> int:
    """Entry point of sessiond-send."""
    parser = argparse.ArgumentParser(prog="sessiond-send", description="Send files from this session to your device.")
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    if len(args.files) > MAX_FILES_PER_REQUEST:
        print(f"sessiond-send: at most {MAX_FILES_PER_REQUEST} files at once", file=sys.stderr)
        return EXIT_USAGE
    status, lines = send_files(args.files, runtime_dir())
    for line in lines:
        print(line, file=sys.stdout if status == EXIT_OK else sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
