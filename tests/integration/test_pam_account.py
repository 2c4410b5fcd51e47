# PAM's account stage on its own (sessiond/pam_account.py), against a real
# user and the real PAM stack of the sessiond service: what a resume login
# runs instead of a password check, so an expired account is refused even
# with a valid resume token.
"""Integration: the PAM account check allows a live account and refuses an expired one."""

from __future__ import annotations

import subprocess

import pytest

from sessiond.pam_account import account_check
from svtest import TestUser

pytestmark = [pytest.mark.integration, pytest.mark.root]


def test_account_stage_follows_the_account(user_factory: object) -> None:
    user: TestUser = user_factory("svt-acct-a")  # type: ignore[operator]
    assert account_check("sessiond", user.name).allowed
    subprocess.run(["usermod", "--expiredate", "1970-01-02", user.name], check=True)
    verdict = account_check("sessiond", user.name)
    assert not verdict.allowed and "expired" in verdict.reason
    subprocess.run(["usermod", "--expiredate", "", user.name], check=True)
    assert account_check("sessiond", user.name).allowed
    unknown = account_check("sessiond", "svt-no-such-user-q")
    assert not unknown.allowed and unknown.reason
