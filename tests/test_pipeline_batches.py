"""Pipeline batches: results do not depend on how messages are cut into batches or
interleaved across partitions, and every alert points at the message it came from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
from factories import process_in_batches

from detector.metrics import Metrics
from detector.modeldefs import load_models
from detector.parsers import ParseOptions
from detector.pipeline import BatchResult, Pipeline, RawMessage
from detector.synth import generate

REPO = Path(__file__).resolve().parents[1]


def values(n: int) -> list[bytes]:
    """A mixed stream (CloudTrail, ECS, inference) with attacks, plus two bad messages."""
    out = [m.value for m in generate(seed=5, days=2.0, events_per_day=n // 2)][:n]
    out[100:100] = [b"not json", b'{"user.name": "x"}']  # invalid_json, missing_field
    return out


def run(
    msgs: Sequence[bytes], batch: int, partitions: int = 1, budget: float | None = None
) -> BatchResult:
    """All messages through one pipeline (models chosen by format), ``batch`` at a time;
    message i goes to partition ``i % partitions`` with offset ``i // partitions``.
    ``budget`` (alerts per 10k) overrides the models' alert budget."""
    specs = load_models(REPO / "models")
    if budget is not None:
        specs = [
            s.model_copy(update={"alerts": s.alerts.model_copy(update={"budget_per_10k": budget})})
            for s in specs
        ]
    pipeline = Pipeline(specs, ParseOptions(), Metrics(), None, False)
    raw = [RawMessage("mixed", i % partitions, i // partitions, v) for i, v in enumerate(msgs)]
    return process_in_batches(pipeline, raw, batch)


def by_model(result: BatchResult) -> dict[str, list[tuple[str, str, float]]]:
    out: dict[str, list[tuple[str, str, float]]] = {}
    for row in result.scores:
        out.setdefault(row[1], []).append(row)
    return out


def test_scores_and_alerts_do_not_depend_on_batching() -> None:
    msgs = values(9_000)
    whole, cut = run(msgs, 4_096), run(msgs, 333)
    assert whole.events == cut.events == len(msgs) - 2
    assert by_model(whole) == by_model(cut)
    assert {m for _, m, _ in whole.scores} == {"cloudtrail-access", "ecs-access", "inference"}
    alert_ids = sorted(a["event"]["id"] for a in whole.alerts)
    assert alert_ids and alert_ids == sorted(a["event"]["id"] for a in cut.alerts)
    assert [(r.reason, m.offset) for r, m in whole.rejected] == [
        ("invalid_json", 100),
        ("missing_field", 101),
    ]


def test_alerts_point_at_their_message_across_partitions() -> None:
    msgs = values(9_000)
    result = run(msgs, 1_000, partitions=2, budget=1_000)  # many alerts: what matters is where
    assert len(result.alerts) > 10
    for doc in result.alerts:
        kafka = doc["auditwatch"]["source_event"]["kafka"]
        assert kafka["topic"] == "mixed"
        index = kafka["offset"] * 2 + kafka["partition"]
        text = orjson.dumps(orjson.loads(msgs[index]))
        assert doc["auditwatch"]["source_event"]["id"].encode() in text


def test_unrouted_events_dead_letter_their_whole_message_once() -> None:
    """With no CloudTrail model, a CloudTrail file (one message, three events) is
    dead-lettered once with its original bytes, and counted as three events."""
    record = {
        "eventVersion": "1.08",
        "eventTime": "2024-03-01T12:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "userIdentity": {"type": "IAMUser", "userName": "alice"},
    }
    ct_file = orjson.dumps({"Records": [dict(record, eventID=f"e{i}") for i in range(3)]})
    ct_single = orjson.dumps(dict(record, eventID="e9"))
    ecs = orjson.dumps({"@timestamp": "2024-03-01T12:00:00Z", "user.name": "bob"})
    specs = [s for s in load_models(REPO / "models") if "cloudtrail" not in s.accepted_formats]
    metrics = Metrics()
    pipeline = Pipeline(specs, ParseOptions(), metrics, None, False)
    msgs = [RawMessage("audit", 0, i, v) for i, v in enumerate([ct_file, ecs, ct_single])]
    result = pipeline.process(msgs)
    assert [(r.reason, m.offset, m.value, r.original) for r, m in result.rejected] == [
        ("no_model", 0, ct_file, ct_file),
        ("no_model", 2, ct_single, ct_single),
    ]
    assert "3 cloudtrail event(s)" in result.rejected[0][0].detail
    assert result.events == 1 and result.scores[0][0] != "e0"
    labels = {"stream": "audit", "reason": "no_model"}
    assert metrics.registry.get_sample_value("auditwatch_parse_errors_total", labels) == 4
