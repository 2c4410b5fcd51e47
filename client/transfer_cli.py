# The `svclient clipboard` and `svclient files` commands: argument parsing,
# reading and writing local files, progress and final messages. The channel
# work is client.transfers.
"""svclient clipboard get|set and files put|get."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from client.session import SessionClient
from client.transfers import TransferFailed, clipboard_get, clipboard_set, get_files, open_inbox, put_file
from protocol.messages import ChannelKind
from protocol.transfer import MAX_CLIP_BYTES, Mime, Selection

__all__ = ["TransferFailed", "add_transfer_parsers", "run_transfer"]

# Seconds between two progress lines of a file upload.
PROGRESS_INTERVAL = 0.5


def add_transfer_parsers(sub: Any) -> None:
    """Add the clipboard and files subcommands to svclient's parser."""
    clip = sub.add_parser("clipboard", help="read or set the session's clipboard")
    clip_sub = clip.add_subparsers(dest="clip_command", required=True)
    get = clip_sub.add_parser("get", help="print (or save) the session's clipboard")
    get.add_argument("--type", choices=("text", "image"), default="text", help="text (UTF-8) or image (PNG)")
    get.add_argument("-o", "--output", help="write to FILE instead of stdout")
    get.add_argument("--selection", choices=("clipboard", "primary"), default="clipboard")
    put = clip_sub.add_parser("set", help="set the session's clipboard (and PRIMARY, for middle-click)")
    put.add_argument("text", nargs="?", help="the text")
    put.add_argument("--file", help="take the content from FILE (a .png is an image, else UTF-8 text)")
    put.add_argument("--type", choices=("text", "image"), default=None, help="force the type of --file")
    put.add_argument("--selection", choices=("clipboard", "primary"), default="clipboard")
    files = sub.add_parser("files", help="send files into the session's ~/Downloads, or fetch what it sent")
    files_sub = files.add_subparsers(dest="files_command", required=True)
    fput = files_sub.add_parser("put", help="send files to ~/Downloads in the session")
    fput.add_argument("paths", nargs="+", metavar="FILE")
    fget = files_sub.add_parser("get", help="save the files the session offered (sessiond-send, ~/Outbox)")
    fget.add_argument("--dir", default=".", help="where to save them (default: the current directory)")
    fget.add_argument("--wait", type=float, default=3.0, help="seconds to wait for offers (default 3)")


def _selection(name: str) -> Selection:
    return Selection.PRIMARY if name == "primary" else Selection.CLIPBOARD


async def run_transfer(reactor: Any, client: SessionClient, args: argparse.Namespace) -> int:
    """Run one clipboard or files command; TransferFailed for refusals."""
    if args.command == "clipboard" and args.clip_command == "get":
        mime = Mime.PNG if args.type == "image" else Mime.TEXT
        data = await clipboard_get(reactor, client, _selection(args.selection), mime, args.timeout)
        if args.output:
            with open(args.output, "wb") as handle:
                handle.write(data)
            print(f"wrote {args.output} ({len(data)} bytes of {args.type})", file=sys.stderr)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        return 0
    if args.command == "clipboard":
        content = _content(args)
        await clipboard_set(reactor, client, _selection(args.selection), content, args.timeout)
        what = "an image" if Mime.PNG in content else "text"
        print(f"set the session's {args.selection} to {what} ({len(next(iter(content.values())))} bytes)",
              file=sys.stderr)  # fmt: skip
        return 0
    if args.files_command == "get":
        os.makedirs(args.dir, exist_ok=True)
        count = await get_files(reactor, client, args.dir, args.wait, args.timeout,
                                lambda line: print(line, flush=True))  # fmt: skip
        print(f"{count} file(s) received" if count else "the session offered no files", file=sys.stderr)
        return 0
    return await _put(reactor, client, args.paths, args.timeout)


def _content(args: argparse.Namespace) -> dict[Mime, bytes]:
    if (args.text is None) == (args.file is None):
        raise TransferFailed("give TEXT or --file FILE")
    if args.text is not None:
        return {Mime.TEXT: args.text.encode("utf-8")}
    try:
        size = os.path.getsize(args.file)
        if size > MAX_CLIP_BYTES:
            raise TransferFailed(f"{args.file} is {size} bytes; the clipboard carries at most {MAX_CLIP_BYTES}")
        with open(args.file, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise TransferFailed(f"cannot read {args.file}: {exc.strerror}") from exc
    image = args.type == "image" or (args.type is None and data.startswith(b"\x89PNG\r\n\x1a\n"))
    if not image:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TransferFailed(f"{args.file} is neither UTF-8 text nor a PNG image") from exc
    return {Mime.PNG if image else Mime.TEXT: data}


async def _put(reactor: Any, client: SessionClient, paths: list[str], timeout: float) -> int:
    inbox = await open_inbox(client, ChannelKind.FILES, "file transfer")
    failed = 0
    for transfer_id, path in enumerate(paths, start=1):
        started = last = time.monotonic()
        label = os.path.basename(path)

        def progress(sent: int, size: int, label: str = label) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL or sent == size:
                last = now
                percent = 100 * sent // size if size else 100
                print(f"\r{label}: {sent}/{size} bytes ({percent}%)", end="", file=sys.stderr,
                      flush=True)  # fmt: skip

        try:
            done = await put_file(reactor, inbox, transfer_id, path, timeout, progress)
        except TransferFailed as exc:
            print(f"\nsvclient: {exc}", file=sys.stderr)
            failed += 1
            continue
        seconds = max(time.monotonic() - started, 1e-6)
        print(f"\nsent {path} -> ~/Downloads/{done.name} ({done.size} bytes, {done.size / seconds / 1e6:.1f} MB/s)",
              file=sys.stderr)  # fmt: skip
    return 1 if failed else 0
