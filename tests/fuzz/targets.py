# Fuzz targets, one per decoder of input that crosses a trust boundary
# (issue 12, "Fuzzing"): each takes arbitrary bytes, drives one decoder the
# way its real caller does, and lets through only the exceptions that
# decoder documents for malformed input (ProtocolError, ValueError and its
# subclasses RegionError, SpecError, ExecError...). Anything else escaping is
# a crash. run_target.py runs one under atheris (coverage-guided);
# tests/unit/test_fuzz_targets.py runs each briefly, bench/fuzz.py long.
#
# Why one module: the targets share their fakes, and TARGETS is the list the
# test and the bench iterate, so a target cannot be forgotten by one of them.
"""TARGETS: name -> function(bytes) for every untrusted-input decoder."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable

from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.web._websocket_impl import _WebSocketWireProtocol, serverBootstrap
from wsproto import ConnectionType
from wsproto.connection import Connection as WsConnection

from apps.catalog import Catalog, EntryRejectedError
from apps.exec_line import expand_exec, parse_exec
from apps.keyfile_values import parse_boolean, split_list, unescape_string
from client.framebuffer import Framebuffer
from client.video import VideoDecodeError, VideoDecoders
from isolation.spec import from_json
from protocol import usb
from protocol.base import ChannelKind, Encoding
from protocol.connection import Connection, Role
from protocol.errors import ProtocolError
from protocol.frames import FrameDecoder
from protocol.messages import MESSAGE_TYPES, Region, decode_message, encode_message
from protocol.testing import RecordingTransport, handshaken_pair, open_pair_channel
from sessiond import admin, admin_site, web_socket
from media.opus import OpusDecoder
from sessiond.agent.usb_server import UsbipPeer
from transport.twisted_wire import FrameProtocol
from tile_target import tile

Target = Callable[[bytes], None]
KINDS = sorted(MESSAGE_TYPES, key=int)


class _LoggedFailure(Exception):
    """Twisted caught and logged an exception: for a fuzz target that is a crash."""


_failures: list[Any] = []
globalLogPublisher.addObserver(lambda event: _failures.append(event["log_failure"]) if "log_failure" in event else None)


def _raise_logged() -> None:
    if _failures:
        failure = _failures[0]
        _failures.clear()
        raise _LoggedFailure(failure.getTraceback())


def _chunks(data: bytes) -> list[bytes]:
    """Split DATA at points chosen by its first byte, so reads of every size happen."""
    if not data:
        return []
    step = 1 + data[0] % 61
    return [data[i : i + step] for i in range(1, len(data), step)] or [b""]


# -- wire protocol ------------------------------------------------------------------------
def frame_decoder(data: bytes) -> None:
    decoder = FrameDecoder()
    try:
        for piece in _chunks(data):
            decoder.feed(piece)
    except ProtocolError:
        pass


def _connection(role: Role, state: int) -> Connection:
    if state == 0:
        return Connection(role)
    client, server = handshaken_pair()
    if state == 2:
        for channel, kind in enumerate((k for k in KINDS if k != ChannelKind.CONTROL), start=1):
            open_pair_channel(client, server, channel, kind)
    return server if role is Role.SERVER else client


def _connection_target(role: Role, state: int) -> Target:
    def target(data: bytes) -> None:
        conn = _connection(role, state)
        for piece in _chunks(data):  # the contract: never raises, closes with a reason instead
            conn.receive_data(piece)
            conn.data_to_send()

    return target


def messages(data: bytes) -> None:
    """Every message table: byte 0 picks the channel kind, byte 1 the type."""
    if len(data) < 2:
        return
    kind = KINDS[data[0] % len(KINDS)]
    types = sorted(MESSAGE_TYPES[kind])
    type_ = types[data[1] % len(types)] if data[1] < 0x80 else data[1]
    try:
        message = decode_message(kind, type_, data[2:])
    except ProtocolError:
        return
    code, payload = encode_message(message)  # what decodes must encode again...
    if decode_message(kind, code, payload) != message:  # ...to the same message
        raise AssertionError(f"{type(message).__name__} does not survive a round trip")


# -- clipboard and files: sessiond's filters and the agent's files channel ---------------------
class _NullRelay:
    def inject_to_client(self, channel: int, message: Any) -> None:
        pass

    def inject_to_agent(self, channel: int, message: Any) -> None:
        pass


class _NullLink:
    """The agent's link as FilesChannel sees it: sends are dropped, the queue is always short."""

    class conn:  # noqa: N801 - stands for the link's Connection attribute
        closed = False

        @staticmethod
        def send(channel: int, message: Any) -> None:
            pass

        @staticmethod
        def queued_bytes(channel: int) -> int:
            return 0

        @staticmethod
        def is_open(channel: int) -> bool:
            return channel == 8

        @staticmethod
        def open_channels() -> dict[int, Any]:
            return {8: None}

    def flush(self) -> None:
        pass


def transfers(data: bytes) -> None:
    """A stream of clipboard/files frames (byte: kind+direction, byte: type, byte: length, payload)
    through sessiond's filters, and the files messages into the agent's FilesChannel."""
    from sessiond.agent.clipboard_policy import ClipboardPolicy, FilePolicy  # noqa: PLC0415
    from sessiond.agent.files import IncomingTransfers  # noqa: PLC0415
    from sessiond.agent.files_channel import FilesChannel  # noqa: PLC0415
    from sessiond.relay import relayed  # noqa: PLC0415
    from sessiond.transfer_filter import ClipboardFilter, FilesFilter  # noqa: PLC0415

    def audit(event: str, detail: str) -> None:
        pass

    clip = ClipboardFilter(_NullRelay(), lambda: ClipboardPolicy(max_text_bytes=100), "u", audit)
    files = FilesFilter(_NullRelay(), lambda: FilePolicy(max_file_bytes=1000), "u", audit)
    with tempfile.TemporaryDirectory() as home:
        channel = FilesChannel(IncomingTransfers(home, FilePolicy(max_file_bytes=1000)), lambda text: None,
                               lambda f: None)  # fmt: skip
        channel.opened(_NullLink(), 8)  # type: ignore[arg-type]
        at = 0
        while at + 3 <= len(data):
            head, type_, length = data[at], data[at + 1], data[at + 2]
            payload = data[at + 3 : at + 3 + length]
            at += 3 + length
            kind = ChannelKind.CLIPBOARD if head & 1 else ChannelKind.FILES
            message = None
            if not relayed(kind, type_):
                try:
                    message = decode_message(kind, type_, payload)
                except ProtocolError:
                    continue
            f = clip if kind is ChannelKind.CLIPBOARD else files
            hook = f.from_client if head & 2 else f.from_agent
            if not isinstance(hook(int(kind), type_, payload, message), bool):
                raise AssertionError("a filter answered something else than True or False")
            if kind is ChannelKind.FILES and message is None and relayed(kind, type_):
                try:
                    message = decode_message(kind, type_, payload)
                except ProtocolError:
                    continue
            if kind is ChannelKind.FILES and message is not None and head & 2:
                channel.message(message)
        channel.close()
        clip.channel_closed(6)
        files.channel_closed(8)


# -- USB/IP -------------------------------------------------------------------------------
def usb_codecs(data: bytes) -> None:
    if not data:
        return
    pdu = data[1:]
    parsers = (usb.parse_op_common, usb.command_length, usb.parse_command, usb.parse_return,
               lambda b: usb.return_length(b, data[0] & 1), lambda b: usb.check_busid(b.decode("latin-1")))
    for parse in parsers:
        try:
            parse(pdu)
        except ValueError:
            pass


class _UsbService:
    """What UsbipPeer needs of the agent's UsbService: one exported device."""

    def __init__(self, device: Any) -> None:
        self.devices = {device.busid: device} if device is not None else {}
        self.sent: list[Any] = []

    def log(self, text: str) -> None:
        pass

    def register(self, peer: Any) -> int:
        return 7

    def send(self, message: Any) -> bool:
        self.sent.append(message)
        return True

    def fail(self, text: str) -> None:
        pass

    def unregister(self, peer: Any) -> None:
        pass

    def congested(self) -> bool:
        return False


_DEVICE = usb.UsbDevice("1-1", 0x1234, 0x5678, (usb.UsbInterface(8, 6, 80),))


def usb_peer(data: bytes) -> None:
    """The agent's USB/IP peer (input from a process in the session); byte 0: attached or not."""
    peer = UsbipPeer(_UsbService(_DEVICE))  # type: ignore[arg-type]
    peer.connection_made(RecordingTransport())
    if data[:1] == b"\1":
        peer.state, peer.conn, peer.busid, peer.devid = "attached", 7, "1-1", 0x10001
    for piece in _chunks(data):
        peer.data_received(piece)


# -- client side: framebuffer and sound -----------------------------------------------------
def framebuffer(data: bytes) -> None:
    """A REGION from a (malicious) server, every encoding: bytes 0-8 place it."""
    if len(data) < 9:
        return
    fb = Framebuffer(64 + data[0], 48 + data[1])
    x, y, w, h = data[2] % 80, data[3] % 80, 1 + data[4] % 96, 1 + data[5] % 96
    encoding = (Encoding.RAW_LZ4, Encoding.PNG, Encoding.JPEG, Encoding.FILL)[data[6] % 4] if data[7] else data[7]
    try:
        fb.apply(Region(x=x, y=y, w=w, h=h, encoding=encoding, data=data[8:]))  # type: ignore[arg-type]
    except ValueError:  # RegionError, and Region's own checks
        pass


_video = VideoDecoders()  # kept across inputs: a stream's state is what a later unit hits


def video(data: bytes) -> None:
    """H264 REGION payloads from a (malicious) server (docs/protocol.md 7a): bytes
    0-1 size the region, the rest is the payload (stream id, flags, access unit)."""
    if len(data) < 2:
        return
    try:
        _video.decode(data[2:], 16 + data[0] % 96, 16 + data[1] % 64)
    except VideoDecodeError:
        pass


_opus: dict[int, OpusDecoder] = {}


def opus_mic(data: bytes) -> None:
    """MIC_DATA from a client (and AUDIO_DATA to one): the message, then its Opus packet."""
    try:
        message = decode_message(ChannelKind.AUDIO_IN, 0x02, data)
    except ProtocolError:
        return
    channels = 1 + (data[:1] == b"\1")
    decoder = _opus.setdefault(channels, OpusDecoder(channels=channels))
    try:
        decoder.decode(message.packet)  # type: ignore[attr-defined]
    except ValueError:
        pass


# -- sandbox spec and apps -------------------------------------------------------------------
def sandbox_spec(data: bytes) -> None:
    try:
        from_json(data)
    except ValueError:  # SpecError
        pass


_catalog = Catalog([], terminal_argv=["xterm", "-e"])
_desktop_dir = tempfile.mkdtemp(prefix="fuzz-desktop-")


def desktop_exec(data: bytes) -> None:
    """A .desktop file (from a directory an admin or a package wrote) and its Exec line."""
    text = data.decode("utf-8", "replace")
    for parse in (parse_exec, unescape_string, split_list, parse_boolean):
        try:
            parse(text)
        except ValueError:  # ExecError and friends
            pass
    try:
        expand_exec(text, files=["/tmp/a file"], urls=["https://example.invalid/x"], name="App",
                    desktop_file="/x.desktop")  # fmt: skip
    except (ValueError, TypeError):
        pass
    path = os.path.join(_desktop_dir, "fuzz.desktop")
    with open(path, "wb") as handle:
        handle.write(b"[Desktop Entry]\n" + data if data[:1] != b"[" else data)
    try:
        _catalog._load("fuzz", path)  # noqa: SLF001 - the parser of one entry
    except EntryRejectedError:
        pass


# -- sessiond's HTTP side: the WebSocket path and the admin API -------------------------------
class _Handler(FrameProtocol):
    """A server-role FrameProtocol: the frame decoder a gateway ClientHandler runs."""

    def event_received(self, event: object) -> None:
        pass


class _Channel:
    """The upgraded HTTPChannel: its dataReceived is the wire protocol's (as Twisted patches it)."""

    def __init__(self, transport: StringTransport) -> None:
        self.transport = transport
        self.dataReceived: Any = None

    def setTimeout(self, value: Any) -> None:  # noqa: N802
        pass


class _Request:
    def __init__(self, channel: _Channel) -> None:
        self.channel = channel


def websocket(data: bytes) -> None:
    """Bytes from a browser after the upgrade: raw, or (byte 0 odd) as masked frames built from DATA."""
    transport = StringTransport()
    transport.registerProducer(_Handler(), True)  # the HTTP channel that carried the upgrade
    channel = _Channel(transport)
    bridge = web_socket.WebSocketBridge(_Handler(), _Request(channel))  # type: ignore[arg-type]
    wire: Any = _WebSocketWireProtocol(WsConnection(ConnectionType.SERVER), serverBootstrap, bridge)
    channel.dataReceived = wire.dataReceived  # what HTTPChannel._protocolUpgradeForWebsockets does
    wire.makeConnection(transport)
    bridge.negotiationFinished()
    stream = data[1:]
    if data[:1] and data[0] & 1:
        built, at = bytearray(), 0
        while at + 2 <= len(stream):  # first byte: FIN/opcode as given; length < 126; zero mask
            size = stream[at + 1] % 126
            built += bytes([stream[at], 0x80 | size]) + b"\0\0\0\0" + stream[at + 2 : at + 2 + size]
            at += 2 + size
        stream = bytes(built)
    for piece in _chunks(b"\0" + stream):
        channel.dataReceived(piece)
    _raise_logged()


class _Ops:
    """AdminOps as the HTTP handlers see it."""

    def list(self, user: Any = None, state: Any = None, include_ended: bool = False) -> list[Any]:
        if state not in (None, "running"):
            raise admin.AdminError("unknown state")
        return [{"id": "s1", "user": user or "u", "state": "running"}]

    def show(self, session_id: str) -> dict[str, Any]:
        if session_id != "s1":
            raise admin.AdminError("no session with id", "unknown-id")
        return {"id": "s1"}

    def disconnect(self, session_id: str, actor: str) -> dict[str, Any]:
        return self.show(session_id)

    def logoff(self, session_id: str, actor: str) -> Any:
        from twisted.internet import defer  # noqa: PLC0415

        return defer.succeed(self.show(session_id))

    def audit(self, since: float = 0.0) -> list[Any]:
        return []

    def metrics_text(self) -> str:
        return "sessiond_up 1\n"


TOKEN = "fuzz-token"


class _TcpLikeTransport(StringTransport):
    """StringTransport, but unregistering no producer is a no-op (as on TCP and TLS)."""

    def unregisterProducer(self) -> None:  # noqa: N802
        if self.producer is not None:
            super().unregisterProducer()


def admin_http(data: bytes) -> None:
    """Raw HTTP on the TLS port's HTTP side: /admin, /metrics, anything, bodies."""
    site = admin_site.GuardedSite(admin.web_root(_Ops(), TOKEN), TOKEN)  # type: ignore[arg-type]
    channel = site.buildProtocol(None)
    transport = _TcpLikeTransport()
    channel.makeConnection(transport)
    for piece in _chunks(data):
        channel.dataReceived(piece)
    channel.connectionLost(None)
    _raise_logged()


def _target_seeds() -> dict[str, list[bytes]]:
    """Valid inputs of the targets whose formats the shared vectors do not cover."""
    import io  # noqa: PLC0415

    import lz4.block  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    from isolation.accounts import Account  # noqa: PLC0415
    from isolation.spec import SandboxSpec, to_json  # noqa: PLC0415

    account = Account(name="alice", uid=1500, gid=1500, groups=(27, 1500), home="/home/alice", shell="/bin/bash")
    spec = SandboxSpec(account=account, session_id="s-1_A", argv=("/usr/bin/agent", "--fd", "3"),
                       env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})  # fmt: skip
    tiles = []
    for fmt, encoding in (("PNG", 1), ("JPEG", 2)):
        out = io.BytesIO()
        Image.new("RGB", (8, 4), (200, 10, 10)).save(out, fmt)
        tiles.append(bytes([0, 0, 0, 0, 7, 3, encoding, 1]) + out.getvalue())
    raw = lz4.block.compress(b"\x10" * (8 * 4 * 3), store_size=True)
    tiles.append(bytes([0, 0, 0, 0, 7, 3, 0, 1]) + raw)
    tiles.append(bytes([0, 0, 5, 5, 7, 3, 3, 1]) + b"\x01\x02\x03")
    return {"sandbox_spec": [to_json(spec)], "framebuffer": tiles}


TARGETS: dict[str, Target] = {
    "frame_decoder": frame_decoder,
    "connection_server_fresh": _connection_target(Role.SERVER, 0),
    "connection_server_authed": _connection_target(Role.SERVER, 1),
    "connection_server_channels": _connection_target(Role.SERVER, 2),
    "connection_client_fresh": _connection_target(Role.CLIENT, 0),
    "connection_client_authed": _connection_target(Role.CLIENT, 1),
    "connection_client_channels": _connection_target(Role.CLIENT, 2),
    "messages": messages,
    "usb_codecs": usb_codecs,
    "transfers": transfers,
    "usb_peer": usb_peer,
    "framebuffer": framebuffer,
    "video": video,
    "opus_mic": opus_mic,
    "sandbox_spec": sandbox_spec,
    "desktop_exec": desktop_exec,
    "websocket": websocket,
    "admin_http": admin_http,
    "tile": tile,
}
