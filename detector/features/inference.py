"""Features for ML-inference events: extraction and membership-inference probing.

Following PRADA (Juuti et al., EuroS&P 2019), an extraction attack shows as
queries whose distances to the caller's own earlier queries are unlike normal
traffic, inputs far from the model's usual input distribution, a high query
rate, and an output-confidence/entropy shift. Membership probing shows as
near-duplicate queries (tiny distances). docs/features.md defines each one.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from detector.events import Event
from detector.features.baselines import stable_hash
from detector.features.common import FeatureState, cold_weight, hour_of_week, volume_z
from detector.features.inference_kernel import input_signals
from detector.features.profiles import RECENT_INPUTS, InferenceProfile

INFERENCE_FEATURES = (
    "rate_vs_baseline",
    "new_network",
    "new_user_agent",
    "new_model",
    "hour_rarity",
    "failure_ratio",
    "input_novelty",
    "query_distance",
    "confidence_shift",
    "entropy_shift",
    "payload_vs_baseline",
    "output_tokens_vs_baseline",
)
MAX_MODELS = 1_000
# Inputs are clipped to +-1e100: squares of larger finite values overflow to inf and turn
# the model's running statistics into NaN for good. No real input comes close.
VALUE_LIMIT = 1e100


class ModelTraffic:
    """What a model's normal traffic looks like, across all callers (EW statistics)."""

    __slots__ = ("confidence", "entropy", "log_distance", "mean", "var")
    ALPHA = 0.01

    def __init__(self, dim: int) -> None:
        self.mean = np.zeros(dim)
        self.var = np.ones(dim)
        self.confidence = math.nan
        self.entropy = math.nan
        self.log_distance = math.nan  # typical log distance of a query to its caller's last ones

    def learning_rate(self, caller_rate: float) -> float:
        """How much one input moves ``mean``/``var`` (``inference_kernel.input_signals``
        learns it). A caller's weight shrinks with its query rate (per minute), so a
        single high-rate client cannot quickly redefine "normal" inputs."""
        return self.ALPHA / (1.0 + 60.0 * caller_rate)


_cached_hash = lru_cache(maxsize=65_536)(stable_hash)  # few distinct keys, many events


def _key_hash(kind: str, value: str) -> int:
    # long keys are hashed each time: hostile long keys must not pile up in the cache
    return _cached_hash(kind, value) if len(value) <= 256 else stable_hash(kind, value)


def _ewma(current: float, value: float, alpha: float) -> float:
    if value != value:
        return current
    return value if current != current else current + alpha * (value - current)


class InferenceFeaturizer(FeatureState[InferenceProfile]):
    names = INFERENCE_FEATURES
    profile_type = InferenceProfile
    POPULATIONS = ("model",)

    _warm = False  # kernel compiled or loaded from numba's cache in this process

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.models: dict[str, ModelTraffic] = {}
        if not InferenceFeaturizer._warm:  # pay the JIT/cache load at startup, not in a batch
            InferenceFeaturizer._warm = True
            one = np.ones(1)
            input_signals(one, VALUE_LIMIT, one.copy(), one.copy(), 0.0, np.ones((1, 1)), 1, 0)

    def featurize_one(self, ev: Event, entity_key: str) -> tuple[list[float], dict[str, Any]]:
        ts = ev.timestamp
        prof = self.entities.get(entity_key, ts)
        peer = self.peer(ev.peer_group)
        w = cold_weight(prof.n, self.limits.cold_start_events)
        rate_long = self.peer_rate(ev.peer_group, prof, w)
        ctx: dict[str, Any] = {"profile": prof, "events_seen": prof.n, "weight": w}
        keys = [
            _key_hash("net", ev.network) if ev.network else 0,
            _key_hash("ua", ev.user_agent) if ev.user_agent else 0,
            _key_hash("model", ev.model) if ev.model else 0,
        ]
        new, _ = self.first_uses(prof, peer, keys, ts, w)
        failed = ev.outcome == "failure"
        prof.tick(ts, failed)
        peer.tick(ts, failed)
        if rate_long != rate_long:  # no baseline yet: no burst either
            rate_long = prof.short_rate()
        ctx["rate_short"], ctx["rate_long"] = prof.short_rate(), rate_long
        traffic = self._traffic(ev)
        novelty, distance = self._input_signals(prof, traffic, ev.input_vector, ctx)
        conf_shift, ent_shift = self._output_shift(prof, traffic, ev, ctx)
        size = ev.input_size if ev.input_size == ev.input_size else ev.input_tokens
        payload_z, ctx["payload_usual"], ctx["payload_p99"] = volume_z(
            prof.payload, peer.payload, size, w
        )
        out_z, ctx["output_tokens_usual"], ctx["output_tokens_p99"] = volume_z(
            prof.output_tokens, peer.output_tokens, ev.output_tokens, w
        )
        return [
            math.log((prof.short_rate() + 1e-7) / (rate_long + 1e-7)),
            *new,
            self.hour_rarity(prof, peer, hour_of_week(ts), w),
            prof.fail_ewma,
            novelty,
            distance,
            conf_shift,
            ent_shift,
            payload_z,
            out_z,
        ], ctx

    def _traffic(self, ev: Event) -> ModelTraffic | None:
        if ev.model is None or ev.input_vector is None:
            return None
        dim = len(ev.input_vector)
        traffic = self.models.get(ev.model)
        if traffic is None or traffic.mean.shape[0] != dim:  # new model or new input width
            if traffic is None and len(self.models) >= MAX_MODELS:
                return None
            traffic = self.models[ev.model] = ModelTraffic(dim)
        return traffic

    @staticmethod
    def _input_signals(
        prof: InferenceProfile,
        traffic: ModelTraffic | None,
        vector_in: tuple[float, ...] | None,
        ctx: dict[str, Any],
    ) -> tuple[float, float]:
        """(input novelty vs the model's traffic, log distance to the caller's recent
        queries relative to the model's typical one); zeros without an input vector."""
        if traffic is None or vector_in is None:
            return 0.0, 0.0
        vector = np.asarray(vector_in, dtype=np.float64)  # the kernel clips to VALUE_LIMIT
        alpha = traffic.learning_rate(prof.short_rate())
        ring = prof.recent_inputs
        if ring is None or ring.shape[1] != vector.shape[0]:
            ring = prof.recent_inputs = np.full((RECENT_INPUTS, vector.shape[0]), np.nan)
            prof.recent_pos = 0
        filled = min(prof.recent_pos, RECENT_INPUTS)
        slot = prof.recent_pos % RECENT_INPUTS
        novelty, nearest = input_signals(
            vector, VALUE_LIMIT, traffic.mean, traffic.var, alpha, ring, filled, slot
        )
        distance = 0.0
        if filled:
            log_d = math.log(nearest + 1e-6)
            typical = traffic.log_distance
            distance = 0.0 if typical != typical else log_d - typical
            traffic.log_distance = _ewma(typical, log_d, 0.01)
            ctx["query_distance_log"] = log_d
        prof.recent_pos += 1
        ctx["input_novelty"] = novelty
        return novelty, distance

    @staticmethod
    def _output_shift(
        prof: InferenceProfile, traffic: ModelTraffic | None, ev: Event, ctx: dict[str, Any]
    ) -> tuple[float, float]:
        """Caller's recent confidence/entropy minus the model's usual (0 when unknown)."""
        prof.confidence = _ewma(prof.confidence, ev.confidence, 0.1)
        entropy = min(ev.entropy, VALUE_LIMIT)  # NaN (not reported) stays NaN
        prof.entropy = _ewma(prof.entropy, entropy, 0.1)
        if traffic is None:
            return 0.0, 0.0
        usual_conf, usual_ent = traffic.confidence, traffic.entropy
        alpha = 0.01 / (1.0 + 60.0 * prof.short_rate())  # as in learn_input
        traffic.confidence = _ewma(usual_conf, ev.confidence, alpha)
        traffic.entropy = _ewma(usual_ent, entropy, alpha)
        ctx["confidence_usual"], ctx["confidence_recent"] = usual_conf, prof.confidence
        ctx["entropy_usual"], ctx["entropy_recent"] = usual_ent, prof.entropy
        conf = prof.confidence - usual_conf
        ent = prof.entropy - usual_ent
        return (0.0 if conf != conf else conf), (0.0 if ent != ent else ent)


def _traffic_state(t: ModelTraffic) -> dict[str, Any]:
    return {
        "mean": t.mean.copy(),
        "var": t.var.copy(),
        "signals": [t.confidence, t.entropy, t.log_distance],
    }


def _traffic_from(state: dict[str, Any]) -> ModelTraffic:
    mean = np.asarray(state["mean"], dtype=np.float64)
    traffic = ModelTraffic(mean.shape[0])
    traffic.mean = mean.copy()
    traffic.var = np.asarray(state["var"], dtype=np.float64).copy()
    traffic.confidence, traffic.entropy, traffic.log_distance = map(float, state["signals"])
    return traffic


def inference_state(f: InferenceFeaturizer) -> dict[str, Any]:
    """Everything the featurizer knows, as JSON-able values and arrays (LRU order kept)."""
    store = f.entities
    return {
        "entities": {
            "keys": [k for k, _ in store.items()],
            "profiles": [p.to_state() for _, p in store.items()],
            "evicted": store.evicted,
            "since_sweep": store._since_sweep,
        },
        "peers": {k: p.to_state() for k, p in f.peers.items()},
        "peer_rates": dict(f.peer_rates),
        "population": {k: v.to_state() for k, v in f.population.items()},
        "models": {k: _traffic_state(t) for k, t in f.models.items()},
    }


def load_inference_state(f: InferenceFeaturizer, state: dict[str, Any]) -> None:
    from detector.features.population import KeyFrequencies

    ents = state["entities"]
    for key, prof in zip(ents["keys"], ents["profiles"], strict=True):
        f.entities.put(key, InferenceProfile.from_state(prof))
    f.entities.evicted = int(ents["evicted"])
    f.entities._since_sweep = int(ents["since_sweep"])
    f.peers = {k: InferenceProfile.from_state(v) for k, v in state["peers"].items()}
    f.peer_rates = {k: float(v) for k, v in state["peer_rates"].items()}
    f.population = {k: KeyFrequencies.from_state(v) for k, v in state["population"].items()}
    f.models = {k: _traffic_from(v) for k, v in state["models"].items()}
