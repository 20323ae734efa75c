"""The sink contract and the helpers every sink shares.

A sink buffers alert documents in ``add()`` and makes them durable in
``flush()``. The pipeline commits Kafka offsets only after every sink flushed,
so ``flush()`` either returns with the whole buffer durable or raises
``SinkError`` (``BackpressureError`` when a retry after ``retry_after`` seconds
may succeed) and keeps what is not yet durable for the next ``flush()``.
Writes are keyed by the alert id, so re-delivering an alert is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from detector.errors import SinkError

AlertDoc = Mapping[str, Any]

MAX_RETRY_AFTER = 30.0


@runtime_checkable
class Sink(Protocol):
    """Where alert documents go: Elasticsearch, SQLite, JSON lines."""

    name: str  # low-cardinality metric label: "elasticsearch", "sqlite", "jsonl"

    def add(self, alerts: Sequence[AlertDoc]) -> None:
        """Buffer ``alerts``; no I/O. Raises SinkError for a doc without id or timestamp."""

    def flush(self) -> None:
        """Durable on return, or raises SinkError / BackpressureError(retry_after)."""

    def close(self) -> None:
        """Release connections and files; does not flush."""


def alert_id(doc: AlertDoc) -> str:
    """The alert's id, ``doc["event"]["id"]``; SinkError if missing or empty.

    >>> alert_id({"event": {"id": "ab12"}})
    'ab12'
    """
    event = doc.get("event")
    value = event.get("id") if isinstance(event, Mapping) else None
    if not isinstance(value, str) or not value:
        raise SinkError("alert document has no event.id")
    return value


def alert_time(doc: AlertDoc) -> datetime:
    """``doc["@timestamp"]`` (the source event time) as an aware UTC datetime.

    A timestamp without offset is taken as UTC.

    >>> alert_time({"@timestamp": "2026-11-23T23:59:59.9-01:00"}).isoformat()
    '2026-11-24T00:59:59.900000+00:00'
    """
    raw = doc.get("@timestamp")
    try:
        parsed = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise SinkError(f"alert document has no valid @timestamp: {raw!r}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def daily_index(prefix: str, doc: AlertDoc) -> str:
    """``{prefix}-YYYY.MM.DD`` from the UTC day of ``@timestamp``.

    >>> daily_index("auditwatch-alerts", {"@timestamp": "2026-11-23T03:12:45.123Z"})
    'auditwatch-alerts-2026.11.23'
    """
    return f"{prefix}-{alert_time(doc):%Y.%m.%d}"


def backoff_seconds(failures: int, base: float = 1.0) -> float:
    """Retry delay after ``failures`` consecutive failures: 1, 2, 4, ... capped at 30 s.

    >>> [backoff_seconds(n) for n in (1, 2, 3, 10)]
    [1.0, 2.0, 4.0, 30.0]
    """
    return min(MAX_RETRY_AFTER, base * 2.0 ** max(0, failures - 1))
