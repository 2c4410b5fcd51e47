# Reach the session's USB/IP endpoint with TCP tools: run a command in a
# private network namespace whose 127.0.0.1:3240 forwards to the session's
# Unix endpoint ($XDG_RUNTIME_DIR/usbip.sock).
#
#   python -m sessiond.agent.usb_netns -- usbip list -r 127.0.0.1
#   python -m sessiond.agent.usb_netns -- usbip attach -r 127.0.0.1 -b vusb-1   (as root, on hosts with vhci-hcd)
#
# Why: with `network = host` the session shares the host's network namespace,
# where a listening port is reachable from every other session. A network
# namespace created here (inside an unprivileged user namespace, for a normal
# user) holds a loopback that nobody else can reach, and the Unix socket it
# forwards to lives in the session's private /run/user/UID.
"""Run a command with 127.0.0.1:PORT forwarded to the session's USB/IP endpoint."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading

from isolation import linux
from protocol.usb import USBIP_PORT

CLONE_NEWUSER = 0x10000000
# Bytes per read while relaying; USB/IP PDUs are at most ~121 KiB.
RELAY_CHUNK = 256 * 1024
# Connections accepted at once on the forwarded port.
LISTEN_BACKLOG = 16
EXIT_SETUP_FAILED = 73


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(RELAY_CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(listener: socket.socket, path: str) -> None:
    while True:
        try:
            tcp, _addr = listener.accept()
        except OSError:
            return
        tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            unix.connect(path)
        except OSError as exc:
            print(f"usb_netns: cannot reach {path}: {exc}", file=sys.stderr)
            tcp.close()
            unix.close()
            continue
        threading.Thread(target=_pump, args=(tcp, unix), daemon=True).start()
        threading.Thread(target=_pump, args=(unix, tcp), daemon=True).start()


def enter_private_network() -> None:
    """Move this process into a new network namespace with lo up (a user namespace too, unless root)."""
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        linux.unshare(linux.CLONE_NEWNET)
    else:
        linux.unshare(CLONE_NEWUSER | linux.CLONE_NEWNET)
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w", encoding="ascii") as handle:
                handle.write(text)
    linux.interface_up("lo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="usb_netns", description=__doc__)
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    parser.add_argument("--socket", default=os.path.join(runtime, "usbip.sock") if runtime else "",
                        help="the session's USB/IP endpoint (default $XDG_RUNTIME_DIR/usbip.sock)")  # fmt: skip
    parser.add_argument("--port", type=int, default=USBIP_PORT)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    if not args.socket or not os.path.exists(args.socket):
        print(f"usb_netns: no USB/IP endpoint at {args.socket or '$XDG_RUNTIME_DIR/usbip.sock'}; "
              "share a device with `svclient usb share` first", file=sys.stderr)  # fmt: skip
        return EXIT_SETUP_FAILED
    try:
        enter_private_network()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", args.port))
        listener.listen(LISTEN_BACKLOG)
    except OSError as exc:
        print(f"usb_netns: cannot set up the private network: {exc}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    pid = os.fork()
    if pid == 0:
        listener.close()
        try:
            os.execvp(args.command[0], args.command)
        except OSError as exc:
            print(f"usb_netns: cannot run {args.command[0]}: {exc}", file=sys.stderr)
        os._exit(127)
    threading.Thread(target=_serve, args=(listener, args.socket), daemon=True).start()
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main())
