"""Parse/normalise stage: raw message bytes -> ``Event``s, or ``Rejected`` with a reason.

Formats are auto-detected per message (docs/input-formats.md):
gzip (magic 1f8b) is inflated first (bounded), then the JSON document is
a CloudTrail file ``{"Records": [...]}``, a single CloudTrail record, an
auditwatch inference event (has ``gen_ai.request.model``) or an ECS document.
Nothing here raises for bad input.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from detector.errors import ParseError
from detector.events import Event
from detector.gcpause import collector_paused
from detector.parsers.cloudtrail import parse_cloudtrail
from detector.parsers.common import (
    REASONS,
    ParseOptions,
    Rejected,
    depth_exceeds,
    flatten,
    type_name,
)
from detector.parsers.ecs import parse_ecs
from detector.parsers.inference import MODEL_FIELD, parse_inference

__all__ = [
    "REASONS",
    "ParseOptions",
    "ParsedBatch",
    "Rejected",
    "parse_batch",
    "parse_message",
    "parse_messages",
]

GZIP_MAGIC = b"\x1f\x8b"
_NON_FINITE_TOKENS = (b"NaN", b"Infinity", b"-Infinity", b"-NaN", b"+Infinity")
_ECS_MARKERS = ("@timestamp", "ecs.version")
_ECS_PREFIXES = ("user.", "event.")


def inflate(data: bytes, limit: int) -> bytes:
    """Decompress (possibly multi-member) gzip, refusing output beyond ``limit`` bytes."""
    out: list[bytes] = []
    size = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            chunk = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as exc:
            raise ParseError("invalid_gzip", f"gzip: {exc}"[:300]) from None
        size += len(chunk)
        if size > limit or inflater.unconsumed_tail:
            raise ParseError("too_large", f"gzip inflates beyond {limit} bytes")
        if not inflater.eof:
            raise ParseError("invalid_gzip", "gzip stream is truncated")
        out.append(chunk)
        rest = inflater.unused_data
    return b"".join(out)


def decode(data: bytes, options: ParseOptions) -> Any:
    """Bytes -> JSON value, with size, gzip, UTF-8, number and depth checks."""
    if len(data) > options.max_message_bytes:
        raise ParseError("too_large", f"{len(data)} bytes > {options.max_message_bytes}")
    if data[:2] == GZIP_MAGIC:
        data = inflate(data, options.max_message_bytes)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _decode_error(data, exc) from None
    # cheap bound first: nesting depth <= number of opening brackets (one pass over the
    # bytes with translate, not two with count: 0.9 vs 1.5 us for a CloudTrail record)
    brackets = len(data) - len(data.translate(None, b"{["))
    if brackets > options.max_depth and depth_exceeds(value, options.max_depth):
        raise ParseError("too_deep", f"nesting deeper than {options.max_depth}")
    return value


def _decode_error(data: bytes, exc: orjson.JSONDecodeError) -> ParseError:
    message = str(exc)
    where = f"orjson: {message.split(':', 1)[0]} at byte {exc.pos}"
    if "depth limit" in message or "recursion" in message.lower():  # orjson stops at 1024
        return ParseError("too_deep", where)
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM is not JSON (RFC 8259 8.1), whatever orjson says
        return ParseError("invalid_json", "byte order mark before the JSON text")
    if "UTF-8" in message:
        return ParseError("invalid_utf8", where)
    if "infinity" in message or data[exc.pos : exc.pos + 9].startswith(_NON_FINITE_TOKENS):
        return ParseError("non_finite_number", where)
    return ParseError("invalid_json", where)


def normalise(record: Any, options: ParseOptions, max_ts: float) -> Event:
    """One JSON object of any supported format -> Event; raises ParseError."""
    if type(record) is not dict:
        raise ParseError("unknown_format", f"expected a JSON object, got {type_name(record)}")
    if "eventName" in record and "eventSource" in record:  # is_cloudtrail, inlined
        return parse_cloudtrail(record, max_ts)
    flat = flatten(record)
    if MODEL_FIELD in flat:
        return parse_inference(record, flat, max_ts)
    if any(m in flat for m in _ECS_MARKERS) or any(k.startswith(_ECS_PREFIXES) for k in flat):
        return parse_ecs(record, flat, options, max_ts)
    raise ParseError("unknown_format", "not CloudTrail, ECS or an auditwatch inference event")


def _parse_into(
    data: bytes | None,
    options: ParseOptions,
    max_ts: float,
    events: list[Event],
    rejected: list[Rejected],
) -> int:
    """Append one message's Events/Rejected to the lists; return how many Events."""
    if data is None:  # a Kafka tombstone: rejected like an empty message
        data = b""
    try:
        value = decode(data, options)
        records = value.get("Records") if type(value) is dict else None
        if type(records) is not list:
            events.append(normalise(value, options, max_ts))
            return 1
    except ParseError as exc:
        rejected.append(Rejected(exc.reason, exc.detail, data))
        return 0
    before = len(events)
    for index, record in enumerate(records):
        try:
            events.append(normalise(record, options, max_ts))
        except ParseError as exc:
            rejected.append(Rejected(exc.reason, f"Records[{index}]: {exc.detail}"[:300], data))
    return len(events) - before


def parse_message(
    data: bytes, options: ParseOptions, now: float | None = None
) -> tuple[list[Event], list[Rejected]]:
    """Parse one message. Never raises for bad input: failures come back as Rejected.

    A CloudTrail file yields one Event per good record and one Rejected per bad
    one (each Rejected carries the whole message). ``now`` (epoch s, default the
    wall clock) bounds how far in the future a timestamp may be.
    """
    max_ts = (time.time() if now is None else now) + options.max_clock_skew_s
    events: list[Event] = []
    rejected: list[Rejected] = []
    _parse_into(data, options, max_ts, events, rejected)
    return events, rejected


@dataclass(slots=True)
class ParsedBatch:
    """A batch of messages parsed: every Event and every Rejected, each with the index
    of the message it came from."""

    events: list[Event] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)  # message index of each Event
    rejected: list[Rejected] = field(default_factory=list)
    rejected_origins: list[int] = field(default_factory=list)  # message index of each Rejected


def parse_messages(
    messages: Sequence[bytes | None], options: ParseOptions, now: float | None = None
) -> ParsedBatch:
    """Parse many messages in order. Never raises for bad input."""
    max_ts = (time.time() if now is None else now) + options.max_clock_skew_s
    out = ParsedBatch()
    events, origins = out.events, out.origins
    rejected, rejected_origins = out.rejected, out.rejected_origins
    with collector_paused():
        for index, data in enumerate(messages):
            got = _parse_into(data, options, max_ts, events, rejected)
            if got == 1:
                origins.append(index)
            elif got:
                origins.extend([index] * got)
            if len(rejected) > len(rejected_origins):
                rejected_origins.extend([index] * (len(rejected) - len(rejected_origins)))
    return out


def parse_batch(
    messages: Sequence[bytes], options: ParseOptions, now: float | None = None
) -> tuple[list[Event], list[Rejected], list[int]]:
    """Parse many messages; the third list maps each Event to its message index."""
    out = parse_messages(messages, options, now)
    return out.events, out.rejected, out.origins
