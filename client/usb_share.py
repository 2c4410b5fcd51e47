# `svclient usb share`: keep the connection open and serve the shared devices
# until the user stops it (Ctrl-C, SIGTERM, --for SECONDS) or the server
# takes the last device away. The devices belong to this process: once it
# ends, the session no longer lists them.
#
# Why a foreground command: a session has one client connection at a time,
# and the device lives with the process that holds it (like `ssh -R`).
"""share_devices(): the usb share command."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
from typing import Any, TextIO

from twisted.internet import defer

from client.session import RemoteError, SessionClient
from client.usb import UsbExporter, UsbUsageError, open_device
from protocol.messages import ChannelKind, Message
from protocol.usb import DeviceState, DeviceStatus

USB = int(ChannelKind.USB)
_STATE_WORDS = {DeviceState.OFFERED: "shared", DeviceState.REFUSED: "refused", DeviceState.REVOKED: "detached",
                DeviceState.REMOVED: "removed", DeviceState.IMPORTED: "imported"}  # fmt: skip


async def share_devices(reactor: Any, client: SessionClient, specs: list[str], duration: float, timeout: float,
                        out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:  # fmt: skip
    """Share SPECS into the session; returns the exit status (0: served until stopped)."""
    devices = [open_device(spec, index) for index, spec in enumerate(specs, start=1)]
    try:
        await client.open_channel(ChannelKind.USB)
    except RemoteError as exc:
        raise RemoteError(exc.code, f"the server offers no USB redirection: {exc}") from exc
    answered: defer.Deferred[None] = defer.Deferred()
    finished: defer.Deferred[int] = defer.Deferred()
    waiting = {d.busid for d in devices}
    offered: set[str] = set()
    names = {d.busid: f"{d.busid} ({d.record().vid_pid} {d.name})" for d in devices}

    def report(status: DeviceStatus) -> None:
        word = _STATE_WORDS.get(status.status, str(status.status))
        stream = out if status.status == DeviceState.OFFERED else err
        print(f"{word} {names.get(status.busid, status.busid)}: {status.text}", file=stream, flush=True)
        if status.status == DeviceState.OFFERED:
            offered.add(status.busid)
        elif status.status in (DeviceState.REVOKED, DeviceState.REMOVED):
            offered.discard(status.busid)
            if not offered and not finished.called:
                finished.callback(1)
        waiting.discard(status.busid)
        if not waiting and not answered.called:
            answered.callback(None)

    def send(message: Message) -> None:
        if USB in client.conn.open_channels():
            client.conn.send(USB, message)
            client.flush()

    def close(code: int, why: str) -> None:
        print(f"svclient: closing the usb channel: {why}", file=err, flush=True)
        if USB in client.conn.open_channels():
            client.conn.close_channel(USB, code, why)
            client.flush()

    exporter = UsbExporter(send, close, report)

    def on_message(message: Message | None) -> None:
        if message is None:
            exporter.channel_closed()
            if not finished.called:
                finished.callback(1)
        else:
            exporter.handle(message)

    client.channel_handlers[USB] = on_message
    for device in devices:
        exporter.share(device)
    answered.addTimeout(timeout, reactor)
    await answered
    if not offered:
        return 1
    records = record_shares(specs)
    client.ended.addCallback(lambda end: None if finished.called else finished.callback(1))
    if duration > 0:
        timer = reactor.callLater(duration, lambda: None if finished.called else finished.callback(0))
        finished.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])
    try:
        status = await finished
    finally:
        forget_shares(records)
    for busid in list(exporter.devices):
        exporter.unshare(busid)
    return status


# -- `usb unshare`: find the svclient that shares a device and stop it ---------
def share_dir() -> str:
    """Where running `usb share` processes record themselves (per user)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "svclient-usb")


def _record_path(spec: str) -> str:
    return os.path.join(share_dir(), hashlib.sha256(spec.encode("utf-8")).hexdigest()[:24])


def record_shares(specs: list[str]) -> list[str]:
    """Record this process as the sharer of SPECS; returns the record files."""
    os.makedirs(share_dir(), mode=0o700, exist_ok=True)
    paths = []
    for spec in specs:
        path = _record_path(spec)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n{spec}\n")
        paths.append(path)
    return paths


def forget_shares(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def unshare(specs: list[str], out: TextIO = sys.stdout) -> None:
    """Stop the `usb share` process sharing each of SPECS (the session then
    loses the device, as when that process is interrupted)."""
    for spec in specs:
        path = _record_path(spec)
        try:
            with open(path, encoding="utf-8") as handle:
                pid = int(handle.readline())
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().split(b"\0")
        except (OSError, ValueError) as exc:
            forget_shares([path])
            raise UsbUsageError(f"{spec} is not shared by a running svclient") from exc
        if b"share" not in cmdline or not any(b"svclient" in part or b"client.cli" in part for part in cmdline):
            forget_shares([path])
            raise UsbUsageError(f"{spec} is not shared by a running svclient")
        os.kill(pid, signal.SIGTERM)
        print(f"unshared {spec} (stopped svclient pid {pid})", file=out, flush=True)


def usb_offline(args: Any, out: TextIO = sys.stdout) -> bool:
    """The part of `svclient usb ...` that needs no server: `usb list`, and checking
    the devices `usb share` names. True if the command is complete."""
    from client.usb import list_local

    if args.usb_command == "list":
        for device in list_local():
            print(f"{device.name}\t{device.vid_pid}\t{device.description}", file=out)
        return True
    if args.usb_command == "unshare":
        unshare(args.devices, out)
        return True
    for index, spec in enumerate(args.devices, start=1):
        open_device(spec, index)  # UsbUsageError before we connect
    return False
