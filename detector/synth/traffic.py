"""Normal (unlabelled) traffic: the population's everyday behaviour, hour by hour.

For each simulated hour, every entity's event count is Poisson with a mean set
by its share of the organisation's volume and its weekly rhythm (local working
hours, weekends, batch schedules). Random draws are made in numpy blocks per
chunk and the records assembled in one pass; that is what keeps generation
above 50k messages/s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from detector.synth import catalog as cat
from detector.synth.access import cloudtrail_record, ecs_record, uuid_str
from detector.synth.catalog import ActionSpec
from detector.synth.inference import ModelSpec, build_models, inference_record
from detector.synth.population import WEEKEND, Entity, build_population

FORMATS = ("cloudtrail", "ecs", "inference")
_DUMP_OPTS = orjson.OPT_SERIALIZE_NUMPY
_AGENT_GROUP = {"web": "browser", "authentication": "browser", "file": "browser"}


@dataclass(frozen=True, slots=True)
class Message:
    """One message as it would sit in Kafka, plus its ground-truth label."""

    topic: str
    key: bytes  # entity key, so one entity's events share a partition
    value: bytes  # the raw JSON bytes
    timestamp: float  # epoch seconds of the event
    label: str | None  # None for normal traffic, else the scenario name
    event_id: str  # eventID / event.id inside ``value``


def hour_of_week(ts: float) -> int:
    """UTC hour of the week, Monday 00:00 = 0 (the epoch was a Thursday)."""
    return int((ts // 3600 + 72) % 168)


def weekly_weights(ent: Entity) -> np.ndarray:
    """Activity weight for each UTC hour of the week, from the entity's local habits."""
    out = np.empty(168)
    weekend = WEEKEND.get(ent.behaviour, 1.0)
    for how in range(168):
        local = int(math.floor(how + ent.tz_hours + ent.shift)) % 168
        out[how] = ent.hours[local % 24] * (weekend if local >= 120 else 1.0)
    return out


class World:
    """The population, served models and output settings shared by all generators."""

    def __init__(
        self,
        seed: int,
        population: Sequence[int],
        formats: Sequence[str],
        topics: dict[str, str] | None = None,
    ) -> None:
        unknown = set(formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown formats {sorted(unknown)}; choose from {FORMATS}")
        self.seed = seed
        self.formats = tuple(f for f in FORMATS if f in formats)
        self.topics = {f: f for f in FORMATS} | (topics or {})
        self.entities = build_population(seed, *population)
        self.models: dict[str, ModelSpec] = build_models(seed)

    def message(self, fmt: str, ent: Entity, ts: float, rec: dict[str, Any], label: str | None) -> Message:
        """Serialise one record; the event id is read back from the record itself."""
        eid = rec["eventID"] if fmt == "cloudtrail" else rec["event"]["id"]
        value = orjson.dumps(rec, option=_DUMP_OPTS)
        return Message(self.topics[fmt], ent.key.encode(), value, ts, label, eid)

    def ip_of(self, ent: Entity, u: float) -> str:
        """A source address: mostly the home network, humans sometimes from home/VPN."""
        net = 1 if len(ent.networks) > 1 and u < 0.08 else 0
        host = ent.hosts[int(u * 1000) % len(ent.hosts)]
        return f"{ent.networks[net]}.{host}"

    def country_of(self, ent: Entity, ip: str) -> str:
        return ent.country

    def agent_of(self, ent: Entity, spec: ActionSpec, u: float) -> str:
        group = spec.fmt if spec.fmt != "ecs" else _AGENT_GROUP.get(spec.kind, "database")
        agents = ent.agents[group]
        return agents[int(u * len(agents)) % len(agents)]


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
