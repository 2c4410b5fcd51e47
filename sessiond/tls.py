# The host identity: a key and a self-signed certificate made with
# `cryptography` on first start, kept 0600 in the state directory. Clients pin
# its SHA-256 fingerprint on first use, like SSH known_hosts. TLS 1.3 only.
#
# Memory (issue 15, the daemon <= 40 MiB): cryptography's Rust extension is
# mapped from a file, and every part of it the daemon runs stays resident in
# the daemon for good (the kernel maps it in 64 KiB runs). Making the key and
# certificate runs its key generation, X.509 builder and signing code (+1.4
# MiB resident, measured: bench/bench_daemon_memory.py), and parsing the
# certificate with cryptography's x509 its Rust ASN.1 parser (+0.7 MiB). So
# the daemon makes them in a forked child (ensure_host_certificate_forked:
# those pages are the child's and go with it), and reads the certificate
# only with pyOpenSSL, which the TLS context needs anyway.
"""Host certificate management and the server's TLS context."""

from __future__ import annotations

import datetime
import os
import socket
import sys
import traceback

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from twisted.internet import ssl

from protocol.limits import ALPN
from transport.tls import fingerprint

KEY_FILE = "host-key.pem"
CERT_FILE = "host-cert.pem"
# Ten years: the certificate is pinned by fingerprint, not trusted by expiry.
CERT_LIFETIME = datetime.timedelta(days=3650)


def ensure_host_certificate(state_dir: str) -> tuple[str, str]:
    """Return (key_path, cert_path), creating both (mode 0600) if missing."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    key_path = os.path.join(state_dir, KEY_FILE)
    cert_path = os.path.join(state_dir, CERT_FILE)
    if os.path.exists(key_path) and os.path.exists(cert_path):
        return key_path, cert_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sessiond {socket.gethostname()}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    for path, data in (
        (
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        ),
        (cert_path, cert.public_bytes(serialization.Encoding.PEM)),
    ):
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    return key_path, cert_path


def ensure_host_certificate_forked(state_dir: str) -> tuple[str, str]:
    """ensure_host_certificate() in a forked child when the files are missing, so that the
    code making them never runs in (and stays resident in) the long-lived daemon.
    Call it before any thread starts (fork copies only the calling thread)."""
    key_path, cert_path = os.path.join(state_dir, KEY_FILE), os.path.join(state_dir, CERT_FILE)
    if os.path.exists(key_path) and os.path.exists(cert_path):
        return key_path, cert_path
    pid = os.fork()
    if pid == 0:  # the child: make the files, then leave without running the parent's exit handlers
        status = 1
        try:
            ensure_host_certificate(state_dir)
            status = 0
        except BaseException:  # noqa: BLE001 - reported by the parent through the exit status
            traceback.print_exc(file=sys.stderr)
        finally:
            sys.stderr.flush()
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(f"could not create the host key and certificate in {state_dir} (see the error above)")
    return key_path, cert_path


def certificate_fingerprint(cert_path: str) -> str:
    """Fingerprint of the (first) PEM certificate at CERT_PATH, read with pyOpenSSL (see the header)."""
    with open(cert_path, "rb") as handle:
        cert = crypto.load_certificate(crypto.FILETYPE_PEM, handle.read())
    return fingerprint(crypto.dump_certificate(crypto.FILETYPE_ASN1, cert))


def server_context_factory(key_path: str, cert_path: str) -> ssl.CertificateOptions:
    """TLS 1.3-only server options offering the native protocol by ALPN."""
    with open(key_path, "rb") as handle:
        key = crypto.load_privatekey(crypto.FILETYPE_PEM, handle.read())
    with open(cert_path, "rb") as handle:
        cert = crypto.load_certificate(crypto.FILETYPE_PEM, handle.read())
    return ssl.CertificateOptions(
        privateKey=key,
        certificate=cert,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_3,
        acceptableProtocols=[ALPN.encode("ascii"), b"http/1.1"],
    )
