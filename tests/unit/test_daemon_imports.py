# The daemon's idle memory is mostly the modules it imports (issue 15: the
# daemon <= 40 MiB). Features that are off, or not used yet, must not cost
# their imports: the farm's etcd client (an HTTP client stack) without
# [farm] etcd, Pillow until an icon is rendered, the WebSocket stack (wsproto,
# h11) until a browser opens /ws, the HTTP site (twisted.web.server) until
# someone speaks HTTP on the port, twisted.application.internet (its automat
# reconnect machinery), python-pam before the daemon listens. This test builds the service tree of the default
# configuration in a fresh interpreter and fails if any of them is loaded, so
# a top-level import re-added anywhere on the daemon's path is caught.
"""The default daemon does not import what its configuration does not use."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Module name prefixes the idle default daemon must not have loaded.
LAZY_MODULES = (
    "sessiond.farm.etcd_client",
    "sessiond.farm.etcd_directory",
    "sessiond.farm.etcd_http",
    "twisted.web.client",
    "PIL",
    "wsproto",
    "h11",
    "twisted.web.websocket",
    "sessiond.web_socket",
    "twisted.application.internet",
    "automat",
    "twisted.web.server",
    "sessiond.admin_site",
    "pam",  # python-pam: loaded once the daemon listens (sessiond/auth.py, load_pam)
)
# Seconds the child interpreter may take (imports only; a loaded machine is slow).
CHILD_TIMEOUT = 120

PROBE = """
import json, sys
from sessiond.config import load_config
from twisted.internet import reactor
from sessiond.daemon import build_service
tmp = sys.argv[1]
config = load_config(None, {"server": {"state_dir": tmp + "/state", "runtime_dir": tmp + "/run",
                                       "listen": "127.0.0.1:0"},
                            "admin": {"socket": tmp + "/control", "token_file": tmp + "/token"}})
build_service(config, reactor)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_modules(tmp: str, extra_code: str = "") -> list[str]:
    """sys.modules of a fresh interpreter that built the default service tree (then ran EXTRA_CODE)."""
    env = {**os.environ, "PYTHONPATH": REPO}
    done = subprocess.run([sys.executable, "-c", PROBE.replace("print(", extra_code + "\nprint(", 1), tmp],
                          capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT)  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"the probe failed: {done.stderr[-2000:]}")
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def offenders(modules: list[str]) -> list[str]:
    """The loaded modules that belong to a LAZY_MODULES prefix."""
    return [name for name in modules if any(name == lazy or name.startswith(lazy + ".") for lazy in LAZY_MODULES)]


def test_default_daemon_leaves_unused_features_unimported(tmp_path: object) -> None:
    modules = loaded_modules(str(tmp_path))
    assert "sessiond.daemon" in modules and "sessiond.web" in modules  # the probe did build the daemon
    assert offenders(modules) == []


def test_the_probe_sees_a_lazy_module_once_it_is_used(tmp_path: object) -> None:
    # The check can fail: rendering an icon loads Pillow, and the first /ws request the WebSocket stack.
    render = ("import apps.icons\ntry:\n    apps.icons.render_png(sys.executable, 16)\n"
              "except apps.icons.IconError:\n    pass\nimport sessiond.web_socket")  # not an image: after the import
    http = "\nfrom twisted.web import resource\nfrom sessiond.daemon import SiteOnFirstUse\n" \
           "SiteOnFirstUse(resource.Resource(), 'token').buildProtocol(None)"  # the first HTTP connection
    modules = loaded_modules(str(tmp_path), render + http)
    assert {"PIL", "wsproto", "sessiond.web_socket", "twisted.web.server", "sessiond.admin_site"} <= set(
        offenders(modules))


def test_admin_answers_later_with_twisted_web_value() -> None:
    # sessiond.admin spells NOT_DONE_YET itself so as not to import twisted.web.server.
    from twisted.web.server import NOT_DONE_YET

    from sessiond import admin

    assert admin.NOT_DONE_YET == NOT_DONE_YET
