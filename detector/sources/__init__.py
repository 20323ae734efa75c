"""Event sources: where raw message bytes come from (Kafka, files)."""

from __future__ import annotations

from detector.config import CONFLUENT_MISSING, KafkaSettings
from detector.errors import ConfigError
from detector.sources.base import Source


def make_source(settings: KafkaSettings, topics: list[str]) -> Source:
    """The Kafka source of the configured backend (``kafka.backend``)."""
    if settings.backend == "confluent":
        try:
            from detector.sources.confluent import ConfluentSource
        except ImportError as exc:
            raise ConfigError(CONFLUENT_MISSING) from exc
        return ConfluentSource(settings, topics)
    from detector.sources.kafka import KafkaSource

    return KafkaSource(settings, topics)
