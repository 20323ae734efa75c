"""Alert sinks: Elasticsearch through the real client and server, SQLite, JSON lines."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ecs_schema import sample_alert_doc
from elasticsearch import Elasticsearch
from pydantic import SecretStr
from servers import SearchServer, start_search_server, unique_name

from detector.errors import BackpressureError, SinkError
from detector.sinks import ElasticsearchSink, JsonlSink, PlainJsonHttpNode, Sink, SqliteSink
from detector.sinks.base import alert_time, backoff_seconds, daily_index
from detector.sinks.elasticsearch import MAX_BULK_DOCS


def test_every_sink_follows_the_protocol(tmp_path: Path) -> None:
    es = ElasticsearchSink("http://127.0.0.1:9", compat_plain_json=True)
    sinks = [es, SqliteSink(tmp_path / "a.db"), JsonlSink(tmp_path / "a.jsonl")]
    assert [sink.name for sink in sinks] == ["elasticsearch", "sqlite", "jsonl"]
    assert all(isinstance(sink, Sink) for sink in sinks)
    for sink in sinks:
        sink.close()


def test_index_day_comes_from_the_source_event_time_in_utc() -> None:
    late = sample_alert_doc(timestamp="2026-11-23T23:30:00-02:00")
    assert daily_index("p", late) == "p-2026.11.24"
    assert daily_index("p", sample_alert_doc(timestamp="2026-01-05T00:00:00")) == "p-2026.01.05"
    assert alert_time(late).tzinfo is not None
    with pytest.raises(SinkError, match="@timestamp"):
        daily_index("p", sample_alert_doc(timestamp="last tuesday"))


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_seconds(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


# --- Elasticsearch (osmem-server, real elasticsearch-py client) ---------------------------


@pytest.fixture
def es_sink(search_server: SearchServer) -> Iterator[ElasticsearchSink]:
    sink = ElasticsearchSink(
        [search_server.url], index_prefix=unique_name("alerts"), compat_plain_json=True
    )
    yield sink
    sink.close()


def _reader(url: str) -> Elasticsearch:
    return Elasticsearch(url, node_class=PlainJsonHttpNode)


@pytest.mark.integration
def test_vendor_media_type_is_rejected_without_compat(search_server: SearchServer) -> None:
    sink = ElasticsearchSink(search_server.url, index_prefix=unique_name("plain"))
    with pytest.raises(SinkError, match="406"):
        sink.ensure_template()
    sink.close()


@pytest.mark.integration
def test_template_is_installed_with_ecs_types(
    es_sink: ElasticsearchSink, search_server: SearchServer
) -> None:
    es_sink.ensure_template()
    es = _reader(search_server.url)
    template = es.indices.get_index_template(name=es_sink.index_prefix)["index_templates"][0]
    assert template["index_template"]["index_patterns"] == [f"{es_sink.index_prefix}-*"]
    es_sink.add([sample_alert_doc()])
    es_sink.flush()
    index = f"{es_sink.index_prefix}-2026.11.23"
    props = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["@timestamp"]["type"] == "date"
    assert props["auditwatch"]["properties"]["features"]["properties"]["new_network"] == {
        "type": "double"
    }


@pytest.mark.integration
def test_bulk_write_is_idempotent_and_searchable(
    es_sink: ElasticsearchSink, search_server: SearchServer
) -> None:
    first = sample_alert_doc(event_id="alert-1", timestamp="2026-11-23T03:12:45.123Z")
    second = sample_alert_doc(event_id="alert-2", timestamp="2026-11-24T00:00:01Z")
    es_sink.add([first, second])
    es_sink.flush()
    es_sink.add([first])  # re-delivery after a crash before the offset commit
    es_sink.flush()
    es_sink.flush()  # empty buffer: nothing to do

    es = _reader(search_server.url)
    prefix = es_sink.index_prefix
    es.indices.refresh(index=f"{prefix}-*")
    assert es.count(index=f"{prefix}-*")["count"] == 2
    assert es.count(index=f"{prefix}-2026.11.23")["count"] == 1
    assert es.count(index=f"{prefix}-2026.11.24")["count"] == 1
    hits = es.search(index=f"{prefix}-*", query={"term": {"event.id": "alert-1"}})["hits"]
    assert [hit["_id"] for hit in hits["hits"]] == ["alert-1"]
    assert hits["hits"][0]["_source"] == first


@pytest.mark.integration
def test_nan_and_numpy_values_are_written_as_json(
    es_sink: ElasticsearchSink, search_server: SearchServer
) -> None:
    doc = sample_alert_doc(event_id="nan")
    doc["auditwatch"]["features"] = {"volume_vs_baseline": np.float32(6.5), "rate": math.nan}
    doc["auditwatch"]["entity"]["events_seen"] = np.int64(1432)
    es_sink.add([doc])
    es_sink.flush()
    es = _reader(search_server.url)
    source = es.get(index=f"{es_sink.index_prefix}-2026.11.23", id="nan")["_source"]
    assert source["auditwatch"]["features"] == {"volume_vs_baseline": 6.5, "rate": None}
    assert source["auditwatch"]["entity"]["events_seen"] == 1432


@pytest.mark.integration
def test_rejected_document_raises_and_stays_buffered(
    es_sink: ElasticsearchSink, search_server: SearchServer
) -> None:
    bad = sample_alert_doc(event_id="bad")
    bad["source"]["ip"] = "not-an-ip"
    es_sink.add([sample_alert_doc(event_id="good"), bad])
    with pytest.raises(SinkError, match="1 of 2 alerts not indexed: bad: 400") as info:
        es_sink.flush()
    assert not isinstance(info.value, BackpressureError)  # a mapping error is not transient
    bad["source"]["ip"] = "10.1.2.3"  # only the failed document is retried
    es_sink.add([bad])
    es_sink.flush()
    es = _reader(search_server.url)
    es.indices.refresh(index=f"{es_sink.index_prefix}-*")
    assert es.count(index=f"{es_sink.index_prefix}-*")["count"] == 2


@pytest.mark.integration
def test_stopped_server_surfaces_as_backpressure(tmp_path: Path) -> None:
    server = start_search_server(tmp_path)
    sink = ElasticsearchSink(
        server.url,
        index_prefix=unique_name("down"),
        compat_plain_json=True,
        username="elastic",
        password=SecretStr("hunter2-secret"),
        request_timeout=2.0,
    )
    sink.add([sample_alert_doc()])
    sink.flush()
    server.stop()
    sink.add([sample_alert_doc(event_id="after-stop")])
    started = time.monotonic()
    with pytest.raises(BackpressureError) as info:
        sink.flush()
    assert time.monotonic() - started < 5
    assert info.value.retry_after == 1.0
    with pytest.raises(BackpressureError) as again:
        sink.flush()
    assert again.value.retry_after == 2.0  # consecutive failures back off
    assert "hunter2" not in str(again.value) + repr(sink)
    sink.close()


# --- SQLite ------------------------------------------------------------------------------


def test_sqlite_is_idempotent_and_reads_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "store" / "alerts.db"
    sink = SqliteSink(path)
    older = sample_alert_doc(event_id="a1", timestamp="2026-11-23T03:00:00Z")
    newer = sample_alert_doc(event_id="a2", timestamp="2026-11-23T04:00:00+01:00")
    sink.add([older, newer])
    sink.flush()
    sink.add([older])
    sink.flush()
    assert [doc["event"]["id"] for doc in SqliteSink.read_alerts(path, limit=10)] == ["a1", "a2"]
    assert SqliteSink.read_alerts(path, limit=1) == [older]
    sink.close()

    row = sqlite3.connect(path).execute("SELECT * FROM alerts WHERE id = 'a2'").fetchone()
    assert row[:6] == (
        "a2",
        "2026-11-23T03:00:00.000Z",
        "cloudtrail-access",
        87.5,
        "alice",
        newer["message"],
    )
    assert json.loads(row[6]) == newer
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_flush_is_durable_across_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    script = (
        "import os, sys\n"
        "from ecs_schema import sample_alert_doc\n"
        "from detector.sinks import SqliteSink\n"
        "sink = SqliteSink(sys.argv[1])\n"
        "sink.add([sample_alert_doc(event_id='flushed')]); sink.flush()\n"
        "sink.add([sample_alert_doc(event_id='only-buffered')])\n"
        "os._exit(9)  # no close, no cleanup\n"
    )
    env_path = f"{Path(__file__).parent}:{Path(__file__).parents[1]}"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], env={"PYTHONPATH": env_path}, check=False
    )
    assert proc.returncode == 9
    assert [doc["event"]["id"] for doc in SqliteSink.read_alerts(path)] == ["flushed"]


def test_sqlite_errors_are_sink_errors(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="cannot read alerts"):
        SqliteSink.read_alerts(tmp_path / "missing.db")
    with pytest.raises(SinkError, match=r"event\.id"):
        SqliteSink(tmp_path / "x.db").add([{"@timestamp": "2026-11-23T00:00:00Z"}])


def test_sqlite_locked_store_is_backpressure_and_keeps_the_buffer(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    sink = SqliteSink(path)
    sink._conn.execute("PRAGMA busy_timeout = 100")  # fail fast instead of waiting 5 s
    blocker = sqlite3.connect(path)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    sink.add([sample_alert_doc(event_id="waiting")])
    with pytest.raises(BackpressureError) as info:
        sink.flush()
    assert info.value.retry_after == 1.0
    blocker.rollback()
    sink.flush()
    assert [doc["event"]["id"] for doc in SqliteSink.read_alerts(path)] == ["waiting"]
    sink.close()


# --- JSON lines --------------------------------------------------------------------------


def test_jsonl_appends_one_line_per_alert_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    sink = JsonlSink(path)
    sink.add([sample_alert_doc(event_id="j1"), sample_alert_doc(event_id="j2")])
    assert not path.read_bytes()  # add() only buffers
    sink.flush()
    sink.close()
    path.write_bytes(path.read_bytes() + b'{"partial": tr')  # a crash mid-line
    reopened = JsonlSink(path)
    reopened.add([sample_alert_doc(event_id="j3")])
    reopened.flush()
    reopened.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[2] == '{"partial": tr'
    assert [json.loads(line)["event"]["id"] for line in lines if line.endswith("}")] == [
        "j1",
        "j2",
        "j3",
    ]
    assert json.loads(lines[0]) == sample_alert_doc(event_id="j1")


def test_jsonl_flush_is_durable_across_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    script = (
        "import os, sys\n"
        "from ecs_schema import sample_alert_doc\n"
        "from detector.sinks import JsonlSink\n"
        "sink = JsonlSink(sys.argv[1])\n"
        "sink.add([sample_alert_doc(event_id='flushed')]); sink.flush()\n"
        "sink.add([sample_alert_doc(event_id='only-buffered')])\n"
        "os._exit(9)\n"
    )
    env_path = f"{Path(__file__).parent}:{Path(__file__).parents[1]}"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], env={"PYTHONPATH": env_path}, check=False
    )
    assert proc.returncode == 9
    assert [json.loads(line)["event"]["id"] for line in path.read_text().splitlines()] == [
        "flushed"
    ]


def test_jsonl_full_disk_is_a_sink_error_and_keeps_the_buffer() -> None:
    sink = JsonlSink("/dev/full")  # every write fails with ENOSPC
    sink.add([sample_alert_doc()])
    with pytest.raises(SinkError, match="No space left"):
        sink.flush()
    with pytest.raises(SinkError, match="No space left"):
        sink.flush()  # still buffered: the alert is not silently dropped
    sink.close()


@pytest.mark.integration
def test_a_search_server_down_at_start_delays_the_template_not_the_daemon(
    search_server: SearchServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A daemon (re)started while the search server is down or busy starts anyway: the
    template goes in before the first write. A wrong configuration still fails at start."""
    from detector.app import build_sinks
    from detector.config import Settings

    es = {"hosts": [search_server.url], "index_prefix": unique_name("late"), "request_timeout": 1.0}
    settings = Settings(elasticsearch=es | {"compat_plain_json": True})
    search_server.pause()
    try:
        (sink,) = build_sinks(settings)
    finally:
        search_server.resume()
    assert isinstance(sink, ElasticsearchSink) and not sink._template_installed
    assert "starting anyway" in caplog.text
    doc = sample_alert_doc()
    sink.add([doc])
    sink.flush()
    assert sink._template_installed
    reader = _reader(search_server.url)
    reader.indices.refresh(index=f"{es['index_prefix']}-*")
    assert reader.count(index=f"{es['index_prefix']}-*")["count"] == 1
    sink.close()
    with pytest.raises(SinkError, match="406"):  # ES 9 media type against this server
        build_sinks(Settings(elasticsearch=es))


@pytest.mark.integration
def test_a_backlog_goes_out_in_bounded_bulks_that_shrink_while_the_server_times_out(
    search_server: SearchServer,
) -> None:
    """A restart after an outage can hand the sink thousands of alerts. One bulk of them
    all may take longer than request_timeout on a busy server, and retried whole it would
    time out forever; instead bulks are bounded, halve on each timeout and grow back."""
    prefix = unique_name("backlog")
    sink = ElasticsearchSink(
        search_server.url, index_prefix=prefix, compat_plain_json=True, request_timeout=1.0
    )
    sink.ensure_template()
    sizes: list[int] = []
    bulk = sink.client.bulk

    def counted_bulk(operations: bytes) -> object:  # the real request, its size noted
        sizes.append(operations.count(b"\n") // 2)
        return bulk(operations=operations)

    sink.client.bulk = counted_bulk  # type: ignore[method-assign]
    docs = [sample_alert_doc(event_id=f"backlog-{i}") for i in range(2 * MAX_BULK_DOCS + 5)]
    sink.add(docs)
    search_server.pause()
    try:
        for _ in range(2):
            with pytest.raises(BackpressureError, match=r"bulk request \(\d+ alerts\)"):
                sink.flush()
    finally:
        search_server.resume()
    assert sizes == [MAX_BULK_DOCS, MAX_BULK_DOCS // 2]
    assert sink.bulk_docs == MAX_BULK_DOCS // 4
    sizes.clear()
    for _ in range(40):  # as the daemon: retry until the server, busy after its pause, answers
        try:
            sink.flush()
            break
        except BackpressureError:
            time.sleep(0.5)
    else:
        pytest.fail("the backlog was never written")
    # e.g. [250, 125, 250, 500, 1000, 130]: one more timeout, then doubling back
    assert sizes[0] == MAX_BULK_DOCS // 4 and max(sizes) == MAX_BULK_DOCS
    assert sink.bulk_docs == MAX_BULK_DOCS
    reader = _reader(search_server.url)
    reader.indices.refresh(index=f"{prefix}-*")
    assert reader.count(index=f"{prefix}-*")["count"] == len(docs)
    sink.close()
