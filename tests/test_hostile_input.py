"""Hostile input past the parser (issue 4, item 4): through the model runner, the
pipeline, the dead-letter destinations and the real broker.

Every bad message is dead-lettered with a reason and counted, or handled as documented,
and nothing it does changes how good events are scored. The parser's own contract is
tested in test_parsers.py, test_parsers_properties.py and the corpus in fuzz_corpus/;
docs/input-formats.md ("Hostile input") lists where each case of the issue is tested.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import random
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from e2e import all_alerts, produce, read_topic, run_until_idle, settings_for, specs_for
from factories import T0, access_event, inference_event, process_in_batches
from kafka import KafkaProducer

from detector.alerts import alert_id, iso
from detector.cli import main
from detector.events import Event
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec, load_models
from detector.parsers import ParseOptions, parse_message
from detector.parsers.common import MIN_TIMESTAMP
from detector.pipeline import BatchResult, Pipeline, RawMessage
from detector.runner import ModelRunner
from detector.sinks.elasticsearch import ElasticsearchSink
from detector.synth import generate

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
NOW = 1_800_000_000.0
OPTS = ParseOptions()
MAX_DOUBLE = 1.7976931348623157e308
TEN_MB = 10_000_000
HOSTILE = "__hostile__"

# --- non-finite and huge numbers ----------------------------------------------------------

BASE: dict[str, dict[str, Any]] = {
    "ecs": {"@timestamp": "2024-05-01T00:00:00Z", "user": {"name": "alice"}},
    "cloudtrail": {
        "eventTime": "2024-05-01T00:00:00Z",
        "eventSource": "bedrock.amazonaws.com",
        "eventName": "InvokeModel",
        "userIdentity": {"type": "IAMUser", "userName": "bob"},
        "requestParameters": {"modelId": "m"},
    },
    "inference": {
        "@timestamp": "2024-05-01T00:00:00Z",
        "gen_ai": {"request": {"model": "m"}},
        "user": {"id": "u"},
    },
}
NUMERIC_FIELDS = [
    ("ecs", "destination.bytes"),
    ("ecs", "source.bytes"),
    ("ecs", "http.response.body.bytes"),
    ("ecs", "db.response.returned_rows"),
    ("cloudtrail", "additionalEventData.bytesTransferredOut"),
    ("cloudtrail", "additionalEventData.bytesTransferredIn"),
    ("cloudtrail", "additionalEventData.inputTokens"),
    ("cloudtrail", "additionalEventData.outputTokens"),
    ("inference", "gen_ai.usage.input_tokens"),
    ("inference", "gen_ai.usage.output_tokens"),
    ("inference", "auditwatch.inference.input.size_bytes"),
    ("inference", "auditwatch.inference.output.confidence"),
    ("inference", "auditwatch.inference.output.entropy"),
    ("inference", "event.duration"),
]
TIMESTAMP_FIELDS = [("ecs", "@timestamp"), ("cloudtrail", "eventTime"), ("inference", "@timestamp")]
# JSON has no NaN or Infinity; orjson refuses these, and numbers that overflow a double
NON_FINITE_LITERALS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"9" * 400]
NON_FINITE_STRINGS = ["NaN", "nan", "Infinity", "-inf", "1e400", "-1E400"]


def hostile_message(kind: str, path: str, token: bytes | str, in_list: bool = False) -> bytes:
    """``BASE[kind]`` with ``token`` (raw JSON bytes, or a string value) at dotted ``path``."""
    doc = copy.deepcopy(BASE[kind])
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    value = token if isinstance(token, str) else HOSTILE
    node[last] = [0.5, value] if in_list else value
    data = orjson.dumps(doc)
    return data if isinstance(token, str) else data.replace(f'"{HOSTILE}"'.encode(), token)


def reasons(data: bytes | None) -> list[str]:
    events, rejected = parse_message(data, OPTS, now=NOW)  # type: ignore[arg-type]
    assert events == [] and all(r.original is data for r in rejected)
    return [r.reason for r in rejected]


@pytest.mark.parametrize(("kind", "path"), NUMERIC_FIELDS)
def test_non_finite_numbers_in_every_numeric_field_are_rejected(kind: str, path: str) -> None:
    for token in [*NON_FINITE_LITERALS, *NON_FINITE_STRINGS]:
        assert reasons(hostile_message(kind, path, token)) == ["non_finite_number"], token


@pytest.mark.parametrize(("kind", "path"), TIMESTAMP_FIELDS)
def test_non_finite_timestamps_are_rejected(kind: str, path: str) -> None:
    for token in NON_FINITE_LITERALS:
        assert reasons(hostile_message(kind, path, token)) == ["non_finite_number"], token
    for text in NON_FINITE_STRINGS:  # a string timestamp must be ISO 8601
        assert reasons(hostile_message(kind, path, text)) == ["bad_timestamp"], text


def test_non_finite_input_vector_items_are_rejected() -> None:
    path = "auditwatch.inference.input.vector"
    for token in NON_FINITE_LITERALS:
        message = hostile_message("inference", path, token, in_list=True)
        assert reasons(message) == ["non_finite_number"], token
    for text in NON_FINITE_STRINGS:  # items must be JSON numbers, not numeric strings
        assert reasons(hostile_message("inference", path, text, in_list=True)) == ["bad_type"]


def extreme_event(kind: str, at: float, entity: str) -> Event:
    """A valid message with the largest finite numbers in every numeric field, parsed."""
    doc: dict[str, Any] = {"@timestamp": iso(at), "user": {"name": entity}}
    if kind == "access":
        doc.update(destination={"bytes": MAX_DOUBLE}, db={"response": {"returned_rows": 1e300}})
    else:
        doc["gen_ai"] = {"request": {"model": "fraud"}, "usage": {"output_tokens": MAX_DOUBLE}}
        doc["auditwatch"] = {"inference": {
            "input": {"vector": [MAX_DOUBLE, -MAX_DOUBLE, 1e300], "size_bytes": MAX_DOUBLE},
            "output": {"confidence": 1.0, "entropy": MAX_DOUBLE},
        }}  # fmt: skip
    events, rejected = parse_message(orjson.dumps(doc), OPTS, now=NOW)
    assert rejected == [] and len(events) == 1
    ev = events[0]
    if kind == "inference":  # the factory stream's caller shape: an API key on model "fraud"
        ev.entity_type, ev.peer_group = "api_key", "api_key"
    return ev


def small_spec(kind: str) -> ModelSpec:
    return ModelSpec(
        name="m", kind=kind, topics=["t"], detector={"block_size": 64, "warmup_events": 128}
    )


@pytest.mark.parametrize("kind", ["access", "inference"])
def test_largest_finite_numbers_are_accepted_and_keep_every_feature_finite(kind: str) -> None:
    """Squares of such values overflow; they must not turn features or running
    statistics into inf/NaN for the events that come after them."""
    make = access_event if kind == "access" else inference_event
    events = [make(i, entity=f"u{i % 7}") for i in range(1_200)]
    for i in (300, 301, 650, 900):
        events[i] = extreme_event(kind, events[i].timestamp, "mallory" if i < 900 else "u1")
    runner, featurizer = ModelRunner(small_spec(kind)), ModelRunner(small_spec(kind)).featurizer
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow anywhere, not even on the way
        X, _ = featurizer.featurize(events, [ev.entity for ev in events])
        out = runner.process(events, [None] * len(events), now=0.0)
    assert np.isfinite(X).all()
    assert np.isfinite(out.severity).all() and out.severity[-500:].any()
    assert np.isfinite(runner.stats.mean).all() and np.isfinite(runner.stats.var).all()


EXTRA_IN_KNOWN_OBJECTS = {
    "ecs": {"user": {"nickname": ["a", 1]}, "event": {"reference": {"x": None}}},
    "cloudtrail": {"userIdentity": {"extra": [1e300]}, "additionalEventData": {"x": "y"}},
    "inference": {"gen_ai": {"system": {"a": 1}}, "auditwatch": {"inference": {"x": True}}},
}
IDS = {"ecs": ("event", "id"), "cloudtrail": ("eventID",), "inference": ("event", "id")}


def merge(doc: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def event_fields(data: bytes) -> list[str]:
    """Every Event field, as reprs (NaN compares equal that way)."""
    events, rejected = parse_message(data, OPTS, now=NOW)
    assert rejected == [] and len(events) == 1
    return [repr(getattr(events[0], f.name)) for f in dataclasses.fields(Event)]


@pytest.mark.parametrize("kind", ["ecs", "cloudtrail", "inference"])
def test_extra_fields_are_ignored(kind: str) -> None:
    """Unknown fields, at the top and inside known objects, of any type and depth up to
    the limit, change nothing in the event (given an id: else the content hash changes)."""
    *parents, last = IDS[kind]
    doc = merge(BASE[kind], {parents[0]: {last: "id-1"}} if parents else {last: "id-1"})
    junk: dict[str, Any] = {f"x{i}": {"l": [i, None, {"k": "v"}], "n": 1e300} for i in range(500)}
    junk["nested"] = {"a": {"b": {"c": {"d": [[[["deep"]]]]}}}}
    noisy = merge(merge(doc, EXTRA_IN_KNOWN_OBJECTS[kind]), junk)
    assert event_fields(orjson.dumps(noisy)) == event_fields(orjson.dumps(doc))


# --- timestamps -----------------------------------------------------------------------------


def test_timestamp_range_limits_are_exact() -> None:
    """Accepted: [2000-01-01T00:00:00Z, now + max_clock_skew_s], as strings or epoch millis."""
    latest = NOW + OPTS.max_clock_skew_s

    def accepted(value: Any) -> bool:
        events, _ = parse_message(
            orjson.dumps({"@timestamp": value, "user.name": "a"}), OPTS, now=NOW
        )
        return bool(events)

    assert accepted("2000-01-01T00:00:00Z") and accepted(MIN_TIMESTAMP * 1000)
    assert not accepted("1999-12-31T23:59:59.999Z") and not accepted(MIN_TIMESTAMP * 1000 - 1)
    assert accepted(latest * 1000) and not accepted(latest * 1000 + 1)
    assert accepted(iso(latest)) and not accepted(iso(latest + 1))
    ct = dict(BASE["cloudtrail"], eventTime="1999-12-31T23:59:59Z")
    assert reasons(orjson.dumps(ct)) == ["timestamp_out_of_range"]


@pytest.mark.parametrize("kind", ["access", "inference"])
def test_out_of_order_and_extreme_timestamps_score_finite(kind: str) -> None:
    """Events are scored in arrival order, whatever their timestamps: an entity's clock
    never runs backwards (an older event does not decay its counters)."""
    make = access_event if kind == "access" else inference_event
    events = [make(i, entity=f"u{i % 7}") for i in range(1_000)]
    random.Random(5).shuffle(events)  # hours out of order
    events[500].timestamp = MIN_TIMESTAMP  # the oldest accepted
    events[501].timestamp = NOW + OPTS.max_clock_skew_s  # the latest accepted (2027)
    events[502].timestamp = T0  # then back to 2025
    runner = ModelRunner(small_spec(kind))
    out = runner.process(events, [None] * len(events), now=0.0)
    assert np.isfinite(out.severity).all() and ((out.severity >= 0) & (out.severity <= 100)).all()
    assert out.severity[-300:].any()  # still scoring after the jumps
    profile = dict(runner.featurizer.entities.items())[events[501].entity]
    assert profile.last_ts == events[501].timestamp


# --- through the pipeline -----------------------------------------------------------------


def pipeline(metrics: Metrics | None = None) -> Pipeline:
    return Pipeline(load_models(REPO / "models"), ParseOptions(), metrics or Metrics())


def ecs_values(n: int, seed: int = 3) -> list[bytes]:
    messages = generate(seed=seed, days=1.0, events_per_day=n, formats=("ecs",))
    return [m.value for m in messages][:n]


def ten_mb_message() -> bytes:
    pad = b"x" * TEN_MB
    return b'{"@timestamp":"2026-11-20T00:00:00Z","user.name":"a","pad":"' + pad + b'"}'


def hostile_values() -> list[bytes | None]:
    """Every corpus file, a 10 MB message, a tombstone, and valid events of formats that
    no model takes on the ``ecs`` topic."""
    corpus: list[bytes | None] = [p.read_bytes() for p in sorted(CORPUS.iterdir())]
    cloudtrail = orjson.dumps(dict(BASE["cloudtrail"], eventTime="2026-11-20T00:00:00Z"))
    inference = orjson.dumps(dict(BASE["inference"], **{"@timestamp": "2026-11-20T00:00:00Z"}))
    return [*corpus, ten_mb_message(), None, cloudtrail, inference]


def run(values: list[bytes | None], batch: int = 500) -> tuple[BatchResult, Metrics]:
    """Every value through one pipeline on topic ``ecs``, in batches; results merged."""
    metrics = Metrics()
    p = pipeline(metrics)
    msgs = [RawMessage("ecs", 0, i, v) for i, v in enumerate(values)]  # type: ignore[arg-type]
    return process_in_batches(p, msgs, batch), metrics


def parse_errors(metrics: Metrics, reason: str) -> float:
    labels = {"stream": "ecs", "reason": reason}
    return metrics.registry.get_sample_value("auditwatch_parse_errors_total", labels) or 0.0


def test_ten_megabyte_message_is_dead_lettered_and_counted() -> None:
    big = ten_mb_message()
    result, metrics = run([*ecs_values(20), big])
    assert result.events == 20
    [(rejected, msg)] = result.rejected
    assert (rejected.reason, msg.offset) == ("too_large", 20) and msg.value is big
    assert parse_errors(metrics, "too_large") == 1


def test_ten_megabyte_line_goes_to_the_dead_letter_file(tmp_path: Path) -> None:
    """``auditwatch score``: the dead-letter record keeps the whole original."""
    big = ten_mb_message()
    good = ecs_values(20)
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join([*good[:10], big, *good[10:]]) + b"\n")
    dead = tmp_path / "dead.jsonl"
    args = ["score", str(source), "--scores", str(tmp_path / "s.jsonl"), "--no-progress"]
    assert main([*args, "--alerts", str(tmp_path / "a.jsonl"), "--dead-letter", str(dead)]) == 0
    [record] = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert record["reason"] == "too_large" and record["source"]["offset"] == 10
    assert base64.b64decode(record["original_base64"]) == big
    assert len((tmp_path / "s.jsonl").read_bytes().splitlines()) == len(good)


def test_hostile_messages_do_not_change_how_good_events_are_scored() -> None:
    """The same good events, alone or with every hostile message mixed in: the same
    severity for every event, the same alerts; each hostile message dead-lettered and
    counted by reason."""
    good = ecs_values(2_500)
    hostile = hostile_values()
    mixed: list[bytes | None] = []
    for i, value in enumerate(good):
        mixed.append(value)
        if i % 40 == 7:
            mixed.append(hostile[(i // 40) % len(hostile)])
    clean_result, _ = run(list(good))
    mixed_result, metrics = run(mixed, batch=333)  # other batch cuts too: order is what counts
    assert mixed_result.scores == clean_result.scores
    assert clean_result.alerts, "the stream should raise alerts"
    assert [(a["event"]["id"], a["event"]["risk_score"]) for a in mixed_result.alerts] == [
        (a["event"]["id"], a["event"]["risk_score"]) for a in clean_result.alerts
    ]
    dead = Counter(rejected.reason for rejected, _ in mixed_result.rejected)
    assert sum(dead.values()) == len(mixed) - len(good)
    assert dead["no_model"] == mixed.count(hostile[-1]) + mixed.count(hostile[-2])
    for reason, count in dead.items():
        assert parse_errors(metrics, reason) == count


@pytest.mark.integration
def test_duplicated_delivery_keeps_one_alert_per_event(search_server, unique_name) -> None:
    """Each copy of a message delivered twice is scored (input is at least once); their
    alerts share the id ``alert_id(model, version, event id)``, so the index keeps one."""
    values = ecs_values(2_500)
    first, _ = run(list(values))
    alerting = {a["auditwatch"]["source_event"]["id"] for a in first.alerts}
    doubled: list[bytes | None] = []
    for value in values:  # every alerting message delivered twice in a row
        doubled.append(value)
        if orjson.loads(value)["event"]["id"] in alerting:  # type: ignore[index]
            doubled.append(value)
    result, _ = run(doubled)
    assert result.events == len(doubled)
    ids = Counter(a["auditwatch"]["source_event"]["id"] for a in result.alerts)
    assert max(ids.values()) == 2, "some duplicate should alert again"
    spec = next(s for s in load_models(REPO / "models") if s.name == "ecs-access")
    for doc in result.alerts:
        source = doc["auditwatch"]["source_event"]["id"]
        assert doc["event"]["id"] == alert_id(spec.name, spec.version, source)
    prefix = unique_name("dups")
    sink = ElasticsearchSink(search_server.url, index_prefix=prefix, compat_plain_json=True)
    sink.add(result.alerts)
    sink.flush()
    sink.close()
    stored = all_alerts(search_server.url, prefix)
    assert sorted(doc["_id"] for doc in stored) == sorted({a["event"]["id"] for a in result.alerts})


@pytest.mark.integration
def test_oversized_message_from_the_broker_is_dead_lettered_and_the_daemon_goes_on(
    kafka_broker, unique_name, tmp_path: Path
) -> None:
    """A 10 MB message the broker accepted (brokers are often set to 10 MB or more) is
    larger than the dead-letter producer may send. The daemon must not stop on it (it
    would stop again on every restart): the dead-letter record carries the reason, the
    size and the source offset, and every good event is scored."""
    names = ("cloudtrail", "ecs", "inference", "dead_letter")
    topics = {name: kafka_broker.create_topic(unique_name(name)) for name in names}
    good = ecs_values(200)
    big = ten_mb_message()
    produce(kafka_broker.bootstrap, [(topics["ecs"], None, v) for v in good[:100]])
    producer = KafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap, acks="all", max_request_size=32 << 20
    )
    producer.send(topics["ecs"], value=big).get(timeout=30)
    producer.close()
    produce(kafka_broker.bootstrap, [(topics["ecs"], None, v) for v in good[100:]])
    settings = settings_for(
        kafka_broker.bootstrap, unique_name("group"), topics["dead_letter"], None, "x", tmp_path
    )
    metrics = Metrics()
    assert run_until_idle(settings, specs_for(topics), metrics) == 0
    scored = metrics.registry.get_sample_value(
        "auditwatch_events_scored_total", {"model": "ecs-access"}
    )
    assert scored == len(good)
    [record] = read_topic(kafka_broker.bootstrap, topics["dead_letter"], 1)
    headers = dict(record.headers)
    assert headers["auditwatch.reason"] == b"too_large" and record.value == b""
    assert headers["auditwatch.original_bytes"] == str(len(big)).encode()
    assert headers["auditwatch.source.offset"] == b"100"
    errors = metrics.registry.get_sample_value(
        "auditwatch_parse_errors_total", {"stream": topics["ecs"], "reason": "too_large"}
    )
    assert errors == 1


def test_huge_entity_keys_are_stored_as_hashes_and_stay_distinct() -> None:
    """A flood of 1 MB user names must not cost 1 MB per tracked entity."""
    from detector.runner import MAX_KEY_CHARS, stored_entity_key, stored_entity_keys

    long_a, long_b = "a" * 1_000_000, "a" * 999_999 + "b"
    assert len(stored_entity_key(long_a)) < MAX_KEY_CHARS
    assert stored_entity_key(long_a) != stored_entity_key(long_b)
    assert stored_entity_key("alice") == "alice" and stored_entity_key(None) == "(unknown)"
    # the batch form: one long or missing key anywhere means every key is checked
    for batch in (["alice", long_a, "bob"], ["alice", None, ""], ["alice", "bob"], []):
        assert stored_entity_keys(list(batch)) == [stored_entity_key(k) for k in batch]
