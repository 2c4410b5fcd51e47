# Shared fixtures for integration tests (helpers live in svtest.py), and the
# Hypothesis profile every test directory uses.
"""Integration fixtures: users and a running sessiond."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Iterator

import pytest
from hypothesis import settings

from svtest import Server, TestUser, create_user, remove_user, start_sessiond, stop_sessiond

# Property tests check what an input does, never how fast: Hypothesis's default
# 200 ms deadline per example is a timing assertion, and a loaded 2-core CI
# machine legitimately exceeds it (test_file_names flaked that way under load).
settings.register_profile("sessiond", deadline=None)
settings.load_profile("sessiond")


@pytest.fixture(scope="session")
def user_factory() -> Iterator[object]:
    """Creates real users (removed at the end) with passwords in 0600 files."""
    if os.geteuid() != 0:
        pytest.fail("integration tests must run as root (they create users); run `make test` as root")
    directory = tempfile.mkdtemp(prefix="svt-users-")
    created: list[str] = []

    def make(name: str) -> TestUser:
        user = create_user(name, directory)
        created.append(user.name)  # the suffixed name (SVTEST_USER_SUFFIX) is the one to remove
        return user

    yield make
    for name in created:
        remove_user(name)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def sessiond_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_sessiond(str(tmp_path_factory.mktemp("sessiond")))
    yield server
    stop_sessiond(server)
