# sessiond-send against the agent's socket, as a user in a session runs it.
#
# The installed `sessiond-send` command talks to a SendSocketServer in this
# process's asyncio loop (the agent's side); the test's offer callback plays
# the integrator and reads each file through the descriptor it is handed.
"""Integration tests for sessiond-send and sessiond.agent.send_socket."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from sessiond.agent import send_socket
from sessiond.agent.clipboard_policy import FilePolicy
from sessiond.agent.outbox import OutgoingFile
from sessiond.agent.send_socket import (
    MAX_CONNECTIONS,
    MAX_FILES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    SendSocketServer,
    send_socket_path,
)

pytestmark = pytest.mark.integration

SEND_COMMAND = os.path.join(os.path.dirname(sys.executable), "sessiond-send")
COMMAND_TIMEOUT_SECONDS = 20.0
NOBODY_UID = 65534


class Offers:
    """The integrator's callback: reads and records what it was handed."""

    def __init__(self, refuse: str | None = None) -> None:
        self.received: list[tuple[str, int, str, bytes]] = []
        self.refuse = refuse

    def __call__(self, outgoing: OutgoingFile) -> str | None:
        if self.refuse is not None:
            return self.refuse
        with os.fdopen(outgoing.fd, "rb") as f:
            self.received.append((outgoing.name, outgoing.size, outgoing.source, f.read()))
        return None


async def run(argv: list[str], runtime_dir: str, user: int | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*argv, env={**os.environ, "XDG_RUNTIME_DIR": runtime_dir},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                user=user)  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT_SECONDS)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def serve(tmp_path: Path, offers: Offers, policy: FilePolicy | None = None) -> Any:
    """Decorator: run the coroutine with a SendSocketServer on tmp_path/run."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)

    def wrap(body: Any) -> None:
        async def main() -> None:
            server = SendSocketServer(asyncio.get_running_loop(), send_socket_path(str(runtime)),
                                      policy or FilePolicy(), offers, lambda text: None)  # fmt: skip
            try:
                await body(str(runtime), server)
            finally:
                server.close()

        asyncio.run(main())

    return wrap


def test_sessiond_send_hands_the_files_over(tmp_path: Path) -> None:
    one, two = tmp_path / "report.pdf", tmp_path / "-odd name\n.txt"
    one.write_bytes(os.urandom(300_000))
    two.write_bytes(b"hello")
    offers = Offers()

    @serve(tmp_path, offers)
    async def _(runtime: str, server: SendSocketServer) -> None:
        assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
        status, out = await run([SEND_COMMAND, str(one), str(two)], runtime)
        assert status == 0, out
        assert "report.pdf: offered to the client" in out

    got = {name: (size, source, hashlib.sha256(data).hexdigest()) for name, size, source, data in offers.received}
    assert got == {
        "report.pdf": (300_000, "send", hashlib.sha256(one.read_bytes()).hexdigest()),
        "odd name.txt": (5, "send", hashlib.sha256(b"hello").hexdigest()),  # sanitised
    }


def test_policy_and_the_integrator_can_refuse(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 11)

    @serve(tmp_path, Offers(), FilePolicy(max_file_bytes=10))
    async def _(runtime: str, server: SendSocketServer) -> None:
        status, out = await run([SEND_COMMAND, str(path)], runtime)
        assert status == 1 and "not sent: larger than the limit" in out
        server.policy = FilePolicy(to_client=False)
        status, out = await run([SEND_COMMAND, str(path)], runtime)
        assert status == 1 and "not allowed" in out

    (tmp_path / "run").rename(tmp_path / "run-old")

    @serve(tmp_path, Offers(refuse="no client is connected"))
    async def _(runtime: str, server: SendSocketServer) -> None:
        status, out = await run([SEND_COMMAND, str(path)], runtime)
        assert status == 1 and "no client is connected" in out


def test_other_users_are_turned_away_even_through_an_open_socket() -> None:
    if os.getuid() != 0:
        pytest.fail("run integration tests as root (make test): this one runs a client as another user")
    # Everything on the way is open to the other user; only SO_PEERCRED stands in the way.
    base = Path(tempfile.mkdtemp(prefix="svt-send-"))
    try:
        os.chmod(base, 0o755)
        path = base / "f.txt"
        path.write_bytes(b"secret")
        os.chmod(path, 0o644)
        offers = Offers()

        @serve(base, offers)
        async def _(runtime: str, server: SendSocketServer) -> None:
            os.chmod(runtime, 0o777)  # usable as its runtime directory too
            os.chmod(server.path, 0o666)
            status, out = await run([SEND_COMMAND, str(path)], runtime, user=NOBODY_UID)
            assert status == 2 and "did not answer" in out, out
            # It connected and was turned away, not stopped by the file system.
            assert "No such file" not in out and "Permission denied" not in out, out
            status, out = await run([SEND_COMMAND, str(path)], runtime)  # the owner still gets through
            assert status == 0, out

        assert [name for name, *_ in offers.received] == ["f.txt"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_malformed_oversized_and_silent_clients_cost_only_their_connection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(send_socket, "REQUEST_TIMEOUT_SECONDS", 1.0)
    path = tmp_path / "ok.txt"
    path.write_bytes(b"fine")
    offers = Offers()

    @serve(tmp_path, offers)
    async def _(runtime: str, server: SendSocketServer) -> None:
        loop = asyncio.get_running_loop()

        async def exchange(payload: bytes, fds: list[int]) -> bytes:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.setblocking(False)
            await loop.sock_connect(sock, server.path)
            socket.send_fds(sock, [payload], fds)
            reply = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
            sock.close()
            return reply

        fd = os.open(path, os.O_RDONLY)
        try:
            too_many = json.dumps({"v": 1, "names": ["ok.txt"] * (MAX_FILES_PER_REQUEST + 1)}).encode()
            assert "files" in json.loads(await exchange(too_many, [fd] * (MAX_FILES_PER_REQUEST + 1)))["error"]
            assert "malformed" in json.loads(await exchange(b"not json", [fd]))["error"]
            assert "malformed" in json.loads(await exchange(b'{"v":1,"names":["a","b"]}', [fd]))["error"]
            assert "larger than" in json.loads(await exchange(b"x" * (MAX_REQUEST_BYTES + 1), [fd]))["error"]
        finally:
            os.close(fd)
        silent = []
        for _ in range(MAX_CONNECTIONS + 1):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.setblocking(False)
            await loop.sock_connect(sock, server.path)
            silent.append(sock)
        started = time.monotonic()
        # One over the limit is closed at once; the others after the request timeout.
        assert await asyncio.wait_for(loop.sock_recv(silent[-1], 100), 5) == b""
        assert time.monotonic() - started < send_socket.REQUEST_TIMEOUT_SECONDS
        for sock in silent[:-1]:
            assert await asyncio.wait_for(loop.sock_recv(sock, 100), 5) == b""
            sock.close()
        silent[-1].close()
        status, out = await run([SEND_COMMAND, str(path)], runtime)
        assert status == 0, out

    assert [name for name, *_ in offers.received] == ["ok.txt"]
