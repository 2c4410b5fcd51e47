# The daemon's start (issue 15, start -> first pixels): its TLS port is bound
# before the imports and adopted by the reactor later (sessiond/
# early_listen.py); the garbage collector waits until the daemon serves, then
# freezes the start's objects (sessiond/startup_pages.py); the config loader
# and the AUTH path's python-pam are not imported on the way to the bind and
# to serving. Fakes only: a MemoryReactor, an unbound socket, fresh interpreters.
"""early_listen, the collector around start-up, and what loading the config imports."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys

from OpenSSL import SSL
from twisted.internet.testing import MemoryReactor
from twisted.protocols.tls import TLSMemoryBIOFactory

from sessiond import startup_pages
from sessiond.early_listen import ListenError, address_family, adopt_tls
from test_daemon_imports import CHILD_TIMEOUT, REPO


class Factory:
    """Stands for the port's MuxFactory."""


class ContextFactory:
    """Stands for the server's CertificateOptions (TLSMemoryBIOFactory asks it for a context at once)."""

    def __init__(self) -> None:
        self.asked = 0

    def getContext(self) -> SSL.Context:  # noqa: N802 - Twisted name
        self.asked += 1
        return SSL.Context(SSL.TLS_METHOD)


def test_the_reactor_adopts_the_bound_socket_as_a_tls_port_and_the_caller_copy_is_closed() -> None:
    reactor = MemoryReactor()
    mine = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # never bound: no network in a unit test
    factory, context = Factory(), ContextFactory()
    adopt_tls(reactor, mine, factory, context)
    assert len(reactor.adoptedPorts) == 1
    _fd, family, wrapped = reactor.adoptedPorts[0]
    assert family == socket.AF_INET
    assert isinstance(wrapped, TLSMemoryBIOFactory) and wrapped.wrappedFactory is factory
    assert context.asked == 1, "the TLS context is made with the port, as listenSSL makes it"
    assert mine.fileno() == -1, "the port holds its own duplicate; the bound socket is closed"


def test_an_address_family_is_chosen_as_twisted_chooses_it() -> None:
    assert address_family("127.0.0.1") == socket.AF_INET
    assert address_family("") == socket.AF_INET
    assert address_family("::1") == socket.AF_INET6


def test_a_listen_error_names_where_and_why() -> None:
    error = ListenError("127.0.0.1", OSError(98, "Address already in use"))
    assert str(error) == "127.0.0.1: [Errno 98] Address already in use"
    assert error.where == "127.0.0.1" and error.error.errno == 98


def test_the_collector_waits_for_serving_then_never_traverses_the_start_again() -> None:
    try:
        startup_pages.pause_collector()
        assert not gc.isenabled()
        startup_pages.serving_starts()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        before = gc.get_freeze_count()

        class Cycle:
            pass

        garbage = Cycle()
        garbage.me = garbage  # type: ignore[attr-defined]
        del garbage
        assert startup_pages.collect_startup_garbage() >= 1, "the start's cyclic garbage is collected"
        assert gc.get_freeze_count() > 0 and gc.get_freeze_count() <= before + 100
    finally:
        gc.unfreeze()
        gc.enable()


def fresh_modules(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO},
                          timeout=CHILD_TIMEOUT)  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(done.stderr[-2000:])
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_loading_the_config_and_binding_imports_nothing_of_twisted() -> None:
    modules = fresh_modules("from sessiond.config import load_config\nload_config(None, {})\n"
                            "import sessiond.early_listen, sessiond.cli")  # fmt: skip
    assert "sessiond.config" in modules and "sessiond.early_listen" in modules
    assert [name for name in modules if name == "twisted" or name.startswith("twisted.")] == []


def test_the_auth_path_loads_python_pam_only_when_asked() -> None:
    modules = fresh_modules("import sessiond.auth, sessiond.pam_account")
    assert "pam" not in modules and "pam.__internals" not in modules
    loaded = fresh_modules("import sessiond.auth\nsessiond.auth.load_pam()")
    assert "pam.__internals" in loaded, "load_pam (run once the daemon listens) does load it"
