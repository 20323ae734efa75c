"""The server fixtures start real, working servers and stop them cleanly."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, start_http_server
from servers import (
    KafkaBroker,
    PrometheusServer,
    SearchServer,
    ServerStartError,
    free_port,
    start_search_server,
    unique_name,
)

pytestmark = pytest.mark.integration


def _producer(broker: KafkaBroker, **kwargs: object) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=broker.bootstrap, **kwargs)


def _consume_one(broker: KafkaBroker, topic: str, group: str) -> list[bytes]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    try:
        deadline = time.monotonic() + 20
        values: list[bytes] = []
        while not values and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(record.value for record in records)
        consumer.commit()
        return values
    finally:
        consumer.close()


def test_kafka_produce_and_consume_through_a_group(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic(unique_name("servers-topic"))
    producer = _producer(kafka_broker)
    producer.send(topic, b"hello auditwatch").get(timeout=10)
    producer.close()

    assert _consume_one(kafka_broker, topic, unique_name("servers-group")) == [b"hello auditwatch"]


def test_kafka_pause_blocks_requests_and_resume_restores(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic(unique_name("pause-topic"))
    producer = _producer(kafka_broker, request_timeout_ms=1500, max_block_ms=1500, retries=0)
    producer.send(topic, b"before").get(timeout=10)
    kafka_broker.pause()
    try:
        assert kafka_broker.process.state() == "T"  # stopped, not gone
        with pytest.raises(KafkaError):
            producer.send(topic, b"during").get(timeout=3)
    finally:
        kafka_broker.resume()
    producer.close()
    fresh = _producer(kafka_broker)
    fresh.send(topic, b"after").get(timeout=10)
    fresh.close()


def test_unique_names_differ_and_are_topic_safe() -> None:
    names = {unique_name("t") for _ in range(100)}
    assert len(names) == 100
    assert all(name.startswith("t-") and name.isascii() and name.islower() for name in names)


def test_search_server_answers_and_stops(tmp_path: Path, search_server: SearchServer) -> None:
    with urllib.request.urlopen(search_server.url, timeout=5) as resp:
        assert json.loads(resp.read())["version"]["number"]
    private = start_search_server(tmp_path)
    private.stop()
    assert private.process.proc.returncode is not None
    with pytest.raises(OSError):
        urllib.request.urlopen(private.url, timeout=2)


def test_failed_start_raises_with_log_tail(tmp_path: Path) -> None:
    from servers import ManagedProcess

    process = ManagedProcess("bogus", ["sh", "-c", "echo boom-marker; exit 3"], tmp_path / "b.log")
    with pytest.raises(ServerStartError, match="boom-marker"):
        process.wait_ready(lambda: False, timeout=5)


@pytest.fixture
def counter_target() -> Iterator[tuple[str, Counter]]:
    registry = CollectorRegistry()
    counter = Counter("servers_test_events", "events seen", registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{port}", counter
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_prometheus_scrapes_a_counter(
    counter_target: tuple[str, Counter],  # first: set up before, torn down after Prometheus
    prometheus_server: Callable[[list[str]], PrometheusServer],
) -> None:
    target, counter = counter_target
    counter.inc(41)
    prometheus = prometheus_server([target])
    result = prometheus.wait_for(
        "servers_test_events_total", lambda r: bool(r) and float(r[0]["value"][1]) == 41.0
    )
    assert result[0]["metric"]["instance"] == target
    counter.inc()
    prometheus.wait_for("servers_test_events_total", lambda r: float(r[0]["value"][1]) == 42.0)
    assert prometheus.query('up{job="test"}')[0]["value"][1] == "1"
