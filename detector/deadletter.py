"""Dead-letter destinations: where rejected messages go, with the reason.

Kafka: the original bytes as the record value, the reason and provenance in
headers (as Kafka Connect does), so the record can be replayed unchanged. An
original larger than the producer may send gets an empty value and its size in
``auditwatch.original_bytes``; the source topic/partition/offset headers find it.
File (for ``score``): one JSON line per record with the original base64-encoded.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from detector.errors import SinkError
from detector.parsers import Rejected
from detector.pipeline import RawMessage


class DeadLetter(Protocol):
    def add(self, rejected: Rejected, msg: RawMessage) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def dead_letter_record(rejected: Rejected, msg: RawMessage) -> dict[str, Any]:
    return {
        "reason": rejected.reason,
        "detail": rejected.detail,
        "source": {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset},
        "rejected_at": time.time(),
        "original_base64": base64.b64encode(msg.value).decode(),
    }


class FileDeadLetter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None
        self.count = 0

    def add(self, rejected: Rejected, msg: RawMessage) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        self._fh.write(orjson.dumps(dead_letter_record(rejected, msg)) + b"\n")
        self.count += 1

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None


class KafkaDeadLetter:
    HEADROOM = 4096  # record framing and our headers, within the producer's request limit

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._pending: list[Any] = []
        self.count = 0
        self.max_value_bytes = producer.config["max_request_size"] - self.HEADROOM

    def add(self, rejected: Rejected, msg: RawMessage) -> None:
        headers = [
            ("auditwatch.reason", rejected.reason.encode()),
            ("auditwatch.detail", rejected.detail.encode("utf-8", "replace")[:1000]),
            ("auditwatch.source.topic", msg.topic.encode()),
            ("auditwatch.source.partition", str(msg.partition).encode()),
            ("auditwatch.source.offset", str(msg.offset).encode()),
        ]
        value = msg.value
        if value is not None and len(value) > self.max_value_bytes:
            # send() would raise and stop the daemon on this message at every restart; the
            # original stays in the source topic at the offset named in the headers
            headers.append(("auditwatch.original_bytes", str(len(value)).encode()))
            value = b""
        self._pending.append(self.producer.send(self.topic, value=value, headers=headers))
        self.count += 1

    def flush(self) -> None:
        """Durable on return: the broker acknowledged every record (acks=all)."""
        pending, self._pending = self._pending, []
        self.producer.flush()
        for future in pending:
            try:
                future.get(timeout=30)
            except Exception as exc:  # kafka-python raises KafkaError subclasses
                raise SinkError(f"dead-letter write to {self.topic} failed: {exc}") from exc

    def close(self) -> None:
        self.flush()
