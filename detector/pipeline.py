"""The pipeline for one batch of raw messages: parse -> route -> model runners.

Sources hand in ``RawMessage``s; the result holds every event's severity, the
alerts to write, and the rejected messages for the dead-letter destination.
Runners are per (model, topic, partition), so a partition's state can move
between workers and its scores never depend on other partitions' timing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from detector.alerts import Origin
from detector.errors import CheckpointError
from detector.events import Event
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec
from detector.parsers import ParseOptions, Rejected, parse_message
from detector.privacy import Pseudonymiser
from detector.runner import ModelRunner

RunnerKey = tuple[str, str, int]  # (model name, topic, partition)


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass
class BatchResult:
    scores: list[tuple[str, str, float]] = field(default_factory=list)  # event id, model, sev
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[Rejected, RawMessage]] = field(default_factory=list)
    events: int = 0


class Pipeline:
    def __init__(
        self,
        specs: Sequence[ModelSpec],
        parse_options: ParseOptions,
        metrics: Metrics,
        pseudonymiser: Pseudonymiser | None = None,
        route_by_topic: bool = True,
    ) -> None:
        self.specs = list(specs)
        self.specs_by_name = {s.name: s for s in self.specs}
        self.options = parse_options
        self.metrics = metrics
        self.pseudonymiser = pseudonymiser
        self.route_by_topic = route_by_topic
        self.runners: dict[RunnerKey, ModelRunner] = {}

    def process(self, messages: Sequence[RawMessage]) -> BatchResult:
        """Parse, score and decide on ``messages`` (all from any topics/partitions)."""
        result = BatchResult()
        by_partition: dict[tuple[str, int], list[RawMessage]] = defaultdict(list)
        for msg in messages:
            by_partition[(msg.topic, msg.partition)].append(msg)
        for (topic, partition), part in by_partition.items():
            self.metrics.consumed.labels(topic).inc(len(part))
            events, origins = self._parse(topic, part, result)
            self._score(topic, partition, events, origins, result)
        return result

    def _parse(
        self, topic: str, messages: list[RawMessage], result: BatchResult
    ) -> tuple[list[Event], list[Origin]]:
        started = time.perf_counter()
        events: list[Event] = []
        origins: list[Origin] = []
        options = self.options
        for msg in messages:
            parsed, rejected = parse_message(msg.value, options)
            if parsed:
                origin = Origin(topic, msg.partition, msg.offset)
                events.extend(parsed)
                origins.extend([origin] * len(parsed))
            for rej in rejected:
                self.metrics.parse_errors.labels(topic, rej.reason).inc()
                result.rejected.append((rej, msg))
        if self.pseudonymiser is not None:
            events = [self.pseudonymiser.apply(ev) for ev in events]
        formats: dict[str, int] = defaultdict(int)
        for ev in events:
            formats[ev.source_format] += 1
        for fmt, count in formats.items():
            self.metrics.parsed.labels(topic, fmt).inc(count)
        self.metrics.stage_seconds.labels("parse").observe(time.perf_counter() - started)
        return events, origins

    def _score(
        self,
        topic: str,
        partition: int,
        events: list[Event],
        origins: list[Origin],
        result: BatchResult,
    ) -> None:
        routed = self._route(topic, events, origins, result)
        for name, (evs, oris) in routed.items():
            spec = self.specs_by_name[name]
            runner = self.runner(spec, topic, partition)
            started = time.perf_counter()
            out = runner.process(evs, list(oris))
            self.metrics.stage_seconds.labels("score").observe(time.perf_counter() - started)
            self._account(spec, runner, out.severity, out.alerts)
            result.scores.extend(
                (ev.event_id, spec.name, float(s)) for ev, s in zip(evs, out.severity, strict=True)
            )
            result.alerts.extend(out.alerts)
            result.events += len(evs)

    def _route(
        self, topic: str, events: list[Event], origins: list[Origin], result: BatchResult
    ) -> dict[str, tuple[list[Event], list[Origin]]]:
        routed: dict[str, tuple[list[Event], list[Origin]]] = {}
        for ev, origin in zip(events, origins, strict=True):
            spec = self.model_for(topic, ev.source_format)
            if spec is None:
                reason = Rejected("no_model", f"no model takes {ev.source_format} on {topic}", b"")
                result.rejected.append(
                    (
                        reason,
                        RawMessage(topic, origin.partition, origin.offset, _original_bytes(ev)),
                    )
                )
                self.metrics.parse_errors.labels(topic, "no_model").inc()
                continue
            evs, oris = routed.setdefault(spec.name, ([], []))
            evs.append(ev)
            oris.append(origin)
        return routed

    def model_for(self, topic: str, fmt: str) -> ModelSpec | None:
        for spec in self.specs:
            if fmt in spec.accepted_formats and (not self.route_by_topic or topic in spec.topics):
                return spec
        return None

    def runner(self, spec: ModelSpec, topic: str, partition: int) -> ModelRunner:
        key = (spec.name, topic, partition)
        runner = self.runners.get(key)
        if runner is None:
            runner = self.runners[key] = ModelRunner(spec)
        return runner

    def partition_runners(self, topic: str, partition: int) -> dict[str, ModelRunner]:
        """The runners holding one partition's state, by model name."""
        return {k[0]: r for k, r in self.runners.items() if k[1:] == (topic, partition)}

    def restore_partition(self, topic: str, partition: int, states: dict[str, Any]) -> None:
        """Replace a partition's runners by ones resumed from checkpointed ``states``."""
        restored = {}
        for name, state in states.items():
            spec = self.specs_by_name.get(name)
            if spec is None:
                raise CheckpointError(f"checkpoint holds state of unknown model {name!r}")
            runner = ModelRunner(spec)
            runner.load_state(state)
            restored[(name, topic, partition)] = runner
        self.drop_partition(topic, partition)
        self.runners.update(restored)

    def drop_partition(self, topic: str, partition: int) -> None:
        for key in [k for k in self.runners if k[1:] == (topic, partition)]:
            del self.runners[key]

    def _account(
        self, spec: ModelSpec, runner: ModelRunner, severity: np.ndarray, alerts: list[dict]
    ) -> None:
        m = self.metrics
        m.scored.labels(spec.name).inc(len(severity))
        m.severity.observe_many(spec.name, severity)
        for doc in alerts:
            m.alerts.labels(spec.name, doc["auditwatch"]["severity_label"]).inc()
        m.entities.labels(spec.name).set(self.entities_tracked(spec.name))
        m.evicted.labels(spec.name).set(
            sum(r.featurizer.entities.evicted for k, r in self.runners.items() if k[0] == spec.name)
        )

    def entities_tracked(self, model: str) -> int:
        return sum(r.entities_tracked() for k, r in self.runners.items() if k[0] == model)


def _original_bytes(ev: Event) -> bytes:
    return orjson.dumps(ev.raw) if ev.raw else ev.event_id.encode()
