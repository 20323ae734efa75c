"""File source: JSON lines, CloudTrail Records files, gzip, unreadable files."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import orjson
import pytest

from detector.errors import SourceError
from detector.parsers import ParseOptions, parse_batch
from detector.sources.files import iter_file_messages

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STRATUS = DATA / "cloudtrail" / "invictus_stratus"
OTRF_FILE = (
    DATA
    / "cloudtrail"
    / "otrf_ec2_proxy_s3_exfiltration"
    / ("ec2_proxy_s3_exfiltration_2020-09-14011940.json")
)
RAW_FILES = sorted((STRATUS / "raw").glob("*.json"))
NOW = 1_800_000_000.0


def test_json_lines_file() -> None:
    messages = list(iter_file_messages([STRATUS / "events_sorted.jsonl"]))
    assert len(messages) == 2900
    assert [i for _, i, _ in messages] == list(range(2900))
    assert messages[5][0] == str(STRATUS / "events_sorted.jsonl")
    lines = (STRATUS / "events_sorted.jsonl").read_bytes().splitlines()
    assert messages[5][2] == lines[5]


def test_raw_cloudtrail_files_yield_one_message_per_record() -> None:
    messages = list(iter_file_messages(RAW_FILES))
    assert len(messages) == 2900  # the same records as events_sorted.jsonl
    first = orjson.loads(RAW_FILES[0].read_bytes())["Records"]
    assert [orjson.loads(m) for p, _, m in messages if p == str(RAW_FILES[0])] == first
    events, rejected, _ = parse_batch([m for _, _, m in messages], ParseOptions(), now=NOW)
    assert rejected == [] and len({e.event_id for e in events}) == 2900


def test_gzip_of_both_kinds_matches_plain(tmp_path: Path) -> None:
    for source in (OTRF_FILE, RAW_FILES[0]):
        packed = tmp_path / (source.name + ".gz")
        packed.write_bytes(gzip.compress(source.read_bytes()))
        plain = [(i, m) for _, i, m in iter_file_messages([source])]
        assert [(i, m) for _, i, m in iter_file_messages([packed])] == plain
        assert len(plain) > 1


def test_pretty_printed_files(tmp_path: Path) -> None:
    records = orjson.loads(RAW_FILES[0].read_bytes())["Records"][:3]
    trail = tmp_path / "trail.json"
    trail.write_bytes(orjson.dumps({"Records": records}, option=orjson.OPT_INDENT_2))
    assert [orjson.loads(m) for _, _, m in iter_file_messages([trail])] == records
    single = tmp_path / "one.json"
    single.write_bytes(
        orjson.dumps({"@timestamp": "2024-01-01", "user.name": "a"}, option=orjson.OPT_INDENT_2)
    )
    assert [(i, orjson.loads(m)["user.name"]) for _, i, m in iter_file_messages([single])] == [
        (0, "a")
    ]


def test_blank_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \nnot json\r\n{"b": 2}')
    assert [(i, m) for _, i, m in iter_file_messages([path])] == [
        (0, b'{"a": 1}'),
        (3, b"not json"),
        (4, b'{"b": 2}'),
    ]


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert list(iter_file_messages([path])) == []


@pytest.mark.parametrize("kind", ["missing", "directory", "corrupt_gzip", "truncated_gzip"])
def test_unreadable_file_raises_source_error_with_path(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.jsonl.gz"
    if kind == "directory":
        path.mkdir()
    elif kind == "corrupt_gzip":
        path.write_bytes(b"\x1f\x8b" + b"\x08" + b"\x00" * 40)
    elif kind == "truncated_gzip":
        path.write_bytes(gzip.compress(OTRF_FILE.read_bytes())[:5000])
    with pytest.raises(SourceError, match=re.escape(str(path))):
        list(iter_file_messages([path]))
