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
    """Appends alerts to ``path`` (created with its directory if missing). Not thread-safe."""

    name = "jsonl"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._buffer: list[bytes] = []
        self._check_line_end = True  # the file may end in a line cut short by a crash
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered: a failed write leaves no hidden bytes to be written again later.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SinkError(f"cannot open {self.path}: {exc}") from exc

    def _line_break_needed(self) -> bool:
        """True if the file ends in a partial line, so later lines stay parseable."""
        size = os.fstat(self._fd).st_size
        if size == 0 or not self.path.is_file():
            return False
        with open(self.path, "rb") as reader:
            reader.seek(size - 1)
            return reader.read(1) != b"\n"

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def add(self, alerts: Sequence[AlertDoc]) -> None:
        for doc in alerts:
            alert_id(doc)  # validate now, not at flush time
            alert_time(doc)
            self._buffer.append(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")

    def flush(self) -> None:
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        try:
            if self._check_line_end and self._line_break_needed():
                data = b"\n" + data
            self._check_line_end = True  # until this write is known complete
            self._write_all(data)
            os.fsync(self._fd)
        except OSError as exc:
            raise SinkError(f"writing alerts to {self.path} failed: {exc}") from exc
        self._check_line_end = False
        self._buffer.clear()

    def close(self) -> None:
        """Close the file (idempotent); does not flush."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
