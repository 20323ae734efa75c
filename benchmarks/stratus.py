"""The shipped CloudTrail model on real CloudTrail: the Stratus Red Team detonations in
``../shared/data/cloudtrail/invictus_stratus`` (2,900 records, labels in ``labels.csv``;
an event is an attack when ``label_attack`` is 1: a call made by the Stratus SDK).

Runs the daemon's pipeline (shipped models, default settings) over the records in file
order, in blocks of the model's ``block_size``, and prints the alerts and the ROC AUC of the
severities against the labels over the events scored after the model's warm-up (learning
only, then calibration: severity 0 for every event)::

    python -m benchmarks.stratus
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.generated import MODELS_DIR, model_for
from benchmarks.measure import machine_facts
from benchmarks.streams import DATA_DIR
from detector.metrics import Metrics
from detector.modeldefs import load_models
from detector.parsers import ParseOptions
from detector.pipeline import Pipeline, RawMessage

STRATUS = DATA_DIR / "cloudtrail" / "invictus_stratus"
TOPIC = "cloudtrail"


def labels(path: Path) -> dict[str, int]:
    with path.open(newline="") as f:
        return {row["eventID"]: int(row["label_attack"]) for row in csv.DictReader(f)}


def score(lines: list[bytes]) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """(severity per event, whether the model was past its warm-up for it, event ids,
    alerts), blocks aligned with the runner's learning blocks."""
    spec = model_for(TOPIC)
    pipeline = Pipeline(load_models(MODELS_DIR), ParseOptions(), Metrics(), None, True)
    block = spec.detector.block_size
    severity, warm, ids, alerts = [], [], [], 0
    for lo in range(0, len(lines), block):
        runner = pipeline.runner(spec, TOPIC, 0)
        ready = runner.seen >= spec.detector.warmup_events and runner.calibrator.ready
        raw = [RawMessage(TOPIC, 0, lo + i, v) for i, v in enumerate(lines[lo : lo + block])]
        result = pipeline.process(raw)
        if result.rejected:
            raise ValueError(f"{len(result.rejected)} records rejected: {result.rejected[0][0]}")
        severity += [s for _, _, s in result.scores]
        ids += [event_id for event_id, _, _ in result.scores]
        warm += [ready] * len(result.scores)
        alerts += len(result.alerts)
    return np.asarray(severity), np.asarray(warm), ids, alerts


def main(argv: list[str] | None = None) -> int:
    lines = (STRATUS / "events_sorted.jsonl").read_bytes().splitlines()
    truth = labels(STRATUS / "labels.csv")
    severity, warm, ids, alerts = score(lines)
    y = np.asarray([truth[i] for i in ids])
    auc = roc_auc_score(y[warm], severity[warm])
    facts = machine_facts()
    print(f"{len(ids):,} events, {int(y.sum())} attack events (Stratus SDK calls); {alerts} alerts")
    print(
        f"after the warm-up ({int((~warm).sum()):,} events): {int(warm.sum()):,} events, "
        f"{int(y[warm].sum())} attack events, ROC AUC {auc:.2f}"
    )
    print(f"commit {facts['auditwatch commit']}, {facts['date (UTC)']} UTC")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
