# Seamless mode against desktop mode, in the same run, through the real
# stack (sessiond, TLS, the sandboxed agent, a real xterm, a protocol client
# in this process: tests/integration/seamless_client.py):
#
#   1. display bytes per echoed keystroke (50 keys typed into xterm, 80 ms
#      apart, every byte of the display channel counted, headers included);
#   2. frames per second while xterm scrolls without pause (`seq` flood) for
#      SCROLL_SECONDS, the window at its default size in both modes;
#   3. seamless only: bytes sent while the window is moved across the screen
#      in MOVE_STEPS requests (display channel: should be ~0, the client moves
#      its own copy; windows channel: one WINDOW_GEOMETRY per step).
#
# Two sessionds (one per mode), one user each. Nothing here gates anything;
# it prints a table with the seamless/desktop ratios. Run as root:
#   /opt/sessiond/venv/bin/python bench/bench_seamless.py
"""Seamless vs desktop: bytes per keystroke, scroll fps, cost of a window move."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.join(os.path.dirname(BENCH_DIR), "tests")
for path in (TESTS_DIR, os.path.join(TESTS_DIR, "integration")):
    if path not in sys.path:
        sys.path.insert(0, path)

from protocol.messages import ChannelKind, Key  # noqa: E402
from protocol.windows import WindowGeometry, WindowMinimize, WindowMoveResize  # noqa: E402
from seamless_client import SeamlessClient  # noqa: E402
from svtest import Server, TestUser, create_user, remove_user, start_sessiond, stop_sessiond  # noqa: E402

KEYS = 50
KEY_GAP = 0.08
SCROLL_SECONDS = 3.0
MOVE_STEPS = 20
INPUT, WINDOWS = int(ChannelKind.INPUT), int(ChannelKind.WINDOWS)
XK_RETURN = 0xFF0D


def type_text(client: SeamlessClient, text: str, gap: float = 0.0) -> None:
    from client.keysyms import keysym_for_char

    for char in text:
        keysym = XK_RETURN if char == "\n" else keysym_for_char(char)
        client.send(INPUT, Key(keysym, True))
        client.send(INPUT, Key(keysym, False))
        client.pump(gap)


def settle(client: SeamlessClient, quiet: float = 0.5, limit: float = 10.0) -> None:
    """Pump until no display bytes arrived for `quiet` seconds."""
    deadline = time.monotonic() + limit
    last, since = client.display_bytes, time.monotonic()
    while time.monotonic() < deadline:
        client.pump(0.05)
        if client.display_bytes != last:
            last, since = client.display_bytes, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def measure(server: Server, user: TestUser, seamless: bool) -> dict[str, float]:
    client = SeamlessClient(server, user, windows=seamless)
    try:
        client.launch("xterm", 1)
        if seamless:
            client.window_of("xterm")
        client.pump_until(lambda: client.frames > 0, 15)
        settle(client)
        type_text(client, "clear\n")
        settle(client)
        before = client.display_bytes
        type_text(client, "x" * KEYS, KEY_GAP)
        settle(client)
        per_key = (client.display_bytes - before) / KEYS
        type_text(client, "\nseq 1 100000000\n")
        client.pump(0.5)
        frames0, t0 = client.frames, time.monotonic()
        client.pump(SCROLL_SECONDS)
        fps = (client.frames - frames0) / (time.monotonic() - t0)
        result = {"bytes_per_key": per_key, "scroll_fps": fps}
        if seamless:
            # The xterm keeps scrolling: the move is measured on a second, idle app.
            client.send(WINDOWS, WindowMinimize(client.window_of("xterm").id))
            client.launch("xcalc", 2)
            calc = client.window_of("xcalc")
            settle(client, limit=3)
            display0, windows0 = client.display_bytes, client.windows_bytes
            x0 = calc.x
            for step in range(1, MOVE_STEPS + 1):
                x = x0 + step * 20
                client.send(WINDOWS, WindowMoveResize(calc.id, x, calc.y, calc.width, calc.height))
                client.wait(lambda m, x=x: isinstance(m, WindowGeometry) and m.window == calc.id and m.x == x)
            client.pump(0.5)
            result["move_display_bytes"] = float(client.display_bytes - display0)
            result["move_windows_bytes"] = float(client.windows_bytes - windows0)
        return result
    finally:
        client.close()


def main() -> int:
    results: dict[str, dict[str, float]] = {}
    base = tempfile.mkdtemp(prefix="bench-seamless-")
    os.chmod(base, 0o755)
    for mode in ("seamless", "desktop"):
        tmp = os.path.join(base, mode)
        os.makedirs(tmp)
        os.chmod(tmp, 0o755)
        name = f"svb-seam-{mode[:4]}"
        user = create_user(name, tmp)
        server = start_sessiond(tmp, session=f"mode = {mode}\n")
        try:
            results[mode] = measure(server, user, mode == "seamless")
        finally:
            stop_sessiond(server)
            remove_user(name)
    shutil.rmtree(base, ignore_errors=True)
    s, d = results["seamless"], results["desktop"]
    print(f"{'measure':<34}{'seamless':>12}{'desktop':>12}{'ratio':>8}")
    for key, label in (("bytes_per_key", "display bytes per echoed key"), ("scroll_fps", "xterm scroll frames/s")):
        print(f"{label:<34}{s[key]:>12.1f}{d[key]:>12.1f}{s[key] / d[key] if d[key] else float('nan'):>8.2f}")
    print(f"{'window moved ' + str(MOVE_STEPS) + ' steps: display B':<34}{s['move_display_bytes']:>12.0f}")
    print(f"{'window moved ' + str(MOVE_STEPS) + ' steps: windows B':<34}{s['move_windows_bytes']:>12.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
