"""Online Isolation Forest (Leveni et al., ICML 2024) with score-gated learning.

Trees grow as points arrive: a leaf at depth ``d`` splits once it holds
``max_leaf_samples * 2**d`` window rows (the paper's "adaptive" rule) and the depth
limit ``log4(n / max_leaf_samples)`` allows it. The split feature is drawn among those
with extent in the leaf's box and the value uniformly inside it. Rows leaving the
sliding window of ``window_size`` learned rows are forgotten and internal nodes that
fall below their split threshold collapse. ``learn`` does not learn rows the forest
already isolates (hard-rule score >= ``learn_gate``), within a budget, so a burst of
anomalies is not learned as normal. The hot loops are numba kernels (``oif_kernel``);
docs/scoring.md has the details, the deviations from the paper and the measurements.
"""

from __future__ import annotations

import math

import numpy as np

from detector.errors import CheckpointError
from detector.scoring import oif_kernel as kernel
from detector.scoring.base import Detector, State

VERSION = 2
FAR_MAX_LEVELS = 2.0  # most path-length credit a row gets for lying far outside a box
SOFT_EXIT = 0.3  # a row this many box widths outside keeps 1/e of its leaf path in scores
GATE_FROM_ROWS = 512  # the gate needs a model to judge by: learn everything before this
REFUSE_BUDGET = 0.02  # the gate refuses at most this fraction of the rows ...
BUDGET_WINDOWS = 16  # ... over about this many windows (an EWMA)
_PARAMS = ("n_features", "seed", "n_trees", "window_size", "max_leaf_samples")
_FLOATS = ("learn_gate", "gated_rate")  # the first is a parameter, the second state
_COUNTERS = ("learn_calls", "head", "size", "gated")
_ARRAYS = {"window": "f", "member": "i", "feature": "i", "threshold": "f", "count": "i"}
_ARRAYS |= {"lo": "f", "hi": "f"}  # array -> dtype kind


def path_norm(n: np.ndarray | float, leaf_samples: int) -> np.ndarray:
    """Expected extra depth below a node holding ``n`` points: log4(n / leaf_samples), >= 0.

    >>> float(path_norm(128.0, 32))
    1.0
    """
    n = np.asarray(n, dtype=np.float64)
    return np.log(np.maximum(n, leaf_samples) / leaf_samples) / math.log(4.0)


def max_depth(window_size: int, leaf_samples: int) -> int:
    """Deepest node the adaptive rule can create: the least ``k`` with
    ``leaf_samples * 4**k >= window_size``.

    >>> max_depth(8192, 64), max_depth(64, 64)
    (4, 0)
    """
    k = 0
    while leaf_samples * 4**k < window_size:
        k += 1
    return k


class OnlineIsolationForest(Detector):
    """Streaming isolation forest over a sliding window; score in (0, 4], higher = rarer
    (above 1 only for rows beyond the boxes that would hold them).

    ``learn`` forgets the oldest rows beyond ``window_size``, inserts the new ones and
    grows trees; it is deterministic given ``seed`` and the sequence of calls (each call
    draws from a generator seeded by ``(seed, learn_calls)``). Once the window holds
    ``GATE_FROM_ROWS`` rows, rows scoring at least ``learn_gate`` under the hard box rule
    are not learned (0 disables the gate), up to ``REFUSE_BUDGET`` of the rows offered.
    """

    name = "online_iforest"

    def __init__(
        self,
        n_features: int,
        seed: int = 0,
        n_trees: int = 64,
        window_size: int = 8192,
        max_leaf_samples: int = 16,
        learn_gate: float = 0.75,
        redraw_dead_splits: bool = False,
    ) -> None:
        super().__init__(n_features, seed)
        if n_features < 1 or n_trees < 1 or window_size < 1 or max_leaf_samples < 1:
            raise ValueError("n_features, n_trees, window_size, max_leaf_samples must be >= 1")
        if not learn_gate >= 0:
            raise ValueError("learn_gate must be >= 0")
        self.n_trees, self.window_size = n_trees, window_size
        self.max_leaf_samples, self.learn_gate = max_leaf_samples, float(learn_gate)
        self.redraw_dead_splits = bool(redraw_dead_splits)
        self.gated_rate = 0.0  # recent fraction of offered rows the gate refused
        self.gate_from = min(GATE_FROM_ROWS, window_size)  # the gate needs a model to judge
        self.learn_calls = self.head = self.size = self.gated = 0
        n_nodes = 2 ** (max_depth(window_size, max_leaf_samples) + 1) - 1
        self.window = np.zeros((window_size, n_features))
        self.member = np.zeros((n_trees, window_size), np.int32)  # leaf of each window row
        self.feature = np.full((n_trees, n_nodes), -1, np.int64)
        self.threshold = np.zeros((n_trees, n_nodes))
        self.count = np.zeros((n_trees, n_nodes), np.int64)
        self.lo = np.full((n_trees, n_nodes, n_features), np.inf)
        self.hi = np.full((n_trees, n_nodes, n_features), -np.inf)
        self._depths = np.log2(np.arange(1, n_nodes + 1)).astype(np.int64)  # heap node depths
        self._leaf_paths: np.ndarray | None = None

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected shape (n, {self.n_features}), got {X.shape}")
        return X

    def _tree(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.feature, self.threshold, self.count, self.lo, self.hi

    def score(self, X: np.ndarray) -> np.ndarray:
        """2 ** -(mean path length / log4(window / max_leaf_samples)); see docs/scoring.md."""
        return self._score(self._check(X))[0]

    def _score(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores, scores under the hard box rule, and each row's leaf per tree."""
        leaves = np.empty((self.n_trees, len(X)), np.int64)
        if len(X) == 0:
            return np.zeros(0), np.zeros(0), leaves
        soft, hard = kernel.mean_paths(
            X, *self._tree(), self._leaf_path(), FAR_MAX_LEVELS, SOFT_EXIT, leaves
        )
        norm = max(float(path_norm(self.size, self.max_leaf_samples)), 1.0)
        return 2.0 ** (-soft / norm), 2.0 ** (-hard / norm), leaves

    def score_memo(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores and, per row, its hard-rule score and leaf in every tree: ``learn_memo``
        then skips walking the trees again (half the cost of score-then-learn)."""
        scores, hard, leaves = self._score(self._check(X))
        return scores, np.column_stack([hard, leaves.T.astype(np.float64)])

    def learn(self, X: np.ndarray) -> None:
        X = self._check(X)
        _, hard, leaves = self._score(X)
        self._learn(X, hard, leaves)

    def learn_memo(self, X: np.ndarray, memo: np.ndarray | None) -> None:
        X = self._check(X)
        if memo is None or memo.shape != (len(X), self.n_trees + 1):
            self.learn(X)
            return
        self._learn(X, memo[:, 0], np.ascontiguousarray(memo[:, 1:].T, dtype=np.int64))

    def _learn(self, X: np.ndarray, hard: np.ndarray, leaves: np.ndarray) -> None:
        if self.learn_gate > 0 and self.size >= self.gate_from and len(X):
            keep = self._admit(hard)
            X, leaves = X[keep], leaves[:, keep]
        X, leaves = X[-self.window_size :], leaves[:, -self.window_size :]
        if len(X) == 0:
            return
        rng = np.random.default_rng([self.seed, self.learn_calls])
        self.learn_calls += 1
        self._leaf_paths = None
        drop = max(0, self.size + len(X) - self.window_size)
        if drop:
            kernel.forget(self.member, self._slots()[:drop], self.count)
        self.head = (self.head + drop) % self.window_size
        self.size -= drop
        slots = (self.head + self.size + np.arange(len(X))) % self.window_size
        self.window[slots] = X
        self.size += len(X)
        kernel.insert(self.window, slots, leaves, self.member, self.count, self.lo, self.hi)
        kernel.refresh(self.feature, self.count, self.lo, self.hi)
        eta = float(self.max_leaf_samples)
        if drop:
            kernel.collapse(self._slots(), self.member, *self._tree(), eta, self.redraw_dead_splits)
        limit = float(path_norm(self.size, self.max_leaf_samples))
        rand = rng.random(self.feature.size + 2)  # two draws per possible split
        kernel.split(self.window, self._slots(), self.member, *self._tree(), eta, limit, rand)

    def _admit(self, scores: np.ndarray) -> np.ndarray:
        """Rows to learn: all but those scoring >= ``learn_gate``, except that the gate may
        refuse at most ``REFUSE_BUDGET`` of the rows over about ``BUDGET_WINDOWS`` windows
        (an EWMA); beyond that, the least anomalous of the gated rows are learned. A burst
        is refused; a model that refuses a lasting share of the traffic is unfrozen."""
        n = scores.size
        weight = 1.0 - (1.0 - 1.0 / (BUDGET_WINDOWS * self.window_size)) ** n
        gated = np.flatnonzero(scores >= self.learn_gate)
        room = self.gated_rate + (REFUSE_BUDGET - self.gated_rate) / weight
        k = int(min(gated.size, max(0.0, math.floor(n * room))))
        refused = gated[np.argsort(-scores[gated], kind="stable")[:k]]
        self.gated_rate += weight * (k / n - self.gated_rate)
        self.gated += k
        keep = np.ones(n, bool)
        keep[refused] = False
        return keep

    def _leaf_path(self) -> np.ndarray:
        """Per node: depth + log4(count / max_leaf_samples), cached until the next learn."""
        if self._leaf_paths is None:
            self._leaf_paths = self._depths + path_norm(self.count, self.max_leaf_samples)
        return self._leaf_paths

    def _slots(self) -> np.ndarray:
        """Ring slots of the window rows, oldest first."""
        return (self.head + np.arange(self.size)) % self.window_size

    def state_dict(self) -> State:
        state: State = {"algorithm": self.name, "version": VERSION}
        state.update({key: getattr(self, key) for key in (*_PARAMS, *_FLOATS, *_COUNTERS)})
        state["redraw_dead_splits"] = self.redraw_dead_splits
        state.update({key: getattr(self, key).copy() for key in _ARRAYS})
        return state

    @classmethod
    def from_state(cls, state: State) -> OnlineIsolationForest:
        try:
            if state["algorithm"] != cls.name or int(state["version"]) != VERSION:
                raise CheckpointError(f"not an {cls.name} v{VERSION} state")
            det = cls(
                **{key: int(state[key]) for key in _PARAMS},
                learn_gate=float(state["learn_gate"]),
                # absent from version-2 files written before the option existed
                redraw_dead_splits=bool(state.get("redraw_dead_splits", False)),
            )
            det.gated_rate = float(state["gated_rate"])
            for key in _COUNTERS:
                setattr(det, key, int(state[key]))
            for key, kind in _ARRAYS.items():
                like = getattr(det, key)
                setattr(det, key, _array(state, key, like.shape, kind).astype(like.dtype))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid {cls.name} state: {exc!r}") from None
        n_nodes = det.feature.shape[1]
        if (
            not 0 <= det.size <= det.window_size
            or not 0 <= det.head < det.window_size
            or (det.member.min() < 0 or det.member.max() >= n_nodes)
            or det.feature.min() < -1
            or det.feature.max() >= det.n_features
            or (det.feature[:, n_nodes // 2 :] >= 0).any()  # bottom level: no children
        ):
            raise CheckpointError(f"invalid {cls.name} state: inconsistent window or tree links")
        return det


def _array(state: State, key: str, shape: tuple[int, ...], kind: str) -> np.ndarray:
    arr = np.asarray(state[key])
    if arr.dtype.kind != kind or arr.shape != shape:
        raise CheckpointError(f"state[{key!r}]: got {arr.dtype}{arr.shape}, want {kind}{shape}")
    return arr.copy()
