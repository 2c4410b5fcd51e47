# Where a login's time goes, step by step, in one run.
#
# Why wall-clock time stamps from two sides: the client sees connect (TLS),
# AUTH_RESULT, the display channel, the launch reply and the first frame; the
# server's log (milliseconds since sessiond/cli.py's LOG_TIME_FORMAT) shows
# when PAM said yes ("login ok"), when the sandbox was spawned or a warm slot
# claimed ("starting"), when the agent's link came up ("ready") and when the
# launch request arrived ("launches"); the agent's own start-up line (logged
# by sessiond as the agent's stderr, sessiond/agent/startup.py) adds when its
# code began to run, when Xvfb was ready and when it was set up. Client and
# server run on this host, so
# one clock orders them. What is not ours is measured on its own next to it:
# one PAM authentication of the same user (pam_unix's password hash), and the
# bare floor of Xvfb's start and of xterm from exec to its first map and one
# capture, without sessiond (bench/baselines.py's method, split in two). With
# SESSIOND_FRAME_TRACE=1 in the bench's environment the agent's trace
# (frame_trace.py) splits LAUNCH -> first frame further: the launch, the
# exec, the map as the agent saw it, and the first frame's damage, start and
# send after it (the "(trace)" rows; "-" without the trace).
"""timed_login(), server_marks(), floors() and the breakdown table."""

from __future__ import annotations

import glob
import os
import re
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pam
import Xlib.display
from twisted.internet import defer
from Xlib import X

from client.known_hosts import KnownHosts
from protocol.messages import ChannelKind, Launch
from sessiond.agent.frame_trace import parse_trace_line
from sessiond.agent.startup import AGENT_LOG, STARTUP_PREFIX
from sessiond.agent.xserver import start_xvfb
from sessiond.agent.xshm import ShmCapture
from spine_server import TestUser
from spine_workloads import XTERM_ARGS, connect, frame_where, within, xterm_visible

# The sessiond log lines that mark a login's server-side steps ({user} is filled in).
SERVER_MARKS = (
    ("pam ok", r"login ok for {user} from"),
    ("spawned", r"session \S+ starting for {user} "),
    ("agent ready", r"session \S+ ready for {user}$"),
    ("launch asked", r"{user} launches "),
)
# The agent's start-up line as sessiond logs it: session id, then "name TIME (+N ms)" items.
AGENT_LINE = re.compile(r"agent (\S+) stderr: " + re.escape(STARTUP_PREFIX) + r" (.*)$")
AGENT_ITEM = re.compile(r"([A-Za-z][A-Za-z ]*?) (\d+\.\d+) \(")
# The agent's SESSIOND_FRAME_TRACE lines as sessiond logs them: session id, then name and time.monotonic().
TRACE_LINE = re.compile(r"agent (\S+) stderr: frame-trace (\S+) (\d+\.\d+)$")
# Trace marks kept per login: the launch's own ("launch", "exec", "mapped"), then the
# display pipeline's first "notify", "frame", "encoded" and "out" after the map (its first
# frame); and the frame the display channel's open asks for (the first of all, "open ...").
LAUNCH_TRACE = ("launch", "exec", "mapped")
FRAME_TRACE = ("notify", "frame", "encoded", "out")
# When timed_login sends the LAUNCH: after the display channel opened, in its flight, before it,
# or in the AUTH itself (the session starts the app as soon as its X server is up).
AFTER_OPEN, WITH_OPEN, BEFORE_OPEN, WITH_AUTH = "after-open", "with-open", "before-open", "with-auth"
LAUNCH_ORDERS = (AFTER_OPEN, WITH_OPEN, BEFORE_OPEN, WITH_AUTH)
# A sessiond log line: its time stamp, then the text.
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d{4}) \[[^]]*\] (.*)$")
# The PAM service sessiond authenticates with (conf/pam.d/sessiond).
PAM_SERVICE = "sessiond"


@dataclass
class TimedLogin:
    """Wall-clock time stamps (time.time()) of one login's steps, by name."""

    marks: dict[str, float] = field(default_factory=dict)


async def timed_login(reactor: Any, host: str, port: int, known: KnownHosts, user: TestUser, app: str,
                      order: str = AFTER_OPEN, seamless: bool = False) -> TimedLogin:  # fmt: skip
    """One new session of USER launching APP (an xterm), time-stamping each client-side step.
    ORDER (LAUNCH_ORDERS): the LAUNCH once the display channel is open (as before), right
    behind its open in the same flight, ahead of the open, or in the AUTH (the viewer's desktop mode).
    SEAMLESS: the session runs seamless mode; the windows channel opens first (as the viewer's)
    and the first frame is the first that shows xterm's window."""
    run = TimedLogin()
    run.marks["connect"] = time.time()
    client = await within(reactor, connect(reactor, host, port, known), "the server")
    try:
        run.marks["tls done"] = time.time()
        with_auth = Launch(request=1, app=app) if order == WITH_AUTH else None
        await within(reactor, client.login(user.name, user.password, with_auth), f"login of {user.name}")
        run.marks["auth result"] = time.time()
        launching = defer.ensureDeferred(client.launch(app)) if order == BEFORE_OPEN else None
        if with_auth is not None:
            launching = defer.ensureDeferred(client.login_launched())
        windows = defer.ensureDeferred(client.open_windows()) if seamless else None
        opening = defer.ensureDeferred(client.open_channel(ChannelKind.DISPLAY))
        if order == WITH_OPEN:
            launching = defer.ensureDeferred(client.launch(app))
        await within(reactor, opening, "the display channel")
        if windows is not None:
            await within(reactor, windows, "the windows channel")
        run.marks["display open"] = time.time()
        if seamless:
            def visible() -> bool:
                return any(xterm_visible(window.framebuffer) for window in client.windows.stacked())
        else:
            def visible() -> bool:
                return xterm_visible(client.framebuffer)
        shown = defer.ensureDeferred(frame_where(reactor, client, visible, "xterm's first frame"))
        await within(reactor, launching or client.launch(app), f"launch of {app}")
        run.marks["launched"] = time.time()
        await shown
        run.marks["first frame"] = time.time()
    finally:
        client.disconnect()
    return run


def session_logs(runtime_dir: str) -> dict[str, str]:
    """The agents' own logs (runtime_dir/sessions/ID/agent.log, where the agent writes once
    up: its frame trace) by session id; read before sessiond stops and removes them."""
    logs = {}
    for path in glob.glob(os.path.join(runtime_dir, "sessions", "*", AGENT_LOG)):
        with open(path, encoding="utf-8", errors="replace") as handle:
            logs[os.path.basename(os.path.dirname(path))] = handle.read()
    return logs


def server_marks(log_text: str, user: str, agent_logs: dict[str, str] | None = None) -> dict[str, float]:
    """The SERVER_MARKS of USER's login found in sessiond's log, as wall-clock times; with
    AGENT_LOGS (session_logs()) also the trace marks of its launch and first frame."""
    found: dict[str, float] = {}
    patterns = [(name, re.compile(pattern.format(user=re.escape(user)))) for name, pattern in SERVER_MARKS]
    session = re.compile(r"session (\S+) starting for " + re.escape(user) + " ")
    session_id = None
    traced: list[tuple[str, float]] = []
    for line in log_text.splitlines():
        match = LOG_LINE.match(line)
        if match is None:
            continue
        text = match.group(2)
        for name, pattern in patterns:
            if name not in found and pattern.search(text):
                found[name] = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        started = session.search(text)
        if started and session_id is None:
            session_id = started.group(1)
        agent = AGENT_LINE.search(text)
        if agent and agent.group(1) == session_id:
            found.update({f"agent: {name}": float(at) for name, at in AGENT_ITEM.findall(agent.group(2))})
        mark = TRACE_LINE.search(text)
        if mark and mark.group(1) == session_id:
            traced.append((mark.group(2), float(mark.group(3))))
    if session_id is not None and agent_logs:
        traced += [mark for line in agent_logs.get(session_id, "").splitlines() if (mark := parse_trace_line(line))]
    found.update(_trace_marks(traced))
    return found


def _trace_marks(traced: list[tuple[str, float]]) -> dict[str, float]:
    """The launch's trace marks and the first frame's after its map, as wall-clock times
    (time.monotonic is one clock for the whole host; the offset is read here)."""
    offset = time.time() - time.monotonic()
    found: dict[str, float] = {}
    for name, at in sorted(traced, key=lambda item: item[1]):
        if name in LAUNCH_TRACE and f"trace: {name}" not in found:
            found[f"trace: {name}"] = at + offset
        elif name in FRAME_TRACE and "trace: mapped" in found and f"trace: {name}" not in found:
            found[f"trace: {name}"] = at + offset
        elif name in FRAME_TRACE and "trace: mapped" not in found and f"trace: open {name}" not in found:
            found[f"trace: open {name}"] = at + offset  # the first frame: the display channel's open
    return found


def pam_seconds(user: TestUser) -> float:
    """One PAM authentication of USER through sessiond's service (the password hash is most of it)."""
    handle = pam.pam()
    started = time.perf_counter()
    if not handle.authenticate(user.name, user.password, service=PAM_SERVICE, resetcreds=False):
        raise RuntimeError(f"PAM refused {user.name}: {handle.reason}")
    return time.perf_counter() - started


def floors(width: int, height: int) -> tuple[float, float]:
    """(Xvfb start to ready, xterm exec to first map + one capture): the floor without sessiond."""
    started = time.perf_counter()
    server = start_xvfb(width, height)
    xvfb = time.perf_counter() - started
    xterm: subprocess.Popen[bytes] | None = None
    disp = Xlib.display.Display(server.display)
    try:
        disp.screen().root.change_attributes(event_mask=X.SubstructureNotifyMask)
        disp.sync()
        started = time.perf_counter()
        xterm = subprocess.Popen(["xterm", *XTERM_ARGS], env={**os.environ, "DISPLAY": server.display},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        while True:  # blocks on the X connection until the map event arrives
            event = disp.next_event()
            if event.type == X.MapNotify and not event.override:
                break
        with ShmCapture(server.display) as capture:
            capture.capture()
        return xvfb, time.perf_counter() - started
    finally:
        disp.close()
        if xterm is not None:
            xterm.kill()
            xterm.wait()
        server.stop()


# The steps of the table: (label, from mark, to mark); marks of both sides merged.
STEPS = (
    ("TLS connect + handshake", "connect", "tls done"),
    ("AUTH -> PAM ok (PAM's hash)", "tls done", "pam ok"),
    ("PAM ok -> sandbox spawned/claimed", "pam ok", "spawned"),
    ("spawned -> agent code runs (sandbox entry, fork/exec)", "spawned", "agent: agent main"),
    ("agent code runs -> Xvfb ready", "agent: agent main", "agent: Xvfb ready"),
    ("Xvfb ready -> agent set up (X set-up, services)", "agent: Xvfb ready", "agent: set up"),
    ("agent set up -> link up at sessiond", "agent: set up", "agent ready"),
    ("= spawned -> agent link up", "spawned", "agent ready"),
    ("= AUTH -> agent code runs (PAM and the sandbox entry)", "tls done", "agent: agent main"),
    ("agent up -> AUTH_RESULT at client", "agent ready", "auth result"),
    ("display channel open (round trip)", "auth result", "display open"),
    ("LAUNCH -> at sessiond", "display open", "launch asked"),
    ("at sessiond -> launch reply at client", "launch asked", "launched"),
    ("launch reply -> first frame with xterm", "launched", "first frame"),
    ("  (trace) the display open's frame: start -> encoded", "trace: open frame", "trace: open encoded"),
    ("  (AUTH's launch) Xvfb ready -> the agent starts it", "agent: Xvfb ready", "agent: first launch"),
    ("  (trace) LAUNCH at sessiond -> agent runs it", "launch asked", "trace: launch"),
    ("  (trace) agent launch -> xterm exec'd", "trace: launch", "trace: exec"),
    ("  (trace) exec'd -> map seen by the agent", "trace: exec", "trace: mapped"),
    ("  (trace) map seen -> damage notify", "trace: mapped", "trace: notify"),
    ("  (trace) map seen -> frame starts", "trace: mapped", "trace: frame"),
    ("  (trace) frame starts -> encoded", "trace: frame", "trace: encoded"),
    ("  (trace) encoded -> frame out", "trace: encoded", "trace: out"),
    ("  (trace) frame out -> first frame at client", "trace: out", "first frame"),
    ("= PAM ok -> first frame (PAM's noise left out)", "pam ok", "first frame"),
    ("= login (after TLS) -> first frame", "tls done", "first frame"),
    ("= connect -> first frame (TLS included)", "connect", "first frame"),
)


def breakdown_table(rows: list[tuple[str, list[dict[str, float]]]]) -> str:
    """Median milliseconds per step (rows: configuration name, marks of each login)."""
    head = ["step (median ms)", *(name for name, _ in rows)]
    table = []
    for label, start, end in STEPS:
        cells = [label]
        for _name, runs in rows:
            spans = [run[end] - run[start] for run in runs if start in run and end in run]
            cells.append(f"{statistics.median(spans) * 1000:.0f}" if spans else "-")
        table.append(cells)
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(head)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in table]
    return "\n".join(lines)
