"""Events/s of `auditwatch score` and of the daemon through the bundled Kafka-compatible broker.

    python -m benchmarks.daemon_throughput FILE.jsonl

Produces FILE's lines to a fresh Tansu broker (topic chosen per format), runs the real
daemon loop in a thread and times it from the first batch received to the last batch
committed (the consumer-group join is not counted), for every Kafka backend the
settings offer (``kafka.backend``), and prints events/s for both paths.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from detector.config import KafkaSettings, Settings
from detector.demo import Broker, local_settings
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec, load_models
from detector.offline import ScoreSummary, score_files
from detector.runtime import run_daemon
from detector.sources import make_source

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
TOPICS = ["cloudtrail", "ecs", "inference", "auditwatch-dead-letter"]
SAMPLE_S = 0.01  # how often the watcher reads the daemon's counters
LAST_BATCH_S = 10.0  # a batch (<= max_poll_records) is processed well within this
DEFAULT_BACKEND = "kafka-python"


def topic_of(line: bytes) -> str:
    if b"gen_ai" in line:
        return "inference"
    return "cloudtrail" if b"eventSource" in line else "ecs"


def kafka_backends() -> list[str]:
    """The Kafka client backends ``KafkaSettings`` accepts (just kafka-python before the
    ``backend`` setting existed)."""
    field = KafkaSettings.model_fields.get("backend")
    if field is None:
        return [DEFAULT_BACKEND]
    return [str(v) for v in typing.get_args(field.annotation)] or [DEFAULT_BACKEND]


def with_backend(settings: Settings, backend: str) -> Settings:
    """``settings`` with ``kafka.backend`` set (validated: a missing package raises)."""
    if "backend" not in KafkaSettings.model_fields:
        return settings
    kafka = KafkaSettings.model_validate({**settings.kafka.model_dump(), "backend": backend})
    return settings.model_copy(update={"kafka": kafka})


def counter_total(registry: CollectorRegistry, sample: str) -> float:
    """Sum of one sample name over all label values."""
    return sum(s.value for m in registry.collect() for s in m.samples if s.name == sample)


def histogram_sum(registry: CollectorRegistry, sample: str, **labels: str) -> float:
    return registry.get_sample_value(sample, labels) or 0.0


@dataclass
class DaemonRun:
    """One daemon pass over messages already in the broker."""

    backend: str
    messages: int
    seconds: float  # first batch received -> last batch committed
    parse_s: float  # auditwatch_stage_duration_seconds sums over the run
    score_s: float
    alerts: int
    consume_only_s: float | None = None  # the same backend reading and committing, nothing else

    @property
    def events_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("nan")


def produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    for topic, key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``predicate`` every SAMPLE_S; the time it became true (perf_counter)."""
    deadline = time.perf_counter() + timeout_s
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout_s:.0f} s")
        time.sleep(SAMPLE_S)
    return time.perf_counter()


class DaemonThread:
    """The real daemon (``run_daemon``) in a thread, watched through its metrics."""

    def __init__(
        self,
        settings: Settings,
        specs: list[ModelSpec],
        on_alerts: Callable[[list[dict]], None] | None = None,
    ) -> None:
        self.metrics = Metrics(CollectorRegistry())
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.alerts = 0
        self._on_alerts = on_alerts
        self._thread = threading.Thread(
            target=self._run, args=(settings, specs), name="bench-daemon", daemon=True
        )

    def _run(self, settings: Settings, specs: list[ModelSpec]) -> None:
        try:
            run_daemon(settings, specs, self.stop, self.metrics, on_alerts=self._alerted)
        except BaseException as exc:  # reported by join(); the benchmark row says why
            self.error = exc

    def _alerted(self, alerts: list[dict]) -> None:
        self.alerts += len(alerts)
        if self._on_alerts:
            self._on_alerts(alerts)

    def start(self) -> None:
        self._thread.start()

    def consumed(self) -> float:
        return counter_total(self.metrics.registry, "auditwatch_events_consumed_total")

    def commits(self) -> float:
        return counter_total(self.metrics.registry, "auditwatch_offset_commits_total")

    def until_consumed(self, n: int, timeout_s: float) -> float:
        """Wait until ``n`` messages were consumed and their batch committed; return when."""
        seen: list[float] = []

        def all_consumed() -> bool:
            if self.error is not None:
                raise RuntimeError(f"daemon failed: {self.error!r}") from self.error
            commits = self.commits()  # read first: the last commit may land just after
            if self.consumed() < n:
                return False
            seen.append(commits)
            return True

        consumed_at = wait_for(all_consumed, timeout_s, f"{n} messages consumed")
        try:
            return wait_for(lambda: self.commits() > seen[0], LAST_BATCH_S, "last commit")
        except TimeoutError:  # the last batch was consumed and committed within one sample
            return consumed_at

    def stopped(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout_s: float = 60.0) -> None:
        self.stop.set()
        self._thread.join(timeout_s)
        if self.error is not None:
            raise RuntimeError(f"daemon failed: {self.error!r}") from self.error

    def stage_seconds(self, stage: str) -> float:
        return histogram_sum(
            self.metrics.registry, "auditwatch_stage_duration_seconds_sum", stage=stage
        )


def through_kafka(
    lines: list[bytes], work: Path, backend: str = DEFAULT_BACKEND, timeout_s: float = 600
) -> DaemonRun:
    """Produce ``lines`` to a fresh broker, then time the daemon consuming them all."""
    work.mkdir(parents=True, exist_ok=True)
    broker = Broker(work / "broker.log")
    try:
        broker.create_topics(TOPICS)
        produce(broker.bootstrap, [(topic_of(line), None, line) for line in lines])
        settings = local_settings(broker.bootstrap, "bench", work / "alerts.db", None)
        daemon = DaemonThread(with_backend(settings, backend), load_models(MODELS_DIR))
        daemon.start()
        try:
            started = wait_for(lambda: daemon.consumed() > 0 or daemon.stopped(), 120, "start")
            finished = daemon.until_consumed(len(lines), timeout_s)
        finally:
            daemon.join()
        parse_s, score_s = daemon.stage_seconds("parse"), daemon.stage_seconds("score")
        alone = consume_only(with_backend(settings, backend), len(lines), timeout_s)
        return DaemonRun(
            backend, len(lines), finished - started, parse_s, score_s, daemon.alerts, alone
        )
    finally:
        broker.stop()


def consume_only(settings: Settings, n: int, timeout_s: float) -> float:
    """Seconds the daemon's Kafka source takes to read ``n`` messages and commit each batch,
    with no processing: the client's own ceiling. A fresh group reads the topics from the
    start; timed from the first batch received to the last batch committed, as the daemon."""
    kafka = settings.kafka.model_copy(update={"group_id": f"{settings.kafka.group_id}-alone"})
    source = make_source(kafka, [t for t in TOPICS if not t.endswith("dead-letter")])
    try:
        deadline = time.perf_counter() + timeout_s
        got, started = 0, None
        while got < n:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"consumer alone: {got} of {n} messages in {timeout_s:.0f} s")
            batch = source.poll()
            if batch:
                started = started or time.perf_counter()
                got += len(batch)
                source.commit(batch)
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        source.close()


def score_file(path: Path, work: Path) -> ScoreSummary:
    """``auditwatch score`` over ``path`` with the shipped models."""
    return score_files(
        Settings(),
        load_models(MODELS_DIR),
        [path],
        work / "scores.jsonl",
        work / "alerts.jsonl",
        work / "dead-letter.jsonl",
        progress=False,
    )


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        summary = score_file(path, work)
        print(f"score: {summary.events} events, {summary.events / summary.seconds:,.0f} events/s")
        lines = [line.rstrip(b"\n") for line in path.open("rb") if line.strip()]
        for backend in kafka_backends():
            run = through_kafka(lines, work / backend, backend)
            print(
                f"run through Kafka ({backend}): {run.messages} events, "
                f"{run.events_per_s:,.0f} events/s (first batch to last commit)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
