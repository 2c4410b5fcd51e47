# Password authentication through PAM, and the limiter against guessing (per
# address: one attempt in flight, counted when it starts; per account: an
# exponential backoff, so many addresses gain nothing against one user).
# PAM calls block (pam_unix reads /etc/shadow, other modules may hit the
# network), so they run in Twisted's thread pool; the failure delay is a
# reactor timer, never a sleeping thread.
#
# python-pam is not imported with this module: the daemon loads it after it
# listens (load_pam(), in the thread pool, while no client has logged in
# yet), together with libpam itself, which python-pam finds on first use by
# running ldconfig twice (about 4 ms). So neither is on the path from the
# daemon's start to serving, nor on the first login's.
"""PAM authentication and login rate limiting."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Callable

from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sessiond.pam_account import AccountVerdict, account_check

log = Logger()

# Longest user name / password accepted before PAM is even asked.
MAX_USERNAME_LEN = 64
MAX_PASSWORD_LEN = 1024
# Addresses remembered by the limiter; the oldest is forgotten beyond this,
# so a flood of source addresses cannot grow memory without bound.
MAX_TRACKED_ADDRESSES = 10_000
# Accounts remembered by the per-user backoff (the least recently tried is forgotten beyond this).
MAX_TRACKED_USERS = 10_000
# Unsuccessful attempts on one account (from anywhere) before the backoff starts,
# the first wait, and the longest.
USER_FREE_ATTEMPTS = 5
USER_BACKOFF_BASE = 2.0
USER_BACKOFF_MAX = 300.0
# Logins from one address waiting for the one in flight; past this they are refused.
# (Many users behind one NAT address log in one after another, not refused.)
MAX_WAITING_PER_ADDRESS = 64


@dataclass(frozen=True)
class AuthOutcome:
    """Result of one login attempt."""

    ok: bool
    user: str
    reason: str = ""
    # Refused by the guessing limits before anything was checked (RATE_LIMITED).
    limited: bool = False


def load_pam() -> None:
    """Import python-pam and load libpam (blocking: the daemon runs it in its thread pool once it
    listens; a login that comes first just does it itself)."""
    from pam.__internals import PamAuthenticator as Bindings

    Bindings()  # loads libpam and its symbols once per process


def _pam_check(service: str, user: str, password: str) -> AuthOutcome:
    import pam

    handle = pam.pam()
    if handle.authenticate(user, password, service=service, resetcreds=False):
        return AuthOutcome(True, user)
    log.info("PAM refused {user}: {reason}", user=user, reason=handle.reason)
    return AuthOutcome(False, user, "wrong user name or password")


class PamAuthenticator:
    """Check a user name and password against PAM service SERVICE."""

    def __init__(self, service: str, check: Callable[[str, str, str], AuthOutcome] = _pam_check,
                 account: Callable[[str, str], AccountVerdict] = account_check) -> None:  # fmt: skip
        self.service = service
        self._check = check
        self._account = account

    def authenticate(self, user: str, password: str) -> defer.Deferred[AuthOutcome]:
        if not user or len(user) > MAX_USERNAME_LEN or len(password) > MAX_PASSWORD_LEN or "\0" in user + password:
            return defer.succeed(AuthOutcome(False, user, "wrong user name or password"))
        return threads.deferToThread(self._check, self.service, user, password)

    def account_allowed(self, user: str) -> defer.Deferred[AuthOutcome]:
        """PAM's account stage alone (expired, locked, outside allowed hours...):
        what a resume login runs, since it presents no password."""
        if not user or len(user) > MAX_USERNAME_LEN or "\0" in user:
            return defer.succeed(AuthOutcome(False, user, "unknown user"))

        def check() -> AuthOutcome:
            verdict = self._account(self.service, user)
            if verdict.allowed:
                return AuthOutcome(True, user)
            log.info("PAM account stage refused {user}: {reason}", user=user, reason=verdict.reason)
            why = f"this account may not log in now ({verdict.reason}); ask your administrator"
            return AuthOutcome(False, user, why)

        return threads.deferToThread(check)


@dataclass
class _UserRecord:
    """Login attempts against one account that have not succeeded yet."""

    attempts: int
    last: float


class FailureLimiter:
    """Throttles password guessing per source address and per account.

    Per address: at most one attempt in flight (the others wait their turn,
    up to MAX_WAITING_PER_ADDRESS), and each attempt counts as a
    failure from the moment it starts (a success takes back only its own
    user's failures), so MAX_FAILURES within WINDOW seconds is a hard cap on
    PAM calls. Per account: after USER_FREE_ATTEMPTS unsuccessful attempts,
    from anywhere, the next must wait an exponential backoff from the last,
    so spreading guesses over many addresses gains nothing against one user.
    """

    def __init__(self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        # address -> start times and users of recent unsuccessful attempts.
        self._failures: collections.OrderedDict[str, collections.deque[tuple[float, str]]] = (
            collections.OrderedDict())  # fmt: skip
        # Addresses with an attempt in flight, and the attempts waiting behind it.
        self._in_flight: set[str] = set()
        self._waiting: dict[str, collections.deque[Callable[[], None]]] = {}
        self._users: collections.OrderedDict[str, _UserRecord] = collections.OrderedDict()

    def _recent(self, address: str) -> collections.deque[tuple[float, str]]:
        now = self._clock()
        stamps = self._failures.get(address)
        if stamps is None:
            return collections.deque()
        while stamps and now - stamps[0][0] > self.window:
            stamps.popleft()
        if not stamps:
            del self._failures[address]
        return stamps

    def blocked(self, address: str) -> bool:
        """True if ADDRESS has used up its failures for now."""
        return len(self._recent(address)) >= self.max_failures

    def user_wait(self, user: str) -> float:
        """Seconds before USER may be tried again (0 if now)."""
        record = self._users.get(user)
        if record is None or record.attempts < USER_FREE_ATTEMPTS:
            return 0.0
        backoff = min(USER_BACKOFF_BASE * 2 ** (record.attempts - USER_FREE_ATTEMPTS), USER_BACKOFF_MAX)
        return max(0.0, record.last + backoff - self._clock())

    def begin(self, address: str, user: str) -> str | None:
        """Check and count one attempt by ADDRESS for USER: None if allowed (it
        is counted as a failure from now until finish() says otherwise), else
        why it is refused."""
        now = self._clock()
        if self.blocked(address):
            return "too many failed logins from this address; try again later"
        wait = self.user_wait(user)
        if wait > 0:
            return f"too many failed logins for this user; try again in {wait:.0f} s"
        self.record_failure(address, user)
        record = self._users.pop(user, None) or _UserRecord(0, now)
        record.attempts += 1
        record.last = now
        self._users[user] = record
        while len(self._users) > MAX_TRACKED_USERS:
            self._users.popitem(last=False)
        return None

    def finish(self, address: str, user: str, ok: bool) -> None:
        """The attempt begun by ADDRESS for USER has its answer."""
        if ok:
            self.record_success(address, user)

    def attempt(self, address: str, user: str, check: Callable[[], defer.Deferred[AuthOutcome]]
                ) -> defer.Deferred[AuthOutcome]:  # fmt: skip
        """Run CHECK (the PAM call or token check) for USER from ADDRESS once
        no other attempt from ADDRESS is in flight; begin() decides at that
        moment. Fires with CHECK's outcome, or a `limited` one if refused."""
        waiting = self._waiting.setdefault(address, collections.deque())
        if len(waiting) >= MAX_WAITING_PER_ADDRESS:
            return defer.succeed(AuthOutcome(False, user, "too many logins waiting from this address; try again",
                                             limited=True))  # fmt: skip
        result: defer.Deferred[AuthOutcome] = defer.Deferred()

        def start() -> None:
            refusal = self.begin(address, user)
            if refusal is not None:
                self._next(address)
                result.callback(AuthOutcome(False, user, refusal, limited=True))
                return
            d = defer.maybeDeferred(check)

            def answered(outcome: AuthOutcome) -> AuthOutcome:
                self.finish(address, user, outcome.ok)
                return outcome

            d.addCallback(answered)
            d.addBoth(self._pass_turn, address)
            d.chainDeferred(result)

        waiting.append(start)
        if address not in self._in_flight:
            self._next(address)
        return result

    def _pass_turn(self, value: object, address: str) -> object:
        self._next(address)
        return value

    def _next(self, address: str) -> None:
        """Start the next waiting attempt of ADDRESS, if any."""
        self._in_flight.discard(address)
        waiting = self._waiting.get(address)
        if not waiting:
            self._waiting.pop(address, None)
            return
        self._in_flight.add(address)
        waiting.popleft()()

    def record_failure(self, address: str, user: str = "") -> None:
        """Count one unsuccessful attempt by ADDRESS (begin() does this itself)."""
        stamps = self._recent(address)
        if address not in self._failures:
            self._failures[address] = stamps
        self._failures.move_to_end(address)
        stamps.append((self._clock(), user))
        while len(stamps) > self.max_failures:
            stamps.popleft()
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)

    def record_success(self, address: str, user: str = "") -> None:
        """USER logged in from ADDRESS: forget USER's failures, and only theirs."""
        stamps = self._failures.get(address)
        if stamps is not None:
            kept = collections.deque(stamp for stamp in stamps if stamp[1] != user)
            if kept:
                self._failures[address] = kept
            else:
                del self._failures[address]
        self._users.pop(user, None)


def delayed(reactor: IReactorTime, seconds: float, value: AuthOutcome) -> defer.Deferred[AuthOutcome]:
    """Fire with VALUE after SECONDS (the failed-login delay)."""
    return task.deferLater(reactor, seconds, lambda: value)
