# Admin operations on sessions, one implementation behind two doors: the
# root-only Unix socket that `sessionctl` talks to (JSON lines, peer uid
# checked with SO_PEERCRED), and the JSON API under /admin/ on the TLS port
# (bearer token from a 0600 file). Every action is written to the audit log.
#
# The HTTP site itself (request body limits, the token checked before the
# body) is sessiond/admin_site.py, built with the first HTTP connection.
"""AdminOps, the sessionctl control socket, and the /admin/ + /metrics web resources."""

from __future__ import annotations

import hmac
import json
import os
import secrets
import socket
import struct
import time
from typing import Any

from twisted.internet import protocol
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.web import resource

from sessiond import metrics as metrics_mod
from sessiond.registry import MAX_AUDIT_ROWS, Registry
from sessiond.lifecycle import SessionState
from sessiond.session_windows import windows_view
from sessiond.supervisor import SessionSupervisor

log = Logger()

# twisted.web.server.NOT_DONE_YET (render's "the answer comes later"), without
# importing that module here: the Site is built with the first HTTP connection
# (sessiond/admin_site.py).
NOT_DONE_YET = 1

# Longest sessionctl request line; requests are tiny JSON objects.
MAX_REQUEST_LINE = 64 * 1024
# Ended sessions listed at most (newest first): the registry keeps history.
MAX_LIST_ROWS = 100_000


class AdminError(Exception):
    """An admin request that cannot be carried out.

    `code` is "unknown-id", "bad-request" or "refused" (valid but not
    possible now, e.g. disconnecting a session that has no client).
    """

    def __init__(self, message: str, code: str = "bad-request") -> None:
        super().__init__(message)
        self.code = code


class AdminOps:
    """What an administrator can do; shared by sessionctl and /admin/."""

    def __init__(self, supervisor: SessionSupervisor, registry: Registry, metrics: metrics_mod.Metrics) -> None:
        self.supervisor = supervisor
        self.registry = registry
        self.metrics = metrics

    def list(self, user: str | None = None, state: str | None = None, include_ended: bool = False
             ) -> list[dict[str, Any]]:  # fmt: skip
        """Live sessions (from memory); with INCLUDE_ENDED also the ended
        ones the registry remembers (newest first, at most MAX_LIST_ROWS)."""
        if state is not None and state not in {s.value for s in SessionState}:
            raise AdminError(f"unknown state {state!r} (one of: {', '.join(s.value for s in SessionState)})")
        now = time.time()
        rows = [s.describe(now) for s in self.supervisor.sessions.values()]
        if include_ended or state == SessionState.ENDED.value:
            rows += self.registry.ended_sessions(MAX_LIST_ROWS, user)
        return [r for r in rows if (user is None or r["user"] == user) and (state is None or r["state"] == state)]

    def _session(self, session_id: str) -> Any:
        session = self.supervisor.by_id(session_id)
        if session is None:
            raise AdminError(f"no session with id {session_id!r} (see `sessionctl list`)", "unknown-id")
        return session

    def show(self, session_id: str) -> Any:
        """The session's description with its windows (asked of the agent:
        a Deferred firing with the dict)."""
        session = self._session(session_id)
        from twisted.internet import reactor

        asked = session.window_lister.request(session.link, session.reactor or reactor)
        return asked.addCallback(lambda answer: {**session.describe(), **windows_view(answer)})

    def disconnect(self, session_id: str, actor: str) -> dict[str, Any]:
        session = self._session(session_id)
        client = session.client
        if client is None:
            raise AdminError(f"session {session_id} has no connected client", "refused")
        self.registry.audit("admin_disconnect", user=session.account.name, session=session.id, detail=actor)
        log.info("admin ({actor}) disconnects session {session}", actor=actor, session=session.id)
        session.detach(client)
        client.take_over("disconnected by an administrator; your session keeps running")
        return session.describe()  # type: ignore[no-any-return]

    def logoff(self, session_id: str, actor: str) -> Any:
        session = self._session(session_id)
        self.registry.audit("admin_logoff", user=session.account.name, session=session.id, detail=actor)
        log.info("admin ({actor}) logs off session {session}", actor=actor, session=session.id)
        self.registry.revoke_tokens(session.account.name)  # a logoff also ends every way back in
        return session.terminate().addCallback(lambda _: {"id": session.id, "state": session.state.value})

    def revoke(self, user: str, actor: str) -> dict[str, Any]:
        """Invalidate every resume token of USER: their next login needs the password (and PAM)."""
        count = self.registry.revoke_tokens(user)
        self.registry.audit("tokens_revoked", user=user, detail=f"{actor}: {count} token(s)")
        log.info("admin ({actor}) revokes {count} resume token(s) of {user}", actor=actor, count=count, user=user)
        return {"user": user, "revoked": count}

    def audit(self, since: float = 0.0) -> list[dict[str, Any]]:
        return self.registry.audit_entries(since, MAX_AUDIT_ROWS)

    def metrics_text(self) -> str:
        return metrics_mod.render(self.metrics, self.list(), [s.value for s in SessionState])


# -- sessionctl's Unix socket -------------------------------------------------------------
class ControlProtocol(LineOnlyReceiver):
    """One sessionctl connection: JSON request lines, JSON answer lines."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST_LINE

    def __init__(self, ops: AdminOps) -> None:
        self.ops = ops

    def connectionMade(self) -> None:  # noqa: N802 - Twisted name
        uid = _peer_uid(self.transport)
        if uid != 0:
            self._answer({"ok": False, "error": "sessionctl is for root only"})
            self.transport.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> None:  # noqa: N802
        self._answer({"ok": False, "error": "request too long"})
        self.transport.loseConnection()

    def lineReceived(self, line: bytes) -> None:  # noqa: N802
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise AdminError("request must be a JSON object")
            result = self._dispatch(request)
        except AdminError as exc:
            self._answer({"ok": False, "error": str(exc), "code": exc.code})
            return
        except ValueError as exc:
            self._answer({"ok": False, "error": str(exc), "code": "bad-request"})
            return
        if hasattr(result, "addCallback"):
            result.addCallbacks(self._result, lambda f: self._answer({"ok": False, "error": f.getErrorMessage()}))
        else:
            self._result(result)

    def _dispatch(self, request: dict[str, Any]) -> Any:
        command = request.get("command")
        ops = self.ops
        if command == "list":
            return ops.list(_opt_str(request, "user"), _opt_str(request, "state"), request.get("all") is True)
        if command == "show":
            return ops.show(_req_str(request, "id"))
        if command == "disconnect":
            return ops.disconnect(_req_str(request, "id"), "sessionctl")
        if command == "logoff":
            return ops.logoff(_req_str(request, "id"), "sessionctl")
        if command == "revoke":
            return ops.revoke(_req_str(request, "user"), "sessionctl")
        if command in ("hosts", "farm-list", "drain"):
            return _farm(ops, command, request)
        if command == "audit":
            since = request.get("since", 0)
            if not isinstance(since, (int, float)) or isinstance(since, bool):
                raise AdminError("since must be a number (seconds since the epoch)")
            return ops.audit(float(since))
        raise AdminError(f"unknown command {command!r}")

    def _answer(self, obj: dict[str, Any]) -> None:
        self.sendLine(json.dumps(obj).encode("utf-8"))

    def _result(self, result: Any) -> None:
        """Success: a status line, then the result as one compact JSON line
        (sessionctl --json passes it through without re-encoding it)."""
        self.sendLine(b'{"ok": true}')
        self.sendLine(json.dumps(result, separators=(",", ":")).encode("utf-8"))


def _farm(ops: AdminOps, command: str, request: dict[str, Any]) -> Any:
    """hosts, farm-list and drain (sessiond/farm/admin_ops.py); a Deferred."""
    from twisted.internet import defer

    from sessiond.farm.admin_ops import FarmAdmin

    if ops.supervisor.directory is None:
        raise AdminError("no session directory (sessiond is starting)")
    farm = FarmAdmin(ops.supervisor.directory, ops.supervisor.reactor)
    if command == "hosts":
        return defer.Deferred.fromCoroutine(farm.hosts())
    if command == "farm-list":
        return defer.Deferred.fromCoroutine(farm.sessions())
    return defer.Deferred.fromCoroutine(farm.drain(_req_str(request, "host"), request.get("undo") is True,
                                                   request.get("wait") is True))  # fmt: skip


def _opt_str(request: dict[str, Any], name: str) -> str | None:
    value = request.get(name)
    if value is not None and not isinstance(value, str):
        raise AdminError(f"{name} must be a string")
    return value


def _req_str(request: dict[str, Any], name: str) -> str:
    value = _opt_str(request, name)
    if not value:
        raise AdminError(f"{name} is required")
    return value


def _peer_uid(transport: Any) -> int:
    sock = transport.getHandle()
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class ControlFactory(protocol.Factory):
    def __init__(self, ops: AdminOps) -> None:
        self.ops = ops

    def buildProtocol(self, addr: Any) -> ControlProtocol:  # noqa: N802
        return ControlProtocol(self.ops)


# -- HTTP: /admin/ and /metrics --------------------------------------------------------------
def ensure_admin_token(path: str) -> str:
    """The admin API bearer token, created (0600) on first start."""
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(path, 0o600)
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def token_matches(header: bytes | None, token: str) -> bool:
    """True if the Authorization HEADER is `Bearer TOKEN` (compared in constant time)."""
    scheme, _, value = (header or b"").decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


class _Authed(resource.Resource):
    """Base: every request needs `Authorization: Bearer <admin token>`."""

    def __init__(self, ops: AdminOps, token: str) -> None:
        super().__init__()
        self.ops = ops
        self.token = token

    def _authorized(self, request: Any) -> bool:
        return token_matches(request.getHeader(b"authorization"), self.token)

    def _deny(self, request: Any) -> bytes:
        request.setHeader(b"www-authenticate", b'Bearer realm="sessiond admin"')
        return _json(request, {"error": "admin token required (Authorization: Bearer ...)"}, 401)


def _json(request: Any, obj: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(obj, indent=1).encode("utf-8") + b"\n"


def _later(request: Any, d: Any) -> Any:
    """Answer with the JSON of what Deferred `d` fires with (NOT_DONE_YET now)."""

    def done(result: Any) -> None:
        request.write(_json(request, result))
        request.finish()

    d.addCallback(done)
    return NOT_DONE_YET


class AdminResource(_Authed):
    """/admin/sessions[/ID[/disconnect|/logoff]], /admin/audit, /admin/hosts and /admin/farm/sessions."""

    isLeaf = True  # noqa: N815 - Twisted's Resource attribute

    def render_GET(self, request: Any) -> Any:  # noqa: N802 - twisted.web name
        if not self._authorized(request):
            return self._deny(request)
        parts = [p.decode("utf-8", "replace") for p in request.postpath if p]
        args = {k.decode(): v[0].decode("utf-8", "replace") for k, v in request.args.items()}
        try:
            if parts == ["sessions"]:
                return _json(request, self.ops.list(args.get("user"), args.get("state"), args.get("all") == "1"))
            if len(parts) == 2 and parts[0] == "sessions":
                return _later(request, self.ops.show(parts[1]))
            if parts == ["audit"]:
                return _json(request, self.ops.audit(float(args.get("since", "0"))))
            if parts in (["hosts"], ["farm", "sessions"]):
                d = _farm(self.ops, "hosts" if parts == ["hosts"] else "farm-list", {})
                d.addCallbacks(lambda rows: request.write(_json(request, rows)),
                               lambda f: request.write(_json(request, {"error": f.getErrorMessage()}, 503)))
                d.addBoth(lambda _: request.finish())
                return NOT_DONE_YET
        except (AdminError, ValueError) as exc:
            return _json(request, {"error": str(exc)}, 404 if "no session" in str(exc) else 400)
        return _json(request, {"error": "not found"}, 404)

    def render_POST(self, request: Any) -> Any:  # noqa: N802
        if not self._authorized(request):
            return self._deny(request)
        parts = [p.decode("utf-8", "replace") for p in request.postpath if p]
        try:
            if len(parts) == 3 and parts[0] == "sessions" and parts[2] == "disconnect":
                return _json(request, self.ops.disconnect(parts[1], "admin-api"))
            if len(parts) == 3 and parts[0] == "sessions" and parts[2] == "logoff":
                d = self.ops.logoff(parts[1], "admin-api")

                def done(result: Any) -> None:
                    request.write(_json(request, result))
                    request.finish()

                d.addCallback(done)
                return NOT_DONE_YET
        except AdminError as exc:
            return _json(request, {"error": str(exc)}, 404)
        return _json(request, {"error": "not found"}, 404)


class MetricsResource(_Authed):
    isLeaf = True  # noqa: N815 - Twisted's Resource attribute

    def render_GET(self, request: Any) -> bytes:  # noqa: N802
        if not self._authorized(request):
            return self._deny(request)
        request.setHeader(b"content-type", b"text/plain; version=0.0.4")
        return self.ops.metrics_text().encode("utf-8")


def web_root(ops: AdminOps, token: str) -> resource.Resource:
    """The HTTPS side of the TLS port (the web client will hang here too)."""
    root = resource.Resource()
    root.putChild(b"admin", AdminResource(ops, token))
    root.putChild(b"metrics", MetricsResource(ops, token))
    return root
