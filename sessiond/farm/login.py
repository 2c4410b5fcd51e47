# The farm's part of a login, kept out of the gateway: turning the
# supervisor's Redirect into the AUTH_RESULT that sends the client on (with
# a ticket and the target host's certificate fingerprint, which this host
# vouches for because the client already trusts this host's own), and
# checking a ticket presented with AUTH method "ticket".
"""redirect_result() and ticket_valid()."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.control_session import AuthResult
from protocol.errors import ReasonCode
from sessiond.farm.directory import FarmDirectory, FarmUnavailable
from sessiond.farm.local import LocalDirectory
from sessiond.farm.tickets import issue_ticket, redeem_ticket
from sessiond.supervisor import Redirect

if TYPE_CHECKING:
    from sessiond.farm.etcd_directory import EtcdDirectory


def _etcd(directory: FarmDirectory | None) -> EtcdDirectory | None:
    if directory is None or isinstance(directory, LocalDirectory):
        return None  # not a farm: the etcd modules (an HTTP client stack) stay unloaded
    from sessiond.farm.etcd_directory import EtcdDirectory

    return directory if isinstance(directory, EtcdDirectory) else None


async def redirect_result(directory: FarmDirectory | None, redirect: Redirect) -> AuthResult:
    """AUTH_RESULT(ok=false, SESSION_UNAVAILABLE) naming the host to go to, its fingerprint and a ticket.

    A client that does not follow redirects shows the message. Raises
    FarmUnavailable when the target host is no longer live (the next login
    places the user again).
    """
    etcd = _etcd(directory)
    if etcd is None:
        raise FarmUnavailable("this host is not in a farm")
    host = next((h for h in await etcd.hosts() if h.host_id == redirect.host_id), None)
    if host is None or not host.fingerprint:
        raise FarmUnavailable(f"host {redirect.host_id}, which holds your session, is not answering; "
                              "log in again in a few seconds")  # fmt: skip
    ticket = await issue_ticket(etcd.client, etcd.keys, redirect.user, redirect.host_id, redirect.session_id,
                                etcd.ticket_ttl)  # fmt: skip
    return AuthResult(ok=False, user=redirect.user, session=redirect.session_id, code=ReasonCode.SESSION_UNAVAILABLE,
                      message=(redirect.notice + " " if redirect.notice else "")
                      + f"Your session is on host {redirect.host_id} ({host.advertise}).",
                      redirect=host.advertise, ticket=ticket, fingerprint=host.fingerprint)  # fmt: skip


async def ticket_valid(directory: FarmDirectory | None, user: str, ticket: str) -> bool:
    """Whether TICKET lets USER in on this host (single use: it is spent either way)."""
    etcd = _etcd(directory)
    if etcd is None:
        return False
    valid = await redeem_ticket(etcd.client, etcd.keys, user, ticket, etcd.host_id)
    if valid and etcd.abandoned is not None:
        etcd.abandoned.redeemed(user)  # the session starts in a moment: not an abandoned claim
    return valid
