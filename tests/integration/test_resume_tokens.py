# Resume tokens end when the account or the admin says so (issue 12 item 7),
# against a real sessiond, real PAM and real users. svclient tries its stored
# token first and falls back to the password file; giving it a WRONG password
# makes the token the only way in, so each case shows whether the token alone
# was honoured: an expired account, `sessionctl revoke`, and the user's own
# logoff each end it.
"""Integration: resume tokens follow the account, admin revocation and logoff."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from svtest import Server, TestUser, sessionctl, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture()
def tina(user_factory: object, sessiond_server: Server) -> Iterator[TestUser]:
    user: TestUser = user_factory("svt-tok-t")  # type: ignore[operator]
    yield user
    subprocess.run(["usermod", "--expiredate", "", user.name], check=False)
    svclient(sessiond_server, user, "logoff", resume=False)


@pytest.fixture()
def wrong(tmp_path: object) -> str:
    path = os.path.join(str(tmp_path), "wrong")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("not-the-password\n")
    return path


def token_login(server: Server, user: TestUser, wrong: str) -> subprocess.CompletedProcess[str]:
    """Log in with the stored token, or else the wrong password (so only a token can succeed)."""
    return svclient(server, user, "login", password_file=wrong, resume=True)


def test_a_token_is_honoured_until_the_account_expires(sessiond_server: Server, tina: TestUser, wrong: str) -> None:
    assert svclient(sessiond_server, tina, "login").returncode == 0  # password login: stores a token
    first = token_login(sessiond_server, tina, wrong)
    assert first.returncode == 0, first.stderr  # the token alone gets in (and is renewed)
    subprocess.run(["usermod", "--expiredate", "1970-01-02", tina.name], check=True)
    refused = token_login(sessiond_server, tina, wrong)
    assert refused.returncode == 1, refused.stdout
    assert "Traceback" not in refused.stderr
    assert "may not log in" in sessiond_server.log() or "expired" in sessiond_server.log()


def test_sessionctl_revoke_ends_every_token(sessiond_server: Server, tina: TestUser, wrong: str) -> None:
    assert svclient(sessiond_server, tina, "login").returncode == 0
    revoked = sessionctl(sessiond_server, "revoke", tina.name)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoke: {tina.name}: 1 resume token(s) revoked" in revoked.stdout
    assert token_login(sessiond_server, tina, wrong).returncode == 1
    audit = sessionctl(sessiond_server, "audit")
    assert "tokens_revoked" in audit.stdout


def test_logging_off_ends_the_token(sessiond_server: Server, tina: TestUser, wrong: str) -> None:
    assert svclient(sessiond_server, tina, "login").returncode == 0
    off = svclient(sessiond_server, tina, "logoff", resume=True)
    assert off.returncode == 0, off.stderr
    assert svclient(sessiond_server, tina, "login").returncode == 0  # the password still works: new session
    stored = token_login(sessiond_server, tina, wrong)
    assert stored.returncode == 0  # that login stored a fresh token, honoured
    assert svclient(sessiond_server, tina, "logoff", resume=True).returncode == 0
    assert token_login(sessiond_server, tina, wrong).returncode == 1  # the logoff revoked it
