"""``auditwatch score``: the same pipeline over files, in order, for forensics and evaluation."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from tqdm import tqdm

from detector.app import build_pipeline
from detector.config import Settings
from detector.deadletter import FileDeadLetter
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec
from detector.pipeline import BatchResult, RawMessage
from detector.sinks.jsonl import JsonlSink
from detector.sources.files import iter_file_messages

BATCH = 4096
TOPIC = "files"  # files have no topic; every event is routed by its format alone
_BOUNDARY = b'},{"event_id":'  # between two score records in a dumped list


@dataclass
class ScoreSummary:
    messages: int = 0
    events: int = 0
    alerts: int = 0
    rejected: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        return (
            f"scored {self.events} events from {self.messages} messages in {self.seconds:.1f}s"
            f" ({rate:,.0f} events/s); {self.alerts} alerts; {self.rejected} rejected"
        )


def score_files(
    settings: Settings,
    specs: list[ModelSpec],
    files: Sequence[Path],
    scores_path: Path,
    alerts_path: Path,
    dead_letter_path: Path,
    progress: bool = True,
    metrics: Metrics | None = None,
) -> ScoreSummary:
    pipeline = build_pipeline(settings, specs, metrics or Metrics(), route_by_topic=False)
    started = time.perf_counter()  # kernel loading counts, as it did when done lazily
    for spec in specs:  # load compiled kernels now, so they are part of the start-up heap
        pipeline.runner(spec, TOPIC, 0)
    alerts_path.unlink(missing_ok=True)  # outputs describe this run only, like --scores
    alerts = JsonlSink(alerts_path)
    dead_letter = FileDeadLetter(dead_letter_path)
    summary = ScoreSummary()
    bar = tqdm(unit=" msg", disable=not progress, mininterval=1.0, file=None)
    scores_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with scores_path.open("wb") as scores_out, _startup_heap_frozen():
            for batch in _batches(files):
                result = pipeline.process(batch)
                _write(result, scores_out, alerts, dead_letter, summary)
                summary.messages += len(batch)
                bar.update(len(batch))
        alerts.flush()
        dead_letter.flush()
    finally:
        bar.close()
        alerts.close()
        dead_letter.close()
    summary.seconds = time.perf_counter() - started
    return summary


@contextmanager
def _startup_heap_frozen() -> Iterator[None]:
    """Keep the start-up heap (imports, compiled kernels: ~250k objects that live for the
    whole run) out of the cyclic collector's full passes, which would rescan all of it."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _batches(files: Sequence[Path]) -> Iterator[list[RawMessage]]:
    batch: list[RawMessage] = []
    for offset, (_path, _index, value) in enumerate(iter_file_messages(files)):
        batch.append(RawMessage(TOPIC, 0, offset, value))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def score_lines(scores: Sequence[tuple[str, str, float]]) -> bytes:
    """JSON lines ``{"event_id", "model", "score"}``, one per scored event.

    One ``orjson.dumps`` of the whole list, then a newline at each record boundary:
    4x cheaper than a call per event. The boundary ``},{"event_id":`` cannot occur
    inside a string value, where every ``"`` is escaped.
    """
    if not scores:
        return b""
    docs = [{"event_id": eid, "model": model, "score": round(sev, 3)} for eid, model, sev in scores]
    body = orjson.dumps(docs)[1:-1]  # the records, without the enclosing [ ]
    return body.replace(_BOUNDARY, b"}\n" + _BOUNDARY[2:]) + b"\n"


def _write(
    result: BatchResult,
    scores_out: object,
    alerts: JsonlSink,
    dead_letter: FileDeadLetter,
    summary: ScoreSummary,
) -> None:
    scores_out.write(score_lines(result.scores))  # type: ignore[attr-defined]
    alerts.add(result.alerts)
    for rejected, msg in result.rejected:
        dead_letter.add(rejected, msg)
    summary.events += result.events
    summary.alerts += len(result.alerts)
    summary.rejected += len(result.rejected)
