"""Check alert documents against the Elastic Common Schema (ECS).

``validate_ecs(doc)`` returns a list of problems (empty = valid) using the ECS
field definitions in ``../shared/data/ecs/ecs_flat.yml``. Every leaf field
outside the custom ``auditwatch.`` namespace must be an ECS field whose JSON
type fits its ECS type; arrays of such values are allowed; a field with
``allowed_values`` (``event.kind``, ``event.outcome``, ...) must use one of them.
``sample_alert_doc()`` builds the reference alert document (docs/alerts.md).
"""

from __future__ import annotations

import copy
import ipaddress
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ECS_FLAT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ecs" / "ecs_flat.yml"
CUSTOM_NAMESPACE = "auditwatch"

STRING_TYPES = {"keyword", "constant_keyword", "wildcard", "text", "match_only_text", "version"}
INTEGER_TYPES = {"long", "integer", "short", "byte", "unsigned_long"}
NUMBER_TYPES = {"float", "double", "scaled_float", "half_float"}
CONTAINER_TYPES = {"object", "flattened"}  # any keys below them are allowed


@cache
def ecs_fields() -> dict[str, dict[str, Any]]:
    """Flat ECS field name -> definition (``type``, ``allowed_values``, ...)."""
    with ECS_FLAT.open(encoding="utf-8") as handle:
        # the C loader when available: 0.5 s instead of 5 s for this 1.2 MB file
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        fields: dict[str, dict[str, Any]] = yaml.load(handle, Loader=loader)
    return fields


def _is_iso_date(value: Any) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return isinstance(value, str)


def _type_problem(path: str, ecs_type: str, value: Any) -> str | None:
    """Why scalar ``value`` does not fit ``ecs_type``, or None if it does."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    checks: dict[str, tuple[bool, str]] = {
        "string": (isinstance(value, str), "a string"),
        "integer": (is_number and float(value).is_integer(), "an integer"),
        "number": (is_number, "a number"),
        "boolean": (isinstance(value, bool), "a boolean"),
        "date": (_is_iso_date(value), "an ISO-8601 date string"),
        "ip": (_is_ip(value), "an IP address string"),
    }
    if ecs_type in STRING_TYPES:
        key = "string"
    elif ecs_type in INTEGER_TYPES:
        key = "integer"
    elif ecs_type in NUMBER_TYPES:
        key = "number"
    elif ecs_type in checks:
        key = ecs_type
    else:
        return None  # geo_point and the like: shape not checked here
    ok, expected = checks[key]
    return None if ok else f"{path}: ECS type {ecs_type} needs {expected}, got {value!r}"


def _check_value(path: str, field: dict[str, Any], value: Any) -> list[str]:
    ecs_type = field.get("type", "")
    if ecs_type in CONTAINER_TYPES:
        ok = isinstance(value, dict) or (ecs_type == "object" and isinstance(value, list))
        return [] if ok else [f"{path}: ECS type {ecs_type} needs an object, got {value!r}"]
    problem = _type_problem(path, ecs_type, value)
    if problem:
        return [problem]
    allowed = [entry["name"] for entry in field.get("allowed_values", [])]
    if allowed and value not in allowed:
        return [f"{path}: {value!r} is not one of the ECS allowed values {allowed}"]
    return []


def _walk(path: str, value: Any, problems: list[str]) -> None:
    if value is None or path == CUSTOM_NAMESPACE or path.startswith(CUSTOM_NAMESPACE + "."):
        return
    field = ecs_fields().get(path)
    if isinstance(value, list):
        for item in value:
            _walk(path, item, problems)
    elif field is not None and field.get("type") != "nested":
        problems.extend(_check_value(path, field, value))
    elif isinstance(value, dict):
        for key, child in value.items():
            _walk(f"{path}.{key}" if path else str(key), child, problems)
    else:
        problems.append(f"{path}: not an ECS field (custom fields go under {CUSTOM_NAMESPACE}.)")


def validate_ecs(doc: dict[str, Any]) -> list[str]:
    """Problems that make ``doc`` not ECS-conformant; empty when it conforms."""
    problems: list[str] = []
    if "@timestamp" not in doc:
        problems.append("@timestamp: required by ECS")
    _walk("", doc, problems)
    return problems


SAMPLE_ALERT: dict[str, Any] = {
    "@timestamp": "2026-11-23T03:12:45.123Z",
    "event": {
        "kind": "alert",
        "id": "3f2a9c0d1e4b5a6978f0c1d2e3f4a5b6c7d8e9f0",
        "risk_score": 87.5,
        "severity": 87,
        "created": "2026-11-23T03:12:46.001Z",
        "module": "auditwatch",
        "dataset": "auditwatch.alerts",
        "action": "s3:GetObject",
        "outcome": "success",
        "reference": None,
    },
    "rule": {"name": "cloudtrail-access", "version": "1", "ruleset": "auditwatch"},
    "user": {"name": "alice", "id": "AIDAEXAMPLEALICE"},
    "source": {"ip": "185.220.101.7", "geo": {"country_iso_code": "DE"}},
    "user_agent": {"original": "aws-cli/2.15"},
    "related": {"user": ["alice"], "ip": ["185.220.101.7"]},
    "message": (
        "alice: bytes out 2.1 GB vs usual 4 MB (p99 30 MB); "
        "first use of network 185.220.101.0/24 by this entity"
    ),
    "auditwatch": {
        "severity_label": "critical",
        "entity": {
            "key": "alice",
            "type": "user",
            "peer_group": "user",
            "cold_start": False,
            "events_seen": 1432,
        },
        "source_event": {
            "id": "0a1b2c3d",
            "timestamp": "2026-11-23T03:12:45.123Z",
            "format": "cloudtrail",
            "kafka": {"topic": "cloudtrail", "partition": 0, "offset": 1234},
        },
        "score": {"raw": 0.71, "severity": 87.5, "threshold": 60.0},
        "model": {"name": "cloudtrail-access", "version": "1", "algorithm": "online_iforest"},
        "features": {"volume_vs_baseline": 6.2, "new_network": 1.0},
        "explanation": [
            {
                "feature": "volume_vs_baseline",
                "text": "bytes out 2.1 GB vs usual 4 MB (p99 30 MB)",
                "value": 2.1e9,
                "baseline": 4.0e6,
            }
        ],
    },
}


def sample_alert_doc(
    event_id: str | None = None, timestamp: str | None = None, **top_level: Any
) -> dict[str, Any]:
    """A deep copy of ``SAMPLE_ALERT`` with a given id / ``@timestamp`` / top-level keys."""
    doc = copy.deepcopy(SAMPLE_ALERT)
    if event_id is not None:
        doc["event"]["id"] = event_id
    if timestamp is not None:
        doc["@timestamp"] = timestamp
    doc.update(top_level)
    return doc
