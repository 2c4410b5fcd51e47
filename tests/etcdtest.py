# Real etcd members for the farm tests: Debian's etcd binary in a temporary
# data directory, on loopback ports picked free at start, a single member or
# a cluster of three. Each member is our own child process, stopped by its
# pid (and its data directory removed) when the test is done. Also a reactor
# in a background thread, so that blocking pytest code can drive the
# Twisted etcd client with blockingCallFromThread.
"""Start/stop real etcd members on loopback; run Twisted code from tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
# Seconds a member (or cluster) gets to become healthy.
START_TIMEOUT = 20.0


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port on ADDRESS free right now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@dataclass
class Member:
    """One etcd member: its name, URLs, data dir and process."""

    name: str
    client_url: str
    peer_url: str
    data_dir: str
    log_path: str
    process: subprocess.Popen[bytes] | None = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    """A running etcd cluster of one or more members."""

    members: list[Member]
    root: str
    extra: list[str] = field(default_factory=list)
    tls: EtcdTestTLS | None = None

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start_member(self, member: Member, state: str = "new") -> None:
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        argv = [ETCD, "--name", member.name, "--data-dir", member.data_dir,
                "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
                "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
                "--initial-cluster", cluster, "--initial-cluster-state", state,
                "--initial-cluster-token", os.path.basename(self.root),
                "--heartbeat-interval", "50", "--election-timeout", "500", *self.extra]  # fmt: skip
        log = open(member.log_path, "ab")
        member.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          preexec_fn=_die_with_parent)  # noqa: PLW1509 - no threads of ours fork
        log.close()

    def stop_member(self, member: Member, sig: int = signal.SIGTERM) -> None:
        if member.process is not None and member.process.poll() is None:
            member.process.send_signal(sig)
            try:
                member.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                member.process.kill()
                member.process.wait(timeout=10)

    def wait_healthy(self, members: list[Member] | None = None, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        for member in members or self.members:
            while True:
                if not member.running():
                    raise RuntimeError(f"etcd {member.name} exited:\n" + _tail(member.log_path))
                try:
                    context = self.tls.client_context() if self.tls else None
                    with urllib.request.urlopen(member.client_url + "/health", timeout=1, context=context) as r:
                        if b'"true"' in r.read():
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd {member.name} not healthy in {timeout}s:\n" + _tail(member.log_path))
                time.sleep(0.1)

    def close(self) -> None:
        for member in self.members:
            self.stop_member(member, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def _die_with_parent() -> None:
    # A member must not outlive a test run that was killed before its cleanup ran.
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read()[-2000:].decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class EtcdTestTLS:
    """PEM files of a test CA, etcd's server certificate (IP SAN 127.0.0.1) and a client certificate."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def etcd_flags(self) -> list[str]:
        return ["--cert-file", self.server_cert, "--key-file", self.server_key, "--trusted-ca-file", self.ca,
                "--client-cert-auth"]  # fmt: skip

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        context.load_cert_chain(self.client_cert, self.client_key)
        return context


def make_tls(directory: str) -> EtcdTestTLS:
    """A throwaway CA with one server and one client certificate, written under DIRECTORY."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[str, str]:
        cert_path, key_path = os.path.join(directory, stem + ".pem"), os.path.join(directory, stem + "-key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))  # fmt: skip
        return cert_path, key_path

    def issue(cn: str, subject_key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey,
              ca: bool, usage: list[x509.ObjectIdentifier]) -> x509.Certificate:  # fmt: skip
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name("svt etcd ca"))
                   .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))  # fmt: skip
        if not ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_cert, _ = write("ca", ca_key, issue("svt etcd ca", ca_key, ca_key, True, []))
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    server = write("server", server_key, issue("127.0.0.1", server_key, ca_key, False, usage))
    client = write("client", client_key, issue("sessiond", client_key, ca_key, False,
                                               [ExtendedKeyUsageOID.CLIENT_AUTH]))  # fmt: skip
    return EtcdTestTLS(ca_cert, server[0], server[1], client[0], client[1])


def start_cluster(size: int = 1, extra: list[str] | None = None, tls: bool = False,
                  address: str = "127.0.0.1") -> Cluster:  # fmt: skip
    """A fresh etcd cluster of SIZE members, healthy on return (TLS with client certificates
    required on the client port when TLS is true). Clients reach it on ADDRESS (a host-side
    address of the farm tests' namespaces, tests/netns.py); peers talk on loopback."""
    root = tempfile.mkdtemp(prefix="svt-etcd-")
    members = []
    certs = make_tls(root) if tls else None
    scheme = "https" if certs else "http"
    for i in range(size):
        members.append(Member(name=f"m{i}", client_url=f"{scheme}://{address}:{free_port(address)}",
                              peer_url=f"http://127.0.0.1:{free_port()}", data_dir=os.path.join(root, f"m{i}"),
                              log_path=os.path.join(root, f"m{i}.log")))  # fmt: skip
    cluster = Cluster(members, root, (extra or []) + (certs.etcd_flags() if certs else []), certs)
    try:
        for member in members:
            cluster.start_member(member)
        cluster.wait_healthy()
    except BaseException:
        cluster.close()
        raise
    return cluster


def leader_url(cluster: Cluster) -> str:
    """The client URL of the cluster's current leader (as the members report it)."""
    import json

    ids = {}
    leader = None
    for member in cluster.members:
        if not member.running():
            continue
        req = urllib.request.Request(member.client_url + "/v3/maintenance/status", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=2) as r:
            status = json.load(r)
        ids[status["header"]["member_id"]] = member.client_url
        leader = status["leader"]
    return ids[leader]


class ReactorThread:
    """The global reactor running in a daemon thread for the whole test session."""

    def __init__(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.thread = threading.Thread(target=lambda: reactor.run(installSignalHandlers=False), daemon=True)
        self.thread.start()

    def run(self, make: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 60.0) -> Any:
        """Run the coroutine MAKE() on the reactor and return its result (or raise its error)."""
        from twisted.internet import defer, threads

        def start() -> Any:
            return defer.Deferred.fromCoroutine(make()).addTimeout(timeout, self.reactor)

        return threads.blockingCallFromThread(self.reactor, start)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a plain function on the reactor thread and return its result."""
        from twisted.internet import threads

        return threads.blockingCallFromThread(self.reactor, fn, *args)


_REACTOR: ReactorThread | None = None


def reactor_thread() -> ReactorThread:
    """The one ReactorThread of this test process (started on first use, stopped at exit)."""
    global _REACTOR
    if _REACTOR is None:
        import atexit

        _REACTOR = ReactorThread()
        atexit.register(lambda: _REACTOR.reactor.callFromThread(_REACTOR.reactor.stop) if _REACTOR else None)
    return _REACTOR


def stop_process(pid: int) -> None:
    """SIGKILL one of our own child processes by pid (ignored if gone)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
