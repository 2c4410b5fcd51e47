# A frame's display messages held until its FRAME_END, for a client that
# paints straight from the framebuffer memory (the native viewer's FrameGate,
# client/viewer/gate.py): the memory then changes only while one complete
# frame is being applied, for as long as the CPU needs to decode it, not for
# as long as the link needs to carry it. On a slow link (a full-screen JPEG
# or an H.264 key frame at a few Mbit/s) a frame's regions arrive over
# hundreds of ms; applied as they came, they kept the GUI out of the memory
# all that time (a paint waited, then showed grey), and a server that never
# sent FRAME_END kept it out for good.
#
# Why the messages and not their decoded pixels: a COPY region reads the
# framebuffer as every earlier region left it, GLYPHS regions fill the
# channel's glyph cache and H264 regions feed a decoder: decoding them in
# their order at FRAME_END is exactly what applying them on arrival did.
# A key's echo (a region and its FRAME_END, or a TILE) arrives in one read,
# so it is applied at the same moment as before.
#
# Bound: held messages cost at most MAX_HELD_FRAME_BYTES (frame_cost, the
# bytes on the wire), checked before a message is held. Credit is returned as
# messages are held (the display channel's window cannot bound a frame: a
# frame larger than the window would wait for credit that comes only at its
# FRAME_END), so this is what bounds the memory a server's frame takes here.
"""FrameHold: a frame's display messages kept until its FRAME_END, bounded in bytes."""

from __future__ import annotations

from typing import Final

from protocol.limits import MAX_QUEUED_PER_CHANNEL
from protocol.messages import Message

# Bytes (frame_cost) of one frame's messages a client holds before its FRAME_END.
# A sessiond server queues a frame's messages whole before it writes them, and a
# channel's send queue refuses more than MAX_QUEUED_PER_CHANNEL: no frame of it
# is larger, so only a server that breaks that bound (or never ends a frame) crosses it.
MAX_HELD_FRAME_BYTES: Final = MAX_QUEUED_PER_CHANNEL


class FrameTooLarge(Exception):
    """Holding a message would take the frame past MAX_HELD_FRAME_BYTES."""


class FrameHold:
    """The display messages received since the last FRAME_END, in order."""

    def __init__(self, max_bytes: int = MAX_HELD_FRAME_BYTES) -> None:
        self.max_bytes = max_bytes
        self.messages: list[Message] = []
        self.held_bytes = 0

    def reserve(self, cost: int) -> None:
        """Count COST more bytes for the frame being held (before its messages are kept);
        FrameTooLarge (nothing counted) if that takes it past max_bytes."""
        if self.held_bytes + cost > self.max_bytes:
            raise FrameTooLarge(f"the server sent more than {self.max_bytes} bytes of one frame before its FRAME_END "
                                "(a server that breaks the protocol's bound: report it to its administrator)")
        self.held_bytes += cost

    def hold(self, message: Message) -> None:
        """Keep MESSAGE (its bytes reserved already) until the frame ends."""
        self.messages.append(message)

    def release(self) -> list[Message]:
        """The frame's messages, oldest first; the hold is empty again."""
        messages, self.messages, self.held_bytes = self.messages, [], 0
        return messages

    def clear(self) -> None:
        """Drop what is held (a new display channel: the last one's frame will never end)."""
        self.release()
