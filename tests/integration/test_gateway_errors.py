# Bad input over real TLS against a real sessiond: every violation closes
# that one connection with a CLOSE frame carrying the right reason code and
# a log line, and sessiond keeps serving everyone else. Also: wrong
# passwords (delay, rate limit), TLS 1.2 refused, a changed certificate
# refused by the client.
"""Gateway error handling, end to end over TLS."""

from __future__ import annotations

import json
import os
import ssl
import struct
import time

import pytest

from protocol.errors import ReasonCode
from protocol.frames import FrameDecoder
from protocol.limits import MAX_FRAME_PAYLOAD
from protocol.messages import Auth, ChannelKind, Key
from svtest import (HELLO, Server, TestUser, frame, read_close, start_sessiond, stop_sessiond, svclient, tls_connect,
                    wait_auth)

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture(scope="module")
def bob(user_factory: object) -> TestUser:
    return user_factory("svt-gw-b")  # type: ignore[operator, no-any-return]


def login_frames(user: TestUser) -> bytes:
    return HELLO + frame(0, Auth(method="password", user=user.name, password=user.password))


KEY_A = Key(keysym=0x61, down=True)
# case -> (log in first?, bytes to send, expected reason code)
CASES = {
    "bytes before hello": (False, frame(0, Auth(method="password", user="x", password="y")),
                           ReasonCode.HELLO_REQUIRED),
    "oversize length": (False, HELLO + struct.pack("!IHBB", MAX_FRAME_PAYLOAD + 1, 0, 4, 0),
                        ReasonCode.FRAME_TOO_LARGE),
    "second hello": (False, HELLO + HELLO, ReasonCode.UNEXPECTED_HELLO),
    "channel before login": (False, HELLO + frame(int(ChannelKind.INPUT), KEY_A), ReasonCode.NOT_AUTHENTICATED),
    "unknown channel": (True, frame(4000, KEY_A), ReasonCode.UNKNOWN_CHANNEL),
    "data on a channel that is not open": (True, frame(int(ChannelKind.INPUT), KEY_A), ReasonCode.CHANNEL_NOT_OPEN),
    "hello after login": (True, HELLO, ReasonCode.UNEXPECTED_HELLO),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_closes_only_that_connection(sessiond_server: Server, bob: TestUser, case: str) -> None:
    login_first, bad, expected = CASES[case]
    bystander = tls_connect(sessiond_server)
    bystander.sendall(HELLO)
    with tls_connect(sessiond_server) as sock:
        decoder = FrameDecoder()
        if login_first:
            sock.sendall(login_frames(bob))
            assert wait_auth(sock, decoder)
        sock.sendall(bad)
        code, message = read_close(sock, decoder)
    assert code == expected, f"{case}: got {ReasonCode(code).name}: {message}"
    assert message
    assert sessiond_server.alive()
    # The other connection is unaffected: it can still log in.
    bystander.sendall(frame(0, Auth(method="password", user=bob.name, password=bob.password)))
    assert wait_auth(bystander, FrameDecoder()) is True
    bystander.close()
    assert ReasonCode(expected).name in sessiond_server.log()


def test_wrong_password_is_refused_with_delay(sessiond_server: Server, bob: TestUser, tmp_path: object) -> None:
    wrong = os.path.join(str(tmp_path), "wrong")
    with open(wrong, "w") as handle:
        handle.write("not-the-password\n")
    started = time.monotonic()
    result = svclient(sessiond_server, bob, "login", password_file=wrong)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "wrong user name or password" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed >= 0.3  # failure_delay in the test config


def test_repeated_failures_are_rate_limited(tmp_path: object, bob: TestUser) -> None:
    server = start_sessiond(str(tmp_path))
    try:
        wrong = os.path.join(str(tmp_path), "wrong")
        with open(wrong, "w") as handle:
            handle.write("nope\n")
        messages = [svclient(server, bob, "login", password_file=wrong).stderr for _ in range(5)]
        assert all("wrong user name or password" in m for m in messages[:4]), messages
        assert "too many failed logins" in messages[4], messages[4]
        # Even the right password is refused from that address for now.
        right = svclient(server, bob, "login")
        assert right.returncode == 1 and "too many failed logins" in right.stderr
    finally:
        stop_sessiond(server)


def test_tls_1_2_is_refused(sessiond_server: Server) -> None:
    with pytest.raises(ssl.SSLError):
        tls_connect(sessiond_server, max_version=ssl.TLSVersion.TLSv1_2)


def test_changed_certificate_is_refused(sessiond_server: Server, bob: TestUser) -> None:
    first = svclient(sessiond_server, bob, "login")
    assert first.returncode == 0, first.stderr
    with open(sessiond_server.known_hosts, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    real = lines[0].split()[1]
    forged = "0" * 64
    with open(sessiond_server.known_hosts, "w", encoding="utf-8") as handle:
        handle.write(f"{sessiond_server.address} {forged}\n")
    try:
        refused = svclient(sessiond_server, bob, "login")
        assert refused.returncode == 3
        assert forged in refused.stderr and real in refused.stderr
        assert "CHANGED" in refused.stderr
    finally:
        with open(sessiond_server.known_hosts, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


def test_launch_argument_count_is_bounded(sessiond_server: Server, bob: TestUser) -> None:
    from protocol.messages import Launch

    with tls_connect(sessiond_server) as sock:
        decoder = FrameDecoder()
        sock.sendall(login_frames(bob))
        assert wait_auth(sock, decoder)
        too_many = tuple(f"/tmp/file{n}" for n in range(65))
        sock.sendall(frame(0, Launch(request=9, app="xterm", args=too_many)))
        deadline = time.monotonic() + 10
        answer = None
        while answer is None and time.monotonic() < deadline:
            for f in decoder.feed(sock.recv(65536)):
                if f.channel == 0 and f.type == 0x07:
                    answer = json.loads(f.payload)
    assert answer is not None and answer["ok"] is False and answer["request"] == 9
    assert answer["code"] == ReasonCode.LIMIT_EXCEEDED and "at most 64" in answer["message"]


def test_control_socket_refuses_oversized_requests(sessiond_server: Server) -> None:
    import socket as socket_mod

    from sessiond.admin import MAX_REQUEST_LINE

    path = os.path.join(sessiond_server.runtime_dir, "control.sock")
    with socket_mod.socket(socket_mod.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(b"x" * (MAX_REQUEST_LINE + 10))
        answer = sock.recv(65536)
    assert json.loads(answer) == {"ok": False, "error": "request too long"}
    assert sessiond_server.alive()
