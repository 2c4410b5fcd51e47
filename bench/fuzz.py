# Long fuzzing runs of every target in tests/fuzz/targets.py (issue 12): each
# target runs under atheris in its own process for N inputs or S seconds, and
# one line per target reports inputs, inputs/second, coverage (libFuzzer's
# "cov" edges and "ft" features) and crashes, whose inputs are kept under
# --artifacts. Targets run one at a time (the machine has 2 cores).
#   /opt/sessiond/venv/bin/python bench/fuzz.py --runs 1000000
#   /opt/sessiond/venv/bin/python bench/fuzz.py --seconds 30 frame_decoder messages
"""Run the fuzz targets long; print inputs/s and coverage per target."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ_DIR = os.path.join(ROOT, "tests", "fuzz")
RUNNER = os.path.join(FUZZ_DIR, "run_target.py")
DONE_RE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+)")
STAT_RE = re.compile(r"stat::number_of_executed_units: (\d+)")
COV_RE = re.compile(r"#\d+\s+\w+\s+cov: (\d+) ft: (\d+)")


def target_names() -> list[str]:
    sys.path.insert(0, FUZZ_DIR)
    import targets  # noqa: PLC0415

    return list(targets.TARGETS)


def run(name: str, runs: int, seconds: int, artifacts: str) -> tuple[int, float, str, str, bool]:
    """(inputs, seconds, cov, ft, crashed) of one target run."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, RUNNER, name, "--runs", str(runs), "--seconds", str(seconds),
                           "--artifacts", artifacts], capture_output=True, text=True)  # fmt: skip
    elapsed = time.monotonic() - started
    units = STAT_RE.search(done.stderr)
    coverage = COV_RE.findall(done.stderr)
    cov, ft = coverage[-1] if coverage else ("?", "?")
    return int(units.group(1)) if units else 0, elapsed, cov, ft, done.returncode != 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", help="target names (default: all)")
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--seconds", type=int, default=0, help="time limit per target (0: none)")
    parser.add_argument("--artifacts", default=None, help="where crashing inputs are kept")
    args = parser.parse_args()
    artifacts = args.artifacts or tempfile.mkdtemp(prefix="sessiond-fuzz-")
    os.makedirs(artifacts, exist_ok=True)
    names = args.targets or target_names()
    print(f"{'target':28} {'inputs':>10} {'inputs/s':>9} {'cov':>6} {'ft':>6}  result")
    crashed = 0
    total = 0
    for name in names:
        inputs, elapsed, cov, ft, crash = run(name, args.runs, args.seconds, artifacts)
        total += inputs
        crashed += crash
        print(f"{name:28} {inputs:>10} {inputs / max(elapsed, 1e-9):>9.0f} {cov:>6} {ft:>6}  "
              f"{'CRASH (see ' + artifacts + ')' if crash else 'ok'}", flush=True)  # fmt: skip
    print(f"total {total} inputs, {crashed} target(s) crashed; artifacts in {artifacts}")
    sys.exit(1 if crashed else 0)


if __name__ == "__main__":
    main()
