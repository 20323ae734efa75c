"""Crash soak: the daemon SIGKILLed at random points and restarted, against the real
broker and search server, ends with exactly the alerts of an uninterrupted run.

CI runs a short setting; ``make soak`` (AUDITWATCH_SOAK=long) a longer one.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from e2e import (
    all_alerts,
    committed,
    committed_behind,
    config_file,
    produce,
    read_topic,
    run_until_idle,
    settings_for,
    specs_for,
    start_cli,
    topics_for,
    traffic,
    write_models,
)

from detector.app import build_pipeline
from detector.metrics import Metrics
from detector.state.checkpoint import load_checkpoint
from detector.state.partitions import PartitionCheckpoints

pytestmark = pytest.mark.integration
LONG = os.environ.get("AUDITWATCH_SOAK") == "long"
KILLS = 12 if LONG else 3
DAYS = 5.0 if LONG else 3.0
MALFORMED = [b"{not json", b"\xff\xfe\x00garbage", b"[]"]


def soak_stream(topics: dict[str, str]) -> list[tuple[str, bytes | None, bytes]]:
    """Generated traffic with attacks, a malformed message every ~1,500."""
    out: list[tuple[str, bytes | None, bytes]] = []
    for i, m in enumerate(traffic(seed=11, days=DAYS, events_per_day=4_000)):
        out.append((topics[m.topic], m.key, m.value))
        if i % 1_500 == 750:
            out.append((topics["ecs"], None, MALFORMED[i % len(MALFORMED)]))
    return out


def test_sigkill_restarts_end_with_the_uninterrupted_runs_alerts(
    kafka_broker, search_server, unique_name, tmp_path: Path
) -> None:
    topics = topics_for(kafka_broker, unique_name)
    write_models(tmp_path, topics)
    stream = soak_stream(topics)
    settings = settings_for(
        kafka_broker.bootstrap,
        unique_name("group"),
        topics["dead_letter"],
        search_server.url,
        unique_name("alerts"),
        tmp_path,
    )
    settings = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"max_poll_records": 100}),
            "state": settings.state.model_copy(update={"checkpoint_interval_s": 0.5}),
        }
    )
    config = config_file(tmp_path, settings)
    log = tmp_path / "daemon.log"
    rng = random.Random(2026)
    produced: Counter[str] = Counter()
    chunks = _split(stream, KILLS + 1)
    kills_mid_stream = 0

    for chunk in chunks[:-1]:
        before = _done(kafka_broker.bootstrap, settings.kafka.group_id, produced)
        produce(kafka_broker.bootstrap, chunk)
        produced.update(t for t, _, _ in chunk)
        daemon = start_cli(config, log)
        _wait_for_progress(kafka_broker.bootstrap, settings.kafka.group_id, produced, before)
        time.sleep(rng.uniform(0.0, 1.5))
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)
        behind = committed(kafka_broker.bootstrap, settings.kafka.group_id, produced)
        kills_mid_stream += sum(behind.values()) > 0

    produce(kafka_broker.bootstrap, chunks[-1])
    produced.update(t for t, _, _ in chunks[-1])
    final = start_cli(config, log)
    try:
        behind = committed_behind(kafka_broker.bootstrap, settings.kafka.group_id, produced)
        assert all(v == 0 for v in behind.values()), behind
    finally:
        final.send_signal(signal.SIGTERM)
        assert final.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]

    # The reference: one uninterrupted run over the same topics, its own group and index.
    reference = settings_for(
        kafka_broker.bootstrap,
        unique_name("ref-group"),
        unique_name("ref-dlq"),
        search_server.url,
        unique_name("ref-alerts"),
        tmp_path / "reference",
    )
    specs = specs_for(topics)
    assert run_until_idle(reference, specs, Metrics()) == 0

    soaked = {a["_id"] for a in all_alerts(search_server.url, settings.elasticsearch.index_prefix)}
    expected = {
        a["_id"] for a in all_alerts(search_server.url, reference.elasticsearch.index_prefix)
    }
    assert len(expected) > 20, "the stream should raise alerts"
    assert soaked == expected, (len(soaked - expected), len(expected - soaked))
    assert kills_mid_stream >= 1, "no kill landed mid-stream; the test proves nothing"
    print(
        f"\nsoak: {len(stream)} messages, {KILLS} SIGKILLs ({kills_mid_stream} mid-stream),"
        f" {KILLS + 1} restarts, {len(expected)} alerts = reference, lost 0, duplicated 0"
    )

    # Every event scored: each partition's last checkpoint resumes after its last message.
    pipeline = build_pipeline(settings, specs, Metrics())
    checkpoints = PartitionCheckpoints(pipeline, settings.state, Metrics())
    for topic, count in produced.items():
        state = load_checkpoint(checkpoints.path((topic, 0)), checkpoints.owner((topic, 0)))
        assert state["offset"] == count, topic

    # Bad input is never dropped: every malformed message reached the dead-letter topic
    # (at least once: a message re-read after a kill is dead-lettered again).
    bad = sum(1 for _, _, v in stream if v in MALFORMED)
    dead = read_topic(kafka_broker.bootstrap, topics["dead_letter"], bad * 3, timeout_s=10)
    originals = {dict(r.headers).get("auditwatch.source.offset") for r in dead}
    assert len(originals) == bad, (len(originals), bad)


def _done(bootstrap: str, group: str, produced: Counter[str]) -> int:
    """Messages committed by ``group`` so far."""
    return sum(produced.values()) - sum(committed(bootstrap, group, produced).values())


def _split(items: list, parts: int) -> list[list]:
    size = -(-len(items) // parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _wait_for_progress(
    bootstrap: str, group: str, produced: Counter[str], done_before: int, timeout_s: float = 90
) -> None:
    """Until the restarted daemon has committed past what was done before it started."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _done(bootstrap, group, produced) > done_before:
            return
        time.sleep(0.2)
    raise AssertionError("the restarted daemon made no progress")
