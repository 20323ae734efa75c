"""Kafka source (kafka-python): consumer group, batch polling, explicit commits.

Auto-commit is off: the daemon commits a batch's offsets only after every
sink has durably written the batch's alerts and the dead-letter records.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from detector.config import KafkaSettings
from detector.errors import SourceError
from detector.pipeline import RawMessage
from detector.sources.base import OnAssigned, OnRevoked, TopicPartitionKey, next_offsets

log = logging.getLogger(__name__)


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    """Options shared by consumers and producers: servers, TLS, SASL."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(settings, key)
        if value is not None:
            options[key] = str(value)
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


def make_producer(settings: KafkaSettings) -> KafkaProducer:
    """A producer that only acknowledges what every in-sync replica holds."""
    return KafkaProducer(acks="all", linger_ms=5, **connection_options(settings))


class KafkaSource:
    def __init__(self, settings: KafkaSettings, topics: list[str]) -> None:
        self.settings = settings
        self.topics = topics
        self._hooks: tuple[OnAssigned, OnRevoked] | None = None
        self._hook_error: BaseException | None = None
        self._subscribed = False
        try:
            self.consumer = KafkaConsumer(
                group_id=settings.group_id,
                enable_auto_commit=False,
                auto_offset_reset=settings.auto_offset_reset,
                session_timeout_ms=settings.session_timeout_ms,
                heartbeat_interval_ms=settings.heartbeat_interval_ms,
                max_poll_records=settings.max_poll_records,
                fetch_max_wait_ms=settings.fetch_max_wait_ms,
                max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
                **connection_options(settings),
            )
        except KafkaError as exc:
            raise SourceError(
                f"cannot connect to Kafka {settings.bootstrap_servers}: {exc}"
            ) from exc

    def set_partition_hooks(self, on_assigned: OnAssigned, on_revoked: OnRevoked) -> None:
        self._hooks = (on_assigned, on_revoked)

    def poll(self, timeout_ms: int | None = None) -> list[RawMessage]:
        """The next batch, in offset order within each partition."""
        if not self._subscribed:
            listener = _HookListener(self) if self._hooks else _NoHooks()
            self.consumer.subscribe(self.topics, listener=listener)
            self._subscribed = True
        timeout = self.settings.poll_timeout_ms if timeout_ms is None else timeout_ms
        try:
            records = self.consumer.poll(
                timeout_ms=timeout, max_records=self.settings.max_poll_records
            )
        except KafkaError:
            self._raise_hook_error()  # a failed hook is the real cause, not the wrapper
            raise
        self._raise_hook_error()
        batch: list[RawMessage] = []
        for tp, recs in sorted(
            records.items(), key=lambda item: (item[0].topic, item[0].partition)
        ):
            batch.extend(RawMessage(tp.topic, tp.partition, r.offset, r.value or b"") for r in recs)
        return batch

    def commit(self, batch: list[RawMessage]) -> None:
        """Commit the offset after the last message of each partition in ``batch``."""
        self.commit_offsets(next_offsets(batch))

    def commit_offsets(self, offsets: dict[TopicPartitionKey, int]) -> None:
        if not offsets:
            return
        try:
            self.consumer.commit(
                {
                    TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                    for (t, p), o in offsets.items()
                }
            )
        except KafkaError as exc:
            raise SourceError(f"offset commit refused: {exc}") from exc

    def assigned(self) -> bool:
        return bool(self.consumer.assignment())

    def pause(self) -> None:
        """Stop fetching (backpressure) but stay in the group."""
        self.consumer.pause(*self.consumer.assignment())

    def resume(self) -> None:
        self.consumer.resume(*self.consumer.paused())

    def keepalive(self) -> None:
        """While paused: let the client service the group without consuming anything.

        A rebalance inside this poll can hand over new, unpaused partitions; whatever
        it returns from them is rewound, so no record is skipped.
        """
        records = self.consumer.poll(timeout_ms=0, max_records=1)
        for tp, recs in records.items():
            if recs:
                self.consumer.seek(tp, recs[0].offset)
        self.pause()
        self._raise_hook_error()

    def lag(self) -> dict[str, int]:
        """Messages behind the log end, per topic (summed over assigned partitions)."""
        assigned = list(self.consumer.assignment())
        if not assigned:
            return {}
        ends = self.consumer.end_offsets(assigned)
        lag: dict[str, int] = {}
        for tp in assigned:
            position = self.consumer.position(tp)
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends.get(tp, 0) - position)
        return lag

    def close(self) -> None:
        self.consumer.close(autocommit=False)

    def _raise_hook_error(self) -> None:
        if self._hook_error is not None:
            error, self._hook_error = self._hook_error, None
            raise error


class _NoHooks(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Nothing to save."""

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Resume from the committed offsets."""


class _HookListener(ConsumerRebalanceListener):
    """Runs the partition hooks inside kafka-python's rebalance and seeks as they say.

    kafka-python logs and wraps exceptions raised here, so the original is kept on
    the source and re-raised from poll().
    """

    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        assert self.source._hooks is not None
        try:
            self.source._hooks[1](_keys(revoked))
        except Exception as exc:  # re-raised from poll(), see class docstring
            self.source._hook_error = exc
            raise

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        assert self.source._hooks is not None
        try:
            offsets = self.source._hooks[0](_keys(assigned))
        except Exception as exc:  # re-raised from poll(), see class docstring
            self.source._hook_error = exc
            raise
        for (topic, partition), offset in offsets.items():
            self.source.consumer.seek(TopicPartition(topic, partition), offset)


def _keys(partitions: set[TopicPartition]) -> list[TopicPartitionKey]:
    return sorted((tp.topic, tp.partition) for tp in partitions)
