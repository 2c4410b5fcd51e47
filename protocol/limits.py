# Every bound of the sessiond wire protocol, in one place.
#
# Why: a peer is untrusted input. Each limit below is checked before memory is
# allocated for what it bounds (like h2's frame_buffer.py), and each has a test
# that crosses it. The HTML5 client mirrors these values; docs/protocol.md has
# the same table.
"""Named limits of the sessiond wire protocol (version 1)."""

from __future__ import annotations

from typing import Final

# Wire-format version carried in HELLO; a peer speaking another one is refused.
PROTOCOL_VERSION: Final = 1

# u32 length + u16 channel + u8 type + u8 flags.
HEADER_SIZE: Final = 8

# Largest payload of any frame: one striped 1 MiB raw region compressed badly
# still fits, and a reader never buffers more than this for one frame.
MAX_FRAME_PAYLOAD: Final = 2 * 1024 * 1024

# Control messages are small JSON objects; an app list of a few hundred apps fits.
MAX_CONTROL_PAYLOAD: Final = 64 * 1024

# Other channels are bounded by their kind, from the frame header: the
# largest payload any message of that kind encodes to, derived from the
# message table (protocol.messages.max_payload; docs/protocol.md section 2).

# Channel ids above this are refused: bounds the per-connection channel table.
MAX_CHANNEL_ID: Final = 255

# Open (or opening/closing) channels per connection: bounds per-peer state.
MAX_OPEN_CHANNELS: Final = 16

# Initial credit for ordinary channels: input and control-like traffic is tiny.
DEFAULT_WINDOW: Final = 256 * 1024

# Initial credit for display channels: a few full frames in flight at 1080p.
DISPLAY_WINDOW: Final = 8 * 1024 * 1024

# A window must hold two of the largest frames its holder may send on the
# channel's kind: credit returns in batches of half the window (consumed()),
# so a smaller one could stall a sender for good. Opens below it are refused.
MIN_WINDOW_FRAMES: Final = 2

# Largest credit a window may hold (HTTP/2's bound): keeps counters in i32 range.
MAX_WINDOW: Final = 2**31 - 1

# Bytes a sender may queue on one channel before send() refuses: a peer that
# stops reading never makes us buffer without bound.
MAX_QUEUED_PER_CHANNEL: Final = 16 * 1024 * 1024

# Largest w*h*3 of one REGION (except FILL and COPY): bounds a receiver's decode buffer;
# senders stripe larger rectangles.
MAX_REGION_RAW_BYTES: Final = 1024 * 1024

# Video streams (REGION encoding H264) a server may keep open per display
# channel: each costs the client one H.264 decoder (tens of MiB at 1080p).
MAX_VIDEO_STREAMS: Final = 4

# Largest side of a video stream's rectangle (its coded size rounds w and h up
# to even): a 2560 x 1600 decoder picture is ~6 MiB of YUV, and a client
# allocates nothing for a stream before its REGION header passed this check.
MAX_VIDEO_SIDE: Final = 2560

# Largest w*h of a video stream's rectangle (2560 x 1600).
MAX_VIDEO_PIXELS: Final = 2560 * 1600

# Largest encoded H.264 access unit in one REGION: a 1080p keyframe at the
# default bitrate is ~100-300 kB; anything past this is refused unparsed.
MAX_VIDEO_PAYLOAD: Final = 1024 * 1024

# Largest integer a JSON control field may carry: JavaScript clients represent
# integers exactly only up to 2**53 - 1.
MAX_JSON_INT: Final = 2**53 - 1

# Characters of free text kept in a CLOSE/CHANNEL_CLOSE we generate: reason
# texts are for humans and logs, never bulk data.
MAX_REASON_TEXT: Final = 256

# Largest X keysym (X11 protocol: the top three bits of a KEYSYM are zero);
# 0 is NoSymbol, never a key. KEY refuses both at decode and construction.
MAX_KEYSYM: Final = 0x1FFF_FFFF

# TLS ALPN protocol id selecting the native protocol on the shared port.
ALPN: Final = "sessiond/1"
