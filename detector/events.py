"""The one internal event type every parser normalises to."""

from __future__ import annotations

import math
from dataclasses import dataclass

NAN = math.nan


@dataclass(slots=True)
class Event:
    """A normalised audit-log or ML-inference event.

    Numeric fields use NaN for "not reported" (never 0, which is a real value).
    ``entity`` is the principal whose behaviour is modelled (user name, role ARN,
    API key id); ``peer_group`` is the cold-start fallback population for it.
    """

    timestamp: float  # epoch seconds, UTC
    event_id: str  # the source's own id, or a deterministic hash of the record
    source_format: str  # "ecs" | "cloudtrail" | "inference"
    entity: str
    entity_type: str = "user"  # user | role | service | api_key | root | unknown
    peer_group: str = "user"
    user_name: str | None = None
    user_id: str | None = None
    action: str = ""
    outcome: str = "unknown"  # success | failure | unknown
    category: str | None = None
    source_ip: str | None = None
    network: str | None = None  # /24 (IPv4) or /48 (IPv6) of source_ip
    country: str | None = None
    user_agent: str | None = None
    service: str | None = None
    resource: str | None = None
    bytes_out: float = NAN  # data leaving the resource towards the caller
    bytes_in: float = NAN
    rows: float = NAN
    # ML inference fields (NaN/None for access events)
    model: str | None = None
    model_version: str | None = None
    input_tokens: float = NAN
    output_tokens: float = NAN
    input_size: float = NAN
    confidence: float = NAN  # top-class probability
    entropy: float = NAN  # output distribution entropy, nats
    latency_ms: float = NAN
    input_vector: tuple[float, ...] | None = None
