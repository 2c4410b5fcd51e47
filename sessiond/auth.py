# Password authentication through PAM, and the per-address failure limiter.
# PAM calls block (pam_unix reads /etc/shadow, other modules may hit the
# network), so they run in Twisted's thread pool; the failure delay is a
# reactor timer, never a sleeping thread.
"""PAM authentication and login rate limiting."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Callable

import pam
from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger()

# Longest user name / password accepted before PAM is even asked.
MAX_USERNAME_LEN = 64
MAX_PASSWORD_LEN = 1024
# Addresses remembered by the limiter; the oldest is forgotten beyond this,
# so a flood of source addresses cannot grow memory without bound.
MAX_TRACKED_ADDRESSES = 10_000


@dataclass(frozen=True)
class AuthOutcome:
    """Result of one login attempt."""

    ok: bool
    user: str
    reason: str = ""


def _pam_check(service: str, user: str, password: str) -> AuthOutcome:
    handle = pam.pam()
    if handle.authenticate(user, password, service=service, resetcreds=False):
        return AuthOutcome(True, user)
    log.info("PAM refused {user}: {reason}", user=user, reason=handle.reason)
    return AuthOutcome(False, user, "wrong user name or password")


class PamAuthenticator:
    """Check a user name and password against PAM service SERVICE."""

    def __init__(self, service: str, check: Callable[[str, str, str], AuthOutcome] = _pam_check) -> None:
        self.service = service
        self._check = check

    def authenticate(self, user: str, password: str) -> defer.Deferred[AuthOutcome]:
        if not user or len(user) > MAX_USERNAME_LEN or len(password) > MAX_PASSWORD_LEN or "\0" in user + password:
            return defer.succeed(AuthOutcome(False, user, "wrong user name or password"))
        return threads.deferToThread(self._check, self.service, user, password)


class FailureLimiter:
    """Refuse logins from an address after MAX_FAILURES within WINDOW seconds."""

    def __init__(self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def _recent(self, address: str) -> collections.deque[float]:
        now = self._clock()
        stamps = self._failures.get(address)
        if stamps is None:
            return collections.deque()
        while stamps and now - stamps[0] > self.window:
            stamps.popleft()
        if not stamps:
            del self._failures[address]
        return stamps

    def blocked(self, address: str) -> bool:
        """True if ADDRESS has used up its failures for now."""
        return len(self._recent(address)) >= self.max_failures

    def record_failure(self, address: str) -> None:
        stamps = self._recent(address)
        if address not in self._failures:
            self._failures[address] = stamps
        self._failures.move_to_end(address)
        stamps.append(self._clock())
        while len(stamps) > self.max_failures:
            stamps.popleft()
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)

    def record_success(self, address: str) -> None:
        self._failures.pop(address, None)


def delayed(reactor: IReactorTime, seconds: float, value: AuthOutcome) -> defer.Deferred[AuthOutcome]:
    """Fire with VALUE after SECONDS (the failed-login delay)."""
    return task.deferLater(reactor, seconds, lambda: value)
