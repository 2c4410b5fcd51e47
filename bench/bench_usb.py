# Benchmark of USB redirection through the whole path: a user-space USB/IP
# driver inside a real session (nsenter, as the user) -> agent endpoint ->
# link -> sessiond (policy gate, relay) -> TLS -> this process, which plays
# the thin client and serves a virtual bulk-loopback device. Measured:
#
#   1. 64-byte bulk OUT+IN round trip: median and p95;
#   2. bulk throughput (64 KiB OUT + 64 KiB IN per round) in MB/s, idle and
#      while the display channel is busy (xterm scrolling text in the session,
#      every frame acknowledged by this client);
#
# against a direct loopback USB/IP baseline measured in the same run: the
# same driver, the same agent endpoint code and the same device, over one
# TCP connection on 127.0.0.1 with TCP_NODELAY and nothing in between.
# Nothing here gates anything; it prints a table. Run as root:
#   /opt/sessiond/venv/bin/python bench/bench_usb.py
"""USB/IP over the usb channel: latency and throughput vs a direct loopback baseline."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import statistics
import subprocess
import sys
import tempfile
import threading
from typing import Any

from twisted.internet import defer, task, threads

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from client.known_hosts import KnownHosts  # noqa: E402
from client.session import connect  # noqa: E402
from client.usb import UsbExporter  # noqa: E402
from client.usb_virtual import BulkLoopback  # noqa: E402
from protocol.connection import MessageReceived  # noqa: E402
from protocol.messages import ChannelKind, Message  # noqa: E402
from protocol.usb import DeviceState, DeviceStatus  # noqa: E402
from sessiond.agent.usb import UsbService  # noqa: E402
from sessiond.agent.usb_driver import run_loopback  # noqa: E402
from sessiond.agent.usb_server import UsbipPeer  # noqa: E402
from svtest import VENV_BIN, create_user, remove_user, start_sessiond, stop_sessiond  # noqa: E402

USB = int(ChannelKind.USB)
SMALL, SMALL_COUNT = 64, 1000
BULK, BULK_COUNT = 64 * 1024, 300
USER = "svbench-usb"
# Keeps the display channel busy: a screenful of new text every ~30 ms. (Plain
# `yes` floods xterm so hard that the agent's X event drain never yields; see
# docs/usb.md.)
BUSY_COMMAND = "while :; do ls -l /usr/bin | head -60; date +%N; sleep 0.03; done"


def summarize(result: dict[str, Any], size: int) -> dict[str, float]:
    times = sorted(result["seconds"])
    total = sum(times)
    return {"median_ms": statistics.median(times) * 1e3, "p95_ms": times[int(len(times) * 0.95)] * 1e3,
            "mb_s": 2 * size * len(times) / total / 1e6, "echoed": result["echoed"] / len(times)}  # fmt: skip


class _MemLink:
    """The agent's link, short-circuited to an in-process exporter (baseline only)."""

    def __init__(self) -> None:
        self.conn = self
        self.closed = False
        self.exporter: UsbExporter | None = None

    def send(self, channel: int, message: Message) -> None:
        assert self.exporter is not None
        self.exporter.handle(message)

    def consumed(self, channel: int, nbytes: int) -> None:
        pass

    def queued_bytes(self, channel: int) -> int:
        return 0

    def open_channels(self) -> dict[int, ChannelKind]:
        return {USB: ChannelKind.USB}

    def flush(self) -> None:
        pass


def baseline() -> tuple[dict[str, float], dict[str, float]]:
    """Direct USB/IP over TCP loopback: same endpoint code, same device, no sessiond in between."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    runtime = tempfile.mkdtemp(prefix="usb-bench-")

    def run() -> None:
        asyncio.set_event_loop(loop)
        service = UsbService(loop, lambda text: None, runtime)
        link = _MemLink()
        service.link, service.channel = link, USB  # type: ignore[assignment]
        link.exporter = UsbExporter(lambda m: service.handles(link, MessageReceived(USB, ChannelKind.USB, m)),  # type: ignore[arg-type]
                                    lambda code, why: None, lambda status: None)  # fmt: skip
        link.exporter.share(BulkLoopback("vusb-1"))
        server = loop.run_until_complete(loop.create_server(lambda: UsbipPeer(service), "127.0.0.1", 0))
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    address = f"127.0.0.1:{port[0]}"
    small = summarize(run_loopback(address, "vusb-1", SMALL_COUNT, SMALL), SMALL)
    bulk = summarize(run_loopback(address, "vusb-1", BULK_COUNT, BULK), BULK)
    loop.call_soon_threadsafe(loop.stop)
    return small, bulk


def in_session(user: str, *args: str) -> dict[str, Any]:
    pid = subprocess.run(["pgrep", "-u", user, "-f", "sessiond.agent"], capture_output=True, text=True).stdout.split()
    uid = str(pwd.getpwnam(user).pw_uid)
    argv = ["nsenter", "-t", pid[0], "-m", "-p", "-i", "-S", uid, "-G", uid, "--", os.path.join(VENV_BIN, "python"),
            "-m", "sessiond.agent.usb_driver", "--address", f"/run/user/{uid}/usbip.sock", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def whole_path(reactor: Any, server: Any, user: Any) -> dict[str, dict[str, float]]:
    client = await connect(reactor, server.host, server.port, KnownHosts(server.known_hosts))
    with open(user.password_file, encoding="utf-8") as handle:
        await client.login(user.name, handle.readline().strip())
    await client.open_channel(ChannelKind.USB)
    offered: defer.Deferred[DeviceStatus] = defer.Deferred()

    def send(message: Message) -> None:
        client.conn.send(USB, message)
        client.flush()

    exporter = UsbExporter(send, lambda code, why: print("usb channel closed:", why),
                           lambda s: offered.callback(s) if not offered.called else None)  # fmt: skip
    client.channel_handlers[USB] = lambda m: exporter.handle(m) if m is not None else exporter.channel_closed()
    exporter.share(BulkLoopback("vusb-1"))
    status = await offered
    assert status.status == DeviceState.OFFERED, status.text
    out: dict[str, dict[str, float]] = {}
    out["small"] = summarize(await threads.deferToThread(in_session, user.name, "loopback", "vusb-1", "--count",
                                                         str(SMALL_COUNT), "--size", str(SMALL)), SMALL)  # fmt: skip
    out["bulk"] = summarize(await threads.deferToThread(in_session, user.name, "loopback", "vusb-1", "--count",
                                                        str(BULK_COUNT), "--size", str(BULK)), BULK)  # fmt: skip
    # Busy display: xterm scrolling (BUSY_COMMAND), every frame acknowledged by this client.
    await client.open_channel(ChannelKind.DISPLAY)
    await client.launch("xterm")
    await client.open_channel(ChannelKind.INPUT)
    from client.keysyms import keysym_for_char, keysym_from_name

    for char in BUSY_COMMAND:
        client.key(keysym_for_char(char), True)
        client.key(keysym_for_char(char), False)
    client.key(keysym_from_name("Return"), True)
    client.key(keysym_from_name("Return"), False)
    await client.sync()
    first = client.last_frame
    busy = await threads.deferToThread(in_session, user.name, "loopback", "vusb-1", "--count", str(BULK_COUNT),
                                       "--size", str(BULK))  # fmt: skip
    out["bulk_busy"] = summarize(busy, BULK)
    out["bulk_busy"]["frames"] = client.last_frame - first
    out["small_busy"] = summarize(await threads.deferToThread(in_session, user.name, "loopback", "vusb-1",
                                                              "--count", str(SMALL_COUNT), "--size", str(SMALL)),
                                  SMALL)  # fmt: skip
    client.disconnect()
    return out


def main() -> int:
    if os.geteuid() != 0:
        print("bench_usb: run as root (it creates a user and starts sessiond)", file=sys.stderr)
        return 2
    small_base, bulk_base = baseline()
    tmp = tempfile.mkdtemp(prefix="usb-bench-")
    user = create_user(USER, tmp)
    server = start_sessiond(tmp)
    result: dict[str, dict[str, float]] = {}
    try:
        def run(reactor: Any) -> Any:
            async def body() -> None:
                result.update(await whole_path(reactor, server, user))

            return defer.ensureDeferred(body())

        task.react(run)
    except SystemExit:
        pass
    finally:
        stop_sessiond(server)
        remove_user(USER)
    rows = [("64 B round trip, median (ms)", small_base["median_ms"], result["small"]["median_ms"],
             result["small_busy"]["median_ms"]),
            ("64 B round trip, p95 (ms)", small_base["p95_ms"], result["small"]["p95_ms"],
             result["small_busy"]["p95_ms"]),
            ("64 KiB bulk OUT+IN (MB/s)", bulk_base["mb_s"], result["bulk"]["mb_s"], result["bulk_busy"]["mb_s"])]
    print(f"{'workload':32} {'direct loopback':>16} {'whole path':>12} {'display busy':>13} {'ratio':>7}")
    for name, base, path, busy in rows:
        print(f"{name:32} {base:16.3f} {path:12.3f} {busy:13.3f} {path / base:7.2f}")
    print(f"display frames acknowledged during the busy bulk run: {int(result['bulk_busy']['frames'])}")
    print(f"echo correct: {min(r['echoed'] for r in result.values()):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
