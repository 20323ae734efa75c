"""``auditwatch run``: wire Kafka, the pipeline, sinks and metrics, then loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack

from detector.app import build_pipeline, build_sinks
from detector.config import Settings
from detector.daemon import Daemon
from detector.deadletter import KafkaDeadLetter
from detector.health import Health, serve
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec
from detector.sinks.base import Sink
from detector.sinks.outbox import Outbox
from detector.sources import make_source
from detector.sources.kafka import make_producer
from detector.state.partitions import PartitionCheckpoints

log = logging.getLogger(__name__)


def run_daemon(
    settings: Settings,
    specs: list[ModelSpec],
    stop: threading.Event,
    metrics: Metrics | None = None,
    on_alerts: Callable[[list[dict]], None] | None = None,
    max_idle_polls: int | None = None,
) -> int:
    metrics = metrics or Metrics()
    health = Health(stall_after_s=settings.delivery.stall_after_s)
    if settings.metrics.enabled:
        port = serve(metrics.registry, health, settings.metrics.host, settings.metrics.port)
        log.info("metrics on http://%s:%d/metrics, health on /healthz", settings.metrics.host, port)
    topics = sorted({t for spec in specs for t in spec.topics})
    with ExitStack() as stack:
        outboxes = []
        for sink in build_sinks(settings):
            stack.callback(sink.close)
            outboxes.append(_outbox(sink, settings))
            stack.callback(outboxes[-1].close)
        producer = make_producer(settings.kafka)
        stack.callback(producer.close)
        dead_letter = KafkaDeadLetter(producer, settings.kafka.dead_letter_topic)
        source = make_source(settings.kafka, topics)
        stack.callback(source.close)
        log.info("consuming %s as group %s", topics, settings.kafka.group_id)
        pipeline = build_pipeline(settings, specs, metrics)
        daemon = Daemon(
            source,
            pipeline,
            outboxes,
            dead_letter,
            metrics,
            stop,
            on_alerts=on_alerts,
            shutdown_deadline_s=settings.shutdown_deadline_s,
            checkpoints=PartitionCheckpoints(pipeline, settings.state, metrics),
            health=health,
        )
        code = daemon.run(max_idle_polls=max_idle_polls)
        log.info(
            "stopped: %d events scored and committed in %d batches (exit %d)",
            daemon.events,
            daemon.batches,
            code,
        )
        return code


def _outbox(sink: Sink, settings: Settings) -> Outbox:
    return Outbox(
        sink,
        settings.state.dir / "spool" / f"{sink.name}.jsonl",
        memory_alerts=settings.delivery.memory_alerts,
        spool_bytes=int(settings.delivery.spool_max_mb * 1024 * 1024),
    )
