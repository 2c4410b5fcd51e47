# Redirect tickets: a host that sends a user to the host holding their
# session must let that user log in there without a second password prompt,
# and without handing over anything reusable. The ticket is 32 random bytes
# given only to the client; etcd stores only its SHA-256 (so reading etcd
# does not yield a ticket), under a lease of TICKET_TTL seconds, with the user
# and target host it is bound to. Redeeming is one transaction that reads and
# deletes the key only if it still exists: of two redeemers, exactly one wins,
# and an expired ticket is simply gone.
"""issue_ticket() and redeem_ticket() over the farm's etcd."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import TYPE_CHECKING

from sessiond.farm.etcd_codec import Compare, RangeResult, op_delete, op_range
from sessiond.farm.records import FarmKeys, check_host_id, check_user

if TYPE_CHECKING:  # the client itself (an HTTP stack) loads only with [farm] etcd (service.py)
    from sessiond.farm.etcd_client import EtcdClient

# Seconds a ticket stays redeemable (the client reconnects at once; etcd's lease floor is ~2 s):
# the default and the bounds of [farm] ticket_ttl.
TICKET_TTL = 30
MIN_TICKET_TTL = 2
MAX_TICKET_TTL = 600
# Length of a ticket as the client sees it (URL-safe base64 of 32 random bytes).
TICKET_CHARS = 43
# Largest ticket record accepted back from etcd.
MAX_TICKET_RECORD = 1024


def _key(keys: FarmKeys, ticket: str) -> bytes:
    return (keys.prefix + "tickets/" + hashlib.sha256(ticket.encode("utf-8")).hexdigest()).encode("utf-8")


async def issue_ticket(client: EtcdClient, keys: FarmKeys, user: str, host_id: str, session_id: str,
                       ttl: int = TICKET_TTL) -> str:  # fmt: skip
    """A fresh single-use ticket for USER to log in on HOST_ID (where SESSION_ID lives), for TTL seconds."""
    record = json.dumps({"user": check_user(user), "host": check_host_id(host_id), "session": session_id},
                        separators=(",", ":")).encode("utf-8")  # fmt: skip
    ticket = secrets.token_urlsafe(32)
    lease, _ttl = await client.grant(ttl)
    await client.put(_key(keys, ticket), record, lease)
    return ticket


async def redeem_ticket(client: EtcdClient, keys: FarmKeys, user: str, ticket: str, host_id: str) -> bool:
    """Whether TICKET was issued for USER on HOST_ID and not used before; it is gone afterwards either way."""
    if len(ticket) != TICKET_CHARS:
        return False
    key = _key(keys, ticket)
    result = await client.txn([Compare(key, "VERSION", "GREATER", 0)], [op_range(key), op_delete(key)])
    if not result.succeeded or not isinstance(result.responses[0], RangeResult) or not result.responses[0].kvs:
        return False
    raw = result.responses[0].kvs[0].value
    if len(raw) > MAX_TICKET_RECORD:
        return False
    try:
        record = json.loads(raw)
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("user") == user and record.get("host") == host_id
