# A session's memory is mostly what its agent imports (issue 15: <= 45 MiB
# per session), and the zygote preloads exactly what sessiond.agent.main
# imports, so a module on that path is paid by every session, idle or not.
# PyAV (the H.264 encoder) maps ~18 MiB of codec libraries and dirties ~4 MiB
# relocating them: it must load with the first video stream, not before.
# This test imports the agent as the zygote does, in a fresh interpreter, and
# fails if a lazy module is loaded; then it encodes one frame and checks that
# the encoder does load it (so the lazy path is the one that works).
"""The idle agent does not import PyAV (the first H.264 encoder does), OpenSSL, or what later steps need."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from sessiond.agent import startup

# Module name prefixes the idle agent (after the zygote's preload) must not have loaded.
LAZY_MODULES = ("av", "media.swscale", "media.yuv_bands")
# Seconds the child interpreter may take (imports and one encode; a loaded machine is slow).
CHILD_TIMEOUT = 120

PROBE = """
import json, sys
from isolation import zygote
zygote.preload()
idle = sorted(sys.modules)
from PIL import Image
from sessiond.agent.h264 import H264Encoder
unit = H264Encoder(64, 48).encode(Image.new("RGBX", (64, 48), (200, 30, 90, 0)))
print(json.dumps({"idle": idle, "after": sorted(sys.modules), "unit": len(unit)}))
"""


def _probe(code: str) -> dict[str, Any]:
    """Run CODE in a fresh interpreter (as the zygote starts) and return the JSON its last line prints."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _lazy(names: list[str]) -> list[str]:
    return [name for name in names if name.startswith(LAZY_MODULES) and
            any(name == lazy or name.startswith(lazy + ".") for lazy in LAZY_MODULES)]  # fmt: skip


def test_the_idle_agent_does_not_import_pyav_and_the_first_encoder_does() -> None:
    result = _probe(PROBE)
    assert _lazy(result["idle"]) == [], "the zygote's preload imports what only video needs"
    assert "sessiond.agent.main" in result["idle"] and "sessiond.agent.h264" in result["idle"]
    assert set(_lazy(result["after"])) >= {"av", "media.swscale"}
    assert result["unit"] > 0, "the first encoder produced no access unit"


# Modules that load OpenSSL's libcrypto (~0.5 MiB of relocated data per
# session); the agent speaks no TLS and compares its link token without hmac.
OPENSSL_MODULES = ("ssl", "_ssl", "_hashlib", "hmac")

OPENSSL_PROBE = """
import json, sys
from isolation import zygote
zygote.preload()
maps = open("/proc/self/maps").read()
loaded = sorted(name for name, module in sys.modules.items() if module is not None)  # "ssl" is refused: None
print(json.dumps({"modules": loaded, "libcrypto": "libcrypto" in maps}))
"""


def test_the_agent_does_not_load_openssl() -> None:
    result = _probe(OPENSSL_PROBE)
    loaded = [name for name in OPENSSL_MODULES if name in result["modules"]]
    assert loaded == [], f"the agent's preload imports {loaded}"
    assert not result["libcrypto"], "libcrypto is mapped into the agent"


# Modules only a later step needs: shutil/tempfile (and with them bz2, lzma,
# random: ~0.4 MiB per session) for starting PulseAudio or finding a library
# the loader does not know; the USB/IP peer with the first usb channel; the
# xpra server in xpra sessions only. A module imported at start again fails here.
DEFERRED_MODULES = ("shutil", "tempfile", "bz2", "lzma", "random", "ctypes.util",
                    "sessiond.agent.usb_server", "sessiond.agent.xpra_server")  # fmt: skip

DEFERRED_PROBE = """
import json, sys
from isolation import zygote
zygote.preload()
idle = sorted(name for name, module in sys.modules.items() if module is not None)
from sessiond.agent.clibs import library_path
missing = library_path("sessiond-no-such-library")  # the ctypes.util fallback
from sessiond.agent import xpra_server  # what Agent() imports in an xpra session
print(json.dumps({"idle": idle, "after": sorted(sys.modules), "missing": missing}))
"""


def test_the_agent_defers_what_only_later_steps_need() -> None:
    result = _probe(DEFERRED_PROBE)
    loaded = [name for name in DEFERRED_MODULES if name in result["idle"]]
    assert loaded == [], f"the agent's preload imports {loaded}"
    assert "sessiond.agent.main" in result["idle"]
    assert result["missing"] is None
    assert {"ctypes.util", "shutil", "sessiond.agent.xpra_server"} <= set(result["after"])


# python-xlib modules of X extensions the agent never calls (startup.XLIB_EXTENSIONS):
# Display() would import and initialise them for every extension Xvfb offers.
UNUSED_XLIB_EXTENSIONS = tuple(f"Xlib.ext.{name}" for name in (
    "xinput", "record", "res", "shape", "xinerama", "security", "composite", "damage"))  # fmt: skip

XLIB_PROBE = """
import json, sys
from isolation import zygote
zygote.preload()
import Xlib.ext
after_preload = len(Xlib.ext.__extensions__)
from sessiond.agent import main
refused = main.main()  # the agent's entry: cuts the table first, then refuses (root, or no link token)
from sessiond.agent.xserver import start_xvfb
server = start_xvfb(320, 200)
try:
    from Xlib import display
    x = display.Display(server.display)
    used = {name: x.has_extension(name) for name in ("RANDR", "XTEST", "XFIXES", "MIT-SCREEN-SAVER")}
    x.close()
finally:
    server.stop()
print(json.dumps({"modules": sorted(sys.modules), "used": used, "after_preload": after_preload,
                  "after_main": len(Xlib.ext.__extensions__), "refused": refused}))
"""


def test_the_agent_initialises_only_the_x_extensions_it_calls() -> None:
    result = _probe(XLIB_PROBE)
    loaded = [name for name in UNUSED_XLIB_EXTENSIONS if name in result["modules"]]
    assert loaded == [], f"the agent's X connection loads {loaded}"
    assert result["used"] == {"RANDR": True, "XTEST": True, "XFIXES": True, "MIT-SCREEN-SAVER": True}
    assert result["refused"] != 0
    # Loading the agent's code leaves the table whole (a test process that imports it still has
    # every extension: one CI run lost python-xlib's DAMAGE that way); the agent's main() cuts it.
    assert result["after_main"] == len(startup.XLIB_EXTENSIONS) < result["after_preload"]
