"""Alert sink writing to an embedded SQLite file (the default when no Elasticsearch).

One row per alert id (``INSERT OR REPLACE``: re-delivery never duplicates), the
whole document as JSON in ``doc`` plus a few columns for listing. WAL mode with
``synchronous=FULL``: a ``flush()`` that returned survives a crash or power loss.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from detector.errors import BackpressureError, SinkError
from detector.sinks.base import AlertDoc, alert_id, alert_time, backoff_seconds

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    timestamp TEXT,
    rule_name TEXT,
    severity REAL,
    entity TEXT,
    message TEXT,
    doc TEXT
);
CREATE INDEX IF NOT EXISTS alerts_timestamp ON alerts (timestamp);
"""
INSERT = "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?)"
BUSY_TIMEOUT_S = 5.0

Row = tuple[str, str, str | None, float | None, str | None, str | None, str]


def _get(doc: Mapping[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def to_row(doc: AlertDoc) -> Row:
    """The table row for one alert; ``timestamp`` is normalised to UTC ISO-8601 with ``Z``.

    ``severity`` is ``event.risk_score`` (0-100), falling back to ``auditwatch.score.severity``.
    """
    severity = _get(doc, "event.risk_score")
    if severity is None:
        severity = _get(doc, "auditwatch.score.severity")
    timestamp = alert_time(doc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (
        alert_id(doc),
        timestamp,
        _get(doc, "rule.name"),
        float(severity) if isinstance(severity, int | float) else None,
        _get(doc, "auditwatch.entity.key"),
        _get(doc, "message"),
        orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
    )


class SqliteSink:
    """Buffers alerts and writes them in one transaction per ``flush()``.

    Not thread-safe: the connection belongs to the thread that created the sink.
    """

    name = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise SinkError(f"cannot open alert store {self.path}: {exc}") from exc
        self._buffer: dict[str, Row] = {}
        self._failures = 0

    def add(self, alerts: Sequence[AlertDoc]) -> None:
        for doc in alerts:
            row = to_row(doc)
            self._buffer[row[0]] = row

    def flush(self) -> None:
        if not self._buffer:
            return
        try:
            with self._conn:  # one transaction: commits on success, rolls back on error
                self._conn.executemany(INSERT, list(self._buffer.values()))
        except sqlite3.OperationalError as exc:
            self._failures += 1
            if "locked" in str(exc) or "busy" in str(exc):
                retry_after = backoff_seconds(self._failures)
                raise BackpressureError(f"alert store busy: {exc}", retry_after) from exc
            raise SinkError(f"writing alerts to {self.path} failed: {exc}") from exc
        except sqlite3.Error as exc:
            self._failures += 1
            raise SinkError(f"writing alerts to {self.path} failed: {exc}") from exc
        self._buffer.clear()
        self._failures = 0

    def close(self) -> None:
        self._conn.close()

    @staticmethod
    def read_alerts(path: str | Path, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` alert documents (by ``@timestamp``), newest first.

        Opens the file read-only; raises SinkError if it does not exist or is no alert store.
        """
        uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
            try:
                rows = conn.execute(
                    "SELECT doc FROM alerts ORDER BY timestamp DESC, id LIMIT ?", (limit,)
                ).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise SinkError(f"cannot read alerts from {path}: {exc}") from exc
        return [orjson.loads(doc) for (doc,) in rows]
