"""What access and inference featurisers share: entity store, peer groups,
population counts, cold-start blending, and the batch loop."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from detector.events import Event
from detector.features.baselines import RobustBaseline, blend
from detector.features.population import KeyFrequencies
from detector.features.profiles import TAU_LONG_S, Profile
from detector.features.store import EntityStore

P = TypeVar("P", bound=Profile)
WEEK_START_OFFSET_S = 3 * 86_400  # 1970-01-01 was a Thursday; weeks here start Monday 00:00 UTC


# Reading far less than usual is not what exfiltration looks like; flooring the low side
# keeps "0 bytes vs usual 47 KB" from outranking real signals in scores and explanations.
VOLUME_Z_FLOOR = 2.0


@dataclass(frozen=True)
class EntityLimits:
    """Memory bounds and the cold-start length (from the model definition)."""

    max_entities: int = 100_000
    ttl_s: float = 30 * 86_400.0
    cold_start_events: int = 20
    max_keys_per_entity: int = 64
    max_keys_per_peer: int = 4_096
    max_peer_groups: int = 1_000


def cold_weight(events_seen: int, cold_start_events: int) -> float:
    """How much an entity's own history counts (0 = brand new, 1 = warm).

    >>> cold_weight(0, 20), cold_weight(10, 20), cold_weight(50, 20)
    (0.0, 0.5, 1.0)
    """
    return min(1.0, events_seen / cold_start_events) if cold_start_events > 0 else 1.0


def hour_of_week(ts: float) -> int:
    """Hour of the week, 0 = Monday 00:00-00:59 UTC.

    >>> hour_of_week(0.0)  # Thursday 1970-01-01 00:00 UTC
    72
    """
    return int((ts + WEEK_START_OFFSET_S) // 3600) % 168


def volume_z(
    own: RobustBaseline, peer: RobustBaseline, value: float, w: float
) -> tuple[float, float, float]:
    """(z, usual, p99) of ``value`` against the blended baselines; then learn it.

    NaN (not reported) gives z = 0 and learns nothing.
    """
    if value != value:  # NaN: skip the baseline arithmetic entirely (the common case)
        return 0.0, math.nan, math.nan
    if w >= 1.0:
        z, usual, p99 = own.z(value), own.median_value(), own.p99_value()
    elif own.n:
        z = blend(own.z(value), peer.z(value), w)
        usual = blend(own.median_value(), peer.median_value(), w)
        p99 = blend(own.p99_value(), peer.p99_value(), w)
    else:
        z, usual, p99 = peer.z(value), peer.median_value(), peer.p99_value()
    own.update(value)
    peer.update(value)
    return max(z, -VOLUME_Z_FLOOR), usual, p99


class FeatureState(Generic[P]):
    """Entity profiles, peer-group profiles and population counts for one stream."""

    names: ClassVar[tuple[str, ...]]
    profile_type: type[P]
    POPULATIONS: ClassVar[tuple[str, ...]] = ("action", "resource")

    def __init__(self, limits: EntityLimits | None = None) -> None:
        self.limits = limits or EntityLimits()
        self.entities: EntityStore[P] = EntityStore(
            self.profile_type, _last_seen, self.limits.max_entities, self.limits.ttl_s
        )
        self.peers: dict[str, P] = {}
        self.peer_rates: dict[str, float] = {}  # mean long rate of warm members (events/s)
        self.population = {name: KeyFrequencies() for name in self.POPULATIONS}

    def featurize(
        self, events: Sequence[Event], entity_keys: Sequence[str]
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Feature rows (n, len(names)) and per-event explanation contexts, in order."""
        rows: list[list[float]] = []
        contexts: list[dict[str, Any]] = []
        for ev, key in zip(events, entity_keys, strict=True):
            row, ctx = self.featurize_one(ev, key)
            rows.append(row)
            contexts.append(ctx)
        X = np.array(rows, dtype=np.float64).reshape(len(rows), len(self.names))
        return X, contexts

    def featurize_one(self, ev: Event, entity_key: str) -> tuple[list[float], dict[str, Any]]:
        raise NotImplementedError

    def peer(self, group: str) -> P:
        peer = self.peers.get(group)
        if peer is None:
            if len(self.peers) >= self.limits.max_peer_groups:
                group = "_other"  # bound memory against a flood of group names
                peer = self.peers.get(group)
            if peer is None:
                peer = self.peers[group] = self.profile_type()
        return peer

    def peer_rate(self, group: str, prof: P, w: float) -> float:
        """The rate an entity's "right now" is compared with: its own long-run rate,
        blended with its peers' until it has a day of history (a new key that bursts
        from its first second has no own baseline to hide behind)."""
        own = prof.long_rate()
        if group not in self.peers:  # beyond max_peer_groups: peer() pooled it in "_other"
            group = "_other"
        # The group's rate starts from its first member with a count: an entity seen for the
        # first time has none (0 events/s), and a 0 would make every early newcomer a
        # 1e4-fold "burst" (log ratio ~10) until the group learned. NaN: no baseline.
        peer_rate = self.peer_rates.get(group, own if prof.n else math.nan)
        if peer_rate != peer_rate:
            return math.nan
        history = min(1.0, (prof.last_ts - prof.first_ts) / TAU_LONG_S) if prof.n else 0.0
        # peers learn from members in proportion to how much history backs their rate
        self.peer_rates[group] = peer_rate + 0.01 * w * history * (own - peer_rate)
        return blend(own, peer_rate, min(w, history))

    def first_uses(
        self, prof: P, peer: P, keys: list[int], ts: float, w: float
    ) -> tuple[list[float], int | None]:
        """Blended first-use indicators of ``keys`` (0 = not reported), and when the
        entity last touched ``keys[3]`` (the resource).

        The peer group's memory is refreshed only when a key is new to the entity
        or the entity is cold: warm entities repeating themselves would otherwise
        cost two LRU updates per key per event for no new information.
        """
        cap, peer_cap = self.limits.max_keys_per_entity, self.limits.max_keys_per_peer
        values: list[float] = []
        res_last = None
        for i, key in enumerate(keys):
            if not key:
                values.append(0.0)
                continue
            last = prof.touch(key, ts, cap)
            if i == 3:
                res_last = last
            if last is not None and w >= 1.0:
                values.append(0.0)
                continue
            peer_new = peer.touch(key, ts, peer_cap) is None
            values.append(w * (last is None) + (1.0 - w) * peer_new)
        return values, res_last

    @staticmethod
    def hour_rarity(prof: P, peer: P, how: int, w: float) -> float:
        """-log of the (blended) share of activity at this hour of week, x168 (0 = usual)."""
        share = (
            prof.habit.share(how)
            if w >= 1.0
            else blend(prof.habit.share(how), peer.habit.share(how), w)
        )
        prof.habit.add(how)
        peer.habit.add(how)
        return max(0.0, -math.log(share * 168.0))

    def entities_tracked(self) -> int:
        return len(self.entities)


def _last_seen(profile: Profile) -> float:
    return profile.last_ts
