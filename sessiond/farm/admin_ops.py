# The farm's admin operations, behind both admin doors (the root control
# socket for sessionctl and the token-guarded /admin/ JSON): hosts with
# their load and state, every session of the farm with its host, and drain.
# Kept apart from sessiond/admin.py, which only dispatches to them; on a
# single host the same calls answer from the LocalDirectory.
"""FarmAdmin: hosts, farm-wide session list, drain."""

from __future__ import annotations

import dataclasses
from typing import Any

from sessiond.farm.directory import FarmDirectory


class FarmAdmin:
    """Answers admin requests about the farm from the session directory."""

    def __init__(self, directory: FarmDirectory, clock: Any) -> None:
        self.directory = directory
        self.clock = clock

    async def hosts(self) -> list[dict[str, Any]]:
        """Live hosts: id, address, load, sessions placed, capacity, state (ok, draining, adopting)."""
        rows = []
        for host in await self.directory.hosts():
            row = dataclasses.asdict(host)
            row["state"] = "draining" if host.draining else "adopting" if host.adopting else "ok"
            row["this"] = host.host_id == self.directory.host_id
            rows.append(row)
        return sorted(rows, key=lambda r: str(r["host_id"]))

    async def sessions(self) -> list[dict[str, Any]]:
        """Every session in the directory: user, session, host, address, state (live or lost)."""
        return [dataclasses.asdict(p) for p in await self.directory.sessions()]

    async def drain(self, host_id: str, undo: bool = False, wait: bool = False) -> dict[str, Any]:
        """Stop (UNDO: resume) new placements on HOST_ID; with WAIT, answer once its last session ended."""
        await self.directory.drain(host_id, not undo)
        answer: dict[str, Any] = {"host": host_id, "draining": not undo}
        if wait and not undo:
            await self.directory.wait_drained(host_id)
            answer["drained_at"] = self.clock.seconds()
        return answer
