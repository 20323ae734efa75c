"""Small streaming statistics used by entity and population state.

All are O(1) per update, deterministic, and serialise to plain lists.
"""

from __future__ import annotations

import math
import zlib
from array import array

HOURS_PER_WEEK = 168


_KIND_SEEDS: dict[str, int] = {}


def stable_hash(kind: str, value: str) -> int:
    """A process-independent 32-bit hash (Python's ``hash`` is salted per process).

    Never 0, which callers use for "not reported".
    """
    seed = _KIND_SEEDS.get(kind)
    if seed is None:
        seed = _KIND_SEEDS[kind] = zlib.crc32(kind.encode())
    return zlib.crc32(value.encode("utf-8", "surrogatepass"), seed) or 1


def decay(value: float, dt: float, tau: float) -> float:
    """Exponential decay of a counter over ``dt`` seconds with time constant ``tau``.

    >>> round(decay(10.0, 300.0, 300.0), 3)
    3.679
    """
    return value * math.exp(-dt / tau) if dt > 0 else value


class RobustBaseline:
    """Median, spread and p99 of a log-scaled quantity, tracked without storing samples.

    The first ``WARMUP`` samples use running mean/max; after that, frugal
    stochastic quantile tracking (steps proportional to the spread) so a single
    huge value moves the baseline by one step only.

    >>> b = RobustBaseline()
    >>> for v in [100.0] * 50: b.update(v)
    >>> round(b.median_value()), b.z(100.0) == 0.0, b.z(1e6) > 10
    (100, True, True)
    """

    __slots__ = ("dev", "med", "n", "p99")
    WARMUP = 16
    MIN_SPREAD = 0.25  # log units: ~28 %; stops z blowing up for constant baselines

    def __init__(self, med: float = 0.0, dev: float = 0.0, p99: float = 0.0, n: int = 0) -> None:
        self.med, self.dev, self.p99, self.n = med, dev, p99, n

    def update(self, value: float) -> None:
        x = math.log1p(value)
        n = self.n = self.n + 1
        if n <= self.WARMUP:
            self.med += (x - self.med) / n
            self.dev += (abs(x - self.med) - self.dev) / n
            self.p99 = max(self.p99, x) if n > 1 else x
            return
        step = 0.1 * max(self.dev, 0.05)
        self.med += step if x > self.med else -step if x < self.med else 0.0
        self.dev += 0.05 * (abs(x - self.med) - self.dev)
        self.p99 += step * 0.99 * 2 if x > self.p99 else -step * 0.01 * 2

    def z(self, value: float) -> float:
        """Robust z-score of ``value`` against the baseline (0 when unknown)."""
        if self.n == 0:
            return 0.0
        spread = max(1.4826 * 1.25 * self.dev, self.MIN_SPREAD)
        return (math.log1p(value) - self.med) / spread

    def median_value(self) -> float:
        return math.expm1(self.med)

    def p99_value(self) -> float:
        return math.expm1(max(self.p99, self.med))

    def to_list(self) -> list[float]:
        return [self.med, self.dev, self.p99, self.n]

    @classmethod
    def from_list(cls, values: list[float]) -> RobustBaseline:
        med, dev, p99, n = values
        return cls(float(med), float(dev), float(p99), int(n))


def blend(entity_value: float, peer_value: float, weight: float) -> float:
    """Cold-start blend: ``weight`` (0..1) is how much the entity's own history counts."""
    return weight * entity_value + (1.0 - weight) * peer_value


class HourHabit:
    """Hour-of-week histogram of an entity's activity, halved when full (so habits can drift)."""

    __slots__ = ("by_hour", "counts", "total")
    CAP = 30_000

    def __init__(self, counts: array | None = None) -> None:
        self.counts = counts if counts is not None else array("H", bytes(2 * HOURS_PER_WEEK))
        self._derive()

    def _derive(self) -> None:
        self.total = sum(self.counts)
        self.by_hour = array("I", (sum(self.counts[h::24]) for h in range(24)))

    def add(self, hour_of_week: int) -> None:
        self.counts[hour_of_week] += 1
        self.by_hour[hour_of_week % 24] += 1
        self.total += 1
        if self.total >= self.CAP:
            self.counts = array("H", (c // 2 for c in self.counts))
            self._derive()

    def share(self, h: int) -> float:
        """Smoothed share of activity at hour-of-week ``h``: that hour, its neighbours,
        and (weakly) the same hour on other days; ~1/168 when nothing is known."""
        c = self.counts
        here = c[h]
        near = here + 0.5 * (c[h - 1] + c[(h + 1) % 168])
        other_days = self.by_hour[h % 24] - here
        return (near + other_days / 7.0 + 0.05) / (2.0 * self.total + 8.4)

    def usual_hours(self, mass: float = 0.9) -> tuple[int, int] | None:
        """Shortest circular span of hours of day holding ``mass`` of the activity."""
        if self.total < 10:
            return None
        by_hour = list(self.by_hour)
        need = mass * sum(by_hour)
        for width in range(1, 25):
            for start in range(24):
                if sum(by_hour[(start + i) % 24] for i in range(width)) >= need:
                    return start, (start + width) % 24
        return None


def rarity(count: float, total: float) -> float:
    """Surprise (nats) of a key seen ``count`` times out of ``total``.

    >>> rarity(0, 99) > rarity(50, 99)
    True
    """
    return -math.log((count + 1.0) / (total + 2.0))
