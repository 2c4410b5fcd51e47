# Benchmark of the web client in headless Chromium (Debian's, driven by
# Playwright): page load to first frame, and frames per second while a window
# moves across the screen.
#
# Why these two: they are what a browser user feels first (how long a reload
# of the session tab takes to show the session again) and during work (how
# smoothly a moving window follows). Baselines come from the same run: the
# page's own load time (the floor any web client pays before it can speak
# the protocol) and the rate at which the app moves its window (the most
# frames there are to show). Run as root (it creates a user):
#   cd /work/main && make install && /opt/sessiond/venv/bin/python bench/bench_web.py
"""Web client bench: reload-to-first-frame (median of N) and moving-window fps."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
import spine_server  # noqa: E402  (also puts tests/ on sys.path)
from svtest import LISTEN_RE, VENV_BIN  # noqa: E402

SCREEN = (1920, 1080)
VIEWPORT = {"width": 1920, "height": 1120}
DEFAULT_RUNS = 10
DEFAULT_MOVE_SECONDS = 5.0
# The mover app's tick rate: at most this many distinct frames per second exist.
MOVER_FPS = 60
MOVER_APP_ID = "sessiond-bench-mover"
# Sessions have a private /tmp: the app goes where the session user can read it.
SHARED_APP_DIR = os.path.join(os.environ.get("SESSIOND_PREFIX", "/opt/sessiond"), "bench-web")
USER = "svb-web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-gpu", "--no-first-run", "--ignore-certificate-errors"]  # fmt: skip
STEP_TIMEOUT_MS = 30_000
START_TIMEOUT_SECONDS = 20.0

# An X client that moves a 400x300 patterned window across the screen at MOVER_FPS.
MOVER_APP = r'''
import sys, time
from Xlib import X, display
fps, width, height = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
d = display.Display()
s = d.screen()
w = s.root.create_window(0, 100, 400, 300, 0, s.root_depth, X.InputOutput, X.CopyFromParent,
                         background_pixel=s.white_pixel, event_mask=X.ExposureMask, override_redirect=True)
cm = s.default_colormap
gcs = [w.create_gc(foreground=cm.alloc_color(r, g, b).pixel) for r, g, b in
       ((65535, 0, 0), (0, 40000, 0), (0, 0, 65535), (65535, 40000, 0), (30000, 0, 30000))]
w.map()
x, dx, tick = 0, 12, 1.0 / fps
next_at = time.monotonic()
while True:
    while d.pending_events():
        d.next_event()
    for i in range(0, 300, 20):
        w.fill_rectangle(gcs[(i // 20) % len(gcs)], 0, i, 400, 10)
    x += dx
    if x <= 0 or x >= width - 400:
        dx = -dx
    w.configure(x=x, y=100 + (x // 8) % (height - 500))
    d.flush()
    next_at += tick
    time.sleep(max(0.0, next_at - time.monotonic()))
'''


def publish_mover(tmp: str) -> str:
    os.makedirs(SHARED_APP_DIR, mode=0o755, exist_ok=True)
    script = os.path.join(SHARED_APP_DIR, "mover.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(MOVER_APP)
    os.chmod(script, 0o644)
    apps = os.path.join(tmp, "apps")
    os.makedirs(apps, mode=0o755)
    python = os.path.join(VENV_BIN, "python")
    with open(os.path.join(apps, f"{MOVER_APP_ID}.desktop"), "w", encoding="utf-8") as handle:
        handle.write(f"[Desktop Entry]\nType=Application\nName=Bench mover\nComment=moves a window\n"
                     f"Exec={python} {script} {MOVER_FPS} {SCREEN[0]} {SCREEN[1]}\nTerminal=false\n")  # fmt: skip
    return apps


def start_sessiond(tmp: str, app_dirs: list[str]) -> tuple[subprocess.Popen[bytes], str, int, str]:
    config, runtime = spine_server.write_config(tmp, *SCREEN, app_dirs)
    log_path = os.path.join(tmp, "sessiond.log")
    log = open(log_path, "wb")
    process = subprocess.Popen([os.path.join(VENV_BIN, "sessiond"), "run", "--config", config], stdout=log,
                               stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            match = LISTEN_RE.search(handle.read())
        if match:
            return process, match.group(1), int(match.group(2)), runtime
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"sessiond did not start; see {log_path}")


def first_frame_ms(page: Any) -> tuple[float, float]:
    """(page load event, first frame drawn), ms since navigation start."""
    page.wait_for_selector("#screen[data-first-frame-ms]", timeout=STEP_TIMEOUT_MS)
    loaded = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    return float(loaded), float(page.evaluate("Number(document.getElementById('screen').dataset.firstFrameMs)"))


def run(args: argparse.Namespace) -> str:
    from playwright.sync_api import sync_playwright

    tmp = tempfile.mkdtemp(prefix="bench-web-")
    users = spine_server.BenchUsers(tmp)
    process = None
    runtime = ""
    try:
        user = users.create(USER)
        apps = publish_mover(tmp)
        process, host, port, runtime = start_sessiond(tmp, [os.path.join(spine_server.TESTS_DIR, "..", "conf", "apps"),
                                                            apps])  # fmt: skip
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"https://{host}:{port}/web/")
            page.fill("#user", user.name)
            page.fill("#password", user.password)
            page.click("#login-button")
            page.locator(f'#apps button[data-app="{MOVER_APP_ID}"]').click(timeout=STEP_TIMEOUT_MS)
            page.wait_for_selector("#screen[data-first-frame-ms]", timeout=STEP_TIMEOUT_MS)
            page.wait_for_timeout(1000)  # the mover is up and moving
            loads, firsts = [], []
            for _ in range(args.runs):
                page.reload()  # sessionStorage keeps the resume token and the view
                loaded, first = first_frame_ms(page)
                loads.append(loaded)
                firsts.append(first)
            if args.screenshot:
                page.screenshot(path=args.screenshot)
            start_frames = int(page.evaluate("Number(document.getElementById('screen').dataset.frames)"))
            started = time.monotonic()
            page.wait_for_timeout(args.move_seconds * 1000)
            frames = int(page.evaluate("Number(document.getElementById('screen').dataset.frames)")) - start_frames
            elapsed = time.monotonic() - started
            browser.close()
        fps = frames / elapsed
        if frames == 0:
            with open(os.path.join(tmp, "sessiond.log"), encoding="utf-8", errors="replace") as handle:
                print("no frames while the window moved; sessiond log:\n" + handle.read()[-3000:], file=sys.stderr)
        load_med, first_med = statistics.median(loads), statistics.median(firsts)
        lines = [
            f"bench_web  {time.strftime('%Y-%m-%d %H:%M')}  nproc={os.cpu_count()}  kernel={platform.release()}  "
            f"chromium={subprocess.run([CHROMIUM, '--version'], capture_output=True, text=True).stdout.strip()}",
            f"screen {SCREEN[0]}x{SCREEN[1]}, headless, loopback TLS 1.3 + WebSocket",
            "",
            f"{'measure':<44}{'ours':>12}{'baseline':>12}{'ratio':>8}",
            f"{'reload -> first frame, median of ' + str(args.runs) + ' (ms)':<44}{first_med:>12.0f}"
            f"{load_med:>12.0f}{first_med / load_med:>8.2f}   baseline: page load event",
            f"{'  spread min..max (ms)':<44}{min(firsts):>6.0f}..{max(firsts):<5.0f}",
            f"{'moving window: frames drawn per second':<44}{fps:>12.1f}{MOVER_FPS:>12}{fps / MOVER_FPS:>8.2f}"
            f"   baseline: the app's move rate",
        ]
        return "\n".join(lines)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=spine_server.STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
        for problem in users.remove_all():
            print(problem, file=sys.stderr)
        shutil.rmtree(SHARED_APP_DIR, ignore_errors=True)
        if runtime:
            shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="reloads measured (median)")
    parser.add_argument("--move-seconds", type=float, default=DEFAULT_MOVE_SECONDS)
    parser.add_argument("--screenshot", help="save the page (PNG) after the reloads")
    args = parser.parse_args(argv)
    print(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
