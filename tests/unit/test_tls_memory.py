# The daemon's host certificate without cryptography's generation and x509
# code resident in the daemon (issue 15, sessiond/tls.py): the key and
# certificate are made in a forked child, the fingerprint is read with
# pyOpenSSL (and must stay the one clients have pinned), and the web side
# parses the certificate for HSTS only with the first request.
"""sessiond.tls: forked certificate creation, pyOpenSSL fingerprint; sessiond.web: HSTS decided on first use."""

from __future__ import annotations

import os
import stat
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.web import resource
from twisted.web.test.requesthelper import DummyRequest

from sessiond import tls, web
from transport.tls import fingerprint


def test_forked_creation_makes_the_files_in_a_child(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = tls.ensure_host_certificate

    def recording(state_dir: str) -> tuple[str, str]:
        calls.append(state_dir)  # appended in the child's memory, not ours
        return real(state_dir)

    monkeypatch.setattr(tls, "ensure_host_certificate", recording)
    state = str(tmp_path / "state")
    key_path, cert_path = tls.ensure_host_certificate_forked(state)
    assert calls == []  # the generation never ran in this process
    for path in (key_path, cert_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(cert_path, "rb") as handle:
        assert x509.load_pem_x509_certificate(handle.read()).issuer.rfc4514_string().startswith("CN=sessiond")
    # Files already there: nothing is forked or rewritten.
    before = os.stat(cert_path).st_mtime_ns
    assert tls.ensure_host_certificate_forked(state) == (key_path, cert_path)
    assert os.stat(cert_path).st_mtime_ns == before


def test_forked_creation_reports_a_failure(tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="could not create the host key"):
        tls.ensure_host_certificate_forked(str(blocker / "state"))


def test_fingerprint_is_the_pinned_one(tmp_path: Any) -> None:
    # Clients pinned SHA-256 of the DER certificate as cryptography wrote it; pyOpenSSL must agree.
    _key, cert_path = tls.ensure_host_certificate(str(tmp_path))
    with open(cert_path, "rb") as handle:
        der = x509.load_pem_x509_certificate(handle.read()).public_bytes(serialization.Encoding.DER)
    assert tls.certificate_fingerprint(cert_path) == fingerprint(der)


def test_hsts_is_decided_with_the_first_request(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _key, cert_path = tls.ensure_host_certificate(str(tmp_path / "state"))
    parsed: list[str] = []
    real = web.is_self_signed

    def recording(path: str) -> bool:
        parsed.append(path)
        return real(path)

    monkeypatch.setattr(web, "is_self_signed", recording)
    root = resource.Resource()
    os.makedirs(tmp_path / "client")
    (tmp_path / "client" / "index.html").write_bytes(b"<html>")
    web.install_web_client(root, gateway=None, cert_path=cert_path, directory=str(tmp_path / "client"))  # type: ignore[arg-type]
    assert parsed == []  # an idle daemon has not parsed its certificate
    client = root.children[b"web"]
    for _ in range(2):
        request = DummyRequest([b"index.html"])
        assert client.render_GET(request) == b"<html>"
        assert request.responseHeaders.getRawHeaders(b"strict-transport-security") is None  # self-signed
    assert parsed == [cert_path]  # parsed once, then remembered
