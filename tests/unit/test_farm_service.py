"""The daemon's farm wiring: [farm] picks the directory; the service joins after adoption and retries."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task

from sessiond.config import load_config
from sessiond.farm.etcd_directory import EtcdDirectory
from sessiond.farm.local import LocalDirectory
from sessiond.farm.service import START_RETRY_SECONDS, DirectoryService, build_directory


class _Registry:
    def live_sessions(self) -> list[Any]:
        return []


def test_no_farm_section_builds_the_local_directory() -> None:
    directory = build_directory(load_config(None).farm, task.Clock(), _Registry(), lambda: 0, "")  # type: ignore[arg-type]
    assert isinstance(directory, LocalDirectory) and directory.can_place()


def test_farm_section_builds_the_etcd_directory(tmp_path: Any) -> None:
    path = tmp_path / "s.conf"
    path.write_text("[farm]\netcd = http://127.0.0.1:1\nhost_id = h1\nadvertise = 127.0.0.1:4443\nlease_ttl = 3\n")
    from twisted.internet import reactor

    directory = build_directory(load_config(str(path)).farm, reactor, _Registry(), lambda: 0, "ab")  # type: ignore[arg-type]
    assert isinstance(directory, EtcdDirectory)
    assert (directory.host_id, directory.advertise, directory.fingerprint) == ("h1", "127.0.0.1:4443", "ab")
    assert not directory.can_place()  # not registered yet: no placements


class _Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.starts = 0
        self.stopped = False

    async def start(self) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise ConnectionError("etcd down")

    async def stop(self) -> None:
        self.stopped = True


def test_service_joins_after_adoption_and_retries_while_etcd_is_down() -> None:
    clock = task.Clock()
    ready: defer.Deferred[None] = defer.Deferred()
    directory = _Flaky(failures=2)
    svc = DirectoryService(directory, lambda: ready, clock)  # type: ignore[arg-type]
    svc.startService()
    assert directory.starts == 0  # waits for the supervisor's adopt_all
    ready.callback(None)
    assert directory.starts == 1
    clock.advance(START_RETRY_SECONDS)
    clock.advance(START_RETRY_SECONDS)
    assert directory.starts == 3 and svc.started is not None and svc.started.called
    svc.stopService()
    assert directory.stopped


def test_stop_while_retrying_ends_the_retries() -> None:
    clock = task.Clock()
    directory = _Flaky(failures=100)
    svc = DirectoryService(directory, lambda: defer.succeed(None), clock)  # type: ignore[arg-type]
    svc.startService()
    svc.stopService()
    clock.advance(START_RETRY_SECONDS * 3)
    assert directory.starts == 1 and directory.stopped
