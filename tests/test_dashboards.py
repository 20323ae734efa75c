"""The Grafana dashboard queries series the daemon really exports, in valid PromQL,
evaluated by a real Prometheus scraping a real /metrics endpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from servers import free_port

from detector.health import Health, serve
from detector.metrics import Metrics

pytestmark = pytest.mark.integration
DASHBOARD = Path(__file__).resolve().parents[1] / "dashboards" / "auditwatch.json"


def dashboard_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in doc["panels"] for t in p["targets"]]


def exercised_metrics() -> Metrics:
    """Every metric with one representative, bounded label set."""
    m = Metrics()
    m.consumed.labels("cloudtrail").inc(10)
    m.parsed.labels("cloudtrail", "cloudtrail").inc(9)
    m.scored.labels("cloudtrail-access").inc(9)
    m.parse_errors.labels("cloudtrail", "invalid_json").inc()
    m.dead_lettered.labels("cloudtrail").inc()
    m.alerts.labels("cloudtrail-access", "high").inc()
    m.severity.observe_many("cloudtrail-access", np.array([5.0, 55.0, 95.0]))
    m.alert_latency.labels("cloudtrail-access").observe(0.4)
    m.stage_seconds.labels("parse").observe(0.002)
    m.consumer_lag.labels("cloudtrail").set(12)
    m.entities.labels("cloudtrail-access").set(40)
    m.evicted.labels("cloudtrail-access").set(0)
    m.sink_up.labels("elasticsearch").set(1)
    m.sink_errors.labels("elasticsearch").inc(0)
    m.commits.inc()
    m.outbox_alerts.labels("elasticsearch", "memory").set(0)
    m.backpressure.set(0)
    m.checkpoint_seconds.observe(0.05)
    m.checkpoint_offset.labels("cloudtrail", "0").set(9)
    m.checkpoint_last_success.set_to_current_time()
    return m


def test_dashboard_panels_are_well_formed() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["panels"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]


def test_every_dashboard_metric_is_exported_by_the_daemon() -> None:
    families = {f.name: f.type for f in exercised_metrics().registry.collect()}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    exported = {name + s for name, kind in families.items() for s in suffixes[kind]}
    for title, expr in dashboard_queries():
        for name in re.findall(r"\bauditwatch_[a-z0-9_]+", expr):
            assert name in exported, f"{title}: {name} is not a metric the daemon exports"


def test_every_dashboard_query_returns_data_from_a_real_prometheus(prometheus_server) -> None:
    port = serve(exercised_metrics().registry, Health(), "127.0.0.1", free_port())
    prometheus = prometheus_server([f"127.0.0.1:{port}"])
    prometheus.wait_for("up", lambda r: bool(r) and r[0]["value"][1] == "1")
    prometheus.wait_for("count(auditwatch_offset_commits_total)", bool)
    prometheus.wait_for("count_over_time(auditwatch_offset_commits_total[1m])", _two_samples)
    for title, expr in dashboard_queries():
        assert prometheus.query(expr), f"{title}: {expr} returned no series"


def _two_samples(result: list) -> bool:
    return bool(result) and float(result[0]["value"][1]) >= 2
