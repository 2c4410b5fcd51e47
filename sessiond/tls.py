# The host identity: a key and a self-signed certificate made with
# `cryptography` on first start, kept 0600 in the state directory. Clients pin
# its SHA-256 fingerprint on first use, like SSH known_hosts. TLS 1.3 only.
"""Host certificate management and the server's TLS context."""

from __future__ import annotations

import datetime
import os
import socket

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


def certificate_fingerprint(cert_path: str) -> str:
    """Fingerprint of the PEM certificate at CERT_PATH."""
    with open(cert_path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    return fingerprint(cert.public_bytes(serialization.Encoding.DER))


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
