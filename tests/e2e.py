"""Helpers for end-to-end tests: settings for real servers, producing, reading back."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from detector.config import ElasticsearchSettings, Settings
from detector.demo import local_settings
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec, load_models
from detector.runtime import run_daemon
from detector.sinks.elasticsearch import PlainJsonHttpNode
from detector.synth import generate

REPO = Path(__file__).resolve().parents[1]


def specs_for(topics: dict[str, str]) -> list[ModelSpec]:
    """The shipped models, each reading its per-test topic (keys: cloudtrail/ecs/inference)."""
    specs = []
    for spec in load_models(REPO / "models"):
        fmt = spec.accepted_formats[0]
        specs.append(spec.model_copy(update={"topics": [topics[fmt]]}))
    return specs


def settings_for(
    bootstrap: str,
    group: str,
    dead_letter: str,
    es_url: str | None,
    index_prefix: str,
    tmp: Path,
    metrics_port: int = 0,
) -> Settings:
    base = local_settings(bootstrap, group, tmp / "alerts.db", metrics_port or None)
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"dead_letter_topic": dead_letter}),
            "elasticsearch": ElasticsearchSettings(
                hosts=[es_url] if es_url else [], index_prefix=index_prefix, compat_plain_json=True
            ),
        }
    )


def produce(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    count = 0
    for topic, key, value in records:
        producer.send(topic, key=key, value=value)
        count += 1
    producer.flush()
    producer.close()
    return count


def run_until_idle(
    settings: Settings, specs: list[ModelSpec], metrics: Metrics, idle_polls: int = 6
) -> int:
    """Run the real daemon loop until it has seen ``idle_polls`` empty polls in a row."""
    return run_daemon(settings, specs, threading.Event(), metrics, max_idle_polls=idle_polls)


def es_client(url: str) -> Elasticsearch:
    return Elasticsearch(url, node_class=PlainJsonHttpNode)


def all_alerts(url: str, index_prefix: str) -> list[dict]:
    es = es_client(url)
    es.indices.refresh(index=f"{index_prefix}-*")
    hits = es.search(index=f"{index_prefix}-*", size=10_000, query={"match_all": {}})
    return [{"_id": h["_id"], **h["_source"]} for h in hits["hits"]["hits"]]


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 20) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(timeout_s * 1000),
        enable_auto_commit=False,
    )
    records = []
    for record in consumer:
        records.append(record)
        if len(records) >= expected:
            break
    consumer.close()
    return records


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


def config_file(tmp_path: Path, settings) -> Path:
    es = settings.elasticsearch
    path = tmp_path / "auditwatch.toml"
    path.write_text(
        f'models_dir = "{tmp_path / "models"}"\n'
        f"shutdown_deadline_s = {settings.shutdown_deadline_s}\n"
        "[kafka]\n"
        f'backend = "{settings.kafka.backend}"\n'
        f'bootstrap_servers = ["{settings.kafka.bootstrap_servers[0]}"]\n'
        f'group_id = "{settings.kafka.group_id}"\n'
        "session_timeout_ms = 6000\nheartbeat_interval_ms = 1000\npoll_timeout_ms = 300\n"
        f"max_poll_records = {settings.kafka.max_poll_records}\n"
        f'dead_letter_topic = "{settings.kafka.dead_letter_topic}"\n'
        "[elasticsearch]\n"
        f'hosts = ["{es.hosts[0]}"]\nindex_prefix = "{es.index_prefix}"\n'
        f"compat_plain_json = true\nrequest_timeout = {es.request_timeout}\n"
        "[metrics]\nenabled = false\n"
        f'[state]\ndir = "{settings.state.dir}"\n'
        f"checkpoint_interval_s = {settings.state.checkpoint_interval_s}\n"
    )
    return path


def write_models(tmp_path: Path, topics: dict[str, str]) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    for src in sorted((REPO / "models").glob("*.toml")):
        text = src.read_text()
        for fmt in ("cloudtrail", "ecs", "inference"):
            text = text.replace(f'topics = ["{fmt}"]', f'topics = ["{topics[fmt]}"]')
        (folder / src.name).write_text(text)


STARTED = b"consuming ["  # logged once the signal handlers are in place


def start_cli(config: Path, log: Path, timeout_s: float = 60) -> subprocess.Popen:
    """``auditwatch run`` appending to ``log``, returned once it has started consuming (or
    exited): a SIGTERM before its handlers are installed would kill it with -15, which is
    what happened when a fast first run left the second nothing to do."""
    before = log.read_bytes().count(STARTED) if log.exists() else 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector", "run", "--config", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        if log.read_bytes().count(STARTED) > before:
            break
        time.sleep(0.05)
    return proc


def wait_for_alert_count(url: str, prefix: str, minimum: int, timeout: float = 60) -> int:
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


def committed_behind(
    bootstrap: str, group: str, produced: Counter[str], timeout_s: float = 120
) -> dict[str, int]:
    """Wait until ``group`` has committed every produced message (partition 0 of each topic);
    returns how far behind each topic still is (all zero on success). Counted from what was
    produced: the test broker's end offsets are per batch."""
    deadline = time.monotonic() + timeout_s
    behind: dict[str, int] = {}
    while time.monotonic() < deadline:
        behind = committed(bootstrap, group, produced)
        if all(v == 0 for v in behind.values()):
            break
        time.sleep(0.5)
    return behind


def committed(bootstrap: str, group: str, produced: Counter[str]) -> dict[str, int]:
    """Messages of each topic not yet committed by ``group``."""
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {t: n - (probe.committed(TopicPartition(t, 0)) or 0) for t, n in produced.items()}
    finally:
        probe.close()
