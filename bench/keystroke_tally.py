# Where the bytes of one echoed keystroke go, message by message: what the
# bench client sends (KEY_TAP, FRAME_ACK, KEY_TAP_ACK, WINDOW_UPDATE) and
# what it receives on the display channel (REGION, FRAME_END, TILE ...),
# (credit returns are queued inside the Connection and show only on the wire),
# each with its frame size (8-byte header + payload), so the report can put
# the TLS records the proxy counted next to the frames inside them.
#
# Why a tally at the client and not a decrypting proxy: the client library
# already decodes every frame, and wrapping its send and receive paths
# costs nothing in what goes over the wire; TLS stays what it is.
"""MessageTally: frames sent and received by a SessionClient, by name and size."""

from __future__ import annotations

import statistics
from collections import Counter
from client.session import SessionClient
from protocol.connection import MessageReceived, frame_cost
from protocol.messages import Message

# Frame header bytes (u32 length, u16 channel, u8 type, u8 flags).
FRAME_HEADER = 8
# TLS 1.3 AEAD record overhead: 5-byte header, 1 inner content type, 16-byte tag.
TLS_RECORD_OVERHEAD = 22


class MessageTally:
    """Wraps a client's receive and send paths; take() returns what passed since the last take()."""

    def __init__(self, client: SessionClient) -> None:
        self.down: Counter[str] = Counter()
        self.up: Counter[str] = Counter()
        self.down_bytes: Counter[str] = Counter()
        self.up_bytes: Counter[str] = Counter()
        self.samples: list[tuple[Counter[str], Counter[str], Counter[str], Counter[str]]] = []
        event, send = client._event, client.conn.send

        def on_event(ev: object) -> None:
            if isinstance(ev, MessageReceived):
                self._count(self.down, self.down_bytes, ev.message)
            event(ev)

        def on_send(channel: int, message: Message) -> None:
            self._count(self.up, self.up_bytes, message)
            send(channel, message)

        client._event = on_event  # type: ignore[method-assign]
        client.conn.send = on_send  # type: ignore[method-assign]
        # Credit returns (WINDOW_UPDATE) are queued inside the Connection, not through
        # conn.send: they are the part of "on the wire" that no row names.

    @staticmethod
    def _count(names: Counter[str], sizes: Counter[str], message: Message) -> None:
        names[message.NAME] += 1
        sizes[message.NAME] += frame_cost(message)

    def take(self) -> None:
        """Close one keystroke's sample."""
        self.samples.append((self.down, self.down_bytes, self.up, self.up_bytes))
        self.down, self.down_bytes, self.up, self.up_bytes = Counter(), Counter(), Counter(), Counter()

    def table(self, records_down: list[int], records_up: list[int], tls_down: list[int],
              tls_up: list[int]) -> str:  # fmt: skip
        """Mean frames and bytes per keystroke by message name, and the TLS records around them."""
        n = max(len(self.samples), 1)
        lines = ["  per keystroke (means)       frames  frame bytes (8 B header each)"]
        for label, names_at, sizes_at in (("down", 0, 1), ("up", 2, 3)):
            names: Counter[str] = Counter()
            sizes: Counter[str] = Counter()
            for sample in self.samples:
                names.update(sample[names_at])
                sizes.update(sample[sizes_at])
            for name in sorted(names):
                lines.append(f"  {label:4} {name:22} {names[name] / n:6.2f}  {sizes[name] / n:6.1f} B")
            total = sum(sizes.values()) / n
            records = statistics.fmean(records_down if label == "down" else records_up) if self.samples else 0
            wire = statistics.fmean(tls_down if label == "down" else tls_up) if self.samples else 0
            lines.append(f"  {label:4} {'= frames':22} {'':6}  {total:6.1f} B; TLS records {records:.2f} "
                         f"x {TLS_RECORD_OVERHEAD} B = {records * TLS_RECORD_OVERHEAD:.1f} B; "
                         f"on the wire {wire:.1f} B")  # fmt: skip
        return "\n".join(lines)

