"""Alerts waiting for one sink: in memory up to a bound, then in a disk spool.

While a sink is down the daemon keeps scoring: each batch's alerts queue here
(memory first, then the spool file once memory is full) and the batch's offsets
wait uncommitted. When the spool reaches its size cap the daemon pauses
consumption. The spool is a buffer, not a log: nothing is committed until the
sink acknowledged, so after a crash the events are re-read from Kafka and
re-scored into the same alert ids; a spool left by a previous process is
discarded at start.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from detector.sinks.base import Sink

log = logging.getLogger(__name__)
Entry = tuple[int, list[dict[str, Any]]]  # (batch sequence number, that batch's alerts)
CHUNK_ALERTS = 5_000  # alerts handed to the sink per flush


class Outbox:
    def __init__(self, sink: Sink, spool: Path, memory_alerts: int, spool_bytes: int) -> None:
        self.sink = sink
        self.memory_alerts = memory_alerts
        self.spool_max = spool_bytes
        self.memory: deque[Entry] = deque()
        self.in_memory = 0  # alerts in self.memory
        self.handed: list[Entry] = []  # given to the sink, not yet acknowledged
        self.last_seq = -1  # the newest batch put here
        self.spool = _Spool(spool)

    def put(self, seq: int, alerts: list[dict[str, Any]]) -> None:
        self.last_seq = seq
        if not alerts:
            return
        if self.spool.entries or self.buffered()[0] + len(alerts) > self.memory_alerts:
            self.spool.append((seq, alerts))  # keeps FIFO: memory is always older than spool
        else:
            self.memory.append((seq, alerts))
            self.in_memory += len(alerts)

    def flush(self) -> None:
        """Deliver everything pending, oldest first; SinkError leaves the rest queued."""
        while self.handed or self.memory or self.spool.entries:
            if not self.handed:
                self.handed = self._next_chunk()
                self.sink.add([doc for _, alerts in self.handed for doc in alerts])
            self.sink.flush()
            self._acknowledge()

    def acked(self) -> int:
        """Every batch with a sequence number up to this one is durable in the sink."""
        oldest = self.oldest_pending()
        return self.last_seq if oldest is None else oldest - 1

    def oldest_pending(self) -> int | None:
        if self.handed:
            return self.handed[0][0]
        if self.memory:
            return self.memory[0][0]
        return self.spool.oldest()

    def full(self) -> bool:
        return self.spool.size >= self.spool_max

    def buffered(self) -> tuple[int, int]:
        """Alerts waiting (memory incl. handed, spool) for metrics."""
        handed = sum(len(a) for _, a in self.handed)
        return self.in_memory + handed, self.spool.alerts

    def close(self) -> None:
        self.spool.close()

    def _next_chunk(self) -> list[Entry]:
        chunk: list[Entry] = []
        taken = 0
        while self.memory and taken < CHUNK_ALERTS:
            entry = self.memory.popleft()
            self.in_memory -= len(entry[1])
            chunk.append(entry)
            taken += len(entry[1])
        if not chunk:
            chunk = self.spool.read(CHUNK_ALERTS)
        return chunk

    def _acknowledge(self) -> None:
        self.handed = []
        if not self.spool.entries:
            self.spool.reset()


class _Spool:
    """An append-only JSON-lines file read from the front; emptied when fully drained."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size:
            log.warning("discarding spool %s of a previous run: its events are re-scored", path)
        self.path = path
        self.file = path.open("w+b")
        self.entries: deque[tuple[int, int]] = deque()  # (seq, alerts) per unread line
        self.read_at = 0
        self.size = 0
        self.alerts = 0

    def append(self, entry: Entry) -> None:
        line = orjson.dumps(entry) + b"\n"
        self.file.seek(0, 2)
        self.file.write(line)
        self.entries.append((entry[0], len(entry[1])))
        self.size += len(line)
        self.alerts += len(entry[1])

    def oldest(self) -> int | None:
        return self.entries[0][0] if self.entries else None

    def read(self, max_alerts: int) -> list[Entry]:
        self.file.flush()
        self.file.seek(self.read_at)
        out: list[Entry] = []
        taken = 0
        while self.entries and (not out or taken + self.entries[0][1] <= max_alerts):
            seq, alerts = orjson.loads(self.file.readline())
            self.entries.popleft()
            self.alerts -= len(alerts)
            out.append((seq, alerts))
            taken += len(alerts)
        self.read_at = self.file.tell()
        return out

    def reset(self) -> None:
        if self.size:
            self.file.seek(0)
            self.file.truncate()
        self.read_at = self.size = self.alerts = 0

    def close(self) -> None:
        self.file.close()
