"""Section b: whole-pipeline events/s, `auditwatch score` over files and the daemon via Kafka."""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.daemon_throughput import kafka_backends, score_file, through_kafka
from benchmarks.sections import Section, num
from detector.synth import generate

EVENTS_PER_DAY = 20_000
SCORE_RUNS = 3  # this shared VM's speed swings 15-30 % between runs a minute apart
COLUMNS = (
    "path",
    "events",
    "events/s",
    "parse s/10k",
    "score s/10k",
    "rest s/10k",
    "alerts",
    "notes",
)


def cloudtrail_lines(n: int, seed: int = 3) -> list[bytes]:
    """The first ``n`` generated CloudTrail records (one JSON record per line)."""
    days = 1.1 * n / EVENTS_PER_DAY + 0.1
    gen = generate(seed=seed, days=days, events_per_day=EVENTS_PER_DAY, formats=("cloudtrail",))
    lines = []
    for msg in gen:
        lines.append(msg.value)
        if len(lines) >= n:
            break
    return lines


def per_10k(seconds: float, events: int) -> str:
    return num(seconds * 10_000 / events, 3) if events else "—"


def measure(section: Section, n_events: int, work: Path, backends: list[str]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    lines = cloudtrail_lines(n_events)
    size = statistics.mean(len(line) for line in lines)
    section.intro.append(
        f"{len(lines):,} generated CloudTrail records (detector.synth, CloudTrail only, "
        f"mean {size:,.0f} bytes), the shipped models, one process."
    )
    path = work / "cloudtrail.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        runs = [score_file(path, work) for _ in range(SCORE_RUNS)]
        rates = sorted(run.events / run.seconds for run in runs)
        section.add_row(
            "`auditwatch score` (file -> scores + alerts JSONL)",
            f"{runs[0].events:,}",
            num(statistics.median(rates)),
            "—",
            "—",
            "—",
            runs[0].alerts,
            f"median of {SCORE_RUNS} runs (range {num(rates[0])}-{num(rates[-1])}), each with "
            "fresh models; wall time of score_files, reading and writing included",
        )
    except Exception as exc:  # the daemon rows are still worth having
        section.unavailable("`auditwatch score`", exc)
    for backend in backends:
        _daemon_row(section, lines, work / backend, backend)
    section.notes += [
        "- Daemon rows: the lines are first produced to a fresh bundled Tansu broker (topic "
        "`cloudtrail`, one partition), then the real daemon loop (`run_daemon`, SQLite alert "
        "sink, offsets committed after each durable batch) consumes them in a thread; the time "
        "runs from the first batch received to the last batch committed (the group join is "
        "not counted).",
        "- parse / score: sums of `auditwatch_stage_duration_seconds` (score = features + "
        "detector + calibration + alert documents); rest = Kafka fetch, sinks, commits, "
        "checkpoints and the loop itself.",
        "- Consumer-alone rows: after the daemon run, the daemon's own Kafka source (same "
        "settings, a fresh consumer group) reads the same messages from the start and commits "
        "each batch, with no parsing or scoring; what the daemon could reach if the rest cost "
        "nothing.",
        f"- Backends measured: {', '.join(backends)} (values `kafka.backend` accepts: "
        f"{', '.join(kafka_backends())}).",
    ]


def _daemon_row(section: Section, lines: list[bytes], work: Path, backend: str) -> None:
    try:
        run = through_kafka(lines, work, backend)
    except Exception as exc:  # e.g. confluent-kafka missing: a row says so
        section.unavailable(f"daemon via Kafka ({backend})", exc)
        return
    rest = run.seconds - run.parse_s - run.score_s
    section.add_row(
        f"daemon via Kafka ({backend})",
        f"{run.messages:,}",
        num(run.events_per_s),
        per_10k(run.parse_s, run.messages),
        per_10k(run.score_s, run.messages),
        per_10k(rest, run.messages),
        run.alerts,
        f"{run.seconds:.1f} s",
    )
    if run.consume_only_s:
        section.add_row(
            f"Kafka consumer alone ({backend})",
            f"{run.messages:,}",
            num(run.messages / run.consume_only_s),
            "—",
            "—",
            per_10k(run.consume_only_s, run.messages),
            "—",
            f"{run.consume_only_s:.1f} s; the daemon's source reading and committing the same "
            "messages, no processing: the client's ceiling",
        )
