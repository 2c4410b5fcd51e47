# A backend for the peer harness (../shared/peers/xpra_baseline.py
# --backend-file bench/peers_viewer_backend.py): the same sessiond server,
# session and workloads as the harness's sessiond backend, with the native
# viewer (`svclient view`) as the client instead of the web client in
# Chromium. The server half is the harness's own sessiond backend, loaded
# from beside the harness at run time (never copied here), so the two rows
# differ only in the viewer; this file replaces the client half: command
# line, password, window search, process roles.
#
# The harness execs this file with `harness` (its module) in the namespace.
"""BACKEND: sessiond with svclient view as the client (peer harness)."""

import os
import subprocess

H = harness  # noqa: F821 - injected by xpra_baseline.py when it execs this file

_SHARED_BACKEND = os.path.join(os.path.dirname(os.path.abspath(H.__file__)), "sessiond_backend.py")
_ns = {"__file__": _SHARED_BACKEND, "harness": H, "__name__": "sessiond_backend"}
with open(_SHARED_BACKEND) as _f:
    exec(compile(_f.read(), _SHARED_BACKEND, "exec"), _ns)  # noqa: S102 - the harness's own backend, as it loads ours
_Base = _ns["SessiondBackend"]
VENV_BIN = _ns["VENV_BIN"]


class ViewerBackend(_Base):
    """sessiond + svclient view (Qt, one local window per session window)."""

    name = "sessiond-view"

    def __init__(self, workdir):
        super().__init__(workdir)
        self.version = self.version.split("; web client")[0] + "); client svclient view (PySide6 %s)" % self._qt()
        self.frames = None
        self.c2s = None

    @staticmethod
    def _qt():
        return subprocess.run([os.path.join(VENV_BIN, "python"), "-c", "import PySide6; print(PySide6.__version__)"],
                              capture_output=True, text=True).stdout.strip()

    def env(self):
        env = H.child_env({"HOME": self.chome})
        env.pop("QT_QPA_PLATFORM", None)
        return env

    def client_cmd(self, port):
        self.proxy_port = port
        os.makedirs(self.chome, exist_ok=True)
        password = os.path.join(self.workdir, "password")
        with open(password, "w") as f:
            f.write(_ns["PASSWORD"] + "\n")
        os.chmod(password, 0o600)
        self.client_argv = [os.path.join(VENV_BIN, "svclient"), "--server", "127.0.0.1:%d" % port,
                            "--user", _ns["USER"], "--password-file", password,
                            "--known-hosts", os.path.join(self.workdir, "known_hosts"),
                            "--token-dir", os.path.join(self.workdir, "tokens"), "--no-resume",
                            "view", "--launch", _ns["APP_ID"]]
        return self.client_argv

    def make_parsers(self):
        return (None, None)  # the TLS stream is opaque; frames are counted with XDamage on the client window

    def window_stats(self, t0, t1):
        return {}

    def run_info(self):
        info = {"server_cmd": self.server_cmd(), "config": self.config_text(self.port or 0),
                "client_cmd": getattr(self, "client_argv", None), "user": _ns["USER"],
                "session_id": self.session_id, "client_window": self.client_window, "pids": self.pids_seen,
                "cgroup_memory_usage_bytes_at_mem": self.cgroup_mem, "scroll_files": self.mirror}
        return info


BACKEND = ViewerBackend
