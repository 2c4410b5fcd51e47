# Fixtures for integration tests that need a real X server.
#
# Each test gets its own Xvfb (function scope): X state such as the keyboard
# mapping, focus and stacking order must not leak from one test to the next,
# and a fresh Xvfb costs ~25 ms.
"""Integration fixtures: a private Xvfb per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessiond.agent.xserver import XServer, start_xvfb

XVFB_WIDTH = 640
XVFB_HEIGHT = 480


@pytest.fixture
def xvfb() -> Iterator[XServer]:
    """A running 640x480x24 Xvfb, stopped after the test."""
    server = start_xvfb(XVFB_WIDTH, XVFB_HEIGHT)
    try:
        yield server
    finally:
        server.stop()
