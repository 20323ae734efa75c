"""``python -m benchmarks all``: every benchmark in one run, one Markdown file.

Sections: (a) detectors x streams, (b) whole-pipeline events/s, (c) per-stage
seconds, (d) event-to-alert latency through the daemon, (e) entity scaling.
Each section runs guarded: what cannot be measured here becomes a row saying why.
"""

from __future__ import annotations

import gc
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, fields
from pathlib import Path

from benchmarks import entities, latency, pipeline_bench, stages
from benchmarks.daemon_throughput import DEFAULT_BACKEND, kafka_backends
from benchmarks.detectors_bench import evaluate
from benchmarks.generated import days_for, messages
from benchmarks.measure import machine_facts
from benchmarks.peers import PeerSpec, select
from benchmarks.report import COLUMNS, RunInfo, method_notes, row
from benchmarks.sections import Section, run_section
from benchmarks.streams import DEFAULT_STREAMS, StreamUnavailable, build_stream

SECTIONS = "abcde"
MEMORY_MIN_EVENTS = 32  # tracemalloc pass floor: the slowest peers run ~10 events/s under it
# Left out of --quick: per-event rates of 30-400 events/s here, or a JVM to start and feed
# instance by instance; each costs seconds per stream even on 2,000 events. Full mode runs them.
QUICK_SKIPPED_PEERS = (
    "auditwatch sliding_iforest",
    "pysad IForestASD",
    "pysad RRCF",
    "pysad xStream",
    "capymoa HST",
    "capymoa OIF",
)


@dataclass
class Plan:
    """Sizes of every section; ``quick()`` and ``full()`` are the presets."""

    mode: str
    max_events: int | None  # per stream in section a (None: whole streams)
    pass_seconds: float  # per detector pass over a whole stream in section a
    capped_pass_seconds: float  # per pass over a capped subset (slow peers)
    memory_seconds: float  # tracemalloc pass in section a (0: skipped)
    pipeline_events: int  # section b
    stage_events: int  # per topic, section c
    latency_rate: float  # section d
    latency_seconds: float
    history_events: int
    latency_all_backends: bool  # False: the default backend only
    entity_scales: tuple[int, ...]  # section e
    entity_events: int
    entity_base: int
    entity_events_per_entity: int
    isolate: bool  # each section in a fresh process (when more than one runs)
    streams: tuple[str, ...] = DEFAULT_STREAMS
    detectors: tuple[str, ...] | None = None  # substrings; None: every detector
    backends: tuple[str, ...] | None = None  # Kafka backends; None: every kafka.backend value
    sections: str = SECTIONS
    seed: int = 0

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            mode="quick",
            max_events=2_000,
            pass_seconds=1.5,
            capped_pass_seconds=1.5,
            memory_seconds=0.0,
            pipeline_events=20_000,
            stage_events=5_000,
            latency_rate=2_000,
            latency_seconds=10,
            history_events=10_000,
            latency_all_backends=False,
            entity_scales=(1_000, 10_000, 100_000),
            entity_events=20_000,
            entity_base=10_000,
            entity_events_per_entity=1,
            isolate=False,  # quick mode starts no JVM; one process keeps it quick
        )

    @classmethod
    def full(cls) -> Plan:
        return cls(
            mode="full",
            max_events=None,
            pass_seconds=60.0,
            capped_pass_seconds=6.0,
            memory_seconds=1.0,
            pipeline_events=200_000,
            stage_events=50_000,
            latency_rate=2_000,
            latency_seconds=60,
            history_events=40_000,
            latency_all_backends=True,
            entity_scales=(1_000, 10_000, 100_000),
            entity_events=200_000,
            entity_base=50_000,
            entity_events_per_entity=3,
            isolate=True,
        )

    def describe(self) -> list[str]:
        return [f"`{f.name}`={getattr(self, f.name)}" for f in fields(self)]


Body = Callable[[Section], None]


def run(plan: Plan, command: str, out: Path, already_s: float = 0.0) -> None:
    """Run the planned sections and write the report to ``out``; ``already_s`` is the time
    the command spent before this call (start-up, imports), counted in the wall time."""
    started = time.perf_counter() - already_s
    facts = machine_facts()
    isolate = plan.isolate and len(plan.sections) > 1
    with tempfile.TemporaryDirectory(prefix="auditwatch-bench-") as tmp:
        run_one = run_isolated if isolate else run_here
        sections = [run_one(plan, key, Path(tmp)) for key in plan.sections]
    wall = time.perf_counter() - started
    out.write_text(render(facts, plan, command, wall, sections))
    print(f"[bench] wrote {out} in {wall:.0f} s", file=sys.stderr)


def run_here(plan: Plan, key: str, work: Path) -> Section:
    """Run one section in this process."""
    title, columns, body = section_bodies(plan, work)[key]
    print(f"[bench] {title} ...", file=sys.stderr)
    settle_heap()
    try:
        return run_section(Section(title, columns), body)
    finally:
        gc.unfreeze()


def run_isolated(plan: Plan, key: str, work: Path) -> Section:
    """Run one section in a fresh process: what an earlier section left behind (the JVM
    behind capymoa and its threads, peers' native heaps, cached streams) must not slow
    the daemon timed in a later one. A crashed child becomes a row saying why."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(run_here, plan, key, work).result()
        except BrokenProcessPool as exc:
            title, columns, _ = section_bodies(plan, work)[key]
            section = Section(title, columns)
            section.unavailable("(whole section)", exc)
            return section


def settle_heap() -> None:
    """Move what earlier sections left alive (cached generated streams: ~10^5 objects)
    out of the collector's reach, so the pipeline's garbage collections cost what they
    would in the daemon instead of also scanning the benchmark's own data."""
    gc.collect()
    gc.freeze()


def section_bodies(plan: Plan, work: Path) -> dict[str, tuple[str, tuple[str, ...], Body]]:
    """Title, table columns and the code that fills each section, by letter."""
    backends = list(plan.backends or kafka_backends())
    return {
        "a": ("a. Detectors x streams", COLUMNS, lambda s: detectors(s, plan)),
        "b": (
            "b. Whole pipeline: events/s",
            pipeline_bench.COLUMNS,
            lambda s: pipeline_bench.measure(s, plan.pipeline_events, work / "b", backends),
        ),
        "c": ("c. Per-stage cost", ("stage",), lambda s: stage_timing(s, plan, work / "c")),
        "d": (
            "d. Event-to-alert latency through the daemon",
            latency.COLUMNS,
            lambda s: latency_section(s, plan, work / "d"),
        ),
        "e": (
            "e. Entity scaling",
            entities.COLUMNS,
            lambda s: entities.measure(
                s,
                list(plan.entity_scales),
                plan.entity_events,
                plan.entity_base,
                plan.entity_events_per_entity,
            ),
        ),
    }


def detectors(section: Section, plan: Plan) -> None:
    specs, skipped = quick_specs(plan)
    for name in plan.streams:
        try:
            stream = build_stream(name, plan.max_events, strided=True)
        except StreamUnavailable as exc:
            section.intro.append(f"- `{name}`: unavailable — {exc}")
            section.add_row(name, "(stream)", *["—"] * (len(COLUMNS) - 3), f"unavailable: {exc}")
            continue
        section.intro.append(f"- `{name}`: {stream.source}, {stream.n_events:,} events")
        for spec in specs:
            t0 = time.perf_counter()
            res = evaluate(
                spec,
                stream,
                plan.pass_seconds,
                plan.seed,
                strided=True,
                memory_s=plan.memory_seconds,
                capped_budget_s=plan.capped_pass_seconds,
                memory_min_events=MEMORY_MIN_EVENTS,
            )
            took = time.perf_counter() - t0
            print(f"[bench] {name} / {spec.name}: AUC {res.auc:.3f}, {took:.1f} s", file=sys.stderr)
            section.rows.append(row(res))
    info = RunInfo(
        "", plan.mode, plan.max_events, plan.pass_seconds, "strided", 0.0, {}, {},
        plan.memory_seconds, plan.capped_pass_seconds,
    )  # fmt: skip
    section.notes += method_notes(info)
    if skipped:
        section.notes.append(
            f"- Not run in quick mode (30-400 events/s per event here, or a JVM fed instance by "
            f"instance): {', '.join(skipped)}."
        )


def quick_specs(plan: Plan) -> tuple[list[PeerSpec], list[str]]:
    """The detectors to run, and the ones quick mode leaves out (unless asked for)."""
    specs = select(list(plan.detectors) if plan.detectors else None)
    if plan.mode != "quick" or plan.detectors:
        return specs, []
    kept = [s for s in specs if s.name not in QUICK_SKIPPED_PEERS]
    return kept, [s.name for s in specs if s.name in QUICK_SKIPPED_PEERS]


def stage_timing(section: Section, plan: Plan, work: Path) -> None:
    # the generated stream section a used when it was capped at the same size: one generation
    msgs = messages(days_for(None if plan.mode == "full" else plan.stage_events))
    section.intro.append(
        f"Up to {plan.stage_events:,} generated messages per topic (detector.synth, "
        "time-ordered), Kafka-sized batches of 2,000, the shipped models, SQLite sink; "
        "each topic in a fresh process."
    )
    stages.measure(section, msgs, plan.stage_events, work)
    section.notes.append(
        "- parse and the whole score stage: `auditwatch_stage_duration_seconds` sums; features, "
        "detector and alert: the runner's featurizer.featurize, detector.score/learn and "
        "_alert wrapped with timers; calibration etc. = score stage - those three; sink and "
        "total timed around the calls; other = total - parse - score stage - sink "
        "(routing, metrics accounting, the garbage collection deferred to the batch's end)."
    )


def latency_section(section: Section, plan: Plan, work: Path) -> None:
    backends = list(plan.backends or kafka_backends())
    if not plan.latency_all_backends:
        backends = backends[:1] if plan.backends else [DEFAULT_BACKEND]
    latency.measure(
        section, backends, plan.latency_rate, plan.latency_seconds, plan.history_events, work
    )


def render(
    facts: dict[str, str], plan: Plan, command: str, wall: float, sections: list[Section]
) -> str:
    out = ["# auditwatch benchmarks", "", f"Generated by `{command}` (mode **{plan.mode}**).", ""]
    out += ["## Machine and versions", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in facts.items()]
    out += [f"| command | `{command}` |", f"| wall time | {wall:.0f} s |", ""]
    out += ["Plan: " + ", ".join(plan.describe()), ""]
    for section in sections:
        out += section.markdown()
    return "\n".join(out)
