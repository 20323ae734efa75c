"""Raw detector scores -> severity 0-100, so one threshold means the same for every model.

Severity is ``20 * -log10(tail)`` where ``tail`` is the probability of a score at
least this high: 60 = 1-in-1,000, 80 = 1-in-10,000. The tail is the empirical
fraction of the last ``window`` raw scores at or above the score; beyond their
99th percentile ``u`` it is a peaks-over-threshold exponential fit (SPOT, Siffer
et al., KDD 2017): ``0.01 * exp(-(s - u) / beta)`` with ``beta`` the mean excess
over ``u``, so scores beyond anything seen still get tails below ``1 / window``.

The reference (a sorted copy of the window) is rebuilt when exactly
``min_samples`` scores have been seen and then every ``refresh_every`` scores,
counted one by one, so the state never depends on how ``update`` calls were chunked.
"""

from __future__ import annotations

import math

import numpy as np

from detector.errors import CheckpointError
from detector.scoring.base import State

VERSION = 1
TAIL_QUANTILE = 0.99
_MIN_BETA = 1e-12  # a constant stream has no excess; anything above it is then maximally rare


class Calibrator:
    """Sliding-window score calibration.

    >>> cal = Calibrator(window=1000, refresh_every=100, min_samples=100)
    >>> cal.ready
    False
    >>> cal.update(np.arange(1000) / 1000.0)
    >>> cal.ready
    True
    >>> [round(float(s), 1) for s in cal.severity(np.array([0.0, 0.9, 0.99]))]
    [0.0, 20.0, 40.0]
    >>> bool(cal.severity(np.array([5.0]))[0] == 100.0)  # far beyond the window
    True
    >>> Calibrator().threshold_for_budget(10)
    60.0
    """

    def __init__(self, window: int = 20_000, refresh_every: int = 1_000, min_samples: int = 500):
        if window < 1 or refresh_every < 1 or not 1 <= min_samples <= window:
            raise ValueError("need window >= 1, refresh_every >= 1, 1 <= min_samples <= window")
        self.window = window
        self.refresh_every = refresh_every
        self.min_samples = min_samples
        self.buffer = np.zeros(window)
        self.seen = 0  # scores ever passed to update()
        self.reference = np.zeros(0)  # sorted window at the last refresh
        self.u = math.inf  # tail threshold (99th percentile of the reference)
        self.beta = _MIN_BETA  # mean excess over u

    @property
    def ready(self) -> bool:
        """True once ``min_samples`` scores were seen (severity is 0 before)."""
        return self.seen >= self.min_samples

    @staticmethod
    def threshold_for_budget(alerts_per_10k: float) -> float:
        """Severity whose tail probability is ``alerts_per_10k / 10,000``."""
        if not 0 < alerts_per_10k <= 10_000:
            raise ValueError("alerts_per_10k must be in (0, 10000]")
        return float(min(100.0, 20.0 * -math.log10(alerts_per_10k / 10_000)))

    def severity(self, raw: np.ndarray) -> np.ndarray:
        """Severity 0-100 per raw score against the current reference; does not update."""
        raw = np.asarray(raw, dtype=np.float64)
        n = self.reference.size
        if n == 0:
            return np.zeros(raw.shape)
        tail = (n - np.searchsorted(self.reference, raw, side="left")) / n
        beyond = raw > self.u
        tail[beyond] = (1.0 - TAIL_QUANTILE) * np.exp(-(raw[beyond] - self.u) / self.beta)
        with np.errstate(divide="ignore"):
            sev = 20.0 * -np.log10(tail)
        return np.clip(np.nan_to_num(sev, nan=100.0, posinf=100.0), 0.0, 100.0) + 0.0  # no -0.0

    def update(self, raw: np.ndarray) -> None:
        """Add scores to the window; refresh the reference at the fixed counts."""
        raw = np.asarray(raw, dtype=np.float64).ravel()
        pos = 0
        while pos < raw.size:
            take = min(raw.size - pos, self._until_refresh())
            idx = (self.seen + np.arange(take)) % self.window
            self.buffer[idx] = raw[pos : pos + take]
            self.seen += take
            pos += take
            if self._until_refresh() == self.refresh_every or self.seen == self.min_samples:
                self._refresh()

    def _until_refresh(self) -> int:
        """Scores left before the next refresh point (min_samples, then multiples)."""
        if self.seen < self.min_samples:
            return self.min_samples - self.seen
        return self.refresh_every - (self.seen - self.min_samples) % self.refresh_every

    def _refresh(self) -> None:
        self._set_reference(np.sort(self.buffer[: min(self.seen, self.window)]))

    def _set_reference(self, ref: np.ndarray) -> None:
        self.reference = ref
        if ref.size == 0:
            self.u, self.beta = math.inf, _MIN_BETA
            return
        self.u = float(ref[min(ref.size - 1, int(TAIL_QUANTILE * ref.size))])
        excess = ref[ref > self.u] - self.u
        self.beta = max(float(excess.mean()) if excess.size else 0.0, _MIN_BETA)

    def state_dict(self) -> State:
        return {
            "version": VERSION,
            "window": self.window,
            "refresh_every": self.refresh_every,
            "min_samples": self.min_samples,
            "seen": self.seen,
            "buffer": self.buffer.copy(),
            "reference": self.reference.copy(),
        }

    @classmethod
    def from_state(cls, state: State) -> Calibrator:
        """Rebuild from ``state_dict()`` output; CheckpointError if it is malformed."""
        try:
            if int(state["version"]) != VERSION:
                raise CheckpointError(f"calibrator state v{state['version']}, expected v{VERSION}")
            cal = cls(int(state["window"]), int(state["refresh_every"]), int(state["min_samples"]))
            buffer = np.asarray(state["buffer"])
            reference = np.asarray(state["reference"])
            seen = int(state["seen"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid calibrator state: {exc!r}") from None
        if buffer.shape != (cal.window,) or buffer.dtype.kind != "f" or seen < 0:
            raise CheckpointError(f"invalid calibrator buffer {buffer.dtype}{buffer.shape}")
        if reference.ndim != 1 or reference.size > cal.window or reference.dtype.kind != "f":
            raise CheckpointError(
                f"invalid calibrator reference {reference.dtype}{reference.shape}"
            )
        cal.buffer, cal.seen = buffer.astype(np.float64), seen
        cal._set_reference(np.sort(reference.astype(np.float64)))
        return cal
