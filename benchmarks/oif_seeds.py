"""Seed spread of the default detector on the ODDS streams (in file order) and on
auditwatch's generated streams.

One seed's AUC can flatter or wrong a random forest, so this runs seeds 0-3 of
``online_iforest``, both as the daemon runs it (learning only rows below severity 40) and
learning every row, and prints a Markdown table with the mean and range per stream. ODDS
streams get the default parameters; a generated stream (``auditwatch_audit`` = CloudTrail,
``auditwatch_ecs``, ``auditwatch_inference``: the whole 14-day stream) gets its shipped
model's ``[detector] params`` and, as the daemon runs it, its ``alerts.max_learned_per_entity``
(as in ``BENCHMARKS.md``)::

    python -m benchmarks.oif_seeds [--seeds 0 1 2 3] [--streams http smtp cover shuttle]
    python -m benchmarks.oif_seeds --streams auditwatch_ecs auditwatch_audit --gated-only

``--max-events N`` caps each stream (a generated one is generated shorter); ``--param
NAME=VALUE`` overrides a detector parameter (repeatable); ``--algorithm NAME`` runs another
of our detectors (``sliding_iforest``, ...) with its defaults and the ``--param`` overrides.
``--generator-seed N`` generates held-out traffic (the benchmarks use seed 0), and ``--loda``
adds PySAD's LODA per event over the same seeds, the peer that leads on generated CloudTrail.
``--fuse`` (implies ``--loda``) also scores the severities: the forest's as the daemon
reports them (0 during warm-up, then the streaming calibrator), LODA's through the same
calibration, their mean, and that mean calibrated again (what an alert budget would need).
Every row also gives the recall at the shipped alert budget (30 alerts per 10,000)::

    python -m benchmarks.oif_seeds --streams auditwatch_audit --gated-only --loda \\
        --generator-seed 1
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.detectors_bench import ALERT_BUDGET_PER_10K, recall_at_budget
from benchmarks.measure import machine_facts
from benchmarks.peers import Ours
from benchmarks.streams import GENERATED_TOPICS, ODDS_FILES, Stream, build_stream
from detector.modeldefs import AlertSpec, DetectorSpec
from detector.runner import block_calibrator, limit_per_entity
from detector.scoring.registry import DETECTORS

BLOCK = 256


def stream_scores(
    X: np.ndarray,
    seed: int,
    gated: bool,
    params: dict[str, Any] | None = None,
    entities: tuple[np.ndarray, np.ndarray] | None = None,
    max_learned_per_entity: int = 0,
    algorithm: str = "online_iforest",
) -> np.ndarray:
    """Prequential raw scores: score each block of 256, then learn from it (at most
    ``max_learned_per_entity`` rows of a bursting entity per block when ``entities``, the
    rows' (entity codes, bursting flags), are given)."""
    adapter = Ours(algorithm, X.shape[1], seed, gated, params)
    if entities is not None and max_learned_per_entity and gated:
        adapter.limit_learning_per_entity(*entities, max_learned_per_entity)
    return np.concatenate(
        [adapter.process_block(X[i : i + BLOCK]) for i in range(0, len(X), BLOCK)]
    )


def daemon_severity(
    raw: np.ndarray,
    start: int | None = None,
    entities: tuple[np.ndarray, np.ndarray] | None = None,
    max_learned_per_entity: int = 0,
) -> np.ndarray:
    """Severities of a stream of raw scores as ``ModelRunner`` reports them with default
    settings: 0 during the warm-up (or before row ``start``) and until the calibrator is
    ready, each block scored before the calibrator learns it; with ``entities`` (entity
    codes, bursting flags) and a cap, a bursting entity's rows past the cap per block are
    kept out of the calibrator, as the runner does."""
    det = DetectorSpec()
    cal = block_calibrator(AlertSpec().calibration_window, det.block_size)
    out = np.zeros(len(raw))
    for lo in range(det.warmup_events if start is None else start, len(raw), det.block_size):
        here = slice(lo, lo + det.block_size)
        block = raw[here]
        if cal.ready:
            out[here] = cal.severity(block)
        use = np.ones(len(block), dtype=bool)
        if entities is not None and max_learned_per_entity:
            codes, bursting = entities[0][here].tolist(), entities[1][here]
            limit_per_entity(use, codes, bursting, {}, max_learned_per_entity)
        cal.update(block[use])
    return out


LODA = "pysad LODA, defaults"


def loda_scores(X: np.ndarray, seed: int) -> np.ndarray:
    """PySAD LODA's scores, scored and learned per event as in the benchmark table;
    ImportError without PySAD (``pip install -r benchmarks/requirements.txt``)."""
    from benchmarks.peers import _pysad

    adapter = _pysad("loda")(X.shape[1], seed)
    return np.array([adapter.process_one(x) for x in X], dtype=np.float64)


def _loda_rows(
    name: str,
    stream: Stream,
    seeds: list[int],
    forest: list[np.ndarray],
    fuse: bool,
    cap: tuple[tuple[np.ndarray, np.ndarray] | None, int] = (None, 0),
) -> list[str]:
    """LODA's row and, with ``fuse``, the severity rows (``forest``: its raw scores per seed;
    ``cap``: the runner's per-entity cap, (entity codes, bursting flags) and its size)."""
    try:
        loda = [loda_scores(stream.X, seed) for seed in seeds]
    except ImportError as exc:  # as in the benchmark table: a row that says why
        why = f"unavailable: {exc} (pip install -r benchmarks/requirements.txt)"
        return [f"| {name} | {LODA} | per event | {why} | — | — | — | — |"]
    rows = [_row(name, LODA, "per event", stream.y, loda)]
    if fuse:
        ours = [daemon_severity(raw, None, *cap) for raw in forest]
        theirs = [daemon_severity(raw, None, *cap) for raw in loda]
        mean = [(a + b) / 2 for a, b in zip(ours, theirs, strict=True)]
        # an alert budget needs the mean calibrated again, from when both members are ready
        det = DetectorSpec()
        cal = block_calibrator(AlertSpec().calibration_window, det.block_size)
        ready = det.warmup_events + cal.min_samples
        again = [daemon_severity(m, start=ready) for m in mean]
        rows += [
            _row(name, "online_iforest", "severity, as the daemon reports it", stream.y, ours),
            _row(name, LODA, "severity, the same calibration", stream.y, theirs),
            _row(name, "both", "mean of the two severities", stream.y, mean),
            _row(name, "both", "that mean, calibrated again", stream.y, again),
        ]
    return rows


def _row(name: str, shown: str, mode: str, y: np.ndarray, scores: list[np.ndarray]) -> str:
    """Mean, range and per-seed ROC AUC, then the mean recall at the alert budget."""
    aucs = [float(roc_auc_score(y, s)) for s in scores]
    recall = np.mean([recall_at_budget(y, s) for s in scores])
    per_seed = " ".join(f"{a:.3f}" for a in aucs)
    return (
        f"| {name} | {shown} | {mode} | {np.mean(aucs):.3f} | {min(aucs):.3f}"
        f" | {max(aucs):.3f} | {per_seed} | {recall:.3f} |"
    )


def detector_param(text: str) -> tuple[str, int | float | bool]:
    """``NAME=VALUE`` -> (name, int, float or bool value), for ``--param``.

    >>> detector_param("max_leaf_samples=8"), detector_param("redraw_dead_splits=true")
    (('max_leaf_samples', 8), ('redraw_dead_splits', True))
    """
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    if value.lower() in ("true", "false"):
        return name, value.lower() == "true"
    try:
        return name, int(value)
    except ValueError:
        try:
            return name, float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a number") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.oif_seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--streams", nargs="+", default=list(ODDS_FILES))
    parser.add_argument(
        "--gated-only", action="store_true", help="only as the daemon runs it (half the time)"
    )
    parser.add_argument(
        "--max-events", type=int, default=None, help="cap each stream (default: the whole stream)"
    )
    parser.add_argument(
        "--generator-seed",
        type=int,
        default=0,
        help="detector.synth seed of generated streams (0, the default, is the benchmarks')",
    )
    parser.add_argument(
        "--algorithm",
        default="online_iforest",
        choices=sorted(DETECTORS),
        help="our detector to run (default online_iforest; another gets only --param)",
    )
    parser.add_argument("--loda", action="store_true", help="also PySAD LODA per event, same seeds")
    parser.add_argument(
        "--fuse", action="store_true", help="--loda, plus calibrated severities and their mean"
    )
    parser.add_argument(
        "--param",
        type=detector_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a detector parameter (repeatable), e.g. max_leaf_samples=8",
    )
    args = parser.parse_args(argv)
    if args.generator_seed and not set(args.streams) <= GENERATED_TOPICS.keys():
        parser.error("--generator-seed applies to the generated streams (auditwatch_*) only")
    facts = machine_facts()
    print(
        f"{args.algorithm}, seeds {args.seeds}; {facts['CPU']}, {facts['date (UTC)']}, "
        f"commit {facts['auditwatch commit']}\n"
    )
    print(
        "| stream | params | mode | mean AUC | min | max | per seed"
        f" | recall @ {ALERT_BUDGET_PER_10K}/10k, mean |"
    )
    print("|---|---|---|---|---|---|---|---|")
    modes = ((True, "as the daemon runs it"), (False, "every row learned"))
    sources = []
    for name in args.streams:
        stream = build_stream(name, args.max_events, generator_seed=args.generator_seed)
        sources.append(f"- {name}: {stream.source}")
        shipped = dict(stream.detector_params) if args.algorithm == "online_iforest" else {}
        params = shipped | dict(args.param)
        shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "defaults"
        who = None
        if stream.entities is not None and stream.bursting is not None:
            who = (stream.entities, stream.bursting)
        cap = stream.max_learned_per_entity if who is not None else 0
        shown += f"; max_learned_per_entity={cap}" if cap else ""
        forest: list[np.ndarray] = []  # raw scores per seed, as the daemon runs it
        for gated, mode in modes[:1] if args.gated_only else modes:
            start = time.perf_counter()
            scores = [
                stream_scores(stream.X, seed, gated, params, who, cap, args.algorithm)
                for seed in args.seeds
            ]
            forest = scores if gated else forest
            print(_row(name, shown, mode, stream.y, scores), flush=True)
            print(f"[seeds] {name} {mode}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        if args.loda or args.fuse:
            rows = _loda_rows(name, stream, args.seeds, forest, args.fuse, (who, cap))
            print("\n".join(rows), flush=True)
    print("\n" + "\n".join(sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())
