"""The reference alert document is ECS-conformant, and the validator can fail."""

from __future__ import annotations

import pytest
from ecs_schema import ecs_fields, sample_alert_doc, validate_ecs


def test_ecs_definitions_load() -> None:
    fields = ecs_fields()
    assert len(fields) == 2612
    assert all("type" in field for field in fields.values())
    assert fields["source.ip"]["type"] == "ip"


def test_sample_alert_is_ecs_conformant() -> None:
    assert validate_ecs(sample_alert_doc()) == []


def test_custom_namespace_is_not_checked() -> None:
    doc = sample_alert_doc()
    doc["auditwatch"]["anything"] = {"goes": ["here", 1, None]}
    assert validate_ecs(doc) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["event"].update(bogus_field="x"), "event.bogus_field: not an ECS field"),
        (lambda d: d.update(anomaly_score=0.9), "anomaly_score: not an ECS field"),
        (lambda d: d["event"].update(risk_score="87.5"), "event.risk_score: ECS type float"),
        (lambda d: d["event"].update(severity=87.5), "event.severity: ECS type long"),
        (lambda d: d["event"].update(severity=True), "event.severity: ECS type long"),
        (lambda d: d["user"].update(name=["alice", 7]), "user.name: ECS type keyword"),
        (lambda d: d["source"].update(ip="not-an-ip"), "source.ip: ECS type ip"),
        (lambda d: d["related"].update(ip=["10.0.0.1", "x"]), "related.ip: ECS type ip"),
        (lambda d: d["event"].update(created=1763867566), "event.created: ECS type date"),
        (lambda d: d["event"].update(created="yesterday"), "event.created: ECS type date"),
        (lambda d: d["event"].update(kind="anomaly"), "event.kind: 'anomaly' is not one of"),
        (lambda d: d["event"].update(outcome="ok"), "event.outcome: 'ok' is not one of"),
        (lambda d: d.update(user="alice"), "user: not an ECS field"),
        (lambda d: d.pop("@timestamp"), "@timestamp: required"),
    ],
)
def test_non_conformant_docs_are_flagged(mutate, expected: str) -> None:
    doc = sample_alert_doc()
    mutate(doc)
    problems = validate_ecs(doc)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)


def test_every_event_kind_allowed_value_passes() -> None:
    for kind in ("alert", "signal", "event"):
        doc = sample_alert_doc()
        doc["event"]["kind"] = kind
        assert validate_ecs(doc) == []
