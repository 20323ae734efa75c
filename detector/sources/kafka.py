"""Kafka source (kafka-python): consumer group, batch polling, explicit commits.

Auto-commit is off: the daemon commits a batch's offsets only after every
sink has durably written the batch's alerts and the dead-letter records.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from detector.config import KafkaSettings
from detector.errors import SourceError
from detector.pipeline import RawMessage

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
        try:
            self.consumer = KafkaConsumer(
                *topics,
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

    def poll(self, timeout_ms: int | None = None) -> list[RawMessage]:
        """The next batch, in offset order within each partition."""
        timeout = self.settings.poll_timeout_ms if timeout_ms is None else timeout_ms
        records = self.consumer.poll(timeout_ms=timeout, max_records=self.settings.max_poll_records)
        batch: list[RawMessage] = []
        for tp, recs in sorted(
            records.items(), key=lambda item: (item[0].topic, item[0].partition)
        ):
            batch.extend(RawMessage(tp.topic, tp.partition, r.offset, r.value or b"") for r in recs)
        return batch

    def commit(self, batch: list[RawMessage]) -> None:
        """Commit the offset after the last message of each partition in ``batch``."""
        nxt: dict[TopicPartition, int] = {}
        for msg in batch:
            tp = TopicPartition(msg.topic, msg.partition)
            nxt[tp] = max(nxt.get(tp, 0), msg.offset + 1)
        if nxt:
            self.consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in nxt.items()})

    def assigned(self) -> bool:
        return bool(self.consumer.assignment())

    def pause(self) -> None:
        """Stop fetching (backpressure) but stay in the group."""
        self.consumer.pause(*self.consumer.assignment())

    def resume(self) -> None:
        self.consumer.resume(*self.consumer.paused())

    def keepalive(self) -> None:
        """While paused: let the client service the group without fetching."""
        self.consumer.poll(timeout_ms=0, max_records=1)

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
