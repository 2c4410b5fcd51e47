# Runs one fuzz target of targets.py under atheris (libFuzzer, coverage-guided
# over the project's own packages), seeded from tests/vectors/frames.json and
# a few hand-made inputs. Exit status 0: no crash in the runs; non-zero: a
# crash, whose input libFuzzer writes as crash-* under --artifacts.
#   python tests/fuzz/run_target.py frame_decoder --runs 5000
"""Run one atheris fuzz target: run_target.py NAME [--runs N] [--seconds S]."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(os.path.dirname(HERE), "vectors", "frames.json")
APPS_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "conf", "apps")
# The project's packages: their code is instrumented for coverage.
PACKAGES = ["protocol", "sessiond", "client", "apps", "isolation", "media", "targets", "tile_target"]
# Longest input libFuzzer makes; the decoders' interesting bounds are in headers.
MAX_LEN = 8192

sys.path.insert(0, HERE)
with atheris.instrument_imports(include=PACKAGES):
    import targets  # noqa: E402


def seeds() -> list[bytes]:
    """Frames and payloads of the test vectors, in the forms the targets read."""
    out: list[bytes] = []
    kinds = [int(k) for k in targets.KINDS]
    with open(VECTORS, encoding="utf-8") as handle:
        for vector in json.load(handle):
            if "bytes_hex" in vector:  # a stream that must be refused
                out.append(b"\x3c" + bytes.fromhex(vector["bytes_hex"]))
                continue
            frame, payload = bytes.fromhex(vector["frame_hex"]), bytes.fromhex(vector["payload_hex"])
            out.append(b"\x3c" + frame)  # chunk byte, then the frame
            if vector["kind"] in kinds:
                out.append(bytes([kinds.index(vector["kind"]), vector["type"]]) + payload)
            out.append(payload)
    out += [
        b"\x3cGET /admin/sessions HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer fuzz-token\r\n\r\n",
        b"\x3cPOST /admin/sessions/s1/logoff HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer fuzz-token\r\n"
        b"Content-Length: 0\r\n\r\n",
        b"\x3cPOST /admin/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"\x3cGET /metrics HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer fuzz-token\r\n\r\n",
        b"\x01\x82\x05hello\x02\x03abc\x88\x02\x03\xe8",
        b'{"version": 1}',
    ]
    if os.path.isdir(APPS_DIR):
        for name in sorted(os.listdir(APPS_DIR)):
            with open(os.path.join(APPS_DIR, name), "rb") as handle:
                out.append(handle.read())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", choices=sorted(targets.TARGETS))
    parser.add_argument("--runs", type=int, default=10_000, help="inputs to run (-1: no limit)")
    parser.add_argument("--seconds", type=int, default=0, help="stop after this long (0: no limit)")
    parser.add_argument("--artifacts", default=os.getcwd(), help="where a crashing input is written")
    args = parser.parse_args()
    corpus = tempfile.mkdtemp(prefix=f"fuzz-{args.target}-")
    for index, seed in enumerate(seeds() + targets._target_seeds().get(args.target, [])):
        with open(os.path.join(corpus, f"seed-{index:04d}"), "wb") as handle:
            handle.write(seed[:MAX_LEN])
    target = targets.TARGETS[args.target]
    argv = [sys.argv[0], corpus, f"-runs={args.runs}", f"-max_len={MAX_LEN}", "-print_final_stats=1",
            "-timeout=20", "-rss_limit_mb=3072", f"-artifact_prefix={os.path.join(args.artifacts, '')}"]  # fmt: skip
    if args.seconds:
        argv.append(f"-max_total_time={args.seconds}")
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
