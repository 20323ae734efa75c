"""The daemon loop: poll -> pipeline -> durable writes -> commit.

Nothing is lost: a batch's offsets are committed only after its alerts and
dead-letter records are durable. While a sink is down the loop retries with
exponential backoff and full jitter, and consumption pauses (backpressure)
instead of dropping anything. SIGTERM/SIGINT finish the batch in hand.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from kafka.errors import KafkaError

from detector.deadletter import DeadLetter
from detector.errors import BackpressureError, SinkError, SourceError
from detector.metrics import Metrics
from detector.pipeline import BatchResult, Pipeline, RawMessage
from detector.sinks.base import Sink
from detector.sources.base import Source, next_offsets
from detector.state.partitions import PartitionCheckpoints

log = logging.getLogger(__name__)
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


class Daemon:
    def __init__(
        self,
        source: Source,
        pipeline: Pipeline,
        sinks: Sequence[Sink],
        dead_letter: DeadLetter,
        metrics: Metrics,
        stop: threading.Event,
        on_alerts: Callable[[list[dict]], None] | None = None,
        shutdown_deadline_s: float = 20.0,
        checkpoints: PartitionCheckpoints | None = None,
    ) -> None:
        self.source = source
        self.pipeline = pipeline
        self.sinks = list(sinks)
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.stop = stop
        self.on_alerts = on_alerts
        self.shutdown_deadline_s = shutdown_deadline_s
        self.checkpoints = checkpoints
        if checkpoints is not None:
            source.set_partition_hooks(checkpoints.on_assigned, checkpoints.on_revoked)
        self.batches = 0
        self.events = 0  # events scored and committed
        self._rng = random.Random()  # jitter only; never affects scores

    def run(self, max_idle_polls: int | None = None) -> int:
        """Run until stopped; returns the exit code (0 clean, 3 if a batch was abandoned)."""
        idle = 0
        while not self.stop.is_set():
            batch = self.source.poll()
            if not batch:
                idle += 1 if self.source.assigned() else 0  # a group join is not idleness
                self._update_lag()
                if max_idle_polls is not None and idle >= max_idle_polls:
                    break
                continue
            idle = 0
            if not self.process(batch):
                log.warning("shutdown deadline passed with a batch undelivered; not committed")
                return 3
        if self.checkpoints is not None:
            self.checkpoints.save_all()  # everything processed is durable: resume here
        return 0

    def process(self, batch: list[RawMessage]) -> bool:
        """Score, deliver durably, commit. False if stopped before delivery succeeded."""
        result = self.pipeline.process(batch)
        offsets = next_offsets(batch)
        if self.checkpoints is not None:
            self.checkpoints.scored_up_to(offsets)
        if not self._deliver(result):
            return False
        if self.checkpoints is not None:
            self.checkpoints.delivered_up_to(offsets)
        try:
            self.source.commit(batch)
        except SourceError as exc:
            # Typically a rebalance took the partitions: the alerts are durable and the new
            # owner re-scores from the last commit into the same alert ids.
            log.warning("%s; the batch will be re-scored by the partitions' owner", exc)
            return True
        self.metrics.commits.inc()
        self.batches += 1
        self.events += result.events
        self._observe_latency(result.alerts)
        if self.on_alerts and result.alerts:
            self.on_alerts(result.alerts)
        return True

    def _deliver(self, result: BatchResult) -> bool:
        for rejected, msg in result.rejected:
            self.dead_letter.add(rejected, msg)
            self.metrics.dead_lettered.labels(msg.topic).inc()
        for sink in self.sinks:
            sink.add(result.alerts)
        return self._flush_with_retry()

    def _flush_with_retry(self) -> bool:
        attempt = 0
        stop_deadline: float | None = None
        while True:
            try:
                self.dead_letter.flush()
                for sink in self.sinks:
                    self._flush(sink)
                if attempt:
                    self.source.resume()
                return True
            except SinkError as exc:
                attempt += 1
                if attempt == 1:
                    self.source.pause()
                delay = self._backoff(attempt, exc)
                log.warning("write failed (attempt %d), retrying in %.1fs: %s", attempt, delay, exc)
            if self.stop.is_set():
                stop_deadline = stop_deadline or time.monotonic() + self.shutdown_deadline_s
                if time.monotonic() >= stop_deadline:
                    return False
            self._wait(delay)

    def _flush(self, sink: Sink) -> None:
        try:
            sink.flush()
        except SinkError:
            self.metrics.sink_up.labels(sink.name).set(0)
            self.metrics.sink_errors.labels(sink.name).inc()
            raise
        self.metrics.sink_up.labels(sink.name).set(1)

    def _backoff(self, attempt: int, exc: SinkError) -> float:
        ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
        delay = self._rng.uniform(0, ceiling)  # full jitter: spread retries of many workers
        if isinstance(exc, BackpressureError):
            delay = max(delay, exc.retry_after)
        return delay

    def _wait(self, delay: float) -> None:
        """Sleep in short steps, keeping the consumer's group membership alive."""
        end = time.monotonic() + delay
        while time.monotonic() < end:
            self.source.keepalive()
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))

    def _update_lag(self) -> None:
        try:
            for topic, lag in self.source.lag().items():
                self.metrics.consumer_lag.labels(topic).set(lag)
        except KafkaError as exc:  # lag is advisory; a failed lookup must not stop scoring
            log.debug("consumer lag lookup failed: %s", exc)

    def _observe_latency(self, alerts: list[dict]) -> None:
        now = time.time()
        for doc in alerts:
            ts = datetime.fromisoformat(doc["@timestamp"]).timestamp()
            self.metrics.alert_latency.labels(doc["rule"]["name"]).observe(max(0.0, now - ts))
