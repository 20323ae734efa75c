"""Benchmark streams: labelled feature matrices replayed in a fixed order.

Every stream is ``(X, y)`` with ``X`` float64 of shape (n, d) and ``y`` int8 with
1 = anomaly. Order matters: detectors are evaluated prequentially in row order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import DetectorError

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ODDS_FILES = {
    "http": "16_http.npz",
    "smtp": "34_smtp.npz",
    "cover": "10_cover.npz",
    "shuttle": "32_shuttle.npz",
}
DRIFT_EVENTS = 200_000
DRIFT_FEATURES = 6


class StreamUnavailable(RuntimeError):
    """A stream cannot be built here (data file missing, generator not wired)."""


@dataclass(frozen=True)
class Stream:
    """A labelled stream; ``source`` says where the rows came from."""

    name: str
    X: np.ndarray
    y: np.ndarray
    source: str
    # auditwatch detector parameters of the model this stream belongs to (generated streams)
    detector_params: tuple[tuple[str, Any], ...] = ()
    # generated streams: each row's entity (a code), whether the runner counts it as
    # bursting, and the model's alerts.max_learned_per_entity
    entities: np.ndarray | None = None
    bursting: np.ndarray | None = None
    max_learned_per_entity: int = 0

    @property
    def n_events(self) -> int:
        return int(self.X.shape[0])

    def head(self, max_events: int | None) -> Stream:
        """The first ``max_events`` rows (all rows when None)."""
        if max_events is None or max_events >= self.n_events:
            return self
        return self.rows(slice(0, max_events), self.source)

    def strided(self, max_events: int | None) -> Stream:
        """Every k-th row, in order, ``max_events`` rows (all rows when None): a small
        stream that still spans the whole file (http's late anomaly burst included).

        >>> s = Stream("s", np.arange(10.0).reshape(-1, 1), np.zeros(10, np.int8), "src")
        >>> s.strided(4).X.ravel().tolist(), s.strided(4).source
        ([0.0, 2.0, 4.0, 6.0], 'src; every 2nd row')
        """
        if max_events is None or max_events >= self.n_events:
            return self
        step = self.n_events // max_events
        rows = slice(0, step * max_events, step)
        source = f"{self.source}; every {_ordinal(step)} row"
        return self.rows(rows, source)

    def rows(self, rows: slice, source: str) -> Stream:
        entities = None if self.entities is None else self.entities[rows]
        bursting = None if self.bursting is None else self.bursting[rows]
        return replace(
            self,
            X=self.X[rows],
            y=self.y[rows],
            source=source,
            entities=entities,
            bursting=bursting,
        )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def load_odds(name: str, data_dir: Path = DATA_DIR) -> Stream:
    """An ODDS/ADBench data set in file order (rows are not shuffled)."""
    path = data_dir / "odds" / ODDS_FILES[name]
    if not path.exists():
        raise StreamUnavailable(f"{path} not found")
    with np.load(path, allow_pickle=False) as data:
        X = np.ascontiguousarray(data["X"], dtype=np.float64)
        y = (np.asarray(data["y"]).ravel() > 0).astype(np.int8)
    return Stream(name, X, y, f"ODDS {path.name}, file order")


def drifting_stream(
    n_events: int = DRIFT_EVENTS,
    n_features: int = DRIFT_FEATURES,
    anomaly_rate: float = 0.01,
    seed: int = 7,
) -> Stream:
    """Gaussian rows whose means drift slowly, with injected point anomalies.

    The means follow a smooth random walk (several sigma over the stream) so a
    detector that never forgets flags late normal rows; anomalies are rows
    shifted by 4-8 sigma on 1-3 random features, so they stay separable at any time.

    >>> s = drifting_stream(1000, seed=1)
    >>> s.X.shape, 0 < int(s.y.sum()) < 50
    ((1000, 6), True)
    """
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 4.0 / np.sqrt(n_events), size=(n_events, n_features))
    means = np.cumsum(steps, axis=0)
    scales = rng.uniform(0.5, 2.0, size=n_features)
    X = means + rng.normal(0.0, 1.0, size=(n_events, n_features))
    y = (rng.random(n_events) < anomaly_rate).astype(np.int8)
    for row in np.flatnonzero(y):
        cols = rng.choice(n_features, size=rng.integers(1, 4), replace=False)
        X[row, cols] += rng.choice([-1.0, 1.0], size=cols.size) * rng.uniform(4, 8, cols.size)
    return Stream("drift", X * scales, y, f"synthetic drifting Gaussian, seed={seed}")


def auditwatch_generated_stream(
    max_events: int | None = None,
    topic: str = "cloudtrail",
    strided: bool = False,
    generator_seed: int = 0,
) -> Stream:
    """auditwatch's generated audit stream (``detector.synth``) through the daemon's parser
    and the model's own featurizer; labels are the injected attack events.

    ``topic`` picks the model: ``cloudtrail`` (the CloudTrail access model, default),
    ``ecs`` or ``inference``. A capped stream is generated shorter and keeps every k-th
    row (``strided``) or its last ``max_events`` rows, where the attacks are. The
    benchmarks use ``generator_seed`` 0; other seeds give held-out traffic of the same kind.
    """
    try:
        from benchmarks.generated import model_for, topic_matrix

        X, y, (entities, bursting), source = topic_matrix(
            topic, max_events, strided, generator_seed
        )
        spec = model_for(topic)
        detector = spec.detector  # the shipped model's parameters, where they apply
        params = (
            tuple(sorted(detector.params.items())) if detector.algorithm == "online_iforest" else ()
        )
    except (ImportError, LookupError, OSError, DetectorError) as exc:  # e.g. a bad model file
        raise StreamUnavailable(f"cannot build the generated {topic} stream: {exc}") from exc
    name = "auditwatch_audit" if topic == "cloudtrail" else f"auditwatch_{topic}"
    cap = spec.alerts.max_learned_per_entity
    return Stream(name, X, y, source, params, entities, bursting, cap)


# Generated streams, by the topic whose model they feed; built to size, not cut.
GENERATED_TOPICS = {
    "auditwatch_audit": "cloudtrail",
    "auditwatch_ecs": "ecs",
    "auditwatch_inference": "inference",
}
STREAMS: dict[str, Callable[[], Stream]] = {
    "http": lambda: load_odds("http"),
    "smtp": lambda: load_odds("smtp"),
    "cover": lambda: load_odds("cover"),
    "shuttle": lambda: load_odds("shuttle"),
    "drift": drifting_stream,
    **{name: partial(auditwatch_generated_stream, topic=topic)
       for name, topic in GENERATED_TOPICS.items()},
}  # fmt: skip
DEFAULT_STREAMS = (
    "http",
    "smtp",
    "cover",
    "shuttle",
    "drift",
    "auditwatch_audit",
    "auditwatch_ecs",
    "auditwatch_inference",
)


def build_stream(
    name: str, max_events: int | None, strided: bool = False, generator_seed: int = 0
) -> Stream:
    """Stream ``name`` capped at ``max_events`` rows (its prefix, or with ``strided`` every
    k-th row); generated streams are built to size instead, from ``detector.synth`` with
    ``generator_seed``. Raises StreamUnavailable."""
    topic = GENERATED_TOPICS.get(name)
    if topic is not None:
        stream = auditwatch_generated_stream(max_events, topic, strided, generator_seed)
        return stream.head(max_events)
    if generator_seed:
        raise StreamUnavailable(f"{name} is a fixed data set: it has no generator seed")
    stream = STREAMS[name]()
    return stream.strided(max_events) if strided else stream.head(max_events)
