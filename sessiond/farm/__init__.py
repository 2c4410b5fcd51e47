# A farm of sessiond hosts shares one session directory in etcd: hosts
# register under leases with their load, users' sessions are claimed by
# transaction, and a host whose lease expires takes its sessions with it
# (they show as lost). docs/farm.md is the design; this package is the
# foundation the broker and gateway will be wired onto.
"""sessiond.farm: the farm session directory on etcd (v3, JSON gateway)."""
