# Shared by the daemon and the thin client: the Twisted adapter for the
# sans-IO protocol and the certificate fingerprint. It may import protocol/
# and Twisted only, so a thin client never imports sessiond.*.
"""Twisted transport helpers shared by sessiond and the client."""
