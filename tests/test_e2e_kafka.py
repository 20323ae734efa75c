"""End to end on real servers: Kafka-compatible broker -> daemon -> OpenSearch-compatible
index and Prometheus. Mixed traffic with injected attacks, malformed input, a restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from e2e import REPO, all_alerts, produce, read_topic, run_until_idle, settings_for, specs_for
from servers import free_port

from detector.metrics import Metrics
from detector.synth import generate

pytestmark = pytest.mark.integration
MALFORMED = [
    b"{not json",
    b"\xff\xfe\x00garbage",
    b'{"@timestamp": "2026-01-01T00:00:00Z", "event": {"action": "x"}}',  # no user
    b"[]",
]


def traffic(seed: int, days: float = 5.0, events_per_day: int = 8_000) -> list:
    return list(
        generate(
            seed=seed,
            days=days,
            n_users=80,
            n_services=10,
            n_api_keys=12,
            events_per_day=events_per_day,
        )
    )


def topics_for(kafka_broker, unique_name) -> dict[str, str]:
    topics = {
        fmt: kafka_broker.create_topic(unique_name(fmt))
        for fmt in ("cloudtrail", "ecs", "inference")
    }
    topics["dead_letter"] = kafka_broker.create_topic(unique_name("dlq"))
    return topics


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


def _config_file(tmp_path: Path, settings) -> Path:
    es = settings.elasticsearch
    path = tmp_path / "auditwatch.toml"
    path.write_text(
        f'models_dir = "{tmp_path / "models"}"\n'
        "[kafka]\n"
        f'bootstrap_servers = ["{settings.kafka.bootstrap_servers[0]}"]\n'
        f'group_id = "{settings.kafka.group_id}"\n'
        "session_timeout_ms = 6000\nheartbeat_interval_ms = 1000\npoll_timeout_ms = 300\n"
        f'dead_letter_topic = "{settings.kafka.dead_letter_topic}"\n'
        "[elasticsearch]\n"
        f'hosts = ["{es.hosts[0]}"]\nindex_prefix = "{es.index_prefix}"\n'
        "compat_plain_json = true\n"
        "[metrics]\nenabled = false\n"
    )
    return path


def _write_models(tmp_path: Path, topics: dict[str, str]) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    for src in sorted((REPO / "models").glob("*.toml")):
        text = src.read_text()
        for fmt in ("cloudtrail", "ecs", "inference"):
            text = text.replace(f'topics = ["{fmt}"]', f'topics = ["{topics[fmt]}"]')
        (folder / src.name).write_text(text)


def _start_cli(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "detector", "run", "--config", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for_alert_count(url: str, prefix: str, minimum: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        try:
            count = len(all_alerts(url, prefix))
        except Exception:  # index not created yet
            count = 0
        if count >= minimum:
            break
        time.sleep(1)
    return count


def test_sigterm_restart_mid_stream_scores_everything_without_duplicates(
    kafka_broker, search_server, unique_name, tmp_path: Path
) -> None:
    topics = topics_for(kafka_broker, unique_name)
    _write_models(tmp_path, topics)
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
    config = _config_file(tmp_path, settings)
    log = tmp_path / "daemon.log"

    produce(kafka_broker.bootstrap, [(topics[m.topic], m.key, m.value) for m in messages[:half]])
    first = _start_cli(config, log)
    _wait_for_alert_count(search_server.url, settings.elasticsearch.index_prefix, 1)
    produce(kafka_broker.bootstrap, [(topics[m.topic], m.key, m.value) for m in messages[half:]])
    time.sleep(1.0)  # mid-stream: the second half is being consumed
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0, log.read_text()[-3000:]

    second = _start_cli(config, log)
    try:
        # the group's committed offsets must reach the last message of every topic
        # (counted from what we produced: the test broker's end offsets are per batch)
        from kafka import KafkaConsumer, TopicPartition

        produced = Counter(topics[m.topic] for m in messages)
        deadline = time.monotonic() + 120
        behind: dict[str, int] = {}
        while time.monotonic() < deadline:
            probe = KafkaConsumer(
                bootstrap_servers=kafka_broker.bootstrap,
                group_id=settings.kafka.group_id,
                enable_auto_commit=False,
            )
            behind = {
                t: n - (probe.committed(TopicPartition(t, 0)) or 0) for t, n in produced.items()
            }
            probe.close()
            if all(v == 0 for v in behind.values()):
                break
            time.sleep(1)
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
