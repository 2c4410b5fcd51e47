# Warm sandboxes: agent zygotes started before anyone logs in.
#
# Why: most of a session's start-up before its first frame is the sandbox
# entry's interpreter starting and the agent importing its display pipeline;
# none of that depends on who logs in. With `[session] warm_pool = N`,
# sessiond keeps N `python -m isolation.enter --zygote` processes spawned
# ahead of time (isolation/zygote.py): each has the agent's code loaded and
# is blocked reading its spec on stdin. A login claims one and writes the
# same spec a cold start would write (account, session id, cgroup, private
# mounts); the entry then does everything as for a cold start: account
# re-check, namespaces, cgroup, fresh tmpfs mounts, privilege drop and its
# verification, and the agent. So:
#  - a slot is never shared: it reads exactly one spec, for one user, and is
#    gone from the pool the moment it is claimed (a new one is spawned);
#  - a slot never runs anything as a user before its claim, and nothing the
#    session sees (/tmp, /dev/shm, /run/user/UID, its cgroup) exists before it;
#  - what waits is root running only imports of root-owned code, the same
#    privilege and code as a cold start's entry before it reads its spec.
# A slot that dies unclaimed is replaced after a delay that doubles up to
# RESPAWN_MAX_SECONDS, so a broken interpreter cannot make sessiond spin.
#
# Early slots: with the pool empty (warm_pool = 0, the default, or drained),
# an AUTH that would start a new session spawns one slot at once
# (spawn_early), so the entry's interpreter start and imports run while PAM
# checks the password instead of after it; the login then claims it like any
# warm slot. It is the same root process with the same code as a warm slot
# or a cold start's entry before its spec, so the rules above hold: nothing
# runs as the user before PAM said yes and the spec is written. Bounded:
# at most MAX_EARLY_SLOTS unclaimed at once (more AUTHs start cold), and one
# still unclaimed EARLY_SLOT_SECONDS later (the password was wrong, the
# client left) is killed, so a warm_pool = 0 server keeps no slot standing.
#
# The refill after a claim waits REFILL_DELAY_SECONDS: a new slot is an
# interpreter importing the agent (~0.2 s of CPU), and spawned at once it ran
# exactly while the claimed session started (Xvfb, the agent's set-up, the
# app, the first frame), taking one of this host's cores from that login.
# A login that comes during the delay still overlaps its PAM with an early
# slot, as on a server without a pool.
#
# Pre-started X (`[session] warm_x`, on by default): each slot also gets a
# uid of its own from [session] x_uids (sessiond/x_uids.py) and a slot line
# (isolation/slot.py) right after its spawn, and starts the session's Xvfb in
# its fresh namespaces before any login (isolation/xslot.py). A login claims
# only a slot whose screen is the one its settings ask for (another stays for
# the next login, this one starts cold); the uid goes with the slot into the
# session and comes back when the slot's process (the sandbox supervisor)
# ends. With the range exhausted, a slot is spawned without X, as before.
"""WarmSlot (one waiting zygote) and WarmPool (keeps N of them ready)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet import error, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from isolation.cgroups import CgroupError
from isolation.launcher import enter_argv, enter_env
from isolation.slot import SlotParams, slot_line
from isolation.slot_cgroup import adopt_slot_cgroup, create_slot_cgroup, remove_slot_cgroup, remove_stale_slot_cgroups
from sessiond.agent.settings import XScreen
from sessiond.x_uids import XUidPool

log = Logger()

# First delay before replacing a slot that died unclaimed; doubled per death in a row.
RESPAWN_MIN_SECONDS = 1.0
RESPAWN_MAX_SECONDS = 60.0
# Output an unclaimed slot may produce that is kept for the log (it should produce none).
MAX_UNCLAIMED_OUTPUT = 4096
# Early slots (spawned by an AUTH, see the header) unclaimed at once: each is a root
# interpreter of ~37 MiB, and failed logins must not pile them up.
MAX_EARLY_SLOTS = 2
# How long an early slot waits for its login (PAM, its failure delay, the session's start).
EARLY_SLOT_SECONDS = 30.0
# Seconds from a claim to the spawn of its replacement: after the claimed session's first
# frame (login -> first frame with a warm slot is ~0.3 s here), so the two do not compete.
REFILL_DELAY_SECONDS = 1.0


class SlotCgroups(Protocol):
    """The cgroups slots wait in (isolation/slot_cgroup.py): made per slot, removed with an
    unclaimed one, and the empty ones a killed daemon left removed at the pool's start."""

    def create(self) -> str | None: ...
    def remove(self, name: str) -> None: ...
    def remove_stale(self) -> int: ...


class KernelSlotCgroups:
    """SlotCgroups on this host's cgroups."""

    def create(self) -> str | None:
        return create_slot_cgroup()

    def remove(self, name: str) -> None:
        remove_slot_cgroup(name)

    def remove_stale(self) -> int:
        return remove_stale_slot_cgroups()


@dataclass(frozen=True)
class SlotX:
    """What the pool's slots start their X servers with: the uids, namespaces and screen;
    and the cgroups they wait in (None: they join their session's at the claim)."""

    uids: XUidPool
    namespaces: tuple[str, ...]
    screen: XScreen
    cgroups: SlotCgroups | None = None


class WarmSlot(protocol.ProcessProtocol):
    """One spawned zygote waiting for its spec; once claimed, its output and
    exit go to the claiming session's process protocol. X: its pre-started X server's
    parameters (None: a slot without one)."""

    def __init__(self, pool: WarmPool, x: SlotParams | None = None) -> None:
        self.pool = pool
        self.x = x
        # The slot cgroup it waits in while the pool must remove it ("" once a session took it over).
        self.cgroup = x.cgroup if x is not None else ""
        self.owner: protocol.ProcessProtocol | None = None
        self.ended = False
        self._unclaimed_output = b""

    def fits(self, screen: XScreen | None) -> bool:
        """True if a session that needs SCREEN may take this slot (any, if it has no X server)."""
        return self.x is None or (screen is not None and (self.x.width, self.x.height, self.x.depth,
                                                          self.x.root_shown) == tuple(screen))  # fmt: skip

    @property
    def pid(self) -> int | None:
        """The zygote's pid (the sandbox supervisor once claimed)."""
        return None if self.transport is None else self.transport.pid  # type: ignore[attr-defined]

    def claim(self, owner: protocol.ProcessProtocol) -> Any:
        """Hand this slot to OWNER (a session's AgentProcess); returns the process transport."""
        self.owner = owner
        owner.makeConnection(self.transport)
        return self.transport

    def give_cgroup(self, session_id: str) -> bool:
        """Rename the cgroup this slot waits in to SESSION_ID's (isolation/slot_cgroup.py): the
        session's now, with the slot and its X server in it (its limits still to be written).
        False if the slot has none or the rename fails (logged): the slot joins a new one."""
        if not self.cgroup:
            return False
        if not adopt_slot_cgroup(self.cgroup, session_id):
            log.warn("session {session}: cannot rename the slot's cgroup {name}; the slot joins a new one",
                     session=session_id, name=self.cgroup)  # fmt: skip
            return False
        self.cgroup = ""  # no longer the pool's to remove
        return True

    def discard(self) -> None:
        """A claimed slot that will not be used (its sandbox could not be made): kill it quietly."""
        self.owner = self.owner or protocol.ProcessProtocol()
        if self.transport is not None and not self.ended:
            try:
                self.transport.signalProcess("KILL")  # type: ignore[attr-defined]
            except error.ProcessExitedAlready:
                pass

    def outReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted name
        if self.owner is not None:
            self.owner.outReceived(data)
        else:
            self._keep(data)

    def errReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted name
        if self.owner is not None:
            self.owner.errReceived(data)
        else:
            self._keep(data)

    def _keep(self, data: bytes) -> None:
        room = MAX_UNCLAIMED_OUTPUT - len(self._unclaimed_output)
        if room > 0:
            self._unclaimed_output += data[:room]

    def processEnded(self, reason: Failure) -> None:  # noqa: N802 - Twisted name
        self.ended = True
        self.pool.release_x(self)  # the supervisor ended: its PID namespace, X server included, is gone
        if self.owner is not None:
            self.owner.processEnded(reason)
        else:
            self.pool.slot_died(self, reason, self._unclaimed_output.decode("utf-8", "replace").strip())


class WarmPool:
    """Keeps SIZE warm slots spawned; claim() hands one out and spawns its replacement."""

    def __init__(self, reactor: Any, python: str, size: int, early: bool = False, x: SlotX | None = None) -> None:
        self.reactor = reactor
        self.python = python
        self.size = size
        self.early = early  # an AUTH may spawn a slot when none waits (spawn_early)
        self.x = x  # slots pre-start their X server (see the header)
        self.idle: list[WarmSlot] = []
        self._early: dict[WarmSlot, Any] = {}  # unclaimed early slot -> its expiry (IDelayedCall)
        self.running = False
        self._delay = RESPAWN_MIN_SECONDS
        self._refill: Any = None  # IDelayedCall of a pending refill

    def start(self) -> None:
        """Spawn slots up to the pool's size."""
        self.running = True
        if self.x is not None and self.x.cgroups is not None:
            removed = self.x.cgroups.remove_stale()
            if removed:
                log.info("warm pool: removed {count} empty slot cgroup(s) left by an earlier sessiond", count=removed)
        self.fill()

    def fill(self) -> None:
        """Spawn slots until SIZE are waiting (nothing once stopped)."""
        self._refill = None
        while self.running and len(self.idle) < self.size:
            if self._spawn() is None:
                self._schedule_refill()
                return

    def _spawn(self) -> WarmSlot | None:
        params = self._slot_params()
        slot = WarmSlot(self, params)
        try:
            argv = enter_argv(self.python, zygote=True, x_slot=params is not None)
            self.reactor.spawnProcess(slot, self.python, argv, env=enter_env(), path="/",
                                      childFDs={0: "w", 1: "r", 2: "r"})  # fmt: skip
        except OSError as exc:
            log.error("warm pool: cannot spawn a sandbox: {why}", why=str(exc))
            self.release_x(slot)
            return None
        if params is not None:
            slot.transport.write(slot_line(params))  # type: ignore[union-attr]
        self.idle.append(slot)
        return slot

    def _slot_params(self) -> SlotParams | None:
        if self.x is None:
            return None
        uid = self.x.uids.allocate()
        if uid is None:
            log.warn("warm pool: every uid of [session] x_uids is in use; this slot starts without an X server")
            return None
        screen = self.x.screen
        return SlotParams(x_uid=uid, namespaces=self.x.namespaces, width=screen.width, height=screen.height,
                          depth=screen.depth, root_shown=screen.root_shown, cgroup=self._slot_cgroup())  # fmt: skip

    def _slot_cgroup(self) -> str:
        """A new slot cgroup's name, or "" (none on this host, or it could not be made)."""
        if self.x is None or self.x.cgroups is None:
            return ""
        try:
            return self.x.cgroups.create() or ""
        except (CgroupError, OSError) as exc:
            log.warn("warm pool: cannot make a cgroup for a slot ({why}); its login joins the session's cgroup",
                     why=str(exc))  # fmt: skip
            return ""

    def release_x(self, slot: WarmSlot) -> None:
        """SLOT's process ended (or never started): its X uid is free again, and the slot
        cgroup no session took over is removed with what is left in it."""
        if slot.x is not None and self.x is not None:
            self.x.uids.release(slot.x.x_uid)
        if slot.cgroup and self.x is not None and self.x.cgroups is not None:
            name, slot.cgroup = slot.cgroup, ""
            try:
                self.x.cgroups.remove(name)
            except (CgroupError, OSError) as exc:  # (e.g. gone meanwhile): never keep the pool from refilling
                log.warn("warm pool: cannot remove the slot cgroup {name}: {why}", name=name, why=str(exc))

    def spawn_early(self) -> bool:
        """A login may start a new session soon: spawn a slot now if none waits (see the header).
        False if none was spawned (off, one waits already, MAX_EARLY_SLOTS unclaimed, spawn failed)."""
        if not (self.running and self.early) or self.idle or len(self._early) >= MAX_EARLY_SLOTS:
            return False
        slot = self._spawn()
        if slot is None:
            return False
        self._early[slot] = self.reactor.callLater(EARLY_SLOT_SECONDS, self._expire, slot)
        return True

    def _expire(self, slot: WarmSlot) -> None:
        """An early slot nobody claimed in time: end it (a pool of SIZE keeps what it would have)."""
        self._early.pop(slot, None)
        if slot in self.idle and len(self.idle) > self.size:
            self.idle.remove(slot)
            slot.discard()

    def _claimed(self, slot: WarmSlot) -> None:
        expiry = self._early.pop(slot, None)
        if expiry is not None and expiry.active():
            expiry.cancel()

    def claim(self, screen: XScreen | None = None) -> WarmSlot | None:
        """A waiting slot (removed from the pool) that fits a session needing SCREEN, or None if none
        is ready; the pool refills. A slot whose X server does not fit stays for the next login."""
        for slot in [slot for slot in self.idle if slot.ended or slot.transport is None or slot.fits(screen)]:
            self.idle.remove(slot)
            self._claimed(slot)
            if not slot.ended and slot.transport is not None:
                self._delay = RESPAWN_MIN_SECONDS  # a slot lived until used: spawning works
                if self.running and self._refill is None:  # (see the header)
                    self._refill = self.reactor.callLater(REFILL_DELAY_SECONDS, self.fill)
                return slot
        return None

    def slot_died(self, slot: WarmSlot, reason: Failure, output: str) -> None:
        """An unclaimed slot exited: log it and replace it after the back-off delay."""
        if slot in self.idle:
            self.idle.remove(slot)
        self._claimed(slot)
        if not self.running:
            return
        log.warn("warm pool: a waiting sandbox exited ({why}){output}; replacing it in {delay:.0f} s",
                 why=reason.getErrorMessage(), output=f": {output}" if output else "", delay=self._delay)  # fmt: skip
        self._schedule_refill()

    def _schedule_refill(self) -> None:
        if self.running and self._refill is None:
            self._refill = self.reactor.callLater(self._delay, self.fill)
            self._delay = min(self._delay * 2, RESPAWN_MAX_SECONDS)

    def stop(self) -> None:
        """Stop refilling and end every waiting slot (they hold no session)."""
        self.running = False
        if self._refill is not None and self._refill.active():
            self._refill.cancel()
        self._refill = None
        for slot in list(self._early):
            self._claimed(slot)
        idle, self.idle = self.idle, []
        for slot in idle:
            if slot.transport is not None and not slot.ended:
                try:
                    slot.transport.signalProcess("KILL")  # type: ignore[attr-defined]
                except error.ProcessExitedAlready:
                    pass
