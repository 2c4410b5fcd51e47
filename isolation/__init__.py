# isolation: the small privileged part of sessiond.
#
# Why a separate package: everything here runs as root (inside sessiond, or in
# the short-lived `python -m isolation.enter` child until it execs the session
# agent), so it is kept small, typed and free of network parsing, in the
# spirit of OpenSSH privilege separation. See docs/security.md.
"""Sandboxed, unprivileged start of per-session agents (mount namespace + user switch)."""
