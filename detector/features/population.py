"""Population-wide rarity of keys (actions, resources) across all entities."""

from __future__ import annotations

from typing import Any

from detector.features.baselines import rarity


class KeyFrequencies:
    """Counts of keys across the whole population, bounded by halving when full.

    Halving (and dropping keys that reach zero) keeps memory under ``cap`` keys
    and lets the counts follow drift: old habits fade by half each time.
    """

    def __init__(self, cap: int = 200_000) -> None:
        self.cap = cap
        self.counts: dict[int, int] = {}
        self.total = 0

    def rarity_then_add(self, key: int) -> float:
        """Surprise of ``key`` before this occurrence, then count it."""
        counts = self.counts
        count = counts.get(key, 0)
        surprise = rarity(count, self.total)
        counts[key] = count + 1
        self.total += 1
        if len(counts) > self.cap:
            self._halve()
        return surprise

    def frequency(self, key: int) -> float:
        return self.counts.get(key, 0) / max(self.total, 1)

    def _halve(self) -> None:
        self.counts = {k: c // 2 for k, c in self.counts.items() if c > 1}
        self.total = sum(self.counts.values())

    def to_state(self) -> dict[str, Any]:
        return {"cap": self.cap, "keys": list(self.counts), "counts": list(self.counts.values())}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> KeyFrequencies:
        freq = cls(int(state["cap"]))
        freq.counts = dict(zip(map(int, state["keys"]), map(int, state["counts"]), strict=True))
        freq.total = sum(freq.counts.values())
        return freq
