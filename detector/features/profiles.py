"""Per-entity behaviour profiles (also used, aggregated, for peer groups).

A profile holds only bounded structures: decayed counters, a capped LRU map
of recently seen keys (networks, agents, actions, resources, countries), an
hour-of-week histogram and robust volume baselines. See docs/features.md.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import numpy as np

from detector.features.baselines import HourHabit, RobustBaseline, decay

TAU_SHORT_S = 300.0  # "right now" rate window
TAU_LONG_S = 86_400.0  # the entity's usual rate
DISTINCT_WINDOW_S = 600.0  # "distinct resources in a short window"
RECENT_INPUTS = 32  # PRADA: compare a query with the caller's last N queries


class Profile:
    """State common to access and inference profiles."""

    __slots__ = (
        "fail_ewma",
        "first_ts",
        "habit",
        "last_ts",
        "n",
        "rate_long",
        "rate_short",
        "seen",
    )

    def __init__(self) -> None:
        self.n = 0
        self.first_ts = 0.0
        self.last_ts = 0.0
        self.rate_short = 0.0
        self.rate_long = 0.0
        self.fail_ewma = 0.0
        self.seen: dict[int, int] = {}  # key hash -> last seen (epoch s), LRU order
        self.habit = HourHabit()

    def tick(self, ts: float, failed: bool) -> None:
        """Advance counters to ``ts`` and count one event (out-of-order ts: no decay)."""
        dt = ts - self.last_ts if self.n else 0.0
        self.rate_short = decay(self.rate_short, dt, TAU_SHORT_S) + 1.0
        self.rate_long = decay(self.rate_long, dt, TAU_LONG_S) + 1.0
        self.fail_ewma += 0.2 * ((1.0 if failed else 0.0) - self.fail_ewma)
        if not self.n:
            self.first_ts = ts
        if ts > self.last_ts:
            self.last_ts = ts
        self.n += 1

    def long_rate(self) -> float:
        """Events/s over the long window, bias-corrected while history is shorter than it."""
        return self.rate_long / _effective_window(TAU_LONG_S, self.last_ts - self.first_ts)

    def short_rate(self) -> float:
        return self.rate_short / _effective_window(TAU_SHORT_S, self.last_ts - self.first_ts)

    def touch(self, key: int, ts: float, cap: int) -> int | None:
        """Record ``key`` as seen at ``ts``; return when it was last seen (None: new)."""
        seen = self.seen
        last = seen.pop(key, None)
        seen[key] = int(ts)
        if last is None and len(seen) > cap:
            del seen[next(iter(seen))]  # least recently seen
        return last

    def common_state(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "rates": [self.rate_short, self.rate_long, self.fail_ewma],
            "seen": [list(self.seen.keys()), list(self.seen.values())],
            "habit": list(self.habit.counts),
        }

    def load_common(self, state: dict[str, Any]) -> None:
        self.n = int(state["n"])
        self.first_ts = float(state["first_ts"])
        self.last_ts = float(state["last_ts"])
        self.rate_short, self.rate_long, self.fail_ewma = (float(v) for v in state["rates"])
        keys, values = state["seen"]
        self.seen = dict(zip((int(k) for k in keys), (int(v) for v in values), strict=True))
        self.habit = HourHabit(array("H", state["habit"]))


def _effective_window(tau: float, history_s: float) -> float:
    """Mass of a decayed counter's window actually observed (Adam-style bias correction).

    History shorter than the short window counts as the short window, so an
    entity's first events have equal short and long rates.
    """
    return tau * -math.expm1(-max(history_s, TAU_SHORT_S) / tau)


class AccessProfile(Profile):
    __slots__ = ("bytes_out", "distinct_recent", "rows")

    def __init__(self) -> None:
        super().__init__()
        self.bytes_out = RobustBaseline()
        self.rows = RobustBaseline()
        self.distinct_recent = 0.0  # decayed count of resources not touched in the window

    def to_state(self) -> dict[str, Any]:
        extra = [self.bytes_out.to_list(), self.rows.to_list(), self.distinct_recent]
        return {**self.common_state(), "access": extra}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AccessProfile:
        profile = cls()
        profile.load_common(state)
        bytes_out, rows, distinct = state["access"]
        profile.bytes_out = RobustBaseline.from_list(bytes_out)
        profile.rows = RobustBaseline.from_list(rows)
        profile.distinct_recent = float(distinct)
        return profile


class InferenceProfile(Profile):
    __slots__ = ("confidence", "entropy", "output_tokens", "payload", "recent_inputs", "recent_pos")

    def __init__(self) -> None:
        super().__init__()
        self.payload = RobustBaseline()
        self.output_tokens = RobustBaseline()
        self.confidence = float("nan")  # EWMA of the caller's top-class confidence
        self.entropy = float("nan")
        self.recent_inputs: np.ndarray | None = None  # (RECENT_INPUTS, dim) ring, z-scaled
        self.recent_pos = 0

    def to_state(self) -> dict[str, Any]:
        ring = None if self.recent_inputs is None else self.recent_inputs.tolist()
        extra = {
            "payload": self.payload.to_list(),
            "output_tokens": self.output_tokens.to_list(),
            "signals": [self.confidence, self.entropy],
            "recent": [ring, self.recent_pos],
        }
        return {**self.common_state(), "inference": extra}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> InferenceProfile:
        profile = cls()
        profile.load_common(state)
        extra = state["inference"]
        profile.payload = RobustBaseline.from_list(extra["payload"])
        profile.output_tokens = RobustBaseline.from_list(extra["output_tokens"])
        profile.confidence, profile.entropy = (float(v) for v in extra["signals"])
        ring, pos = extra["recent"]
        profile.recent_inputs = None if ring is None else np.asarray(ring, dtype=np.float64)
        profile.recent_pos = int(pos)
        return profile
