"""Compiled (numba) kernel of the access features over struct-of-arrays state.

One row of a ``ProfileTable`` is one entity (or one peer group). The kernel
walks a batch in order with exactly the semantics of the Python profiles
(``profiles.py``/``baselines.py``), except population rarity, which uses a
count-min sketch instead of a key dict. docs/features.md describes the layout.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from detector.features.profiles import DISTINCT_WINDOW_S, TAU_LONG_S, TAU_SHORT_S

N_FEATURES = 13
CONTEXT_KEYS = (
    "events_seen",
    "weight",
    "rate_short",
    "rate_long",
    "bytes_usual",
    "bytes_p99",
    "rows_usual",
    "rows_p99",
)
# columns of ProfileTable.scal
N, FIRST, LAST, R_SHORT, R_LONG, FAIL, DISTINCT, H_TOTAL = range(8)
HABIT_CAP = 30_000  # HourHabit.CAP
SKETCH_DEPTH, SKETCH_BITS = 4, 15  # 4 x 32768 int32 counters per population
SKETCH_HALVE_AT = 1 << 24  # events counted before a population sketch is halved
_SKETCH_MULT = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93],
    dtype=np.uint64,
)

Table = tuple[np.ndarray, ...]  # ProfileTable.arrays(), as the kernel sees it


class ProfileTable:
    """Rows of profile state; grows by doubling so idle capacity costs nothing."""

    FIELDS = ("scal", "vol", "habit", "by_hour", "seen_key", "seen_last", "seen_stamp", "meta")

    def __init__(self, keys_per_row: int, rows: int = 16, max_rows: int = 1 << 40) -> None:
        self.keys_per_row, self.max_rows = keys_per_row, max_rows
        rows = max(1, min(rows, max_rows))
        self.scal = np.zeros((rows, 8))
        self.vol = np.zeros((rows, 8))  # bytes (med, dev, p99, n), rows (med, dev, p99, n)
        self.habit = np.zeros((rows, 168), np.uint16)
        self.by_hour = np.zeros((rows, 24), np.int32)
        self.seen_key = np.zeros((rows, keys_per_row), np.uint32)
        self.seen_last = np.zeros((rows, keys_per_row), np.int64)
        self.seen_stamp = np.zeros((rows, keys_per_row), np.int64)  # touch order (LRU)
        self.meta = np.zeros((rows, 2), np.int64)  # keys held, next stamp

    @property
    def rows(self) -> int:
        return int(self.scal.shape[0])

    def ensure(self, rows: int) -> None:
        """Grow (doubling) until at least ``rows`` rows exist; new rows are zero."""
        size = self.rows
        if rows <= size:
            return
        while size < rows:
            size = min(size * 2, max(self.max_rows, rows))
        for name in self.FIELDS:
            old = getattr(self, name)
            new = np.zeros((size, *old.shape[1:]), old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def nbytes_per_row(self) -> int:
        return sum(getattr(self, name)[:1].nbytes for name in self.FIELDS)


def new_sketch() -> tuple[np.ndarray, np.ndarray]:
    """Count-min sketches for (action, resource) and their totals."""
    return np.zeros((2, SKETCH_DEPTH, 1 << SKETCH_BITS), np.int32), np.zeros(2, np.int64)


@numba.njit(cache=True)
def _reset(t: Table, r: int) -> None:
    """Zero row ``r``; stale seen-key entries past the (zeroed) count are never read."""
    t[0][r, :] = 0.0
    t[1][r, :] = 0.0
    t[2][r, :] = 0
    t[3][r, :] = 0
    t[7][r, :] = 0


@numba.njit(cache=True)
def _touch(t: Table, r: int, key: np.uint32, now: int, cap: int) -> tuple[bool, int]:
    """Profile.touch: (was known, last seen); least recently touched entry replaced."""
    seen_key, seen_last, seen_stamp, meta = t[4], t[5], t[6], t[7]
    count, stamp = meta[r, 0], meta[r, 1]
    meta[r, 1] = stamp + 1
    for j in range(count):
        if seen_key[r, j] == key:
            last = seen_last[r, j]
            seen_last[r, j] = now
            seen_stamp[r, j] = stamp
            return True, last
    if count < cap:
        j = count
        meta[r, 0] = count + 1
    else:
        j = int(np.argmin(seen_stamp[r, :cap]))
    seen_key[r, j] = key
    seen_last[r, j] = now
    seen_stamp[r, j] = stamp
    return False, 0


@numba.njit(cache=True)
def _effective_window(tau: float, history_s: float) -> float:
    return tau * -math.expm1(-max(history_s, TAU_SHORT_S) / tau)


@numba.njit(cache=True)
def _decay(value: float, dt: float, tau: float) -> float:
    return value * math.exp(-dt / tau) if dt > 0 else value


@numba.njit(cache=True)
def _tick(scal: np.ndarray, r: int, ts: float, failed: bool) -> None:
    n = scal[r, N]
    dt = ts - scal[r, LAST] if n else 0.0
    scal[r, R_SHORT] = _decay(scal[r, R_SHORT], dt, TAU_SHORT_S) + 1.0
    scal[r, R_LONG] = _decay(scal[r, R_LONG], dt, TAU_LONG_S) + 1.0
    scal[r, FAIL] += 0.2 * ((1.0 if failed else 0.0) - scal[r, FAIL])
    if not n:
        scal[r, FIRST] = ts
    if ts > scal[r, LAST]:
        scal[r, LAST] = ts
    scal[r, N] = n + 1.0


@numba.njit(cache=True)
def _z(vol: np.ndarray, r: int, c: int, value: float) -> float:
    if vol[r, c + 3] == 0:
        return 0.0
    spread = max(1.4826 * 1.25 * vol[r, c + 1], 0.25)
    return (math.log1p(value) - vol[r, c]) / spread


@numba.njit(cache=True)
def _update(vol: np.ndarray, r: int, c: int, value: float) -> None:
    """RobustBaseline.update on columns c..c+3 (med, dev, p99, n)."""
    x = math.log1p(value)
    n = vol[r, c + 3] + 1.0
    vol[r, c + 3] = n
    if n <= 16:
        vol[r, c] += (x - vol[r, c]) / n
        vol[r, c + 1] += (abs(x - vol[r, c]) - vol[r, c + 1]) / n
        vol[r, c + 2] = max(vol[r, c + 2], x) if n > 1 else x
        return
    step = 0.1 * max(vol[r, c + 1], 0.05)
    med = vol[r, c]
    vol[r, c] = med + step if x > med else (med - step if x < med else med)
    vol[r, c + 1] += 0.05 * (abs(x - vol[r, c]) - vol[r, c + 1])
    vol[r, c + 2] += step * 0.99 * 2 if x > vol[r, c + 2] else -step * 0.01 * 2


VOLUME_Z_FLOOR = 2.0  # as common.VOLUME_Z_FLOOR


@numba.njit(cache=True)
def _volume(ev: np.ndarray, pv: np.ndarray, r: int, p: int, c: int, value: float, w: float):
    """common.volume_z: (z, usual, p99) against the blended baselines, then learn."""
    if value != value:
        return 0.0, math.nan, math.nan
    own_usual, own_p99 = math.expm1(ev[r, c]), math.expm1(max(ev[r, c + 2], ev[r, c]))
    if w >= 1.0:
        z, usual, p99 = _z(ev, r, c, value), own_usual, own_p99
    else:
        peer_usual, peer_p99 = math.expm1(pv[p, c]), math.expm1(max(pv[p, c + 2], pv[p, c]))
        if ev[r, c + 3]:
            z = w * _z(ev, r, c, value) + (1.0 - w) * _z(pv, p, c, value)
            usual = w * own_usual + (1.0 - w) * peer_usual
            p99 = w * own_p99 + (1.0 - w) * peer_p99
        else:
            z, usual, p99 = _z(pv, p, c, value), peer_usual, peer_p99
    _update(ev, r, c, value)
    _update(pv, p, c, value)
    return max(z, -VOLUME_Z_FLOOR), usual, p99


@numba.njit(cache=True)
def _share(habit: np.ndarray, by_hour: np.ndarray, total: float, r: int, h: int) -> float:
    here = float(habit[r, h])
    near = here + 0.5 * (float(habit[r, (h + 167) % 168]) + float(habit[r, (h + 1) % 168]))
    other_days = by_hour[r, h % 24] - here
    return (near + other_days / 7.0 + 0.05) / (2.0 * total + 8.4)


@numba.njit(cache=True)
def _habit_add(t: Table, r: int, h: int) -> None:
    scal, habit, by_hour = t[0], t[2], t[3]
    habit[r, h] += 1
    by_hour[r, h % 24] += 1
    scal[r, H_TOTAL] += 1.0
    if scal[r, H_TOTAL] >= HABIT_CAP:  # halve so habits can drift
        total = 0
        by_hour[r, :] = 0
        for k in range(168):
            habit[r, k] = habit[r, k] // 2
            total += habit[r, k]
            by_hour[r, k % 24] += habit[r, k]
        scal[r, H_TOTAL] = float(total)


@numba.njit(cache=True)
def _hour_rarity(et: Table, pt: Table, r: int, p: int, h: int, w: float) -> float:
    share = _share(et[2], et[3], et[0][r, H_TOTAL], r, h)
    if w < 1.0:
        share = w * share + (1.0 - w) * _share(pt[2], pt[3], pt[0][p, H_TOTAL], p, h)
    _habit_add(et, r, h)
    _habit_add(pt, p, h)
    return max(0.0, -math.log(share * 168.0))


@numba.njit(cache=True)
def _sketch_col(key: np.uint32, d: int) -> int:
    return int((np.uint64(key) * _SKETCH_MULT[d]) >> np.uint64(64 - SKETCH_BITS))


@numba.njit(cache=True)
def _rarity_then_add(sketch: np.ndarray, totals: np.ndarray, pop: int, key: np.uint32) -> float:
    """Surprise of ``key`` before this occurrence, then count it (conservative update)."""
    count = sketch[pop, 0, _sketch_col(key, 0)]
    for d in range(1, SKETCH_DEPTH):
        count = min(count, sketch[pop, d, _sketch_col(key, d)])
    surprise = -math.log((count + 1.0) / (totals[pop] + 2.0))
    for d in range(SKETCH_DEPTH):
        c = _sketch_col(key, d)
        if sketch[pop, d, c] == count:
            sketch[pop, d, c] = count + 1
    totals[pop] += 1
    if totals[pop] >= SKETCH_HALVE_AT:
        _halve(sketch, totals, pop)
    return surprise


@numba.njit(cache=True)
def _halve(sketch: np.ndarray, totals: np.ndarray, pop: int) -> None:
    for d in range(SKETCH_DEPTH):
        for c in range(sketch.shape[2]):
            sketch[pop, d, c] = sketch[pop, d, c] // 2
    totals[pop] = totals[pop] // 2


@numba.njit(cache=True)
def _first_uses(et, pt, r, p, keys, now, w, caps, out):
    """common.first_uses into ``out``; returns (resource known, resource last seen)."""
    res_known, res_last = False, 0
    for k in range(5):
        key = keys[k]
        if key == 0:
            out[k] = 0.0
            continue
        known, last = _touch(et, r, key, now, caps[0])
        if k == 3:
            res_known, res_last = known, last
        if known and w >= 1.0:
            out[k] = 0.0
            continue
        peer_known, _ = _touch(pt, p, key, now, caps[1])
        out[k] = w * (not known) + (1.0 - w) * (not peer_known)
    return res_known, res_last


@numba.njit(cache=True)
def _peer_rate(scal: np.ndarray, rates: np.ndarray, r: int, p: int, w: float) -> float:
    """common.peer_rate: own long rate blended with (and teaching) the peer group's."""
    n, hist_s = scal[r, N], scal[r, LAST] - scal[r, FIRST]
    own = scal[r, R_LONG] / _effective_window(TAU_LONG_S, hist_s)
    peer = rates[p] if rates[p] == rates[p] else (own if n else math.nan)  # NaN: no member yet
    if peer != peer:  # no baseline at all (see common.peer_rate): the caller uses ``short``
        return math.nan
    history = min(1.0, hist_s / TAU_LONG_S) if n else 0.0
    rates[p] = peer + 0.01 * w * history * (own - peer)
    b = min(w, history)
    return b * own + (1.0 - b) * peer


@numba.njit(cache=True)
def featurize_kernel(ev_in, ent, peer, rates, sketch, totals, cold, caps, X, ctx):
    """Features of a batch, in order. ``ev_in`` = (slot, reset, peer slot, keys (n, 5),
    ts, bytes_out, rows, failed, hour of week); ``caps`` = (entity keys, peer keys)."""
    slots, reset, peer_slots, keys, tss, bytes_out, rows, failed, hows = ev_in
    escal, pscal = ent[0], peer[0]
    for i in range(slots.shape[0]):
        r, p, ts = slots[i], peer_slots[i], tss[i]
        if reset[i]:
            _reset(ent, r)
        n = escal[r, N]
        w = min(1.0, n / cold) if cold > 0 else 1.0
        dt = max(ts - escal[r, LAST], 0.0) if n else 0.0
        rate_long = _peer_rate(escal, rates, r, p, w)
        ks = keys[i]
        res_known, res_last = _first_uses(ent, peer, r, p, ks, np.int64(ts), w, caps, X[i, 1:6])
        distinct = _decay(escal[r, DISTINCT], dt, DISTINCT_WINDOW_S)
        if ks[3] and (not res_known or res_last < ts - DISTINCT_WINDOW_S):
            distinct += 1.0
        escal[r, DISTINCT] = distinct
        _tick(escal, r, ts, failed[i])
        _tick(pscal, p, ts, failed[i])
        short = escal[r, R_SHORT] / _effective_window(TAU_SHORT_S, escal[r, LAST] - escal[r, FIRST])
        bz, bu, bp = _volume(ent[1], peer[1], r, p, 0, bytes_out[i], w)
        rz, ru, rp = _volume(ent[1], peer[1], r, p, 4, rows[i], w)
        if rate_long != rate_long:
            rate_long = short
        X[i, 0] = math.log((short + 1e-7) / (rate_long + 1e-7))
        X[i, 6], X[i, 7] = bz, rz
        X[i, 8] = _hour_rarity(ent, peer, r, p, hows[i], w)
        X[i, 9] = escal[r, FAIL]
        X[i, 10] = math.log1p(distinct)
        X[i, 11] = _rarity_then_add(sketch, totals, 0, ks[2]) if ks[2] else 0.0
        X[i, 12] = _rarity_then_add(sketch, totals, 1, ks[3]) if ks[3] else 0.0
        c = ctx[i]
        c[0], c[1], c[2], c[3] = n, w, short, rate_long
        c[4], c[5], c[6], c[7] = bu, bp, ru, rp
