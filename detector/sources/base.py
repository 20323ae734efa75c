"""The contract every streaming source (kafka-python, confluent-kafka) fulfils.

The daemon only talks to this interface, so backends are interchangeable and
the partition-state hooks work the same way on each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from detector.pipeline import RawMessage

TopicPartitionKey = tuple[str, int]

# Called with newly assigned partitions; returns the offset to resume each one
# from (its checkpoint), or omits it to resume from the group's committed offset.
OnAssigned = Callable[[list[TopicPartitionKey]], dict[TopicPartitionKey, int]]
# Called with partitions about to be taken away, after the last batch was committed.
OnRevoked = Callable[[list[TopicPartitionKey]], None]


def next_offsets(batch: list[RawMessage]) -> dict[TopicPartitionKey, int]:
    """Per partition, the offset after the last message of ``batch`` (what to commit)."""
    nxt: dict[TopicPartitionKey, int] = {}
    for msg in batch:
        key = (msg.topic, msg.partition)
        nxt[key] = max(nxt.get(key, 0), msg.offset + 1)
    return nxt


class Source(Protocol):
    def set_partition_hooks(self, on_assigned: OnAssigned, on_revoked: OnRevoked) -> None:
        """Register the hooks before the first poll; errors they raise surface from poll()."""

    def poll(self, timeout_ms: int | None = None) -> list[RawMessage]:
        """The next batch, in offset order within each partition."""

    def commit(self, batch: list[RawMessage]) -> None:
        """Synchronously commit the offset after the last message of each partition."""

    def commit_offsets(self, offsets: dict[TopicPartitionKey, int]) -> None:
        """Synchronously commit ``offsets`` (the next offset to read, per partition).

        Raises SourceError when the commit is refused (e.g. the partitions were reassigned).
        """

    def assigned(self) -> bool:
        """Whether this consumer currently owns any partition."""

    def pause(self) -> None:
        """Stop fetching (backpressure) but stay in the group."""

    def resume(self) -> None:
        """Fetch again after pause()."""

    def keepalive(self) -> None:
        """While paused: service the group protocol without fetching."""

    def lag(self) -> dict[str, int]:
        """Messages behind the log end, per topic, over assigned partitions."""

    def close(self) -> None:
        """Leave the group without committing."""
