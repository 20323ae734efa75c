"""auditwatch inference events -> Event.

The format is ECS plus ``gen_ai.*`` plus ``auditwatch.inference.*``; its JSON
Schema is ``detector/assets/inference-event.schema.json``. This module checks
the same constraints by hand (the schema is too slow for the hot path); the
tests keep the two in step.
"""

from __future__ import annotations

import math
from typing import Any

from detector.events import NAN, Event
from detector.parsers.common import (
    content_id,
    is_service_account,
    network_of,
    opt_num,
    opt_str,
    reject,
    to_epoch,
)
from detector.parsers.ecs import category_of, outcome_of

MODEL_FIELD = "gen_ai.request.model"
MAX_VECTOR = 64
_PREFIX = "auditwatch.inference."


def input_vector(value: Any) -> tuple[float, ...] | None:
    """At most 64 finite numbers (booleans are not numbers here)."""
    if value is None:
        return None
    if type(value) is not list:
        raise reject("bad_type", f"{_PREFIX}input.vector: expected array")
    if len(value) > MAX_VECTOR:
        raise reject("bad_value", f"{_PREFIX}input.vector: more than {MAX_VECTOR} items")
    for item in value:
        if type(item) is not float and type(item) is not int:
            raise reject("bad_type", f"{_PREFIX}input.vector: items must be numbers")
    out = tuple(float(item) for item in value)
    if not all(math.isfinite(item) for item in out):
        raise reject("non_finite_number", f"{_PREFIX}input.vector: not finite")
    return out


def probability(value: Any, name: str) -> float:
    out = opt_num(value, name)
    if out > 1.0:
        raise reject("bad_value", f"{name}: above 1")
    return out


def caller(flat: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
    """(entity, entity_type, user_name, user_id): entity = API key id, else user.id,
    else user.name."""
    key_id = opt_str(flat.get(_PREFIX + "api_key_id"), _PREFIX + "api_key_id")
    user_id = opt_str(flat.get("user.id"), "user.id")
    user_name = opt_str(flat.get("user.name"), "user.name")
    entity = key_id or user_id or user_name
    if entity is None:
        raise reject("missing_field", f"{_PREFIX}api_key_id, user.id or user.name is required")
    if key_id:
        entity_type = "api_key"
    elif is_service_account(flat.get("user.roles"), user_name):
        entity_type = "service"
    else:
        entity_type = "user"
    return entity, entity_type, user_name, user_id


Measurements = tuple[float, float, float, float, float, float, tuple[float, ...] | None]


def measurements(flat: dict[str, Any]) -> Measurements:
    """Token counts, input size, confidence, entropy, latency and input vector, in Event
    order (NaN/None when absent)."""
    get = flat.get
    duration_ns = opt_num(get("event.duration"), "event.duration")
    return (
        opt_num(get("gen_ai.usage.input_tokens"), "gen_ai.usage.input_tokens"),
        opt_num(get("gen_ai.usage.output_tokens"), "gen_ai.usage.output_tokens"),
        opt_num(get(_PREFIX + "input.size_bytes"), _PREFIX + "input.size_bytes"),
        probability(get(_PREFIX + "output.confidence"), "output.confidence"),
        opt_num(get(_PREFIX + "output.entropy"), _PREFIX + "output.entropy"),
        duration_ns / 1e6,
        input_vector(get(_PREFIX + "input.vector")),
    )


def parse_inference(record: dict[str, Any], flat: dict[str, Any], max_ts: float) -> Event:
    """Normalise one inference event (``flat`` = ``flatten(record)``); raises ParseError.

    Fields are read in the order that decides which error a bad event reports.
    """
    get = flat.get
    model = opt_str(get(MODEL_FIELD), MODEL_FIELD)
    if not model:
        raise reject("missing_field", f"{MODEL_FIELD} is required")
    timestamp = to_epoch(get("@timestamp", record.get("@timestamp")), "@timestamp", max_ts)
    ip = opt_str(get("source.ip"), "source.ip")
    network = network_of(ip) if ip else None
    version = opt_str(get(_PREFIX + "model_version"), _PREFIX + "model_version")
    event_id = opt_str(get("event.id"), "event.id") or content_id(record)
    outcome = outcome_of(get("event.outcome"))
    category = category_of(get("event.category"))
    user_agent = opt_str(get("user_agent.original"), "user_agent.original")
    service = opt_str(get("service.name"), "service.name")
    entity, entity_type, user_name, user_id = caller(flat)
    measured = measurements(flat)
    return Event(
        timestamp, event_id, "inference", entity, entity_type, "model:" + model, user_name,
        user_id, "inference:" + model, outcome, category, ip if network else None, network,
        None, user_agent, service, None, NAN, NAN, NAN,  # no country, resource, volumes
        model, version, *measured,
    )  # fmt: skip
