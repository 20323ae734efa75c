"""Behaviour features for access/audit events (one row per event), batch-first.

Every feature is relative to the entity's own history, blended with its peer
group's while the entity is cold (see ``cold_weight``), so a new entity is
neither flooding alerts nor unwatched. A lean Python pre-pass turns a batch
into arrays (entity and peer slots, key hashes, numbers); the compiled kernel
in ``access_kernel`` computes the features. docs/features.md defines each one.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from detector.errors import CheckpointError
from detector.events import Event
from detector.features import access_kernel as K
from detector.features.baselines import HourHabit, RobustBaseline, stable_hash
from detector.features.common import WEEK_START_OFFSET_S, EntityLimits
from detector.features.profiles import AccessProfile
from detector.features.slots import SlotTable

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
NOVELTY_FIELDS = NOVELTY_KINDS  # the Event attribute of each kind
STATE_VERSION = 1
_MEMO_CAP = 65_536  # per key kind; the memo is cleared when full
_MEMO_MAX_LEN = 256  # longer keys are hashed each time: hostile long keys must not pile up
_MEMOS: dict[str, dict[str | None, int]] = {k: {} for k in ("net", "ua", "act", "res", "cc")}


def agent_family(user_agent: str) -> str:
    """Product token of a user agent, so version upgrades are not 'new agents'.

    >>> agent_family("aws-cli/2.15.0 Python/3.11.6 Linux/6.1")
    'aws-cli'
    >>> agent_family("[Boto3/1.26.165 Python/3.10.6]")
    'boto3'
    """
    return user_agent.lstrip("[").split("/", 1)[0].split(" ", 1)[0].lower()


def _key_hashes(kind: str, values: list[str | None]) -> np.ndarray:
    """``stable_hash`` of each novelty key (0 = not reported), memoised per kind."""
    memo = _MEMOS[kind]
    missing = set(values).difference(memo)
    if missing:
        if len(memo) + len(missing) > _MEMO_CAP:
            memo.clear()
            missing = set(values)
        for value in missing:
            text = agent_family(value) if kind == "ua" and value else value
            memo[value] = stable_hash(kind, text) if text else 0
    hashes = np.fromiter(map(memo.__getitem__, values), np.uint32, len(values))
    for value in missing:
        if value is not None and len(value) > _MEMO_MAX_LEN:
            del memo[value]
    return hashes


def novelty_keys(ev: Event) -> list[int]:
    """Stable hashes of the keys whose first use is a feature (0 = not reported)."""
    values = (ev.network, ev.user_agent, ev.action, ev.resource, ev.country)
    return [int(_key_hashes(k, [v])[0]) for k, v in zip(_MEMOS, values, strict=True)]


def profile_from_row(table: K.ProfileTable, r: int) -> AccessProfile:
    """A read-only ``AccessProfile`` snapshot of one state row (for explanations, tests)."""
    s = table.scal[r]
    prof = AccessProfile()
    prof.n, prof.first_ts, prof.last_ts = int(s[K.N]), float(s[K.FIRST]), float(s[K.LAST])
    prof.rate_short, prof.rate_long = float(s[K.R_SHORT]), float(s[K.R_LONG])
    prof.fail_ewma, prof.distinct_recent = float(s[K.FAIL]), float(s[K.DISTINCT])
    held = int(table.meta[r, 0])
    order = np.argsort(table.seen_stamp[r, :held], kind="stable")
    keys, last = table.seen_key[r, :held][order], table.seen_last[r, :held][order]
    prof.seen = dict(zip(keys.tolist(), last.tolist(), strict=True))
    prof.habit = HourHabit(array("H", table.habit[r].tolist()))
    v = table.vol[r].tolist()
    prof.bytes_out = RobustBaseline(v[0], v[1], v[2], int(v[3]))
    prof.rows = RobustBaseline(v[4], v[5], v[6], int(v[7]))
    return prof


class AccessContext(dict[str, Any]):
    """One event's explanation context; ``ctx["profile"]`` (a snapshot of the entity's
    current profile) and ``ctx["usual_hours"]`` are built on first ``[]`` access."""

    def __init__(self, values: dict[str, Any], owner: AccessFeaturizer, key: str) -> None:
        super().__init__(values)
        self._owner, self._key = owner, key

    def __missing__(self, name: str) -> Any:
        if name == "profile":
            value = self._owner.entities.get(self._key)
        elif name == "usual_hours":
            value = self["profile"].habit.usual_hours()
        else:
            raise KeyError(name)
        self[name] = value
        return value


class AccessContexts(Sequence[AccessContext]):
    """Per-event explanation contexts, built only for the rows that are read."""

    def __init__(self, owner: AccessFeaturizer, values: np.ndarray, keys: Sequence[str]) -> None:
        self._owner, self.values, self._keys = owner, values, keys

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, i: int) -> AccessContext:  # type: ignore[override]
        ctx = dict(zip(K.CONTEXT_KEYS, self.values[i].tolist(), strict=True))
        ctx["events_seen"] = int(ctx["events_seen"])
        return AccessContext(ctx, self._owner, self._keys[i])


class EntityView:
    """Read-only view of tracked entities, shaped like ``store.EntityStore``."""

    def __init__(self, owner: AccessFeaturizer) -> None:
        self._owner = owner

    def __len__(self) -> int:
        return len(self._owner.slots)

    def __contains__(self, key: str) -> bool:
        return key in self._owner.slots

    @property
    def evicted(self) -> int:
        return self._owner.slots.evicted

    def items(self) -> Iterator[tuple[str, AccessProfile]]:
        table = self._owner.ent
        return ((k, profile_from_row(table, s)) for k, s in list(self._owner.slots.items()))

    def get(self, key: str, now: float = 0.0) -> AccessProfile:
        """Snapshot of ``key``'s profile (a new, empty one if untracked); changes nothing."""
        slot = self._owner.slots.slots.get(key)
        return AccessProfile() if slot is None else profile_from_row(self._owner.ent, slot)


class AccessFeaturizer:
    names = ACCESS_FEATURES
    _warm = False  # kernel compiled or loaded from numba's cache in this process

    def __init__(self, limits: EntityLimits | None = None) -> None:
        if not AccessFeaturizer._warm:  # pay the JIT/cache load at startup, not in a batch
            AccessFeaturizer._warm = True
            warm_up = Event(timestamp=0.0, event_id="", source_format="ecs", entity="")
            AccessFeaturizer(EntityLimits(max_entities=1)).featurize([warm_up], [""])
        self.limits = lim = limits or EntityLimits()
        self.slots = SlotTable(lim.max_entities, lim.ttl_s)
        self.ent = K.ProfileTable(lim.max_keys_per_entity, max_rows=lim.max_entities)
        self.peer = K.ProfileTable(lim.max_keys_per_peer, 4, lim.max_peer_groups + 1)
        self.peer_groups: dict[str, int] = {}
        self.peer_rates = np.full(4, np.nan)  # per peer slot; NaN until a member is seen
        self.sketch, self.sketch_totals = K.new_sketch()
        self.entities = EntityView(self)

    @property
    def evicted(self) -> int:
        return self.slots.evicted

    def entities_tracked(self) -> int:
        return len(self.slots)

    def table_bytes(self) -> int:
        """Bytes of the numpy tables at their current capacity (the slot dict excluded)."""
        arrays = [*self.ent.arrays(), *self.peer.arrays()]
        return sum(a.nbytes for a in [*arrays, self.peer_rates, self.sketch, self.sketch_totals])

    def featurize(
        self, events: Sequence[Event], entity_keys: Sequence[str]
    ) -> tuple[np.ndarray, AccessContexts]:
        """Feature rows (n, len(names)) and lazy per-event contexts, in order."""
        n = len(events)
        if len(entity_keys) != n:
            raise ValueError("featurize: events and entity_keys differ in length")
        slots, reset = np.zeros(n, np.int64), np.zeros(n, np.bool_)
        ev_in = (slots, reset, *self._columns(events))
        X, ctx = np.zeros((n, K.N_FEATURES)), np.zeros((n, len(K.CONTEXT_KEYS)))
        caps = (self.limits.max_keys_per_entity, self.limits.max_keys_per_peer)
        start = 0
        while start < n:
            end = self.slots.assign(entity_keys, start, slots, reset)
            self.ent.ensure(self.slots.high_water)
            part = tuple(a[start:end] for a in ev_in)
            K.featurize_kernel(
                part, self.ent.arrays(), self.peer.arrays(), self.peer_rates, self.sketch,
                self.sketch_totals, self.limits.cold_start_events, caps, X[start:end],
                ctx[start:end],
            )  # fmt: skip
            if self.slots.sweep_due():
                self.slots.sweep(self.ent.scal[:, K.LAST], float(ev_in[4][end - 1]))
            start = end
        return X, AccessContexts(self, ctx, entity_keys)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: numpy arrays, scalars and key lists (no pickle)."""
        lim = self.limits
        used, groups = self.slots.high_water, len(self.peer_groups)
        return {
            "version": STATE_VERSION,
            "limits": [lim.max_entities, lim.ttl_s, lim.cold_start_events,
                       lim.max_keys_per_entity, lim.max_keys_per_peer, lim.max_peer_groups],
            "slots": self.slots.to_state(),
            "entity_rows": _rows(self.ent, used),
            "peer_groups": list(self.peer_groups),
            "peer_rows": _rows(self.peer, groups),
            "peer_rates": self.peer_rates[:groups].copy(),
            "sketch": self.sketch.copy(),
            "sketch_totals": self.sketch_totals.copy(),
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AccessFeaturizer:
        """Rebuild from ``state_dict()`` output; ``CheckpointError`` on a shape mismatch."""
        if state.get("version") != STATE_VERSION:
            raise CheckpointError(f"access features: state version {state.get('version')}")
        m, ttl, cold, kpe, kpp, groups = state["limits"]
        lim = EntityLimits(int(m), float(ttl), int(cold), int(kpe), int(kpp), int(groups))
        f = cls(lim)
        try:
            f.slots = SlotTable.from_state(state["slots"], lim.max_entities, lim.ttl_s)
            _load_rows(f.ent, state["entity_rows"], f.slots.high_water)
            names = [str(g) for g in state["peer_groups"]]
            _load_rows(f.peer, state["peer_rows"], len(names))
            f.peer_groups = {g: i for i, g in enumerate(names)}
            f.peer_rates = np.full(f.peer.rows, np.nan)
            f.peer_rates[: len(names)] = _checked(state["peer_rates"], (len(names),), np.float64)
            f.sketch = _checked(state["sketch"], f.sketch.shape, np.int32).copy()
            f.sketch_totals = _checked(state["sketch_totals"], (2,), np.int64).copy()
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"access features: bad state ({exc})") from None
        return f

    def _columns(self, events: Sequence[Event]) -> tuple[np.ndarray, ...]:
        """Per-event arrays the kernel reads (everything but the entity slots)."""
        n = len(events)
        keys = np.empty((n, 5), np.uint32)
        for k, (kind, field) in enumerate(zip(_MEMOS, NOVELTY_FIELDS, strict=True)):
            keys[:, k] = _key_hashes(kind, list(map(attrgetter(field), events)))
        ts = np.fromiter(map(attrgetter("timestamp"), events), np.float64, n)
        bytes_out = np.fromiter(map(attrgetter("bytes_out"), events), np.float64, n)
        rows = np.fromiter(map(attrgetter("rows"), events), np.float64, n)
        failed = np.fromiter((ev.outcome == "failure" for ev in events), np.bool_, n)
        hows = ((ts + WEEK_START_OFFSET_S) // 3600).astype(np.int64) % 168
        return self._peer_slots(events), keys, ts, bytes_out, rows, failed, hows

    def _peer_slots(self, events: Sequence[Event]) -> np.ndarray:
        groups = self.peer_groups
        out = np.fromiter((groups.get(ev.peer_group, -1) for ev in events), np.int64, len(events))
        for i in np.flatnonzero(out < 0).tolist():
            out[i] = self._new_peer(events[i].peer_group)
        return out

    def _new_peer(self, group: str) -> int:
        if group not in self.peer_groups and len(self.peer_groups) >= self.limits.max_peer_groups:
            group = "_other"  # bound memory against a flood of group names
        slot = self.peer_groups.get(group)
        if slot is None:
            slot = self.peer_groups[group] = len(self.peer_groups)
            self.peer.ensure(slot + 1)
            if slot >= self.peer_rates.shape[0]:
                grown = np.full(self.peer.rows, np.nan)
                grown[: self.peer_rates.shape[0]] = self.peer_rates
                self.peer_rates = grown
        return slot


def _rows(table: K.ProfileTable, used: int) -> dict[str, np.ndarray]:
    return {name: getattr(table, name)[:used].copy() for name in K.ProfileTable.FIELDS}


def _checked(value: Any, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape or arr.dtype != dtype:
        raise ValueError(f"expected {np.dtype(dtype)}{shape}, got {arr.dtype}{arr.shape}")
    return arr


def _load_rows(table: K.ProfileTable, rows: dict[str, Any], used: int) -> None:
    table.ensure(max(used, 1))
    for name in K.ProfileTable.FIELDS:
        target = getattr(table, name)
        target[:used] = _checked(rows[name], (used, *target.shape[1:]), target.dtype)
