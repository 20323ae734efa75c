"""One exception root, one subclass per pipeline stage."""

from __future__ import annotations


class DetectorError(Exception):
    """Root of every error auditwatch raises on purpose."""


class ConfigError(DetectorError):
    """Settings or a model definition are invalid; the message names the key."""


class ParseError(DetectorError):
    """A message could not be parsed or normalised.

    ``reason`` is a short, bounded code (used as a metric label and in the
    dead-letter record); ``detail`` is free text for humans.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SinkError(DetectorError):
    """A sink failed to write; the batch must not be committed."""


class BackpressureError(SinkError):
    """A sink is temporarily unable to accept writes; retry after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CheckpointError(DetectorError):
    """A checkpoint is corrupt, foreign or of an unknown version."""


class SourceError(DetectorError):
    """The event source (Kafka, files) failed."""
