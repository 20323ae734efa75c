"""Prometheus metrics, all in one place, on an injectable registry.

Labels are bounded: stream (topic), format, model, severity label, stage,
sink, reason (a fixed set of parse-error codes). Never an entity or an IP.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

SEVERITY_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
STAGE_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "auditwatch_events_consumed", "Messages read from the source", ["stream"], registry=r
        )
        self.parsed = Counter(
            "auditwatch_events_parsed", "Events normalised", ["stream", "format"], registry=r
        )
        self.scored = Counter("auditwatch_events_scored", "Events scored", ["model"], registry=r)
        self.parse_errors = Counter(
            "auditwatch_parse_errors",
            "Rejected messages by reason",
            ["stream", "reason"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "auditwatch_dead_lettered",
            "Records written to the dead-letter destination",
            ["stream"],
            registry=r,
        )
        self.alerts = Counter(
            "auditwatch_alerts", "Alerts raised", ["model", "severity"], registry=r
        )
        self.severity = BatchHistogram(
            "auditwatch_score_severity",
            "Calibrated severity (0-100) of scored events",
            "model",
            SEVERITY_BUCKETS,
        )
        r.register(self.severity)
        self.alert_latency = Histogram(
            "auditwatch_event_to_alert_latency_seconds",
            "From the source event's timestamp to the alert being durably written",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "auditwatch_stage_duration_seconds",
            "Time per batch in each pipeline stage",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "auditwatch_consumer_lag", "Messages behind the log end", ["stream"], registry=r
        )
        self.entities = Gauge(
            "auditwatch_entities_tracked",
            "Entities with a behaviour profile",
            ["model"],
            registry=r,
        )
        self.evicted = Gauge(
            "auditwatch_entities_evicted",
            "Entities evicted (cap or TTL) since start",
            ["model"],
            registry=r,
        )
        self.sink_up = Gauge(
            "auditwatch_sink_up", "1 when the sink's last flush succeeded", ["sink"], registry=r
        )
        self.sink_errors = Counter(
            "auditwatch_sink_errors", "Failed sink flushes", ["sink"], registry=r
        )
        self.commits = Counter(
            "auditwatch_offset_commits", "Offset commits after durable sink flushes", registry=r
        )
        self.outbox_alerts = Gauge(
            "auditwatch_outbox_alerts",
            "Alerts waiting for a sink, in memory or in the disk spool",
            ["sink", "where"],
            registry=r,
        )
        self.backpressure = Gauge(
            "auditwatch_backpressure",
            "1 while consumption is paused because a sink's outbox is full",
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "auditwatch_checkpoint_duration_seconds",
            "Time to write one partition's checkpoint",
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.checkpoint_offset = Gauge(
            "auditwatch_checkpoint_offset",
            "Offset the latest checkpoint of a partition resumes from",
            ["stream", "partition"],
            registry=r,
        )
        self.checkpoint_last_success = Gauge(
            "auditwatch_checkpoint_last_success_timestamp_seconds",
            "When a checkpoint was last written",
            registry=r,
        )
        self.checkpoint_rejected = Counter(
            "auditwatch_checkpoints_rejected",
            "Corrupt or foreign checkpoints refused at start-up",
            registry=r,
        )


class BatchHistogram(Collector):
    """A histogram fed whole numpy arrays at once (one observe() per event costs ~1 us)."""

    def __init__(self, name: str, doc: str, label: str, buckets: tuple[float, ...]) -> None:
        self.name, self.doc, self.label = name, doc, label
        self.edges = np.asarray(buckets, dtype=np.float64)
        self._series: dict[str, tuple[np.ndarray, list[float]]] = {}

    def observe_many(self, label_value: str, values: np.ndarray) -> None:
        counts, total = self._series.setdefault(
            label_value, (np.zeros(len(self.edges) + 1, dtype=np.int64), [0.0])
        )
        idx = np.searchsorted(self.edges, values, side="left")  # le semantics
        counts += np.bincount(idx, minlength=len(counts))
        total[0] += float(np.sum(values))

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.doc, labels=[self.label])
        for value, (counts, total) in self._series.items():
            cumulative = np.cumsum(counts)
            buckets = [
                (str(float(e)), float(c)) for e, c in zip(self.edges, cumulative[:-1], strict=True)
            ]
            buckets.append(("+Inf", float(cumulative[-1])))
            family.add_metric([value], buckets, total[0])
        yield family
