"""``python -m benchmarks``: ``detectors`` (auditwatch's detectors vs. peers, one table)
and ``all`` (every benchmark: detectors, pipeline events/s, stage costs, latency, entities).

Exit codes: 0 report written, 2 bad arguments (unknown stream, no detector matched).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.detectors_bench import evaluate
from benchmarks.measure import machine_facts, process_age_s
from benchmarks.peers import select
from benchmarks.report import RunInfo, render
from benchmarks.streams import DEFAULT_STREAMS, STREAMS, Stream, StreamUnavailable, build_stream
from benchmarks.suite import SECTIONS, Plan
from benchmarks.suite import run as run_all

QUICK_EVENTS = 20_000
QUICK_BUDGET_S = 30.0
FULL_BUDGET_S = 120.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    det = sub.add_parser("detectors", help="detectors x streams: AUC, AP, throughput, memory")
    det.add_argument("--streams", nargs="+", default=list(DEFAULT_STREAMS), metavar="NAME")
    det.add_argument("--detectors", nargs="+", default=None, metavar="SUBSTRING")
    det.add_argument("--max-events", type=int, default=None, help="cap every stream")
    det.add_argument("--quick", action="store_true", help=f"cap streams at {QUICK_EVENTS:,}")
    det.add_argument("--pass-seconds", type=float, default=None, help="time budget per pass")
    det.add_argument(
        "--capped",
        choices=("prefix", "strided"),
        default="prefix",
        help="what capped (slow) peers replay: the prefix, or every k-th event in order",
    )
    det.add_argument("--seed", type=int, default=0)
    det.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    add_all_parser(sub)
    return parser.parse_args(argv)


def add_all_parser(sub: argparse._SubParsersAction) -> None:
    every = sub.add_parser("all", help="every benchmark in one run, one Markdown file")
    every.add_argument("--quick", action="store_true", help="small caps: a few minutes")
    every.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    every.add_argument("--seed", type=int, default=0)
    hidden = argparse.SUPPRESS  # size overrides, for smoke tests and experiments
    every.add_argument("--streams", nargs="+", metavar="NAME", help=hidden)
    every.add_argument("--detectors", nargs="+", metavar="SUBSTRING", help=hidden)
    every.add_argument(
        "--sections",
        help="run only these sections, e.g. 'ce' (a detectors, b pipeline, c stages, "
        "d latency, e entities; default all)",
    )
    every.add_argument("--backends", nargs="+", help=hidden)
    for flag, kind in (
        ("--max-events", int),
        ("--pass-seconds", float),
        ("--capped-pass-seconds", float),
        ("--memory-seconds", float),
        ("--pipeline-events", int),
        ("--stage-events", int),
        ("--latency-rate", float),
        ("--latency-seconds", float),
        ("--history-events", int),
        ("--entity-events", int),
        ("--entity-base", int),
    ):
        every.add_argument(flag, type=kind, help=hidden)
    every.add_argument("--entity-scales", type=int, nargs="+", help=hidden)


def plan_from(args: argparse.Namespace) -> Plan:
    """The quick or full preset with any hidden overrides applied."""
    plan = Plan.quick() if args.quick else Plan.full()
    plan.seed = args.seed
    for name in (
        "max_events",
        "pass_seconds",
        "capped_pass_seconds",
        "memory_seconds",
        "pipeline_events",
        "stage_events",
        "latency_rate",
        "latency_seconds",
        "history_events",
        "entity_events",
        "entity_base",
        "sections",
    ):
        if getattr(args, name) is not None:
            setattr(plan, name, getattr(args, name))
    if args.streams:
        plan.streams = tuple(args.streams)
    if args.detectors:
        plan.detectors = tuple(args.detectors)
    if args.backends:
        plan.backends = tuple(args.backends)
    if args.entity_scales:
        plan.entity_scales = tuple(args.entity_scales)
    return plan


def main_all(args: argparse.Namespace, argv: list[str] | None) -> int:
    plan = plan_from(args)
    unknown = [n for n in plan.streams if n not in STREAMS]
    bad_sections = set(plan.sections) - set(SECTIONS)
    if unknown or bad_sections or (plan.detectors and not select(list(plan.detectors))):
        print(
            f"unknown streams {unknown}, sections {sorted(bad_sections)} (choose from "
            f"{SECTIONS}) or no detector matched {plan.detectors}",
            file=sys.stderr,
        )
        return 2
    words = sys.argv[1:] if argv is None else argv
    already = process_age_s() if argv is None else 0.0  # from the command line: count imports
    run_all(plan, "python -m benchmarks " + " ".join(words), args.out, already)
    return 0


def load_streams(names: list[str], max_events: int | None) -> tuple[list[Stream], dict[str, str]]:
    """The streams that could be built (capped), and why the others could not."""
    streams, missing = [], {}
    for name in names:
        try:
            streams.append(build_stream(name, max_events))
        except StreamUnavailable as exc:
            missing[name] = str(exc)
    return streams, missing


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "all":
        return main_all(args, argv)
    unknown = [n for n in args.streams if n not in STREAMS]
    specs = select(args.detectors)
    if unknown or not specs:
        print(f"unknown streams {unknown} or no detector matched {args.detectors}", file=sys.stderr)
        return 2
    max_events = args.max_events or (QUICK_EVENTS if args.quick else None)
    if args.quick and args.max_events:
        max_events = min(args.max_events, QUICK_EVENTS)
    budget = args.pass_seconds or (QUICK_BUDGET_S if args.quick else FULL_BUDGET_S)
    start = time.perf_counter()
    streams, missing = load_streams(args.streams, max_events)
    results = []
    for stream in streams:
        for spec in specs:
            res = evaluate(spec, stream, budget, args.seed, strided=args.capped == "strided")
            print(f"{stream.name:>10} {spec.name:<30} AUC {res.auc:.3f}", file=sys.stderr)
            results.append(res)
    info = RunInfo(
        command="python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        mode="quick" if args.quick else "full",
        max_events=max_events,
        budget_s=budget,
        capped=args.capped,
        wall_s=time.perf_counter() - start,
        stream_sources={s.name: f"{s.source}, {s.n_events:,} events" for s in streams},
        unavailable_streams=missing,
    )
    args.out.write_text(render(results, machine_facts(), info))
    print(f"wrote {args.out} in {info.wall_s:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
