# The tests must exercise the installed copy that session users run, not the
# checkout: this guards that, and that an unprivileged user can actually run
# the installed interpreter and import the agent.
"""The installed layout under /opt/sessiond."""

from __future__ import annotations

import importlib
import os
import subprocess

import pytest

from svtest import PREFIX, VENV_BIN

PACKAGES = ("protocol", "sessiond", "sessiond.agent", "isolation", "apps", "client", "transport")


@pytest.mark.parametrize("name", PACKAGES)
def test_packages_come_from_the_installed_venv(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert module.__file__.startswith(os.path.join(PREFIX, "venv")), module.__file__


def test_console_scripts_are_installed() -> None:
    for script in ("sessiond", "svclient"):
        assert os.access(os.path.join(VENV_BIN, script), os.X_OK), script


@pytest.mark.integration
@pytest.mark.root
def test_an_unprivileged_user_can_run_the_installed_agent() -> None:
    done = subprocess.run(
        ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--",
         os.path.join(VENV_BIN, "python"), "-c", "import sessiond.agent.main, client.cli; print('ok')"],
        capture_output=True, text=True, cwd="/", timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
