"""Tests for the synthetic traffic generator (detector/synth)."""

from __future__ import annotations

import csv
import math
import os
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from detector.parsers import ParseOptions, parse_batch
from detector.synth import (
    DEFAULT_START,
    FORMATS,
    SCENARIOS,
    Injection,
    Message,
    World,
    generate,
    live,
    write_jsonl,
)
from detector.synth.catalog import PII_TABLES

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_CLOUDTRAIL = DATA / "cloudtrail" / "invictus_stratus" / "events_sorted.jsonl"
DAYS = 7.0
PER_DAY = 3000
SMALL = dict(seed=3, days=DAYS, n_users=30, n_services=5, n_api_keys=8, events_per_day=PER_DAY)
END = DEFAULT_START + DAYS * 86400


@pytest.fixture(scope="module")
def stream() -> list[Message]:
    return list(generate(**SMALL))  # type: ignore[arg-type]


def _doc(m: Message) -> dict:
    return orjson.loads(m.value)


def test_same_arguments_give_byte_identical_output(stream: list[Message]) -> None:
    again = list(generate(**SMALL))  # type: ignore[arg-type]
    assert again == stream
    other = list(generate(**{**SMALL, "seed": 4, "days": 1.0}))  # type: ignore[arg-type]
    assert [m.value for m in other[:50]] != [m.value for m in stream[:50]]


def test_messages_are_time_ordered_within_the_timeline(stream: list[Message]) -> None:
    stamps = [m.timestamp for m in stream]
    assert stamps == sorted(stamps)
    assert stamps[0] >= DEFAULT_START and stamps[-1] < END


def test_every_scenario_is_present_labelled_and_after_the_history(stream: list[Message]) -> None:
    labels = Counter(m.label for m in stream)
    assert set(labels) - {None} == set(SCENARIOS)
    history_end = DEFAULT_START + 0.8 * DAYS * 86400
    assert min(m.timestamp for m in stream if m.label) >= history_end
    assert labels[None] > 0.8 * len(stream)


def test_volume_is_close_to_the_requested_rate(stream: list[Message]) -> None:
    normal = sum(1 for m in stream if m.label is None)
    assert normal == pytest.approx(DAYS * PER_DAY, rel=0.1)
    assert {m.topic for m in stream} == {"cloudtrail", "ecs", "inference"}


def test_event_ids_are_unique_and_match_the_record(stream: list[Message]) -> None:
    assert len({m.event_id for m in stream}) == len(stream)
    for m in stream[::97]:
        doc = _doc(m)
        inner = doc["eventID"] if m.topic == "cloudtrail" else doc["event"]["id"]
        assert inner == m.event_id


def test_cloudtrail_records_have_the_top_level_keys_of_real_records(stream: list[Message]) -> None:
    real = {frozenset(orjson.loads(line)) for line in REAL_CLOUDTRAIL.open("rb")}
    for m in (m for m in stream if m.topic == "cloudtrail"):
        doc = _doc(m)
        # the real sample has no failed sign-in (errorMessage only); compare it without that
        failed_login = doc["eventName"] == "ConsoleLogin" and "errorCode" not in doc
        keys = frozenset(doc) - ({"errorMessage"} if failed_login else set())
        assert keys in real, sorted(keys)
        ident = doc["userIdentity"]
        name = ident.get("userName") or ident["sessionContext"]["sessionIssuer"]["userName"]
        assert m.key == name.encode()


def test_documented_fields_per_format(stream: list[Message]) -> None:
    for m in stream[::13]:
        doc = _doc(m)
        if m.topic == "ecs":
            assert doc["event"]["category"][0] in {"database", "web", "authentication", "file"}
            assert doc["user"]["name"] and doc["source"]["ip"] and doc["user_agent"]["original"]
            assert doc["source"]["geo"]["country_iso_code"]
            if doc["event"]["category"] == ["database"]:
                assert doc["db"]["response"]["returned_rows"] >= 0
        elif m.topic == "inference":
            assert doc["gen_ai"]["request"]["model"]
            assert doc["auditwatch"]["inference"]["api_key_id"] == m.key.decode()
            vec = doc["auditwatch"]["inference"]["input"].get("vector", [])
            assert len(vec) <= 64 and all(math.isfinite(v) for v in vec)
            assert isinstance(doc["event"]["duration"], int)
        else:
            assert doc["eventTime"].endswith("Z") and len(doc["eventTime"]) == 20


def test_every_generated_message_parses_without_rejections(stream: list[Message]) -> None:
    events, rejected, origins = parse_batch([m.value for m in stream], ParseOptions(), now=END)
    assert rejected == []
    assert len(events) == len(stream)
    for ev, i in zip(events[::50], origins[::50], strict=True):
        assert ev.event_id == stream[i].event_id
        assert ev.source_format == stream[i].topic
        assert ev.timestamp == pytest.approx(stream[i].timestamp, abs=1e-3)


def _by_label(stream: list[Message], label: str) -> list[dict]:
    return [_doc(m) for m in stream if m.label == label]


def test_bulk_exfiltration_is_huge_and_at_night(stream: list[Message]) -> None:
    docs = [d for d in _by_label(stream, "bulk_exfiltration") if "db" in d]
    victim = docs[0]["user"]["name"]
    usual = [
        _doc(m)["db"]["response"]["returned_rows"]
        for m in stream
        if m.label is None and m.key == victim.encode() and b'"returned_rows"' in m.value
    ]
    assert len(usual) >= 5
    assert min(d["db"]["response"]["returned_rows"] for d in docs) > 50 * statistics.median(usual)
    assert {d["url"]["path"].removeprefix("/db/") for d in docs} <= set(PII_TABLES)
    world = World(SMALL["seed"], (30, 5, 8), FORMATS)
    tz = next(e.tz_hours for e in world.entities if e.key == victim)
    first = min(m.timestamp for m in stream if m.label == "bulk_exfiltration")
    assert 3.0 <= ((first / 3600 + tz) % 24) < 4.5


def test_brute_force_fails_many_times_then_succeeds_from_one_ip(stream: list[Message]) -> None:
    docs = _by_label(stream, "console_brute_force")
    outcomes = [d["responseElements"]["ConsoleLogin"] for d in docs]
    assert outcomes[-1] == "Success" and outcomes.count("Failure") >= 50
    assert len({d["sourceIPAddress"] for d in docs}) == 1


def test_stolen_credentials_come_from_tor_with_a_new_agent(stream: list[Message]) -> None:
    docs = _by_label(stream, "stolen_credentials")
    ips = {d.get("sourceIPAddress") or d["source"]["ip"] for d in docs}
    assert all(ip.startswith("185.220.101.") for ip in ips)


def test_first_time_admin_actions_were_never_done_before(stream: list[Message]) -> None:
    docs = _by_label(stream, "first_time_admin")
    names = {d["eventName"] for d in docs}
    assert names == {"CreateAccessKey", "AttachUserPolicy", "StopLogging"}
    victim = docs[0]["userIdentity"]["userName"].encode()
    before = [_doc(m)["eventName"] for m in stream if m.key == victim and m.topic == "cloudtrail"]
    assert before.count("CreateAccessKey") == 1 and before.count("StopLogging") == 1


def test_model_extraction_is_fast_uniform_and_unsure(stream: list[Message]) -> None:
    msgs = [m for m in stream if m.label == "model_extraction"]
    assert len(msgs) >= 2000
    rate = len(msgs) / (msgs[-1].timestamp - msgs[0].timestamp)
    assert rate > 3.0
    conf = [_doc(m)["auditwatch"]["inference"]["output"]["confidence"] for m in msgs]
    normal = [
        _doc(m)["auditwatch"]["inference"]["output"]["confidence"]
        for m in stream
        if m.label is None and m.key == msgs[0].key and b'"confidence"' in m.value
    ]
    assert statistics.median(conf) < statistics.median(normal) - 0.2


def test_service_role_used_interactively_from_a_workstation(stream: list[Message]) -> None:
    docs = [d for d in _by_label(stream, "service_interactive") if "userIdentity" in d]
    assert docs and all(d["userIdentity"]["type"] == "AssumedRole" for d in docs)
    assert all(d["sourceIPAddress"].startswith("10.2") for d in docs)
    assert all(not d["userAgent"].startswith(("aws-sdk", "Boto3")) for d in docs)


def test_explicit_injection_and_format_filter() -> None:
    base = dict(seed=1, days=0.5, n_users=6, n_services=2, n_api_keys=3, events_per_day=2000)
    keys = {m.key for m in generate(**base, attacks=[])}  # type: ignore[arg-type]
    victim = next(k for k in sorted(keys) if k.startswith(b"ak_live_"))
    inj = [Injection("membership_inference", DEFAULT_START + 3600, victim.decode())]
    msgs = list(generate(**base, formats=("inference",), injections=inj))  # type: ignore[arg-type]
    assert {m.topic for m in msgs} == {"inference"}
    labelled = [m for m in msgs if m.label]
    assert labelled and {m.label for m in labelled} == {"membership_inference"}
    assert all(m.key == victim and m.timestamp >= DEFAULT_START + 3600 for m in labelled)
    with pytest.raises(ValueError, match="unknown attack"):
        generate(attacks=["nope"])


def test_write_jsonl_writes_values_and_labels(tmp_path: Path) -> None:
    out = tmp_path / "traffic.jsonl"
    n = write_jsonl(
        out, seed=2, days=0.2, n_users=6, n_services=2, n_api_keys=3, events_per_day=5000
    )
    lines = out.read_bytes().splitlines()
    rows = list(csv.DictReader((tmp_path / "labels.csv").open()))
    assert n == len(lines) == len(rows) > 500
    first = [orjson.loads(x) for x in lines[:5]]
    assert [r["event_id"] for r in rows[:5]] == [
        d.get("eventID") or d["event"]["id"] for d in first
    ]
    assert all(r["label"] == "" for r in rows[:20])  # history first, attacks later
    assert {r["label"] for r in rows} - {""}
    assert {r["topic"] for r in rows} == {"cloudtrail", "ecs", "inference"}


def test_live_uses_the_clock_and_injects_attacks_periodically() -> None:
    now = [1_900_000_000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    gen = live(5, rate_per_s=20.0, attack_every_s=30.0, clock=lambda: now[0], sleep=sleep)
    msgs = [next(gen) for _ in range(3000)]
    stamps = [m.timestamp for m in msgs]
    assert stamps == sorted(stamps) and stamps[0] >= 1_900_000_000.0
    assert max(abs(m.timestamp - t) for m, t in zip(msgs, stamps, strict=True)) == 0
    assert now[0] >= stamps[-1]  # yielded only once the clock reached the event
    assert len({m.label for m in msgs if m.label}) >= 2


def test_output_does_not_depend_on_the_process_hash_seed() -> None:
    code = (
        "import hashlib, sys; from detector.synth import generate; h = hashlib.sha256()\n"
        "for m in generate(seed=9, days=0.3, n_users=8, n_services=2, n_api_keys=3,"
        " events_per_day=3000): h.update(m.value + m.key + str(m.label).encode())\n"
        "print(h.hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1 and len(digests.pop().strip()) == 64
