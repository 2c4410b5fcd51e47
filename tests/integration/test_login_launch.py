# The app a login asks for (AUTH's `launch`, docs/protocol.md section 5)
# through the real thing: the installed sessiond, real PAM users, real
# sandboxes and Xvfb, `svclient launch` over TLS. What a user and an admin
# observe: for a new session the app is running and on the client's screen
# when svclient returns, and the agent's start-up line in the server log says
# it was started before the agent was set up (so before the link and the
# AUTH_RESULT); its stderr goes to the session's log, not to a pipe into
# sessiond; with the session already running the same login launches it as
# a LAUNCH would; an app the user may not run is refused while the login
# still succeeds; a wrong password starts neither a session nor the app.
"""Integration: a login that carries its first launch."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from svtest import Server, TestUser, start_sessiond, stop_sessiond, svclient

pytestmark = [pytest.mark.integration, pytest.mark.root]

START_UP_RE = re.compile(r"agent (\S+) stderr: start-up \(wall clock\): (.*)$", re.MULTILINE)
MARK_RE = re.compile(r"([a-zA-Z ]+?) (\d+\.\d+) \(\+\d+ ms\)")
# xterm's white interior: a user sees it in the client's screenshot (conf/apps/xterm.desktop).
WHITE = (255, 255, 255)
MIN_WHITE_PIXELS = 200 * 200


def xterms(user: TestUser) -> list[int]:
    found = subprocess.run(["pgrep", "-u", user.name, "-x", "xterm"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def start_up_marks(server: Server, user: TestUser) -> dict[str, float]:
    """The wall-clock marks of the agent start-up line of USER's session."""
    log = server.log()
    session = re.findall(rf"session (\S+) starting for {re.escape(user.name)}\b", log)
    assert len(session) == 1, f"sessions started for {user.name}: {session}"
    lines = [marks for sid, marks in START_UP_RE.findall(log) if sid == session[0]]
    assert len(lines) == 1, f"no start-up line of session {session[0]}:\n{log[-3000:]}"
    return {name.strip(): float(at) for name, at in MARK_RE.findall(lines[0])}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_sessiond(str(tmp_path_factory.mktemp("login-launch")))
    yield started
    stop_sessiond(started)


def test_a_new_sessions_app_starts_with_the_login_and_shows_on_the_client(server: Server, user_factory: object,
                                                                          tmp_path: object) -> None:  # fmt: skip
    user = user_factory("svt-ll-new")  # type: ignore[operator]
    launched = svclient(server, user, "launch", "xterm")
    assert launched.returncode == 0, launched.stderr + server.log()[-3000:]
    assert "launched xterm (pid" in launched.stdout and "window mapped" in launched.stdout, launched.stdout
    marks = start_up_marks(server, user)
    # Started right after the X server, before the rest of the agent's set-up (and so before its
    # link and the client's AUTH_RESULT): the login's launch, not a LAUNCH after it.
    assert marks["Xvfb ready"] <= marks["first launch"] < marks["set up"], marks
    (pid,) = xterms(user)
    # Its stderr is the session's log: a pipe into sessiond would break when sessiond restarts.
    stderr = os.readlink(f"/proc/{pid}/fd/2")
    assert stderr.startswith(server.runtime_dir) and stderr.endswith("/agent.log"), stderr
    shot = os.path.join(str(tmp_path), "shot.png")
    taken = svclient(server, user, "screenshot", shot)
    assert taken.returncode == 0, taken.stderr
    with Image.open(shot) as image:
        white = sum(count for count, colour in image.convert("RGB").getcolors(1 << 24) or [] if colour == WHITE)
    assert white >= MIN_WHITE_PIXELS, f"only {white} white pixels of xterm in the client's screenshot"

    # The session runs now: the same login's launch is a LAUNCH into it (no new start-up line).
    again = svclient(server, user, "launch", "xterm")
    assert again.returncode == 0, again.stderr + server.log()[-3000:]
    deadline = time.monotonic() + 10
    while len(xterms(user)) < 2:
        assert time.monotonic() < deadline, f"the second xterm of {user.name} does not run"
        time.sleep(0.1)
    start_up_marks(server, user)  # still one session, one start-up line


def test_an_app_the_user_may_not_run_is_refused_and_the_login_still_starts_the_session(
        server: Server, user_factory: object) -> None:  # fmt: skip
    user = user_factory("svt-ll-refused")  # type: ignore[operator]
    refused = svclient(server, user, "launch", "no-such-app")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "no published application 'no-such-app'" in refused.stderr, refused.stderr
    marks = start_up_marks(server, user)  # the login went through: the session started, with no launch
    assert "first launch" not in marks, marks
    assert xterms(user) == []
    listed = svclient(server, user, "login")
    assert listed.returncode == 0 and listed.stdout.strip(), listed.stderr


def test_a_wrong_password_starts_neither_a_session_nor_the_app(server: Server, user_factory: object,
                                                              tmp_path: object) -> None:  # fmt: skip
    user = user_factory("svt-ll-wrong")  # type: ignore[operator]
    wrong = os.path.join(str(tmp_path), "wrong")
    with open(wrong, "w", encoding="utf-8") as handle:
        handle.write("not the password\n")
    os.chmod(wrong, 0o600)
    refused = svclient(server, user, "launch", "xterm", password_file=wrong)
    assert refused.returncode == 1 and "refused by the server" in refused.stderr, refused.stderr
    time.sleep(0.5)
    assert f"starting for {user.name}" not in server.log()
    assert xterms(user) == []
