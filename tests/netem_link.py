# An emulated slow link for tests and benches (issue 15: 20 ms each way =
# 40 ms RTT, 10 Mbit/s, 1% loss): a network namespace whose only route out
# is a point-to-point TUN device, and a forwarder process that carries every
# IP packet between it and a TUN device on the host side, as netem would:
# each direction is a FIFO wire of `rate` bits/s (a packet leaves when the one
# before it has), then `delay`, with random `loss` and a queue of at most
# QUEUE_LIMIT packets (drop-tail, like netem's default limit).
#
# Why not `tc qdisc ... netem`: this machine's kernel is built without
# sch_netem (CONFIG_NET_SCH_NETEM is not set, no modules), so netem is
# emulated in user space on real IP packets: the kernels on both sides run
# real TCP over it (loss means real retransmissions, the rate a real
# bottleneck queue). Only our own namespace and a private /30 are involved;
# loopback and every other interface are untouched, and down() removes it all.
# queue_depth() asks the forwarder (SIGUSR1) how many packets and bytes wait
# in each direction: a sender that paces by the link keeps it from growing.
# Needs root. `python netem_link.py --serve ...` is the forwarder process.
"""NetemLink: a namespace behind an emulated delay/rate/loss link; commands run inside it."""

from __future__ import annotations

import argparse
import collections
import fcntl
import ipaddress
import os
import random
import secrets
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Sequence

# The private range the link's /30 is taken from (10.200.0.0 - 10.249.255.255).
SUBNET_FIRST, SUBNET_COUNT = 200, 50
MAX_SUBNET_TRIES = 20
# Packets queued per direction before drop-tail (netem's default limit).
QUEUE_LIMIT = 1000
# Largest packet read from a TUN device (its MTU is 1500).
MAX_PACKET = 65536
# Seconds the forwarder may take to report that the link is up.
READY_SECONDS = 15.0
# Seconds the forwarder may take to answer a queue-depth question.
DEPTH_ANSWER_SECONDS = 2.0
# ioctl and flags of /dev/net/tun (linux/if_tun.h).
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def _run(argv: Sequence[str]) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=30).stdout
    nets = []
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            nets.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    return nets


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class _Wire:
    """One direction: FIFO serialisation at `rate`, then `delay`, `loss`, a queue limit."""

    def __init__(self, delay: float, rate_bps: float, loss: float) -> None:
        self.delay, self.rate_bps, self.loss = delay, rate_bps, loss
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.queued_bytes = 0
        self.free_at = 0.0
        self.dropped = 0

    def offer(self, packet: bytes, now: float) -> None:
        if random.random() < self.loss or len(self.queue) >= QUEUE_LIMIT:
            self.dropped += 1
            return
        self.free_at = max(now, self.free_at) + len(packet) * 8 / self.rate_bps
        self.queue.append((self.free_at + self.delay, packet))
        self.queued_bytes += len(packet)

    def due(self, now: float) -> list[bytes]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            out.append(self.queue.popleft()[1])
            self.queued_bytes -= len(out[-1])
        return out

    def waiting(self, now: float) -> tuple[int, int]:
        """(packets, bytes) still to be serialised onto the wire: the bottleneck
        queue, without the packets only in flight for the link's delay."""
        packets = sum(1 for due, _ in self.queue if due - self.delay > now)
        size = sum(len(packet) for due, packet in self.queue if due - self.delay > now)
        return packets, size


def serve(args: argparse.Namespace) -> int:
    """The forwarder: make both TUN devices, report, carry packets until SIGTERM."""
    host_fd, ns_fd = _open_tun(args.host_if), _open_tun(args.ns_if)
    _run(["ip", "link", "set", args.ns_if, "netns", args.namespace])
    _run(["ip", "addr", "add", args.host_address, "peer", args.ns_address, "dev", args.host_if])
    _run(["ip", "link", "set", args.host_if, "up"])
    inside = ["ip", "netns", "exec", args.namespace]
    _run([*inside, "ip", "addr", "add", args.ns_address, "peer", args.host_address, "dev", args.ns_if])
    _run([*inside, "ip", "link", "set", args.ns_if, "up"])
    _run([*inside, "ip", "link", "set", "lo", "up"])
    wires = {fd: _Wire(args.delay_ms / 1000, args.rate_mbit * 1e6, args.loss_percent / 100)
             for fd in (host_fd, ns_fd)}  # fmt: skip  (keyed by the device packets come from)
    other = {host_fd: ns_fd, ns_fd: host_fd}
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    asked: list[bool] = []
    signal.signal(signal.SIGUSR1, lambda *_: asked.append(True))
    print("ready", flush=True)
    while not stopping:
        now = time.monotonic()
        if asked:
            asked.clear()
            down, up = wires[host_fd].waiting(now), wires[ns_fd].waiting(now)
            print(f"depth {down[0]} {down[1]} {up[0]} {up[1]}", flush=True)
        for source, wire in wires.items():
            for packet in wire.due(now):
                try:
                    os.write(other[source], packet)
                except OSError:
                    wire.dropped += 1
        heads = [wire.queue[0][0] for wire in wires.values() if wire.queue]
        timeout = max(0.0, min(heads) - time.monotonic()) if heads else 0.5
        try:
            readable, _, _ = select.select(list(wires), [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd in readable:
            while True:
                try:
                    packet = os.read(fd, MAX_PACKET)
                except BlockingIOError:
                    break
                wires[fd].offer(packet, now)
    return 0


class NetemLink:
    """A namespace behind an emulated link (delay each way, rate each way, loss each way)."""

    def __init__(self, delay_ms: float = 20.0, rate_mbit: float = 10.0, loss_percent: float = 1.0) -> None:
        self.delay_ms, self.rate_mbit, self.loss_percent = delay_ms, rate_mbit, loss_percent
        tag = secrets.token_hex(3)
        self.namespace = f"svnm-{tag}"
        self.host_if, self.ns_if = f"th{tag}", f"tn{tag}"  # <= 15 characters (IFNAMSIZ)
        self.host_address = ""
        self.ns_address = ""
        self._forwarder: subprocess.Popen[str] | None = None

    def _pick_subnet(self) -> ipaddress.IPv4Network:
        used = _used_networks()
        for _ in range(MAX_SUBNET_TRIES):
            second = SUBNET_FIRST + secrets.randbelow(SUBNET_COUNT)
            net = ipaddress.ip_network(f"10.{second}.{secrets.randbelow(256)}.{4 * secrets.randbelow(64)}/30")
            if not any(net.overlaps(other) for other in used):
                return net
        raise RuntimeError("no free /30 in 10.200.0.0/10 for the emulated link")

    def up(self) -> NetemLink:
        """Create the namespace and start the forwarder; returns once packets flow."""
        host, peer = list(self._pick_subnet().hosts())
        self.host_address, self.ns_address = str(host), str(peer)
        _run(["ip", "netns", "add", self.namespace])
        argv = [sys.executable, os.path.abspath(__file__), "--serve", "--namespace", self.namespace,
                "--host-if", self.host_if, "--ns-if", self.ns_if, "--host-address", self.host_address,
                "--ns-address", self.ns_address, "--delay-ms", str(self.delay_ms), "--rate-mbit",
                str(self.rate_mbit), "--loss-percent", str(self.loss_percent)]  # fmt: skip
        self._forwarder = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self._forwarder.stdout], [], [], READY_SECONDS)
        line = self._forwarder.stdout.readline() if ready and self._forwarder.stdout else ""
        if line.strip() != "ready":
            self.down()
            raise RuntimeError(f"the link forwarder did not start: {line!r}")
        return self

    def queue_depth(self) -> tuple[int, int, int, int] | None:
        """Packets and bytes waiting for the wire: (host -> namespace packets,
        bytes, namespace -> host packets, bytes); None if the forwarder did not answer."""
        forwarder = self._forwarder
        if forwarder is None or forwarder.stdout is None:
            return None
        forwarder.send_signal(signal.SIGUSR1)
        ready, _, _ = select.select([forwarder.stdout], [], [], DEPTH_ANSWER_SECONDS)
        fields = forwarder.stdout.readline().split() if ready else []
        if len(fields) != 5 or fields[0] != "depth":
            return None
        down_packets, down_bytes, up_packets, up_bytes = (int(field) for field in fields[1:])
        return down_packets, down_bytes, up_packets, up_bytes

    def inside(self, argv: Sequence[str]) -> list[str]:
        """ARGV run inside the namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def down(self) -> None:
        """Stop the forwarder and remove the namespace. Idempotent."""
        forwarder, self._forwarder = self._forwarder, None
        if forwarder is not None:
            forwarder.terminate()
            try:
                forwarder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                forwarder.kill()
                forwarder.wait()
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=30)

    def __enter__(self) -> NetemLink:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", required=True)
    for name in ("namespace", "host-if", "ns-if", "host-address", "ns-address"):
        parser.add_argument(f"--{name}", required=True)
    for name in ("delay-ms", "rate-mbit", "loss-percent"):
        parser.add_argument(f"--{name}", type=float, required=True)
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
