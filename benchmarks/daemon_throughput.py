"""Events/s of `auditwatch score` and of the daemon through the bundled Kafka-compatible broker.

    python -m benchmarks.daemon_throughput FILE.jsonl

Produces FILE's lines to a fresh Tansu broker (topic chosen per format), runs the real
daemon loop until it has been idle for a few polls, and prints events/s for both paths.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from kafka import KafkaProducer

from detector.config import Settings
from detector.demo import Broker, local_settings
from detector.metrics import Metrics
from detector.modeldefs import load_models
from detector.offline import score_files
from detector.runtime import run_daemon

IDLE_POLLS = 8


def topic_of(line: bytes) -> str:
    if b"gen_ai" in line:
        return "inference"
    return "cloudtrail" if b"eventSource" in line else "ecs"


def through_kafka(path: Path, work: Path) -> tuple[int, float]:
    lines = [line.rstrip(b"\n") for line in path.open("rb") if line.strip()]
    broker = Broker(work / "broker.log")
    try:
        broker.create_topics(["cloudtrail", "ecs", "inference", "auditwatch-dead-letter"])
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
        for line in lines:
            producer.send(topic_of(line), value=line)
        producer.flush()
        producer.close()
        settings = local_settings(broker.bootstrap, "bench", work / "alerts.db", None)
        started = time.perf_counter()
        run_daemon(
            settings,
            load_models(Path("models")),
            threading.Event(),
            Metrics(),
            max_idle_polls=IDLE_POLLS,
        )
        elapsed = time.perf_counter() - started - IDLE_POLLS * 0.3
        return len(lines), elapsed
    finally:
        broker.stop()


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        summary = score_files(
            Settings(),
            load_models(Path("models")),
            [path],
            work / "s.jsonl",
            work / "a.jsonl",
            work / "dl.jsonl",
            progress=False,
        )
        print(f"score: {summary.events} events, {summary.events / summary.seconds:,.0f} events/s")
        n, seconds = through_kafka(path, work)
        print(
            f"run through Kafka: {n} events, {n / seconds:,.0f} events/s"
            " (includes the consumer-group join)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
