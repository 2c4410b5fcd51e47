# Session-level control messages: authentication, the app catalogue,
# launching apps, session info and the sessiond<->agent spawn requests.
#
# Why apart from control.py: these are the messages the application layers
# (gateway, broker, agent) act on, while control.py holds the JSON codec and
# the link-level messages the Connection itself manages. Same rules: canonical
# JSON, strict field types, unknown fields ignored; each message is declared
# once (protocol/schema.py derives checks and codec).
"""Control messages for auth, apps, launch and session info."""

from __future__ import annotations

from typing import Final, Self

from protocol.base import U16_MAX, Sender, check_int, check_str
from protocol.control import ControlMessage, JsonObject, get
from protocol.schema import (
    BOOL,
    CUSTOM,
    JSON,
    JSON_INT,
    JSON_SINT,
    LIST,
    NESTED,
    STR,
    STRS,
    Record,
    message,
    record,
    wire,
)

# AUTH methods and the fields each one requires on the wire.
AUTH_METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    "password": ("user", "password"),
    "link": ("token",),
    "resume": ("user", "token"),  # a resume token from an earlier AUTH_RESULT
    "ticket": ("user", "token"),  # a farm redirect's ticket from an earlier AUTH_RESULT (docs/farm.md)
}


SCREEN: Final = JSON_INT.within(0, U16_MAX)  # SESSION_INFO width and height
# HELLO capability: this side sends (server) or understands (client) APPS_CHANGED.
APPS_CHANGED_CAPABILITY: Final = "apps.changed"
# HELLO capability of a server that starts AUTH's `launch` with the login (answered by
# LAUNCH_RESULT after AUTH_RESULT); a client sends that field only to a server that says it.
AUTH_LAUNCH_CAPABILITY: Final = "auth.launch"
# HELLO capability of a server that starts a new seamless session at AUTH's `screen` size.
AUTH_SCREEN_CAPABILITY: Final = "auth.screen"


def _as_launch(value: object) -> Launch | None:
    if value is None or isinstance(value, Launch):
        return value
    raise ValueError("launch must be a LAUNCH (request, app, args) or absent")


def _screen_side(name: str, value: object) -> int:
    """One side of AUTH's `screen`: a RESIZE_REQUEST's bounds (1..65535); the server clamps it as it does those."""
    return check_int(f"screen {name}", value, 1, U16_MAX)


def _as_screen(value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, tuple) and len(value) == 2:
        return (_screen_side("width", value[0]), _screen_side("height", value[1]))
    raise ValueError("screen must be a (width, height) pair or absent")


@message(0x02, "AUTH", sender=Sender.CLIENT, codec=CUSTOM)
class Auth(ControlMessage):
    """Client credentials; `method` selects which other fields are sent."""

    method: str = wire(STR)
    user: str = wire(STR, default="")
    password: str = wire(STR, default="", repr=False)
    token: str = wire(STR, default="", repr=False)
    # The app to start with the login, as a LAUNCH's fields (AUTH_LAUNCH_CAPABILITY); None: none.
    launch: Launch | None = wire(NESTED(_as_launch, "launch?"), default=None)
    # The client's screen (its free area), (width, height) (AUTH_SCREEN_CAPABILITY): a seamless session
    # this login starts gets a screen of that size. A desktop session, or one already running, keeps its
    # size (a client resizes it with RESIZE_REQUEST). None: not said.
    screen: tuple[int, int] | None = wire(NESTED(_as_screen, "screen?"), default=None)

    def to_json(self) -> JsonObject:
        """The method's fields, empty ones included (unknown methods: the non-empty ones); `launch` and
        `screen` if set."""
        obj: JsonObject = {"method": self.method}
        names = AUTH_METHOD_FIELDS.get(self.method)
        for name in names if names is not None else ("user", "password", "token"):
            value = getattr(self, name)
            if names is not None or value:
                obj[name] = value
        if self.launch is not None:
            obj["launch"] = self.launch.to_json()
        if self.screen is not None:
            obj["screen"] = {"width": self.screen[0], "height": self.screen[1]}
        return obj

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        """The method's fields are required; other string fields are kept; `launch` is checked as a LAUNCH,
        `screen` as {"width", "height"}, each 1..65535."""
        method = check_str("method", get(obj, "method"))
        required = AUTH_METHOD_FIELDS.get(method, ())
        values: dict[str, str] = {}
        for name in ("user", "password", "token"):
            if name in required:
                values[name] = check_str(name, get(obj, name))
            elif isinstance(obj.get(name), str):
                values[name] = check_str(name, obj[name])
        launch_obj = obj.get("launch")
        if launch_obj is not None and not isinstance(launch_obj, dict):
            raise ValueError("launch must be a JSON object")
        launch = Launch.from_json(launch_obj) if launch_obj is not None else None
        screen_obj = obj.get("screen")
        if screen_obj is not None and not isinstance(screen_obj, dict):
            raise ValueError("screen must be a JSON object")
        screen = _as_screen((get(screen_obj, "width"), get(screen_obj, "height"))) if screen_obj is not None else None
        return cls(method=method, launch=launch, screen=screen, **values)


@message(0x03, "AUTH_RESULT", sender=Sender.SERVER, codec=JSON)
class AuthResult(ControlMessage):
    """Outcome of AUTH; ok=true authenticates the connection."""

    ok: bool = wire(BOOL)
    user: str = wire(STR, default="")
    session: str = wire(STR, default="")
    code: int = wire(JSON_INT, default=0)
    message: str = wire(STR, default="")
    # A fresh single-use resume token (sent only on success; "" = none).
    resume_token: str = wire(STR, default="", omit_empty=True, repr=False)
    # A farm redirect (docs/farm.md; sent with ok=false): the HOST:PORT holding the session, a
    # single-use ticket for AUTH method "ticket" there, and that host's certificate fingerprint
    # (SHA-256, hex) vouched for by this host. All "" otherwise.
    redirect: str = wire(STR, default="", omit_empty=True)
    ticket: str = wire(STR, default="", omit_empty=True, repr=False)
    fingerprint: str = wire(STR, default="", omit_empty=True)
    # The session's display on success ("native", "xpra": sessiond.display_config); "" otherwise.
    display: str = wire(STR, default="", omit_empty=True)


@message(0x04, "APP_LIST_REQUEST", codec=JSON)
class AppListRequest(ControlMessage):
    """Ask for the published applications the user is entitled to, with
    names and comments in `locale` (a POSIX locale name; "" = untranslated)."""

    locale: str = wire(STR, default="", omit_empty=True)


@record
class AppInfo(Record):
    """One published application in an APP_LIST."""

    id: str = wire(STR)
    name: str = wire(STR)
    comment: str = wire(STR)
    categories: tuple[str, ...] = wire(STRS)
    icon: str = wire(STR)


@message(0x05, "APP_LIST", sender=Sender.SERVER, codec=JSON)
class AppList(ControlMessage):
    """The applications the user may launch."""

    apps: tuple[AppInfo, ...] = wire(LIST(AppInfo))


@message(0x14, "APPS_CHANGED", sender=Sender.SERVER, codec=JSON)
class AppsChanged(ControlMessage):
    """The apps the user may launch changed since the last APP_LIST (an admin
    edited the catalog): ask again with APP_LIST_REQUEST. Sent only to clients
    that said APPS_CHANGED_CAPABILITY in HELLO, coalesced (sessiond/app_notices.py)."""


@message(0x06, "LAUNCH", sender=Sender.CLIENT, codec=JSON)
class Launch(ControlMessage):
    """Start a published application; answered by LAUNCH_RESULT with the same request."""

    request: int = wire(JSON_INT)
    app: str = wire(STR)
    args: tuple[str, ...] = wire(STRS, default=())


@message(0x07, "LAUNCH_RESULT", sender=Sender.SERVER, codec=JSON)
class LaunchResult(ControlMessage):
    """Outcome of LAUNCH."""

    request: int = wire(JSON_INT)
    ok: bool = wire(BOOL)
    code: int = wire(JSON_INT, default=0)
    message: str = wire(STR, default="")
    pid: int = wire(JSON_INT, default=0)


@message(0x0F, "SESSION_INFO", sender=Sender.SERVER, codec=JSON)
class SessionInfo(ControlMessage):
    """The session the connection is attached to and its desktop size."""

    session: str = wire(STR)
    user: str = wire(STR)
    width: int = wire(SCREEN)
    height: int = wire(SCREEN)


@message(0x10, "SPAWN_APP", codec=JSON)
class SpawnApp(ControlMessage):
    """sessiond -> agent: run argv in the session (refused by the application
    layer on any connection that is not a sessiond-agent link)."""

    request: int = wire(JSON_INT)
    app: str = wire(STR)
    argv: tuple[str, ...] = wire(STRS)
    cwd: str = wire(STR, default="")


@message(0x11, "APP_EXITED", codec=JSON)
class AppExited(ControlMessage):
    """An application process ended with `status` (negative: killed by signal)."""

    app: str = wire(STR)
    pid: int = wire(JSON_INT)
    status: int = wire(JSON_SINT)


@message(0x12, "LOGOFF", sender=Sender.CLIENT, codec=JSON)
class Logoff(ControlMessage):
    """End the user's session: every app in it is stopped (client -> server)."""


@message(0x13, "CLOCK_REPORT", sender=Sender.SERVER, codec=JSON)
class ClockReport(ControlMessage):
    """The session's clocks, about once a second while audio-out is open, so a
    client can measure audio/video drift: at agent time `agent_us` (monotonic
    microseconds) the sound capture had reached sample `audio_pts` (at
    `audio_rate` Hz), and the latest display frame `frame_seq` was captured at
    agent time `frame_us` (server -> client)."""

    agent_us: int = wire(JSON_INT)
    audio_pts: int = wire(JSON_INT)
    audio_rate: int = wire(JSON_INT)
    frame_seq: int = wire(JSON_INT)
    frame_us: int = wire(JSON_INT)


@message(0x15, "SESSION_ATTACHED", sender=Sender.SERVER, codec=JSON)
class SessionAttached(ControlMessage):
    """To a connection that launches beside the session's connection (protocol.xpra.LAUNCH_BESIDE):
    whether a client holds the session now (an attached xpra client shows its windows); sent after
    AUTH_RESULT and whenever that changes (server -> client)."""

    attached: bool = wire(BOOL)
