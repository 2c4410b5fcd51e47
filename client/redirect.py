# Following a farm redirect (docs/farm.md): the host the user logged in
# through answers AUTH_RESULT with the HOST:PORT that holds their session, a
# single-use ticket, and that host's certificate fingerprint. The client
# already trusts the first host (its certificate is pinned), so it pins the
# vouched fingerprint for the new address without asking, connects, and
# logs in with the ticket. Exactly one redirect is followed: a second one
# is refused, so a broken farm cannot bounce a client around.
"""parse_redirect() and follow() one redirect (Redirected is raised by SessionClient)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from client.session import CAPABILITIES, Redirected, RemoteError, connect, with_timeout
from protocol.control_session import AuthResult, Launch

if TYPE_CHECKING:
    from client.known_hosts import KnownHosts
    from client.session import SessionClient

# HOST:PORT with a host name or IPv4 address, or [IPv6]:PORT.
_ADDRESS = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]{1,253})):([0-9]{1,5})$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


def parse_redirect(result: AuthResult) -> tuple[str, int, str]:
    """(host, port, fingerprint) of a redirect; ValueError when any of them is malformed."""
    match = _ADDRESS.match(result.redirect)
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise ValueError(f"the server sent a malformed redirect address {result.redirect!r}")
    fingerprint = result.fingerprint.lower()
    if not _FINGERPRINT.match(fingerprint):
        raise ValueError("the server's redirect carries no valid certificate fingerprint")
    if not result.ticket:
        raise ValueError("the server's redirect carries no ticket")
    return match.group(1) or match.group(2), int(match.group(3)), fingerprint


async def follow(reactor: Any, redirect: Redirected, user: str, known: KnownHosts, timeout: float = 10.0,
                 capabilities: tuple[str, ...] = CAPABILITIES,
                 launch: Launch | None = None,
                 screen: tuple[int, int] | None = None) -> tuple[SessionClient, AuthResult, str]:  # fmt: skip
    """Connect to the redirect's host (its vouched fingerprint pinned) and log in with the ticket,
    saying the same HELLO CAPABILITIES as to the first host (svclient launch: LAUNCH_BESIDE),
    with the same LAUNCH and SCREEN as the first login (the redirect started nothing).

    Returns (client, AUTH_RESULT, "HOST:PORT"). A second redirect raises RemoteError.
    """
    try:
        host, port, fingerprint = parse_redirect(redirect.result)
    except ValueError as exc:
        raise RemoteError(redirect.code, str(exc)) from exc
    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    known.vouch(server, fingerprint)
    client: SessionClient = await with_timeout(reactor, connect(reactor, host, port, known, timeout=timeout,
                                                                capabilities=capabilities),
                                               timeout, "the redirected server")  # fmt: skip
    try:
        result: AuthResult = await with_timeout(reactor, client.ticket(user, redirect.result.ticket, launch, screen),
                                                timeout, "login")  # fmt: skip
    except Redirected as again:
        client.disconnect()
        raise RemoteError(again.code, f"the farm redirected twice ({again.result.redirect}); not following") from again
    except BaseException:
        client.disconnect()
        raise
    return client, result, server
