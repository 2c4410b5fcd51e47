# The session supervisor: one session per user (a second login resumes it),
# started on demand, re-adopted after a sessiond restart, and ended or left
# running when sessiond stops ([server] on_stop). It also owns the USB
# policy in force, reloaded while devices are shared, and re-checks every
# session's USB filter when it changes.
"""SessionSupervisor."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from isolation.accounts import Account
from isolation.sandbox import session_namespaces
from sessiond.agent.settings import XScreen
from sessiond.farm.directory import FarmConflict, FarmDirectory
from sessiond.registry import Registry
from sessiond.sessions import Session, SessionState
from sessiond.spawn import agent_settings
from sessiond.usb_policy import policy_from_config
from sessiond.usb_rules import UsbPolicy, UsbPolicyWatcher
from sessiond.warm_pool import KernelSlotCgroups, SlotX, WarmPool, WarmSlot
from sessiond.x_uids import XUidPool, XUidRange

if TYPE_CHECKING:
    from sessiond.config import Config
    from sessiond.launching import FirstLaunch

log = Logger()


def load_usb_policy(path: str) -> UsbPolicy:
    """The [usb] policy of the config file at PATH; ValueError if the file is invalid."""
    from sessiond.config import ConfigError, load_config

    try:
        return policy_from_config(load_config(path).usb)
    except ConfigError as exc:
        raise ValueError(str(exc)) from exc


@dataclass(frozen=True)
class Redirect:
    """The user's session is (or was just placed) on another host of the farm."""

    user: str
    session_id: str
    host_id: str
    advertise: str  # HOST:PORT of that host
    notice: str = ""  # what happened, for the user (a lost session replaced by this placement)


def slot_x(config: Config) -> SlotX | None:
    """How warm and early slots pre-start their X server, or None: [session] warm_x off, no
    zygote, or x_uids overlapping an account or a subordinate id range (logged: slots then
    start without X, as before)."""
    if not (config.session.warm_x and config.session.zygote):
        return None
    uids = XUidRange(*config.session.x_uids)
    overlap = uids.overlaps()
    if overlap is not None:
        log.error("[session] x_uids = {first}-{last} is not free: {what}; warm slots start without an X server "
                  "(docs/admin.md, warm_x)", first=uids.first, last=uids.last, what=overlap)  # fmt: skip
        return None
    screen = agent_settings(config, "", config.session.max_width, config.session.max_height,
                            display=config.session.display).x_screen()  # fmt: skip
    return SlotX(uids=XUidPool(uids), namespaces=session_namespaces(config.session.network), screen=screen,
                 cgroups=KernelSlotCgroups())


class SessionSupervisor:
    """Owns every session; one per user (a second login resumes it)."""

    def __init__(self, config: Config, reactor: Any, registry: Registry) -> None:
        self.config = config
        self.reactor = reactor
        self.registry = registry
        self.sessions: dict[str, Session] = {}
        self._starting: dict[str, defer.Deferred[Any]] = {}
        # The session directory (sessiond/farm/): set by the daemon; None in tests of the supervisor alone.
        self.directory: FarmDirectory | None = None
        # Sandboxes started ahead of logins ([session] warm_pool; started by SupervisorService).
        # A warm slot is a zygote: no pool without [session] zygote.
        self.warm_pool = WarmPool(reactor, config.session.python,
                                  config.session.warm_pool if config.session.zygote else 0,
                                  early=config.session.zygote, x=slot_x(config))  # fmt: skip
        self._usb_watcher = UsbPolicyWatcher(config.source, policy_from_config(config.usb),
                                             config.usb.recheck_interval, reactor, load_usb_policy,
                                             self.usb_recheck)

    def refresh_compose_cache(self) -> None:
        """libX11's compose cache for the sessions' locale, made in the background if it is missing or
        stale ([session] compose_cache; sessiond/compose_cache.py), as a uid of the slots' x_uids."""
        if self.config.session.compose_cache:
            from sessiond import compose_cache  # noqa: PLC0415 - once, seconds after the start (sessiond/daemon.py)

            x = self.warm_pool.x
            compose_cache.refresh(self.reactor, self.config.session.python, x.uids if x is not None else None,
                                  self.config.session.lang)  # fmt: skip

    def adopt_all(self) -> defer.Deferred[Any]:
        """Re-adopt the live sessions a previous sessiond left (restart/crash)."""
        from isolation.accounts import AccountError, lookup_account

        waits = []
        for record in self.registry.live_sessions():
            try:
                account = lookup_account(record.user, min_uid=1)
            except AccountError as exc:
                log.warn("session {session}: cannot re-adopt: {why}", session=record.id, why=str(exc))
                self.registry.update_session(record.id, state=SessionState.ENDED.value, ended=time.time())
                continue
            session = Session(self, account, record.id)
            self.sessions[account.name] = session
            d = session.adopt(self.reactor, record)
            self._starting[account.name] = d
            d.addBoth(self._adopted, session)
            waits.append(d)
        return defer.DeferredList(waits, consumeErrors=True)

    def _adopted(self, result: Any, session: Session) -> None:
        self._starting.pop(session.account.name, None)
        if isinstance(result, Failure):
            self.registry.audit("adopt_failed", user=session.account.name, session=session.id,
                                detail=result.getErrorMessage())  # fmt: skip
        else:
            self.registry.audit("adopted", user=session.account.name, session=session.id)

    async def adopt_farm_sessions(self) -> None:
        """This host (re-)registered in the farm: take back each session it runs. One replaced
        meanwhile (the user got a new session elsewhere) is audited and logged off."""
        if self.directory is None:
            return
        for name, session in list(self.sessions.items()):
            try:
                kept = await self.directory.adopt(name, session.id)
            except Exception as exc:  # noqa: BLE001 - one session's failure must not stop the others
                log.warn("farm: cannot adopt session {session} of {user}: {why}", session=session.id, user=name,
                         why=str(exc))  # fmt: skip
                continue
            if not kept:
                self.registry.audit("farm_duplicate", user=name, session=session.id,
                                    detail="replaced in the farm while this host was cut off")  # fmt: skip
                session.terminate()

    def usb_policy(self) -> UsbPolicy:
        """The USB device policy in force ([usb], reloaded while devices are shared)."""
        return self._usb_watcher.current()

    def usb_recheck(self) -> int:
        """Apply the current USB policy to every session; one session's failure is logged and
        skipped, never stops the others or the watcher. Returns the devices detached."""
        detached = 0
        for session in list(self.sessions.values()):
            try:
                detached += session.usb.recheck()
            except Exception:  # noqa: BLE001 - the error boundary of one session's re-check
                log.failure("session {session} of {user}: USB policy re-check failed", session=session.id,
                            user=session.account.name)  # fmt: skip
        return detached

    def usb_watch(self) -> None:
        """A device is shared: keep watching the policy for changes."""
        self._usb_watcher.ensure_running()

    def busy_users(self) -> set[str]:
        """Users with a session on this host, running or starting."""
        return set(self.sessions) | set(self._starting)

    def warm_slot(self, screen: XScreen) -> WarmSlot | None:
        """A warm sandbox for a new session whose X server needs SCREEN, or None (pool off, empty,
        still refilling, or no slot's pre-started X server fits)."""
        return self.warm_pool.claim(screen)

    def login_started(self, user: str) -> None:
        """An AUTH for USER arrived: if its success would start a new session here, let the
        warm pool spawn a slot now, so the sandbox entry starts while PAM checks the password
        (sessiond.warm_pool, early slots). Nothing of USER's exists until the login claims it.
        Not in a farm: the directory may place the session on another host."""
        if not self.config.farm.enabled and user not in self.sessions and user not in self._starting:
            self.warm_pool.spawn_early()

    def by_id(self, session_id: str) -> Session | None:
        return next((s for s in self.sessions.values() if s.id == session_id), None)

    def get_or_start(self, account: Account, first: FirstLaunch | None = None,
                     screen: tuple[int, int] | None = None) -> defer.Deferred[Session | Redirect]:  # fmt: skip
        """The user's running session, or a new one once its agent is up (started with the
        login's FIRST launch: Session.start, at the SCREEN size the login asked for: Session);
        in a farm, a Redirect when the directory places (or finds) the user's session on
        another host.

        Errors: FarmUnavailable (this host is cut off from etcd: no new placements),
        FarmFull, FarmConflict, and whatever stops a session from starting.
        """
        existing = self.sessions.get(account.name)
        if existing is not None and existing.state in (SessionState.ACTIVE, SessionState.DISCONNECTED) \
                and existing.link is not None:
            return defer.succeed(existing)
        waiting = self._starting.get(account.name)
        if waiting is not None:
            d: defer.Deferred[Session | Redirect] = defer.Deferred()
            waiting.addBoth(_chain_to(d))
            return d
        if self.directory is None:
            started = self._start(account, Session(self, account, screen=screen), first)
        else:
            started = defer.Deferred.fromCoroutine(self._place_and_start(account, self.directory, first, screen))
        self._starting[account.name] = started

        def done(result: Any) -> Any:
            if self._starting.get(account.name) is started:
                del self._starting[account.name]
            return result

        started.addBoth(done)
        out: defer.Deferred[Session | Redirect] = defer.Deferred()
        started.addBoth(_chain_to(out))
        return out

    def _start(self, account: Account, session: Session, first: FirstLaunch | None) -> defer.Deferred[Any]:
        self.sessions[account.name] = session
        return session.start(self.reactor, first)

    async def _place_and_start(self, account: Account, directory: FarmDirectory, first: FirstLaunch | None,
                               screen: tuple[int, int] | None) -> Session | Redirect:  # fmt: skip
        claim = await directory.place(account.name, secrets.token_hex(8))
        placement = claim.placement
        notice = ""
        if claim.replaced_lost is not None:
            lost = claim.replaced_lost
            notice = (f"Your previous session ({lost.session_id}) was on host {lost.host_id}, which "
                      f"stopped answering; it is lost. This is a new session.")  # fmt: skip
            self.registry.audit("farm_replaced_lost", user=account.name, session=placement.session_id,
                                detail=f"lost {lost.session_id} on {lost.host_id}")  # fmt: skip
        if placement.host_id != directory.host_id:
            log.info("farm: {user}'s session {session} is on {host}: redirecting", user=account.name,
                     session=placement.session_id, host=placement.host_id)  # fmt: skip
            return Redirect(account.name, placement.session_id, placement.host_id, placement.advertise, notice)
        held = self.sessions.get(account.name)
        if claim.existing and held is not None and held.id == placement.session_id:
            # Still ours but not usable (ending, or its agent is gone): never a second Session under its id.
            raise FarmConflict("your previous session is still ending; log in again in a moment")
        session = Session(self, account, placement.session_id, screen)
        session.notice = notice
        try:
            return await self._start(account, session, first)  # type: ignore[no-any-return]
        except BaseException:
            await self._release(account.name, session.id)
            raise

    async def _release(self, user: str, session_id: str) -> None:
        if self.directory is None:
            return
        try:
            await self.directory.release(user, session_id)
        except Exception as exc:  # noqa: BLE001 - the key stays until this host's lease ends
            log.warn("farm: could not release session {session} of {user}: {why}", session=session_id, user=user,
                     why=str(exc))  # fmt: skip

    def session_ended(self, session: Session) -> None:
        """SESSION has ended: forget it and free its key (and this host's slot) in the directory."""
        if self.sessions.get(session.account.name) is session:
            del self.sessions[session.account.name]
        defer.Deferred.fromCoroutine(self._release(session.account.name, session.id))

    def stop_all(self) -> defer.Deferred[Any]:
        """On a clean stop: log every session off, or leave them for the next
        sessiond to re-adopt ([server] on_stop); fires when done."""
        if self.config.server.on_stop == "logoff":
            return defer.DeferredList([s.terminate() for s in list(self.sessions.values())])
        for session in list(self.sessions.values()):
            session.release()
        return defer.succeed(None)

    def describe(self) -> str:
        return json.dumps([s.describe() for s in self.sessions.values()])


def _chain_to(d: defer.Deferred[Any]) -> Callable[[Any], Any]:
    def chain(result: Any) -> Any:
        if isinstance(result, Failure):
            d.errback(result)
            return None
        d.callback(result)
        return result

    return chain
