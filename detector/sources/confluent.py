"""Kafka source on confluent-kafka (librdkafka): same contract as ``KafkaSource``.

Several times kafka-python's consumer throughput (issue 3). Optional: ``pip install
'auditwatch[confluent]'`` and ``kafka.backend = "confluent"``. Offsets are stored
and committed only explicitly, after the batch is durable, as with kafka-python.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from detector.config import KafkaSettings
from detector.errors import SourceError
from detector.pipeline import RawMessage
from detector.sources.base import OnAssigned, OnRevoked, TopicPartitionKey, next_offsets

log = logging.getLogger(__name__)
METADATA_TIMEOUT_S = 2.0
# Errors librdkafka keeps retrying by itself but that no retry will fix (bad credentials).
_FAIL_FAST = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}


def consumer_config(settings: KafkaSettings) -> dict[str, Any]:
    """librdkafka properties from the same settings kafka-python uses."""
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(settings.bootstrap_servers),
        "client.id": settings.client_id,
        "group.id": settings.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": settings.auto_offset_reset,
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": settings.heartbeat_interval_ms,
        "fetch.wait.max.ms": settings.fetch_max_wait_ms,
        "max.partition.fetch.bytes": settings.max_partition_fetch_bytes,
        "security.protocol": settings.security_protocol,
    }
    files = {
        "ssl.ca.location": settings.ssl_cafile,
        "ssl.certificate.location": settings.ssl_certfile,
        "ssl.key.location": settings.ssl_keyfile,
    }
    config.update({key: str(path) for key, path in files.items() if path is not None})
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username
        if settings.sasl_password is not None:
            config["sasl.password"] = settings.sasl_password.get_secret_value()
    return config


class ConfluentSource:
    def __init__(self, settings: KafkaSettings, topics: list[str]) -> None:
        self.settings = settings
        self.topics = topics
        self._hooks: tuple[OnAssigned, OnRevoked] | None = None
        self._error: BaseException | None = None  # from a callback, raised by poll()
        self._paused = False
        try:
            config = consumer_config(settings)
            self.consumer = Consumer(config, error_cb=self._on_error, logger=log)
            self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        except KafkaException as exc:  # invalid properties; the message never holds values
            raise SourceError(f"cannot create Kafka consumer: {exc}") from exc

    def set_partition_hooks(self, on_assigned: OnAssigned, on_revoked: OnRevoked) -> None:
        self._hooks = (on_assigned, on_revoked)

    def poll(self, timeout_ms: int | None = None) -> list[RawMessage]:
        """The next batch, in offset order within each partition."""
        timeout = self.settings.poll_timeout_ms if timeout_ms is None else timeout_ms
        count = self.settings.max_poll_records
        # consume() waits for a full batch or the timeout; take what is queued, else
        # wait for the first message only, so a quiet stream is not delayed.
        messages = self._consume(count, 0.0)
        if not messages:
            first = self._call(self.consumer.poll, timeout / 1000)
            if first is not None:
                messages = [first, *(self._consume(count - 1, 0.0) if count > 1 else [])]
        batch = self._accept(messages)
        if self._error is not None:
            self._rewind(batch)  # a caller that handles the error still gets these next
            self._raise_pending()
        return batch

    def commit(self, batch: list[RawMessage]) -> None:
        """Synchronously commit the offset after the last message of each partition."""
        self.commit_offsets(next_offsets(batch))

    def commit_offsets(self, offsets: dict[TopicPartitionKey, int]) -> None:
        """Synchronously commit ``offsets`` (next offset to read); SourceError if refused."""
        if not offsets:
            return
        partitions = [TopicPartition(t, p, off) for (t, p), off in offsets.items()]
        try:
            result = self.consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            raise SourceError(f"offset commit refused: {exc}") from exc
        failed = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in result or [] if tp.error]
        if failed:
            raise SourceError(f"offset commit refused: {'; '.join(failed)}")

    def assigned(self) -> bool:
        return bool(self.consumer.assignment())

    def pause(self) -> None:
        """Stop fetching (backpressure) but stay in the group."""
        self._paused = True
        self.consumer.pause(self.consumer.assignment())

    def resume(self) -> None:
        self._paused = False
        self.consumer.resume(self.consumer.assignment())

    def keepalive(self) -> None:
        """While paused: serve rebalances and max.poll.interval.ms without consuming.

        Heartbeats run on librdkafka's own thread. Paused partitions return nothing
        (checked); anything returned anyway is rewound for the poll after resume().
        """
        messages = self._consume(self.settings.max_poll_records, 0.0)
        self._rewind(self._accept(messages))
        self._raise_pending()

    def lag(self) -> dict[str, int]:
        """Messages behind the log end, per topic, over assigned partitions."""
        lag: dict[str, int] = {}
        try:
            assigned = self.consumer.assignment()
            positions = self.consumer.position(assigned) if assigned else []
            for tp in positions:
                low, high = self.consumer.get_watermark_offsets(tp, METADATA_TIMEOUT_S)
                at = tp.offset if tp.offset >= 0 else self._start_offset(tp, low, high)
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - at)
        except KafkaException as exc:  # lag is advisory; a failed lookup must not stop scoring
            log.debug("consumer lag lookup failed: %s", exc)
        return lag

    def close(self) -> None:
        """Leave the group without committing (auto-commit is off)."""
        self.consumer.close()
        self._raise_pending()

    # -- librdkafka callbacks: run inside poll/consume/close; errors are kept, not raised

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            offsets = self._hooks[0](_keys(partitions)) if self._hooks else {}
        except Exception as exc:  # re-raised from poll(); fetch nothing from them meanwhile
            self._fail(exc)
            offsets = {}
        for tp in partitions:
            tp.offset = offsets.get((tp.topic, tp.partition), OFFSET_INVALID)  # invalid: committed
        consumer.assign(partitions)
        if self._paused or self._error is not None:
            consumer.pause(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            if self._hooks:
                self._hooks[1](_keys(partitions))
        except Exception as exc:  # re-raised from poll()
            self._fail(exc)
        finally:
            consumer.unassign()

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal() or error.code() in _FAIL_FAST:
            self._fail(SourceError(f"Kafka client error: {error}"))
        else:  # broker down, timeouts: librdkafka reconnects and retries by itself
            log.warning("Kafka client error (retrying): %s", error)

    # -- helpers

    def _consume(self, count: int, timeout_s: float) -> list[Message]:
        return self._call(self.consumer.consume, count, timeout_s)

    def _call(self, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except KafkaException as exc:
            self._raise_pending()  # a failed hook is the real cause
            raise SourceError(f"Kafka consume failed: {exc}") from exc

    def _accept(self, messages: list[Message]) -> list[RawMessage]:
        """Data messages as RawMessage; per-message errors raised or logged, never dropped."""
        batch: list[RawMessage] = []
        for msg in messages:
            error = msg.error()
            if error is None:
                batch.append(_raw(msg))
            elif error.code() != KafkaError._PARTITION_EOF:
                self._message_error(msg, error)
        return batch

    def _message_error(self, msg: Message, error: KafkaError) -> None:
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        if error.fatal() or error.code() in _FAIL_FAST:
            self._fail(SourceError(f"Kafka consume error at {where}: {error}"))
        else:  # e.g. a topic not created yet: no data was lost, the next poll retries
            log.warning("Kafka consume error at %s (retrying): %s", where, error)

    def _rewind(self, batch: list[RawMessage]) -> None:
        """Make the next poll start again at the first message of ``batch``."""
        owned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        for (topic, partition), offset in _first_offsets(batch).items():
            if (topic, partition) in owned:  # a revoked one resumes from the last commit
                self.consumer.seek(TopicPartition(topic, partition, offset))

    def _start_offset(self, tp: TopicPartition, low: int, high: int) -> int:
        """Where consumption of a not yet fetched partition begins."""
        [committed] = self.consumer.committed([tp], METADATA_TIMEOUT_S)
        if committed.offset >= 0:
            return int(committed.offset)
        return low if self.settings.auto_offset_reset == "earliest" else high

    def _fail(self, error: BaseException) -> None:
        self._error = self._error or error  # the first error is the cause

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _keys(partitions: list[TopicPartition]) -> list[TopicPartitionKey]:
    return sorted((tp.topic, tp.partition) for tp in partitions)


def _raw(msg: Message) -> RawMessage:
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None  # data message
    return RawMessage(topic, partition, offset, msg.value() or b"")


def _first_offsets(batch: list[RawMessage]) -> dict[TopicPartitionKey, int]:
    first: dict[TopicPartitionKey, int] = {}
    for msg in batch:
        first.setdefault((msg.topic, msg.partition), msg.offset)
    return first
