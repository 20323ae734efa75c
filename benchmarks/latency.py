"""Section d: event-to-alert latency through the daemon at a fixed produce rate.

History is produced first and consumed (baselines, warm-up, group join); then a
separate process produces the rest of the generated stream (attacks included) at a
fixed rate, stamping each message's wall-clock produce time by its Kafka offset.
The daemon's ``on_alerts`` callback fires after a batch's alerts are durable and its
offsets committed: latency = that moment - the produce stamp of the alert's source event.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from benchmarks.daemon_throughput import (
    MODELS_DIR,
    TOPICS,
    DaemonThread,
    produce,
    with_backend,
)
from benchmarks.sections import Section, num
from detector.demo import Broker, local_settings
from detector.modeldefs import load_models
from detector.synth import generate

REPO = Path(__file__).resolve().parents[1]
EVENTS_PER_DAY = 20_000
Offset = tuple[str, int, int]  # topic, partition, offset


@dataclass
class LatencyRun:
    backend: str
    rate: float  # achieved produce rate, messages/s
    drained: float  # live messages / (last commit - first produce): below ``rate`` = lagging
    produced: int
    latencies: np.ndarray  # seconds, one per alert on a live-phase event


def stream_split(live_events: int, history_events: int, seed: int) -> tuple[list, list]:
    """(history, live) messages; the live part is the last ``live_events`` and holds the
    attacks, which the generator plans in the last 20 % of the timeline."""
    days = (history_events + live_events) / EVENTS_PER_DAY
    msgs = list(generate(seed=seed, days=days, events_per_day=EVENTS_PER_DAY))
    live = min(live_events, len(msgs) - 1)
    return msgs[:-live], msgs[-live:]


class AlertClock:
    """``on_alerts`` callback: when each alert's source offset became a durable alert."""

    def __init__(self) -> None:
        self.at: dict[Offset, float] = {}

    def __call__(self, alerts: list[dict]) -> None:
        now = time.time()
        for doc in alerts:
            k = doc["auditwatch"]["source_event"].get("kafka")
            if k:
                self.at.setdefault((k["topic"], k["partition"], k["offset"]), now)


def run_latency(
    work: Path, backend: str, rate: float, seconds: float, history: int, seed: int = 11
) -> LatencyRun:
    work.mkdir(parents=True, exist_ok=True)
    past, live = stream_split(int(rate * seconds), history, seed)
    records = work / "live.tsv"
    records.write_bytes(b"\n".join(b"\t".join((m.topic.encode(), m.key, m.value)) for m in live))
    broker = Broker(work / "broker.log")
    try:
        broker.create_topics(TOPICS)
        produce(broker.bootstrap, [(m.topic, m.key, m.value) for m in past])
        settings = local_settings(broker.bootstrap, "bench-latency", work / "alerts.db", None)
        clock = AlertClock()
        daemon = DaemonThread(with_backend(settings, backend), load_models(MODELS_DIR), clock)
        daemon.start()
        try:
            daemon.until_consumed(len(past), 600)
            _produce_in_child(broker.bootstrap, records, rate, work / "stamps.jsonl")
            finished = daemon.until_consumed(len(past) + len(live), 600)
            finished_wall = time.time() - (time.perf_counter() - finished)
        finally:
            daemon.join()
    finally:
        broker.stop()
    stamps = [orjson.loads(x) for x in (work / "stamps.jsonl").read_bytes().splitlines()]
    lat = [clock.at[(t, p, o)] - s for t, p, o, s in stamps if (t, p, o) in clock.at]
    sent = sorted(s[3] for s in stamps)
    achieved = (len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 else float("nan")
    drained = len(live) / (finished_wall - sent[0]) if sent else float("nan")
    return LatencyRun(backend, achieved, drained, len(live), np.asarray(lat))


def _produce_in_child(bootstrap: str, records: Path, rate: float, stamps: Path) -> None:
    """A separate process, so producing never competes with the daemon for the GIL."""
    argv = [sys.executable, "-m", "benchmarks.paced_producer", bootstrap, str(records), str(rate)]
    subprocess.run([*argv, str(stamps)], cwd=REPO, check=True, timeout=3600)


COLUMNS = (
    "backend",
    "produced",
    "produce ev/s",
    "daemon ev/s",
    "alerts measured",
    "p50 s",
    "p99 s",
    "max s",
)


def measure(
    section: Section, backends: list[str], rate: float, seconds: float, history: int, work: Path
) -> None:
    section.intro.append(
        f"{history:,} events of generated history first (consumed before timing starts), then "
        f"{rate * seconds:,.0f} live events (all three topics, attacks included) produced at "
        f"{rate:,.0f} events/s for {seconds:g} s by a separate process."
    )
    for backend in backends:
        try:
            run = run_latency(work / backend, backend, rate, seconds, history)
        except Exception as exc:  # the other backend's row still counts
            section.unavailable(backend, exc)
            continue
        lat = run.latencies
        q = np.quantile(lat, [0.5, 0.99]) if lat.size else [float("nan")] * 2
        section.add_row(
            backend,
            f"{run.produced:,}",
            num(run.rate),
            num(run.drained),
            f"{lat.size:,}",
            num(q[0], 3),
            num(q[1], 3),
            num(float(lat.max()) if lat.size else float("nan"), 3),
        )
    section.notes += [
        "- Latency = `on_alerts` time (after the SQLite flush and the offset commit) minus "
        "the wall-clock time just before `producer.send` of the alert's source event "
        "(matched by topic/partition/offset); producer linger 5 ms and the consumer's "
        "fetch wait (100 ms) and poll timeout (300 ms) are included.",
        "- daemon ev/s = live events / (last commit - first produce). Below the produce rate "
        "the daemon fell behind and latency grows with the run's length (queueing), so the "
        "percentiles then measure the backlog, not the pipeline's own delay.",
    ]
