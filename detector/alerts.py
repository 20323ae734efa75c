"""Alert documents in ECS, with deterministic ids (same input -> same id)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from detector.events import Event


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event came from: a Kafka record, or a line of a file."""

    topic: str
    partition: int
    offset: int


SEVERITY_LABELS = ((90.0, "critical"), (75.0, "high"), (60.0, "medium"), (0.0, "low"))


def severity_label(severity: float) -> str:
    """
    >>> severity_label(95), severity_label(61), severity_label(12)
    ('critical', 'medium', 'low')
    """
    return next(label for floor, label in SEVERITY_LABELS if severity >= floor)


def alert_id(model_name: str, model_version: str, source_event_id: str) -> str:
    """Deterministic: a re-delivered or re-scored event gives the same id (idempotent writes).

    >>> alert_id("m", "1", "e") == alert_id("m", "1", "e") != alert_id("m", "1", "f")
    True
    """
    text = f"{model_name}\x1f{model_version}\x1f{source_event_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def iso(ts: float) -> str:
    """
    >>> iso(0.25)
    '1970-01-01T00:00:00.250Z'
    """
    ms = round(ts * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Scored:
    """The verdict on one alerting event."""

    severity: float
    raw: float
    threshold: float
    features: dict[str, float]
    explanation: list[dict[str, Any]]
    entity_key: str
    events_seen: int
    cold_start: bool


def build_alert(
    model: Any, ev: Event, origin: Origin | None, verdict: Scored, created: float
) -> dict[str, Any]:
    """The ECS alert document (docs/alerts.md lists every field)."""
    label = severity_label(verdict.severity)
    texts = "; ".join(item["text"] for item in verdict.explanation)
    doc: dict[str, Any] = {
        "@timestamp": iso(ev.timestamp),
        "event": {
            "kind": "alert",
            "id": alert_id(model.name, model.version, ev.event_id),
            "risk_score": round(verdict.severity, 2),
            "severity": round(verdict.severity),
            "created": iso(created),
            "module": "auditwatch",
            "dataset": "auditwatch.alerts",
            "action": ev.action or None,
            "outcome": ev.outcome,
        },
        "rule": {"name": model.name, "version": model.version, "ruleset": "auditwatch"},
        "message": f"{verdict.entity_key}: {texts}",
        "auditwatch": _custom(model, ev, origin, verdict, label),
    }
    _add_identity(doc, ev)
    return doc


def _custom(
    model: Any, ev: Event, origin: Origin | None, verdict: Scored, label: str
) -> dict[str, Any]:
    source_event: dict[str, Any] = {
        "id": ev.event_id,
        "timestamp": iso(ev.timestamp),
        "format": ev.source_format,
    }
    if origin is not None:
        source_event["kafka"] = {
            "topic": origin.topic,
            "partition": origin.partition,
            "offset": origin.offset,
        }
    return {
        "severity_label": label,
        "entity": {
            "key": verdict.entity_key,
            "type": ev.entity_type,
            "peer_group": ev.peer_group,
            "cold_start": verdict.cold_start,
            "events_seen": verdict.events_seen,
        },
        "source_event": source_event,
        "score": {
            "raw": round(verdict.raw, 6),
            "severity": round(verdict.severity, 2),
            "threshold": verdict.threshold,
        },
        "model": {
            "name": model.name,
            "version": model.version,
            "algorithm": model.detector.algorithm,
        },
        "features": verdict.features,
        "explanation": verdict.explanation,
    }


def _add_identity(doc: dict[str, Any], ev: Event) -> None:
    """user.*, source.*, user_agent.*, related.* — only the fields the event had."""
    user = {k: v for k, v in (("name", ev.user_name or ev.entity), ("id", ev.user_id)) if v}
    doc["user"] = user
    related: dict[str, list[str]] = {"user": sorted({v for v in user.values()})}
    if ev.source_ip and ev.source_ip.startswith("pn-"):  # pseudonymised: not an ECS ip
        doc["auditwatch"]["pseudonymised"] = {"source_ip": ev.source_ip}
    elif ev.source_ip:
        source: dict[str, Any] = {"ip": ev.source_ip}
        if ev.country:
            source["geo"] = {"country_iso_code": ev.country}
        doc["source"] = source
        related["ip"] = [ev.source_ip]
    if ev.user_agent:
        doc["user_agent"] = {"original": ev.user_agent}
    if ev.service:
        doc["service"] = {"name": ev.service}
    doc["related"] = related
