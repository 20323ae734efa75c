"""Section c: seconds per 10k events in each pipeline stage, per model.

Each topic's generated messages go through the daemon's ``Pipeline`` in Kafka-sized
batches, then to the SQLite alert sink (add + durable flush), as the daemon does
(after a throwaway pipeline ran the first messages, so one-time JIT work is not counted),
each topic in a fresh process.
Parse and the whole score stage come from ``auditwatch_stage_duration_seconds``
(a fresh registry); inside the score stage the featurizer, the detector and the alert
builder are timed by wrapping those methods on the runner instances.
"""

from __future__ import annotations

import gc
import multiprocessing
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from benchmarks.daemon_throughput import MODELS_DIR, histogram_sum
from benchmarks.sections import Section, num
from detector.app import build_pipeline
from detector.config import Settings
from detector.metrics import Metrics
from detector.modeldefs import load_models
from detector.pipeline import Pipeline, RawMessage
from detector.runner import ModelRunner
from detector.sinks.sqlite import SqliteSink
from detector.synth import Message

BATCH = 2_000  # KafkaSettings.max_poll_records default
WARM_UP = 1_500  # messages through a throwaway pipeline first: past the detector's warm-up
TOPICS = ("cloudtrail", "ecs", "inference")
STAGES = (
    ("parse", "parse (bytes -> Event)"),
    ("features", "features (featurizer)"),
    ("detector", "score: detector score + learn"),
    ("decide", "score: calibration, threshold, bookkeeping"),
    ("alert", "alert (explanation + ECS document)"),
    ("sink", "sink (SQLite add + durable flush)"),
    ("other", "other (routing, metrics, GC after the batch)"),
    ("total", "total"),
)


class StageClock:
    """Accumulates wall time of wrapped methods, per stage; a call made from inside
    the same stage (``learn`` may call the detector's own ``score``) is counted once."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._active: set[str] = set()

    def wrap(self, obj: Any, attr: str, stage: str) -> None:
        fn: Callable[..., Any] = getattr(obj, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if stage in self._active:
                return fn(*args, **kwargs)
            self._active.add(stage)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started
                self._active.discard(stage)

        setattr(obj, attr, timed)

    def instrument(self, pipeline: Pipeline) -> None:
        """Wrap each runner the pipeline creates, as it creates it."""
        make_runner = pipeline.runner

        def runner(*args: Any) -> ModelRunner:
            r = make_runner(*args)
            if not getattr(r, "_bench_timed", False):
                self.wrap(r.featurizer, "featurize", "features")
                for method in ("score", "learn", "score_memo", "learn_memo"):
                    self.wrap(r.detector, method, "detector")
                self.wrap(r, "_alert", "alert")
                r._bench_timed = True  # type: ignore[attr-defined]
            return r

        pipeline.runner = runner  # type: ignore[method-assign,assignment]


def warm_up(msgs: Sequence[Message]) -> None:
    """Compile/load numba kernels and fill process-wide caches outside the timed run."""
    pipeline = build_pipeline(Settings(), load_models(MODELS_DIR), Metrics(CollectorRegistry()))
    pipeline.process([RawMessage(m.topic, 0, i, m.value) for i, m in enumerate(msgs[:WARM_UP])])


def time_topic(msgs: Sequence[Message], work: Path) -> tuple[dict[str, float], int, int, str]:
    """Stage seconds, events, alerts and the model name for one topic's messages."""
    warm_up(msgs)
    gc.collect()
    gc.freeze()  # the messages held here are not the pipeline's: keep them out of its GC cost
    metrics = Metrics(CollectorRegistry())
    pipeline = build_pipeline(Settings(), load_models(MODELS_DIR), metrics)
    clock = StageClock()
    clock.instrument(pipeline)
    sink = SqliteSink(work / f"alerts-{msgs[0].topic}.db")
    events = alerts = 0
    started = time.perf_counter()
    try:
        for lo in range(0, len(msgs), BATCH):
            batch = [
                RawMessage(m.topic, 0, lo + i, m.value) for i, m in enumerate(msgs[lo : lo + BATCH])
            ]
            result = pipeline.process(batch)
            t0 = time.perf_counter()
            sink.add(result.alerts)
            sink.flush()
            clock.seconds["sink"] += time.perf_counter() - t0
            events, alerts = events + result.events, alerts + len(result.alerts)
    finally:
        sink.close()
    s = clock.seconds
    reg = metrics.registry
    s["total"] = time.perf_counter() - started
    s["parse"] = histogram_sum(reg, "auditwatch_stage_duration_seconds_sum", stage="parse")
    score_stage = histogram_sum(reg, "auditwatch_stage_duration_seconds_sum", stage="score")
    s["decide"] = score_stage - s["features"] - s["detector"] - s["alert"]
    s["other"] = s["total"] - s["parse"] - score_stage - s["sink"]
    model = next(iter(pipeline.runners))[0] if pipeline.runners else "?"
    return dict(s), events, alerts, model


def in_fresh_process(msgs: Sequence[Message], work: Path) -> tuple[dict[str, float], int, int, str]:
    """``time_topic`` in a new interpreter: earlier sections leave threads (Kafka clients,
    a JVM) and a large heap behind that would be billed to this section's stages."""
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        return pool.submit(time_topic, list(msgs), work).result()


def measure(section: Section, msgs: Sequence[Message], per_topic: int, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    for topic in TOPICS:
        part = [m for m in msgs if m.topic == topic][:per_topic]
        try:
            if not part:
                raise LookupError(f"no generated {topic} messages")
            results[topic] = in_fresh_process(part, work)
        except Exception as exc:  # the other models' columns still count
            results[topic] = exc  # type: ignore[assignment]
    _fill(section, results)


def _fill(section: Section, results: dict[str, Any]) -> None:
    ok = {t: r for t, r in results.items() if not isinstance(r, Exception)}
    section.columns = ("stage, s per 10k events", *(f"{r[3]} ({t})" for t, r in ok.items()))
    for key, label in STAGES:
        section.add_row(label, *(num(r[0][key] * 10_000 / max(r[1], 1), 3) for r in ok.values()))
    section.add_row("events/s (1 / total)", *(num(r[1] / r[0]["total"]) for r in ok.values()))
    section.add_row("events (alerts)", *(f"{r[1]:,} ({r[2]:,})" for r in ok.values()))
    for topic, r in results.items():
        if isinstance(r, Exception):
            section.unavailable(topic, r)
