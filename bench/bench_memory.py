# Memory of one idle session, process by process, against a baseline
# measured in the same run.
#
# Why PSS: a session's processes share pages with each other (the sandbox's
# supervisor, init and a zygote-forked agent share one interpreter image) and
# with the rest of the host (libc, Python's own code); RSS counts a shared
# page once per process and so over-counts, USS ignores what the session
# really pins. PSS (/proc/PID/smaps_rollup) splits each shared page between
# its users, so the figures add up to what the host pays.
#
# Each configuration gets a fresh sessiond (the installed one, under
# SESSIOND_PREFIX) with the bench's [session] screen plus the configuration's
# keys; one user logs in, opens display and input (a client stays attached),
# and after SETTLE_SECONDS every process of the session is measured: the
# root supervisor sessiond spawned, the session's init, the agent, Xvfb,
# PulseAudio if running, and the daemon itself. Idle warm-pool slots (a
# spawned sandbox entry with no session yet; with [session] warm_x, its
# supervisor, its root init and its pre-started Xvfb together) are listed on
# their own.
# The baseline is the settings before issue 15 (3840x2160 maximum screen,
# sound server at session start, no zygote); "ours" is the installed defaults.
# With --baseline-prefix the baseline runs another installation instead (for
# the daemon's own memory: e.g. main installed elsewhere, --baseline '' so
# both run their defaults and only the code differs).
# --rounds N measures each configuration N times (alternating, a fresh
# sessiond each) and prints medians; --sessions N logs N users in at once, so
# the figures show what sessions share with each other (libraries' pages are
# split between them) rather than one session alone; --mode picks desktop (one
# root capture buffer, the figures in docs/admin.md) or seamless (the default:
# window captures only). Each process also shows its private clean/dirty
# memory (what only it maps: file pages read, and heap/relocations).
# Run as root:  SESSIOND_PREFIX=/opt/sessiond /opt/sessiond/venv/bin/python bench/bench_memory.py
#   e.g. --baseline '' --baseline-prefix /opt/sv-main --rounds 3 --sessions 3
"""Per-process PSS of an idle session and of sessiond: baseline settings vs ours."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import task

import smaps_detail
import spine_server
from client.known_hosts import KnownHosts
from protocol.messages import ChannelKind
from spine_server import BenchUsers, run_bench
from spine_workloads import connect, within

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
SCREEN = (1920, 1080)
# Seconds the session idles (client attached) before it is measured.
SETTLE_SECONDS = 4.0
USER_PREFIX = "svm-"
# Settings as they were before issue 15's memory work (the baseline).
BASELINE = "session.max_width=3840,session.max_height=2160,audio.sound_server=eager,session.zygote=false"
# Both configurations: a network namespace per session (chosen before
# Landlock scoping kept sessions off host abstract sockets; kept so the
# figures compare with the first runs, docs/admin.md).
COMMON = "session.network=loopback"
KIB = 1024
MIB = 1024 * 1024


def parse_settings(text: str) -> dict[str, dict[str, str]]:
    """'section.key=value,...' as {section: {key: value}}."""
    sections: dict[str, dict[str, str]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        section, _, key = name.partition(".")
        if not key or not _:
            raise ValueError(f"setting {item!r}: want section.key=value")
        sections.setdefault(section, {})[key] = value
    return sections


def rollup_bytes(pid: int, *fields: str) -> int:
    """The sum of FIELDS of /proc/PID/smaps_rollup (e.g. "Pss:"), or 0 once it is gone."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(fields):
                    total += int(line.split()[1]) * KIB
    except OSError:
        pass
    return total


def pss_bytes(pid: int) -> int:
    """The process's proportional set size, or 0 once it is gone."""
    return rollup_bytes(pid, "Pss:")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(name))
    return tree


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return "?"


# Fields of smaps_rollup shown per process: PSS and what only the process
# maps (private clean: file pages read; private dirty: heap, stacks, COW).
FIELDS = ("Pss:", "Private_Clean:", "Private_Dirty:")


@dataclass
class Measurement:
    """Per labelled process of each session of one configuration: FIELDS in bytes."""

    name: str
    daemon: int = 0
    daemon_private: int = 0  # USS: what only the daemon maps (freed if it exits); sharing cannot lower it
    sessions: list[dict[str, list[int]]] = field(default_factory=list)
    warm_slots: list[int] = field(default_factory=list)
    app: str = ""  # the launched app's processes are listed but not per-session memory
    objects: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # --detail: label -> smaps_detail

    @property
    def session(self) -> dict[str, int]:
        """PSS per label, the mean over the sessions measured."""
        return {label: values[0] for label, values in self.per_session().items()}

    def per_session(self) -> dict[str, list[int]]:
        """FIELDS per label, each the mean over the sessions measured."""
        count = max(1, len(self.sessions))
        labels = list(dict.fromkeys(label for one in self.sessions for label in one))
        return {label: [sum(one.get(label, [0] * len(FIELDS))[i] for one in self.sessions) // count
                         for i in range(len(FIELDS))] for label in labels}  # fmt: skip

    @property
    def session_total(self) -> int:
        """Every per-session process together but the app (PSS, mean over the sessions)."""
        return sum(value for label, value in self.session.items()
                   if not self.app or label.split("/")[0] != self.app)  # fmt: skip


def measure(daemon_pid: int, name: str, detail: bool = False) -> Measurement:
    """Label and measure sessiond's process tree (DETAIL: also each label's mappings)."""
    tree = _children()
    result = Measurement(name, daemon=pss_bytes(daemon_pid),
                         daemon_private=rollup_bytes(daemon_pid, "Private_Clean:", "Private_Dirty:"))  # fmt: skip

    def _add(into: dict[str, list[int]], label: str, pid: int) -> None:
        values = [rollup_bytes(pid, name) for name in FIELDS]
        into[label] = [a + b for a, b in zip(into.get(label, [0] * len(FIELDS)), values, strict=True)]
        if detail and not result.sessions:  # the first session's mappings
            smaps_detail.merge(result.objects.setdefault(label, {}), smaps_detail.pss_by_object(pid))

    for child in tree.get(daemon_pid, []):
        cmdline = _cmdline(child)
        if not any(mark in cmdline for mark in ("isolation.enter", "isolation/init.py", "sessiond-wait")):
            continue
        below = tree.get(child, [])
        if not below:  # a warm slot: spawned, waiting for its user
            result.warm_slots.append(pss_bytes(child))
            continue
        if len(below) == 1 and "--x-slot" in _cmdline(below[0]):  # a warm slot with its pre-started Xvfb
            slot_tree = [child, *below, *(pid for init in below for pid in tree.get(init, []))]
            result.warm_slots.append(sum(pss_bytes(pid) for pid in slot_tree))
            continue
        one: dict[str, list[int]] = {}
        _add(one, "sandbox supervisor (root)", child)
        for init in below:
            _add(one, "sandbox init", init)
            for agent in tree.get(init, []):
                if _comm(agent) == "Xvfb":  # a warm slot's Xvfb: the init's child, beside the agent
                    _add(one, "Xvfb", agent)
                    continue
                _add(one, "agent", agent)
                stack = [(pid, "") for pid in tree.get(agent, [])]
                while stack:  # an app's descendants (xterm's shell) are labelled "app/name"
                    pid, under = stack.pop()
                    label = f"{under}/{_comm(pid)}" if under else _comm(pid)
                    _add(one, label, pid)
                    stack.extend((child, under or label) for child in tree.get(pid, []))
        result.sessions.append(one)
    return result


async def attach_idle_client(reactor: Any, server: spine_server.BenchServer, users: BenchUsers, known: KnownHosts,
                             user_name: str, app: str = "") -> Any:  # fmt: skip
    """A new user USER_NAME logged in to SERVER with display and input open (an idle session's client),
    and APP launched (its first window shown) if given."""
    user = users.create(user_name)
    client = await within(reactor, connect(reactor, server.host, server.port, known), "the server")
    try:
        await within(reactor, client.login(user.name, user.password), f"login of {user.name}")
        await within(reactor, client.open_channel(ChannelKind.DISPLAY), "the display channel")
        await within(reactor, client.open_channel(ChannelKind.INPUT), "the input channel")
        if app:
            await within(reactor, client.launch(app), f"launch of {app}")
    except Exception:
        client.disconnect()
        raise
    return client


async def measure_config(reactor: Any, tmp: str, users: BenchUsers, known: KnownHosts, name: str,
                         settings: dict[str, dict[str, str]], venv_bin: str = spine_server.VENV_BIN,
                         sessions: int = 1, tag: str = "", app: str = "",
                         settle: float = SETTLE_SECONDS, detail: bool = False,
                         app_dirs: tuple[str, ...] = ()) -> Measurement:  # fmt: skip
    """Start sessiond (of the installation at VENV_BIN) with SETTINGS and the published apps of
    conf/apps and APP_DIRS, attach SESSIONS idle clients (one user each), let them idle SETTLE
    seconds, measure, stop."""
    server = await spine_server.start_sessiond(reactor, tmp, *SCREEN, [os.path.join(REPO, "conf", "apps"), *app_dirs],
                                               extra=settings, venv_bin=venv_bin)  # fmt: skip
    clients: list[Any] = []
    try:
        for index in range(sessions):
            clients.append(await attach_idle_client(reactor, server, users, known,
                                                    f"{USER_PREFIX}{name[:4]}{tag}{index}", app))  # fmt: skip
        await task.deferLater(reactor, settle, lambda: None)
        result = measure(server.pid, name, detail)
        result.app = app
        return result
    except Exception:
        print(f"--- sessiond log of {name} (tail) ---\n" + server.log()[-3000:], file=sys.stderr)
        raise
    finally:
        for client in clients:
            client.disconnect()
        await within(reactor, server.stop(reactor), "sessiond to stop", 30)


def _mib(value: float) -> str:
    return f"{value / MIB:.1f}"


def median_of(rounds: list[Measurement]) -> Measurement:
    """One Measurement holding, per label and field, the median over ROUNDS (one session each)."""
    result = Measurement(rounds[0].name, app=rounds[0].app, daemon=int(statistics.median(m.daemon for m in rounds)),
                         daemon_private=int(statistics.median(m.daemon_private for m in rounds)))  # fmt: skip
    per = [m.per_session() for m in rounds]
    labels = list(dict.fromkeys(label for one in per for label in one))
    zero = [0] * len(FIELDS)
    result.sessions = [{label: [int(statistics.median(one.get(label, zero)[i] for one in per))
                                for i in range(len(FIELDS))] for label in labels}]  # fmt: skip
    slots = [max(m.warm_slots) for m in rounds if m.warm_slots]
    result.warm_slots = [int(statistics.median(slots))] if slots else []
    return result


def report(base: Measurement, ours: Measurement) -> str:
    """PSS per process (MiB), both configurations side by side, with each one's private clean/dirty."""
    bper, oper = base.per_session(), ours.per_session()
    zero = [0] * len(FIELDS)
    labels = list(dict.fromkeys([*bper, *oper]))
    rows = [(label, _mib(bper.get(label, zero)[0]), _mib(oper.get(label, zero)[0]),
             "/".join(_mib(v) for v in bper.get(label, zero)[1:]),
             "/".join(_mib(v) for v in oper.get(label, zero)[1:])) for label in labels]  # fmt: skip
    app = f" (without {ours.app})" if ours.app else ""
    rows.append((f"= per session{app}", _mib(base.session_total), _mib(ours.session_total), "", ""))
    rows.append(("sessiond (daemon)", _mib(base.daemon), _mib(ours.daemon), "", ""))
    rows.append(("sessiond (daemon), private (USS)", _mib(base.daemon_private), _mib(ours.daemon_private), "", ""))
    for config in (base, ours):
        if config.warm_slots:
            slot = _mib(max(config.warm_slots))
            rows.append((f"idle warm slot ({config.name}, each)", *((slot, "") if config is base else ("", slot)),
                         "", ""))  # fmt: skip
    head = ("process (PSS, MiB)", f"baseline: {base.name}", f"ours: {ours.name}",
            "base priv clean/dirty", "ours priv clean/dirty")  # fmt: skip
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(head)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    ratio = ours.session_total / base.session_total if base.session_total else float("nan")
    lines.append(f"per-session ratio ours/baseline: {ratio:.2f}x")
    daemon_ratio = ours.daemon / base.daemon if base.daemon else float("nan")
    lines.append(f"daemon ratio ours/baseline: {daemon_ratio:.2f}x")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default=BASELINE, help=f"settings of the baseline (default {BASELINE!r})")
    parser.add_argument("--ours", default="", help="settings of ours (default: the installed defaults)")
    parser.add_argument("--baseline-prefix", default="",
                        help="run the baseline from another installation (e.g. main's checkout installed "
                             "with make install PREFIX=...), to compare code rather than settings")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1, help="measure each configuration this many times "
                        "(alternating, a fresh sessiond each) and print medians")  # fmt: skip
    parser.add_argument("--mode", choices=("desktop", "seamless"), default="desktop",
                        help="[session] mode of both (desktop: one root capture, as the figures in docs/admin.md; "
                             "seamless: the default, captures windows only, so an idle session without apps "
                             "has no capture buffer)")  # fmt: skip
    parser.add_argument("--app", default="", help="launch this published app in each session (e.g. xterm); "
                        "its processes are listed but not counted as per-session memory")  # fmt: skip
    parser.add_argument("--apps-dir", action="append", default=[], metavar="DIR",
                        help="publish the .desktop apps of DIR too (e.g. an xterm of the peer harness's "
                             "size, -geometry 180x50: bench/apps-peers)")  # fmt: skip
    parser.add_argument("--sessions", type=int, default=1, help="idle sessions at once per sessiond (one user "
                        "each); per-session figures are their mean")  # fmt: skip
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS, help="seconds each session idles "
                        f"before it is measured (default {SETTLE_SECONDS:.0f}; longer than [session] "
                        "idle_release_seconds (default 15) to see what an idle session gives back)")  # fmt: skip
    parser.add_argument("--detail", type=int, default=0, metavar="N", help="also print, per process of the "
                        "last round's session, its N largest mapped objects by PSS (/proc/PID/smaps)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench_memory: run as root (it creates users and starts sessiond)", file=sys.stderr)
        return 2
    base_bin = os.path.join(args.baseline_prefix, "venv", "bin") if args.baseline_prefix else spine_server.VENV_BIN
    configs = [(name, parse_settings(f"{COMMON},session.mode={args.mode},{text}"), venv) for name, text, venv in (
        ("baseline", args.baseline, base_bin), ("ours", args.ours, spine_server.VENV_BIN))]

    async def work(reactor: Any, tmp: str, users: BenchUsers) -> None:
        known = KnownHosts(os.path.join(tmp, "known_hosts"))
        load = os.getloadavg()[0]
        rounds: list[list[Measurement]] = [[], []]
        for index in range(args.rounds):
            for slot, (name, settings, venv) in enumerate(configs):
                rounds[slot].append(await measure_config(reactor, tmp, users, known, name, settings, venv,
                                                         args.sessions, f"{index}", args.app, args.settle,
                                                         args.detail > 0, tuple(args.apps_dir)))  # fmt: skip
        results = [median_of(each) for each in rounds]
        print(f"sessiond memory benchmark; screen {SCREEN[0]}x{SCREEN[1]} {args.mode}, {args.sessions} session(s) idle "
              f"{args.settle:.0f} s with a client attached each; medians of {args.rounds} round(s); "
              f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}")  # fmt: skip
        print(f"baseline settings: {args.baseline or '(defaults)'}; ours: {args.ours or '(defaults)'}")
        print(f"baseline installation: {os.path.dirname(base_bin)}; ours: {os.path.dirname(spine_server.VENV_BIN)}")
        print(report(*results))
        for slot, (name, _settings, _venv) in enumerate(configs):
            if args.detail and rounds[slot][-1].objects:
                print(f"largest mappings, {name} (last round; PSS MiB):")
                for label, objects in rounds[slot][-1].objects.items():
                    print("\n".join(smaps_detail.top_lines(label, objects, args.detail)))

    return run_bench("bench_memory", "svmem-", work)


if __name__ == "__main__":
    sys.exit(main())
