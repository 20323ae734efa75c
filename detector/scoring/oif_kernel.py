"""Compiled (numba) kernels of the online isolation forest.

Every tree is a complete binary heap of ``n_nodes`` slots: node ``i`` has children
``2i+1`` and ``2i+2`` and depth ``floor(log2(i+1))``, so no child links are stored.
Per tree and node: ``feature`` (-1 = leaf or unused), ``threshold``, ``count`` (window
rows routed through it) and the bounding box ``lo``/``hi`` of the rows it has held.
``member[t, s]`` is the leaf of window slot ``s`` in tree ``t``. Unused slots are kept
blank (feature -1, count 0, empty box) so the state is canonical. docs/scoring.md
describes the algorithm; the kernels loop in a fixed order, so results are deterministic.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def _depth(node: int) -> int:
    d = 0
    while node > 0:
        node = (node - 1) >> 1
        d += 1
    return d


@numba.njit(cache=True)
def _excess(X: np.ndarray, r: int, lo: np.ndarray, hi: np.ndarray, t: int, node: int) -> float:
    """How many box widths row ``r`` lies outside the box of ``node`` (largest over
    features); -1 inside. NaN never counts as outside. Indexes, never slices: a slice is
    a new array object per node visit."""
    out = -1.0
    for j in range(X.shape[1]):
        v, a, b = X[r, j], lo[t, node, j], hi[t, node, j]
        if v < a or v > b:
            width = max(b - a, 1e-9)
            out = max(out, (a - v) / width if v < a else (v - b) / width)
    return out


@numba.njit(cache=True)
def _exit(
    X: np.ndarray,
    r: int,
    t: int,
    feature: np.ndarray,
    threshold: np.ndarray,
    count: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> tuple[int, float]:
    """Depth of the first node on the path of row ``r`` whose box does not hold it, and
    how many of that box's widths the row lies outside (inf for an empty node)."""
    node, depth = 0, 0
    while True:
        if count[t, node] == 0:
            return depth, np.inf
        ex = _excess(X, r, lo, hi, t, node)
        if ex >= 0.0:
            return depth, ex
        node = 2 * node + (2 if X[r, feature[t, node]] >= threshold[t, node] else 1)
        depth += 1


@numba.njit(cache=True)
def _leaf(X: np.ndarray, r: int, feature: np.ndarray, threshold: np.ndarray, t: int) -> int:
    """Leaf of row ``r`` in tree ``t``; NaN goes left."""
    node, f = 0, feature[t, 0]
    while f >= 0:
        node = 2 * node + 1 + int(X[r, f] >= threshold[t, node])  # branch-free: coin flips
        f = feature[t, node]
    return node


@numba.njit(cache=True)
def _inside(X: np.ndarray, r: int, lo: np.ndarray, hi: np.ndarray, t: int, node: int) -> bool:
    """Is row ``r`` inside the box of ``node``? NaN never counts as outside."""
    inside = True
    for j in range(X.shape[1]):
        v = X[r, j]
        inside &= ((v >= lo[t, node, j]) & (v <= hi[t, node, j])) | (v != v)
    return inside


@numba.njit(cache=True)
def mean_paths(
    X: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    count: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    leaf_path: np.ndarray,
    far_max: float,
    soft: float,
    leaves: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean path length of every row over all trees, and the same under the hard box
    rule (``soft`` = 0); each row's leaf per tree goes to ``leaves`` (trees x rows).
    ``leaf_path`` per node is depth + log4(count / eta). A row outside its leaf's box is
    isolated where its path first leaves a box, less a bounded far-outside credit
    log2(1 + excess); a row only just outside (excess << ``soft`` box widths) keeps most
    of its leaf path. A box holds its children's boxes, so only rows outside their leaf's
    box walk again. Tree by tree, so one tree's nodes stay in cache."""
    out, hard = np.zeros(X.shape[0]), np.zeros(X.shape[0])
    for t in range(feature.shape[0]):
        for r in range(X.shape[0]):
            node = _leaf(X, r, feature, threshold, t)
            leaves[t, r] = node
            if count[t, node] > 0 and _inside(X, r, lo, hi, t, node):
                out[r] += leaf_path[t, node]
                hard[r] += leaf_path[t, node]
                continue
            depth, ex = _exit(X, r, t, feature, threshold, count, lo, hi)
            isolated = depth - min(math.log2(1.0 + ex), far_max) if ex < np.inf else depth
            near = math.exp(-ex / soft) if soft > 0.0 else 0.0
            out[r] += near * leaf_path[t, node] + (1.0 - near) * isolated
            hard[r] += isolated
    return out / feature.shape[0], hard / feature.shape[0]


@numba.njit(cache=True)
def forget(member: np.ndarray, slots: np.ndarray, count: np.ndarray) -> None:
    """Remove window slots from their leaves' counts (``refresh`` fixes the ancestors)."""
    for t in range(member.shape[0]):
        for s in slots:
            count[t, member[t, s]] -= 1


@numba.njit(cache=True)
def insert(
    window: np.ndarray,
    slots: np.ndarray,
    leaves: np.ndarray,
    member: np.ndarray,
    count: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> None:
    """Put window slots in their leaves (``leaves``: trees x slots, from ``mean_paths``):
    count them there and widen the leaves' boxes (``refresh`` fixes the ancestors)."""
    for t in range(member.shape[0]):
        for i in range(slots.size):
            node = leaves[t, i]
            member[t, slots[i]] = node
            count[t, node] += 1
            _widen(lo, hi, t, node, window, slots[i])


@numba.njit(cache=True)
def _widen(lo: np.ndarray, hi: np.ndarray, t: int, node: int, rows: np.ndarray, s: int) -> None:
    """Widen the box of ``node`` to hold ``rows[s]``; NaN never widens a box."""
    for j in range(rows.shape[1]):
        v = rows[s, j]
        if v < lo[t, node, j]:
            lo[t, node, j] = v
        if v > hi[t, node, j]:
            hi[t, node, j] = v


@numba.njit(cache=True)
def refresh(feature: np.ndarray, count: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """Split nodes := sum of their children's counts and union of their boxes, bottom-up."""
    for t in range(feature.shape[0]):
        for i in range(feature.shape[1] - 1, -1, -1):
            if feature[t, i] >= 0:
                a, b = 2 * i + 1, 2 * i + 2
                count[t, i] = count[t, a] + count[t, b]
                for j in range(lo.shape[2]):
                    lo[t, i, j] = min(lo[t, a, j], lo[t, b, j])
                    hi[t, i, j] = max(hi[t, a, j], hi[t, b, j])


@numba.njit(cache=True)
def _blank(
    t: int,
    node: int,
    feature: np.ndarray,
    threshold: np.ndarray,
    count: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> None:
    feature[t, node] = -1
    threshold[t, node] = 0.0
    count[t, node] = 0
    lo[t, node, :] = np.inf
    hi[t, node, :] = -np.inf


@numba.njit(cache=True)
def _clear_below(
    t: int,
    node: int,
    feature: np.ndarray,
    threshold: np.ndarray,
    count: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> None:
    """Blank every descendant of ``node`` (the heap levels below it)."""
    first, width = 2 * node + 1, 2
    while first < feature.shape[1]:
        for i in range(first, min(first + width, feature.shape[1])):
            _blank(t, i, feature, threshold, count, lo, hi)
        first, width = 2 * first + 1, 2 * width


@numba.njit(cache=True)
def collapse(
    slots: np.ndarray,
    member: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    count: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    eta: float,
    dead: bool,
) -> None:
    """Split nodes holding fewer than ``eta * 2**depth`` rows become leaves again; their
    window rows move up to them. With ``dead``, so do split nodes one of whose children
    holds no window row (forgetting took every row on one side, e.g. a threshold drawn
    among values long gone): such a split spends a level of the depth limit on nothing,
    and ``split`` redraws it inside the values the window holds now. Heap order is
    top-down, so the highest collapses first."""
    for t in range(feature.shape[0]):
        changed = False
        for i in range(feature.shape[1]):
            if feature[t, i] >= 0 and (
                count[t, i] < eta * 2.0 ** _depth(i)
                or (dead and (count[t, 2 * i + 1] == 0 or count[t, 2 * i + 2] == 0))
            ):
                feature[t, i] = -1
                threshold[t, i] = 0.0
                _clear_below(t, i, feature, threshold, count, lo, hi)
                changed = True
        if changed:
            for s in slots:  # new leaf = topmost leaf on the old leaf's ancestor chain
                m = member[t, s]
                dm = _depth(m)
                for k in range(dm + 1):
                    a = ((m + 1) >> (dm - k)) - 1
                    if feature[t, a] < 0:
                        member[t, s] = a
                        break


@numba.njit(cache=True)
def split(
    window: np.ndarray,
    slots: np.ndarray,
    member: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    count: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    eta: float,
    limit: float,
    rand: np.ndarray,
) -> None:
    """Split every leaf holding at least ``eta * 2**depth`` rows above the depth limit:
    feature uniform among those with extent in the box, value uniform in it. Children
    get the exact counts and boxes of the window rows they receive; heap order visits
    them later in the same pass, so they split again if still over threshold."""
    n_nodes, d = feature.shape[1], window.shape[1]
    r = 0
    for t in range(feature.shape[0]):
        for i in range(n_nodes // 2):  # nodes with children inside the heap
            depth = _depth(i)
            if feature[t, i] >= 0 or depth >= limit or count[t, i] < eta * 2.0**depth:
                continue
            spread = 0
            for j in range(d):
                spread += hi[t, i, j] > lo[t, i, j]
            if spread == 0:
                continue
            pick, f = min(int(rand[r] * spread), spread - 1), 0
            while pick > 0 or hi[t, i, f] <= lo[t, i, f]:  # the pick-th feature with extent
                pick -= hi[t, i, f] > lo[t, i, f]
                f += 1
            thr = lo[t, i, f] + rand[r + 1] * (hi[t, i, f] - lo[t, i, f])
            r += 2
            feature[t, i], threshold[t, i] = f, thr
            for s in slots:
                if member[t, s] == i:
                    child = 2 * i + (2 if window[s, f] >= thr else 1)
                    member[t, s] = child
                    count[t, child] += 1
                    _widen(lo, hi, t, child, window, s)
