"""The daemon loop: poll -> pipeline -> outboxes -> commit what is durable.

Nothing is lost: a batch's offsets are committed only after every sink
acknowledged its alerts and its dead letters are written. While a sink is down
the loop keeps scoring, queuing alerts in the sink's outbox (bounded memory,
then a disk spool), and retries with exponential backoff and full jitter; when
a spool is full, consumption pauses (backpressure) instead of dropping anything.
SIGTERM/SIGINT stop polling, then delivery is retried until the shutdown
deadline; whatever is still undelivered stays uncommitted and is re-scored by
the next start.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from kafka.errors import KafkaError

from detector.deadletter import DeadLetter
from detector.errors import BackpressureError, SinkError, SourceError
from detector.health import Health
from detector.metrics import Metrics
from detector.pipeline import Pipeline, RawMessage
from detector.sinks.outbox import Outbox
from detector.sources.base import Source, TopicPartitionKey, next_offsets
from detector.state.partitions import PartitionCheckpoints

log = logging.getLogger(__name__)
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


@dataclass
class _Pending:
    """A scored batch whose offsets wait for its alerts to be acknowledged."""

    seq: int
    offsets: dict[TopicPartitionKey, int]
    events: int
    stamps: list[tuple[str, float]]  # (model, source event time) per alert, for latency
    alerts: list[dict] = field(default_factory=list)  # kept only for the on_alerts callback


@dataclass
class _Retry:
    attempts: int = 0
    not_before: float = 0.0


class Daemon:
    def __init__(
        self,
        source: Source,
        pipeline: Pipeline,
        outboxes: Sequence[Outbox],
        dead_letter: DeadLetter,
        metrics: Metrics,
        stop: threading.Event,
        on_alerts: Callable[[list[dict]], None] | None = None,
        shutdown_deadline_s: float = 20.0,
        checkpoints: PartitionCheckpoints | None = None,
        health: Health | None = None,
    ) -> None:
        self.source = source
        self.pipeline = pipeline
        self.outboxes = list(outboxes)
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.stop = stop
        self.on_alerts = on_alerts
        self.shutdown_deadline_s = shutdown_deadline_s
        self.checkpoints = checkpoints
        if checkpoints is not None:
            source.set_partition_hooks(checkpoints.on_assigned, checkpoints.on_revoked)
        self.health = health or Health()
        self.batches = 0
        self.events = 0  # events scored and committed
        self._seq = 0
        self._pending: deque[_Pending] = deque()
        self._retry = {box.sink.name: _Retry() for box in self.outboxes}
        self._paused = False
        self._rng = random.Random()  # jitter only; never affects scores

    def run(self, max_idle_polls: int | None = None) -> int:
        """Run until stopped; 0 when everything scored was delivered and committed, 3 when
        the shutdown deadline passed with alerts undelivered (not committed)."""
        idle = 0
        while not self.stop.is_set():
            self._apply_backpressure()
            batch = self.source.poll()
            self.health.beat()
            if batch:
                idle = 0
                self.process(batch)
            else:
                idle += 1 if self.source.assigned() and not self._pending else 0
                self._update_lag()
                self._deliver(force=False)
                if max_idle_polls is not None and idle >= max_idle_polls:
                    break
        return self._shutdown()

    def process(self, batch: list[RawMessage]) -> None:
        """Score, queue the alerts, write dead letters, commit whatever is durable."""
        result = self.pipeline.process(batch)
        offsets = next_offsets(batch)
        if self.checkpoints is not None:
            self.checkpoints.scored_up_to(offsets)
        self._seq += 1
        stamps = [(doc["rule"]["name"], _epoch(doc["@timestamp"])) for doc in result.alerts]
        keep = result.alerts if self.on_alerts else []
        self._pending.append(_Pending(self._seq, offsets, result.events, stamps, keep))
        for box in self.outboxes:
            box.put(self._seq, result.alerts)
        self._write_dead_letters(result.rejected)
        self._deliver(force=False)

    # -- delivery -------------------------------------------------------------------------

    def _deliver(self, force: bool) -> None:
        """Flush each outbox whose retry time has come (all when ``force``), then commit."""
        now = time.monotonic()
        for box in self.outboxes:
            retry = self._retry[box.sink.name]
            if force or now >= retry.not_before:
                self._flush(box, retry)
            buffered = box.buffered()
            self.metrics.outbox_alerts.labels(box.sink.name, "memory").set(buffered[0])
            self.metrics.outbox_alerts.labels(box.sink.name, "spool").set(buffered[1])
        self._commit_durable()

    def _flush(self, box: Outbox, retry: _Retry) -> None:
        name = box.sink.name
        try:
            box.flush()
        except SinkError as exc:
            retry.attempts += 1
            delay = self._backoff(retry.attempts, exc)
            retry.not_before = time.monotonic() + delay
            self.metrics.sink_up.labels(name).set(0)
            self.metrics.sink_errors.labels(name).inc()
            self.health.sink(name, up=False, error=str(exc))
            log.warning(
                "%s write failed (attempt %d), retry in %.1fs: %s", name, retry.attempts, delay, exc
            )
            return
        if retry.attempts:
            log.info("%s recovered after %d failed attempts", name, retry.attempts)
        retry.attempts = 0
        self.metrics.sink_up.labels(name).set(1)
        self.health.sink(name, up=True)

    def _commit_durable(self) -> None:
        """Commit every pending batch all outboxes acknowledged, in order, in one commit."""
        acked = min((box.acked() for box in self.outboxes), default=self._seq)
        done: list[_Pending] = []
        while self._pending and self._pending[0].seq <= acked:
            done.append(self._pending.popleft())
        if not done:
            return
        offsets: dict[TopicPartitionKey, int] = {}
        for item in done:
            offsets.update(item.offsets)  # later batches carry later offsets
        if self.checkpoints is not None:
            self.checkpoints.delivered_up_to(offsets)
        try:
            self.source.commit_offsets(offsets)
        except SourceError as exc:
            # Typically a rebalance took the partitions: the alerts are durable and the new
            # owner re-scores from its checkpoint into the same alert ids.
            log.warning("%s; the partitions' new owner re-scores these events", exc)
            return
        self.metrics.commits.inc()
        self.health.committed()
        self.batches += len(done)
        self.events += sum(item.events for item in done)
        self._observe_latency([stamp for item in done for stamp in item.stamps])
        alerts = [doc for item in done for doc in item.alerts]
        if self.on_alerts and alerts:
            self.on_alerts(alerts)

    def _write_dead_letters(self, rejected: list) -> None:
        """Dead letters go to the same cluster we read from: retry (paused) until written."""
        if not rejected:
            return
        for reason, msg in rejected:
            self.dead_letter.add(reason, msg)
            self.metrics.dead_lettered.labels(msg.topic).inc()
        attempt = 0
        while True:
            try:
                self.dead_letter.flush()
                break
            except SinkError as exc:
                attempt += 1
                self.source.pause()
                delay = self._backoff(attempt, exc)
                log.warning(
                    "dead-letter write failed (attempt %d), retry in %.1fs: %s", attempt, delay, exc
                )
                self._wait(delay)
        if attempt and not self._paused:
            self.source.resume()

    def _apply_backpressure(self) -> None:
        """Pause consumption while any spool is full; resume once all have room."""
        full = [box.sink.name for box in self.outboxes if box.full()]
        if full and not self._paused:
            log.warning("outbox full for %s: pausing consumption", ", ".join(full))
        if full or not self._paused:
            if full:
                self.source.pause()  # again after a rebalance may have added partitions
            self._paused = bool(full)
        else:
            log.info("outboxes have room: resuming consumption")
            self.source.resume()
            self._paused = False
        self.metrics.backpressure.set(1 if self._paused else 0)
        self.health.paused = self._paused

    # -- shutdown -------------------------------------------------------------------------

    def _shutdown(self) -> int:
        """Deliver what is queued within the deadline, commit, checkpoint."""
        deadline = time.monotonic() + self.shutdown_deadline_s
        while self._pending:
            self._deliver(force=True)
            if not self._pending or time.monotonic() >= deadline:
                break
            self._wait(min(1.0, max(0.0, deadline - time.monotonic())))
        if self._pending:
            undelivered = sum(item.events for item in self._pending)
            log.warning(
                "shutdown deadline passed: alerts of %d scored events undelivered and not"
                " committed; they are re-scored at the next start",
                undelivered,
            )
            return 3
        if self.checkpoints is not None:
            self.checkpoints.save_all()  # everything processed is durable: resume here
        return 0

    # -- helpers --------------------------------------------------------------------------

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
            self.health.beat()
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))

    def _update_lag(self) -> None:
        try:
            for topic, lag in self.source.lag().items():
                self.metrics.consumer_lag.labels(topic).set(lag)
        except KafkaError as exc:  # lag is advisory; a failed lookup must not stop scoring
            log.debug("consumer lag lookup failed: %s", exc)

    def _observe_latency(self, stamps: list[tuple[str, float]]) -> None:
        now = time.time()
        for model, ts in stamps:
            self.metrics.alert_latency.labels(model).observe(max(0.0, now - ts))


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()
