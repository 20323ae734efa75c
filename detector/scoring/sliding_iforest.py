"""iForestASD: a batch isolation forest refitted on a sliding window of learned rows.

Ding & Fei (2013). sklearn's ``IsolationForest`` is refitted every ``refit_every``
learned rows on the last ``window_size`` of them, with ``random_state`` derived
from ``(seed, refit count)``. The state is the window and the counters only: the
model is refitted from them on load, which reproduces it exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from detector.errors import CheckpointError
from detector.scoring.base import Detector, State

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

VERSION = 1


class SlidingIForest(Detector):
    """Scores are ``-IsolationForest.score_samples`` (higher = more anomalous); 0.5 before
    the first fit, which happens once ``refit_every`` rows were learned."""

    name = "sliding_iforest"

    def __init__(
        self,
        n_features: int,
        seed: int = 0,
        window_size: int = 2048,
        refit_every: int = 1024,
        n_estimators: int = 100,
        max_samples: int = 256,
    ) -> None:
        super().__init__(n_features, seed)
        if min(n_features, window_size, refit_every, n_estimators, max_samples) < 1:
            raise ValueError("sizes must be >= 1")
        self.window_size = window_size
        self.refit_every = refit_every
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        # Room for the fitted window plus the rows since, so a reload can refit exactly.
        self.capacity = window_size + refit_every
        self.window = np.zeros((self.capacity, n_features))
        self.learned = 0  # rows ever learned; the ring position is learned % capacity
        self.refits = 0
        self.since_refit = 0
        self.model: IsolationForest | None = None

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected shape (n, {self.n_features}), got {X.shape}")
        return X

    def score(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        if self.model is None:
            return np.full(len(X), 0.5)
        return np.asarray(-self.model.score_samples(X), dtype=np.float64)

    def learn(self, X: np.ndarray) -> None:
        """Append rows one refit period at a time, so refits fall on exact row counts."""
        X = self._check(X)
        pos = 0
        while pos < len(X):
            take = min(len(X) - pos, self.refit_every - self.since_refit)
            idx = (self.learned + np.arange(take)) % self.capacity
            self.window[idx] = X[pos : pos + take]
            self.learned += take
            self.since_refit += take
            pos += take
            if self.since_refit == self.refit_every:
                self.refits += 1
                self.since_refit = 0
                self._fit()

    def _fit(self) -> None:
        keep = min(self.learned, self.window_size)
        rows = self.window[(self.learned - keep + np.arange(keep)) % self.capacity]
        # scikit-learn is imported on first use: ~1 s that the default detector never needs
        from sklearn.ensemble import IsolationForest

        seed = np.random.SeedSequence([self.seed, self.refits]).generate_state(1)[0]
        self.model = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, keep),
            random_state=int(seed),
        ).fit(rows)

    def state_dict(self) -> State:
        return {
            "algorithm": self.name,
            "version": VERSION,
            "n_features": self.n_features,
            "seed": self.seed,
            "window_size": self.window_size,
            "refit_every": self.refit_every,
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "learned": self.learned,
            "refits": self.refits,
            "since_refit": self.since_refit,
            "window": self.window.copy(),
        }

    @classmethod
    def from_state(cls, state: State) -> SlidingIForest:
        try:
            if state["algorithm"] != cls.name or int(state["version"]) != VERSION:
                raise CheckpointError(f"not a {cls.name} v{VERSION} state")
            det = cls(
                int(state["n_features"]),
                seed=int(state["seed"]),
                window_size=int(state["window_size"]),
                refit_every=int(state["refit_every"]),
                n_estimators=int(state["n_estimators"]),
                max_samples=int(state["max_samples"]),
            )
            window = np.asarray(state["window"])
            det.learned, det.refits = int(state["learned"]), int(state["refits"])
            det.since_refit = int(state["since_refit"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid {cls.name} state: {exc!r}") from None
        if window.shape != det.window.shape or window.dtype.kind != "f":
            raise CheckpointError(f"{cls.name} window: got {window.dtype}{window.shape}")
        det.window = window.astype(np.float64)
        if det.refits:
            # The last fit saw the window as it was `since_refit` rows ago.
            det.learned -= det.since_refit
            det._fit()
            det.learned += det.since_refit
        return det
