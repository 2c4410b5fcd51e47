# The agent's mirror of the client's glyph cache (docs/protocol.md 7c):
# which glyph each of the display channel's GLYPH_SLOTS slots holds.
#
# Why a mirror: a GLYPHS region names slots, and may name a slot only if an
# earlier region on the same display channel (or itself) defined it.  The
# agent decides every slot's content, so it knows the client's cache
# exactly as long as regions reach the client in order (they do: one
# ordered channel; encoder.forget() relies on the same).  Free slots are
# used first, then the least recently used glyph is replaced -- never one
# the region being built uses.  Assigning is split from committing, so a
# region the encoder then drops (PALETTE was smaller) leaves no trace.
"""SlotMirror: glyph -> slot at the client, LRU reuse, reset per display channel."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from protocol.media import GLYPH_MAX_USED, GLYPH_SLOTS

# A glyph as the mirror knows it: cell_w, cell_h, column-major 0/1 cell bytes.
GlyphKey = tuple[int, int, bytes]


@dataclass
class Assignment:
    """Slots for one region's distinct glyphs, not yet committed."""

    slots: list[int]  # per distinct glyph, in the order given
    new: list[tuple[int, GlyphKey]] = field(default_factory=list)  # definitions the region must carry
    evicted: list[GlyphKey] = field(default_factory=list)  # glyphs whose slots the definitions reuse
    keys: list[GlyphKey] = field(default_factory=list)


class SlotMirror:
    """What the client's glyph cache holds, least recently used first."""

    def __init__(self, slots: int = GLYPH_SLOTS) -> None:
        if not GLYPH_MAX_USED <= slots <= GLYPH_SLOTS:
            raise ValueError(f"{slots} slots: a region's {GLYPH_MAX_USED} glyphs must fit")
        self._size = slots
        self._slot_of: OrderedDict[GlyphKey, int] = OrderedDict()
        self._free: list[int] = []
        self.reset()

    def reset(self) -> None:
        """A new display channel: the client's cache is empty."""
        self._slot_of.clear()
        self._free = list(range(self._size - 1, -1, -1))  # slot 0 is used first

    def __len__(self) -> int:
        return len(self._slot_of)

    def slot(self, key: GlyphKey) -> int | None:
        """The slot holding this glyph at the client, if any."""
        return self._slot_of.get(key)

    def assign(self, cell_w: int, cell_h: int, cells: Sequence[bytes]) -> Assignment:
        """Slots for the distinct glyphs `cells` (at most GLYPH_MAX_USED) of
        one region: known ones keep theirs, new ones take free slots, then
        the least recently used glyphs' slots (never one this region uses)."""
        if len(cells) > GLYPH_MAX_USED:
            raise ValueError(f"{len(cells)} glyphs in one region, past {GLYPH_MAX_USED}")
        keys = [(cell_w, cell_h, cell) for cell in cells]
        wanted = set(keys)
        missing = sum(1 for key in keys if key not in self._slot_of)
        from_free = self._free[len(self._free) - min(missing, len(self._free)) :][::-1]
        evictable = (key for key in self._slot_of if key not in wanted)
        evicted = [next(evictable) for _ in range(missing - len(from_free))]
        fresh = iter(from_free + [self._slot_of[key] for key in evicted])
        out = Assignment(slots=[], evicted=evicted, keys=keys)
        for key in keys:
            slot = self._slot_of.get(key)
            if slot is None:
                slot = next(fresh)
                out.new.append((slot, key))
            out.slots.append(slot)
        return out

    def commit(self, assignment: Assignment) -> None:
        """The region of this assignment was sent: the client now holds its glyphs."""
        for key in assignment.evicted:
            del self._slot_of[key]
        taken = len(assignment.new) - len(assignment.evicted)
        if taken:
            del self._free[-taken:]
        for slot, key in assignment.new:
            self._slot_of[key] = slot
        for key in assignment.keys:
            self._slot_of.move_to_end(key)
