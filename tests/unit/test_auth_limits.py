"""Login rate limiting and the PAM front end's input bounds (no PAM here)."""

from __future__ import annotations

from sessiond import auth
from sessiond.auth import AuthOutcome, FailureLimiter, PamAuthenticator


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_blocks_after_max_failures_within_window() -> None:
    clock = Clock()
    limiter = FailureLimiter(3, 60.0, clock)
    for _ in range(2):
        limiter.record_failure("10.0.0.1")
    assert not limiter.blocked("10.0.0.1")
    limiter.record_failure("10.0.0.1")
    assert limiter.blocked("10.0.0.1")
    assert not limiter.blocked("10.0.0.2")
    clock.now = 61.0
    assert not limiter.blocked("10.0.0.1")


def test_success_clears_the_failures() -> None:
    limiter = FailureLimiter(2, 60.0, Clock())
    limiter.record_failure("a")
    limiter.record_success("a")
    limiter.record_failure("a")
    assert not limiter.blocked("a")


def test_tracked_addresses_are_bounded(monkeypatch: object) -> None:
    monkeypatch.setattr(auth, "MAX_TRACKED_ADDRESSES", 10)  # type: ignore[attr-defined]
    limiter = FailureLimiter(1, 60.0, Clock())
    for n in range(25):
        limiter.record_failure(f"addr{n}")
    assert len(limiter._failures) == 10  # noqa: SLF001 - the bound under test
    assert limiter.blocked("addr24") and not limiter.blocked("addr0")


def test_oversized_credentials_never_reach_pam() -> None:
    calls: list[str] = []

    def check(service: str, user: str, password: str) -> AuthOutcome:
        calls.append(user)
        return AuthOutcome(True, user)

    authenticator = PamAuthenticator("sessiond", check)
    results = []
    for user, password in (("x" * (auth.MAX_USERNAME_LEN + 1), "p"), ("u", "p" * (auth.MAX_PASSWORD_LEN + 1)),
                           ("", "p"), ("u\0v", "p")):  # fmt: skip
        authenticator.authenticate(user, password).addCallback(results.append)
    assert calls == []
    assert [r.ok for r in results] == [False] * 4
