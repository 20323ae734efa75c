"""Behaviour features for access/audit events (one row per event).

Every feature is relative to the entity's own history, blended with its peer
group's while the entity is cold (see ``cold_weight``), so a new entity is
neither flooding alerts nor unwatched. docs/features.md defines each one.
"""

from __future__ import annotations

import math
from typing import Any

from detector.events import Event
from detector.features.baselines import blend, decay, stable_hash
from detector.features.common import FeatureState, cold_weight, hour_of_week, volume_z
from detector.features.profiles import DISTINCT_WINDOW_S, AccessProfile

ACCESS_FEATURES = (
    "rate_vs_baseline",
    "new_network",
    "new_user_agent",
    "new_action",
    "new_resource",
    "new_country",
    "bytes_out_vs_baseline",
    "rows_vs_baseline",
    "hour_rarity",
    "failure_ratio",
    "distinct_resources_10m",
    "action_rarity",
    "resource_rarity",
)
NOVELTY_KINDS = ("network", "user_agent", "action", "resource", "country")


def agent_family(user_agent: str) -> str:
    """Product token of a user agent, so version upgrades are not 'new agents'.

    >>> agent_family("aws-cli/2.15.0 Python/3.11.6 Linux/6.1")
    'aws-cli'
    >>> agent_family("[Boto3/1.26.165 Python/3.10.6]")
    'boto3'
    """
    return user_agent.lstrip("[").split("/", 1)[0].split(" ", 1)[0].lower()


def novelty_keys(ev: Event) -> list[int]:
    """Stable hashes of the keys whose first use is a feature (0 = not reported)."""
    return [
        stable_hash("net", ev.network) if ev.network else 0,
        stable_hash("ua", agent_family(ev.user_agent)) if ev.user_agent else 0,
        stable_hash("act", ev.action) if ev.action else 0,
        stable_hash("res", ev.resource) if ev.resource else 0,
        stable_hash("cc", ev.country) if ev.country else 0,
    ]


class AccessFeaturizer(FeatureState[AccessProfile]):
    names = ACCESS_FEATURES
    profile_type = AccessProfile

    def featurize_one(self, ev: Event, entity_key: str) -> tuple[list[float], dict[str, Any]]:
        ts = ev.timestamp
        prof = self.entities.get(entity_key, ts)
        peer = self.peer(ev.peer_group)
        w = cold_weight(prof.n, self.limits.cold_start_events)
        dt = max(ts - prof.last_ts, 0.0) if prof.n else 0.0
        rate_long = self.peer_rate(ev.peer_group, prof, w)
        ctx: dict[str, Any] = {"profile": prof, "events_seen": prof.n, "weight": w}

        keys = novelty_keys(ev)
        new, res_last = self.first_uses(prof, peer, keys, ts, w)
        distinct = self._distinct(prof, dt, keys[3], res_last, ts)

        failed = ev.outcome == "failure"
        prof.tick(ts, failed)
        peer.tick(ts, failed)
        short_rate = prof.short_rate()
        ctx["rate_short"], ctx["rate_long"] = short_rate, rate_long

        bytes_z, ctx["bytes_usual"], ctx["bytes_p99"] = volume_z(
            prof.bytes_out, peer.bytes_out, ev.bytes_out, w
        )
        rows_z, ctx["rows_usual"], ctx["rows_p99"] = volume_z(prof.rows, peer.rows, ev.rows, w)
        hour_rarity = self.hour_rarity(prof, peer, hour_of_week(ts), w)

        population = self.population
        act_rarity = population["action"].rarity_then_add(keys[2]) if keys[2] else 0.0
        res_rarity = population["resource"].rarity_then_add(keys[3]) if keys[3] else 0.0
        return [
            math.log((short_rate + 1e-7) / (rate_long + 1e-7)),
            *new,
            bytes_z,
            rows_z,
            hour_rarity,
            prof.fail_ewma,
            math.log1p(distinct),
            act_rarity,
            res_rarity,
        ], ctx

    @staticmethod
    def _distinct(prof: AccessProfile, dt: float, key: int, last: int | None, ts: float) -> float:
        """Decayed count (10 min) of resources touched that were not touched just before."""
        prof.distinct_recent = decay(prof.distinct_recent, dt, DISTINCT_WINDOW_S)
        if key and (last is None or last < ts - DISTINCT_WINDOW_S):
            prof.distinct_recent += 1.0
        return prof.distinct_recent
