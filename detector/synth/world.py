"""Shared state of one simulation: the population, served models, output settings.

``World`` also owns the per-entity choices every generator shares (source
address, user agent) and turns records into :class:`Message` objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from detector.synth.catalog import ActionSpec
from detector.synth.inference import ModelSpec, build_models
from detector.synth.population import Entity, build_population

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
        self._ips: dict[str, list[list[str]]] = {}
        self._keys: dict[str, bytes] = {}

    def message(
        self, fmt: str, ent: Entity, ts: float, rec: dict[str, Any], label: str | None
    ) -> Message:
        """Serialise one record; the event id is read back from the record itself."""
        eid = rec["eventID"] if fmt == "cloudtrail" else rec["event"]["id"]
        value = orjson.dumps(rec, option=_DUMP_OPTS)
        key = self._keys.get(ent.key)
        if key is None:
            key = self._keys[ent.key] = ent.key.encode()
        return Message(self.topics[fmt], key, value, ts, label, eid)

    def ip_of(self, ent: Entity, u: float) -> str:
        """A source address: mostly the home network, humans sometimes from home/VPN."""
        ips = self._ips.get(ent.key)
        if ips is None:
            ips = self._ips[ent.key] = [[f"{n}.{h}" for h in ent.hosts] for n in ent.networks]
        net = ips[1] if len(ips) > 1 and u < 0.08 else ips[0]
        return net[int(u * 1000) % len(net)]

    def agent_of(self, ent: Entity, spec: ActionSpec, u: float) -> str:
        group = spec.fmt if spec.fmt != "ecs" else _AGENT_GROUP.get(spec.kind, "database")
        agents = ent.agents[group]
        return agents[int(u * len(agents)) % len(agents)]
