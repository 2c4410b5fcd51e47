# sessiond/startup_pages.py gives back the clean file pages of cryptography's
# extension after start-up (issue 15). What must hold: only mappings of that
# file that are read-only and hold no anonymous pages are chosen (never the
# relocated data: its private copies would be lost), and on this kernel the
# call does release resident pages, and the library still works after.
"""sessiond.startup_pages: which mappings are released, and that releasing them works."""

from __future__ import annotations

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


def rust_rss_kib() -> int:
    total, inside = 0, False
    with open("/proc/self/smaps", encoding="utf-8") as handle:
        for line in handle:
            head = line.split(" ", 1)[0]
            if not head.endswith(":"):
                inside = line.rstrip().endswith("/" + startup_pages.RUST_EXTENSION)
            elif inside and head == "Rss:":
                total += int(line.split()[1])
    return total


def test_release_gives_back_resident_pages_and_tls_still_works() -> None:
    SSL.Context(SSL.TLS_METHOD)  # runs some of the extension, so that pages are resident
    before = rust_rss_kib()
    assert startup_pages.release_startup_pages() > 0
    assert rust_rss_kib() < before
    context = SSL.Context(SSL.TLS_METHOD)  # the released code is read back on use
    context.set_min_proto_version(SSL.TLS1_3_VERSION)


def test_nothing_to_release_for_a_file_not_mapped() -> None:
    assert startup_pages.release_startup_pages("no-such-library.so") == 0
