"""Tiny adapters giving every detector one prequential interface.

``process_one(x)`` scores one row, then learns it; ``process_block(X)`` scores a
block, then learns it; offline references ``fit(X)`` once and ``score(X)``.
Scores are oriented so that higher = more anomalous. Optional peer packages are
imported inside the factories, so this module imports with core deps only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SLOW_CAP = 20_000  # per-event prefix for peers too slow for whole streams
VERY_SLOW_CAP = 2_000  # per-event prefix for a peer whose fast path is its batch mode
REGISTRY_PATH = Path(__file__).resolve().parents[1] / "detector" / "scoring" / "registry.py"


class Adapter:
    """Common interface; subclasses implement the modes they support."""

    def process_one(self, x: np.ndarray) -> float:
        raise NotImplementedError

    def process_block(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def limit_learning_per_entity(
        self, entities: np.ndarray, bursting: np.ndarray, cap: int
    ) -> None:
        """The rows' entity codes, bursting flags and the model's per-block cap; only ours
        uses them."""


@dataclass(frozen=True)
class PeerSpec:
    """How to build one detector and which evaluation modes it supports."""

    name: str
    make: Callable[..., Adapter]  # (n_features, seed[, params]) -> fresh adapter
    per_event: bool = True
    block: bool = False
    offline: bool = False
    event_cap: int | None = None  # full-mode cap on the per-event pass
    block_cap: int | None = None  # full-mode cap on the mini-batch pass
    note: str = ""
    takes_params: bool = False  # ours: built with the stream's model's detector parameters

    def build(self, d: int, seed: int, params: tuple[tuple[str, Any], ...] = ()) -> Adapter:
        """A fresh adapter; ours gets ``params`` (the shipped model's, on generated streams)."""
        if self.takes_params:
            return self.make(d, seed, dict(params))
        return self.make(d, seed)


class RunningZ:
    """Online z-scaling: each row is scaled with the mean/std of the rows before it."""

    def __init__(self, d: int) -> None:
        self.n, self.mean, self.m2 = 0, np.zeros(d), np.zeros(d)

    def scale_then_update(self, x: np.ndarray) -> np.ndarray:
        std = np.sqrt(self.m2 / self.n) if self.n > 1 else np.ones_like(x)
        z = (x - self.mean) / np.where(std > 0, std, 1.0)
        self.n += 1  # Welford update
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)
        return z


class Ours(Adapter):
    """auditwatch ``Detector`` from ``make_detector``, run as the daemon runs it
    (``detector/runner.py`` with default settings): rows are scored as they come and learned
    per block of ``block_size``; after ``warmup_events`` learned rows, only rows whose
    calibrated severity is below ``min(threshold, learn_below_severity)`` are learned.
    With ``gated=False`` every row is learned (the plain prequential protocol).
    Warm-up rows are scored by the detector too (the daemon reports severity 0 for them).
    With ``severity=True`` it returns what the daemon reports and alerts on instead of the
    raw scores: the calibrated severity, 0 through the warm-up and until the calibrator is
    ready, each block judged before the calibrator learns it. With a per-entity cap
    (``limit_learning_per_entity``), a bursting entity's rows past the cap are neither
    learned nor calibrated on, as in the runner."""

    def __init__(
        self,
        algorithm: str,
        d: int,
        seed: int,
        gated: bool = True,
        params: dict[str, Any] | None = None,
        severity: bool = False,
    ) -> None:
        from detector.modeldefs import AlertSpec, DetectorSpec
        from detector.runner import block_calibrator
        from detector.scoring.registry import make_detector

        det, alerts = DetectorSpec(), AlertSpec()
        self.det = make_detector(algorithm, d, params or {}, seed)
        self.block, self.warmup, self.gated = det.block_size, det.warmup_events, gated
        self.report_severity = severity
        self.cal = block_calibrator(alerts.calibration_window, self.block)
        budget = self.cal.threshold_for_budget(alerts.budget_per_10k)
        self.learn_below = min(budget, alerts.learn_below_severity)
        self.seen = 0
        self.rows: list[np.ndarray] = []  # this block's rows to learn from
        self.memos: list[np.ndarray | None] = []  # the detector's reusable work on them
        self.raw: list[np.ndarray] = []  # this block's raw scores after warm-up
        self.entities: np.ndarray | None = None  # entity code of every row to come
        self.bursting: np.ndarray | None = None  # and whether the runner sees it bursting
        self.cap = 0  # alerts.max_learned_per_entity
        self.learned_of: dict[int, int] = {}  # this block's learned rows per entity
        self.calibrated_of: dict[int, int] = {}  # this block's calibrated rows per entity

    def limit_learning_per_entity(
        self, entities: np.ndarray, bursting: np.ndarray, cap: int
    ) -> None:
        self.entities, self.bursting, self.cap = entities, bursting, cap

    def process_one(self, x: np.ndarray) -> float:
        return float(self.process_block(x.reshape(1, -1))[0])

    def process_block(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(len(X))
        pos = 0
        while pos < len(X):  # never cross a learning-block boundary, as the runner
            take = min(len(X) - pos, self.block - self.seen % self.block)
            out[pos : pos + take] = self._part(X[pos : pos + take])
            pos += take
        return out

    def _part(self, X: np.ndarray) -> np.ndarray:
        from detector.runner import limit_per_entity
        from detector.scoring.base import joined_memo

        raw, memo = self.det.score_memo(X)  # learning reuses the scoring work, as the runner
        keep = np.ones(len(X), dtype=bool)
        calibrate = np.ones(len(X), dtype=bool)
        severity = np.zeros(len(X))  # what the daemon reports: 0 until calibrated
        capped = self.cap and self.entities is not None and self.bursting is not None
        if capped:  # as ModelRunner, on entity codes
            here = slice(self.seen, self.seen + len(X))
            who = (self.entities[here].tolist(), self.bursting[here])
        if self.seen >= self.warmup:
            if self.cal.ready and (self.gated or self.report_severity):
                severity = self.cal.severity(raw)
                if self.gated:
                    keep = severity < self.learn_below
            if capped:  # a burst past the cap joins neither the forest nor the calibrator
                limit_per_entity(calibrate, *who, self.calibrated_of, self.cap)
            self.raw.append(raw[calibrate])
        if capped:
            limit_per_entity(keep, *who, self.learned_of, self.cap)
        self.rows.append(X[keep])
        self.memos.append(None if memo is None else memo[keep])
        self.seen += len(X)
        if self.seen % self.block == 0:
            self.det.learn_memo(np.concatenate(self.rows), joined_memo(self.memos))
            self.memos = []
            if self.raw:
                self.cal.update(np.concatenate(self.raw))
            self.rows, self.raw, self.learned_of, self.calibrated_of = [], [], {}, {}
        return severity if self.report_severity else raw


class RiverHST(Adapter):
    """river HalfSpaceTrees (defaults) behind river's running MinMaxScaler."""

    def __init__(self, d: int, seed: int) -> None:
        from river import anomaly, preprocessing

        self.model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=seed)

    def process_one(self, x: np.ndarray) -> float:
        row = dict(enumerate(x.tolist()))
        s = self.model.score_one(row)
        self.model.learn_one(row)
        return float(s)


class Krcf(Adapter):
    """AWS Random Cut Forest (Rust) on online z-scaled rows."""

    def __init__(self, d: int, seed: int) -> None:
        import krcf

        self.forest = krcf.RandomCutForest(
            {"dimensions": d, "shingle_size": 1, "random_seed": seed, "output_after": 32}
        )
        self.scaler = RunningZ(d)

    def process_one(self, x: np.ndarray) -> float:
        z = self.scaler.scale_then_update(x).tolist()
        s = self.forest.score(z)
        self.forest.update(z)
        return float(s)


class PySAD(Adapter):
    """A PySAD model through its prequential ``fit_score_partial``; in blocks through
    ``fit_score`` where the model's batch path gives the same scores (IForestASD)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def process_one(self, x: np.ndarray) -> float:
        return float(self.model.fit_score_partial(x))

    def process_block(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.fit_score(X), dtype=np.float64)


def _pysad(kind: str) -> Callable[[int, int], Adapter]:
    def make(d: int, seed: int) -> Adapter:
        from pysad import models

        builders: dict[str, Callable[[], Any]] = {
            "loda": lambda: models.LODA(random_state=seed),
            "rrcf": lambda: models.RobustRandomCutForest(random_state=seed),
            "xstream": lambda: models.xStream(random_state=seed),
            "iforestasd": lambda: models.IForestASD(random_state=seed),
        }
        return PySAD(builders[kind]())

    return make


class PySADHST(Adapter):
    """PySAD HalfSpaceTrees; it needs feature bounds, taken from the first window."""

    WARMUP = 250

    def __init__(self, d: int, seed: int) -> None:
        self.seed = seed
        self.buffer: list[np.ndarray] = []
        self.model: Any = None

    def process_one(self, x: np.ndarray) -> float:
        if self.model is None:
            self.buffer.append(x)
            if len(self.buffer) < self.WARMUP:
                return 0.0  # nothing learned yet: a constant score, as river's first window
            from pysad.models import HalfSpaceTrees

            W = np.asarray(self.buffer)
            self.model = HalfSpaceTrees(
                W.min(axis=0), W.max(axis=0), initial_window_X=W, random_state=self.seed
            )
            return 0.0
        return float(self.model.fit_score_partial(x))


def _capymoa_schema(d: int) -> Any:
    from capymoa.stream import Schema

    names = [f"f{i}" for i in range(d)]
    return Schema.from_custom(
        [*names, "class"], target="class", categories={"class": ["normal", "anomaly"]}
    )


class CapyHST(Adapter):
    """CapyMOA (MOA, Java) HalfSpaceTrees; rows must be LabeledInstances to be learned."""

    def __init__(self, d: int, seed: int) -> None:
        from capymoa.anomaly import HalfSpaceTrees
        from capymoa.core import LabeledInstance

        self.schema = _capymoa_schema(d)
        self.make_instance = LabeledInstance.from_array
        self.model = HalfSpaceTrees(self.schema, random_seed=seed)

    def process_one(self, x: np.ndarray) -> float:
        # Label 0 ("normal") for every row: the model is unsupervised, no label leaks.
        inst = self.make_instance(self.schema, x, 0)
        s = self.model.score_instance(inst)
        self.model.train(inst)
        return float(s)


class CapyOIF(Adapter):
    """CapyMOA OnlineIsolationForest via its (private) batch methods, its fast path."""

    def __init__(self, d: int, seed: int) -> None:
        from capymoa.anomaly import OnlineIsolationForest

        self.model = OnlineIsolationForest(_capymoa_schema(d), random_seed=seed)

    def process_one(self, x: np.ndarray) -> float:
        return float(self.process_block(x.reshape(1, -1))[0])

    def process_block(self, X: np.ndarray) -> np.ndarray:
        s = np.asarray(self.model._score_batch(X), dtype=np.float64)
        self.model._learn_batch(X)
        return s


class SklearnIF(Adapter):
    """scikit-learn IsolationForest (offline reference); score = -score_samples."""

    def __init__(self, d: int, seed: int) -> None:
        from sklearn.ensemble import IsolationForest

        self.model = IsolationForest(random_state=seed)

    def fit(self, X: np.ndarray) -> None:
        self.model.fit(X)

    def score(self, X: np.ndarray) -> np.ndarray:
        return -self.model.score_samples(X)


class Isotree(Adapter):
    """isotree IsolationForest (offline reference), default settings, one thread."""

    def __init__(self, d: int, seed: int) -> None:
        from isotree import IsolationForest

        self.model = IsolationForest(random_seed=seed, nthreads=1)

    def fit(self, X: np.ndarray) -> None:
        self.model.fit(X)

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(X), dtype=np.float64)


OUR_ALGORITHMS = ("online_iforest", "half_space_trees", "sliding_iforest")
DAEMON_NOTE = "ours; as the daemon runs it: learns per block of 256, only below severity 40"
SEVERITY_NOTE = (
    "ours; the same run, scored by what the daemon reports and alerts on: the calibrated "
    "severity (0 through the warm-up)"
)
SEVERITY_PEER = "auditwatch oif severity"


def _ours(algorithm: str, gated: bool = True, severity: bool = False) -> PeerSpec:
    def make(d: int, seed: int, params: dict[str, Any] | None = None) -> Adapter:
        return Ours(algorithm, d, seed, gated, params, severity)

    name = f"auditwatch {algorithm}" if gated else "auditwatch oif learn-all"
    note = DAEMON_NOTE if gated else f"ours: {algorithm}, every row learned, no severity gate"
    return PeerSpec(
        SEVERITY_PEER if severity else name,
        make,
        block=True,
        event_cap=SLOW_CAP,
        note=SEVERITY_NOTE if severity else note,
        takes_params=algorithm == "online_iforest",  # the shipped models' algorithm
    )


def all_specs() -> list[PeerSpec]:
    """Every detector the harness knows; ours only once the registry module exists."""
    ours = [_ours(a) for a in OUR_ALGORITHMS] if REGISTRY_PATH.exists() else []
    if ours:
        ours[1:1] = [_ours("online_iforest", severity=True), _ours("online_iforest", gated=False)]
    return [
        *ours,
        PeerSpec("river HST", RiverHST, note="defaults, MinMaxScaler"),
        PeerSpec("krcf RCF", Krcf, note="defaults, online z-scaling"),
        PeerSpec(
            "pysad HST", PySADHST, event_cap=SLOW_CAP, note="bounds+initial window: first 250 rows"
        ),
        PeerSpec("pysad LODA", _pysad("loda")),
        PeerSpec(
            "pysad IForestASD",
            _pysad("iforestasd"),
            block=True,
            event_cap=SLOW_CAP,
            note="blocks: PySAD's fit_score (same scores as fit_score_partial per row)",
        ),
        PeerSpec("pysad RRCF", _pysad("rrcf"), event_cap=SLOW_CAP),
        PeerSpec("pysad xStream", _pysad("xstream"), event_cap=SLOW_CAP),
        PeerSpec("capymoa HST", CapyHST, note="LabeledInstance, label 0"),
        PeerSpec(
            "capymoa OIF",
            CapyOIF,
            block=True,
            event_cap=VERY_SLOW_CAP,
            note="private batch methods _score_batch/_learn_batch",
        ),
        PeerSpec("sklearn IF", SklearnIF, per_event=False, offline=True),
        PeerSpec("isotree IF", Isotree, per_event=False, offline=True),
    ]


def select(names: list[str] | None) -> list[PeerSpec]:
    """Specs whose name contains any of ``names`` (case-insensitive); all when None."""
    specs = all_specs()
    if not names:
        return specs
    wanted = [n.lower() for n in names]
    return [s for s in specs if any(w in s.name.lower() for w in wanted)]
