# The installed daemon gives back the start-up pages of cryptography's
# extension (sessiond/startup_pages.py, issue 15) and then still serves TLS
# and PAM logins: what an administrator would see is a daemon whose copy of
# _rust.abi3.so is mostly not resident once it has started, and users who
# log in as before. Also: its host certificate was made (by a forked child)
# and the fingerprint it prints is the one clients pin.
"""Integration: the daemon releases cryptography's start-up pages and logs users in afterwards."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import ssl
import subprocess
import time

import pytest

from protocol.frames import FrameDecoder
from protocol.messages import Auth
from svtest import HELLO, VENV_BIN, Server, TestUser, frame, start_sessiond, stop_sessiond, tls_connect, wait_auth

pytestmark = [pytest.mark.integration, pytest.mark.root]

EXTENSION = "_rust.abi3.so"
# Resident KiB of the extension we accept once released: its relocated data (~0.7 MiB, never
# released) plus pages another process mapping the same file may keep (a test run in parallel).
RELEASED_KIB = 4 * 1024
# Seconds to wait for the release (one second after start; a loaded machine is slow).
RELEASE_TIMEOUT = 60


def extension_rss_kib(pid: int) -> int:
    total, inside = 0, False
    with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            head = line.split(" ", 1)[0]
            if not head.endswith(":"):
                inside = line.rstrip().endswith("/" + EXTENSION)
            elif inside and head == "Rss:":
                total += int(line.split()[1])
    return total


def private_cryptography(into: str) -> str:
    """A copy of the installed cryptography package under INTO, for PYTHONPATH.
    The kernel releases only pages no other process maps, and this test run
    itself has the installed extension mapped (test modules import it), so a
    daemon loading that same file could keep pages whatever it does; with a
    file of its own it stands as a production daemon does, alone."""
    found = subprocess.run([os.path.join(VENV_BIN, "python"), "-c",
                            "import importlib.util; print(importlib.util.find_spec('cryptography').origin)"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    shutil.copytree(os.path.dirname(found), os.path.join(into, "cryptography"))
    return into


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> object:
    copy = private_cryptography(str(tmp_path_factory.mktemp("private-cryptography")))
    running = start_sessiond(str(tmp_path_factory.mktemp("sessiond")), wrap=("env", f"PYTHONPATH={copy}"))
    yield running
    stop_sessiond(running)


def test_start_up_pages_are_released_and_logins_still_work(server: Server, user_factory: object) -> None:
    pid = server.process.pid
    with open(f"/proc/{pid}/maps", encoding="utf-8") as handle:
        assert "private-cryptography" in handle.read(), "the daemon does not run the private copy"
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while extension_rss_kib(pid) > RELEASED_KIB and time.monotonic() < deadline:
        time.sleep(0.2)
    assert extension_rss_kib(pid) <= RELEASED_KIB, server.log()[-2000:]
    user: TestUser = user_factory("svt-dmem")  # type: ignore[operator]
    sock = tls_connect(server)
    try:
        assert sock.version() == "TLSv1.3"
        sock.sendall(HELLO + frame(0, Auth(method="password", user=user.name, password=user.password)))
        assert wait_auth(sock, FrameDecoder())
    finally:
        sock.close()
    assert server.alive()


def test_printed_fingerprint_is_the_served_certificate(server: Server) -> None:
    sock = tls_connect(server)
    try:
        der = sock.getpeercert(binary_form=True)
    finally:
        sock.close()
    assert der is not None
    printed = re.search(r"certificate sha256 ([0-9a-f]{64})", server.log())
    assert printed is not None and printed.group(1) == hashlib.sha256(der).hexdigest()
    assert ssl.DER_cert_to_PEM_cert(der).startswith("-----BEGIN CERTIFICATE-----")
