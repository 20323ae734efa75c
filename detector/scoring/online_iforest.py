"""Online Isolation Forest (Leveni et al., ICML 2024), vectorised over trees and points.

Trees grow as points arrive: a leaf at depth ``d`` splits once it has seen
``max_leaf_samples * 2**d`` points (the paper's "adaptive" rule) and the depth
limit ``log(n / max_leaf_samples) / log(4)`` allows it. The split feature is
drawn among those with non-zero extent in the leaf's bounding box and the value
uniformly inside it; child counts are drawn as if the leaf's points were uniform
in the box, as the reference does. Rows leaving the sliding window of
``window_size`` learned rows are forgotten: their counts are removed along
their paths and internal nodes that fall below their split threshold collapse.

All trees live in one flat node pool (``feature, threshold, left, right, count,
depth, lo, hi``); every point walks every tree level by level with fancy
indexing, so the Python loop runs per tree level, never per node or point.
See docs/scoring.md for the scoring rule and measured numbers.
"""

from __future__ import annotations

import math

import numpy as np

from detector.errors import CheckpointError
from detector.scoring.base import Detector, State

VERSION = 1
_INT_ARRAYS = ("feature", "left", "right", "count", "depth")
_FLOAT_ARRAYS = ("threshold", "lo", "hi")
_PARAMS = ("n_features", "seed", "n_trees", "window_size", "max_leaf_samples")
_COUNTERS = ("learn_calls", "head", "size")


def path_norm(n: np.ndarray | float, leaf_samples: int) -> np.ndarray:
    """Expected extra depth below a node holding ``n`` points: log4(n / leaf_samples), >= 0.

    >>> float(path_norm(128.0, 32))
    1.0
    """
    n = np.asarray(n, dtype=np.float64)
    return np.log(np.maximum(n, leaf_samples) / leaf_samples) / math.log(4.0)


FAR_MAX_LEVELS = 2.0  # most path-length credit a row gets for lying far outside a box


class OnlineIsolationForest(Detector):
    """Streaming isolation forest over a sliding window; score in (0, 1], higher = rarer.

    ``learn`` inserts rows, forgets the oldest beyond ``window_size`` and grows
    trees; it is deterministic given ``seed`` and the sequence of calls (each
    call draws from a generator seeded by ``(seed, learn_calls)``). A batch
    longer than ``window_size`` is learned by its last ``window_size`` rows only.
    """

    name = "online_iforest"

    def __init__(
        self,
        n_features: int,
        seed: int = 0,
        n_trees: int = 32,
        window_size: int = 8192,
        max_leaf_samples: int = 64,
    ) -> None:
        super().__init__(n_features, seed)
        if n_features < 1 or n_trees < 1 or window_size < 1 or max_leaf_samples < 1:
            raise ValueError("n_features, n_trees, window_size, max_leaf_samples must be >= 1")
        self.n_trees = n_trees
        self.window_size = window_size
        self.max_leaf_samples = max_leaf_samples
        self.learn_calls = 0
        self.window = np.zeros((window_size, n_features))
        self.head = 0  # ring-buffer index of the oldest learned row
        self.size = 0  # rows in the window
        self.member = np.zeros((n_trees, window_size), np.int64)  # leaf of each window row
        self._allocate(max(4 * n_trees, 64))
        self.alive[:n_trees] = True  # node t is the root of tree t

    def _allocate(self, capacity: int) -> None:
        self.feature = np.zeros(capacity, np.int64)
        self.left = np.full(capacity, -1, np.int64)
        self.right = np.full(capacity, -1, np.int64)
        self.count = np.zeros(capacity, np.int64)
        self.depth = np.zeros(capacity, np.int64)
        self.threshold = np.zeros(capacity)
        self.lo = np.full((capacity, self.n_features), np.inf)
        self.hi = np.full((capacity, self.n_features), -np.inf)
        self.alive = np.zeros(capacity, bool)

    def _grow(self, need: int) -> None:
        old = {k: getattr(self, k) for k in (*_INT_ARRAYS, *_FLOAT_ARRAYS, "alive")}
        self._allocate(max(2 * len(self.alive), len(self.alive) + need))
        for key, arr in old.items():
            getattr(self, key)[: len(arr)] = arr

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected shape (n, {self.n_features}), got {X.shape}")
        return X

    def _descend(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Walk every row down every tree, level-synchronously; (row index, leaf) per entry."""
        rows = np.tile(np.arange(len(X)), self.n_trees)
        roots = np.repeat(np.arange(self.n_trees), len(X))
        return rows, self._walk(X.ravel(), rows * self.n_features, roots)

    def _walk(self, flat: np.ndarray, offsets: np.ndarray, node: np.ndarray) -> np.ndarray:
        """Leaf reached from ``node`` by the row at ``flat[offsets:offsets+d]``, per entry.

        Leaves loop to themselves here (threshold +inf, both children = self), so every
        entry takes the same number of steps with no compaction between levels.
        """
        inner = self.left >= 0
        if not inner[node].any():
            return node.copy()
        own = np.arange(inner.size)
        left, right = np.where(inner, self.left, own), np.where(inner, self.right, own)
        threshold = np.where(inner, self.threshold, np.inf)
        for _ in range(int(self.depth[inner].max() - self.depth[node].min()) + 1):
            go_right = flat[offsets + self.feature[node]] >= threshold[node]
            node = np.where(go_right, right[node], left[node])
        return node

    def _exit_depth(self, rows: np.ndarray, trees: np.ndarray) -> np.ndarray:
        """Depth of the first node on each row's path whose box does not contain it, less
        log2(1 + how many box widths it lies outside): far-out rows never tie at the top
        score, so calibration can still rank them (a new 2 GB read vs a new 20 MB read)."""
        node, stop = trees.copy(), np.full(len(rows), -1.0)
        active = np.arange(len(rows))
        while active.size:
            nd = node[active]
            lo, hi = self.lo[nd], self.hi[nd]
            out = self._outside(rows[active], lo, hi).any(axis=-1)
            r, o = rows[active[out]], nd[out]
            width = np.maximum(self.hi[o] - self.lo[o], 1e-9)
            excess = np.maximum(self.lo[o] - r, r - self.hi[o]) / width
            excess = np.where(np.isfinite(excess) & (excess > 0), excess, 0.0)  # empty boxes, NaN
            # bounded: an unbounded bonus lets one freak value stretch the calibration tail
            far = np.minimum(np.log2(1.0 + excess.max(axis=-1, initial=0.0)), FAR_MAX_LEVELS)
            stop[active[out]] = self.depth[o] - far
            keep = ~out & (self.left[nd] >= 0)
            active, nd = active[keep], nd[keep]
            right = rows[active, self.feature[nd]] >= self.threshold[nd]
            node[active] = np.where(right, self.right[nd], self.left[nd])
        return stop

    @staticmethod
    def _outside(rows: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Per feature: is the row beyond the box?"""
        return (rows < lo) | (rows > hi)

    def score(self, X: np.ndarray) -> np.ndarray:
        """2 ** -(mean path length / log4(window / max_leaf_samples)); see docs/scoring.md."""
        X = np.ascontiguousarray(self._check(X))
        if len(X) == 0:
            return np.zeros(0)
        pts, leaf = self._descend(X)
        path = self.depth[leaf] + path_norm(self.count[leaf], self.max_leaf_samples)
        shape = (self.n_trees, len(X), self.n_features)
        box_lo, box_hi = self.lo[leaf].reshape(shape), self.hi[leaf].reshape(shape)
        # A row outside its leaf's box is isolated where its path first leaves a box.
        outside = np.flatnonzero(self._outside(X, box_lo, box_hi).any(axis=-1).ravel())
        if outside.size:
            path[outside] = self._exit_depth(X[pts[outside]], outside // len(X))
        mean_path = path.reshape(self.n_trees, len(X)).mean(axis=0)
        norm = max(float(path_norm(self.size, self.max_leaf_samples)), 1.0)
        return np.asarray(2.0 ** (-mean_path / norm), dtype=np.float64)

    def learn(self, X: np.ndarray) -> None:
        X = self._check(X)[-self.window_size :]
        if len(X) == 0:
            return
        rng = np.random.default_rng([self.seed, self.learn_calls])
        self.learn_calls += 1
        drop = max(0, self.size + len(X) - self.window_size)
        forgotten = self.member[:, self._slots()[:drop]].ravel()
        slots = self._push(X, drop)
        self.member[:, slots] = self._insert(X).reshape(self.n_trees, len(X))
        self.count -= np.bincount(forgotten, minlength=len(self.count))
        self._refresh_internal()
        if drop and self._collapse():
            self._rehome()
        self._split(rng)

    def _push(self, X: np.ndarray, drop: int) -> np.ndarray:
        """Drop the ``drop`` oldest rows from the window ring, append X; return X's slots."""
        self.head = (self.head + drop) % self.window_size
        self.size -= drop
        slots = (self.head + self.size + np.arange(len(X))) % self.window_size
        self.window[slots] = X
        self.size += len(X)
        return slots

    def _insert(self, X: np.ndarray) -> np.ndarray:
        """Count rows at their leaves and widen the leaves' boxes; return the leaves."""
        X = np.ascontiguousarray(X)
        pts, leaf = self._descend(X)
        self.count += np.bincount(leaf, minlength=len(self.count))
        order = np.argsort(leaf, kind="stable")
        ordered, rows = leaf[order], X[pts[order]]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        uniq = ordered[starts]
        self.lo[uniq] = np.fmin(self.lo[uniq], np.fmin.reduceat(rows, starts, axis=0))
        self.hi[uniq] = np.fmax(self.hi[uniq], np.fmax.reduceat(rows, starts, axis=0))
        return leaf

    def _refresh_internal(self) -> None:
        """Internal counts and boxes := sums and unions of their children's, deepest first."""
        inner = np.flatnonzero(self.alive & (self.left >= 0))
        by_depth = inner[np.argsort(-self.depth[inner], kind="stable")]
        bounds = np.flatnonzero(np.diff(self.depth[by_depth])) + 1
        for group in np.split(by_depth, bounds):
            left, right = self.left[group], self.right[group]
            self.count[group] = self.count[left] + self.count[right]
            self.lo[group] = np.minimum(self.lo[left], self.lo[right])
            self.hi[group] = np.maximum(self.hi[left], self.hi[right])

    def _slots(self) -> np.ndarray:
        """Ring slots of the window rows, oldest first."""
        return (self.head + np.arange(self.size)) % self.window_size

    def _rehome(self) -> None:
        """Window rows whose leaf was collapsed away: find their new leaf."""
        slots = self._slots()
        member = self.member[:, slots]
        trees, cols = np.nonzero(~self.alive[member] | (self.left[member] >= 0))
        if trees.size:
            flat = np.ascontiguousarray(self.window).ravel()
            self.member[trees, slots[cols]] = self._walk(flat, slots[cols] * self.n_features, trees)

    def _collapse(self) -> bool:
        """Internal nodes below their split threshold become leaves; free their subtrees.
        Returns whether any did."""
        need = self.max_leaf_samples * 2.0**self.depth
        collapse = np.flatnonzero(self.alive & (self.left >= 0) & (self.count < need))
        frontier = np.concatenate([self.left[collapse], self.right[collapse]])
        self.left[collapse] = -1
        self.right[collapse] = -1
        while frontier.size:
            frontier = frontier[self.alive[frontier]]
            self.alive[frontier] = False
            inner = frontier[self.left[frontier] >= 0]
            frontier = np.concatenate([self.left[inner], self.right[inner]])
        self._reset()
        return bool(collapse.size)

    def _reset(self) -> None:
        """Clear freed nodes so the pool stays canonical (state equality after reload)."""
        dead = np.flatnonzero(~self.alive & ((self.left >= 0) | (self.count > 0)))
        self.left[dead] = self.right[dead] = -1
        self.count[dead] = self.depth[dead] = self.feature[dead] = 0
        self.threshold[dead] = 0.0
        self.lo[dead], self.hi[dead] = np.inf, -np.inf

    def _split(self, rng: np.random.Generator) -> None:
        limit = float(path_norm(self.size, self.max_leaf_samples))
        while True:
            need = self.max_leaf_samples * 2.0**self.depth
            leaf = self.alive & (self.left < 0) & (self.count >= need) & (self.depth < limit)
            cand = np.flatnonzero(leaf)
            extent = self.hi[cand] - self.lo[cand]
            cand, extent = cand[(extent > 0).any(axis=1)], extent[(extent > 0).any(axis=1)]
            if cand.size == 0:
                return
            self._split_nodes(cand, extent, rng)

    def _split_nodes(self, cand: np.ndarray, extent: np.ndarray, rng: np.random.Generator) -> None:
        free = np.flatnonzero(~self.alive)
        if free.size < 2 * cand.size:
            self._grow(2 * cand.size)
            free = np.flatnonzero(~self.alive)
        kids_l, kids_r = free[: cand.size], free[cand.size : 2 * cand.size]
        feat = np.argmax(rng.random(extent.shape) * (extent > 0), axis=1)
        lo_f = self.lo[cand, feat]
        width = extent[np.arange(cand.size), feat]
        frac = rng.random(cand.size)
        thr = lo_f + frac * width
        for kids in (kids_l, kids_r):
            self.alive[kids] = True
            self.depth[kids] = self.depth[cand] + 1
            self.lo[kids], self.hi[kids] = self.lo[cand], self.hi[cand]
        self.hi[kids_l, feat] = thr
        self.lo[kids_r, feat] = thr
        self.feature[cand], self.threshold[cand] = feat, thr
        self.left[cand], self.right[cand] = kids_l, kids_r
        self._move_members(cand)

    def _move_members(self, split: np.ndarray) -> None:
        """Send the window rows of just-split leaves to their children; exact child counts."""
        slots = self._slots()
        is_split = np.zeros(len(self.alive), bool)
        is_split[split] = True
        trees, cols = np.nonzero(is_split[self.member[:, slots]])
        slot = slots[cols]
        parent = self.member[trees, slot]
        right = self.window[slot, self.feature[parent]] >= self.threshold[parent]
        child = np.where(right, self.right[parent], self.left[parent])
        self.member[trees, slot] = child
        kids = np.concatenate([self.left[split], self.right[split]])
        self.count[kids] = np.bincount(child, minlength=len(self.alive))[kids]

    def state_dict(self) -> State:
        state: State = {"algorithm": self.name, "version": VERSION}
        state.update({key: getattr(self, key) for key in (*_PARAMS, *_COUNTERS)})
        arrays = ("window", "member", "alive", *_INT_ARRAYS, *_FLOAT_ARRAYS)
        state.update({key: getattr(self, key).copy() for key in arrays})
        return state

    @classmethod
    def from_state(cls, state: State) -> OnlineIsolationForest:
        try:
            if state["algorithm"] != cls.name or int(state["version"]) != VERSION:
                raise CheckpointError(f"not an {cls.name} v{VERSION} state")
            det = cls(**{key: int(state[key]) for key in _PARAMS})
            for key in _COUNTERS:
                setattr(det, key, int(state[key]))
            det.window = _array(state, "window", (det.window_size, det.n_features), "f")
            det.member = _array(state, "member", (det.n_trees, det.window_size), "i")
            det.alive = _array(state, "alive", None, "b")
            cap = det.alive.shape
            for key in _INT_ARRAYS:
                setattr(det, key, _array(state, key, cap, "i"))
            det.threshold = _array(state, "threshold", cap, "f")
            for key in ("lo", "hi"):
                setattr(det, key, _array(state, key, (*cap, det.n_features), "f"))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid {cls.name} state: {exc!r}") from None
        links = np.concatenate([det.left, det.right, det.member.ravel()])
        if (
            not 0 <= det.size <= det.window_size
            or not det.alive[: det.n_trees].all()
            or links.min() < -1
            or links.max() >= cap[0]
        ):
            raise CheckpointError(f"invalid {cls.name} state: inconsistent window or tree links")
        return det


def _array(state: State, key: str, shape: tuple[int, ...] | None, kind: str) -> np.ndarray:
    arr = np.asarray(state[key])
    if arr.dtype.kind != kind or (shape is not None and arr.shape != shape):
        raise CheckpointError(f"state[{key!r}]: got {arr.dtype}{arr.shape}, want {kind}{shape}")
    if shape is None and arr.ndim != 1:
        raise CheckpointError(f"state[{key!r}]: expected 1-D, got {arr.shape}")
    return arr.copy()
