import math
import random

import numpy as np
from factories import T0, access_event, inference_event

from detector.features import EntityLimits
from detector.features.access import ACCESS_FEATURES, AccessFeaturizer
from detector.features.inference import INFERENCE_FEATURES, VALUE_LIMIT, InferenceFeaturizer
from detector.features.inference_kernel import input_signals
from detector.features.profiles import RECENT_INPUTS, AccessProfile
from detector.parsers.inference import MAX_VECTOR

A = {name: i for i, name in enumerate(ACCESS_FEATURES)}
INF = {name: i for i, name in enumerate(INFERENCE_FEATURES)}


def history(n: int = 300, entity: str = "alice") -> list:
    # weekday working hours only, so 03:00 and weekends are unusual
    events = []
    for i in range(n):
        day, minute = divmod(i, 30)
        ts = T0 + day * 86_400 + 13 * 3600 + minute * 600
        events.append(access_event(i, entity=entity, user_name=entity, timestamp=ts))
    return events


def featurize(f: AccessFeaturizer, events: list) -> np.ndarray:
    X, _ = f.featurize(events, [e.entity for e in events])
    return X


def test_routine_event_looks_routine_and_exfiltration_does_not() -> None:
    f = AccessFeaturizer()
    events = history()
    featurize(f, events)
    last = events[-1].timestamp
    routine = featurize(f, [access_event(999, timestamp=last + 600)])[0]
    exfil = featurize(f, [access_event(1000, timestamp=last + 1200, bytes_out=2.1e9, rows=5e6)])[0]
    assert abs(routine[A["bytes_out_vs_baseline"]]) < 2
    assert exfil[A["bytes_out_vs_baseline"]] > 10
    assert exfil[A["rows_vs_baseline"]] > 10
    assert routine[A["new_network"]] == 0.0


def test_novelty_of_network_agent_action_country() -> None:
    f = AccessFeaturizer()
    events = history()
    featurize(f, events)
    odd = access_event(
        1000,
        timestamp=events[-1].timestamp + 60,
        network="185.220.101.0/24",
        user_agent="python-requests/2.31",
        action="iam:CreateAccessKey",
        country="RU",
    )
    row = featurize(f, [odd])[0]
    for name in ("new_network", "new_user_agent", "new_action", "new_country"):
        assert row[A[name]] == 1.0, name
    assert row[A["action_rarity"]] > 3  # never seen across the population either


def test_night_is_rarer_than_working_hours() -> None:
    f = AccessFeaturizer()
    events = history()
    featurize(f, events)
    day_start = T0 + 20 * 86_400
    usual = featurize(f, [access_event(1, timestamp=day_start + 14 * 3600)])[0]
    night = featurize(f, [access_event(2, timestamp=day_start + 3 * 3600 + 720)])[0]
    assert night[A["hour_rarity"]] > usual[A["hour_rarity"]] + 1.0


def test_cold_entity_is_compared_with_its_peer_group() -> None:
    f = AccessFeaturizer(EntityLimits(cold_start_events=20))
    for name in ("alice", "bob", "carol"):
        featurize(f, history(60, entity=name))
    newcomer_known_net = access_event(1, entity="dave", timestamp=T0 + 3 * 86_400 + 13 * 3600)
    row = featurize(f, [newcomer_known_net])[0]
    assert row[A["new_network"]] == 0.0  # new to dave, but his peers use it: not novel
    newcomer_odd_net = access_event(
        2, entity="erin", network="185.220.101.0/24", timestamp=T0 + 3 * 86_400 + 13 * 3600
    )
    assert featurize(f, [newcomer_odd_net])[0][A["new_network"]] == 1.0
    # a newcomer's first event is no more a "burst" than a known user's first of the day
    alice_next_day = featurize(f, [access_event(3, timestamp=T0 + 3 * 86_400 + 13 * 3600)])[0]
    assert abs(row[A["rate_vs_baseline"]] - alice_next_day[A["rate_vs_baseline"]]) < 1.5


def test_a_fresh_groups_first_newcomers_are_not_bursts() -> None:
    # Before any member had a rate of its own, the group's baseline was 0 events/s and each
    # newcomer's first event scored log(short / 1e-7) ~ 10.9: a tail the forest kept for days.
    access = AccessFeaturizer()
    newcomers = [access_event(i, entity=f"u{i}", timestamp=T0 + 60 * i) for i in range(8)]
    rows = featurize(access, newcomers)
    assert np.all(np.abs(rows[:, A["rate_vs_baseline"]]) < 1.0), rows[:, A["rate_vs_baseline"]]
    inference = InferenceFeaturizer()
    events = [inference_event(i, entity=f"k{i}", timestamp=T0 + 60 * i) for i in range(8)]
    X, _ = inference.featurize(events, [e.entity for e in events])
    assert np.all(np.abs(X[:, INF["rate_vs_baseline"]]) < 1.0), X[:, INF["rate_vs_baseline"]]


def test_failure_ratio_and_distinct_resources_rise_under_attack() -> None:
    f = AccessFeaturizer()
    events = history()
    featurize(f, events)
    t = events[-1].timestamp
    brute = [access_event(2000 + i, timestamp=t + i, outcome="failure") for i in range(20)]
    sweep = [access_event(3000 + i, timestamp=t + 30 + i, resource=f"/s3/{i}") for i in range(50)]
    rows_brute = featurize(f, brute)
    rows_sweep = featurize(f, sweep)
    assert rows_brute[-1][A["failure_ratio"]] > 0.9
    assert rows_brute[-1][A["rate_vs_baseline"]] > 2
    assert math.expm1(rows_sweep[-1][A["distinct_resources_10m"]]) > 40


def test_features_are_deterministic() -> None:
    events = history(200)
    a = featurize(AccessFeaturizer(), events)
    b = featurize(AccessFeaturizer(), events)
    assert np.array_equal(a, b)


def test_entity_cap_and_ttl_bound_memory() -> None:
    f = AccessFeaturizer(EntityLimits(max_entities=100, ttl_s=3600))
    flood = [access_event(i, entity=f"user-{i}", timestamp=T0 + i) for i in range(5_000)]
    featurize(f, flood)
    assert len(f.entities) <= 100
    assert f.entities.evicted >= 4_900
    later = [access_event(i, entity=f"late-{i}", timestamp=T0 + 86_400 + i) for i in range(5000)]
    featurize(f, later)
    assert all(p.last_ts >= T0 + 86_400 for _, p in f.entities.items())  # TTL swept the old


def test_profile_state_round_trip() -> None:
    f = AccessFeaturizer()
    featurize(f, history(100))
    prof = f.entities.get("alice", T0)
    clone = AccessProfile.from_state(prof.to_state())
    assert clone.to_state() == prof.to_state()


def test_inference_extraction_and_probing_signals() -> None:
    f = InferenceFeaturizer()
    rng = random.Random(0)
    normal = [
        inference_event(
            i,
            entity=f"ak_{i % 5}",
            input_vector=tuple(rng.gauss(0, 1) for _ in range(4)),
        )
        for i in range(2_000)
    ]
    f.featurize(normal, [e.entity for e in normal])
    t = normal[-1].timestamp
    extraction = [
        inference_event(
            5000 + i,
            entity="ak_thief",
            timestamp=t + i * 0.05,
            input_vector=tuple(rng.uniform(-8, 8) for _ in range(4)),
            confidence=0.4,
        )
        for i in range(600)
    ]
    X, _ = f.featurize(extraction, [e.entity for e in extraction])
    assert np.median(X[:, INF["input_novelty"]]) > 2.0
    assert X[-1, INF["confidence_shift"]] < -0.3
    assert X[-1, INF["rate_vs_baseline"]] > 2
    probe = [
        inference_event(
            9000 + i,
            entity="ak_probe",
            timestamp=t + 10 + i,
            input_vector=(0.5, 0.5, 0.5, 0.5 + 1e-4 * i),
        )
        for i in range(20)
    ]
    Xp, _ = f.featurize(probe, [e.entity for e in probe])
    assert Xp[-1, INF["query_distance"]] < -3  # near-duplicates: far closer than usual


def _input_signals_numpy(
    vector: np.ndarray, mean: np.ndarray, var: np.ndarray, alpha: float, recent: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """The numpy implementation the kernel replaced: (novelty, nearest distance, z)."""
    z = (vector - mean) / np.sqrt(var + 1e-12)
    novelty = float(np.sqrt(np.mean(z * z)))
    delta = vector - mean
    mean += alpha * delta
    var += alpha * (delta * delta - var)
    nearest = float(np.min(np.linalg.norm(recent - z, axis=1))) if len(recent) else math.inf
    return novelty, nearest, z


def test_inference_kernel_is_bit_identical_to_numpy() -> None:
    """Same sums in the same order as numpy (pairwise), so features do not move at all."""
    rng = np.random.default_rng(7)
    for trial in range(3_000):
        dim = int(rng.integers(1, MAX_VECTOR + 1))
        vector = rng.standard_normal(dim) * 10.0 ** rng.uniform(-3, 3, dim)
        mean, var = rng.standard_normal(dim), rng.uniform(1e-6, 5.0, dim)
        ring = np.full((RECENT_INPUTS, dim), np.nan)
        filled = trial % (RECENT_INPUTS + 1)
        ring[:filled] = rng.standard_normal((filled, dim)) * 3
        alpha = float(rng.uniform(0, 0.01))
        ref_mean, ref_var = mean.copy(), var.copy()
        want = _input_signals_numpy(vector, ref_mean, ref_var, alpha, ring[:filled])
        slot = filled % RECENT_INPUTS
        got = input_signals(vector, VALUE_LIMIT, mean, var, alpha, ring, filled, slot)
        assert got == want[:2]
        assert mean.tobytes() == ref_mean.tobytes() and var.tobytes() == ref_var.tobytes()
        assert ring[slot].tobytes() == want[2].tobytes()


def test_inference_kernel_clips_huge_inputs() -> None:
    mean, var, ring = np.zeros(3), np.ones(3), np.zeros((1, 3))
    huge = np.array([1.7e308, -1.7e308, 1e300])
    novelty, nearest = input_signals(huge, VALUE_LIMIT, mean, var, 0.01, ring, 1, 0)
    assert math.isfinite(novelty) and math.isfinite(nearest)
    assert np.isfinite(mean).all() and np.isfinite(var).all()
