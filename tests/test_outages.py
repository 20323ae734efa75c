"""Outages of the real servers mid-run: the search server and the broker are frozen with
SIGSTOP and thawed; the daemon queues, spools, pauses, retries, and ends with exactly the
alerts of an undisturbed run, with no offset committed past an unacknowledged alert."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e import (
    all_alerts,
    committed,
    committed_behind,
    config_file,
    produce,
    run_until_idle,
    settings_for,
    specs_for,
    start_cli,
    topics_for,
    traffic,
    write_models,
)
from servers import free_port

from detector.cli import main
from detector.config import DeliverySettings, Settings
from detector.metrics import Metrics
from detector.runtime import run_daemon

pytestmark = pytest.mark.integration


class RunningDaemon:
    """``run_daemon`` in a thread, with its metrics and /healthz on a free port."""

    def __init__(self, settings: Settings, specs: list) -> None:
        self.port = free_port()
        self.settings = settings.model_copy(
            update={
                "metrics": settings.metrics.model_copy(update={"enabled": True, "port": self.port})
            }
        )
        self.metrics = Metrics()
        self.stop = threading.Event()
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, args=(specs,), daemon=True)
        self.thread.start()

    def _run(self, specs: list) -> None:
        self.code = run_daemon(self.settings, specs, self.stop, self.metrics)

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as r:
            return json.loads(r.read())

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def finish(self, timeout: float = 60) -> int | None:
        self.stop.set()
        self.thread.join(timeout)
        return self.code


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def reference_alerts(kafka_broker, search_server, unique_name, topics, tmp_path) -> dict:
    """The alerts (by id) of one undisturbed run over the same topics."""
    ref = settings_for(
        kafka_broker.bootstrap,
        unique_name("ref-group"),
        unique_name("ref-dlq"),
        search_server.url,
        unique_name("ref-alerts"),
        tmp_path / "reference",
    )
    assert run_until_idle(ref, specs_for(topics), Metrics()) == 0
    return {a["_id"]: a for a in all_alerts(search_server.url, ref.elasticsearch.index_prefix)}


def test_search_outage_spools_pauses_and_delivers_everything_after(
    kafka_broker, search_server, unique_name, tmp_path: Path
) -> None:
    topics = topics_for(kafka_broker, unique_name)
    stream = [
        (topics[m.topic], m.key, m.value) for m in traffic(seed=5, days=3.0, events_per_day=4_000)
    ]
    before, during = stream[: len(stream) // 3], stream[len(stream) // 3 :]
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
            # short enough to see the outage quickly; above the 3 s the in-memory search
            # server can take for a large bulk once it is back (1 s timed out every retry)
            "elasticsearch": settings.elasticsearch.model_copy(update={"request_timeout": 4.0}),
            "delivery": DeliverySettings(memory_alerts=10, spool_max_mb=0.03),
        }
    )
    group, prefix = settings.kafka.group_id, settings.elasticsearch.index_prefix
    produced = Counter(t for t, _, _ in before)
    produce(kafka_broker.bootstrap, before)
    daemon = RunningDaemon(settings, specs_for(topics))
    behind = committed_behind(kafka_broker.bootstrap, group, produced)
    assert all(v == 0 for v in behind.values()), behind
    delivered_before = {a["_id"] for a in all_alerts(search_server.url, prefix)}  # idle: exact
    assert delivered_before, "the outage should start mid-run, after alerts were written"

    search_server.pause()
    try:
        produce(kafka_broker.bootstrap, during)
        produced.update(t for t, _, _ in during)
        wait_until(
            lambda: daemon.sample("auditwatch_backpressure") == 1, 120, "backpressure (full spool)"
        )
        assert daemon.sample("auditwatch_outbox_alerts", sink="elasticsearch", where="spool") > 0
        assert daemon.sample("auditwatch_sink_up", sink="elasticsearch") == 0
        health = daemon.health()
        assert health["status"] == "degraded" and health["backpressure"] is True
        assert health["sinks"]["elasticsearch"]["up"] is False
        assert main(["status", "--url", f"http://127.0.0.1:{daemon.port}"]) == 1
        lag = committed(kafka_broker.bootstrap, group, produced)
        frozen = {t: produced[t] - lag[t] for t in produced}  # committed offsets
        time.sleep(2.0)
        assert committed(kafka_broker.bootstrap, group, produced) == lag  # paused: no progress
    finally:
        search_server.resume()
    behind = committed_behind(kafka_broker.bootstrap, group, produced, timeout_s=150)
    assert all(v == 0 for v in behind.values()), behind
    wait_until(lambda: daemon.health()["status"] == "ok", 30, "health back to ok")
    assert main(["status", "--url", f"http://127.0.0.1:{daemon.port}"]) == 0
    assert daemon.finish() == 0

    reference = reference_alerts(kafka_broker, search_server, unique_name, topics, tmp_path)
    delivered = {a["_id"]: a for a in all_alerts(search_server.url, prefix)}
    assert set(delivered) == set(reference), (
        len(set(delivered) - set(reference)),
        len(set(reference) - set(delivered)),
    )
    # No offset was committed past an alert the search server had not acknowledged.
    held = [reference[i] for i in set(reference) - delivered_before]
    assert len(held) > 10, "alerts must have been raised during the outage"
    for doc in held:
        source = doc["auditwatch"]["source_event"]["kafka"]
        assert source["offset"] >= frozen[source["topic"]], (source, frozen)


def test_broker_outage_longer_than_the_session_loses_nothing(
    kafka_broker, search_server, unique_name, tmp_path: Path
) -> None:
    topics = topics_for(kafka_broker, unique_name)
    stream = [
        (topics[m.topic], m.key, m.value) for m in traffic(seed=6, days=3.0, events_per_day=4_000)
    ]
    half = len(stream) // 2
    settings = settings_for(
        kafka_broker.bootstrap,
        unique_name("group"),
        topics["dead_letter"],
        search_server.url,
        unique_name("alerts"),
        tmp_path,
    )
    group, prefix = settings.kafka.group_id, settings.elasticsearch.index_prefix
    produced = Counter(t for t, _, _ in stream)
    produce(kafka_broker.bootstrap, stream[:half])
    daemon = RunningDaemon(settings, specs_for(topics))
    try:
        wait_until(
            lambda: daemon.sample("auditwatch_offset_commits_total") > 0, 90, "first commits"
        )
        kafka_broker.pause()
        time.sleep(8.0)  # longer than the 6 s session: the group evicts the daemon
    finally:
        kafka_broker.resume()
    produce(kafka_broker.bootstrap, stream[half:])
    behind = committed_behind(kafka_broker.bootstrap, group, produced, timeout_s=150)
    assert all(v == 0 for v in behind.values()), behind
    assert daemon.finish() == 0

    soaked = {a["_id"] for a in all_alerts(search_server.url, prefix)}
    expected = set(reference_alerts(kafka_broker, search_server, unique_name, topics, tmp_path))
    assert len(expected) > 20
    assert soaked == expected, (len(soaked - expected), len(expected - soaked))


def test_sigterm_with_the_search_server_down_exits_by_the_deadline_without_committing(
    kafka_broker, search_server, unique_name, tmp_path: Path
) -> None:
    topics = topics_for(kafka_broker, unique_name)
    write_models(tmp_path, topics)
    stream = [
        (topics[m.topic], m.key, m.value) for m in traffic(seed=8, days=2.0, events_per_day=4_000)
    ]
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
            "shutdown_deadline_s": 3.0,
            # short enough to see the outage quickly; above the 3 s the in-memory search
            # server can take for a large bulk once it is back (1 s timed out every retry)
            "elasticsearch": settings.elasticsearch.model_copy(update={"request_timeout": 4.0}),
        }
    )
    config, log = config_file(tmp_path, settings), tmp_path / "daemon.log"
    group, prefix = settings.kafka.group_id, settings.elasticsearch.index_prefix
    produced = Counter(t for t, _, _ in stream)
    produce(kafka_broker.bootstrap, stream)
    daemon = start_cli(config, log)
    try:
        wait_until(lambda: _alert_count(search_server.url, prefix) > 0, 90, "the first alerts")
        search_server.pause()
        time.sleep(3.0)  # scoring goes on; alerts queue; commits are held back
        lag = committed(kafka_broker.bootstrap, group, produced)
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
        took = time.monotonic() - started
        assert committed(kafka_broker.bootstrap, group, produced) == lag  # nothing committed
    finally:
        search_server.resume()
    assert code == 3, log.read_text()[-3000:]
    assert took < settings.shutdown_deadline_s + 8, took  # deadline, plus one write timeout
    assert sum(lag.values()) > 0
    assert "undelivered and not committed" in log.read_text()

    again = start_cli(config, log)  # the next start re-scores what was not committed
    try:
        behind = committed_behind(kafka_broker.bootstrap, group, produced)
        assert all(v == 0 for v in behind.values()), behind
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=60) == 0, log.read_text()[-3000:]
    delivered = {a["_id"] for a in all_alerts(search_server.url, prefix)}
    expected = set(reference_alerts(kafka_broker, search_server, unique_name, topics, tmp_path))
    assert delivered == expected, (len(delivered - expected), len(expected - delivered))


def _alert_count(url: str, prefix: str) -> int:
    try:
        return len(all_alerts(url, prefix))
    except Exception:  # index not created yet
        return 0
