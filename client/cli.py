# svclient: the command-line thin client. Each command connects, logs in
# (starting or resuming the user's session), does one thing and disconnects;
# the session and its apps keep running on the server.
"""svclient command line."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any, Callable

from client.audio_cli import AudioCommandError, add_audio_parser, run_audio
from client.xpra_cli import XpraUsageError, add_xpra_parser, display_unless_beside, local_xpra, run_xpra
from client.keysyms import keysym_for_char, keysym_from_name
from client.known_hosts import HostKeyMismatch, KnownHosts, default_path
from client.redirect import follow
from client.session import CAPABILITIES, ConnectionEnded, Redirected, RemoteError, SessionClient, connect, with_timeout
from client.tokens import TokenStore, default_dir
from client.transfer_cli import TransferFailed, add_transfer_parsers, run_transfer
from protocol.base import U16_MAX
from protocol.errors import ReasonCode
from protocol.messages import ChannelKind, Launch
from protocol.xpra import LAUNCH_BESIDE

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
# Seconds svclient waits for any one server answer before giving up.
DEFAULT_TIMEOUT = 30.0


class UsageError(Exception):
    """Bad command-line input; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svclient", description="thin client for sessiond")
    parser.add_argument("--server", required=True, help="HOST:PORT of sessiond")
    parser.add_argument("--user", required=True, help="user name to log in as")
    parser.add_argument("--password-file", help="file whose first line is the password "
                        "(else $SVCLIENT_PASSWORD, else a prompt)")  # fmt: skip
    parser.add_argument("--known-hosts", default=None, help=f"pinned certificates (default {default_path()})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for the server")
    parser.add_argument("--token-dir", default=None, help=f"resume tokens (default {default_dir()})")
    parser.add_argument("--no-resume", action="store_true", help="log in with the password even if a resume "
                        "token is stored")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("login", help="log in (start or resume the session) and print its id")
    sub.add_parser("logoff", help="end the session and every app in it")
    apps = sub.add_parser("apps", help="list the published applications")
    apps.add_argument("--json", action="store_true")
    apps.add_argument("--locale", default=None, help="language of names and comments (default: $LC_ALL, "
                      "$LC_MESSAGES or $LANG)")  # fmt: skip
    launch = sub.add_parser("launch", help="launch an app; returns once its first frame has arrived")
    launch.add_argument("app")
    launch.add_argument("args", nargs="*", help="files or URLs for the app")
    launch.add_argument("--wait", action="store_true", help="then wait until the app exits and print its status")
    icon = sub.add_parser("icon", help="save an app's icon as PNG")
    icon.add_argument("app")
    icon.add_argument("--size", type=int, default=48, help="width and height in pixels (8-256)")
    icon.add_argument("-o", "--output", required=True, help="PNG file to write")
    shot = sub.add_parser("screenshot", help="write the client's reconstructed screen as PNG "
                          "(seamless mode: the windows composed in stacking order)")  # fmt: skip
    shot.add_argument("file")
    wins = sub.add_parser("windows", help="list the session's windows (seamless mode), bottom to top")
    wins.add_argument("--json", action="store_true")
    resize = sub.add_parser("resize", help="resize the session's screen; prints the size the server set")
    resize.add_argument("width", type=int)
    resize.add_argument("height", type=int)
    typ = sub.add_parser("type", help="type text into the focused window")
    typ.add_argument("text")
    key = sub.add_parser("key", help="press and release one key by X keysym name (Return, F1, a, 0xff0d)")
    key.add_argument("keysym")
    click = sub.add_parser("click", help="click at X Y")
    click.add_argument("x", type=int)
    click.add_argument("y", type=int)
    click.add_argument("--button", type=int, default=1)
    usb = sub.add_parser("usb", help="USB redirection: list devices, share them into the session")
    usb_sub = usb.add_subparsers(dest="usb_command", required=True)
    usb_sub.add_parser("list", help="list this machine's USB devices and the built-in virtual ones")
    share = usb_sub.add_parser("share", help="share devices into the session until Ctrl-C or --for SECONDS")
    share.add_argument("devices", nargs="+", help="bus id, VID:PID or virtual:NAME (see usb list)")
    unshare = usb_sub.add_parser("unshare", help="take shared devices back (stops the svclient sharing them)")
    unshare.add_argument("devices", nargs="+", help="the devices as given to usb share")
    share.add_argument("--for", dest="duration", type=float, default=0.0, help="stop sharing after SECONDS")
    add_audio_parser(sub)
    add_transfer_parsers(sub)
    add_xpra_parser(sub)
    add_view_parser(sub)
    return parser


def add_view_parser(sub: Any) -> None:
    """`svclient view`: the native viewer (client/viewer/, docs/viewer.md)."""
    view = sub.add_parser("view", help="show the session's windows as native windows (needs PySide6)")
    view.add_argument("--launch", action="append", default=[], metavar="APP_ID",
                      help="launch APP_ID once connected (repeatable); without it a launcher window lists the apps")
    view.add_argument("--desktop", action="store_true", help="show the whole session screen in one window")
    view.add_argument("--audio", action="store_true", help="play the session's sound on the local sound server")


def read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as handle:
                return handle.readline().rstrip("\n")
        except OSError as exc:
            raise UsageError(f"cannot read password file {args.password_file}: {exc.strerror}") from exc
    if "SVCLIENT_PASSWORD" in os.environ:
        return os.environ["SVCLIENT_PASSWORD"]
    if sys.stdin.isatty():
        return getpass.getpass(f"password for {args.user}@{args.server}: ")
    raise UsageError("no password: use --password-file, SVCLIENT_PASSWORD or a terminal prompt")


def parse_server(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--server must be HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def client_locale() -> str:
    """The user's message locale, as POSIX programs choose it (LC_ALL, LC_MESSAGES, LANG)."""
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable, "")
        if value:
            return value
    return ""


def parse_keysym(name: str) -> int:
    if name.lower().startswith("0x"):
        try:
            return int(name, 16)
        except ValueError as exc:
            raise UsageError(f"bad keysym {name!r}") from exc
    try:
        return keysym_from_name(name)
    except ValueError as exc:
        raise UsageError(f"unknown keysym name {name!r} (use X names like Return, BackSpace, F1)") from exc


async def run_command(reactor: Any, args: argparse.Namespace) -> int:
    if args.command == "usb":
        from client.usb import UsbUsageError
        from client.usb_share import usb_offline

        try:
            if usb_offline(args):
                return 0
        except UsbUsageError as exc:
            raise UsageError(str(exc)) from exc
    if args.command == "xpra":
        try:  # before the login: a missing or unusable local client is said at once
            args.local_xpra = local_xpra(args)
        except XpraUsageError as exc:
            raise UsageError(str(exc)) from exc
    # A launch goes with the login: a session that starts for it runs the app as soon as its X server is up.
    launch = Launch(request=1, app=args.app, args=tuple(args.args)) if args.command == "launch" else None
    client, result, server = await open_session(reactor, args, launch=launch)
    try:
        return await dispatch(reactor, client, args, result.session, result.display)
    finally:
        client.disconnect()


async def open_session(reactor: Any, args: argparse.Namespace, on_auth_sent: Callable[[], None] | None = None,
                       launch: Launch | None = None,
                       screen: tuple[int, int] | None = None) -> tuple[SessionClient, Any, str]:  # fmt: skip
    """Connect and log in as the command line says (resume token first, then
    the password; a farm redirect followed); the new resume token is stored.
    Returns the client, its AUTH_RESULT and the HOST:PORT it is connected to.
    ON_AUTH_SENT is called each time an AUTH has gone out (the viewer loads Qt
    while the server checks it: client/viewer/early.py). LAUNCH and SCREEN go
    with the login that succeeds (SessionClient.login: client.login_launched()
    answers the launch if client.login_carries_launch())."""
    from twisted.internet import defer

    async def authenticated(request: Any) -> Any:
        pending = defer.ensureDeferred(with_timeout(reactor, request, args.timeout, "login"))
        if on_auth_sent is not None:
            on_auth_sent()
        return await pending

    host, port = parse_server(args.server)
    known = KnownHosts(args.known_hosts or default_path())
    tokens = TokenStore(args.token_dir or default_dir())
    server = f"{host}:{port}"

    def new_host(fp: str) -> None:
        print(f"svclient: pinned the certificate of {server} (sha256 {fp}) in {known.path}", file=sys.stderr)

    said = (*CAPABILITIES, LAUNCH_BESIDE) if args.command == "launch" else CAPABILITIES

    async def connected() -> SessionClient:
        return await with_timeout(reactor, connect(reactor, host, port, known, new_host, capabilities=said),  # type: ignore[no-any-return]
                                  args.timeout, "the server")  # fmt: skip

    client = await connected()
    token = None if args.no_resume else tokens.get(server, args.user)
    result = None
    try:
        if token is not None:
            try:
                result = await authenticated(client.resume(args.user, token, launch, screen))
            except Redirected:
                raise
            except RemoteError:
                tokens.delete(server, args.user)  # used or expired: fall back to the password
                client.disconnect()
                client = await connected()
        if result is None:
            password = read_password(args)
            result = await authenticated(client.login(args.user, password, launch, screen))
    except Redirected as redirect:
        # A farm host sent us to the host of our session (docs/farm.md): one hop, its certificate vouched for.
        client.disconnect()
        print(f"svclient: {redirect}", file=sys.stderr)  # the host the session is on (and any notice)
        client, result, server = await follow(reactor, redirect, args.user, known, args.timeout, said, launch, screen)
    if result.message:
        print(f"svclient: {result.message}", file=sys.stderr)
    if result.resume_token:
        tokens.put(server, args.user, result.resume_token)
    return client, result, server


async def dispatch(reactor: Any, client: SessionClient, args: argparse.Namespace, session: str,
                   display: str = "") -> int:
    timeout = args.timeout
    if args.command == "login":
        print(session)
    elif args.command == "logoff":
        await with_timeout(reactor, client.logoff(), timeout, "the logoff")
        print(f"logged off session {session}")
    elif args.command == "apps":
        locale = args.locale if args.locale is not None else client_locale()
        listing = await with_timeout(reactor, client.list_apps(locale), timeout, "the app list")
        if args.json:
            print(json.dumps([{"id": a.id, "name": a.name, "comment": a.comment, "categories": list(a.categories),
                               "icon": a.icon, "icon_available": bool(a.icon)} for a in listing.apps],
                             indent=2, ensure_ascii=False))  # fmt: skip
        else:
            for app in listing.apps:
                print(f"{app.id}\t{app.name}\t{app.comment}")
    elif args.command == "launch":  # sent with the login (run_command)
        shown = await display_unless_beside(reactor, client, timeout)
        result = await with_timeout(reactor, client.login_launched(), timeout, "the launch")
        if shown:  # the window may have mapped before the display opened: ask for a frame after its answer
            client.refresh()
            await first_frame_after_launch(reactor, client, timeout)
        where = ("your xpra client, now or once one attaches" if display == "xpra"
                 else "the client the session is open in")  # fmt: skip
        print(f"launched {args.app} (pid {result.pid}; {result.message}{'' if shown else f'; it shows in {where}'})",
              flush=True)  # fmt: skip
        if args.wait:  # beside another connection too: sessiond tells its launchers (sessiond.launching)
            exited = await client.app_exited(result.pid)
            print(f"{args.app} (pid {exited.pid}) exited with status {exited.status}")
    elif args.command == "icon":
        png = await with_timeout(reactor, client.icon(args.app, args.size), timeout, "the icon")
        try:
            with open(args.output, "wb") as handle:
                handle.write(png)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from exc
        print(f"wrote {args.output} ({args.size}x{args.size} icon of {args.app}, {len(png)} bytes)")
    elif args.command == "screenshot":
        await open_windows(reactor, client, timeout)
        await with_timeout(reactor, client.open_channel(ChannelKind.DISPLAY), timeout, "the display")
        await with_timeout(reactor, client.next_frame(), timeout, "a frame")
        image = client.screen_image()
        image.save(args.file, "PNG")
        print(f"wrote {args.file} ({image.width}x{image.height})")
    elif args.command == "windows":
        if not await open_windows(reactor, client, timeout):
            raise UsageError("the session is in desktop mode: it has no separate windows")
        rows = client.windows.listing()
        if args.json:
            print(json.dumps(rows, indent=2, ensure_ascii=False))
        else:
            for row in rows:
                print(f"{row['id']:#x}\t{row['app'] or '-'}\t{row['state']}\t"
                      f"{row['width']}x{row['height']}+{row['x']}+{row['y']}\t{row['title']}")
    elif args.command == "resize":
        if not (1 <= args.width <= U16_MAX and 1 <= args.height <= U16_MAX):
            raise UsageError(f"width and height must be 1..{U16_MAX}")
        await with_timeout(reactor, client.open_channel(ChannelKind.DISPLAY), timeout, "the display")
        await with_timeout(reactor, client.next_frame(), timeout, "a frame")
        size = await with_timeout(reactor, client.resize(args.width, args.height), timeout, "the resize")
        await with_timeout(reactor, client.next_frame(), timeout, "a frame at the new size")
        print(f"desktop is {size.width}x{size.height}")
        if size.width < args.width or size.height < args.height:
            print(f"svclient: asked for {args.width}x{args.height}, larger than this session allows; the server "
                  f"capped it at {size.width}x{size.height} (its [session] max_width/max_height)", file=sys.stderr)
    elif args.command in ("type", "key", "click"):
        await with_timeout(reactor, client.open_channel(ChannelKind.INPUT), timeout, "the input channel")
        if args.command == "type":
            for char in args.text:
                keysym = keysym_from_name("Return") if char == "\n" else keysym_for_char(char)
                client.tap(keysym)  # one KEY_TAP, not a KEY down and a KEY up
        elif args.command == "key":
            client.tap(parse_keysym(args.keysym))
        else:
            client.pointer(args.x, args.y)
            client.button(args.x, args.y, args.button, True)
            client.button(args.x, args.y, args.button, False)
        await with_timeout(reactor, client.sync(), timeout, "the input to be delivered")
    elif args.command == "audio":
        try:
            return await run_audio(reactor, client, args)
        except AudioCommandError as exc:
            raise UsageError(str(exc)) from exc
    elif args.command in ("clipboard", "files"):
        try:
            return await run_transfer(reactor, client, args)
        except TransferFailed as exc:
            print(f"svclient: {exc}", file=sys.stderr)
            return EXIT_REFUSED
    elif args.command == "xpra":
        try:
            return await run_xpra(reactor, client, args, args.local_xpra)
        except XpraUsageError as exc:
            raise UsageError(str(exc)) from exc
    elif args.command == "usb":
        from client.usb_share import share_devices

        return await share_devices(reactor, client, args.devices, args.duration, timeout)
    return 0


async def open_windows(reactor: Any, client: SessionClient, timeout: float) -> bool:
    """Open the windows channel if the session has one; False in desktop mode."""
    try:
        await with_timeout(reactor, client.open_windows(), timeout, "the windows channel")
    except RemoteError:
        return False
    return True


# How long `launch` waits for the app's frame before asking for a refresh.  The
# agent sends LAUNCH_RESULT before the first frame showing the window, but a
# launch answered "started; no window yet" (the window mapped after the
# agent's launch timeout) may already have drawn everything it will draw.
LAUNCH_FRAME_GRACE_SECONDS = 2.0


async def first_frame_after_launch(reactor: Any, client: SessionClient, timeout: float) -> None:
    """Return once a frame showing the launched app's window has arrived."""
    try:
        await with_timeout(reactor, client.next_frame(), min(timeout, LAUNCH_FRAME_GRACE_SECONDS), "the first frame")
    except ConnectionEnded as exc:
        if exc.code != ReasonCode.TIMEOUT:
            raise
        client.refresh()  # the window is mapped (LAUNCH_RESULT says so): a refresh sends it
        await with_timeout(reactor, client.next_frame(), timeout, "the first frame")


def describe_failure(exc: Exception, server: str) -> tuple[str, int] | None:
    """The one-line message and exit status for an expected failure of a
    command (None: a bug, let it raise)."""
    from twisted.internet import error

    if isinstance(exc, UsageError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, HostKeyMismatch):
        return str(exc), EXIT_CONNECT
    if isinstance(exc, RemoteError):
        return f"refused by the server: {exc}", EXIT_REFUSED
    if isinstance(exc, ConnectionEnded):
        return f"connection ended: {exc}", EXIT_REFUSED
    if isinstance(exc, (OSError, error.ConnectError)):
        return f"cannot connect to {server}: {exc}", EXIT_CONNECT
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from twisted.internet import defer, task

    status = {"code": 0}

    if args.command == "view":
        from client.viewer.main import run_viewer

        return run_viewer(args)

    async def body(reactor: Any) -> None:
        try:
            status["code"] = await run_command(reactor, args)
        except Exception as exc:  # noqa: BLE001 - describe_failure knows the expected kinds
            failure = describe_failure(exc, args.server)
            if failure is None:
                raise
            print(f"svclient: {failure[0]}", file=sys.stderr)
            status["code"] = failure[1]

    def run(reactor: Any) -> Any:
        return defer.ensureDeferred(body(reactor))

    try:
        task.react(run)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return int(exc.code)
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
