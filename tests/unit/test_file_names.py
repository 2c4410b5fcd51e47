# File names from the peer, the chunked writer and the Outbox, on a temp dir.
#
# The properties are the promises of docs/clipboard.md: whatever name the
# peer sends, the file lands inside the downloads directory, under a
# non-empty, non-hidden, single-component name, never replacing what was
# there; an aborted transfer leaves nothing behind.
"""Unit tests for transfer_names, files and outbox."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessiond.agent import outbox
from sessiond.agent.clipboard_policy import FilePolicy
from sessiond.agent.files import MAX_OPEN_INCOMING, IncomingFile, IncomingTransfers, TransferRefused, downloads_dir_fd
from sessiond.agent.outbox import (
    MAX_OUTBOX_ENTRIES,
    STABLE_POLLS,
    OutboxWatcher,
    OutgoingFile,
    file_open_for_writing,
)
from media.transfer_names import (
    DEFAULT_NAME,
    MAX_INCOMING_NAME_BYTES,
    MAX_NAME_ATTEMPTS,
    MAX_SANITISED_NAME_BYTES,
    NAME_MAX_BYTES,
    UnusableName,
    chunk_spans,
    numbered_name,
    sanitise_name,
)

NASTY = ["..", ".", "../../etc/passwd", "/etc/shadow", "a/../../b", "\\..\\x", "-rf", "--help", ".bashrc",
         "...", " .. ", "a\nb", "x\x00y", "evil\u202egpj.exe", "\u200b", "", "   ", "-", "con.", "e\u0301.txt",
         "日本語.txt", "🎉" * 200, "a" * 300 + ".pdf"]  # fmt: skip
names = st.one_of(st.sampled_from(NASTY), st.text(max_size=300))


def check_safe(result: str, limit: int = MAX_SANITISED_NAME_BYTES) -> None:
    assert result and result not in (".", "..")
    assert "/" not in result and "\\" not in result and "\x00" not in result
    assert not result.startswith((".", "-", " "))
    assert len(result.encode()) <= limit
    assert all(unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in result)
    assert unicodedata.normalize("NFC", result) == result
    assert os.path.basename(result) == result and os.path.normpath(result) == result


@given(names)
def test_sanitised_names_are_single_safe_components(name: str) -> None:
    result = sanitise_name(name)
    check_safe(result)
    assert len(numbered_name(result, MAX_NAME_ATTEMPTS - 1).encode()) <= NAME_MAX_BYTES


def test_examples() -> None:
    assert sanitise_name("../../etc/passwd") == "_.._etc_passwd"
    assert sanitise_name(".bashrc") == "bashrc"
    assert sanitise_name("-rf") == "rf"
    assert sanitise_name("..") == DEFAULT_NAME
    assert sanitise_name("evil\u202egpj.exe") == "evilgpj.exe"
    assert sanitise_name("e\u0301.txt") == "\u00e9.txt"  # NFC
    long = sanitise_name("a" * 300 + ".pdf")
    assert long.endswith(".pdf") and len(long.encode()) == MAX_SANITISED_NAME_BYTES
    emoji = sanitise_name("🎉" * 200)
    assert len(emoji.encode()) <= MAX_SANITISED_NAME_BYTES and emoji.encode().decode() == emoji
    assert numbered_name("report.pdf", 2) == "report (2).pdf"
    assert numbered_name("backup.tar.gz", 1) == "backup (1).tar.gz"
    assert numbered_name("README", 1) == "README (1)"
    with pytest.raises(UnusableName):
        sanitise_name("x" * (MAX_INCOMING_NAME_BYTES + 1))


def test_chunk_spans_cover_the_file_exactly() -> None:
    assert list(chunk_spans(0, 10)) == []
    assert list(chunk_spans(25, 10)) == [(0, 10), (10, 10), (20, 5)]
    with pytest.raises(ValueError):
        list(chunk_spans(-1, 10))


# -- the writer -----------------------------------------------------------------
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(names, min_size=1, max_size=6))
def test_writes_land_inside_and_never_overwrite(tmp_path: Path, batch: list[str]) -> None:
    home = Path(tempfile.mkdtemp(dir=tmp_path))
    policy = FilePolicy()
    dir_fd = downloads_dir_fd(str(home), policy)
    try:
        downloads = home / "Downloads"
        (downloads / "keep.txt").write_bytes(b"original")
        os.symlink("/etc/passwd", downloads / "link")
        written = {}
        for i, name in enumerate(batch + ["keep.txt", "link"]):
            incoming = IncomingFile(dir_fd, name, 3, policy)
            incoming.write(f"{i:03d}".encode())
            written[incoming.finish()] = f"{i:03d}".encode()
        assert (downloads / "keep.txt").read_bytes() == b"original"
        assert os.readlink(downloads / "link") == "/etc/passwd"
        assert set(os.listdir(downloads)) == set(written) | {"keep.txt", "link"}
        for name, data in written.items():
            check_safe(name, NAME_MAX_BYTES)  # sanitised, plus a " (n)" suffix
            assert (downloads / name).read_bytes() == data
    finally:
        os.close(dir_fd)


def test_downloads_is_created_private(tmp_path: Path) -> None:
    os.close(downloads_dir_fd(str(tmp_path), FilePolicy()))
    assert stat.S_IMODE(os.stat(tmp_path / "Downloads").st_mode) == 0o700
    with pytest.raises(TransferRefused):
        downloads_dir_fd(str(tmp_path), FilePolicy(downloads_dir="../elsewhere"))


def test_abort_removes_the_partial_file_but_never_a_replacement(tmp_path: Path) -> None:
    transfers = IncomingTransfers(str(tmp_path), FilePolicy())
    incoming = transfers.start(1, "big.bin", 10)
    transfers.data(1, b"12345")
    assert (tmp_path / "Downloads" / "big.bin").exists()
    transfers.abort(1)
    assert not (tmp_path / "Downloads" / "big.bin").exists()
    # Someone replaced the partial file meanwhile: theirs stays.
    incoming = transfers.start(2, "big.bin", 10)
    os.unlink(tmp_path / "Downloads" / "big.bin")
    (tmp_path / "Downloads" / "big.bin").write_bytes(b"theirs")
    transfers.abort_all()
    assert (tmp_path / "Downloads" / "big.bin").read_bytes() == b"theirs"
    assert incoming.done
    transfers.close()


def test_a_downloads_directory_removed_between_transfers_is_made_anew(tmp_path: Path) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    transfers = IncomingTransfers(str(tmp_path), FilePolicy())
    transfers.start(1, "a", 1)
    transfers.data(1, b"1")
    transfers.end(1)
    shutil.rmtree(tmp_path / "Downloads")
    transfers.start(2, "b", 1)
    transfers.data(2, b"2")
    assert transfers.end(2) == "b"
    assert (tmp_path / "Downloads" / "b").read_bytes() == b"2"
    transfers.start(3, "c", 5)
    transfers.close()  # aborts c
    assert sorted(os.listdir(tmp_path / "Downloads")) == ["b"]
    assert len(os.listdir("/proc/self/fd")) == fds_before  # no descriptor left behind


def test_the_declared_size_bounds_the_data_and_the_policy_bounds_the_size(tmp_path: Path) -> None:
    transfers = IncomingTransfers(str(tmp_path), FilePolicy(max_file_bytes=100))
    with pytest.raises(TransferRefused):
        transfers.start(1, "too-big", 101)
    assert not (tmp_path / "Downloads" / "too-big").exists()  # refused before creating
    transfers.start(2, "f", 100)
    transfers.data(2, b"x" * 100)
    with pytest.raises(TransferRefused):
        transfers.data(2, b"y")  # one byte more than declared: aborted, removed
    assert not (tmp_path / "Downloads" / "f").exists()
    transfers.start(3, "short", 5)
    transfers.data(3, b"abc")
    with pytest.raises(TransferRefused):
        transfers.end(3)  # missing bytes: aborted too
    assert os.listdir(tmp_path / "Downloads") == []
    for i in range(MAX_OPEN_INCOMING):
        transfers.start(10 + i, f"n{i}", 1)
    with pytest.raises(TransferRefused):
        transfers.start(99, "one-too-many", 1)
    transfers.close()
    with pytest.raises(TransferRefused):
        IncomingTransfers(str(tmp_path), FilePolicy(from_client=False)).start(1, "x", 1)


# -- the Outbox -----------------------------------------------------------------
class Recorder:
    def __init__(self, refuse: str | None = None) -> None:
        self.offers: list[OutgoingFile] = []
        self.refuse = refuse

    def __call__(self, outgoing: OutgoingFile) -> str | None:
        if self.refuse is not None:
            return self.refuse
        self.offers.append(outgoing)
        os.close(outgoing.fd)
        return None


def watcher(tmp_path: Path, offer: Recorder, writing: bool = False, **policy: object) -> OutboxWatcher:
    (tmp_path / "Outbox").mkdir(exist_ok=True)
    w = OutboxWatcher(str(tmp_path / "Outbox"), FilePolicy(**policy), offer, lambda text: None,  # type: ignore[arg-type]
                      open_for_writing=lambda dev, ino: writing)  # fmt: skip
    w.active = True
    return w


def test_a_stable_file_is_offered_once(tmp_path: Path) -> None:
    offer = Recorder()
    w = watcher(tmp_path, offer)
    (tmp_path / "Outbox" / "result.csv").write_bytes(b"1,2,3\n")
    assert [w.poll() for _ in range(STABLE_POLLS - 1)] == [[]] * (STABLE_POLLS - 1)
    assert w.poll() == ["result.csv"]
    assert [w.poll() for _ in range(3)] == [[], [], []]
    w.forget("result.csv")  # the client went away before taking it
    assert w.poll() == ["result.csv"]
    assert [(o.name, o.size, o.source) for o in offer.offers] == [("result.csv", 6, "outbox")] * 2


def test_a_growing_file_waits_until_it_stops_growing(tmp_path: Path) -> None:
    offer = Recorder()
    w = watcher(tmp_path, offer)
    path = tmp_path / "Outbox" / "video.webm"
    for i in range(4):
        with open(path, "ab") as f:
            f.write(b"x" * (i + 1))
        assert w.poll() == []
    while not w.poll():
        pass
    assert offer.offers[0].size == 10


def test_partial_hidden_linked_and_oversized_files_are_not_offered(tmp_path: Path) -> None:
    offer = Recorder()
    w = watcher(tmp_path, offer, max_file_bytes=10)
    box = tmp_path / "Outbox"
    (box / "a.part").write_bytes(b"x")
    (box / ".hidden").write_bytes(b"x")
    (box / "big").write_bytes(b"x" * 11)
    (box / "dir").mkdir()
    os.symlink("/etc/passwd", box / "link")
    for _ in range(STABLE_POLLS + 1):
        assert w.poll() == []


def test_a_file_open_for_writing_waits_and_an_inactive_or_refusing_client_gets_it_later(tmp_path: Path) -> None:
    offer = Recorder()
    w = watcher(tmp_path, offer, writing=True)
    (tmp_path / "Outbox" / "f").write_bytes(b"x")
    for _ in range(STABLE_POLLS + 1):
        assert w.poll() == []
    w._open_for_writing = lambda dev, ino: False
    w.active = False
    assert w.poll() == []
    w._offer = Recorder(refuse="no client")
    w.active = True
    assert w.poll() == []
    w._offer = offer
    assert w.poll() == ["f"]


def test_open_for_writing_sees_our_own_writer(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with open(path, "wb"):
        st_ = os.stat(path)
        assert file_open_for_writing(st_.st_dev, st_.st_ino)
    assert not file_open_for_writing(st_.st_dev, st_.st_ino)


def test_names_run_out_after_max_name_attempts(tmp_path: Path) -> None:
    dir_fd = downloads_dir_fd(str(tmp_path), FilePolicy())
    try:
        for number in range(MAX_NAME_ATTEMPTS):
            (tmp_path / "Downloads" / numbered_name("a.txt", number)).write_bytes(b"")
        with pytest.raises(TransferRefused):
            IncomingFile(dir_fd, "a.txt", 1, FilePolicy())
        assert len(os.listdir(tmp_path / "Downloads")) == MAX_NAME_ATTEMPTS
    finally:
        os.close(dir_fd)


def test_a_poll_looks_at_most_max_outbox_entries(tmp_path: Path) -> None:
    offer = Recorder()
    w = watcher(tmp_path, offer)
    for i in range(MAX_OUTBOX_ENTRIES + 10):
        (tmp_path / "Outbox" / f"f{i:04d}").write_bytes(b"x")
    offered = []
    for _ in range(STABLE_POLLS):
        offered = w.poll()
    assert len(offered) == MAX_OUTBOX_ENTRIES


def test_too_many_descriptors_count_as_still_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    st_ = os.stat(path)
    assert not file_open_for_writing(st_.st_dev, st_.st_ino)
    monkeypatch.setattr(outbox, "MAX_PROC_FDS_SCANNED", 1)
    assert file_open_for_writing(st_.st_dev, st_.st_ino)  # could not look at all: wait
