"""The compiled access-feature kernel against the Python implementation it replaced.

``ReferenceAccessFeaturizer`` is the pre-kernel ``detector/features/access.py``
class, kept here verbatim (it still runs on the Python profiles in
``common.py``/``profiles.py`` that the inference features use).
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detector.errors import CheckpointError
from detector.events import Event
from detector.features import access_kernel as K
from detector.features.access import ACCESS_FEATURES, AccessFeaturizer, agent_family
from detector.features.baselines import decay, stable_hash
from detector.features.common import EntityLimits, FeatureState, cold_weight, hour_of_week, volume_z
from detector.features.profiles import DISTINCT_WINDOW_S, AccessProfile
from detector.features.slots import SlotTable
from detector.state.checkpoint import load_checkpoint, save_checkpoint

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STRATUS = DATA / "cloudtrail" / "invictus_stratus" / "events_sorted.jsonl"
RARITY = [ACCESS_FEATURES.index("action_rarity"), ACCESS_FEATURES.index("resource_rarity")]


# --- the replaced Python implementation (reference) -------------------------------------


def novelty_keys(ev: Event) -> list[int]:
    return [
        stable_hash("net", ev.network) if ev.network else 0,
        stable_hash("ua", agent_family(ev.user_agent)) if ev.user_agent else 0,
        stable_hash("act", ev.action) if ev.action else 0,
        stable_hash("res", ev.resource) if ev.resource else 0,
        stable_hash("cc", ev.country) if ev.country else 0,
    ]


class ReferenceAccessFeaturizer(FeatureState[AccessProfile]):
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
        prof.distinct_recent = decay(prof.distinct_recent, dt, DISTINCT_WINDOW_S)
        if keys[3] and (res_last is None or res_last < ts - DISTINCT_WINDOW_S):
            prof.distinct_recent += 1.0
        failed = ev.outcome == "failure"
        prof.tick(ts, failed)
        peer.tick(ts, failed)
        short_rate = prof.short_rate()
        if rate_long != rate_long:
            rate_long = short_rate
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
            math.log1p(prof.distinct_recent),
            act_rarity,
            res_rarity,
        ], ctx


# --- streams ------------------------------------------------------------------------------


def synthetic_stream(n: int, entities: int, seed: int = 7) -> list[Event]:
    """Heavy-tailed users with habits, peer groups, NaNs, failures, late events, bursts."""
    rnd = random.Random(seed)
    t = 1_763_600_000.0
    events = []
    for i in range(n):
        t += rnd.expovariate(1 / 20)
        who = min(int(rnd.paretovariate(1.1)) - 1, entities - 1)
        late = rnd.random() < 0.03  # out-of-order timestamps: no decay, last_ts kept
        events.append(
            Event(
                timestamp=t - rnd.uniform(0, 900) if late else t,
                event_id=f"e{i}",
                source_format="ecs",
                entity=f"user-{who}",
                peer_group=("dev", "ops", "svc", "")[who % 4],
                action=f"act{rnd.randrange(3 + who % 20)}" if rnd.random() > 0.02 else "",
                outcome="failure" if rnd.random() < 0.08 else "success",
                network=f"10.{who % 7}.{rnd.randrange(3)}.0/24" if rnd.random() > 0.05 else None,
                country=rnd.choice(("DE", "DE", "FR", "US")),
                user_agent=rnd.choice(("psql/16.1", "aws-cli/2.1 Py/3", "[Boto3/1.2 x]", None)),
                resource=f"/db/t{rnd.randrange(1 + who * 5)}" if rnd.random() > 0.1 else None,
                bytes_out=rnd.lognormvariate(9, 2) if rnd.random() > 0.2 else math.nan,
                rows=rnd.lognormvariate(4, 1.5) if rnd.random() > 0.5 else math.nan,
            )
        )
    return events


def stratus_stream() -> list[Event]:
    """Real CloudTrail records (Stratus Red Team lab) mapped to events, without the parsers."""
    events = []
    for i, line in enumerate(STRATUS.read_text().splitlines()):
        rec = json.loads(line)
        ident = rec.get("userIdentity") or {}
        ip = rec.get("sourceIPAddress") or ""
        params = rec.get("requestParameters") or {}
        events.append(
            Event(
                timestamp=datetime.fromisoformat(
                    rec["eventTime"].replace("Z", "+00:00")
                ).timestamp(),
                event_id=rec["eventID"],
                source_format="cloudtrail",
                entity=ident.get("arn") or ident.get("invokedBy") or "(unknown)",
                peer_group=ident.get("type") or "unknown",
                action=f"{rec['eventSource']}:{rec['eventName']}",
                outcome="failure" if rec.get("errorCode") else "success",
                network=".".join(ip.split(".")[:3]) + ".0/24" if ip.count(".") == 3 else None,
                user_agent=rec.get("userAgent"),
                resource=params.get("bucketName") or params.get("instanceId") or None,
                bytes_out=float(i % 13) * 1000.0 if i % 3 else math.nan,
            )
        )
    return events


def run_both(events: list[Event], limits: EntityLimits, batches: list[int]) -> tuple[Any, ...]:
    kernel, ref = AccessFeaturizer(limits), ReferenceAccessFeaturizer(limits)
    keys = [e.entity for e in events]
    X, Xr, ctx, ctx_ref = [], [], [], []
    start = 0
    for size in [*batches, len(events)]:
        part = slice(start, min(start + size, len(events)))
        if part.start >= part.stop:
            break
        x, c = kernel.featurize(events[part], keys[part])
        xr, cr = ref.featurize(events[part], keys[part])
        X.append(x)
        Xr.append(xr)
        ctx.append(c.values)
        ctx_ref.extend(cr)
        start = part.stop
    return kernel, ref, np.vstack(X), np.vstack(Xr), ctx, ctx_ref


def assert_same(X: np.ndarray, Xr: np.ndarray, ctx: list, ctx_ref: list) -> None:
    assert X.shape == Xr.shape
    np.testing.assert_allclose(X, Xr, rtol=0, atol=1e-6)
    values = np.vstack(ctx)
    for j, key in enumerate(K.CONTEXT_KEYS):
        got = values[:, j]
        want = np.array([c[key] for c in ctx_ref], dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=key)


# --- equivalence --------------------------------------------------------------------------


def test_kernel_matches_python_reference_on_a_synthetic_stream() -> None:
    # small caps so LRU eviction, key-table replacement and TTL sweeps all happen
    limits = EntityLimits(
        max_entities=60, ttl_s=6 * 3600, cold_start_events=20, max_keys_per_entity=8,
        max_keys_per_peer=40, max_peer_groups=3,
    )  # fmt: skip
    events = synthetic_stream(12_000, entities=2_000)
    kernel, ref, X, Xr, ctx, ctx_ref = run_both(events, limits, [1, 7, 500, 4096, 3000])
    assert_same(X, Xr, ctx, ctx_ref)  # rarity too: no sketch collisions or halving here
    assert kernel.entities_tracked() == ref.entities_tracked()
    assert kernel.entities.evicted == ref.entities.evicted > 150
    assert [k for k, _ in kernel.entities.items()] == [k for k, _ in ref.entities.items()]
    alice = next(k for k, _ in ref.entities.items())
    assert kernel.entities.get(alice).to_state() == ref.entities.get(alice, 0.0).to_state()


def test_kernel_matches_python_reference_on_real_cloudtrail() -> None:
    events = stratus_stream()
    limits = EntityLimits(max_entities=10, max_keys_per_entity=16, cold_start_events=5)
    _, _, X, Xr, ctx, ctx_ref = run_both(events, limits, [100, 1, 999])
    assert X.shape == (2_900, 13)
    assert_same(X, Xr, ctx, ctx_ref)


# --- state, contexts, bounds --------------------------------------------------------------


def test_state_round_trips_through_a_checkpoint_with_identical_features(tmp_path: Path) -> None:
    events = synthetic_stream(6_000, entities=400, seed=3)
    keys = [e.entity for e in events]
    f = AccessFeaturizer(EntityLimits(max_entities=150, ttl_s=4 * 3600))
    f.featurize(events[:3_000], keys[:3_000])
    owner = {"model": "access-test"}
    save_checkpoint(tmp_path / "f.npz", f.state_dict(), owner)
    clone = AccessFeaturizer.from_state(load_checkpoint(tmp_path / "f.npz", owner))
    X, _ = f.featurize(events[3_000:], keys[3_000:])
    Xc, _ = clone.featurize(events[3_000:], keys[3_000:])
    assert np.array_equal(X, Xc)
    assert clone.entities.evicted == f.entities.evicted
    assert clone.state_dict()["slots"]["keys"] == f.state_dict()["slots"]["keys"]


def test_from_state_refuses_mismatched_arrays() -> None:
    f = AccessFeaturizer()
    f.featurize(synthetic_stream(50, 5), [f"user-{i % 5}" for i in range(50)])
    state = f.state_dict()
    state["entity_rows"]["habit"] = state["entity_rows"]["habit"][:, :100]
    with pytest.raises(CheckpointError):
        AccessFeaturizer.from_state(state)
    with pytest.raises(CheckpointError):
        AccessFeaturizer.from_state({**f.state_dict(), "version": 99})


def test_contexts_carry_what_explanations_read() -> None:
    events = synthetic_stream(400, entities=3)
    f = AccessFeaturizer()
    X, contexts = f.featurize(events, [e.entity for e in events])
    assert len(contexts) == X.shape[0] == 400
    ctx = contexts[399]
    assert set(K.CONTEXT_KEYS) <= set(ctx)
    assert ctx == dict(zip(K.CONTEXT_KEYS, contexts.values[399].tolist(), strict=True))
    assert isinstance(ctx["events_seen"], int) and ctx["events_seen"] > 20
    assert ctx["weight"] == 1.0 and ctx["rate_long"] > 0
    hours = ctx["profile"].habit.usual_hours()
    assert hours == ctx["usual_hours"] and hours is not None
    assert contexts[0]["events_seen"] == 0 and contexts[0]["weight"] == 0.0


def test_slot_table_reuses_least_recent_slot_and_flags_reset() -> None:
    table = SlotTable(max_slots=2, ttl_s=100.0)
    keys = ["a", "b", "a", "c", "b"]
    slots, reset = np.zeros(5, np.int64), np.zeros(5, np.bool_)
    assert table.assign(keys, 0, slots, reset) == 5
    assert slots.tolist() == [0, 1, 0, 1, 0]  # c takes b's slot, then b takes a's
    assert reset.tolist() == [True, True, False, True, True]
    assert table.evicted == 2 and list(table.slots) == ["c", "b"]
    table.sweep(np.array([500.0, 50.0]), now=300.0)  # c (slot 1) idle for longer than the TTL
    assert list(table.slots) == ["b"] and table.free == [1] and table.evicted == 3
    table.sweep(np.array([0.0, 0.0]), now=300.0)
    assert list(table.slots) == ["b"]  # the most recent key is never swept


def test_ttl_sweep_frees_idle_entities_every_sweep_interval() -> None:
    f = AccessFeaturizer(EntityLimits(max_entities=10_000, ttl_s=3600.0))
    t0 = 1_763_600_000.0
    early = [Event(timestamp=t0 + i, event_id=str(i), source_format="ecs", entity=f"e{i}")
             for i in range(3_000)]  # fmt: skip
    late = [Event(timestamp=t0 + 86_400 + i, event_id=str(i), source_format="ecs", entity="z")
            for i in range(SlotTable.SWEEP_EVERY)]  # fmt: skip
    f.featurize(early + late, [e.entity for e in early + late])
    assert f.entities_tracked() == 1 and f.entities.evicted == 3_000
    assert f.slots.high_water == 3_001  # freed slots are reused, not grown
    f.featurize(early[:5], [e.entity for e in early[:5]])
    assert f.slots.high_water == 3_001


def test_peer_groups_are_capped() -> None:
    f = AccessFeaturizer(EntityLimits(max_peer_groups=4))
    events = [Event(timestamp=1.7e9 + i, event_id=str(i), source_format="ecs", entity="x",
                    peer_group=f"g{i}") for i in range(50)]  # fmt: skip
    f.featurize(events, ["x"] * 50)
    assert list(f.peer_groups) == ["g0", "g1", "g2", "g3", "_other"]


def test_sketch_counts_exactly_without_collisions_and_halves_when_full() -> None:
    sketch, totals = K.new_sketch()
    keys = [stable_hash("act", f"a{i}") for i in range(50)]
    for rep in range(3):
        for k in keys:
            assert K._rarity_then_add(sketch, totals, 0, np.uint32(k)) == pytest.approx(
                -math.log((rep + 1.0) / (totals[0] - 1 + 2.0))
            )
    totals[0] = K.SKETCH_HALVE_AT - 1
    K._rarity_then_add(sketch, totals, 0, np.uint32(keys[0]))
    assert totals[0] == K.SKETCH_HALVE_AT // 2
    assert sketch[0, :, :].max() == 2  # 4 // 2


def test_memory_per_entity_is_bounded() -> None:
    row = K.ProfileTable(EntityLimits().max_keys_per_entity).nbytes_per_row()
    assert row < 2_048
    assert row * 100_000 < 256 * 2**20
