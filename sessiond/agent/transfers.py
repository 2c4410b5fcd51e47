# Clipboard and file transfer in the agent, behind one object that the
# agent's dispatch calls: it builds SelectionService, IncomingTransfers,
# OutboxWatcher and SendSocketServer from the policy sessiond sent
# (AgentSettings), and takes the link events of the clipboard and files
# channels (open, messages, credit, close).
#
# Why a module of its own: the agent's dispatch (link_events.py) stays a few hook lines
# (handles / writable / link_lost / stop), as UsbService does, so the
# seamless-windows work on main.py and this work do not collide.
#
# Error boundary: a message that cannot be handled costs that message's
# transfer; a peer that breaks the channel's rules loses the channel; the
# credit of every message goes back whether or not it was handled.
"""TransferService: the clipboard and files channels of the agent."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from protocol.errors import ReasonCode
from protocol.events import ChannelClosed, ChannelOpened, MessageReceived, WindowUpdated
from protocol.messages import ChannelKind
from sessiond.agent.audio_server import runtime_dir
from sessiond.agent.channel_sender import Link
from sessiond.agent.clipboard_channel import ClipboardChannel
from sessiond.agent.clipboard_policy import ClipboardPolicy, FilePolicy
from sessiond.agent.files import IncomingTransfers
from sessiond.agent.files_channel import FilesChannel
from sessiond.agent.outbox import OutboxWatcher, OutgoingFile
from sessiond.agent.selections import SelectionService
from sessiond.agent.send_socket import SendSocketServer, send_socket_path
from sessiond.agent.settings import AgentSettings


def clipboard_policy(args: AgentSettings) -> ClipboardPolicy:
    """The clipboard policy sessiond resolved for this session's user."""
    return ClipboardPolicy(
        to_client=args.clip_to_client,
        from_client=args.clip_from_client,
        primary_to_client=args.clip_primary_to_client,
        primary_from_client=args.clip_primary_from_client,
        max_text_bytes=args.clip_max_text_bytes,
        max_image_bytes=args.clip_max_image_bytes,
        allowed_mimes=frozenset(args.clip_types.split()),
    )


def file_policy(args: AgentSettings) -> FilePolicy:
    """The file-transfer policy sessiond resolved for this session's user."""
    return FilePolicy(to_client=args.files_to_client, from_client=args.files_from_client,
                      max_file_bytes=args.files_max_bytes, downloads_dir=args.files_downloads_dir,
                      outbox_dir=args.files_outbox_dir)  # fmt: skip


class TransferService:
    """The clipboard channel (kind 6) and the files channel (kind 8) of one agent."""

    def __init__(self, loop: asyncio.AbstractEventLoop, display: str, args: AgentSettings,
                 log: Callable[[str], None]) -> None:  # fmt: skip
        self.loop = loop
        self.log = log
        self.link: Link | None = None
        home = os.path.expanduser("~")
        clip_policy, files = clipboard_policy(args), file_policy(args)
        self.clipboard = ClipboardChannel(loop, None, log)
        self.selections: SelectionService | None = None
        if clip_policy.to_client or clip_policy.from_client:
            try:
                self.selections = SelectionService(loop, display, clip_policy, self.clipboard.changed, log)
            except Exception as exc:  # noqa: BLE001 - no clipboard is not a reason to lose the session
                log(f"clipboard: unavailable: {type(exc).__name__}: {exc}")
        self.clipboard.selections = self.selections
        self.outbox = OutboxWatcher(os.path.join(home, files.outbox_dir), files, self._offer, log)
        self.files = FilesChannel(IncomingTransfers(home, files), log, self._forget)
        self.send_server: SendSocketServer | None = None
        if files.to_client:
            self.outbox.start(loop)
            try:
                self.send_server = SendSocketServer(loop, send_socket_path(runtime_dir()), files, self._offer, log)
            except OSError as exc:
                log(f"files: sessiond-send is unavailable: {exc}")

    def _offer(self, file: OutgoingFile) -> str | None:
        return self.files.offer(file)

    def _forget(self, file: OutgoingFile) -> None:
        self.outbox.forget(file.name)

    # -- the agent's dispatch -------------------------------------------------------
    def handles(self, link: Link, event: object) -> bool:
        """Take the events of the clipboard and files channels; False for everything else."""
        if isinstance(event, ChannelOpened):
            if event.kind not in (ChannelKind.CLIPBOARD, ChannelKind.FILES) or not event.by_peer:
                return False
            opening = self.clipboard if event.kind is ChannelKind.CLIPBOARD else self.files
            if opening.channel:
                why = f"one {event.kind.name} channel per session"
                link.conn.close_channel(event.channel, ReasonCode.CHANNEL_IN_USE, why)
                link.flush()
                return True
            self.link = link
            opening.opened(link, event.channel)
            self.outbox.active = bool(self.files.channel)
            return True
        end = self._end_of(getattr(event, "channel", 0))
        if end is None or link is not self.link:
            return False
        if isinstance(event, MessageReceived):
            try:
                end.message(event.message)
            finally:
                link.conn.consumed(event.channel, event.wire_size)
                link.flush()
        elif isinstance(event, WindowUpdated):
            end.pump()
        elif isinstance(event, ChannelClosed):
            end.closed()
            self.outbox.active = bool(self.files.channel)
        else:
            return False
        return True

    def _end_of(self, channel: int) -> ClipboardChannel | FilesChannel | None:
        if channel and channel == self.clipboard.channel:
            return self.clipboard
        if channel and channel == self.files.channel:
            return self.files
        return None

    def writable(self) -> None:
        """The link's socket drained: paced transfers may go on."""
        self.clipboard.pump()
        self.files.pump()

    def link_lost(self) -> None:
        """No client any more: abort partial files, stop offering."""
        self.clipboard.closed()
        self.files.closed()
        self.outbox.active = False
        self.link = None

    def stop(self) -> None:
        """Agent shutdown."""
        self.link_lost()
        self.files.close()
        self.outbox.stop()
        if self.send_server is not None:
            self.send_server.close()
        if self.selections is not None:
            with contextlib.suppress(Exception):
                self.selections.close()
