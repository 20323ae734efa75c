"""Alert sinks: where alert documents go (Elasticsearch, SQLite, JSON lines).

All follow ``Sink`` in ``base.py``: ``add()`` buffers, ``flush()`` is durable on
return or raises ``SinkError`` / ``BackpressureError``, ``close()`` releases.
"""

from detector.sinks.base import Sink, alert_id, alert_time, daily_index
from detector.sinks.elasticsearch import ElasticsearchSink, PlainJsonHttpNode
from detector.sinks.jsonl import JsonlSink
from detector.sinks.sqlite import SqliteSink

__all__ = [
    "ElasticsearchSink",
    "JsonlSink",
    "PlainJsonHttpNode",
    "Sink",
    "SqliteSink",
    "alert_id",
    "alert_time",
    "daily_index",
]
