# The process and trust boundaries of DESIGN.md, as import rules checked
# statically over the source tree (ast, nothing imported): protocol/ stays
# sans-IO, the thin client never depends on the daemon, the session agent
# (which runs as the user) never pulls daemon code in, isolation/ stays the
# small privileged part, transport/ and media/ stay shared leaves. Every
# import counts: module level, inside functions, under TYPE_CHECKING.
"""Import-boundary rules over the checkout's packages, and a self-test of the checker."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The checkout this test file belongs to (tests/unit/ -> the repository root).
REPO = Path(__file__).resolve().parents[2]

# protocol/ may import only itself and these pure standard-library modules:
# no I/O, processes, sockets, threads, event loops or clocks.
PROTOCOL_STDLIB = frozenset({
    "__future__", "abc", "base64", "binascii", "bisect", "codecs", "collections", "copy", "dataclasses",
    "enum", "functools", "hashlib", "heapq", "hmac", "io", "itertools", "json", "math", "numbers",
    "operator", "re", "reprlib", "string", "struct", "textwrap", "types", "typing", "unicodedata", "zlib",
})  # fmt: skip
# transport/ may import protocol/, Twisted and the standard library. Twisted's
# interfaces come from zope.interface, and its TLS from pyOpenSSL and
# cryptography (the twisted[tls] extra): those count as Twisted here.
TWISTED = frozenset({"twisted", "zope", "OpenSSL", "cryptography", "service_identity"})
# The daemon's own packages, which the agent and the client must not import.
DAEMON_PREFIX = "sessiond"
AGENT_PACKAGE = "sessiond.agent"

# protocol/export.py is the build-time generator of the web client's message
# table (`python -m protocol.export`), not code any process runs: as a
# command line tool it may read its arguments and write files.
PROTOCOL_TOOL_IMPORTS = {"protocol/export.py": frozenset({"argparse", "sys", "pathlib"})}


@dataclass(frozen=True)
class Import:
    """One imported module name, where it is imported."""

    path: str  # relative to the root, e.g. "client/session.py"
    line: int
    module: str  # fully qualified, relative imports resolved

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path) -> Iterator[Import]:
    """Every module `path` imports; `from pkg import name` yields pkg.name when that is a module."""
    rel = path.relative_to(root).as_posix()
    own = module_name(root, path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(rel, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield Import(rel, node.lineno, module)
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                as_path = root.joinpath(*candidate.split("."))
                if as_path.with_suffix(".py").is_file() or (as_path / "__init__.py").is_file():
                    yield Import(rel, node.lineno, candidate)


def package_imports(root: Path, package: str) -> list[Import]:
    """The imports of every module of `package` (a directory under root); [] if it does not exist."""
    directory = root / package
    if not directory.is_dir():
        return []
    return [imp for path in sorted(directory.rglob("*.py")) for imp in imports_of(root, path)]


def is_stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def violations(root: Path) -> list[str]:
    """Every broken boundary under root, one line each."""
    found: list[str] = []
    for imp in package_imports(root, "protocol"):
        if imp.top != "protocol" and imp.top not in PROTOCOL_STDLIB \
                and imp.top not in PROTOCOL_TOOL_IMPORTS.get(imp.path, frozenset()):  # fmt: skip
            found.append(f"{imp}: protocol/ is sans-IO and imports only pure standard-library modules")
    for imp in package_imports(root, "client"):
        if imp.top == DAEMON_PREFIX:
            found.append(f"{imp}: the thin client depends on protocol/, transport/, media/ and itself only")
    for imp in package_imports(root, "sessiond/agent"):
        if imp.top == DAEMON_PREFIX and imp.module != DAEMON_PREFIX and not (
                imp.module == AGENT_PACKAGE or imp.module.startswith(AGENT_PACKAGE + ".")):  # fmt: skip
            found.append(f"{imp}: the session agent imports no daemon module")
        if imp.top == "client":
            found.append(f"{imp}: the session agent does not import the client (shared code goes to media/)")
    for imp in package_imports(root, "isolation"):
        if imp.top in ("protocol", DAEMON_PREFIX):
            found.append(f"{imp}: isolation/ imports neither protocol/ nor sessiond/")
    for imp in package_imports(root, "transport"):
        if imp.top not in ("transport", "protocol") and imp.top not in TWISTED and not is_stdlib(imp.module):
            found.append(f"{imp}: transport/ imports only protocol/, Twisted and the standard library")
    for imp in package_imports(root, "media"):
        if imp.top in (DAEMON_PREFIX, "client"):
            found.append(f"{imp}: media/ is shared by the agent and the client and imports neither")
    return found


def cycles(root: Path, package: str) -> list[list[str]]:
    """Import cycles among the modules of `package` (every import counts, TYPE_CHECKING too)."""
    prefix = package.replace("/", ".")
    graph: dict[str, set[str]] = {}
    for path in sorted((root / package).glob("*.py")):
        own = module_name(root, path)
        graph[own] = {imp.module for imp in imports_of(root, path)
                      if imp.module.startswith(prefix + ".") and imp.module != own}  # fmt: skip
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt in graph and not state.get(nxt):
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [node])
    return found


def test_the_tree_keeps_its_import_boundaries() -> None:
    assert (REPO / "protocol").is_dir() and (REPO / "sessiond" / "agent").is_dir(), f"no source tree at {REPO}"
    assert violations(REPO) == []


@pytest.mark.parametrize("package", ["sessiond/agent", "client", "media"])
def test_no_import_cycles(package: str) -> None:
    assert cycles(REPO, package) == []


# -- the checker itself can fail ---------------------------------------------------


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(root).parents:
        if str(parent) != ".":
            (root / parent / "__init__.py").touch()
    path.write_text(text)


def test_the_checker_finds_each_kind_of_violation(tmp_path: Path) -> None:
    write(tmp_path, "sessiond/config.py", "")
    write(tmp_path, "sessiond/wire.py", "")
    write(tmp_path, "sessiond/agent/audio_codec.py", "")
    write(tmp_path, "sessiond/agent/link.py", "from sessiond.agent import main\n")
    write(tmp_path, "sessiond/agent/main.py", "from . import link\nfrom sessiond import config\n")
    write(tmp_path, "protocol/frames.py", "import asyncio\nfrom twisted.internet import reactor\nimport struct\n")
    write(tmp_path, "client/audio.py", "def f():\n    from sessiond.agent import audio_codec\n")
    write(tmp_path, "client/session.py", "from sessiond.wire import FrameProtocol\n")
    write(tmp_path, "isolation/enter.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import protocol\n")
    write(tmp_path, "transport/tls.py", "import PIL\nfrom twisted.internet import ssl\nimport socket\n")
    write(tmp_path, "media/opus.py", "from client import audio\n")
    found = violations(tmp_path)
    assert [line.split(":")[0] + " " + line.split(" imports ")[1].split(":")[0] for line in found] == [
        "protocol/frames.py asyncio",
        "protocol/frames.py twisted.internet",
        "client/audio.py sessiond.agent",
        "client/audio.py sessiond.agent.audio_codec",
        "client/session.py sessiond.wire",
        "sessiond/agent/main.py sessiond.config",
        "isolation/enter.py protocol",
        "transport/tls.py PIL",
        "media/opus.py client",
        "media/opus.py client.audio",
    ]
    assert cycles(tmp_path, "sessiond/agent") == [["sessiond.agent.link", "sessiond.agent.main", "sessiond.agent.link"]]
