"""Helpers for end-to-end tests: settings for real servers, producing, reading back."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer

from detector.config import ElasticsearchSettings, Settings
from detector.demo import local_settings
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec, load_models
from detector.runtime import run_daemon
from detector.sinks.elasticsearch import PlainJsonHttpNode

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
