"""Shared event factories for unit tests."""

from __future__ import annotations

from detector.events import Event
from detector.pipeline import BatchResult, Pipeline, RawMessage

T0 = 1_763_600_000.0  # 2025-11-20 00:53 UTC, a Thursday


def access_event(i: int = 0, **overrides: object) -> Event:
    """A routine access event by 'alice' at 14:00 UTC-ish, from her usual network."""
    fields: dict[str, object] = {
        "timestamp": T0 + 13 * 3600 + i * 60.0,
        "event_id": f"ev-{i}",
        "source_format": "ecs",
        "entity": "alice",
        "user_name": "alice",
        "action": "db:select",
        "outcome": "success",
        "source_ip": "10.1.2.3",
        "network": "10.1.2.0/24",
        "country": "DE",
        "user_agent": "psql/16.1",
        "resource": f"/db/sales/table{i % 4}",
        "bytes_out": 40_000.0 + (i % 7) * 1_000,
        "rows": 100.0 + (i % 5),
    }
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


def inference_event(i: int = 0, **overrides: object) -> Event:
    fields: dict[str, object] = {
        "timestamp": T0 + i * 2.0,
        "event_id": f"inf-{i}",
        "source_format": "inference",
        "entity": "ak_1",
        "entity_type": "api_key",
        "peer_group": "api_key",
        "action": "inference:fraud",
        "model": "fraud",
        "input_vector": (0.1 * (i % 5), 1.0, -0.5 + 0.01 * (i % 10)),
        "confidence": 0.9,
        "entropy": 0.3,
        "input_tokens": 100.0,
        "output_tokens": 5.0,
    }
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


def process_in_batches(pipeline: Pipeline, raw: list[RawMessage], batch: int) -> BatchResult:
    """``raw`` through ``pipeline`` in batches of ``batch`` messages; results merged."""
    merged = BatchResult()
    for lo in range(0, len(raw), batch):
        result = pipeline.process(raw[lo : lo + batch])
        merged.scores += result.scores
        merged.alerts += result.alerts
        merged.rejected += result.rejected
        merged.events += result.events
    return merged
