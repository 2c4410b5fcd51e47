# What sessiond's root process does per relayed display frame, measured in
# one process with no I/O: a REGION frame arrives from the agent on one
# sans-IO Connection and leaves on another towards the client, by whichever
# path the installed version of protocol/ offers:
#   - frame relay (FrameReceived + send_raw): the payload is handed over raw;
#   - the old path: decode into a Region object, send(message), and re-encode
#     once more for the credit (frame_cost), as sessions.py did before.
# The bytes leave as the transport receives them, joined once (what TLS's
# writeSequence does before encrypting), so both paths pay that copy.
# It prints one JSON line: CPU milliseconds per relayed MiB and the peak of
# extra memory sessiond's part holds while one ~1 MiB frame passes through
# (tracemalloc, from the bytes arriving to the bytes handed to the transport),
# which is what the copies cost. Run with the Python of the prefix to measure:
#   PREFIX/venv/bin/python bench/relay_micro.py
"""Micro-benchmark of the root relay path for display frames (one JSON line)."""

from __future__ import annotations

import json
import os
import sys
import time
import tracemalloc

from protocol.base import ChannelKind, Encoding
from protocol.connection import Connection, Role
from protocol.control_session import AuthResult
from protocol.frames import encode_frame
from protocol.connection import frame_cost
from protocol.media import Region

# Frames relayed per measurement, and their payload (PNG bytes are opaque here).
FRAMES = 400
PAYLOAD_BYTES = 1024 * 1024 - 64
DISPLAY = int(ChannelKind.DISPLAY)
try:  # the frame relay API, where this version has it
    from protocol.connection import FrameReceived  # type: ignore[attr-defined]

    RAW = True
except ImportError:
    RAW = False


def authenticated_pair(role_a: Role) -> tuple[Connection, Connection]:
    """Two connected, authenticated Connections (role_a and its peer) with a display channel."""
    kwargs = {"relay": lambda kind, type_: kind is not ChannelKind.CONTROL} if RAW else {}
    a = Connection(role_a, **kwargs)  # type: ignore[arg-type]
    b = Connection(Role.SERVER if role_a is Role.CLIENT else Role.CLIENT, **kwargs)  # type: ignore[arg-type]
    client, server = (a, b) if role_a is Role.CLIENT else (b, a)
    client.hello((), "bench")
    server.receive_data(client.data_to_send())
    server.hello((), "bench")
    server.send(0, AuthResult(ok=True, session="bench"))
    client.receive_data(server.data_to_send())
    return a, b


def main() -> int:
    # agent_side: sessiond's link (client role) <- the agent (server role).
    link, agent = authenticated_pair(Role.CLIENT)
    # client_side: sessiond's gateway (server role) -> the thin client (client role).
    gateway, thin = authenticated_pair(Role.SERVER)
    link.open_channel(DISPLAY, ChannelKind.DISPLAY)
    agent.receive_data(link.data_to_send())
    link.receive_data(agent.data_to_send())
    thin.open_channel(DISPLAY, ChannelKind.DISPLAY)
    gateway.receive_data(thin.data_to_send())
    thin.receive_data(gateway.data_to_send())
    region = Region(0, 0, 512, 512, Encoding.PNG, os.urandom(PAYLOAD_BYTES))
    wire = encode_frame(DISPLAY, Region.TYPE, region.encode())

    spent = [0.0]
    peak = [0]

    def relay_one(trace: bool = False) -> None:
        """One frame through sessiond's two Connections; only sessiond's calls are
        timed, and with TRACE only they are traced for their peak memory."""
        if trace:
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
        began = time.process_time()
        for event in link.receive_data(wire):
            if RAW and isinstance(event, FrameReceived):
                gateway.send_raw(event.channel, event.type, event.payload)
                link.consumed(event.channel, event.wire_size)
            elif not RAW and hasattr(event, "message"):
                gateway.send(event.channel, event.message)  # type: ignore[attr-defined]
                link.consumed(event.channel, frame_cost(event.message))  # type: ignore[attr-defined]
        if hasattr(gateway, "data_to_send_pieces"):
            # What the transport gets (writeSequence); TLS joins the pieces once to encrypt them.
            out = b"".join(gateway.data_to_send_pieces())
        else:
            out = gateway.data_to_send()
        back = link.data_to_send()
        spent[0] += time.process_time() - began
        if trace:
            peak[0] = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
        thin.receive_data(out)  # the client's side, untimed: it returns the credit
        thin.consumed(DISPLAY, len(out))
        gateway.receive_data(thin.data_to_send())
        agent.receive_data(back)

    relay_one()  # warm up
    spent[0] = 0.0
    for _ in range(FRAMES):
        relay_one()
    relay_one(trace=True)
    mib = FRAMES * len(wire) / (1 << 20)
    print(json.dumps({"raw_relay": RAW, "cpu_ms_per_mib": 1000 * spent[0] / mib,
                      "peak_extra_bytes_per_frame": peak[0], "frame_bytes": len(wire)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
