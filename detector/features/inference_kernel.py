"""Compiled (numba) vector math of the inference features: one call per event.

The per-event numpy version made about ten small numpy calls per event (z-scaling,
mean of squares, learning the model's traffic, distances to the caller's last
queries), each costing more in call overhead than in arithmetic. This kernel does
the same arithmetic in the same order, including numpy's pairwise summation, so
features are bit-identical (tests/test_features.py checks it against numpy).
"""

from __future__ import annotations

import math

import numba
import numpy as np

PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE; input vectors hold at most 64 numbers


@numba.njit(cache=True)
def pairwise_sum(a: np.ndarray, n: int) -> float:  # pragma: no cover - compiled
    """Sum of ``a[:n]`` (n <= 128) in numpy's order for float64 ``add.reduce``: eight
    interleaved partial sums, combined as a tree, then the tail."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    r = a[:8].copy()
    i = 8
    while i < n - n % 8:
        for k in range(8):
            r[k] += a[i + k]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        res += a[i]
        i += 1
    return res


@numba.njit(cache=True, error_model="numpy")  # 0/0 -> NaN as numpy (empty vectors)
def input_signals(
    vector: np.ndarray,
    limit: float,
    mean: np.ndarray,
    var: np.ndarray,
    alpha: float,
    ring: np.ndarray,
    filled: int,
    slot: int,
) -> tuple[float, float]:  # pragma: no cover - compiled
    """(novelty, nearest) of one input, then learn it.

    The vector is first clipped to +-``limit`` (squares of larger numbers overflow).
    novelty: RMS z-score of it against the model's traffic ``mean``/``var``;
    nearest: smallest Euclidean distance between its z-scores and the first
    ``filled`` rows of the caller's ``ring`` (inf when ``filled`` is 0). Afterwards
    ``mean``/``var`` learn the vector with rate ``alpha`` and ``ring[slot]`` holds it.
    """
    dim = vector.shape[0]
    x = np.minimum(np.maximum(vector, -limit), limit)
    z = np.empty(dim)
    work = np.empty(dim)
    for j in range(dim):
        z[j] = (x[j] - mean[j]) / np.sqrt(var[j] + 1e-12)
        work[j] = z[j] * z[j]
    novelty = math.sqrt(pairwise_sum(work, dim) / dim)
    for j in range(dim):
        delta = x[j] - mean[j]
        mean[j] += alpha * delta
        var[j] += alpha * (delta * delta - var[j])
    nearest = np.inf
    for row in range(filled):
        for j in range(dim):
            diff = ring[row, j] - z[j]
            work[j] = diff * diff
        distance = math.sqrt(pairwise_sum(work, dim))
        if distance < nearest or distance != distance:  # NaN wins, as in np.min
            nearest = distance
        if nearest != nearest:
            break
    ring[slot, :] = z
    return novelty, nearest
