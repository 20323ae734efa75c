"""One model on one stream partition: features -> score -> decide -> explain.

Scores depend only on the order of events, never on how they were batched:
the detector learns, and the calibrator moves, only at fixed block boundaries
counted in events (``block_size``). A checkpoint taken between any two polls
therefore resumes to exactly the scores of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from detector.alerts import Origin, Scored, build_alert
from detector.events import Event
from detector.explain import explain
from detector.features import FEATURE_NAMES, FEATURIZERS, EntityLimits
from detector.features.inference import inference_state, load_inference_state
from detector.modeldefs import ModelSpec
from detector.scoring.base import joined_memo
from detector.scoring.calibration import Calibrator
from detector.scoring.registry import detector_from_state, make_detector

# features where both directions are suspicious (probing = tiny distances, extraction = big)
TWO_SIDED = frozenset({"query_distance", "confidence_shift", "entropy_shift"})
MAX_KEY_CHARS = 256  # longer entity keys are stored as their SHA-256
# alerts.max_learned_per_entity only limits an entity while its 5-minute rate is over this
# multiple of its usual rate: a steady heavy service account keeps learning at full speed
BURST_RATE_RATIO = 4.0


@dataclass
class RunnerResult:
    severity: np.ndarray  # per event, 0-100 (0 while warming up)
    alerts: list[dict[str, Any]] = field(default_factory=list)


class FeatureStats:
    """Exponentially weighted mean/variance of features over learned (normal) rows,
    used to say which features made an alert unusual."""

    def __init__(self, n: int, alpha: float = 0.01) -> None:
        self.mean = np.zeros(n)
        self.var = np.ones(n)
        self.alpha = alpha

    def update(self, X: np.ndarray) -> None:
        if len(X):
            a = 1.0 - (1.0 - self.alpha) ** len(X)  # one step per block, weighted by its size
            delta = X.mean(axis=0) - self.mean
            self.mean += a * delta
            self.var += a * (X.var(axis=0) + delta * delta - self.var)

    def unusualness(self, row: np.ndarray, two_sided: np.ndarray) -> np.ndarray:
        """z of each feature; only the high side counts unless ``two_sided`` (fewer
        resources or a lower rate than usual is not what makes an event suspicious)."""
        z = (row - self.mean) / np.sqrt(self.var + 1e-9)
        return np.where(two_sided, np.abs(z), z)


class ModelRunner:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        ent = spec.entities
        limits = EntityLimits(
            max_entities=ent.max_entities,
            ttl_s=ent.ttl_days * 86_400,
            cold_start_events=ent.cold_start_events,
            max_keys_per_entity=ent.max_keys_per_entity,
        )
        self.featurizer = FEATURIZERS[spec.kind](limits)
        all_names = FEATURE_NAMES[spec.kind]
        self.names = spec.feature_names
        self.columns = np.array([all_names.index(n) for n in self.names])
        det = spec.detector
        self.detector = make_detector(det.algorithm, len(self.names), dict(det.params), det.seed)
        self.block = det.block_size
        self.calibrator = block_calibrator(spec.alerts.calibration_window, det.block_size)
        self.threshold = self.calibrator.threshold_for_budget(spec.alerts.budget_per_10k)
        self.learn_below = spec.alerts.learn_below_severity
        self.max_learned = spec.alerts.max_learned_per_entity
        self._learned_of: dict[str, int] = {}  # this block's learned rows per entity
        self._calibrated_of: dict[str, int] = {}  # this block's rows calibrated per entity
        self.stats = FeatureStats(len(self.names))
        self.two_sided = np.array([n in TWO_SIDED for n in self.names])
        self.seen = 0  # events processed, in order
        self._learn: list[np.ndarray] = []  # this block's rows to learn from
        self._memo: list[np.ndarray | None] = []  # the detector's reusable work on them
        self._raw: list[np.ndarray] = []  # this block's raw scores (after warm-up)

    @property
    def in_block(self) -> int:
        return self.seen % self.block

    def process(
        self, events: list[Event], origins: Sequence[Origin | None], now: float | None = None
    ) -> RunnerResult:
        keys = stored_entity_keys(list(map(attrgetter(self.spec.entity_key), events)))
        X_all, contexts = self.featurizer.featurize(events, keys)
        X = X_all[:, self.columns]
        bursting = (
            bursting_rows(X_all, self.spec.kind)
            if self.max_learned
            else np.zeros(len(events), dtype=bool)
        )
        severity = np.zeros(len(events))
        raw = np.zeros(len(events))
        alert_rows: list[int] = []
        pos = 0
        while pos < len(events):
            take = min(len(events) - pos, self.block - self.in_block)
            part = slice(pos, pos + take)
            flagged = self._score_part(
                X[part], severity[part], raw[part], (keys[pos : pos + take], bursting[part])
            )
            alert_rows.extend(pos + int(i) for i in np.flatnonzero(flagged))
            pos += take
        created = time.time() if now is None else now
        alerts = [
            self._alert(
                events[i], origins[i], X[i], (severity[i], raw[i]), contexts[i], keys[i], created
            )
            for i in alert_rows
        ]
        return RunnerResult(severity=severity, alerts=alerts)

    def _score_part(
        self,
        X: np.ndarray,
        severity_out: np.ndarray,
        raw_out: np.ndarray,
        who: tuple[list[str], np.ndarray],
    ) -> np.ndarray:
        """Score rows within one block; learn and recalibrate when the block completes."""
        warm = self.seen >= self.spec.detector.warmup_events
        flagged = np.zeros(len(X), dtype=bool)
        suspicious = flagged
        memo = None
        if warm:
            raw_out[:], memo = self.detector.score_memo(X)
            self._raw.append(self._for_calibration(raw_out, who))
            if self.calibrator.ready:
                severity_out[:] = self.calibrator.severity(raw_out)
                flagged = severity_out >= self.threshold
                suspicious = severity_out >= min(self.threshold, self.learn_below)
        keep = np.ones(len(X), dtype=bool) if self.spec.alerts.learn_from_alerts else ~suspicious
        if self.max_learned:
            limit_per_entity(keep, who[0], who[1], self._learned_of, self.max_learned)
        self._learn.append(X[keep])
        self._memo.append(None if memo is None else memo[keep])
        self.seen += len(X)
        if self.in_block == 0:
            self._end_block()
        return flagged

    def _for_calibration(self, raw: np.ndarray, who: tuple[list[str], np.ndarray]) -> np.ndarray:
        """The raw scores that join the calibrator's reference (a copy): all but a bursting
        entity's rows past the per-entity cap (counted over every row, whatever its
        severity, so the cut never feeds back on the calibrator). A burst must not become
        the severity scale's normal either: its later events would stop alerting."""
        if not self.max_learned:
            return raw.copy()
        use = np.ones(len(raw), dtype=bool)
        limit_per_entity(use, who[0], who[1], self._calibrated_of, self.max_learned)
        return raw[use]

    def _end_block(self) -> None:
        rows = np.concatenate(self._learn) if self._learn else np.empty((0, len(self.names)))
        if len(rows):
            self.detector.learn_memo(rows, joined_memo(self._memo))
            self.stats.update(rows)
        if self._raw:
            self.calibrator.update(np.concatenate(self._raw))
        self._learn, self._raw, self._memo = [], [], []
        self._learned_of, self._calibrated_of = {}, {}

    def _alert(
        self,
        ev: Event,
        origin: Origin | None,
        row: np.ndarray,
        scores: tuple[float, float],
        ctx: dict[str, Any],
        key: str,
        created: float,
    ) -> dict[str, Any]:
        unusual = self.stats.unusualness(row, self.two_sided)
        explanation = explain(self.names, row, unusual, ev, ctx, self.spec.alerts.max_explanations)
        verdict = Scored(
            severity=float(scores[0]),
            raw=float(scores[1]),
            threshold=self.threshold,
            features={n: _finite(v) for n, v in zip(self.names, row.tolist(), strict=True)},
            explanation=explanation,
            entity_key=key,
            events_seen=int(ctx["events_seen"]),
            cold_start=bool(ctx["weight"] < 1.0),
        )
        return build_alert(self.spec, ev, origin, verdict, created)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume scoring exactly where this runner is (no objects)."""
        features = self.featurizer
        return {
            "seen": self.seen,
            "detector": self.detector.state_dict(),
            "calibrator": self.calibrator.state_dict(),
            "stats": {"mean": self.stats.mean.copy(), "var": self.stats.var.copy()},
            "pending_learn": _stack(self._learn, len(self.names)),
            "pending_raw": np.concatenate(self._raw) if self._raw else np.zeros(0),
            "pending_learned_of": _counts_state(self._learned_of),
            "pending_calibrated_of": _counts_state(self._calibrated_of),
            "features": features.state_dict()
            if hasattr(features, "state_dict")
            else inference_state(features),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()`` output (already verified by the checkpoint loader)."""
        self.seen = int(state["seen"])
        self.detector = detector_from_state(state["detector"])
        self.calibrator = Calibrator.from_state(state["calibrator"])
        self.stats.mean = np.asarray(state["stats"]["mean"], dtype=np.float64).copy()
        self.stats.var = np.asarray(state["stats"]["var"], dtype=np.float64).copy()
        pending = np.asarray(state["pending_learn"], dtype=np.float64)
        self._learn = [pending] if len(pending) else []
        self._memo = [None] * len(self._learn)  # not checkpointed: learn re-walks the trees
        raw = np.asarray(state["pending_raw"], dtype=np.float64)
        self._raw = [raw] if len(raw) else []
        # absent from checkpoints before 2026-11-23 and 2026-12-07
        self._learned_of = _counts_from(state.get("pending_learned_of", ([], [])))
        self._calibrated_of = _counts_from(state.get("pending_calibrated_of", ([], [])))
        if self.spec.kind == "access":
            self.featurizer = type(self.featurizer).from_state(state["features"])
        else:
            load_inference_state(self.featurizer, state["features"])

    def entities_tracked(self) -> int:
        return self.featurizer.entities_tracked()


def block_calibrator(window: int, block: int) -> Calibrator:
    """The runner's calibrator: ready after two blocks, its reference rebuilt every four."""
    return Calibrator(window=window, refresh_every=4 * block, min_samples=2 * block)


def _counts_state(counts: dict[str, int]) -> list[list[Any]]:
    """A per-entity count as checkpoint arrays: [names, counts]."""
    return [list(counts), list(counts.values())]


def _counts_from(pair: Sequence[Sequence[Any]]) -> dict[str, int]:
    names, counts = pair
    return dict(zip(names, map(int, counts), strict=True))


def limit_per_entity(
    keep: np.ndarray,
    keys: Sequence[Hashable],
    bursting: np.ndarray,
    learned: dict[Any, int],
    cap: int,
) -> None:
    """Clear ``keep`` for a bursting entity's rows once ``cap`` of its rows were learned
    in this block; ``learned`` counts the block's learned rows per entity (updated)."""
    for i in np.flatnonzero(keep).tolist():
        count = learned.get(keys[i], 0)
        if count >= cap and bursting[i]:
            keep[i] = False
        else:
            learned[keys[i]] = count + 1


def bursting_rows(X_all: np.ndarray, kind: str) -> np.ndarray:
    """Rows whose entity's 5-minute rate is over BURST_RATE_RATIO x its usual rate."""
    column = FEATURE_NAMES[kind].index("rate_vs_baseline")
    return X_all[:, column] > math.log(BURST_RATE_RATIO)  # NaN: not bursting


def stored_entity_keys(keys: list[str | None]) -> list[str]:
    """``stored_entity_key`` of each; the usual batch (every key short and present) is
    checked in two C-level passes and returned as it is."""
    if all(keys) and max(map(len, keys), default=0) <= MAX_KEY_CHARS:  # type: ignore[arg-type]
        return keys  # type: ignore[return-value]
    return [stored_entity_key(key) for key in keys]


def stored_entity_key(key: str | None) -> str:
    """The entity key as stored: a hostile 1 MB user name must not cost 1 MB per entity,
    so keys beyond MAX_KEY_CHARS are replaced by their SHA-256 (still one entity each)."""
    if not key:
        return "(unknown)"
    if len(key) <= MAX_KEY_CHARS:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _stack(rows: list[np.ndarray], width: int) -> np.ndarray:
    return np.concatenate(rows) if rows else np.zeros((0, width))


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0
