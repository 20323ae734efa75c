"""Property tests: no input makes the parser raise, and every failure has a bounded reason."""

from __future__ import annotations

import gzip
import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.parsers import REASONS, ParseOptions, parse_message
from detector.parsers.common import MIN_TIMESTAMP

NOW = 1_800_000_000.0
OPTS = ParseOptions()
FORMATS = {"ecs", "cloudtrail", "inference"}
ENTITY_TYPES = {"user", "role", "service", "api_key", "root", "unknown"}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["2024-01-01T00:00:00Z", "1900-01-01", "3000-01-01T00:00:00Z", "10.1.2.3"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)

ECS_FIELDS = [
    "@timestamp", "event.id", "event.action", "event.outcome", "event.category", "event.duration",
    "user.name", "user.id", "user.roles", "source.ip", "source.geo.country_iso_code",
    "user_agent.original", "service.name", "url.path", "destination.bytes", "source.bytes",
    "db.response.returned_rows", "gen_ai.request.model", "gen_ai.usage.input_tokens",
    "auditwatch.inference.api_key_id", "auditwatch.inference.input.vector",
    "auditwatch.inference.output.confidence", "auditwatch.inference.output.entropy",
]  # fmt: skip
CLOUDTRAIL_BASE: dict[str, Any] = {
    "eventTime": "2023-07-10T11:42:18Z",
    "eventSource": "s3.amazonaws.com",
    "eventName": "GetObject",
    "eventID": "id-1",
    "userIdentity": {"type": "IAMUser", "userName": "bob"},
    "sourceIPAddress": "10.0.0.1",
    "requestParameters": {"bucketName": "b", "key": "k"},
    "additionalEventData": {"bytesTransferredOut": 10},
}
CLOUDTRAIL_FIELDS = [
    *CLOUDTRAIL_BASE,
    "errorCode", "responseElements", "resources", "@timestamp", "userAgent", "eventCategory",
]  # fmt: skip
IDENTITY_TYPES = st.sampled_from(
    [None, "IAMUser", "AssumedRole", "Root", "AWSService", "AWSAccount", "FederatedUser", 5]
)


def check(data: bytes) -> None:
    """The contract every input must satisfy."""
    events, rejected = parse_message(data, OPTS, now=NOW)
    for bad in rejected:
        assert bad.reason in REASONS
        assert len(bad.detail) <= 300 and bad.original is data
    for ev in events:
        assert ev.source_format in FORMATS and ev.entity_type in ENTITY_TYPES
        assert isinstance(ev.entity, str) and ev.entity
        assert MIN_TIMESTAMP <= ev.timestamp <= NOW + OPTS.max_clock_skew_s
        assert ev.outcome in {"success", "failure", "unknown"}
        for value in (ev.bytes_out, ev.bytes_in, ev.rows, ev.input_tokens, ev.confidence):
            assert math.isnan(value) or (math.isfinite(value) and value >= 0)
        assert ev.input_vector is None or all(math.isfinite(x) for x in ev.input_vector)
    if not events and not rejected:  # only an empty CloudTrail file yields nothing
        assert orjson.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data) == {
            "Records": []
        }


@given(st.binary(max_size=2048))
@settings(deadline=None)
def test_any_bytes(data: bytes) -> None:
    check(data)


@given(json_values)
@settings(deadline=None)
def test_any_json_value(value: Any) -> None:
    check(orjson.dumps(value))


@given(json_values)
@settings(max_examples=30, deadline=None)
def test_any_gzipped_json_value(value: Any) -> None:
    check(gzip.compress(orjson.dumps(value)))


@given(st.dictionaries(st.sampled_from(ECS_FIELDS), json_values, max_size=12))
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_ecs_and_inference_fields_with_any_values(doc: dict[str, Any]) -> None:
    check(orjson.dumps(doc))


@given(
    st.dictionaries(st.sampled_from(ECS_FIELDS), scalars, max_size=3),
    st.sampled_from(["ecs", "inference"]),
)
@settings(deadline=None)
def test_valid_documents_with_one_hostile_field(extra: dict[str, Any], kind: str) -> None:
    doc: dict[str, Any] = {"@timestamp": "2024-05-01T00:00:00Z", "user.name": "alice"}
    if kind == "inference":
        doc["gen_ai"] = {"request": {"model": "m"}}
    check(orjson.dumps({**doc, **extra}))


@given(
    st.dictionaries(st.sampled_from(CLOUDTRAIL_FIELDS), json_values, max_size=3),
    IDENTITY_TYPES,
    st.booleans(),
)
@settings(deadline=None)
def test_cloudtrail_records_with_hostile_fields(
    extra: dict[str, Any], identity_type: Any, wrap_in_records: bool
) -> None:
    record = {**CLOUDTRAIL_BASE, **extra}
    if isinstance(record.get("userIdentity"), dict):
        record["userIdentity"] = {**record["userIdentity"], "type": identity_type}
    message = {"Records": [record, CLOUDTRAIL_BASE]} if wrap_in_records else record
    check(orjson.dumps(message))
