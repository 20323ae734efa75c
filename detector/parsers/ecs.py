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


def client_fields(flat: dict[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    """(source_ip, network, country, user_agent): where the call came from, in Event order.

    source.ip, else client.ip. An unparsable IP is dropped, not rejected: it is a
    feature, not identity.
    """
    get = flat.get
    ip = opt_str(get("source.ip") or get("client.ip"), "source.ip")
    network = network_of(ip) if ip else None
    country = get("source.geo.country_iso_code") or get("client.geo.country_iso_code")
    return (
        ip if network else None,
        network,
        opt_str(country, "source.geo.country_iso_code"),
        opt_str(get("user_agent.original"), "user_agent.original"),
    )


def identity(flat: dict[str, Any]) -> tuple[str, str, str, str | None, str | None]:
    """(entity, entity_type, peer_group, user_name, user_id), in Event order.

    entity = user.name, else user.id; service account per ``is_service_account``.
    """
    user_name = opt_str(flat.get("user.name"), "user.name")
    user_id = opt_str(flat.get("user.id"), "user.id")
    entity = user_name or user_id
    if entity is None:
        raise reject("missing_field", "user.name or user.id is required")
    roles = flat.get("user.roles")
    entity_type = "service" if is_service_account(roles, user_name) else "user"
    first_role = roles[0] if type(roles) is list and roles else roles
    peer = first_role if type(first_role) is str and first_role else entity_type
    return entity, entity_type, peer, user_name, user_id


def volumes(flat: dict[str, Any], options: ParseOptions) -> tuple[str | None, float, float, float]:
    """(resource, bytes_out, bytes_in, rows) from the configured field lists, in Event order."""
    res_name, res_value = first_present(flat, options.resource_fields)
    out_name, out_value = first_present(flat, options.bytes_out_fields)
    in_name, in_value = first_present(flat, options.bytes_in_fields)
    rows_name, rows_value = first_present(flat, options.rows_fields)
    return (
        opt_str(res_value, res_name),
        opt_num(out_value, out_name),
        opt_num(in_value, in_name),
        opt_num(rows_value, rows_name),
    )


def parse_ecs(
    record: dict[str, Any], flat: dict[str, Any], options: ParseOptions, max_ts: float
) -> Event:
    """Normalise one ECS document (``flat`` = ``flatten(record)``); raises ParseError.

    Fields are read in the order that decides which error a bad document reports.
    """
    get = flat.get
    timestamp = to_epoch(get("@timestamp", record.get("@timestamp")), "@timestamp", max_ts)
    event_id = opt_str(get("event.id"), "event.id") or content_id(record)
    action = opt_str(get("event.action") or get("event.code"), "event.action") or ""
    outcome = outcome_of(get("event.outcome"))
    category = category_of(get("event.category"))
    service = opt_str(get("service.name"), "service.name")
    who = identity(flat)
    source_ip, network, country, user_agent = client_fields(flat)
    resource, bytes_out, bytes_in, rows = volumes(flat, options)
    return Event(
        timestamp, event_id, "ecs", *who, action, outcome, category, source_ip, network,
        country, user_agent, service, resource, bytes_out, bytes_in, rows,
    )  # fmt: skip
