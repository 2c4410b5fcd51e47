# Session-level control messages: authentication, the app catalogue,
# launching apps, session info and the sessiond<->agent spawn requests.
#
# Why apart from control.py: these are the messages the application layers
# (gateway, broker, agent) act on, while control.py holds the JSON codec and
# the link-level messages the Connection itself manages. Same rules: canonical
# JSON, strict field types, unknown fields ignored.
"""Control messages for auth, apps, launch and session info."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

from protocol.base import (
    U16_MAX,
    Sender,
    check_bool,
    check_int,
    check_json_int,
    check_str,
    check_str_tuple,
)
from protocol.control import ControlMessage, JsonObject, get

# AUTH methods and the fields each one requires on the wire.
AUTH_METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    "password": ("user", "password"),
    "link": ("token",),
    "resume": ("user", "token"),  # a resume token from an earlier AUTH_RESULT
}


@dataclass(frozen=True)
class Auth(ControlMessage):
    """Client credentials; `method` selects which other fields are sent."""

    TYPE: ClassVar[int] = 0x02
    SENDER: ClassVar[Sender] = Sender.CLIENT
    method: str
    user: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        for name in ("method", "user", "password", "token"):
            check_str(name, getattr(self, name))

    def to_json(self) -> JsonObject:
        obj: JsonObject = {"method": self.method}
        names = AUTH_METHOD_FIELDS.get(self.method)
        for name in names if names is not None else ("user", "password", "token"):
            value = getattr(self, name)
            if names is not None or value:
                obj[name] = value
        return obj

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        method = check_str("method", get(obj, "method"))
        required = AUTH_METHOD_FIELDS.get(method, ())
        values: dict[str, str] = {}
        for name in ("user", "password", "token"):
            if name in required:
                values[name] = check_str(name, get(obj, name))
            elif isinstance(obj.get(name), str):
                values[name] = check_str(name, obj[name])
        return cls(method=method, **values)


@dataclass(frozen=True)
class AuthResult(ControlMessage):
    """Outcome of AUTH; ok=true authenticates the connection."""

    TYPE: ClassVar[int] = 0x03
    SENDER: ClassVar[Sender] = Sender.SERVER
    ok: bool
    user: str = ""
    session: str = ""
    code: int = 0
    message: str = ""
    # A fresh single-use resume token (sent only on success; "" = none).
    resume_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        check_bool("ok", self.ok)
        check_str("user", self.user)
        check_str("session", self.session)
        check_json_int("code", self.code)
        check_str("message", self.message)
        check_str("resume_token", self.resume_token)

    def to_json(self) -> JsonObject:
        obj: JsonObject = {
            "ok": self.ok,
            "user": self.user,
            "session": self.session,
            "code": self.code,
            "message": self.message,
        }
        if self.resume_token:
            obj["resume_token"] = self.resume_token
        return obj

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        token = obj.get("resume_token", "")
        return cls(
            ok=check_bool("ok", get(obj, "ok")),
            user=check_str("user", get(obj, "user")),
            session=check_str("session", get(obj, "session")),
            code=check_json_int("code", get(obj, "code")),
            message=check_str("message", get(obj, "message")),
            resume_token=check_str("resume_token", token),
        )


@dataclass(frozen=True)
class AppListRequest(ControlMessage):
    """Ask for the published applications the user is entitled to, with
    names and comments in `locale` (a POSIX locale name; "" = untranslated)."""

    TYPE: ClassVar[int] = 0x04
    locale: str = ""

    def __post_init__(self) -> None:
        check_str("locale", self.locale)

    def to_json(self) -> JsonObject:
        return {"locale": self.locale} if self.locale else {}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        locale = obj.get("locale", "")
        return cls(locale=check_str("locale", locale))


@dataclass(frozen=True)
class AppInfo:
    """One published application in an APP_LIST."""

    id: str
    name: str
    comment: str
    categories: tuple[str, ...]
    icon: str

    def __post_init__(self) -> None:
        for name in ("id", "name", "comment", "icon"):
            check_str(name, getattr(self, name))
        object.__setattr__(self, "categories", check_str_tuple("categories", self.categories))

    def to_json(self) -> JsonObject:
        """The JSON object of this entry."""
        return {
            "id": self.id,
            "name": self.name,
            "comment": self.comment,
            "categories": list(self.categories),
            "icon": self.icon,
        }

    @classmethod
    def from_json(cls, obj: object) -> AppInfo:
        """Build an entry from a JSON value; ValueError if invalid."""
        if not isinstance(obj, dict):
            raise ValueError("apps[] entries must be objects")
        return cls(
            id=check_str("id", get(obj, "id")),
            name=check_str("name", get(obj, "name")),
            comment=check_str("comment", get(obj, "comment")),
            categories=check_str_tuple("categories", get(obj, "categories")),
            icon=check_str("icon", get(obj, "icon")),
        )


@dataclass(frozen=True)
class AppList(ControlMessage):
    """The applications the user may launch."""

    TYPE: ClassVar[int] = 0x05
    SENDER: ClassVar[Sender] = Sender.SERVER
    apps: tuple[AppInfo, ...]

    def __post_init__(self) -> None:
        apps = self.apps
        if not isinstance(apps, (list, tuple)) or not all(isinstance(a, AppInfo) for a in apps):
            raise ValueError("apps must be a sequence of AppInfo")
        object.__setattr__(self, "apps", tuple(apps))

    def to_json(self) -> JsonObject:
        return {"apps": [app.to_json() for app in self.apps]}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        apps = get(obj, "apps")
        if not isinstance(apps, list):
            raise ValueError("apps must be a list")
        return cls(apps=tuple(AppInfo.from_json(a) for a in apps))


@dataclass(frozen=True)
class Launch(ControlMessage):
    """Start a published application; answered by LAUNCH_RESULT with the same request."""

    TYPE: ClassVar[int] = 0x06
    SENDER: ClassVar[Sender] = Sender.CLIENT
    request: int
    app: str
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_json_int("request", self.request)
        check_str("app", self.app)
        object.__setattr__(self, "args", check_str_tuple("args", self.args))

    def to_json(self) -> JsonObject:
        return {"request": self.request, "app": self.app, "args": list(self.args)}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            request=check_json_int("request", get(obj, "request")),
            app=check_str("app", get(obj, "app")),
            args=check_str_tuple("args", get(obj, "args")),
        )


@dataclass(frozen=True)
class LaunchResult(ControlMessage):
    """Outcome of LAUNCH."""

    TYPE: ClassVar[int] = 0x07
    SENDER: ClassVar[Sender] = Sender.SERVER
    request: int
    ok: bool
    code: int = 0
    message: str = ""
    pid: int = 0

    def __post_init__(self) -> None:
        check_json_int("request", self.request)
        check_bool("ok", self.ok)
        check_json_int("code", self.code)
        check_str("message", self.message)
        check_json_int("pid", self.pid)

    def to_json(self) -> JsonObject:
        return {
            "request": self.request,
            "ok": self.ok,
            "code": self.code,
            "message": self.message,
            "pid": self.pid,
        }

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            request=check_json_int("request", get(obj, "request")),
            ok=check_bool("ok", get(obj, "ok")),
            code=check_json_int("code", get(obj, "code")),
            message=check_str("message", get(obj, "message")),
            pid=check_json_int("pid", get(obj, "pid")),
        )


@dataclass(frozen=True)
class SessionInfo(ControlMessage):
    """The session the connection is attached to and its desktop size."""

    TYPE: ClassVar[int] = 0x0F
    SENDER: ClassVar[Sender] = Sender.SERVER
    session: str
    user: str
    width: int
    height: int

    def __post_init__(self) -> None:
        check_str("session", self.session)
        check_str("user", self.user)
        check_int("width", self.width, 0, U16_MAX)
        check_int("height", self.height, 0, U16_MAX)

    def to_json(self) -> JsonObject:
        return {
            "session": self.session,
            "user": self.user,
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            session=check_str("session", get(obj, "session")),
            user=check_str("user", get(obj, "user")),
            width=check_int("width", get(obj, "width"), 0, U16_MAX),
            height=check_int("height", get(obj, "height"), 0, U16_MAX),
        )


@dataclass(frozen=True)
class SpawnApp(ControlMessage):
    """sessiond -> agent: run argv in the session (refused by the application
    layer on any connection that is not a sessiond-agent link)."""

    TYPE: ClassVar[int] = 0x10
    request: int
    app: str
    argv: tuple[str, ...]
    cwd: str = ""

    def __post_init__(self) -> None:
        check_json_int("request", self.request)
        check_str("app", self.app)
        object.__setattr__(self, "argv", check_str_tuple("argv", self.argv))
        check_str("cwd", self.cwd)

    def to_json(self) -> JsonObject:
        return {
            "request": self.request,
            "app": self.app,
            "argv": list(self.argv),
            "cwd": self.cwd,
        }

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            request=check_json_int("request", get(obj, "request")),
            app=check_str("app", get(obj, "app")),
            argv=check_str_tuple("argv", get(obj, "argv")),
            cwd=check_str("cwd", get(obj, "cwd")),
        )


@dataclass(frozen=True)
class AppExited(ControlMessage):
    """An application process ended with `status` (negative: killed by signal)."""

    TYPE: ClassVar[int] = 0x11
    app: str
    pid: int
    status: int

    def __post_init__(self) -> None:
        check_str("app", self.app)
        check_json_int("pid", self.pid)
        check_json_int("status", self.status, signed=True)

    def to_json(self) -> JsonObject:
        return {"app": self.app, "pid": self.pid, "status": self.status}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            app=check_str("app", get(obj, "app")),
            pid=check_json_int("pid", get(obj, "pid")),
            status=check_json_int("status", get(obj, "status"), signed=True),
        )


@dataclass(frozen=True)
class Logoff(ControlMessage):
    """End the user's session: every app in it is stopped (client -> server)."""

    TYPE: ClassVar[int] = 0x12
    SENDER: ClassVar[Sender] = Sender.CLIENT

    def to_json(self) -> JsonObject:
        return {}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls()


@dataclass(frozen=True)
class ClockReport(ControlMessage):
    """The session's clocks, about once a second while audio-out is open, so a
    client can measure audio/video drift: at agent time `agent_us` (monotonic
    microseconds) the sound capture had reached sample `audio_pts` (at
    `audio_rate` Hz), and the latest display frame `frame_seq` was captured at
    agent time `frame_us` (server -> client)."""

    TYPE: ClassVar[int] = 0x13
    SENDER: ClassVar[Sender] = Sender.SERVER
    agent_us: int
    audio_pts: int
    audio_rate: int
    frame_seq: int
    frame_us: int

    def __post_init__(self) -> None:
        for name in ("agent_us", "audio_pts", "audio_rate", "frame_seq", "frame_us"):
            check_json_int(name, getattr(self, name))

    def to_json(self) -> JsonObject:
        return {name: getattr(self, name) for name in ("agent_us", "audio_pts", "audio_rate", "frame_seq", "frame_us")}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(**{name: check_json_int(name, get(obj, name))
                      for name in ("agent_us", "audio_pts", "audio_rate", "frame_seq", "frame_us")})  # fmt: skip
