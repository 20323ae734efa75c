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

``--max-events N`` caps each stream (a generated one is generated shorter).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.measure import machine_facts
from benchmarks.peers import Ours
from benchmarks.streams import ODDS_FILES, build_stream

BLOCK = 256


def stream_auc(
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    gated: bool,
    params: dict[str, Any] | None = None,
    entities: tuple[np.ndarray, np.ndarray] | None = None,
    max_learned_per_entity: int = 0,
) -> float:
    """Prequential ROC AUC: score each block of 256, then learn from it (at most
    ``max_learned_per_entity`` rows of a bursting entity per block when ``entities``, the
    rows' (entity codes, bursting flags), are given)."""
    adapter = Ours("online_iforest", X.shape[1], seed, gated, params)
    if entities is not None and max_learned_per_entity and gated:
        adapter.limit_learning_per_entity(*entities, max_learned_per_entity)
    scores = np.concatenate(
        [adapter.process_block(X[i : i + BLOCK]) for i in range(0, len(X), BLOCK)]
    )
    return float(roc_auc_score(y, scores))


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
    args = parser.parse_args(argv)
    facts = machine_facts()
    print(
        f"online_iforest, seeds {args.seeds}; {facts['CPU']}, {facts['date (UTC)']}, "
        f"commit {facts['auditwatch commit']}\n"
    )
    print("| stream | params | mode | mean AUC | min | max | per seed |")
    print("|---|---|---|---|---|---|---|")
    modes = ((True, "as the daemon runs it"), (False, "every row learned"))
    for name in args.streams:
        stream = build_stream(name, args.max_events)
        params = dict(stream.detector_params)
        shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "defaults"
        who = None
        if stream.entities is not None and stream.bursting is not None:
            who = (stream.entities, stream.bursting)
        cap = stream.max_learned_per_entity if who is not None else 0
        shown += f"; max_learned_per_entity={cap}" if cap else ""
        for gated, mode in modes[:1] if args.gated_only else modes:
            start = time.perf_counter()
            aucs = [
                stream_auc(stream.X, stream.y, seed, gated, params, who, cap) for seed in args.seeds
            ]
            per_seed = " ".join(f"{a:.3f}" for a in aucs)
            print(
                f"| {name} | {shown} | {mode} | {np.mean(aucs):.3f} | {min(aucs):.3f}"
                f" | {max(aucs):.3f} | {per_seed} |",
                flush=True,
            )
            print(f"[seeds] {name} {mode}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
