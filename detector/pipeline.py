"""The pipeline for one batch of raw messages: parse -> route -> model runners.

Sources hand in ``RawMessage``s; the result holds every event's severity, the
alerts to write, and the rejected messages for the dead-letter destination.
Runners are per (model, topic, partition), so a partition's state can move
between workers and its scores never depend on other partitions' timing.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any, NamedTuple, overload

import numpy as np

from detector.alerts import Origin
from detector.errors import CheckpointError
from detector.events import Event
from detector.gcpause import collector_paused
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec
from detector.parsers import ParseOptions, Rejected, parse_messages
from detector.privacy import Pseudonymiser
from detector.runner import ModelRunner

RunnerKey = tuple[str, str, int]  # (model name, topic, partition)


class RawMessage(NamedTuple):  # a tuple: built once per message, ~2x cheaper than a dataclass
    topic: str
    partition: int
    offset: int
    value: bytes


class Origins(Sequence[Origin]):
    """Where each event of a batch came from. The ``Origin`` objects are built only for
    the events that are looked at (alerts, rejects), not for every event."""

    def __init__(self, topic: str, messages: Sequence[RawMessage], index: Sequence[int]) -> None:
        self._topic, self._messages, self._index = topic, messages, index

    def __len__(self) -> int:
        return len(self._index)

    @overload
    def __getitem__(self, i: int) -> Origin: ...
    @overload
    def __getitem__(self, i: slice) -> Origins: ...
    def __getitem__(self, i: int | slice) -> Origin | Origins:
        if isinstance(i, slice):
            return Origins(self._topic, self._messages, self._index[i])
        msg = self.message(i)
        return Origin(self._topic, msg.partition, msg.offset)

    def message(self, i: int) -> RawMessage:
        """The whole message event ``i`` came from."""
        return self._messages[self._index[i]]

    def take(self, rows: Sequence[int]) -> Origins:
        """The origins of the events at ``rows``."""
        if len(rows) == len(self._index):
            return self
        return Origins(self._topic, self._messages, [self._index[i] for i in rows])


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
        with collector_paused():  # the batch's objects are acyclic and die with it
            for (topic, partition), part in _by_partition(messages).items():
                self.metrics.consumed.labels(topic).inc(len(part))
                self._parse_and_score(topic, partition, part, result)
        return result

    def _parse_and_score(
        self, topic: str, partition: int, messages: list[RawMessage], result: BatchResult
    ) -> None:
        events, origins = self._parse(topic, messages, result)
        self._score(topic, partition, events, origins, result)

    def _parse(
        self, topic: str, messages: list[RawMessage], result: BatchResult
    ) -> tuple[list[Event], Origins]:
        started = time.perf_counter()
        parsed = parse_messages(list(map(_VALUE, messages)), self.options)
        for rej, index in zip(parsed.rejected, parsed.rejected_origins, strict=True):
            self.metrics.parse_errors.labels(topic, rej.reason).inc()
            result.rejected.append((rej, messages[index]))
        events = parsed.events
        if self.pseudonymiser is not None:
            events = [self.pseudonymiser.apply(ev) for ev in events]
        for fmt, count in Counter(ev.source_format for ev in events).items():
            self.metrics.parsed.labels(topic, fmt).inc(count)
        self.metrics.stage_seconds.labels("parse").observe(time.perf_counter() - started)
        return events, Origins(topic, messages, parsed.origins)

    def _score(
        self,
        topic: str,
        partition: int,
        events: list[Event],
        origins: Origins,
        result: BatchResult,
    ) -> None:
        routed = self._route(topic, events, origins, result)
        for name, (evs, oris) in routed.items():
            spec = self.specs_by_name[name]
            runner = self.runner(spec, topic, partition)
            started = time.perf_counter()
            out = runner.process(evs, oris)
            self.metrics.stage_seconds.labels("score").observe(time.perf_counter() - started)
            self._account(spec, runner, out.severity, out.alerts)
            ids = map(attrgetter("event_id"), evs)
            result.scores.extend(zip(ids, repeat(spec.name), out.severity.tolist(), strict=False))
            result.alerts.extend(out.alerts)
            result.events += len(evs)

    def _route(
        self, topic: str, events: list[Event], origins: Origins, result: BatchResult
    ) -> dict[str, tuple[list[Event], Origins]]:
        """Events grouped by the model that takes their format, each group in order."""
        formats = [ev.source_format for ev in events]
        model_of = {fmt: self.model_for(topic, fmt) for fmt in set(formats)}
        rows_of: dict[str | None, Sequence[int]]
        if len(model_of) == 1:  # the usual batch: one format, so nothing to split
            (spec,) = model_of.values()
            rows_of = {spec.name if spec else None: range(len(events))}
        else:
            grouped: defaultdict[str | None, list[int]] = defaultdict(list)
            for i, fmt in enumerate(formats):
                spec = model_of[fmt]
                grouped[spec.name if spec else None].append(i)
            rows_of = dict(grouped)
        unrouted = rows_of.pop(None, None)
        if unrouted is not None:
            self._reject_unrouted(
                topic, [events[i] for i in unrouted], origins.take(unrouted), result
            )
        return {
            name: (
                events if len(rows) == len(events) else [events[i] for i in rows],
                origins.take(rows),
            )
            for name, rows in rows_of.items()
            if name is not None
        }

    def _reject_unrouted(
        self, topic: str, events: list[Event], origins: Origins, result: BatchResult
    ) -> None:
        """Each event no model takes is counted; its original message is dead-lettered
        once, however many of its events went unrouted (a CloudTrail file is one message
        of many events), so a replay scores each event once."""
        formats_of: defaultdict[RawMessage, Counter[str]] = defaultdict(Counter)
        for i, ev in enumerate(events):
            formats_of[origins.message(i)][ev.source_format] += 1
        for msg, formats in formats_of.items():
            what = ", ".join(f"{n} {fmt} event(s)" for fmt, n in formats.items())
            reason = Rejected("no_model", f"no model on {topic} takes {what}"[:300], msg.value)
            result.rejected.append((reason, msg))
            self.metrics.parse_errors.labels(topic, "no_model").inc(formats.total())

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


_PARTITION = attrgetter("topic", "partition")
_VALUE = attrgetter("value")


def _by_partition(messages: Sequence[RawMessage]) -> dict[tuple[str, int], list[RawMessage]]:
    """Messages grouped by (topic, partition), in order; one group without a copy loop in
    the usual case of a batch from one partition."""
    keys = list(map(_PARTITION, messages))
    if keys and keys.count(keys[0]) == len(keys):
        return {keys[0]: list(messages)}
    grouped: dict[tuple[str, int], list[RawMessage]] = defaultdict(list)
    for key, msg in zip(keys, messages, strict=True):
        grouped[key].append(msg)
    return grouped
