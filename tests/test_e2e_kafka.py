"""End to end on real servers: Kafka-compatible broker -> daemon -> OpenSearch-compatible
index and Prometheus. Mixed traffic with injected attacks, malformed input, a restart."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from e2e import (
    all_alerts,
    committed_behind,
    config_file,
    produce,
    read_topic,
    run_until_idle,
    settings_for,
    specs_for,
    start_cli,
    topics_for,
    traffic,
    wait_for_alert_count,
    write_models,
)
from servers import free_port

from detector.metrics import Metrics

pytestmark = pytest.mark.integration
MALFORMED = [
    b"{not json",
    b"\xff\xfe\x00garbage",
    b'{"@timestamp": "2026-01-01T00:00:00Z", "event": {"action": "x"}}',  # no user
    b"[]",
]


def test_attacks_alert_with_explanations_in_index_and_metrics_in_prometheus(
    kafka_broker, search_server, prometheus_server, unique_name, tmp_path: Path
) -> None:
    topics = topics_for(kafka_broker, unique_name)
    messages = traffic(seed=7)
    labels = {m.event_id: m.label for m in messages if m.label}
    produce(kafka_broker.bootstrap, [(topics[m.topic], m.key, m.value) for m in messages])
    produce(kafka_broker.bootstrap, [(topics["ecs"], None, bad) for bad in MALFORMED])

    port = free_port()
    prefix = unique_name("alerts")
    settings = settings_for(
        kafka_broker.bootstrap,
        unique_name("group"),
        topics["dead_letter"],
        search_server.url,
        prefix,
        tmp_path,
        metrics_port=port,
    )
    metrics = Metrics()
    prometheus = prometheus_server([f"127.0.0.1:{port}"])
    assert run_until_idle(settings, specs_for(topics), metrics) == 0

    scored = sum(
        metrics.registry.get_sample_value("auditwatch_events_scored_total", {"model": m}) or 0
        for m in ("cloudtrail-access", "ecs-access", "inference")
    )
    assert scored == len(messages)  # every event scored exactly once

    alerts = all_alerts(search_server.url, prefix)
    assert alerts, "no alerts written"
    assert len({a["_id"] for a in alerts}) == len(alerts)
    for doc in alerts:
        assert doc["_id"] == doc["event"]["id"]
        assert doc["event"]["kind"] == "alert"
        assert doc["auditwatch"]["explanation"] and doc["message"]
    caught = Counter(
        labels[a["auditwatch"]["source_event"]["id"]]
        for a in alerts
        if a["auditwatch"]["source_event"]["id"] in labels
    )
    assert len(caught) >= 4, f"attack scenarios caught: {dict(caught)}"
    precision = sum(caught.values()) / len(alerts)
    assert precision >= 0.5, f"only {precision:.0%} of alerts are injected attacks"

    dead = read_topic(kafka_broker.bootstrap, topics["dead_letter"], len(MALFORMED))
    assert sorted(r.value for r in dead) == sorted(MALFORMED)
    reasons = {dict(r.headers)["auditwatch.reason"] for r in dead}
    assert b"invalid_json" in reasons and b"missing_field" in reasons

    # A real Prometheus scraped the daemon's /metrics while it ran.
    result = prometheus.wait_for(
        "sum(auditwatch_events_scored_total)",
        lambda r: r and float(r[0]["value"][1]) > 0,
        timeout=30,
    )
    assert float(result[0]["value"][1]) > 0
    errors = prometheus.query('sum(auditwatch_parse_errors_total{reason="invalid_json"})')
    assert errors and float(errors[0]["value"][1]) >= 1


@pytest.mark.parametrize("backend", ["kafka-python", "confluent"])
def test_sigterm_restart_mid_stream_scores_everything_without_duplicates(
    kafka_broker, search_server, unique_name, tmp_path: Path, backend: str
) -> None:
    topics = topics_for(kafka_broker, unique_name)
    write_models(tmp_path, topics)
    messages = traffic(seed=5, days=3.0, events_per_day=4_000)
    half = len(messages) // 2
    settings = settings_for(
        kafka_broker.bootstrap,
        unique_name("group"),
        topics["dead_letter"],
        search_server.url,
        unique_name("alerts"),
        tmp_path,
    )
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"backend": backend})}
    )
    config = config_file(tmp_path, settings)
    log = tmp_path / "daemon.log"

    produce(kafka_broker.bootstrap, [(topics[m.topic], m.key, m.value) for m in messages[:half]])
    first = start_cli(config, log)
    wait_for_alert_count(search_server.url, settings.elasticsearch.index_prefix, 1)
    produce(kafka_broker.bootstrap, [(topics[m.topic], m.key, m.value) for m in messages[half:]])
    time.sleep(1.0)  # mid-stream: the second half is being consumed
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0, log.read_text()[-3000:]

    second = start_cli(config, log)
    try:
        produced = Counter(topics[m.topic] for m in messages)
        behind = committed_behind(kafka_broker.bootstrap, settings.kafka.group_id, produced)
        assert behind and all(v == 0 for v in behind.values()), behind
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    runs = re.findall(r"stopped: (\d+) events scored and committed", text)
    assert len(runs) == 2 and sum(map(int, runs)) == len(messages), runs
    alerts = all_alerts(search_server.url, settings.elasticsearch.index_prefix)
    ids = [a["_id"] for a in alerts]
    assert len(ids) == len(set(ids))
    sources = Counter(a["auditwatch"]["source_event"]["id"] for a in alerts)
    assert max(sources.values()) == 1  # no event alerted twice across the restart
