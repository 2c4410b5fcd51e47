# The daemon's own memory (issue 15: sessiond <= 40 MiB), against a baseline
# installation measured in the same run.
#
# bench_memory.py measures a whole session and the daemon once; the daemon's
# figure moves by a MiB between runs (what a login happened to allocate,
# which pages of a shared library the kernel mapped), so one run cannot tell
# a 2 MiB cut from noise. This bench starts only the two daemons (ours and
# the baseline's, alternating which goes first), ROUNDS times each, and
# prints medians: at idle (listening, no session) and with one idle session
# and its client attached (as bench_memory.py measures it), as PSS, RSS and
# USS, and split into what makes them up (anonymous memory: Python's objects
# and malloc; cryptography's Rust extension, which links its own OpenSSL;
# every other file mapping).
#
# What of a library file is resident in a process depends on what of it is
# in the page cache: the kernel maps the cached pages around each page the
# process touches (fault-around, 64 KiB runs), so the same daemon shows ~1
# MiB more of cryptography's extension when the file is fully cached (just
# installed, or used a lot) than after the cache lost some of it. Before each
# daemon starts, the bench reads that file of its installation whole, so
# every round sees the same, fully cached state (the upper bound).
#
# PSS divides a shared page between the processes that map it, so a bench
# client run from the same installation as a daemon lowers that daemon's
# figure (they share cryptography's pages). Run this bench from a third
# interpreter (e.g. another installation's venv); it prints a warning
# otherwise, and also when any other process (a test run from the same
# installation) maps a daemon's copy of the extension while it is measured.
# The daemons get the bench's environment without PYTHONPATH: with it, both
# would run this checkout's code rather than their installation's.
# Run as root:
#   SESSIOND_PREFIX=/opt/sv-new /opt/sessiond/venv/bin/python \
#       bench/bench_daemon_memory.py --baseline-prefix /opt/sv-main --rounds 3
"""Idle memory of sessiond itself, ours vs a baseline installation, medians of rounds."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import Counter
from typing import Any

from twisted.internet import task

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout, not PYTHONPATH
import spine_server  # noqa: E402 - after the path
from bench_memory import COMMON, REPO, SCREEN, attach_idle_client, parse_settings  # noqa: E402
from client.known_hosts import KnownHosts  # noqa: E402
from spine_server import BenchUsers, run_bench  # noqa: E402
from spine_workloads import within  # noqa: E402

# Seconds a daemon idles before each measurement.
SETTLE_SECONDS = 4.0
USER_PREFIX = "svdm-"
MIB = 1024 * 1024
KIB = 1024
# The mapping of cryptography's Rust extension (statically linked OpenSSL), reported on its own.
RUST_EXTENSION = "_rust.abi3.so"
# Rows of the report, in order: (key, label).
ROWS = (
    ("pss", "PSS"),
    ("rss", "RSS"),
    ("uss", "USS (private)"),
    ("anon", "  anonymous (Python objects, malloc)"),
    ("rust", "  cryptography _rust.abi3.so (RSS)"),
    ("files", "  other file mappings (RSS)"),
)


def smaps_figures(pid: int) -> dict[str, int]:
    """Bytes per report key of /proc/PID/smaps (empty once the process is gone)."""
    out: Counter[str] = Counter()
    path = ""
    try:
        with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                head, _, rest = line.partition(" ")
                if not head.endswith(":"):  # a mapping's first line: range perms offset dev inode [path]
                    fields = rest.split(None, 4)
                    path = fields[4].strip() if len(fields) > 4 else ""
                    continue
                if head not in ("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:", "Anonymous:"):
                    continue
                value = int(rest.split()[0]) * KIB
                out[{"Rss:": "rss", "Pss:": "pss", "Anonymous:": "anon"}.get(head, "uss")] += value
                if head == "Rss:" and path.startswith("/"):
                    out["rust" if path.endswith("/" + RUST_EXTENSION) else "files"] += value
    except OSError:
        return {}
    return dict(out)


async def measure_daemon(reactor: Any, tmp: str, users: BenchUsers, known: KnownHosts, name: str,
                         venv_bin: str, settle: float) -> dict[str, dict[str, int]]:  # fmt: skip
    """Start the daemon of VENV_BIN; its figures at idle and with one idle session attached
    (NAME, e.g. "ours-2", also names the session's user)."""
    settings = parse_settings(COMMON)
    cache_rust_extension(venv_bin)
    server = await spine_server.start_sessiond(reactor, tmp, *SCREEN, [os.path.join(REPO, "conf", "apps")],
                                               extra=settings, venv_bin=venv_bin)  # fmt: skip
    client = None
    try:
        await task.deferLater(reactor, settle, lambda: None)
        idle = smaps_figures(server.pid)
        client = await attach_idle_client(reactor, server, users, known,
                                          f"{USER_PREFIX}{name[:1]}{name.rpartition('-')[2]}")  # fmt: skip
        await task.deferLater(reactor, settle, lambda: None)
        figures = {"idle": idle, "session": smaps_figures(server.pid)}
        sharers = rust_extension_sharers(server.pid)
        if sharers:
            print(f"bench_daemon_memory: WARNING: {name}: processes {sharers} map the daemon's copy of "
                  f"{RUST_EXTENSION}; its PSS is lower and fewer of its pages can be released",
                  file=sys.stderr)  # fmt: skip
        return figures
    except Exception:
        print(f"--- sessiond log of {name} (tail) ---\n" + server.log()[-3000:], file=sys.stderr)
        raise
    finally:
        if client is not None:
            client.disconnect()
        await within(reactor, server.stop(reactor), "sessiond to stop", 30)


def rust_extension_sharers(pid: int) -> list[int]:
    """Other processes that map the file of cryptography's extension that process PID maps."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as handle:
            paths = {line.split(None, 5)[5].strip() for line in handle if line.rstrip().endswith("/" + RUST_EXTENSION)}
    except OSError:
        return []
    sharers = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/maps", encoding="utf-8", errors="replace") as handle:
                if int(name) != pid and any(line.split(None, 5)[-1].strip() in paths for line in handle):
                    sharers.append(int(name))
        except (OSError, IndexError):
            continue
    return sharers


def cache_rust_extension(venv_bin: str) -> None:
    """Read the installation's cryptography extension whole (page cache fully populated, see the header)."""
    lib = os.path.join(os.path.dirname(venv_bin), "lib")
    for base, _dirs, names in os.walk(lib):
        if RUST_EXTENSION in names and base.endswith(os.path.join("cryptography", "hazmat", "bindings")):
            with open(os.path.join(base, RUST_EXTENSION), "rb") as handle:
                while handle.read(MIB):
                    pass


def shares_files_with(venv_bin: str) -> bool:
    """Whether this interpreter runs from the installation at VENV_BIN (it would share its pages)."""
    return os.path.realpath(sys.prefix) == os.path.realpath(os.path.dirname(venv_bin))


def median_mib(runs: list[dict[str, dict[str, int]]], state: str, key: str) -> float:
    """The median over RUNS of KEY in STATE, in MiB."""
    return statistics.median(run[state].get(key, 0) for run in runs) / MIB


def report(base: list[dict[str, dict[str, int]]], ours: list[dict[str, dict[str, int]]]) -> str:
    """Medians (MiB) of both installations side by side, with the ratio ours/baseline."""
    head = ("sessiond (MiB, median)", "baseline", "ours", "ours/baseline")
    rows: list[tuple[str, ...]] = []
    for state, title in (("idle", "idle, listening, no session"), ("session", "one idle session, client attached")):
        rows.append((f"[{title}]", "", "", ""))
        for key, label in ROWS:
            b, o = median_mib(base, state, key), median_mib(ours, state, key)
            rows.append((label, f"{b:.1f}", f"{o:.1f}", f"{o / b:.2f}x" if b else "-"))
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(head)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    runs = ", ".join(f"{run['session'].get('pss', 0) / MIB:.1f}" for run in ours)
    lines.append(f"ours, PSS with a session, each round: {runs}")
    runs = ", ".join(f"{run['session'].get('pss', 0) / MIB:.1f}" for run in base)
    lines.append(f"baseline, PSS with a session, each round: {runs}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-prefix", required=True,
                        help="the installation to compare with (e.g. main installed with make install PREFIX=...)")
    parser.add_argument("--rounds", type=int, default=3, help="daemons started per installation (default 3)")
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS, help="seconds idle before each measurement")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench_daemon_memory: run as root (it creates users and starts sessiond)", file=sys.stderr)
        return 2
    os.environ.pop("PYTHONPATH", None)  # each daemon runs its own installation's code (see the header)
    installs = {"baseline": os.path.join(args.baseline_prefix, "venv", "bin"), "ours": spine_server.VENV_BIN}
    for name, venv_bin in installs.items():
        if shares_files_with(venv_bin):
            print(f"bench_daemon_memory: WARNING: this bench runs from the {name} installation; its client "
                  "shares that daemon's library pages and lowers its PSS (run it from a third venv)")  # fmt: skip

    async def work(reactor: Any, tmp: str, users: BenchUsers) -> None:
        known = KnownHosts(os.path.join(tmp, "known_hosts"))
        runs: dict[str, list[dict[str, dict[str, int]]]] = {"baseline": [], "ours": []}
        for index in range(args.rounds):
            order = ("baseline", "ours") if index % 2 == 0 else ("ours", "baseline")
            for name in order:
                state = os.path.join(tmp, f"{name}-{index}")
                os.makedirs(state)
                label = f"{name}-{index}"
                runs[name].append(await measure_daemon(reactor, state, users, known, label, installs[name],
                                                       args.settle))  # fmt: skip
        print(f"sessiond daemon memory; {args.rounds} rounds, alternating order, {args.settle:.0f} s idle before "
              f"each measurement; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
        print(f"baseline: {os.path.dirname(installs['baseline'])}; ours: {os.path.dirname(installs['ours'])}; "
              f"bench client: {sys.prefix}")  # fmt: skip
        print(report(runs["baseline"], runs["ours"]))

    return run_bench("bench_daemon_memory", "svdmem-", work)


if __name__ == "__main__":
    sys.exit(main())
