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
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec
from detector.sources.kafka import KafkaSource, make_producer
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
    if settings.metrics.enabled:
        port = metrics.serve(settings.metrics.host, settings.metrics.port)
        log.info("metrics on http://%s:%d/metrics", settings.metrics.host, port)
    topics = sorted({t for spec in specs for t in spec.topics})
    with ExitStack() as stack:
        sinks = build_sinks(settings)
        for sink in sinks:
            stack.callback(sink.close)
        producer = make_producer(settings.kafka)
        stack.callback(producer.close)
        dead_letter = KafkaDeadLetter(producer, settings.kafka.dead_letter_topic)
        source = KafkaSource(settings.kafka, topics)
        stack.callback(source.close)
        log.info("consuming %s as group %s", topics, settings.kafka.group_id)
        pipeline = build_pipeline(settings, specs, metrics)
        daemon = Daemon(
            source,
            pipeline,
            sinks,
            dead_letter,
            metrics,
            stop,
            on_alerts=on_alerts,
            shutdown_deadline_s=settings.shutdown_deadline_s,
            checkpoints=PartitionCheckpoints(pipeline, settings.state, metrics),
        )
        code = daemon.run(max_idle_polls=max_idle_polls)
        log.info(
            "stopped: %d events scored and committed in %d batches (exit %d)",
            daemon.events,
            daemon.batches,
            code,
        )
        return code
