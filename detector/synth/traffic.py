"""Normal (unlabelled) traffic: the population's everyday behaviour, hour by hour.

For each simulated hour, every entity's event count is Poisson with a mean set
by its share of the organisation's volume and its weekly rhythm (local working
hours, weekends, batch schedules). Random draws are made in numpy blocks per
chunk and the records assembled in one pass; that is what keeps generation
above 50k messages/s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detector.synth import catalog as cat
from detector.synth.access import cloudtrail_record, ecs_record, uuid_block
from detector.synth.catalog import ActionSpec
from detector.synth.inference import inference_record
from detector.synth.population import WEEKEND, Entity
from detector.synth.world import FORMATS, Message, World

__all__ = ["FORMATS", "Message", "NormalTraffic", "World", "hour_of_week", "weekly_weights"]


def hour_of_week(ts: float) -> int:
    """UTC hour of the week, Monday 00:00 = 0 (the epoch was a Thursday)."""
    return int((ts // 3600 + 72) % 168)


def weekly_weights(ent: Entity) -> np.ndarray:
    """Activity weight for each UTC hour of the week, from the entity's local habits."""
    out = np.empty(168)
    weekend = WEEKEND.get(ent.behaviour, 1.0)
    for how in range(168):
        local = math.floor(how + ent.tz_hours + ent.shift) % 168
        out[how] = ent.hours[local % 24] * (weekend if local >= 120 else 1.0)
    return out


def _resource(spec: ActionSpec, u: float) -> str:
    if spec.kind == "s3_object":
        idx = int(u * len(spec.resources) * len(cat.S3_KEYS))
        keys = cat.S3_KEYS
        return f"{spec.resources[idx // len(keys)]}/{keys[idx % len(keys)]}"
    if spec.kind == "bedrock":
        return cat.BEDROCK_MODELS[int(u * 3) % 3]
    if spec.resources:
        return spec.resources[int(u * len(spec.resources))]
    return ""


def _amount(ent: Entity, spec: ActionSpec, z: float) -> int:
    return int(math.exp(ent.bytes_mu + ent.bytes_sigma * z) * spec.bytes_scale)


class NormalTraffic:
    """Chunked generator of the population's everyday, unlabelled messages.

    Enabled formats restrict each entity's action mix; the per-entity rates are
    rescaled so the organisation emits ``events_per_day`` on an average day.
    """

    def __init__(self, world: World, events_per_day: float, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        self.specs: list[tuple[ActionSpec, ...]] = []
        cums, rates = [], []
        for ent in world.entities:
            specs = tuple(s for s in ent.actions if s.fmt in world.formats)
            weights = np.array([s.weight for s in specs] or [1.0])
            self.specs.append(specs)
            cums.append(np.cumsum(weights) / weights.sum())
            rates.append(ent.activity * _FORMAT_SHARE[ent.behaviour] if specs else 0.0)
        self.cums = cums
        # flat "is this action CloudTrail" lookup, indexed by offsets[entity] + action
        sizes = [max(len(sp), 1) for sp in self.specs]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        flat: list[bool] = []
        for sp in self.specs:
            flat.extend([s.fmt == "cloudtrail" for s in sp] or [False])
        self.ct_flat = np.array(flat, dtype=bool)
        self._init_models()
        weekly = np.array([weekly_weights(e) for e in world.entities])
        share = np.array(rates) / max(sum(rates), 1e-12)
        # per-entity events/hour at weight 1, so the weekly mean day totals events_per_day
        self.hourly = (
            share[:, None] * events_per_day / 24.0 * weekly / weekly.mean(1, keepdims=True)
        )

    def chunk(self, start: float, end: float) -> list[Message]:
        """All normal messages with ``start <= timestamp < end`` (within one UTC hour)."""
        rng = self.rng
        counts = rng.poisson(self.hourly[:, hour_of_week(start)] * (end - start) / 3600.0)
        n = int(counts.sum())
        if n == 0:
            return []
        ents = np.repeat(np.arange(len(counts)), counts)
        acts = self._actions(counts, rng.random(n))
        ts = start + rng.random(n) * (end - start)
        flat_idx = self.offsets[ents] + acts
        is_ct = self.ct_flat[flat_idx]
        # CloudTrail has whole-second times; order on what the records will say
        ts = np.where(is_ct, np.floor(ts), np.floor(ts * 1000.0) / 1000.0)
        order = np.argsort(ts, kind="stable")
        ids = uuid_block(rng.integers(0, 256, size=(2 * n, 16), dtype=np.uint8))
        # r[0..4] uniforms, r[5..7] standard normals
        uniform = rng.random((n, 5))
        draws = np.hstack([uniform, rng.standard_normal((n, 3))]).tolist()
        noise = self._vectors(flat_idx, uniform[:, 2], rng.standard_normal((n, 32)))
        ent_l, act_l, ts_l = ents.tolist(), acts.tolist(), ts.tolist()
        return [
            self._one(ent_l[j], act_l[j], ts_l[j], (ids[j], ids[n + j]), draws[j], noise, j)
            for j in order.tolist()
        ]

    def _init_models(self) -> None:
        """Padded per-model cluster centres so input vectors are drawn in one numpy pass."""
        models = list(self.world.models.values())
        self.model_names = [m.name for m in models]
        centres = np.zeros((len(models) + 1, 6, 32))
        for i, m in enumerate(models):
            centres[i, :, : m.dim] = m.centres
        self.centres = centres
        self.spread = np.array([m.spread for m in models] + [0.0])
        index = {m.name: i for i, m in enumerate(models)}
        flat: list[int] = []
        for sp in self.specs:
            flat.extend([index.get(s.name, len(models)) for s in sp] or [len(models)])
        self.model_flat = np.array(flat, dtype=np.int64)

    def _vectors(self, flat_idx: np.ndarray, u: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Natural inputs: a random cluster centre of the event's model plus noise, rounded."""
        mid = self.model_flat[flat_idx]
        centre = self.centres[mid, (u * 6).astype(np.int64)]
        return np.round(centre + self.spread[mid, None] * noise, 3)

    def _actions(self, counts: np.ndarray, u: np.ndarray) -> np.ndarray:
        out = np.empty(len(u), dtype=np.int64)
        pos = 0
        for i in np.flatnonzero(counts).tolist():
            c = int(counts[i])
            out[pos : pos + c] = np.searchsorted(self.cums[i], u[pos : pos + c], side="right")
            pos += c
        return out

    def _one(
        self,
        e: int,
        a: int,
        ts: float,
        ids: tuple[str, str],
        r: list[float],
        vectors: np.ndarray,
        j: int,
    ) -> Message:
        """Event ``j`` of the chunk; ``vectors[j]`` is its (padded) model input."""
        world = self.world
        ent = world.entities[e]
        spec = self.specs[e][a]
        ip = world.ip_of(ent, r[0])
        agent = world.agent_of(ent, spec, r[1])
        if spec.fmt == "cloudtrail":
            rec = self._cloudtrail(ent, spec, ts, ids, ip, agent, r)
        elif spec.fmt == "ecs":
            rec = self._ecs(ent, spec, ts, ids[0], ip, agent, r)
        else:
            rec = self._inference(ent, spec, ts, ids[0], ip, agent, r, vectors[j])
        return world.message(spec.fmt, ent, ts, rec, None)

    def _cloudtrail(
        self,
        ent: Entity,
        spec: ActionSpec,
        ts: float,
        ids: tuple[str, str],
        ip: str,
        agent: str,
        r: list[float],
    ) -> dict[str, Any]:
        z = r[5]
        fail_p = 0.03 if spec.kind == "console_login" else 0.01
        return cloudtrail_record(
            ent,
            spec,
            ts,
            ids,
            ip,
            agent,
            resource=_resource(spec, r[2]),
            amount=int(math.exp(6.0 + 0.8 * z))
            if spec.kind == "bedrock"
            else _amount(ent, spec, z),
            amount2=int(math.exp(5.0 + 0.6 * r[6])),
            failed=r[4] < fail_p,
        )

    def _ecs(
        self,
        ent: Entity,
        spec: ActionSpec,
        ts: float,
        eid: str,
        ip: str,
        agent: str,
        r: list[float],
    ) -> dict[str, Any]:
        z = r[5]
        rows = int(math.exp(ent.rows_mu + 0.8 * z) * spec.bytes_scale) + 1
        if spec.kind == "database":
            amount = rows * 180 + 512
        elif spec.kind == "web":
            amount = int(math.exp(10.5 + 0.8 * z))
        else:
            amount = _amount(ent, spec, z)
        fail = r[4] < (0.04 if spec.kind == "authentication" else 0.01)
        return ecs_record(
            ent, spec, ts, eid, ip, ent.country, agent,
            resource=_resource(spec, r[2]), amount=amount, rows=rows, failed=fail,
        )  # fmt: skip

    def _inference(
        self,
        ent: Entity,
        spec: ActionSpec,
        ts: float,
        eid: str,
        ip: str,
        agent: str,
        r: list[float],
        noise: np.ndarray,
    ) -> dict[str, Any]:
        model = self.world.models[spec.name]
        vector = None
        if model.dim:
            vector = noise[: model.dim]
        confidence = 1.0 - 0.3 * r[4] ** 3
        latency = model.latency_ms * math.exp(0.3 * r[5])
        tokens = (int(math.exp(5.5 + 0.7 * r[6])), int(math.exp(5.0 + 0.5 * r[7])))
        return inference_record(
            ent, model, ts, eid, ip, agent,
            vector=vector, confidence=confidence, latency_ms=latency, tokens=tokens,
            failed=r[3] < 0.002,
        )  # fmt: skip


# Share of the organisation's messages by behaviour class, before format filtering.
_FORMAT_SHARE = {"human": 1.0, "service": 2.0, "api_key": 2.5}
