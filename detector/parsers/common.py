"""What the format parsers share: options, the rejection record, field helpers.

Every helper either returns a clean value or raises ``ParseError`` with a code
from ``REASONS``; ``parse_message`` turns that into a ``Rejected``. Details
name fields and types only, never field values, so a dead-letter record can
be logged without leaking what a message carried.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from detector.errors import ParseError

REASONS = frozenset(
    {
        "invalid_json",
        "invalid_utf8",
        "invalid_gzip",
        "too_large",
        "too_deep",
        "non_finite_number",
        "unknown_format",
        "missing_field",
        "bad_type",
        "bad_value",
        "bad_timestamp",
        "timestamp_out_of_range",
    }
)
MIN_TIMESTAMP = 946_684_800.0  # 2000-01-01T00:00:00Z: older events are clock or replay errors
MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """How ECS fields map to Event volumes, and the limits on hostile input.

    ECS ``destination.bytes`` is what the server sent back (data leaving the
    resource); ``source.bytes`` is what the caller sent. First present field wins.
    """

    resource_fields: tuple[str, ...] = (
        "url.path",
        "file.path",
        "destination.address",
        "url.domain",
    )
    bytes_out_fields: tuple[str, ...] = (
        "destination.bytes",
        "http.response.body.bytes",
        "http.response.bytes",
    )
    bytes_in_fields: tuple[str, ...] = (
        "source.bytes",
        "http.request.body.bytes",
        "http.request.bytes",
    )
    rows_fields: tuple[str, ...] = ("db.response.returned_rows", "auditwatch.rows")
    max_message_bytes: int = 1_048_576
    max_depth: int = 64
    max_clock_skew_s: float = 7 * 86400


@dataclass(slots=True)
class Rejected:
    """A message (or one record of it) that could not become an Event."""

    reason: str  # one of REASONS
    detail: str  # human text, field names only, <= 300 chars
    original: bytes  # the whole original message


def reject(reason: str, detail: str) -> ParseError:
    """Build the error a normaliser raises; ``detail`` is clipped to 300 chars."""
    return ParseError(reason, detail[:MAX_DETAIL])


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def opt_str(value: Any, name: str) -> str | None:
    """A string field: str kept, int ids stringified, empty/null -> None."""
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise reject("bad_type", f"{name}: expected string, got {type_name(value)}")


def opt_num(value: Any, name: str) -> float:
    """A non-negative numeric field (numbers or numeric strings); null -> NaN."""
    if value is None:
        return math.nan
    kind = type(value)
    if kind is int or kind is float:
        out = float(value)
    elif kind is str:
        try:
            out = float(value)
        except ValueError:
            raise reject("bad_type", f"{name}: string is not a number") from None
    else:
        raise reject("bad_type", f"{name}: expected number, got {type_name(value)}")
    if not math.isfinite(out):
        raise reject("non_finite_number", f"{name}: not a finite number")
    if out < 0:
        raise reject("bad_value", f"{name}: negative")
    return out


def _iso_to_epoch(text: str) -> float:
    # Not cached: audit timestamps rarely repeat (174k distinct in 200k generated
    # CloudTrail records), and a cache miss costs 3x the parse itself.
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # zone-less timestamps are taken as UTC
    return parsed.timestamp()


def to_epoch(value: Any, name: str, max_ts: float) -> float:
    """ISO 8601 string or epoch-millis number -> epoch seconds, range-checked.

    Accepted range: [2000-01-01, now + max_clock_skew_s].
    """
    kind = type(value)
    if kind is str:
        try:
            ts = _iso_to_epoch(value)
        except (ValueError, OverflowError, OSError):
            raise reject("bad_timestamp", f"{name}: not an ISO 8601 timestamp") from None
    elif kind is int or kind is float:
        ts = value / 1000.0
    elif value is None:
        raise reject("missing_field", f"{name} is required")
    else:
        raise reject("bad_timestamp", f"{name}: expected string or epoch millis")
    if not MIN_TIMESTAMP <= ts <= max_ts:
        raise reject("timestamp_out_of_range", f"{name}: before 2000 or too far in the future")
    return ts


def network_of(ip: str) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) of an address; None if it is not an IP.

    >>> network_of("10.2.3.4"), network_of("2001:db8::1"), network_of("s3.amazonaws.com")
    ('10.2.3.0/24', '2001:db8::/48', None)
    """
    return _cached_network(ip) if len(ip) <= 64 else None  # no IP is longer


@lru_cache(maxsize=65536)
def _cached_network(ip: str) -> str | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network((int(addr), prefix), strict=False))


def content_id(record: Any) -> str:
    """Deterministic id of a record: sha256 of its sorted-key JSON, hex[:32]."""
    canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """Nested objects -> dotted keys, so {"user": {"name": x}} == {"user.name": x}.

    Lists are leaves. On a clash (both spellings present) the later one wins.
    """
    flat: dict[str, Any] = {}
    stack: list[tuple[str, dict[str, Any]]] = [("", record)]
    while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
            name = prefix + key
            if type(value) is dict:
                stack.append((name + ".", value))
            else:
                flat[name] = value
    return flat


def first_present(flat: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any]:
    """(name, value) of the first field that is present and not null."""
    for name in names:
        value = flat.get(name)
        if value is not None:
            return name, value
    return "", None


def is_service_account(roles: Any, user_name: str | None) -> bool:
    """True when ``user.roles`` names a service role or the user is a k8s SA."""
    if user_name and user_name.startswith("system:serviceaccount:"):
        return True
    if type(roles) is str:
        roles = [roles]
    if type(roles) is not list:
        return False
    return any(type(r) is str and "service" in r.lower() for r in roles)


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """True if containers nest deeper than ``max_depth`` (iterative: no recursion)."""
    if type(value) is not dict and type(value) is not list:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if type(node) is dict else node
        for child in children:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False
