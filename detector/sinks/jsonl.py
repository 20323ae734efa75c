"""Alert sink appending one JSON document per line to a file.

``flush()`` writes the buffer, flushes and ``fsync``s: durable on return. The
file is append-only, so an alert re-delivered after a crash can appear twice;
readers de-duplicate by ``event.id``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import orjson

from detector.errors import SinkError
from detector.sinks.base import AlertDoc, alert_id, alert_time


class JsonlSink:
    """Appends alerts to ``path`` (created with its directory if missing)."""

    name = "jsonl"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._buffer: list[bytes] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
            self._terminate_partial_line()
        except OSError as exc:
            raise SinkError(f"cannot open {self.path}: {exc}") from exc

    def _terminate_partial_line(self) -> None:
        """After a crash mid-write, start on a fresh line so later lines stay parseable."""
        size = self._file.tell()
        if size == 0:
            return
        with open(self.path, "rb") as reader:
            reader.seek(size - 1)
            if reader.read(1) != b"\n":
                self._file.write(b"\n")

    def add(self, alerts: Sequence[AlertDoc]) -> None:
        for doc in alerts:
            alert_id(doc)  # validate now, not at flush time
            alert_time(doc)
            self._buffer.append(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")

    def flush(self) -> None:
        if not self._buffer:
            return
        try:
            self._file.write(b"".join(self._buffer))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise SinkError(f"writing alerts to {self.path} failed: {exc}") from exc
        self._buffer.clear()

    def close(self) -> None:
        self._file.close()
