"""File source: JSON-lines files and CloudTrail ``{"Records": [...]}`` files, gzipped or not.

Each yielded message is one record, so message size stays bounded and the
index points at the record: for JSON lines it is the 0-based line number
(blank lines are skipped but still counted); for a CloudTrail file it is the
position in ``Records`` and the message is that record re-serialised. A file
holding one other JSON document yields it whole (index 0). Lines that are not
valid JSON are yielded as they are, for the parser to reject with a reason.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from detector.errors import SourceError

GZIP_MAGIC = b"\x1f\x8b"
READ_BUFFER = 1 << 16  # 64 KiB: line iteration 0.65 -> 0.38 us per CloudTrail line vs 8 KiB


def _open(path: Path) -> io.BufferedIOBase:
    handle = io.BufferedReader(io.FileIO(path, "rb"), READ_BUFFER)
    if handle.read(2) == GZIP_MAGIC:
        handle.close()
        return gzip.open(path, "rb")
    handle.seek(0)
    return handle


def _whole_document(handle: io.BufferedIOBase, first: bytes) -> Iterator[tuple[int, bytes]]:
    """A file that is not JSON lines: CloudTrail Records (one per message) or one doc."""
    data = first + handle.read()
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        # neither JSON lines nor one document: let the parser reject each line
        for index, line in enumerate(data.splitlines()):
            if line.strip():
                yield index, line
        return
    records = value.get("Records") if type(value) is dict else None
    if type(records) is list:
        for index, record in enumerate(records):
            yield index, orjson.dumps(record)
    else:
        yield 0, data


def _records(handle: io.BufferedIOBase) -> Iterator[tuple[int, bytes]]:
    first = handle.readline()
    try:
        value = orjson.loads(first)
    except orjson.JSONDecodeError:
        yield from _whole_document(handle, first)
        return
    if type(value) is dict and type(value.get("Records")) is list:
        yield from _whole_document(handle, first)  # a one-line CloudTrail file
        return
    # the first line is a complete document: JSON lines, streamed
    for index, line in enumerate(_chain(first, handle)):
        if not line.isspace():  # no copy of the line, unlike strip()
            yield index, line.rstrip(b"\r\n")


def _chain(first: bytes, handle: io.BufferedIOBase) -> Iterator[bytes]:
    yield first
    yield from handle


def iter_file_messages(paths: Sequence[Path]) -> Iterator[tuple[str, int, bytes]]:
    """Yield ``(path, index, message bytes)`` for every record of every file, in order.

    Raises SourceError (naming the path) if a file cannot be opened or read,
    including a corrupt or truncated gzip stream.
    """
    for path in paths:
        name = str(path)
        try:
            with _open(Path(path)) as handle:
                for index, message in _records(handle):
                    yield name, index, message
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"cannot read {name}: {exc}") from exc
