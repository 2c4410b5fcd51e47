# Server-side policy and audit on a session's clipboard and files channels.
#
# sessiond decodes only the metadata messages of these channels (offers,
# requests, begins, ends, cancels): CLIP_DATA and FILE_DATA are relayed raw
# and only their leading id and their length are read here, to count bytes
# against the size the transfer announced. A transfer in a direction, of a
# type or of a size the policy forbids is stopped here, before the other
# side sees it: the offering side gets CLIP_ERROR / FILE_CANCEL REFUSED, its
# data frames are dropped (the relay returns their credit).
#
# Why here and not (only) in the agent: the agent runs as the user, who can
# ptrace it; the administrator's policy is enforced by the process the user
# cannot touch. The agent applies the same policy again (AgentSettings).
#
# Audit: one entry per transfer that moved bytes (who, direction, selection
# or name, type, size; never content), one per refusal and per abort.
"""ClipboardFilter and FilesFilter: RelayFilters with policy and audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

from twisted.logger import Logger

from protocol.messages import Message
from protocol.transfer import (
    MIME_NAMES,
    ClipBegin,
    ClipData,
    ClipEnd,
    ClipError,
    ClipOffer,
    ClipRequest,
    FileAccept,
    FileCancel,
    FileData,
    FileDone,
    FileEnd,
    FileOffer,
    TransferError,
    data_id,
    mime_mask,
)
from sessiond.agent.clipboard_policy import ClipboardPolicy, FilePolicy

log = Logger()

# Transfers tracked per direction and channel; more at once are refused.
MAX_TRACKED: Final = 64
_CLIP_DATA_HEAD: Final = 4  # serial
_FILE_DATA_HEAD: Final = 12  # id, offset
TO_CLIENT: Final = "to_client"
FROM_CLIENT: Final = "from_client"


class Injector(Protocol):
    """Where a filter sends messages of its own (the session's ChannelRelay)."""

    def inject_to_client(self, channel: int, message: Message) -> None: ...

    def inject_to_agent(self, channel: int, message: Message) -> None: ...


class _Transfer:
    """One transfer the filter let start: what it announced and how much passed."""

    def __init__(self, what: str, kind: str, size: int) -> None:
        self.what = what  # selection, or file name
        self.kind = kind  # MIME type, or "file"
        self.size = size
        self.passed = 0


class _Tracker:
    """Shared bookkeeping of both filters: transfers by (channel, direction, id) and the audit."""

    def __init__(self, relay: Injector, user: str, audit: Callable[[str, str], None]) -> None:
        self.relay = relay
        self.user = user
        self.audit_to = audit
        self.live: dict[tuple[int, str, int], _Transfer] = {}

    def start(self, key: tuple[int, str, int], transfer: _Transfer) -> bool:
        self.live.pop(key, None)
        if sum(1 for k in self.live if k[:2] == key[:2]) >= MAX_TRACKED:
            return False
        self.live[key] = transfer
        return True

    def count(self, key: tuple[int, str, int] | None, payload_len: int, head: int) -> bool:
        """A raw data frame: True if it belongs to a live transfer and stays within its size."""
        transfer = self.live.get(key) if key is not None else None
        if transfer is None or payload_len < head:
            return False
        if transfer.passed + payload_len - head > transfer.size:
            self.live.pop(key, None)  # type: ignore[arg-type]
            self.audit(f"{'clipboard' if transfer.kind != 'file' else 'file'}_refused",
                       f"direction={key[1]} {transfer.what} more bytes than announced ({transfer.size})")  # type: ignore[index]
            return False
        transfer.passed += payload_len - head
        return True

    def audit(self, event: str, detail: str) -> None:
        log.info("{user}: {event}: {detail}", user=self.user, event=event, detail=detail)
        self.audit_to(event, detail)

    def channel_closed(self, channel: int, aborted_event: str) -> None:
        for key, transfer in list(self.live.items()):
            if key[0] == channel:
                del self.live[key]
                if transfer.passed:
                    self.audit(aborted_event, f"direction={key[1]} name={transfer.what} bytes={transfer.passed} "
                                              f"of={transfer.size} reason=closed")  # fmt: skip


class ClipboardFilter:
    """The policy checkpoint on one session's clipboard channels (a RelayFilter)."""

    def __init__(self, relay: Injector, policy: Callable[[], ClipboardPolicy], user: str,
                 audit: Callable[[str, str], None]) -> None:  # fmt: skip
        self.policy = policy
        self.t = _Tracker(relay, user, audit)

    def _refuse(self, channel: int, serial: int, direction: str, selection: str, mime: str, why: str,
                to_client: bool) -> bool:  # fmt: skip
        self.t.audit("clipboard_refused", f"direction={direction} selection={selection} type={mime} rule={why}")
        error = ClipError(serial, TransferError.REFUSED, f"refused by the server's policy: {why}")
        if to_client:
            self.t.relay.inject_to_client(channel, error)
        else:
            self.t.relay.inject_to_agent(channel, error)
        return False

    # -- RelayFilter ---------------------------------------------------------------
    def from_client(self, channel: int, type_: int, payload: bytes, message: Message | None) -> bool:
        policy = self.policy()
        if message is None:
            return type_ == ClipData.TYPE and self.t.count((channel, FROM_CLIENT, data_id(payload) or 0), len(payload),
                                                           _CLIP_DATA_HEAD)  # fmt: skip
        if isinstance(message, ClipOffer) and not policy.selection_from_client(message.selection.name):
            return self._refuse(channel, message.serial, FROM_CLIENT, message.selection.name, "-",
                                f"{FROM_CLIENT}=false", True)  # fmt: skip
        if isinstance(message, ClipRequest):
            mime = MIME_NAMES[message.mime]
            if not policy.selection_to_client(message.selection.name) or policy.max_bytes(mime) == 0:
                selection = message.selection.name
                return self._refuse(channel, message.serial, TO_CLIENT, selection, mime, "not allowed", True)
        if isinstance(message, ClipBegin):
            mime, selection = MIME_NAMES[message.mime], message.selection.name
            if not policy.selection_from_client(selection) or policy.max_bytes(mime) == 0:
                return self._refuse(channel, message.serial, FROM_CLIENT, selection, mime, "not allowed", True)
            if message.size > policy.max_bytes(mime):
                return self._refuse(channel, message.serial, FROM_CLIENT, selection, mime,
                                    f"size {message.size} > {policy.max_bytes(mime)}", True)  # fmt: skip
            if not self.t.start((channel, FROM_CLIENT, message.serial), _Transfer(selection, mime, message.size)):
                return self._refuse(channel, message.serial, FROM_CLIENT, selection, mime, "too many transfers", True)
        if isinstance(message, ClipEnd):
            return self._ended(channel, FROM_CLIENT, message.serial, "clipboard_from_client")
        return True

    def from_agent(self, channel: int, type_: int, payload: bytes, message: Message | None) -> bool:
        policy = self.policy()
        if message is None:
            return type_ == ClipData.TYPE and self.t.count((channel, TO_CLIENT, data_id(payload) or 0), len(payload),
                                                           _CLIP_DATA_HEAD)  # fmt: skip
        if isinstance(message, ClipOffer):
            if not policy.selection_to_client(message.selection.name):
                return False  # nothing of it reaches the client
            allowed = mime_mask([m for m in message.mime_list if policy.max_bytes(MIME_NAMES[m]) > 0])
            if not allowed:
                return False
            if allowed != message.mimes:
                self.t.relay.inject_to_client(channel, ClipOffer(message.selection, message.serial, allowed))
                return False
        if isinstance(message, ClipBegin):
            mime, selection = MIME_NAMES[message.mime], message.selection.name
            cap = policy.max_bytes(mime) if policy.selection_to_client(selection) else 0
            if cap == 0 or message.size > cap:
                why = "not allowed" if cap == 0 else f"size {message.size} > {cap}"
                self._refuse(channel, message.serial, TO_CLIENT, selection, mime, why, True)
                return False
            if not self.t.start((channel, TO_CLIENT, message.serial), _Transfer(selection, mime, message.size)):
                return self._refuse(channel, message.serial, TO_CLIENT, selection, mime, "too many transfers", True)
        if isinstance(message, ClipEnd):
            return self._ended(channel, TO_CLIENT, message.serial, "clipboard_to_client")
        return True

    def _ended(self, channel: int, direction: str, serial: int, event: str) -> bool:
        transfer = self.t.live.pop((channel, direction, serial), None)
        if transfer is None:
            return False  # its BEGIN was refused
        if transfer.passed != transfer.size:
            self.t.audit("clipboard_refused", f"direction={direction} selection={transfer.what} type={transfer.kind} "
                                              f"rule=short ({transfer.passed} of {transfer.size} bytes)")  # fmt: skip
            return True  # the receiver discards it too
        self.t.audit(event, f"selection={transfer.what} type={transfer.kind} bytes={transfer.size}")
        return True

    def channel_closed(self, channel: int) -> None:
        self.t.channel_closed(channel, "clipboard_aborted")


class FilesFilter:
    """The policy checkpoint on one session's files channels (a RelayFilter)."""

    def __init__(self, relay: Injector, policy: Callable[[], FilePolicy], user: str,
                 audit: Callable[[str, str], None]) -> None:  # fmt: skip
        self.policy = policy
        self.t = _Tracker(relay, user, audit)

    def _offered(self, channel: int, direction: str, offer: FileOffer, allowed: bool, cap: int) -> bool:
        why = "" if allowed else f"{direction}=false"
        if not why and offer.size > cap:
            why = f"size {offer.size} > max_file_bytes {cap}"
        if not why and not self.t.start((channel, direction, offer.id), _Transfer(offer.name, "file", offer.size)):
            why = "too many transfers"
        if not why:
            return True
        self.t.audit("file_refused", f"direction={direction} name={offer.name!r} bytes={offer.size} rule={why}")
        code = TransferError.TOO_LARGE if why.startswith("size") else TransferError.REFUSED
        cancel = FileCancel(offer.id, code, f"refused by the server's policy: {why}"[:200])
        if direction == FROM_CLIENT:
            self.t.relay.inject_to_client(channel, cancel)
        else:
            self.t.relay.inject_to_agent(channel, cancel)  # the agent closes the file and forgets it
        return False

    def _done(self, channel: int, direction: str, transfer_id: int, event: str, name: str) -> bool:
        transfer = self.t.live.pop((channel, direction, transfer_id), None)
        if transfer is None:
            return False
        self.t.audit(event, f"name={transfer.what!r} saved_as={name!r} bytes={transfer.passed}")
        return True

    def _cancelled(self, channel: int, transfer_id: int, message: FileCancel) -> None:
        for direction in (FROM_CLIENT, TO_CLIENT):
            transfer = self.t.live.pop((channel, direction, transfer_id), None)
            if transfer is not None:
                self.t.audit("file_aborted", f"direction={direction} name={transfer.what!r} bytes={transfer.passed} "
                                             f"of={transfer.size} code={message.code.name}")  # fmt: skip

    # -- RelayFilter ---------------------------------------------------------------
    def from_client(self, channel: int, type_: int, payload: bytes, message: Message | None) -> bool:
        policy = self.policy()
        if message is None:
            return type_ == FileData.TYPE and self.t.count((channel, FROM_CLIENT, data_id(payload) or 0), len(payload),
                                                           _FILE_DATA_HEAD)  # fmt: skip
        if isinstance(message, FileOffer):
            return self._offered(channel, FROM_CLIENT, message, policy.from_client, policy.max_file_bytes)
        if isinstance(message, (FileAccept, FileEnd)):
            direction = TO_CLIENT if isinstance(message, FileAccept) else FROM_CLIENT
            return (channel, direction, message.id) in self.t.live
        if isinstance(message, FileDone):
            return self._done(channel, TO_CLIENT, message.id, "file_to_client", message.name)
        if isinstance(message, FileCancel):
            self._cancelled(channel, message.id, message)
        return True

    def from_agent(self, channel: int, type_: int, payload: bytes, message: Message | None) -> bool:
        policy = self.policy()
        if message is None:
            return type_ == FileData.TYPE and self.t.count((channel, TO_CLIENT, data_id(payload) or 0), len(payload),
                                                           _FILE_DATA_HEAD)  # fmt: skip
        if isinstance(message, FileOffer):
            return self._offered(channel, TO_CLIENT, message, policy.to_client, policy.max_file_bytes)
        if isinstance(message, (FileAccept, FileEnd)):
            direction = FROM_CLIENT if isinstance(message, FileAccept) else TO_CLIENT
            return (channel, direction, message.id) in self.t.live
        if isinstance(message, FileDone):
            return self._done(channel, FROM_CLIENT, message.id, "file_from_client", message.name)
        if isinstance(message, FileCancel):
            self._cancelled(channel, message.id, message)
        return True

    def channel_closed(self, channel: int) -> None:
        self.t.channel_closed(channel, "file_aborted")
