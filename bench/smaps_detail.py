# Where a process's PSS is, mapping by mapping, for bench_memory.py --detail.
#
# Why: smaps_rollup says how much a process pins, not what: an agent's 20 MiB
# may be Python objects (anonymous heap), a C library's relocated data, or a
# shared-memory segment it shares with Xvfb; each wants a different cut. This
# reads /proc/PID/smaps and sums PSS per mapped object (a file's path, the
# heap, anonymous memory, a SysV segment), so the report names the biggest.
"""PSS of one process grouped per mapped object (file, heap, anon, shm)."""

from __future__ import annotations

import os

KIB = 1024
MIB = 1024 * 1024


def _object_name(header: list[str]) -> str:
    """The object of a smaps header line's fields: a path (base name), [heap],
    [stack], anon, or the SysV segment marker."""
    if len(header) < 6:
        return "anon"
    name = " ".join(header[5:])
    if name.startswith("/SYSV"):
        return "SysV shm (MIT-SHM)"
    if name.startswith("/memfd:"):
        return "memfd " + name[len("/memfd:"):].split(" ")[0]
    if name.startswith("/"):
        return os.path.basename(name.replace(" (deleted)", ""))
    return name


def pss_by_object(pid: int) -> dict[str, list[int]]:
    """{object: [pss, private_dirty]} in bytes for PID ({} once it is gone)."""
    result: dict[str, list[int]] = {}
    current: list[int] | None = None
    try:
        with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if not fields:
                    continue
                if "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header line
                    current = result.setdefault(_object_name(fields), [0, 0])
                elif current is not None and fields[0] == "Pss:":
                    current[0] += int(fields[1]) * KIB
                elif current is not None and fields[0] == "Private_Dirty:":
                    current[1] += int(fields[1]) * KIB
    except OSError:
        return {}
    return result


def merge(into: dict[str, list[int]], more: dict[str, list[int]]) -> None:
    """Add MORE's figures into INTO (several processes under one label)."""
    for name, values in more.items():
        have = into.setdefault(name, [0, 0])
        have[0] += values[0]
        have[1] += values[1]


def top_lines(label: str, objects: dict[str, list[int]], count: int) -> list[str]:
    """The COUNT largest objects of LABEL by PSS, one line each, then the rest as one line."""
    ranked = sorted(objects.items(), key=lambda item: -item[1][0])
    total = sum(values[0] for values in objects.values())
    lines = [f"  {label}: {total / MIB:.1f} MiB PSS"]
    for name, (pss, dirty) in ranked[:count]:
        lines.append(f"    {pss / MIB:6.2f}  (private dirty {dirty / MIB:5.2f})  {name}")
    rest = sum(values[0] for _name, values in ranked[count:])
    if rest:
        lines.append(f"    {rest / MIB:6.2f}  the other {len(ranked) - count} objects")
    return lines
