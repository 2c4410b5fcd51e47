# sslyze (in its own venv, see requirements-sslyze.txt) against the installed
# sessiond's TLS port (issue 12): only TLS 1.3 is accepted, every key-exchange
# group offered is a strong one, there is no TLS compression and no client
# renegotiation, plus the classic probes (Heartbleed, CCS injection, ROBOT).
"""Integration: the TLS port as a scanner sees it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from svtest import PREFIX, Server, start_sessiond, stop_sessiond

pytestmark = pytest.mark.integration

SSLYZE_PY = os.path.join(PREFIX, "sslyze-venv", "bin", "python")
# Groups we accept to be offered: 128-bit security or more, no brainpool/binary/small curves.
STRONG_GROUPS = {"X25519", "X448", "secp256r1", "secp384r1", "secp521r1"}
OLD_VERSIONS = ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1", "tls_1_2")


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not os.path.exists(SSLYZE_PY):
        pytest.fail(f"{SSLYZE_PY} is missing: run `make sslyze PREFIX={PREFIX}`")
    tmp = str(tmp_path_factory.mktemp("tls"))
    server: Server = start_sessiond(tmp)
    try:
        out = os.path.join(tmp, "scan.json")
        done = subprocess.run([SSLYZE_PY, "-m", "sslyze", f"{server.host}:{server.port}", f"--json_out={out}",
                               "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3",
                               "--elliptic_curves", "--compression", "--reneg", "--heartbleed", "--openssl_ccs",
                               "--robot"], capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        with open(out, encoding="utf-8") as handle:
            result = json.load(handle)["server_scan_results"][0]
        assert result["scan_status"] == "COMPLETED", result
        yield result["scan_result"]
    finally:
        stop_sessiond(server)


def outcome(scan: dict[str, Any], name: str) -> dict[str, Any]:
    entry = scan[name]
    assert entry["status"] == "COMPLETED", entry
    return entry["result"]  # type: ignore[no-any-return]


def test_only_tls_1_3_is_accepted(scan: dict[str, Any]) -> None:
    for version in OLD_VERSIONS:
        result = outcome(scan, f"{version}_cipher_suites")
        assert not result["is_tls_version_supported"] and not result["accepted_cipher_suites"], version
    assert outcome(scan, "tls_1_3_cipher_suites")["accepted_cipher_suites"]


def test_no_weak_groups(scan: dict[str, Any]) -> None:
    groups = {g["name"] for g in outcome(scan, "elliptic_curves")["supported_curves"]}
    assert groups and groups <= STRONG_GROUPS, groups


def test_no_compression_no_renegotiation(scan: dict[str, Any]) -> None:
    assert outcome(scan, "tls_compression")["supports_compression"] is False
    reneg = outcome(scan, "session_renegotiation")
    assert reneg["is_vulnerable_to_client_renegotiation_dos"] is False
    assert reneg["client_renegotiations_success_count"] == 0


def test_classic_probes(scan: dict[str, Any]) -> None:
    assert outcome(scan, "heartbleed")["is_vulnerable_to_heartbleed"] is False
    assert outcome(scan, "openssl_ccs_injection")["is_vulnerable_to_ccs_injection"] is False
    assert outcome(scan, "robot")["robot_result"].startswith("NOT_VULNERABLE")
