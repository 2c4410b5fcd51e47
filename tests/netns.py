# Network namespaces for the farm tests: each sessiond host runs in its own
# namespace with one address on a veth pair to the host side, where the
# clients (svclient, Chromium) and etcd stay. Nothing leaves the machine:
# the addresses are private (10.231.0.0/16), there is no forwarding, and
# every namespace and link is removed at close, also when a test failed.
#
# etcd listens on an address of its own (ETCD_ADDRESS, on a veth pair kept
# entirely on the host side), not on the hosts' gateway addresses, so that
# "cutting a host off from etcd" can remove exactly that route inside the
# host's namespace (an unreachable route: the kernel answers at once with
# EHOSTUNREACH) while the host's link to its clients stays up. Setting the
# host's only veth down would cut its clients too, and the test must show the
# connected session going on.
"""Farm: make_farm_net() -> FarmNet with one Namespace per sessiond host."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
from dataclasses import dataclass, field

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "ip"
NSENTER = "/usr/bin/nsenter"
# 10.231.<block + i>.0/24 per host, 10.231.<block + 7>.1 for etcd; a random block per run so that
# a stale run's leftovers or another checkout's run do not collide.
SUBNET_PREFIX = "10.231"
# Farm nets made by this process so far: part of each net's tag, so a module's
# links never meet those of an earlier module (a namespace deleted by name
# lives on, with its veth, until its last process exits).
_NETS_MADE = itertools.count()


def ip(*args: str, netns: str = "") -> None:
    """Run `ip ARGS` (inside NETNS when given); raise with ip's message on failure."""
    argv = [IP, *(("-n", netns) if netns else ()), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


@dataclass
class Namespace:
    """One host's namespace: its address (NS side of the veth) and the gateway (host side)."""

    name: str
    address: str
    gateway: str
    host_link: str

    def exec_prefix(self) -> list[str]:
        """argv prefix that runs a command inside this namespace (network only: `ip netns exec` would
        also mount a fresh /sys, hiding /sys/fs/cgroup, where sessiond builds its session sandboxes)."""
        return [NSENTER, f"--net=/run/netns/{self.name}", "--"]

    def cut_etcd(self, etcd_address: str) -> None:
        """This host loses its route to etcd (its clients' link stays up)."""
        ip("route", "replace", "unreachable", f"{etcd_address}/32", netns=self.name)

    def restore_etcd(self, etcd_address: str) -> None:
        """Undo cut_etcd()."""
        ip("route", "replace", f"{etcd_address}/32", "via", self.gateway, netns=self.name)


@dataclass
class FarmNet:
    """The namespaces of one farm test and etcd's host-side address; close() removes everything."""

    tag: str
    etcd_address: str
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Delete every namespace (their veth pairs go with them) and etcd's link; never raises."""
        for ns in self.namespaces.values():
            subprocess.run([IP, "netns", "del", ns.name], capture_output=True)
        for link in self.links:
            subprocess.run([IP, "link", "del", link], capture_output=True)


def make_farm_net(hosts: tuple[str, ...]) -> FarmNet:
    """One namespace per name in HOSTS (lo up, one veth to the host side, a route to etcd's address)."""
    tag = f"{os.getpid() % 0xFFFF:04x}{next(_NETS_MADE) % 0x100:02x}"  # link names stay <= 15 bytes
    block = random.randrange(8, 240, 8)
    net = FarmNet(tag, f"{SUBNET_PREFIX}.{block + 7}.1")
    try:
        etcd_link = f"sf{tag}e"
        ip("link", "add", etcd_link, "type", "veth", "peer", "name", f"sf{tag}f")
        net.links.append(etcd_link)
        ip("addr", "add", f"{net.etcd_address}/32", "dev", etcd_link)
        ip("link", "set", etcd_link, "up")
        ip("link", "set", f"sf{tag}f", "up")
        for i, name in enumerate(hosts):
            subnet = f"{SUBNET_PREFIX}.{block + i}"
            ns = Namespace(f"svtfarm-{tag}-{name}", f"{subnet}.2", f"{subnet}.1", f"sf{tag}{i}h")
            ip("netns", "add", ns.name)
            net.namespaces[name] = ns
            ip("link", "add", ns.host_link, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
            ip("addr", "add", f"{ns.gateway}/24", "dev", ns.host_link)
            ip("link", "set", ns.host_link, "up")
            ip("link", "set", "lo", "up", netns=ns.name)
            ip("addr", "add", f"{ns.address}/24", "dev", "eth0", netns=ns.name)
            ip("link", "set", "eth0", "up", netns=ns.name)
            ip("route", "add", f"{net.etcd_address}/32", "via", ns.gateway, netns=ns.name)
    except BaseException:
        net.close()
        raise
    return net
