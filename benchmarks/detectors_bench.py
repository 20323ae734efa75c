"""Prequential evaluation of one detector on one stream.

Every event is scored before it is learned from: per-event adapters score one
row then learn it; mini-batch adapters score a block of ``BLOCK`` rows then
learn the block. Offline references are fitted on a prefix and score the rest.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmarks.measure import reset_rss_peak, rss_peak_kib
from benchmarks.peers import Adapter, PeerSpec
from benchmarks.streams import Stream

Params = tuple[tuple[str, Any], ...]

BLOCK = 256
OFFLINE_TRAIN_FRACTION = 0.1
ALERT_BUDGET_PER_10K = 30  # the shipped models' alerts.budget_per_10k (a test checks)
TRACEMALLOC_EVENTS = 5_000  # the Python-side memory pass replays at most this prefix
TRACEMALLOC_SECONDS = 5.0  # ... and fewer for slow detectors, to bound its time


@dataclass
class Pass:
    """One timed pass: scores for the events it reached, and its throughput."""

    scores: np.ndarray
    seconds: float
    rss_peak_mib: float

    @property
    def n(self) -> int:
        return int(self.scores.size)

    @property
    def events_per_s(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else math.nan


@dataclass
class Result:
    """One row of the results table."""

    stream: str
    detector: str
    auc: float = math.nan
    ap: float = math.nan
    recall: float = math.nan  # at the alert budget: recall_at_budget
    n_scored: int = 0
    scored_by: str = ""
    event_eps: float = math.nan
    event_n: int = 0
    block_eps: float = math.nan
    block_n: int = 0
    py_peak_mib: float = math.nan
    py_peak_n: int = 0
    rss_peak_mib: float = math.nan
    notes: list[str] = field(default_factory=list)


def _rss_mib_since(baseline_kib: int) -> float:
    return max(rss_peak_kib() - baseline_kib, 0) / 1024.0


def run_event_pass(adapter: Adapter, X: np.ndarray, budget_s: float) -> Pass:
    """score_one then learn_one per row, until the rows or the budget run out."""
    base = reset_rss_peak()
    scores = np.empty(X.shape[0])
    start = time.perf_counter()
    n = 0
    while n < X.shape[0]:
        scores[n] = adapter.process_one(X[n])
        n += 1
        if n % BLOCK == 0 and time.perf_counter() - start > budget_s:
            break
    elapsed = time.perf_counter() - start
    return Pass(scores[:n], elapsed, _rss_mib_since(base))


def run_block_pass(adapter: Adapter, X: np.ndarray, budget_s: float) -> Pass:
    """Score a block of rows, then learn it, until the rows or the budget run out."""
    base = reset_rss_peak()
    parts: list[np.ndarray] = []
    start = time.perf_counter()
    for lo in range(0, X.shape[0], BLOCK):
        parts.append(np.asarray(adapter.process_block(X[lo : lo + BLOCK]), dtype=np.float64))
        if time.perf_counter() - start > budget_s:
            break
    elapsed = time.perf_counter() - start
    scores = np.concatenate(parts) if parts else np.empty(0)
    return Pass(scores, elapsed, _rss_mib_since(base))


def python_peak_mib(spec: PeerSpec, X: np.ndarray, seed: int, params: Params = ()) -> float:
    """Peak Python-heap allocation (tracemalloc) building and running on ``X``."""
    tracemalloc.start()
    try:
        adapter = spec.build(X.shape[1], seed, params)
        if spec.offline:
            adapter.fit(X[: max(len(X) // 10, 64)])
            adapter.score(X)
        elif spec.block:
            for lo in range(0, X.shape[0], BLOCK):
                adapter.process_block(X[lo : lo + BLOCK])
        else:
            for row in X:
                adapter.process_one(row)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def quality(y: np.ndarray, scores: np.ndarray) -> tuple[float, float, float, str]:
    """ROC AUC, average precision and recall at the alert budget; NaN with a note when
    undefined."""
    if not np.all(np.isfinite(scores)):
        return math.nan, math.nan, math.nan, "non-finite scores"
    if y.min() == y.max():
        return math.nan, math.nan, math.nan, "scored events hold one class only"
    auc, ap = roc_auc_score(y, scores), average_precision_score(y, scores)
    return float(auc), float(ap), recall_at_budget(y, scores), ""


def recall_at_budget(
    y: np.ndarray, scores: np.ndarray, per_10k: float = ALERT_BUDGET_PER_10K
) -> float:
    """Share of the anomalies among the top ``per_10k`` in 10,000 events by score: what
    a daemon alerting at that budget catches, were its calibration exact. ROC AUC also
    weighs how the anomalies below the alert line are ranked; on-call never sees those.
    Events tied at the cut count in proportion (a detector gains nothing by ties).

    >>> y = np.array([0, 1, 0, 1, 0, 0, 0, 0])
    >>> recall_at_budget(y, np.array([0.3, 0.9, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0]), 2500)
    0.5
    >>> recall_at_budget(y, np.array([0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]), 2500)
    0.5
    """
    n = len(scores)
    k = min(n, max(1, math.ceil(n * per_10k / 10_000)))
    cut = np.partition(scores, n - k)[n - k]  # the k-th highest score
    above, at = scores > cut, scores == cut
    share = (k - int(above.sum())) / int(at.sum())
    return float((y[above].sum() + share * y[at].sum()) / y.sum())


def _run_offline(spec: PeerSpec, stream: Stream, seed: int, res: Result) -> None:
    n_train = max(int(stream.n_events * OFFLINE_TRAIN_FRACTION), 64)
    adapter = spec.build(stream.X.shape[1], seed, stream.detector_params)
    base = reset_rss_peak()
    t0 = time.perf_counter()
    adapter.fit(stream.X[:n_train])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = np.asarray(adapter.score(stream.X[n_train:]), dtype=np.float64)
    score_s = time.perf_counter() - t0
    res.rss_peak_mib = _rss_mib_since(base)
    res.block_eps, res.block_n = scores.size / max(score_s, 1e-9), int(scores.size)
    res.auc, res.ap, res.recall, note = quality(stream.y[n_train:], scores)
    res.n_scored, res.scored_by = int(scores.size), "offline"
    res.notes.append(f"fit on first {n_train} events ({fit_s:.2f} s), scores the rest")
    if note:
        res.notes.append(note)


def capped_rows(n: int, cap: int | None, strided: bool) -> np.ndarray:
    """Row indices a capped pass replays: the first ``cap``, or every k-th row in order.

    >>> capped_rows(10, 4, strided=False).tolist(), capped_rows(10, 4, strided=True).tolist()
    ([0, 1, 2, 3], [0, 2, 4, 6])
    """
    if cap is None or cap >= n:
        return np.arange(n)
    if not strided:
        return np.arange(cap)
    return np.arange(0, n, n // cap)[:cap]  # cap < n, so the step is >= 1


def _built(spec: PeerSpec, stream: Stream, seed: int, rows: np.ndarray) -> Adapter:
    """A fresh adapter for a pass over ``rows``; ours also learns with the model's
    per-entity cap, as the runner does."""
    adapter = spec.build(stream.X.shape[1], seed, stream.detector_params)
    if stream.entities is not None and stream.bursting is not None:
        cap = stream.max_learned_per_entity
        adapter.limit_learning_per_entity(stream.entities[rows], stream.bursting[rows], cap)
    return adapter


def _run_streaming(
    spec: PeerSpec,
    stream: Stream,
    budgets: tuple[float, float],
    seed: int,
    res: Result,
    strided: bool,
) -> None:
    n = stream.n_events
    passes: list[tuple[str, Pass, np.ndarray]] = []
    if spec.per_event:
        rows = capped_rows(n, spec.event_cap, strided)
        budget = budgets[spec.event_cap is not None]
        p = run_event_pass(_built(spec, stream, seed, rows), stream.X[rows], budget)
        res.event_eps, res.event_n = p.events_per_s, p.n
        passes.append(("per-event", p, rows))
    if spec.block:
        rows = capped_rows(n, spec.block_cap, strided)
        p = run_block_pass(
            _built(spec, stream, seed, rows), stream.X[rows], budgets[spec.block_cap is not None]
        )
        res.block_eps, res.block_n = p.events_per_s, p.n
        passes.append((f"blocks of {BLOCK}", p, rows))
    # The pass that reached the most events gives quality and RSS; on a tie the
    # mini-batch pass (our protocol: blocks of 256), hence the reversed order.
    label, best, rows = max(reversed(passes), key=lambda item: item[1].n)
    res.auc, res.ap, res.recall, note = quality(stream.y[rows[: best.n]], best.scores)
    res.n_scored, res.scored_by, res.rss_peak_mib = best.n, label, best.rss_peak_mib
    if note:
        res.notes.append(note)
    if best.n < n:
        kind = "every k-th event" if strided and rows.size < n else "prefix"
        res.notes.append(f"{kind}: {best.n}/{n} events (cap or time budget)")


def _memory_prefix(
    res: Result, memory_s: float = TRACEMALLOC_SECONDS, min_events: int = BLOCK
) -> int:
    """Events for the tracemalloc pass: enough to fill windows, bounded in time."""
    slowest = np.nanmin([res.event_eps, res.block_eps, np.inf])
    n = min(TRACEMALLOC_EVENTS, max(min_events, int(slowest * memory_s)))
    return min(n, max(res.n_scored, min_events))


def evaluate(
    spec: PeerSpec,
    stream: Stream,
    budget_s: float,
    seed: int = 0,
    strided: bool = False,
    memory_s: float = TRACEMALLOC_SECONDS,
    capped_budget_s: float | None = None,
    memory_min_events: int = BLOCK,
) -> Result:
    """Run ``spec`` on ``stream`` prequentially and measure it; never raises.

    Each pass stops at the first block boundary after ``budget_s`` seconds. A capped
    pass replays the stream's prefix, or with ``strided`` every k-th event in order
    (so a stream whose anomalies come late, like http, still has both classes).
    The tracemalloc pass replays about ``memory_s`` seconds' worth of events (0: no pass),
    at least ``memory_min_events`` (tracemalloc makes a 30 events/s peer several times slower).
    ``capped_budget_s`` (default ``budget_s``) bounds the passes over a capped subset
    (slow peers), so whole-stream passes can be given more time than those.
    """
    res = Result(stream.name, spec.name)
    try:
        if spec.offline:
            _run_offline(spec, stream, seed, res)
        else:
            budgets = (budget_s, budget_s if capped_budget_s is None else capped_budget_s)
            _run_streaming(spec, stream, budgets, seed, res, strided)
        if memory_s > 0:
            res.py_peak_n = _memory_prefix(res, memory_s, memory_min_events)
            res.py_peak_mib = python_peak_mib(
                spec, stream.X[: res.py_peak_n], seed, stream.detector_params
            )
    except Exception as exc:  # a failing peer becomes a table row, not a crash
        res.notes.append(f"error: {type(exc).__name__}: {str(exc)[:160]}")
    if spec.note:
        res.notes.append(spec.note)
    return res
