# The compact keystroke path of issue 15 end to end, with real components
# (sessiond, TLS, PAM, the sandboxed agent, Xvfb, xterm): letters typed
# through the client library go up as KEY_TAP_ACK (the held frame ack in
# the keystroke's own message), each echo comes down as one TILE, and the
# client's framebuffer -- built only from what its one connection received,
# never refreshed -- ends byte-identical to a capture taken inside the
# session, in desktop mode and in seamless mode (windows composed). The
# browser's side of the same path: test_web_typed_tiles.py.
"""TILE and KEY_TAP_ACK in a real session: the typed text reaches the client pixel-exact."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from svtest import VENV_BIN, Server, start_sessiond, stop_sessiond
from test_end_to_end import assert_png_is_the_session

pytestmark = [pytest.mark.integration, pytest.mark.root]

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keystroke_client.py")
TEXT = "typed"


@pytest.fixture(scope="module", params=["desktop", "seamless"])
def mode_server(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:  # fmt: skip
    """sessiond in desktop mode (one framebuffer) and in seamless mode (a buffer per window)."""
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond")), session=f"mode = {request.param}\n")
    yield server, request.param
    stop_sessiond(server)


def test_typed_letters_arrive_as_tiles_and_the_client_is_pixel_exact(
    mode_server: tuple[Server, str], user_factory: Any, tmp_path: Any
) -> None:
    desktop_server, mode = mode_server
    seamless = mode == "seamless"
    user = user_factory("svt-tile-s" if seamless else "svt-tile-n")
    shot = str(tmp_path / "client.png")
    argv = [os.path.join(VENV_BIN, "python"), DRIVER, "--server", f"{desktop_server.host}:{desktop_server.port}",
            "--user", user.name, "--password-file", user.password_file, "--known-hosts",
            str(tmp_path / "known_hosts"), "--text", TEXT, "--save-screen", shot,
            *(["--seamless"] if seamless else [])]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the client (rc {done.returncode}): {done.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert "error" not in result, f"{result['error']}\n{desktop_server.log()[-3000:]}"
    assert result["echoed"] == len(TEXT), f"echoes seen: {result}"
    # Each echo is one small two-colour frame: the new path carried (nearly) all of them.
    assert result["tiles"] >= len(TEXT) - 1, f"too few TILE frames: {result}"
    assert result["key_tap_acks"] >= 1, f"no keystroke carried its ack: {result}"

    assert_png_is_the_session(user.name, shot, "after typing")
