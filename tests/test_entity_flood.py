"""A flood of new entities keeps feature state under the configured cap (issue 4, item 5).

The featurizers are fed directly: they hold all per-entity state, and the runner adds
nothing per entity. Events come in chunks of brand-new random user names, each chunk
dropped after use. The access featurizer takes 1,000,000 events (10-25 s here). The
inference featurizer takes 100,000, 20 times the cap: it is mostly Python and spends about
0.1-0.3 ms on each brand-new entity on the shared 2-core machine, so a million would take
minutes. The per-entity key maps get 250,000 (access) and 50,000 (inference) new keys,
60 and 12 times the largest (peer) map: an all-new key costs the access kernel ~20 us
(linear scans of the 4,096-key peer table), so a million would take 40 s more.

Documented behaviour (docs/features.md, "Eviction"): at the cap the least recently active
entity is evicted, so ``evicted == distinct entities seen - cap`` when nothing idles past
the TTL. An evicted entity that comes back starts cold; a recently active one keeps its
history. Each entity remembers at most ``max_keys_per_entity`` keys, each peer group
``max_keys_per_peer``, and at most ``max_peer_groups`` groups exist (then ``_other``).
"""

from __future__ import annotations

import gc
import random
import sys
import tracemalloc
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from factories import T0

from detector.events import Event
from detector.features import EntityLimits
from detector.features import access_kernel as K
from detector.features.access import ACCESS_FEATURES, AccessFeaturizer
from detector.features.inference import MAX_MODELS, InferenceFeaturizer
from detector.features.profiles import RECENT_INPUTS, InferenceProfile

CAP = 5_000
CHUNK = 50_000
ACCESS_FLOOD = 1_000_000
INFERENCE_FLOOD = 100_000
SUBMAP_EVENTS = 250_000  # one entity, each event with a new resource and network
INFERENCE_SUBMAP_EVENTS = 50_000
DOC_ROW_BYTES = 1_856  # docs/features.md, "Memory": one access entity row with K = 64
SLOT_ENTRY_BYTES = 256  # slot/store dict entry (~80 B, docs), the key string and slot int
GROWTH = 1.10  # state at the end of a flood vs early in it (cap long reached)
WARM_EVENTS = 40  # more than cold_start_events (20): alice and bob are warm before the flood
REGULAR_EVERY = 1_000  # bob acts this often during the flood: never the least recent
VECTOR = (0.3, -1.2, 0.8, 2.0)
_SHARED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)


def retained_bytes(root: object) -> int:
    """Bytes of every object reachable from ``root``: the state it keeps alive.

    Classes, modules and functions are shared code, not state, and are not followed.
    The state's numpy arrays own their data, so ``getsizeof`` counts their buffers.
    """
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SHARED):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def flood_names(rng: random.Random, start: int, n: int) -> list[str]:
    """``n`` user names never seen before: random, and distinct by their counter."""
    names = [f"user-{rng.getrandbits(48):012x}-{start + i}" for i in range(n)]
    first = (REGULAR_EVERY // 2 - start) % REGULAR_EVERY
    for i in range(first, n, REGULAR_EVERY):
        names[i] = "bob"  # a regular user, active all through the flood
    return names


def access_events(names: list[str], start: int) -> list[Event]:
    return [
        Event(T0 + (start + i) * 0.01, "", "ecs", name, action="s3:GetObject", resource="/b/k",
              network="10.1.2.0/24", user_agent="aws-cli/2.15", bytes_out=4096.0)
        for i, name in enumerate(names)
    ]  # fmt: skip


def inference_events(names: list[str], start: int) -> list[Event]:
    return [
        Event(T0 + (start + i) * 0.01, "", "inference", name, "api_key", "model:fraud",
              action="inference:fraud", model="fraud", network="10.1.2.0/24",
              input_vector=VECTOR, confidence=0.9, entropy=0.3, output_tokens=5.0)
        for i, name in enumerate(names)
    ]  # fmt: skip


Featurizer = AccessFeaturizer | InferenceFeaturizer
Make = Callable[[list[str], int], list[Event]]


def featurize(f: Featurizer, events: list[Event]) -> tuple[np.ndarray, Any]:
    return f.featurize(events, [ev.entity for ev in events])


def warm_up(f: Featurizer, make: Make) -> None:
    """alice and bob, each with a warm history (weight 1) before the flood."""
    names = [name for _ in range(WARM_EVENTS) for name in ("alice", "bob")]
    _, contexts = featurize(f, make(names, -len(names)))
    assert contexts[-1]["weight"] == 1.0


def flood(f: Featurizer, make: Make, total: int) -> Iterator[tuple[int, list[str]]]:
    """Feed ``total`` events in chunks; yields (events so far, the chunk's names)."""
    rng = random.Random(4)
    for start in range(0, total, CHUNK):
        names = flood_names(rng, start, min(CHUNK, total - start))
        X, _ = featurize(f, make(names, start))
        assert np.isfinite(X).all()
        del X
        yield start + len(names), names


def check_flood(
    f: Featurizer, make: Make, total: int, state_bytes: Callable[[], int], first: int
) -> int:
    """Run the flood with the cap checks and the state's size after ``first`` events and
    at the end (it must not grow); returns the size at the end."""
    warm_up(f, make)
    distinct = f.entities_tracked()  # alice, bob and any entity the test added before
    sizes: dict[int, int] = {}
    for seen, names in flood(f, make, total):
        distinct += len(set(names) - {"bob"})
        assert f.entities_tracked() == CAP  # full, never over
        assert f.entities.evicted == distinct - CAP
        if seen in (first, total):
            sizes[seen] = state_bytes()
    assert sizes[total] <= GROWTH * sizes[first], sizes
    check_returning_users(f, make, total, names[-1])
    assert f.entities.evicted == distinct + 1 - CAP  # alice came back: one more eviction
    return sizes[total]


def check_returning_users(f: Featurizer, make: Make, total: int, last_name: str) -> None:
    """alice (idle through the flood) was evicted and starts cold; bob (active all along)
    and the flood's most recent user kept their history."""
    _, contexts = featurize(f, make(["alice", "bob", last_name], total))
    assert (contexts[0]["events_seen"], contexts[0]["weight"]) == (0, 0.0)
    regular_events = WARM_EVENTS + total // REGULAR_EVERY
    assert (contexts[1]["events_seen"], contexts[1]["weight"]) == (regular_events, 1.0)
    assert contexts[2]["events_seen"] == 1


def access_arrays_bytes(f: AccessFeaturizer) -> int:
    tables = sum(a.nbytes for table in (f.ent, f.peer) for a in table.arrays())
    return tables + f.peer_rates.nbytes + f.sketch.nbytes + f.sketch_totals.nbytes


def test_access_flood_of_a_million_new_users_stays_under_the_cap() -> None:
    f = AccessFeaturizer(EntityLimits(max_entities=CAP))
    arrays_at: dict[str, int] = {}

    def state_bytes() -> int:
        arrays_at.setdefault("first", access_arrays_bytes(f))
        return retained_bytes(f)

    total = check_flood(f, access_events, ACCESS_FLOOD, state_bytes, first=100_000)
    assert f.ent.rows == CAP  # the entity table never grew past the cap
    assert sum(a.nbytes for a in f.ent.arrays()) == CAP * DOC_ROW_BYTES
    arrays = access_arrays_bytes(f)
    assert arrays == arrays_at["first"]  # not one array byte more after 900,000 more users
    assert total <= arrays + CAP * SLOT_ENTRY_BYTES, (total, arrays)


def inference_profile_bound(f: InferenceFeaturizer) -> int:
    """Bytes of the largest profile an entity can have: every key slot used, a full
    input ring of this width, baselines and signals set."""
    prof = InferenceProfile()
    for key in range(f.limits.max_keys_per_entity):
        prof.touch(key + 10**9, T0 + 10**6, f.limits.max_keys_per_entity)
    prof.recent_inputs = np.zeros((RECENT_INPUTS, len(VECTOR)))
    prof.recent_pos, prof.confidence, prof.entropy = 10**6, 0.5, 0.5
    for _ in range(20):
        prof.payload.update(123.0)
        prof.output_tokens.update(7.0)
    return retained_bytes(prof)


def test_inference_flood_of_new_api_keys_stays_under_the_cap() -> None:
    f = InferenceFeaturizer(EntityLimits(max_entities=CAP))
    featurize(f, inference_events(["seed"], -10_000))
    fixed = retained_bytes(f)  # peer group, model traffic, one profile
    total = check_flood(
        f, inference_events, INFERENCE_FLOOD, lambda: retained_bytes(f), first=50_000
    )
    per_entity = inference_profile_bound(f) + SLOT_ENTRY_BYTES
    assert total <= fixed + CAP * per_entity, (total, fixed, per_entity)


def distinct_keys_events(kind: str, start: int, n: int) -> list[Event]:
    """One entity; every event from a new network and for a new resource (access), or from
    a new network and agent for a new model (inference; the parser makes each model its
    own peer group)."""
    ids = range(start, start + n)
    nets = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.0/24#{i}" for i in ids]
    if kind == "access":
        return [
            Event(T0 + i * 0.01, "", "ecs", "mallory", resource=f"/b/{i}", network=net,
                  user_agent="aws-cli/2", action="s3:GetObject")
            for i, net in zip(ids, nets, strict=True)
        ]  # fmt: skip
    return [
        Event(T0 + i * 0.01, "", "inference", "mallory", "api_key", f"model:m{i}", model=f"m{i}",
              network=net, user_agent=f"tool{i}", input_vector=VECTOR, confidence=0.9)
        for i, net in zip(ids, nets, strict=True)
    ]  # fmt: skip


def test_one_access_entity_with_new_resources_and_networks_keeps_k_keys() -> None:
    f = AccessFeaturizer(EntityLimits(max_entities=CAP))
    kpe, kpp = f.limits.max_keys_per_entity, f.limits.max_keys_per_peer
    sizes = []
    for start in range(0, SUBMAP_EVENTS, CHUNK):
        X, _ = featurize(f, distinct_keys_events("access", start, CHUNK))
        # still detecting: every resource and network is new to mallory
        for name in ("new_resource", "new_network"):
            assert (X[:, ACCESS_FEATURES.index(name)] == 1.0).all(), name
        assert np.isfinite(X).all()
        del X
        row = f.slots.slots["mallory"]
        assert f.ent.meta[row, 0] == kpe and f.peer.meta[:, 0].max() == kpp
        sizes.append(access_arrays_bytes(f))
    assert f.entities_tracked() == 1 and len(f.peer_groups) == 1
    assert sizes[-1] == sizes[0]  # the tables did not grow after the first chunk


def test_one_inference_entity_with_new_networks_agents_and_models_stays_bounded() -> None:
    f = InferenceFeaturizer(EntityLimits(max_entities=CAP, max_peer_groups=100))
    kpe, kpp = f.limits.max_keys_per_entity, f.limits.max_keys_per_peer
    sizes = []
    for start in range(0, INFERENCE_SUBMAP_EVENTS, CHUNK // 2):
        X, _ = featurize(f, distinct_keys_events("inference", start, CHUNK // 2))
        assert np.isfinite(X).all()
        del X
        prof = dict(f.entities.items())["mallory"]
        assert len(prof.seen) == kpe
        assert max(len(peer.seen) for peer in f.peers.values()) <= kpp
        assert len(f.peers) == f.limits.max_peer_groups + 1  # the rest share "_other"
        assert len(f.peer_rates) <= f.limits.max_peer_groups + 1
        assert len(f.models) == MAX_MODELS
        sizes.append(retained_bytes(f))
    assert f.entities_tracked() == 1
    assert sizes[-1] <= GROWTH * sizes[0], sizes


def test_access_row_bytes_are_the_documented_figure() -> None:
    assert K.ProfileTable(64, rows=1).nbytes_per_row() == DOC_ROW_BYTES


def test_long_keys_are_not_kept_alive_after_their_batch() -> None:
    """Resources and user agents of 20 KB (attack payloads often sit in them): 80 MB pass
    through, and nothing of them stays in memory once their batch is gone."""
    f = AccessFeaturizer(EntityLimits(max_entities=CAP))
    featurize(f, distinct_keys_events("access", 0, 100))  # tables and memos in use
    tracemalloc.start()
    try:
        for start in range(0, 2_000, 500):
            events = [
                Event(T0 + i, "", "ecs", "mallory", resource=f"/{i}/" + "r" * 20_000,
                      user_agent=f"tool{i}/" + "u" * 20_000)
                for i in range(start, start + 500)
            ]  # fmt: skip
            featurize(f, events)
            del events
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the hash memos may grow their tables meanwhile (a few MB); the keys would be 80 MB
    assert retained < 8_000_000, retained
