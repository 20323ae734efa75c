"""The contract every detector follows.

A detector maps a batch of feature rows to raw anomaly scores: higher means
more anomalous. It is seeded and deterministic: the same stream of
``learn``/``score`` calls gives the same scores. Its whole state round-trips
through ``state_dict``/``from_state`` as plain numpy arrays and JSON-able
scalars, so checkpoints never need pickle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

State = dict[str, Any]  # values: np.ndarray, int, float, str, bool, or lists of them


class Detector(ABC):
    """Online anomaly detector over fixed-width float feature rows."""

    name: str = "detector"

    def __init__(self, n_features: int, seed: int = 0) -> None:
        self.n_features = n_features
        self.seed = seed

    @abstractmethod
    def score(self, X: np.ndarray) -> np.ndarray:
        """Raw scores, shape (n,), float64; higher = more anomalous. Does not learn."""

    @abstractmethod
    def learn(self, X: np.ndarray) -> None:
        """Update the model with rows judged normal enough to learn from."""

    @abstractmethod
    def state_dict(self) -> State:
        """Everything needed to resume, as arrays and scalars (no objects)."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: State) -> Detector:
        """Rebuild a detector from ``state_dict()`` output; validates shapes."""

    def score_memo(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``score(X)`` and, per row, work that ``learn_memo`` of the same rows may reuse
        while the detector has not learned since (rows x k, sliceable like ``X``)."""
        return self.score(X), None

    def learn_memo(self, X: np.ndarray, memo: np.ndarray | None) -> None:
        """``learn(X)``, reusing ``score_memo`` output for these rows if given."""
        self.learn(X)

    def score_one(self, x: np.ndarray) -> float:
        return float(self.score(x.reshape(1, -1))[0])

    def learn_one(self, x: np.ndarray) -> None:
        self.learn(x.reshape(1, -1))


def joined_memo(memos: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """The ``score_memo`` memos of the parts of a block, as one; None unless every part
    has one (a part learned unscored, during warm-up or restored from a checkpoint)."""
    parts = [m for m in memos if m is not None]
    return np.concatenate(parts) if parts and len(parts) == len(memos) else None
