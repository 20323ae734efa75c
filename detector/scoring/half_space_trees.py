"""Half-Space Trees (Tan, Ting & Liu, IJCAI 2011) via river, behind the Detector contract.

River's HST expects features in [0, 1]. Rows are min-max scaled with limits
learned online: the per-feature minimum and maximum over every row ever learned
(never over scored-only rows), widened at the start of each ``learn`` call by
that batch, as river's ``MinMaxScaler`` does row by row. A feature whose limits
are still equal maps to 0. This is the slow reference detector: river scores
and learns one row at a time.

Checkpoints walk each tree in pre-order into flat arrays (feature, threshold,
l_mass, r_mass) and rebuild river's node objects from them; nothing is pickled.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from detector.errors import CheckpointError
from detector.scoring.base import Detector, State

VERSION = 1


class HalfSpaceTreesDetector(Detector):
    """River HST on online min-max scaled rows; score in [0, 1], higher = more anomalous.

    Scores are 0 during river's first window (``window_size`` learned rows).
    """

    name = "half_space_trees"

    def __init__(
        self, n_features: int, seed: int = 0, n_trees: int = 25, height: int = 8,
        window_size: int = 250,
    ) -> None:  # fmt: skip
        super().__init__(n_features, seed)
        if min(n_features, n_trees, height, window_size) < 1:
            raise ValueError("sizes must be >= 1")
        self.n_trees, self.height, self.window_size = n_trees, height, window_size
        # river is imported here, not with the module: it costs ~1 s at every start of a
        # daemon or `auditwatch score` whose models use the default detector
        from river.anomaly import HalfSpaceTrees

        self.model = HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self.low = np.full(n_features, np.inf)
        self.high = np.full(n_features, -np.inf)

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected shape (n, {self.n_features}), got {X.shape}")
        return X

    def _scaled(self, X: np.ndarray) -> Iterator[dict[int, float]]:
        span = self.high - self.low
        ok = np.isfinite(span) & (span > 0)
        Z = np.where(ok, (X - np.where(ok, self.low, 0.0)) / np.where(ok, span, 1.0), 0.0)
        for row in Z:
            yield dict(enumerate(row.tolist()))

    def score(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        return np.array([self.model.score_one(x) for x in self._scaled(X)], dtype=np.float64)

    def learn(self, X: np.ndarray) -> None:
        X = self._check(X)
        if len(X) == 0:
            return
        self.low = np.fmin(self.low, np.fmin.reduce(X, axis=0))  # NaN never moves a limit
        self.high = np.fmax(self.high, np.fmax.reduce(X, axis=0))
        for x in self._scaled(X):
            self.model.learn_one(x)

    def state_dict(self) -> State:
        state: State = {
            "algorithm": self.name,
            "version": VERSION,
            "n_features": self.n_features,
            "seed": self.seed,
            "n_trees": self.n_trees,
            "height": self.height,
            "window_size": self.window_size,
            "low": self.low.copy(),
            "high": self.high.copy(),
            "counter": self.model.counter,
            "first_window": self.model._first_window,
            "built": bool(self.model.trees),
        }
        from river.tree.padded import PaddedLeaf

        nodes = [list(_preorder(t)) for t in self.model.trees]
        state["feature"] = np.array(
            [[-1 if isinstance(n, PaddedLeaf) else n.feature for n in t] for t in nodes], np.int64
        ).reshape(len(nodes), -1)
        state["threshold"] = _node_values(nodes, "threshold", 0.0)
        state["l_mass"] = _node_values(nodes, "l_mass", 0)
        state["r_mass"] = _node_values(nodes, "r_mass", 0)
        return state

    @classmethod
    def from_state(cls, state: State) -> HalfSpaceTreesDetector:
        try:
            if state["algorithm"] != cls.name or int(state["version"]) != VERSION:
                raise CheckpointError(f"not a {cls.name} v{VERSION} state")
            det = cls(
                int(state["n_features"]), seed=int(state["seed"]), n_trees=int(state["n_trees"]),
                height=int(state["height"]), window_size=int(state["window_size"]),
            )  # fmt: skip
            det.low = _floats(state["low"], (det.n_features,))
            det.high = _floats(state["high"], (det.n_features,))
            det.model.counter = int(state["counter"])
            det.model._first_window = bool(state["first_window"])
            if state["built"]:
                det._rebuild(state)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CheckpointError(f"invalid {cls.name} state: {exc!r}") from None
        return det

    def _rebuild(self, state: State) -> None:
        shape = (self.n_trees, 2 ** (self.height + 1) - 1)
        arrays = {k: np.asarray(state[k]) for k in ("feature", "threshold", "l_mass", "r_mass")}
        for key, arr in arrays.items():
            if arr.shape != shape:
                raise CheckpointError(f"{self.name} {key}: shape {arr.shape}, expected {shape}")
        trees = []
        for t in range(self.n_trees):
            cols = [arrays[k][t].tolist() for k in ("feature", "threshold", "l_mass", "r_mass")]
            trees.append(_build(iter(zip(*cols, strict=True)), self.n_features))
        self.model.trees = trees
        self.model._tree_nodes = [list(t.iter_dfs()) for t in trees]


def _preorder(node: Any) -> Iterator[Any]:
    yield node
    for child in getattr(node, "children", ()):
        yield from _preorder(child)


def _node_values(nodes: list[list[Any]], attr: str, default: float) -> np.ndarray:
    dtype = np.float64 if isinstance(default, float) else np.int64
    rows = [[getattr(n, attr, default) for n in t] for t in nodes]
    return np.array(rows, dtype=dtype).reshape(len(nodes), -1)


def _floats(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape or arr.dtype.kind != "f":
        raise CheckpointError(f"expected float array {shape}, got {arr.dtype}{arr.shape}")
    return arr.astype(np.float64)


def _build(rows: Iterator[tuple[int, float, int, int]], n_features: int) -> Any:
    """Rebuild one river tree from its pre-order (feature, threshold, l_mass, r_mass) rows."""
    from river.tree.padded import PaddedBranch, PaddedLeaf

    feature, threshold, l_mass, r_mass = next(rows)
    if feature < 0:
        return PaddedLeaf(l_mass=l_mass, r_mass=r_mass)
    if feature >= n_features:
        raise CheckpointError(f"tree node splits on feature {feature} of {n_features}")
    left = _build(rows, n_features)
    right = _build(rows, n_features)
    return PaddedBranch(left, right, feature, threshold, l_mass=l_mass, r_mass=r_mass)
