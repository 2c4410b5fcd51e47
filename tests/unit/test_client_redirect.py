"""svclient's side of a farm redirect: the redirect is checked before it is followed, and the
vouched fingerprint is pinned for the new address without replacing an existing pin."""

from __future__ import annotations

import os

import pytest

from client.known_hosts import HostKeyMismatch, KnownHosts
from client.redirect import parse_redirect
from client.session import Redirected, RemoteError
from protocol.control_session import AuthResult, Launch

FP = "ab" * 32


def redirect(address: str = "10.0.0.2:4443", fingerprint: str = FP, ticket: str = "t" * 43) -> AuthResult:
    return AuthResult(ok=False, code=17, message="your session is on host b", redirect=address, ticket=ticket,
                      fingerprint=fingerprint)  # fmt: skip


def test_a_redirect_is_a_remote_error_with_the_servers_message() -> None:
    exc = Redirected(redirect())
    assert isinstance(exc, RemoteError) and str(exc) == "your session is on host b" and exc.code == 17


@pytest.mark.parametrize(("address", "expected"), [
    ("10.0.0.2:4443", ("10.0.0.2", 4443)), ("b.example:1", ("b.example", 1)), ("[fd00::2]:4443", ("fd00::2", 4443)),
])  # fmt: skip
def test_good_redirects_parse(address: str, expected: tuple[str, int]) -> None:
    assert parse_redirect(redirect(address)) == (*expected, FP)


@pytest.mark.parametrize("result", [
    redirect("10.0.0.2"), redirect("10.0.0.2:0"), redirect("10.0.0.2:70000"), redirect("a b:1"), redirect("x/y:1"),
    redirect(fingerprint=""), redirect(fingerprint="zz" * 32), redirect(fingerprint=FP[:-2]), redirect(ticket=""),
])  # fmt: skip
def test_malformed_redirects_are_refused(result: AuthResult) -> None:
    with pytest.raises(ValueError):
        parse_redirect(result)


def test_vouched_fingerprint_is_pinned_and_never_replaces_a_pin(tmp_path: object) -> None:
    known = KnownHosts(os.path.join(str(tmp_path), "known_hosts"))
    known.vouch("10.0.0.2:4443", FP.upper())
    assert known.check("10.0.0.2:4443", FP)  # pinned: a later connection is known, no new-host notice
    with pytest.raises(HostKeyMismatch):
        known.vouch("10.0.0.2:4443", "cd" * 32)


def test_the_redirected_login_says_the_same_capabilities(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """svclient launch keeps launch.beside on the host the farm sends it to (else it would take the
    session over from the xpra client attached there); the login there carries the same launch and screen."""
    from twisted.internet import defer, task  # noqa: PLC0415

    import client.redirect  # noqa: PLC0415
    from protocol.xpra import LAUNCH_BESIDE  # noqa: PLC0415

    said: list[tuple[str, ...]] = []
    carried: list[tuple[object, object]] = []

    class Client:
        async def ticket(self, user: str, ticket: str, launch: object = None, screen: object = None) -> AuthResult:
            carried.append((launch, screen))
            return AuthResult(ok=True, user=user, session="s-1")

    async def connect(*_args: object, capabilities: tuple[str, ...] = (), **_kwargs: object) -> Client:
        said.append(capabilities)
        return Client()

    monkeypatch.setattr(client.redirect, "connect", connect)
    known = KnownHosts(os.path.join(str(tmp_path), "known_hosts"))
    caps = ("display.png", LAUNCH_BESIDE)
    xterm = Launch(request=1, app="xterm")
    d = defer.ensureDeferred(client.redirect.follow(task.Clock(), Redirected(redirect()), "alice", known, 5.0, caps,
                                                    xterm, (1280, 924)))  # fmt: skip
    result = []
    d.addCallback(result.append)
    assert result and result[0][1].ok and result[0][2] == "10.0.0.2:4443"
    assert said == [caps]
    assert carried == [(xterm, (1280, 924))]  # the first login's launch and screen: the redirect started nothing
