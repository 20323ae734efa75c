"""Builds the components from settings (one place, so CLI commands stay short)."""

from __future__ import annotations

import logging
from pathlib import Path

from detector.config import Settings
from detector.errors import BackpressureError
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec
from detector.parsers import ParseOptions
from detector.pipeline import Pipeline
from detector.privacy import Pseudonymiser
from detector.sinks.base import Sink
from detector.sinks.elasticsearch import ElasticsearchSink
from detector.sinks.jsonl import JsonlSink
from detector.sinks.sqlite import SqliteSink

log = logging.getLogger(__name__)


def parse_options(settings: Settings) -> ParseOptions:
    p = settings.parsing
    return ParseOptions(
        resource_fields=tuple(p.resource_fields),
        bytes_out_fields=tuple(p.bytes_out_fields),
        bytes_in_fields=tuple(p.bytes_in_fields),
        rows_fields=tuple(p.rows_fields),
        max_message_bytes=p.max_message_bytes,
    )


def pseudonymiser(settings: Settings) -> Pseudonymiser | None:
    privacy = settings.privacy
    if not privacy.pseudonymise or privacy.pseudonymise_key is None:
        return None
    return Pseudonymiser(privacy.pseudonymise_key.get_secret_value().encode())


def build_pipeline(
    settings: Settings, specs: list[ModelSpec], metrics: Metrics, route_by_topic: bool = True
) -> Pipeline:
    return Pipeline(
        specs, parse_options(settings), metrics, pseudonymiser(settings), route_by_topic
    )


def build_sinks(settings: Settings, alerts_jsonl: Path | None = None) -> list[Sink]:
    """Elasticsearch when hosts are configured, else the embedded SQLite store; plus JSONL."""
    sinks: list[Sink] = []
    es = settings.elasticsearch
    if es.hosts:
        sink = ElasticsearchSink(
            es.hosts,
            index_prefix=es.index_prefix,
            username=es.username,
            password=es.password,
            api_key=es.api_key,
            ca_certs=str(es.ca_certs) if es.ca_certs else None,
            verify_certs=es.verify_certs,
            compat_plain_json=es.compat_plain_json,
            request_timeout=es.request_timeout,
        )
        try:
            sink.ensure_template()
        except BackpressureError as exc:  # down or slow now; a bad config still fails here
            log.warning(
                "%s; starting anyway: the template is installed before the first alerts are "
                "written, and offsets wait for those writes",
                exc,
            )
        sinks.append(sink)
        log.info("alerts -> Elasticsearch %s (index %s-*)", es.hosts, es.index_prefix)
    else:
        sinks.append(SqliteSink(settings.sqlite.path))
        log.info("alerts -> SQLite %s (no Elasticsearch configured)", settings.sqlite.path)
    jsonl = alerts_jsonl or settings.files.alerts_jsonl
    if jsonl is not None:
        sinks.append(JsonlSink(jsonl))
    return sinks
