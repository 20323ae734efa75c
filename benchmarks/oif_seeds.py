"""Seed spread of the default detector on the ODDS streams, in file order.

One seed's AUC can flatter or wrong a random forest, so this runs seeds 0-3 of
``online_iforest`` with default parameters, both as the daemon runs it (learning only
rows below severity 40) and learning every row, and prints a Markdown table with the
mean and range per stream::

    python -m benchmarks.oif_seeds [--seeds 0 1 2 3] [--streams http smtp cover shuttle]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.measure import machine_facts
from benchmarks.peers import Ours
from benchmarks.streams import ODDS_FILES, load_odds

BLOCK = 256


def stream_auc(X: np.ndarray, y: np.ndarray, seed: int, gated: bool) -> float:
    """Prequential ROC AUC: score each block of 256, then learn from it."""
    adapter = Ours("online_iforest", X.shape[1], seed, gated)
    scores = np.concatenate(
        [adapter.process_block(X[i : i + BLOCK]) for i in range(0, len(X), BLOCK)]
    )
    return float(roc_auc_score(y, scores))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.oif_seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--streams", nargs="+", default=list(ODDS_FILES))
    args = parser.parse_args(argv)
    facts = machine_facts()
    print(f"online_iforest defaults, seeds {args.seeds}; {facts['CPU']}, {facts['date (UTC)']}\n")
    print("| stream | mode | mean AUC | min | max | per seed |")
    print("|---|---|---|---|---|---|")
    for name in args.streams:
        stream = load_odds(name)
        for gated, mode in ((True, "as the daemon runs it"), (False, "every row learned")):
            start = time.perf_counter()
            aucs = [stream_auc(stream.X, stream.y, seed, gated) for seed in args.seeds]
            per_seed = " ".join(f"{a:.3f}" for a in aucs)
            print(
                f"| {name} | {mode} | {np.mean(aucs):.3f} | {min(aucs):.3f} | {max(aucs):.3f}"
                f" | {per_seed} |",
                flush=True,
            )
            print(f"[seeds] {name} {mode}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
