"""Bounded entity store: LRU order, a hard cap and a time-to-live.

Eviction (documented in docs/features.md): when the cap is exceeded the least
recently active entity is dropped; every ``SWEEP_EVERY`` events, entities idle
for longer than ``ttl_s`` (by event time) are dropped too. An evicted entity
that returns starts cold again and is scored against its peer group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

P = TypeVar("P")


class EntityStore(Generic[P]):
    SWEEP_EVERY = 4096

    def __init__(
        self,
        factory: Callable[[], P],
        last_seen: Callable[[P], float],
        max_entities: int,
        ttl_s: float,
    ) -> None:
        self._factory = factory
        self._last_seen = last_seen
        self.max_entities = max_entities
        self.ttl_s = ttl_s
        self._items: dict[str, P] = {}
        self._since_sweep = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def items(self) -> Iterator[tuple[str, P]]:
        return iter(self._items.items())

    def get(self, key: str, now: float) -> P:
        """The profile for ``key`` (created if absent), marked most recently used."""
        items = self._items
        profile = items.pop(key, None)
        if profile is None:
            profile = self._factory()
            if len(items) >= self.max_entities:
                del items[next(iter(items))]
                self.evicted += 1
        items[key] = profile
        self._since_sweep += 1
        if self._since_sweep >= self.SWEEP_EVERY:
            self._sweep(now)
        return profile

    def put(self, key: str, profile: P) -> None:
        """Insert a restored profile (checkpoint load), most recently used last."""
        self._items[key] = profile

    def _sweep(self, now: float) -> None:
        """Drop entities idle for longer than the TTL (they sit at the LRU head)."""
        self._since_sweep = 0
        items = self._items
        horizon = now - self.ttl_s
        while items:
            key = next(iter(items))
            if self._last_seen(items[key]) >= horizon:
                break
            del items[key]
            self.evicted += 1
