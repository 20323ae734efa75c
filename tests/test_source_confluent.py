"""The Source contract on the real broker, for both Kafka backends (kafka-python, confluent).

Each test uses its own topic and consumer group; consumers use session 6000 / heartbeat
1000 ms because the test broker holds a group join for about half the session timeout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaProducer
from servers import free_port

from detector.config import KafkaSettings, load_settings
from detector.errors import CheckpointError, ConfigError
from detector.pipeline import RawMessage
from detector.sources import make_source
from detector.sources.base import Source, TopicPartitionKey
from detector.sources.confluent import ConfluentSource, consumer_config
from detector.sources.kafka import KafkaSource

pytestmark = pytest.mark.integration
BACKENDS = ["kafka-python", "confluent"]
# The kafka-python partition hooks are being added alongside; test them once they exist.
HOOK_BACKENDS = [
    b for b in BACKENDS if b == "confluent" or hasattr(KafkaSource, "set_partition_hooks")
]
DEADLINE_S = 30.0


def settings(bootstrap: str, group: str, backend: str, **extra: object) -> KafkaSettings:
    return KafkaSettings(
        backend=backend,
        bootstrap_servers=[bootstrap],
        group_id=group,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        poll_timeout_ms=200,
        **extra,
    )


def produce(bootstrap: str, topic: str, per_partition: dict[int, int], size: int = 64) -> dict:
    """``count`` messages to each partition; returns {partition: [values in order]}."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    sent: dict[int, list[bytes]] = {}
    for partition, count in per_partition.items():
        values = [f"{topic}/{partition}/{i}:".encode().ljust(size, b"x") for i in range(count)]
        for value in values:
            producer.send(topic, value=value, partition=partition)
        sent[partition] = values
    producer.flush()
    producer.close()
    return sent


def poll_until(source: Source, count: int, deadline_s: float = DEADLINE_S) -> list[RawMessage]:
    """Poll until ``count`` messages arrived (or the deadline); returns all received."""
    received: list[RawMessage] = []
    deadline = time.monotonic() + deadline_s
    while len(received) < count and time.monotonic() < deadline:
        received.extend(source.poll())
    return received


def by_partition(messages: list[RawMessage]) -> dict[int, list[RawMessage]]:
    parts: dict[int, list[RawMessage]] = {}
    for msg in messages:
        parts.setdefault(msg.partition, []).append(msg)
    return parts


@pytest.fixture
def open_source() -> Iterator[Callable[[KafkaSettings, str], Source]]:
    opened: list[Source] = []

    def open_(config: KafkaSettings, topic: str) -> Source:
        source = make_source(config, [topic])
        opened.append(source)
        return source

    yield open_
    for source in opened:
        source.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_poll_returns_every_message_in_offset_order_per_partition(
    kafka_broker, unique_name, open_source, backend: str
) -> None:
    topic = kafka_broker.create_topic(unique_name("topic"), partitions=3)
    sent = produce(kafka_broker.bootstrap, topic, {0: 300, 1: 200, 2: 100})
    source = open_source(settings(kafka_broker.bootstrap, unique_name("group"), backend), topic)

    received = by_partition(poll_until(source, 600))

    for partition, values in sent.items():
        got = received.get(partition, [])
        assert [m.value for m in got] == values
        assert [m.offset for m in got] == list(range(len(values)))
        assert {m.topic for m in got} == {topic}


@pytest.mark.parametrize("how", ["batch", "offsets"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_new_consumer_in_group_resumes_after_committed_offset(
    kafka_broker, unique_name, open_source, backend: str, how: str
) -> None:
    topic = kafka_broker.create_topic(unique_name("topic"))
    sent = produce(kafka_broker.bootstrap, topic, {0: 30})[0]
    config = settings(kafka_broker.bootstrap, unique_name("group"), backend)
    first = make_source(config, [topic])
    try:
        got = poll_until(first, 30)
        assert len(got) == 30
        if how == "batch":
            first.commit(got[:12])
        else:
            first.commit_offsets({(topic, 0): 12})
    finally:
        first.close()

    second = open_source(config, topic)
    rest = poll_until(second, 18)

    assert [m.offset for m in rest] == list(range(12, 30))
    assert [m.value for m in rest] == sent[12:]


@pytest.mark.parametrize("backend", BACKENDS)
def test_paused_source_delivers_nothing_and_loses_nothing(
    kafka_broker, unique_name, open_source, backend: str
) -> None:
    topic = kafka_broker.create_topic(unique_name("topic"))
    produce(kafka_broker.bootstrap, topic, {0: 40})
    # Small batches: most of what was fetched waits in the client when we pause.
    config = settings(kafka_broker.bootstrap, unique_name("group"), backend, max_poll_records=5)
    source = open_source(config, topic)
    head = poll_until(source, 1)
    assert head and source.assigned()

    source.pause()
    produce(kafka_broker.bootstrap, topic, {0: 20})
    for _ in range(10):
        source.keepalive()
        time.sleep(0.1)
    assert source.poll(timeout_ms=500) == []
    assert source.assigned()  # still in the group

    source.resume()
    rest = poll_until(source, 60 - len(head))
    offsets = [m.offset for m in head + rest]
    assert offsets == list(range(60))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lag_counts_what_is_left_of_the_assigned_partitions(
    kafka_broker, unique_name, open_source, backend: str
) -> None:
    topic = kafka_broker.create_topic(unique_name("topic"))
    for _ in range(3):  # separate batches: the test broker's log end moves per batch
        produce(kafka_broker.bootstrap, topic, {0: 10})
    config = settings(kafka_broker.bootstrap, unique_name("group"), backend, max_poll_records=5)
    source = open_source(config, topic)
    head = poll_until(source, 1)

    assert 0 < source.lag()[topic] <= 30 - len(head)
    poll_until(source, 30 - len(head))
    assert source.lag() == {topic: 0}


@pytest.mark.parametrize("backend", HOOK_BACKENDS)
def test_on_assigned_offset_sets_where_consumption_starts(
    kafka_broker, unique_name, open_source, backend: str
) -> None:
    topic = kafka_broker.create_topic(unique_name("topic"), partitions=2)
    produce(kafka_broker.bootstrap, topic, {0: 20, 1: 10})
    source = open_source(settings(kafka_broker.bootstrap, unique_name("group"), backend), topic)
    calls: list[list[TopicPartitionKey]] = []

    def on_assigned(partitions: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        calls.append(partitions)
        return {(topic, 0): 7}  # partition 1 omitted: resume from the group's commit (none)

    source.set_partition_hooks(on_assigned, lambda partitions: None)
    received = by_partition(poll_until(source, 13 + 10))

    assert calls == [[(topic, 0), (topic, 1)]]
    assert [m.offset for m in received[0]] == list(range(7, 20))
    assert [m.offset for m in received[1]] == list(range(10))


@pytest.mark.parametrize("backend", HOOK_BACKENDS)
def test_hook_error_surfaces_from_poll(
    kafka_broker, unique_name, open_source, backend: str
) -> None:
    topic = kafka_broker.create_topic(unique_name("topic"))
    produce(kafka_broker.bootstrap, topic, {0: 5})
    source = open_source(settings(kafka_broker.bootstrap, unique_name("group"), backend), topic)

    def on_assigned(partitions: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        raise CheckpointError("checkpoint for partition 0 is corrupt")

    source.set_partition_hooks(on_assigned, lambda partitions: None)
    with pytest.raises(CheckpointError, match="corrupt"):
        poll_until(source, 1)


def test_confluent_rewind_redelivers_even_while_paused(kafka_broker, unique_name) -> None:
    """The safety net of keepalive() and of a poll() that raises: nothing is skipped."""
    topic = kafka_broker.create_topic(unique_name("topic"))
    produce(kafka_broker.bootstrap, topic, {0: 20})
    config = settings(kafka_broker.bootstrap, unique_name("group"), "confluent", max_poll_records=5)
    source = make_source(config, [topic])
    assert isinstance(source, ConfluentSource)
    try:
        batch = poll_until(source, 1)
        source.pause()
        source._rewind(batch)
        source.resume()
        again = poll_until(source, 20)
    finally:
        source.close()
    assert [m.offset for m in again] == list(range(20))


def test_confluent_revoke_hook_runs_on_close_and_its_error_surfaces(
    kafka_broker, unique_name
) -> None:
    topic = kafka_broker.create_topic(unique_name("topic"))
    produce(kafka_broker.bootstrap, topic, {0: 3})
    source = make_source(
        settings(kafka_broker.bootstrap, unique_name("group"), "confluent"), [topic]
    )
    revoked: list[list[TopicPartitionKey]] = []

    def on_revoked(partitions: list[TopicPartitionKey]) -> None:
        revoked.append(partitions)
        raise CheckpointError("cannot save state")

    source.set_partition_hooks(lambda partitions: {}, on_revoked)
    assert len(poll_until(source, 3)) == 3
    with pytest.raises(CheckpointError, match="cannot save"):
        source.close()
    assert revoked == [[(topic, 0)]]


def test_confluent_unreachable_broker_is_logged_and_retried(
    unique_name, caplog: pytest.LogCaptureFixture
) -> None:
    config = settings(f"127.0.0.1:{free_port()}", unique_name("group"), "confluent")
    source = make_source(config, [unique_name("topic")])
    try:
        deadline = time.monotonic() + DEADLINE_S
        while "retrying" not in caplog.text and time.monotonic() < deadline:
            assert source.poll(timeout_ms=200) == []
    finally:
        source.close()
    assert "Kafka client error (retrying)" in caplog.text


def test_confluent_options_map_tls_and_sasl_from_the_same_settings() -> None:
    config = consumer_config(
        KafkaSettings(
            backend="confluent",
            bootstrap_servers=["k1:9093", "k2:9093"],
            security_protocol="SASL_SSL",
            ssl_cafile="/etc/ca.pem",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="auditwatch",
            sasl_password="s3cret",
        )
    )
    assert config["bootstrap.servers"] == "k1:9093,k2:9093"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["ssl.ca.location"] == "/etc/ca.pem"
    assert (config["sasl.mechanism"], config["sasl.username"]) == ("SCRAM-SHA-512", "auditwatch")
    assert config["sasl.password"] == "s3cret"
    assert config["enable.auto.commit"] is False and config["enable.auto.offset.store"] is False


def test_factory_picks_the_configured_backend(kafka_broker, unique_name, open_source) -> None:
    topic = kafka_broker.create_topic(unique_name("topic"))
    group = unique_name("group")
    assert isinstance(
        open_source(settings(kafka_broker.bootstrap, group, "confluent"), topic), ConfluentSource
    )
    assert isinstance(
        open_source(settings(kafka_broker.bootstrap, group, "kafka-python"), topic), KafkaSource
    )


def test_confluent_backend_without_the_package_names_the_extra(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "detector.sources.confluent")
    path = tmp_path / "auditwatch.toml"
    path.write_text('[kafka]\nbackend = "confluent"\n')
    with pytest.raises(ConfigError, match=r"kafka\.backend.*pip install 'auditwatch\[confluent\]'"):
        load_settings(path)
    # Settings built without validation still fail clearly when the source is made.
    built = KafkaSettings.model_construct(backend="confluent")
    with pytest.raises(ConfigError, match=r"auditwatch\[confluent\]"):
        make_source(built, ["topic"])
