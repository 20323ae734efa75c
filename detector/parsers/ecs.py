"""Elastic Common Schema (ECS) documents -> Event.

Works on the flattened document (see ``common.flatten``), so nested, dotted
and mixed spellings of a field are the same thing. docs/input-formats.md has
the full field mapping.
"""

from __future__ import annotations

from typing import Any

from detector.events import Event
from detector.parsers.common import (
    ParseOptions,
    content_id,
    first_present,
    is_service_account,
    network_of,
    opt_num,
    opt_str,
    reject,
    to_epoch,
)

OUTCOMES = frozenset({"success", "failure", "unknown"})


def outcome_of(value: Any) -> str:
    """ECS event.outcome; anything outside success/failure/unknown is 'unknown'."""
    if type(value) is str:
        value = value.lower()
        if value in OUTCOMES:
            return value
    return "unknown"


def category_of(value: Any) -> str | None:
    """ECS event.category is a keyword or an array of them; arrays are joined by ','."""
    if type(value) is list:
        parts = [v for v in value if type(v) is str and v]
        return ",".join(parts) if parts else None
    return opt_str(value, "event.category")


def client_fields(flat: dict[str, Any]) -> dict[str, Any]:
    """Where the call came from: source.ip (else client.ip), geo, user agent.

    An unparsable source.ip is dropped, not rejected: it is a feature, not identity.
    """
    ip = opt_str(flat.get("source.ip") or flat.get("client.ip"), "source.ip")
    network = network_of(ip) if ip else None
    country = flat.get("source.geo.country_iso_code") or flat.get("client.geo.country_iso_code")
    return {
        "source_ip": ip if network else None,
        "network": network,
        "country": opt_str(country, "source.geo.country_iso_code"),
        "user_agent": opt_str(flat.get("user_agent.original"), "user_agent.original"),
    }


def identity(flat: dict[str, Any]) -> dict[str, Any]:
    """entity = user.name, else user.id; service account per ``is_service_account``."""
    user_name = opt_str(flat.get("user.name"), "user.name")
    user_id = opt_str(flat.get("user.id"), "user.id")
    entity = user_name or user_id
    if entity is None:
        raise reject("missing_field", "user.name or user.id is required")
    roles = flat.get("user.roles")
    entity_type = "service" if is_service_account(roles, user_name) else "user"
    first_role = roles[0] if type(roles) is list and roles else roles
    peer = first_role if type(first_role) is str and first_role else entity_type
    return {
        "entity": entity,
        "entity_type": entity_type,
        "peer_group": peer,
        "user_name": user_name,
        "user_id": user_id,
    }


def volumes(flat: dict[str, Any], options: ParseOptions) -> dict[str, Any]:
    """resource / bytes_out / bytes_in / rows from the configured field lists."""
    res_name, res_value = first_present(flat, options.resource_fields)
    out_name, out_value = first_present(flat, options.bytes_out_fields)
    in_name, in_value = first_present(flat, options.bytes_in_fields)
    rows_name, rows_value = first_present(flat, options.rows_fields)
    return {
        "resource": opt_str(res_value, res_name),
        "bytes_out": opt_num(out_value, out_name),
        "bytes_in": opt_num(in_value, in_name),
        "rows": opt_num(rows_value, rows_name),
    }


def parse_ecs(
    record: dict[str, Any], flat: dict[str, Any], options: ParseOptions, max_ts: float
) -> Event:
    """Normalise one ECS document (``flat`` = ``flatten(record)``); raises ParseError."""
    timestamp = to_epoch(flat.get("@timestamp", record.get("@timestamp")), "@timestamp", max_ts)
    event_id = opt_str(flat.get("event.id"), "event.id") or content_id(record)
    action = flat.get("event.action") or flat.get("event.code")
    return Event(
        timestamp=timestamp,
        event_id=event_id,
        source_format="ecs",
        action=opt_str(action, "event.action") or "",
        outcome=outcome_of(flat.get("event.outcome")),
        category=category_of(flat.get("event.category")),
        service=opt_str(flat.get("service.name"), "service.name"),
        raw=record,
        **identity(flat),
        **client_fields(flat),
        **volumes(flat, options),
    )
