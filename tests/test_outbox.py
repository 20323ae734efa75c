"""The per-sink outbox: memory then spool, oldest first, acknowledgement by batch."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detector.errors import BackpressureError
from detector.sinks.jsonl import JsonlSink
from detector.sinks.outbox import Outbox


class FlakySink(JsonlSink):
    """A real JSON-lines sink that refuses writes while ``down``."""

    down = False

    def flush(self) -> None:
        if self.down:
            raise BackpressureError("down", retry_after=0.0)
        super().flush()


def alerts(batch: int, n: int) -> list[dict]:
    return [
        {"event": {"id": f"b{batch}-{i}"}, "@timestamp": "2026-11-23T00:00:00+00:00"}
        for i in range(n)
    ]


def written(path: Path) -> list[str]:
    return [orjson.loads(line)["event"]["id"] for line in path.read_bytes().splitlines()]


def test_outage_queues_in_memory_then_spool_and_delivers_in_order(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "out.jsonl")
    box = Outbox(sink, tmp_path / "spool" / "x.jsonl", memory_alerts=5, spool_bytes=10_000)
    sink.down = True
    for seq in range(1, 7):
        box.put(seq, alerts(seq, 2))
        with pytest.raises(BackpressureError):
            box.flush()
    assert box.acked() == 0  # nothing acknowledged: no batch may be committed
    memory, spooled = box.buffered()
    assert memory == 4 and spooled == 8  # 2 batches fit in memory (bound 5), 4 spilled
    assert (tmp_path / "spool" / "x.jsonl").stat().st_size > 0

    box.put(7, [])  # a batch without alerts still waits behind the undelivered ones
    assert box.acked() == 0
    sink.down = False
    box.flush()
    assert box.acked() == 7 and box.buffered() == (0, 0)
    expected = [a["event"]["id"] for seq in range(1, 7) for a in alerts(seq, 2)]
    assert written(tmp_path / "out.jsonl") == expected
    assert (tmp_path / "spool" / "x.jsonl").stat().st_size == 0  # drained spool is emptied


def test_full_spool_asks_for_backpressure_and_clears_when_drained(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "out.jsonl")
    box = Outbox(sink, tmp_path / "s.jsonl", memory_alerts=0, spool_bytes=300)
    sink.down = True
    seq = 0
    while not box.full():
        seq += 1
        box.put(seq, alerts(seq, 1))
    assert seq > 1
    sink.down = False
    box.flush()
    assert not box.full() and box.acked() == seq


def test_acknowledged_prefix_stops_at_the_first_undelivered_batch(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "out.jsonl")
    box = Outbox(sink, tmp_path / "s.jsonl", memory_alerts=100, spool_bytes=10_000)
    box.put(1, alerts(1, 1))
    box.flush()
    box.put(2, [])
    assert box.acked() == 2
    sink.down = True
    box.put(3, alerts(3, 1))
    box.put(4, [])
    with pytest.raises(BackpressureError):
        box.flush()
    assert box.acked() == 2


def test_spool_of_a_previous_process_is_discarded(tmp_path: Path) -> None:
    spool = tmp_path / "s.jsonl"
    spool.write_bytes(b'[1, [{"event": {"id": "old"}}]]\n')
    box = Outbox(JsonlSink(tmp_path / "out.jsonl"), spool, memory_alerts=10, spool_bytes=1000)
    box.flush()
    assert box.acked() == -1 and spool.stat().st_size == 0
