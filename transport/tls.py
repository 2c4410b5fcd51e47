# The certificate fingerprint both ends agree on: sessiond prints and
# publishes it, clients pin it on first use (like SSH known_hosts). Kept here,
# not in sessiond.tls, so the thin client does not import daemon code.
"""fingerprint(): SHA-256 of a DER certificate."""

from __future__ import annotations

import hashlib


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint of a DER certificate, as colon-free lowercase hex."""
    return hashlib.sha256(der).hexdigest()
