"""How fast can any Python pipeline read CloudTrail records here, and how close is ours?

Times, per record, JSON decoding alone (``orjson.loads``, ``json.loads``) against
auditwatch's parse stage (``parse_messages``: decode + checks + normalise to ``Event``)
and the whole ``auditwatch score`` path (``score_files``: read, parse, features, detector,
alerts, write), on the real CloudTrail records in ``../shared/data`` (repeated to the
requested count) and on generated CloudTrail records (those of benchmark section b)::

    python -m benchmarks.parse_ceiling [--events 100000] [--repeats 3]

Each decoded value is dropped at once, as the parse stage drops a record once it is
normalised: keeping 100k decoded records alive, then freeing them cold, costs more than
normalising them. The cyclic collector is paused, as the pipeline pauses it per batch.
Best of ``--repeats`` runs; one core.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import orjson

from benchmarks.daemon_throughput import score_file
from benchmarks.measure import machine_facts
from benchmarks.pipeline_bench import cloudtrail_lines
from benchmarks.streams import DATA_DIR
from detector.parsers import ParseOptions, parse_messages

REAL = DATA_DIR / "cloudtrail" / "invictus_stratus" / "events_sorted.jsonl"


def best_rate(work: Callable[[], object], n: int, repeats: int) -> float:
    """Records per second of the fastest of ``repeats`` runs, collector paused."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            work()
            best = min(best, time.perf_counter() - started)
        finally:
            gc.enable()
    return n / best


def score_rate(lines: list[bytes], repeats: int) -> float:
    """Events/s of ``auditwatch score`` over ``lines`` written to a file (best of runs)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        runs = [score_file(work / "in.jsonl", work) for _ in range(repeats)]
    return max(run.events / run.seconds for run in runs)


def measure(name: str, lines: list[bytes], repeats: int) -> list[str]:
    options = ParseOptions()
    size = sum(map(len, lines)) / len(lines)
    n = len(lines)
    rates = [  # decoded values are dropped at once, as the parse stage drops each record
        best_rate(lambda: deque(map(orjson.loads, lines), maxlen=0), n, repeats),
        best_rate(lambda: deque(map(json.loads, lines), maxlen=0), n, repeats),
        best_rate(lambda: parse_messages(lines, options), n, repeats),
        score_rate(lines, repeats),
    ]
    return [name, f"{n:,}", f"{size:,.0f}", *(f"{r:,.0f}" for r in rates)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parse_ceiling")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    if REAL.exists():
        real = REAL.read_bytes().splitlines()
        real = (real * (args.events // len(real) + 1))[: args.events]
        rows.append(measure(f"real CloudTrail ({REAL.parent.name}, repeated)", real, args.repeats))
    else:
        print(f"{REAL} not found: real CloudTrail row skipped", file=sys.stderr)
    rows.append(
        measure("generated CloudTrail (section b)", cloudtrail_lines(args.events), args.repeats)
    )
    head = "| records | n | mean bytes | orjson.loads/s | json.loads/s | parse stage/s | score/s |"
    print(head)
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    facts = machine_facts()
    print(f"\n{facts['CPU']}, {facts['cores']} cores, {facts['date (UTC)']} UTC, best of")
    print(f"{args.repeats} runs, commit {facts['auditwatch commit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
