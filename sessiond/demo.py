# `make demo`: create the demo user once (password generated once, kept 0600
# in the demo state directory), then run sessiond in the foreground on the
# embedded defaults with the checkout's demo app catalog.
"""Demo launcher used by `make demo`."""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import subprocess
import sys

from sessiond import cli

DEMO_USER = "svdemo"
PASSWORD_FILE = "demo-password"


def ensure_user(name: str, password_file: str) -> None:
    """Create NAME if missing and make sure its password is the stored one."""
    if not os.path.exists(password_file):
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(12) + "\n")
    os.chmod(password_file, 0o600)
    with open(password_file, encoding="utf-8") as handle:
        password = handle.read().strip()
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sessiond-demo")
    parser.add_argument("--port", type=int, default=4443)
    parser.add_argument("--state-dir", default="var/demo")
    parser.add_argument("--apps", required=True)
    args = parser.parse_args(argv)
    state = os.path.abspath(args.state_dir)
    os.makedirs(state, mode=0o700, exist_ok=True)
    password_file = os.path.join(state, PASSWORD_FILE)
    ensure_user(DEMO_USER, password_file)
    print(f"sessiond demo: https://127.0.0.1:{args.port} (native protocol, TLS 1.3)")
    print(f"  demo user:     {DEMO_USER}")
    print(f"  password file: {password_file}")
    print(f"  try:           svclient --server 127.0.0.1:{args.port} --user {DEMO_USER} "
          f"--password-file {password_file} launch xterm")  # fmt: skip
    print("  stop with Ctrl-C", flush=True)
    overrides = {
        # Ctrl-C ends the demo's sessions too, so nothing keeps running.
        "server": {"listen": f"127.0.0.1:{args.port}", "state_dir": state, "on_stop": "logoff"},
        "apps": {"directories": os.path.abspath(args.apps)},
    }  # fmt: skip
    return cli.run(None, overrides)


if __name__ == "__main__":
    sys.exit(main())
