"""Child process of the latency benchmark: produce at a fixed rate, stamp each send.

    python -m benchmarks.paced_producer BOOTSTRAP RECORDS.tsv RATE STAMPS.jsonl

RECORDS holds ``topic\tkey\tvalue`` lines; STAMPS gets one
``[topic, partition, offset, produce_time]`` JSON array per message (epoch seconds,
taken just before ``send``). Imports only the Kafka client, so it starts fast.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

Stamp = tuple[str, int, int, float]


def paced_producer(bootstrap: str, records_path: str, rate: float, stamps_path: str) -> None:
    """Send the records at ``rate``/s, then write the stamps (see the module docstring)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    stamps: list[Stamp] = []

    def record(stamp: float) -> Callable[[Any], None]:
        return lambda md: stamps.append((md.topic, md.partition, md.offset, stamp))

    lines = Path(records_path).read_bytes().splitlines()
    start = time.time()
    for i, line in enumerate(lines):
        topic, key, value = line.split(b"\t", 2)
        delay = start + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        stamp = time.time()
        producer.send(topic.decode(), key=key or None, value=value).add_callback(record(stamp))
    producer.flush()
    producer.close()
    Path(stamps_path).write_bytes(b"\n".join(orjson.dumps(s) for s in stamps))


if __name__ == "__main__":
    paced_producer(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4])
