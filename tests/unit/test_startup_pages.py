# sessiond/startup_pages.py gives back the clean file pages of cryptography's
# extension after start-up (issue 15). What must hold: only mappings of that
# file that are read-only and hold no anonymous pages are chosen (never the
# relocated data: its private copies would be lost), and on this kernel the
# call does release resident pages, and the library still works after.
"""sessiond.startup_pages: which mappings are released, and that releasing them works."""

from __future__ import annotations

import mmap
import os
import sys
import tempfile

from cryptography.hazmat.bindings import _rust  # noqa: F401 - mapped, so there is something to release
from OpenSSL import SSL

from sessiond import startup_pages

LIB = "/venv/lib/python3.11/site-packages/cryptography/hazmat/bindings/_rust.abi3.so"
SMAPS = f"""\
7f0000000000-7f0000300000 r--p 00000000 fe:00 42 {LIB}
Size:               3072 kB
Rss:                1856 kB
Anonymous:             0 kB
7f0000300000-7f0000a60000 r-xp 002f2000 fe:00 42 {LIB}
Size:               7600 kB
Anonymous:             0 kB
7f0000a60000-7f0000af8000 r--p 00a5d000 fe:00 42 {LIB}
Size:                612 kB
Anonymous:           612 kB
7f0000af8000-7f0000b0b000 rw-p 00af5000 fe:00 42 {LIB}
Anonymous:             0 kB
7f0000c00000-7f0000c10000 r-xp 00000000 fe:00 43 /usr/lib/libc.so.6
Anonymous:             0 kB
7f0000d00000-7f0000d10000 rw-p 00000000 00:00 0
Anonymous:            64 kB
"""


def test_only_clean_read_only_mappings_of_the_extension_are_chosen() -> None:
    ranges = startup_pages.clean_file_ranges(SMAPS.splitlines())
    # Not the relocated read-only data (anonymous pages), not the writable data, not other files.
    assert ranges == [(0x7F0000000000, 0x7F0000300000), (0x7F0000300000, 0x7F0000A60000)]


def rss_kib(name: str) -> int:
    """Resident KiB of this process's mappings of the file named NAME."""
    total, inside = 0, False
    with open("/proc/self/smaps", encoding="utf-8") as handle:
        for line in handle:
            head = line.split(" ", 1)[0]
            if not head.endswith(":"):
                inside = line.rstrip().endswith("/" + name)
            elif inside and head == "Rss:":
                total += int(line.split()[1])
    return total


PROBE_BYTES = 4 * 1024 * 1024


def test_release_gives_back_the_resident_pages_of_a_file_only_this_process_maps() -> None:
    # MADV_PAGEOUT reclaims only pages no other process maps: the extension's own pages may be
    # mapped by any other Python of the same venv running meanwhile (a test's daemon), so the
    # page-out itself is checked on a file of our own, on the file system the venv is on.
    with tempfile.NamedTemporaryFile(dir=sys.prefix, prefix="startup-pages-probe-") as probe:
        probe.write(os.urandom(PROBE_BYTES))
        probe.flush()
        os.fsync(probe.fileno())  # clean pages: page-out needs no write-back
        name = os.path.basename(probe.name)
        with mmap.mmap(probe.fileno(), 0, prot=mmap.PROT_READ) as mapped:
            pages = range(0, PROBE_BYTES, mmap.PAGESIZE)
            checksum = sum(mapped[offset] for offset in pages)  # every page resident
            before = rss_kib(name)
            assert before * 1024 >= PROBE_BYTES // 2
            assert startup_pages.release_startup_pages(name) == PROBE_BYTES
            assert rss_kib(name) < before // 2
            assert sum(mapped[offset] for offset in pages) == checksum, "the pages read back differ"


def test_release_covers_the_extension_and_tls_still_works() -> None:
    SSL.Context(SSL.TLS_METHOD)  # runs some of the extension, so that pages are resident
    assert startup_pages.release_startup_pages() > 0
    context = SSL.Context(SSL.TLS_METHOD)  # the released code is read back on use
    context.set_min_proto_version(SSL.TLS1_3_VERSION)


def test_nothing_to_release_for_a_file_not_mapped() -> None:
    assert startup_pages.release_startup_pages("no-such-library.so") == 0
