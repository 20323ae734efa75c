"""Parse/normalise stage on real CloudTrail records, ECS and inference events, hostile input."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from detector.parsers import (
    REASONS,
    ParseOptions,
    Rejected,
    parse_batch,
    parse_message,
    parse_messages,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STRATUS = DATA / "cloudtrail" / "invictus_stratus"
OTRF = DATA / "cloudtrail" / "otrf_ec2_proxy_s3_exfiltration"
OTRF_FILE = OTRF / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
SCHEMA = Path(__file__).resolve().parents[1] / "detector" / "assets" / "inference-event.schema.json"
NOW = 1_800_000_000.0  # 2027-01-15: every test timestamp is "in the past"
OPTS = ParseOptions()


def stratus_lines() -> list[bytes]:
    return STRATUS.joinpath("events_sorted.jsonl").read_bytes().splitlines()


def one(data: bytes | dict[str, Any]) -> Any:
    """Parse a message that must give exactly one Event."""
    if isinstance(data, dict):
        data = orjson.dumps(data)
    events, rejected = parse_message(data, OPTS, now=NOW)
    assert rejected == [], rejected
    assert len(events) == 1
    return events[0]


def rejected_reason(data: bytes | dict[str, Any]) -> str:
    if isinstance(data, dict):
        data = orjson.dumps(data)
    events, rejected = parse_message(data, OPTS, now=NOW)
    assert events == []
    assert len(rejected) == 1
    assert rejected[0].original == data
    return rejected[0].reason


# --- CloudTrail, real records -------------------------------------------------------------


def test_all_stratus_records_parse() -> None:
    lines = stratus_lines()
    events, rejected, origins = parse_batch(lines, OPTS, now=NOW)
    assert rejected == []
    assert len(events) == 2900 and origins == list(range(2900))
    assert {e.source_format for e in events} == {"cloudtrail"}
    assert len({e.event_id for e in events}) == 2900
    ids = [orjson.loads(line)["eventID"] for line in lines]
    assert [e.event_id for e in events] == ids


def test_iam_user_record() -> None:
    ev = one(stratus_lines()[0])
    assert ev.entity == "benjamin" and ev.entity_type == "user" and ev.user_name == "benjamin"
    assert ev.user_id == "AIDATFQR7NSC5U6Q3TMDR"
    assert ev.action == "account:GetRegionOptStatus"
    assert ev.timestamp == 1688989338.0  # 2023-07-10T11:42:18Z
    assert ev.event_id == "875240ac-e821-4fc6-a311-8c352a1d20f5"
    assert ev.outcome == "success" and ev.category == "Management"
    assert ev.source_ip == "10.248.16.43" and ev.network == "10.248.16.0/24"
    assert ev.user_agent.startswith("Boto3/1.26.165") and ev.country is None
    assert ev.service == "account.amazonaws.com"
    assert math.isnan(ev.bytes_out) and math.isnan(ev.rows)


def test_assumed_role_record_uses_role_arn_and_keeps_session() -> None:
    ev = one(stratus_lines()[96])
    assert ev.entity == "arn:aws:iam::123837392027:role/stratus-red-team-ec2-get-password-data-role"
    assert ev.entity_type == "role" and ev.peer_group == "role"
    assert ev.user_name == "aws-go-sdk-1688990082523310002"
    assert ev.action == "ec2:GetPasswordData"
    assert ev.outcome == "failure"  # errorCode Client.UnauthorizedOperation


def test_assumed_role_without_session_issuer_derives_role_arn() -> None:
    record = orjson.loads(stratus_lines()[96])
    del record["userIdentity"]["sessionContext"]
    ev = one(record)
    assert ev.entity == "arn:aws:iam::123837392027:role/stratus-red-team-ec2-get-password-data-role"


def test_error_code_is_failure() -> None:
    ev = one(stratus_lines()[94])
    assert ev.outcome == "failure" and ev.entity == "bert-jan" and ev.action == "sts:AssumeRole"


def test_console_login_success_and_failure() -> None:
    # the datasets hold only successful logins: flip a real one to Failure as AWS logs it
    record = orjson.loads(stratus_lines()[2319])
    assert one(record).outcome == "success"
    record["responseElements"] = {"ConsoleLogin": "Failure"}
    record["errorMessage"] = "Failed authentication"
    ev = one(record)
    assert ev.outcome == "failure" and ev.action == "signin:ConsoleLogin"


def test_service_identities() -> None:
    ev = one(stratus_lines()[197])  # no type, only invokedBy
    assert ev.entity == "ec2.amazonaws.com" and ev.entity_type == "service"
    assert ev.source_ip == "ec2.amazonaws.com" and ev.network is None
    aws_internal = one(stratus_lines()[18])
    assert aws_internal.source_ip == "AWS Internal" and aws_internal.network is None


def test_root_and_account_identities() -> None:
    record = orjson.loads(stratus_lines()[0])
    record["userIdentity"] = {"type": "Root", "accountId": "123837392027", "principalId": "1238"}
    ev = one(record)
    assert (ev.entity, ev.entity_type) == ("root", "root")
    record["userIdentity"] = {"type": "AWSAccount", "accountId": "999", "principalId": "AID:x"}
    assert (one(record).entity, one(record).entity_type) == ("account:999", "unknown")


def test_logstash_shipped_otrf_s3_get_object() -> None:
    lines = OTRF_FILE.read_bytes().splitlines()
    events, rejected, _ = parse_batch(lines, OPTS, now=NOW)
    assert rejected == [] and len(events) == 103
    assert {e.source_format for e in events} == {"cloudtrail"}  # not ECS despite @timestamp
    ev = events[79]
    assert ev.event_id == "771299cb-e200-4926-9604-c85358b30499"
    assert ev.action == "s3:GetObject" and ev.timestamp == 1600045354.0
    assert (
        ev.entity == "arn:aws:iam::123456789123:role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0"
    )
    assert ev.resource == "arn:aws:s3:::mordors3stack-s3bucket-llp2yingx64a/ring.txt"
    assert ev.bytes_out == 89.0 and ev.bytes_in == 0.0
    assert ev.user_agent.startswith("[aws-cli/1.18.136")


def test_s3_resource_from_request_parameters() -> None:
    record = orjson.loads(OTRF_FILE.read_bytes().splitlines()[79])
    del record["resources"]
    assert one(record).resource == "arn:aws:s3:::mordors3stack-s3bucket-llp2yingx64a/ring.txt"


def test_records_file_and_gzip() -> None:
    path = sorted(STRATUS.joinpath("raw").glob("*.json"))[0]
    data = path.read_bytes()
    n_records = len(orjson.loads(data)["Records"])
    events, rejected = parse_message(data, OPTS, now=NOW)
    assert rejected == [] and len(events) == n_records > 1
    gz_events, gz_rejected = parse_message(gzip.compress(data), OPTS, now=NOW)
    assert gz_rejected == [] and [e.event_id for e in gz_events] == [e.event_id for e in events]


def test_records_file_bad_records_rejected_individually() -> None:
    good = [orjson.loads(line) for line in stratus_lines()[:3]]
    broken = dict(good[1], eventTime="3000-01-01T00:00:00Z")
    data = orjson.dumps({"Records": [good[0], broken, 7, good[2]]})
    events, rejected = parse_message(data, OPTS, now=NOW)
    assert [e.event_id for e in events] == [good[0]["eventID"], good[2]["eventID"]]
    assert [r.reason for r in rejected] == ["timestamp_out_of_range", "unknown_format"]
    assert rejected[0].detail.startswith("Records[1]") and rejected[1].original == data


def test_bedrock_invoke_model() -> None:
    record = orjson.loads(stratus_lines()[0])
    record.update(
        eventSource="bedrock.amazonaws.com",
        eventName="InvokeModel",
        requestParameters={"modelId": "anthropic.claude-3-haiku-20240307-v1:0"},
        additionalEventData={"inputTokens": 120, "outputTokens": 33},
    )
    ev = one(record)
    assert ev.model == "anthropic.claude-3-haiku-20240307-v1:0"
    assert (ev.input_tokens, ev.output_tokens) == (120.0, 33.0)
    assert ev.action == "bedrock:InvokeModel" and ev.resource == ev.model


def test_parse_batch_maps_events_to_messages() -> None:
    lines = stratus_lines()
    records_file = orjson.dumps({"Records": [orjson.loads(x) for x in lines[3:5]]})
    batch = [lines[0], b"not json", records_file, b"{}", lines[7]]
    events, rejected, origins = parse_batch(batch, OPTS, now=NOW)
    assert origins == [0, 2, 2, 4]
    assert [e.event_id for e in events][1:3] == [orjson.loads(x)["eventID"] for x in lines[3:5]]
    assert [r.reason for r in rejected] == ["invalid_json", "unknown_format"]


def test_parse_messages_maps_rejections_to_messages_too() -> None:
    lines = stratus_lines()
    bad_record = {"eventName": "x", "eventSource": "y"}  # no userIdentity
    records_file = orjson.dumps({"Records": [orjson.loads(lines[3]), bad_record]})
    batch = [b"not json", lines[0], records_file, None, lines[7]]
    out = parse_messages(batch, OPTS, now=NOW)
    assert out.origins == [1, 2, 4]
    assert [r.reason for r in out.rejected] == ["invalid_json", "missing_field", "invalid_json"]
    assert out.rejected_origins == [0, 2, 3]
    assert out.rejected[1].original == records_file and out.rejected[2].original == b""


def test_missing_event_id_gets_stable_content_hash() -> None:
    record = orjson.loads(stratus_lines()[0])
    del record["eventID"]
    reordered = dict(reversed(list(record.items())))
    first, second = one(record), one(reordered)
    assert first.event_id == second.event_id and len(first.event_id) == 32


# --- ECS ----------------------------------------------------------------------------------

ECS_NESTED = {
    "@timestamp": "2024-03-01T12:00:00.250+01:00",
    "event": {
        "id": "e-1",
        "action": "file-read",
        "outcome": "FAILURE",
        "category": ["file", "iam"],
    },
    "user": {"name": "alice", "id": "u-42"},
    "source": {"ip": "2001:db8:1:2::7", "geo": {"country_iso_code": "NL"}},
    "user_agent": {"original": "curl/8.5"},
    "service": {"name": "files-api"},
    "url": {"path": "/reports/q1.pdf"},
    "destination": {"bytes": 2048},
    "source.bytes": "100",
    "db": {"response": {"returned_rows": 7}},
}


def test_ecs_nested() -> None:
    ev = one(ECS_NESTED)
    assert ev.source_format == "ecs" and ev.timestamp == 1709290800.25
    assert (ev.entity, ev.entity_type, ev.user_id) == ("alice", "user", "u-42")
    assert ev.action == "file-read" and ev.outcome == "failure" and ev.category == "file,iam"
    assert ev.network == "2001:db8:1::/48" and ev.country == "NL"
    assert ev.resource == "/reports/q1.pdf" and ev.service == "files-api"
    assert (ev.bytes_out, ev.bytes_in, ev.rows) == (2048.0, 100.0, 7.0)


def test_ecs_dotted_equals_nested() -> None:
    dotted = {
        "@timestamp": 1709290800250,  # epoch millis
        "event.id": "e-1",
        "event.action": "file-read",
        "event.outcome": "failure",
        "event.category": ["file", "iam"],
        "user.name": "alice",
        "user": {"id": "u-42"},
        "source.ip": "2001:db8:1:2::7",
        "source.geo.country_iso_code": "NL",
        "user_agent.original": "curl/8.5",
        "service.name": "files-api",
        "url.path": "/reports/q1.pdf",
        "destination.bytes": 2048,
        "source.bytes": 100,
        "db.response.returned_rows": 7,
    }
    a, b = one(ECS_NESTED), one(dotted)
    for name in ("timestamp", "event_id", "entity", "action", "outcome", "category", "network"):
        assert getattr(a, name) == getattr(b, name), name
    assert (a.bytes_out, a.bytes_in, a.rows, a.resource) == (
        b.bytes_out,
        b.bytes_in,
        b.rows,
        b.resource,
    )


def test_ecs_rules_for_identity_ip_and_hash() -> None:
    doc = {
        "@timestamp": "2024-03-01T12:00:00",
        "user": {"id": "svc-9", "roles": ["service_account"]},
    }
    doc["source"] = {"ip": "not-an-ip"}
    ev = one(doc)
    assert (ev.entity, ev.entity_type, ev.peer_group) == ("svc-9", "service", "service_account")
    assert ev.source_ip is None and ev.network is None  # bad IP dropped, not rejected
    assert ev.timestamp == 1709294400.0  # zone-less is UTC
    assert len(ev.event_id) == 32 and ev.event_id == one(dict(reversed(doc.items()))).event_id
    assert one(
        {"@timestamp": "2024-03-01", "user.name": "system:serviceaccount:ns:sa"}
    ).entity_type == ("service")


def test_ecs_custom_field_lists() -> None:
    opts = ParseOptions(bytes_out_fields=("custom.out",), resource_fields=("custom.res",))
    doc = {"@timestamp": "2024-03-01", "user.name": "a", "custom": {"out": 5, "res": "r"}}
    events, _ = parse_message(orjson.dumps(doc), opts, now=NOW)
    assert (events[0].bytes_out, events[0].resource) == (5.0, "r")


# --- inference ----------------------------------------------------------------------------

INFERENCE = {
    "@timestamp": "2026-11-23T03:12:45.123Z",
    "event": {"id": "req-7f3a", "outcome": "success", "duration": 12500000},
    "gen_ai": {
        "request": {"model": "fraud-scorer"},
        "usage": {"input_tokens": 120, "output_tokens": 8},
    },
    "user": {"id": "svc-checkout"},
    "source": {"ip": "10.2.3.4"},
    "user_agent": {"original": "python-requests/2.32"},
    "auditwatch": {
        "inference": {
            "api_key_id": "ak_live_42",
            "model_version": "3",
            "input": {"vector": [0.1, 2.3, -0.4], "size_bytes": 512},
            "output": {"confidence": 0.93, "entropy": 0.21},
        }
    },
}


def test_inference_event() -> None:
    ev = one(INFERENCE)
    assert ev.source_format == "inference" and ev.event_id == "req-7f3a"
    assert (ev.entity, ev.entity_type, ev.user_id) == ("ak_live_42", "api_key", "svc-checkout")
    assert ev.action == "inference:fraud-scorer" and ev.peer_group == "model:fraud-scorer"
    assert (ev.model, ev.model_version) == ("fraud-scorer", "3")
    assert (ev.input_tokens, ev.output_tokens, ev.input_size) == (120.0, 8.0, 512.0)
    assert (ev.confidence, ev.entropy, ev.latency_ms) == (0.93, 0.21, 12.5)
    assert ev.input_vector == (0.1, 2.3, -0.4) and ev.network == "10.2.3.0/24"
    assert ev.outcome == "success" and abs(ev.timestamp - 1795403565.123) < 1e-6


def test_inference_minimal_dotted() -> None:
    doc = {"@timestamp": "2026-11-23T03:12:45Z", "gen_ai.request.model": "m", "user.name": "bob"}
    ev = one(doc)
    assert (ev.entity, ev.entity_type, ev.model) == ("bob", "user", "m")
    assert math.isnan(ev.confidence) and ev.input_vector is None


def test_inference_schema_accepts_what_the_parser_accepts() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    assert list(validator.iter_errors(INFERENCE)) == []
    minimal = {"@timestamp": "2026-11-23T03:12:45Z", "gen_ai": {"request": {"model": "m"}}}
    assert not validator.is_valid(minimal)  # no caller: the parser rejects it too
    assert rejected_reason(minimal) == "missing_field"
    minimal["user"] = {"name": "bob"}
    assert validator.is_valid(minimal) and one(minimal).entity == "bob"


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("auditwatch", "inference", "input", "vector"), [0.0] * 65, "bad_value"),
        (("auditwatch", "inference", "input", "vector"), [True], "bad_type"),
        (("auditwatch", "inference", "output", "confidence"), 1.01, "bad_value"),
        (("auditwatch", "inference", "output", "entropy"), -0.1, "bad_value"),
        (("gen_ai", "usage", "input_tokens"), [1], "bad_type"),
        (("gen_ai", "request", "model"), 3.5, "bad_type"),
        (("event", "duration"), -1, "bad_value"),
    ],
)
def test_inference_invalid_fields_rejected_by_parser_and_schema(
    path: tuple[str, ...], value: Any, reason: str
) -> None:
    doc = json.loads(json.dumps(INFERENCE))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert rejected_reason(doc) == reason
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    assert not validator.is_valid(doc)


# --- hostile input ------------------------------------------------------------------------

CORPUS_FILES = sorted(CORPUS.iterdir())


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_fuzz_corpus_gives_documented_reason(path: Path) -> None:
    expected = path.name.split("__", 1)[0]
    assert expected in REASONS
    assert rejected_reason(path.read_bytes()) == expected


def test_corpus_covers_every_reason() -> None:
    assert {p.name.split("__", 1)[0] for p in CORPUS_FILES} == REASONS


def test_ten_megabyte_message_is_too_large() -> None:
    data = (
        b'{"@timestamp":"2024-01-01T00:00:00Z","user.name":"a","pad":"' + b"x" * 10_000_000 + b'"}'
    )
    assert rejected_reason(data) == "too_large"


def test_future_skew_limit_and_details_carry_no_values() -> None:
    doc = {"@timestamp": NOW * 1000 + 8 * 86400_000, "user.name": "s3cr3t-user"}
    assert rejected_reason(doc) == "timestamp_out_of_range"
    assert one(dict(doc, **{"@timestamp": NOW * 1000 + 6 * 86400_000})).entity == "s3cr3t-user"
    bad = {"@timestamp": "s3cr3t", "user.name": "s3cr3t"}
    _, rejected = parse_message(orjson.dumps(bad), OPTS, now=NOW)
    assert isinstance(rejected[0], Rejected) and "s3cr3t" not in rejected[0].detail


def test_kafka_tombstone_is_rejected_not_raised() -> None:
    events, rejected = parse_message(None, OPTS, now=NOW)  # type: ignore[arg-type]
    assert events == [] and [r.reason for r in rejected] == ["invalid_json"]
