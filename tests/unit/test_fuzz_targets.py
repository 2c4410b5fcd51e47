# Every fuzz target of tests/fuzz/targets.py runs briefly under atheris, each
# in its own process (libFuzzer owns the process and exits it): a crash, that
# is any exception a decoder does not document for bad input, fails the test
# and leaves the crashing input in the test's tmp directory. The budget keeps
# the whole set under a minute on the 2-core machine; bench/fuzz.py runs the
# same targets long.
"""Each atheris fuzz target runs a few thousand inputs without a crash."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

FUZZ_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz")
RUNNER = os.path.join(FUZZ_DIR, "run_target.py")
# Per target: at most this many inputs, or this many seconds (libFuzzer's -max_total_time).
RUNS = 2000
SECONDS = 1
NAMES = [
    "frame_decoder", "connection_server_fresh", "connection_server_authed", "connection_server_channels",
    "connection_client_fresh", "connection_client_authed", "connection_client_channels", "messages",
    "transfers", "usb_codecs", "usb_peer", "framebuffer", "opus_mic", "sandbox_spec", "desktop_exec", "websocket",
    "admin_http", "video", "tile",
]  # fmt: skip


def test_every_target_is_listed() -> None:
    sys.path.insert(0, FUZZ_DIR)
    try:
        import targets  # noqa: PLC0415
    finally:
        sys.path.remove(FUZZ_DIR)
    assert sorted(targets.TARGETS) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_target_survives(name: str, tmp_path: object) -> None:
    done = subprocess.run([sys.executable, RUNNER, name, "--runs", str(RUNS), "--seconds", str(SECONDS),
                           "--artifacts", str(tmp_path)], capture_output=True, text=True, timeout=120)  # fmt: skip
    tail = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("INFO: Instrumenting"))[-4000:]
    assert done.returncode == 0, f"{name} crashed (input saved in {tmp_path}):\n{tail}"
    assert "stat::number_of_executed_units" in done.stderr, tail
