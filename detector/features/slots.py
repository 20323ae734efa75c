"""Entity key -> state-row ("slot") allocation with LRU order, a cap and a TTL.

Same eviction as ``store.EntityStore`` (docs/features.md): at the cap the least
recently active key loses its slot; every ``SWEEP_EVERY`` events keys idle for
longer than ``ttl_s`` (by event time) are dropped. A slot handed to a new key is
flagged ``reset`` so the kernel zeroes its row before that key's first event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class SlotTable:
    SWEEP_EVERY = 4096

    def __init__(self, max_slots: int, ttl_s: float) -> None:
        self.max_slots = max_slots
        self.ttl_s = ttl_s
        self.slots: dict[str, int] = {}  # insertion order = LRU order (head = least recent)
        self.free: list[int] = []
        self.high_water = 0  # slots ever handed out (rows in use or free)
        self.since_sweep = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.slots)

    def __contains__(self, key: str) -> bool:
        return key in self.slots

    def items(self) -> Iterator[tuple[str, int]]:
        return iter(self.slots.items())

    def assign(
        self, keys: Sequence[str], start: int, slot_out: np.ndarray, reset_out: np.ndarray
    ) -> int:
        """Slots for ``keys[start:]`` into the outputs, up to and including the event
        that makes a TTL sweep due; returns the index after the last one assigned."""
        slots, free = self.slots, self.free
        i, end = start, len(keys)
        while i < end:
            key = keys[i]
            slot = slots.pop(key, None)
            if slot is None:
                reset_out[i] = True
                if len(slots) >= self.max_slots:
                    slot = slots.pop(next(iter(slots)))
                    self.evicted += 1
                elif free:
                    slot = free.pop()
                else:
                    slot = self.high_water
                    self.high_water += 1
            slots[key] = slot
            slot_out[i] = slot
            i += 1
            self.since_sweep += 1
            if self.since_sweep >= self.SWEEP_EVERY:
                break
        return i

    def sweep_due(self) -> bool:
        return self.since_sweep >= self.SWEEP_EVERY

    def sweep(self, last_seen: np.ndarray, now: float) -> None:
        """Free the slots of keys idle since before ``now - ttl_s`` (at the LRU head);
        the most recent key is always kept (it has just been used)."""
        self.since_sweep = 0
        horizon = now - self.ttl_s
        stale: list[str] = []
        for key, slot in self.slots.items():
            if last_seen[slot] >= horizon or len(stale) == len(self.slots) - 1:
                break
            stale.append(key)
        for key in stale:
            self.free.append(self.slots.pop(key))
        self.evicted += len(stale)

    def to_state(self) -> dict[str, object]:
        return {
            "keys": list(self.slots),
            "slots": np.fromiter(self.slots.values(), np.int64, len(self.slots)),
            "free": np.asarray(self.free, np.int64),
            "scalars": [self.high_water, self.since_sweep, self.evicted],
        }

    @classmethod
    def from_state(cls, state: dict[str, object], max_slots: int, ttl_s: float) -> SlotTable:
        table = cls(max_slots, ttl_s)
        slots = np.asarray(state["slots"], np.int64)
        keys = list(state["keys"])  # type: ignore[call-overload]
        if len(keys) != slots.shape[0]:
            raise ValueError("slot table: keys and slots differ in length")
        table.slots = dict(zip(keys, slots.tolist(), strict=True))
        table.free = np.asarray(state["free"], np.int64).tolist()
        table.high_water, table.since_sweep, table.evicted = map(int, state["scalars"])  # type: ignore[call-overload]
        return table
