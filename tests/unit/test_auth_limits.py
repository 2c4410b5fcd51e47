"""Login rate limiting and the PAM front end's input bounds (no PAM here)."""

from __future__ import annotations

from twisted.internet import defer

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


# -- issue 12 item 5: attempts counted when they start, one in flight per
# address, no cross-user clearing, per-user backoff (fake clock throughout).

def test_one_attempt_in_flight_per_address_counted_when_it_starts() -> None:
    clock = Clock()
    limiter = FailureLimiter(5, 300.0, clock)
    pam_calls: list[defer.Deferred[AuthOutcome]] = []

    def check() -> defer.Deferred[AuthOutcome]:
        pam_calls.append(defer.Deferred())
        return pam_calls[-1]

    results: list[AuthOutcome] = []
    # 200 connections from one address send AUTH before PAM answers.
    for _ in range(200):
        limiter.attempt("10.0.0.1", "alice", check).addCallback(results.append)
    assert len(pam_calls) == 1, "one attempt in flight per address"
    assert len(limiter._recent("10.0.0.1")) == 1  # noqa: SLF001 - counted when it started
    refused_at_once = [r for r in results if r.limited]
    assert len(refused_at_once) == 200 - 1 - auth.MAX_WAITING_PER_ADDRESS, "the queue is bounded"
    bob: list[defer.Deferred[AuthOutcome]] = []
    limiter.attempt("10.0.0.2", "bob", lambda: bob.append(defer.Deferred()) or bob[-1])
    assert len(bob) == 1, "other addresses are not held up"
    while not pam_calls[-1].called:
        pam_calls[-1].callback(AuthOutcome(False, "alice", "wrong"))
    assert len(pam_calls) == 5, "max_failures is a hard cap on PAM calls per address"
    assert len(results) == 200
    assert sum(not r.limited for r in results) == 5 and sum(r.limited for r in results) == 195


def test_logins_behind_one_address_wait_their_turn_and_all_succeed() -> None:
    limiter = FailureLimiter(4, 300.0, Clock())
    pam_calls: list[defer.Deferred[AuthOutcome]] = []
    results: list[AuthOutcome] = []
    for n in range(20):  # 20 users behind one NAT address, all at once
        user = f"user{n}"

        def check(user: str = user) -> defer.Deferred[AuthOutcome]:
            pam_calls.append(defer.Deferred())
            pam_calls[-1].addCallback(lambda _: AuthOutcome(True, user))
            return pam_calls[-1]

        limiter.attempt("192.0.2.1", user, check).addCallback(results.append)
    while len(results) < 20:
        assert sum(not d.called for d in pam_calls) == 1
        [d for d in pam_calls if not d.called][0].callback(None)
    assert all(r.ok for r in results) and len(pam_calls) == 20


def test_a_crashed_check_passes_the_turn_on() -> None:
    limiter = FailureLimiter(5, 300.0, Clock())
    errors: list[object] = []
    limiter.attempt("a", "u", lambda: defer.fail(RuntimeError("pam died"))).addErrback(errors.append)
    results: list[AuthOutcome] = []
    limiter.attempt("a", "u", lambda: defer.succeed(AuthOutcome(True, "u"))).addCallback(results.append)
    assert len(errors) == 1 and results and results[0].ok


def test_a_success_for_one_user_never_clears_another_users_failures() -> None:
    clock = Clock()
    limiter = FailureLimiter(5, 300.0, clock)
    for _round in range(3):
        for _ in range(4):
            assert limiter.begin("6.6.6.6", "victim") is None or limiter.blocked("6.6.6.6")
            limiter.finish("6.6.6.6", "victim", ok=False)
        # the attacker's own account logs in fine...
        if limiter.begin("6.6.6.6", "attacker") is None:
            limiter.finish("6.6.6.6", "attacker", ok=True)
    # ...but the victim's failures still block the address.
    assert limiter.blocked("6.6.6.6")
    assert limiter.begin("6.6.6.6", "victim") is not None


def test_a_success_clears_that_users_own_failures() -> None:
    clock = Clock()
    limiter = FailureLimiter(5, 300.0, clock)
    for _ in range(3):
        assert limiter.begin("1.2.3.4", "carol") is None
        limiter.finish("1.2.3.4", "carol", ok=False)
    assert limiter.begin("1.2.3.4", "carol") is None
    limiter.finish("1.2.3.4", "carol", ok=True)
    assert len(limiter._recent("1.2.3.4")) == 0  # noqa: SLF001
    assert limiter.user_wait("carol") == 0.0


def test_per_user_backoff_stops_a_distributed_guesser() -> None:
    clock = Clock()
    limiter = FailureLimiter(5, 300.0, clock)
    tried = 0
    # One guess from each of 1000 addresses, as fast as possible, against one account.
    for n in range(1000):
        address = f"10.{n // 250}.{n % 250}.1"
        if limiter.begin(address, "victim") is None:
            limiter.finish(address, "victim", ok=False)
            tried += 1
    assert tried == auth.USER_FREE_ATTEMPTS, "no more guesses than one address would get"
    wait = limiter.user_wait("victim")
    assert 0 < wait <= auth.USER_BACKOFF_BASE
    clock.now += wait
    assert limiter.begin("10.9.9.9", "victim") is None
    limiter.finish("10.9.9.9", "victim", ok=False)
    assert limiter.user_wait("victim") == 2 * auth.USER_BACKOFF_BASE, "the wait doubles"
    clock.now += 10_000
    for _ in range(30):
        limiter.begin("10.9.9.8", "victim")
        limiter.finish("10.9.9.8", "victim", ok=False)
        clock.now += 10_000
    assert limiter.user_wait("victim") <= auth.USER_BACKOFF_MAX
    assert limiter.user_wait("someone-else") == 0.0


def test_tracked_users_are_bounded(monkeypatch: object) -> None:
    monkeypatch.setattr(auth, "MAX_TRACKED_USERS", 10)  # type: ignore[attr-defined]
    limiter = FailureLimiter(1000, 60.0, Clock())
    for n in range(25):
        assert limiter.begin(f"addr{n}", f"user{n}") is None
        limiter.finish(f"addr{n}", f"user{n}", ok=False)
    assert len(limiter._users) == 10  # noqa: SLF001 - the bound under test
