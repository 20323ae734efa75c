"""Detector names -> classes, construction from settings, and rebuild from checkpoints."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from detector.errors import CheckpointError, ConfigError
from detector.scoring.base import Detector, State
from detector.scoring.half_space_trees import HalfSpaceTreesDetector
from detector.scoring.online_iforest import OnlineIsolationForest
from detector.scoring.sliding_iforest import SlidingIForest

DETECTORS: dict[str, type[Detector]] = {
    "online_iforest": OnlineIsolationForest,
    "half_space_trees": HalfSpaceTreesDetector,
    "sliding_iforest": SlidingIForest,
}
_RESERVED = ("self", "n_features", "seed")


def detector_params(algorithm: str) -> dict[str, Any]:
    """Tunable constructor parameters of ``algorithm`` and their defaults.

    >>> detector_params("sliding_iforest")["refit_every"]
    1024
    """
    cls = _lookup(algorithm)
    sig = inspect.signature(cls.__init__)
    return {k: p.default for k, p in sig.parameters.items() if k not in _RESERVED}


def make_detector(algorithm: str, n_features: int, params: dict[str, Any], seed: int) -> Detector:
    """Build a detector; ConfigError names an unknown algorithm, parameter or bad value."""
    allowed = detector_params(algorithm)
    for key, value in params.items():
        if key not in allowed:
            raise ConfigError(
                f"detector.params.{key}: not a parameter of {algorithm} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
        default = allowed[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"detector.params.{key}: expected true or false, got {value!r}")
        elif isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"detector.params.{key}: expected an integer, got {value!r}")
    try:
        return DETECTORS[algorithm](n_features, seed=seed, **params)
    except ValueError as exc:
        raise ConfigError(f"detector.params for {algorithm}: {exc}") from None


def detector_from_state(state: State) -> Detector:
    """Rebuild any detector from its ``state_dict()`` (which names its algorithm)."""
    name = state.get("algorithm") if isinstance(state, dict) else None
    if isinstance(name, np.ndarray) and name.ndim == 0:  # scalars come back 0-d from np.load
        name = name.item()
    if not isinstance(name, str) or name not in DETECTORS:
        raise CheckpointError(f"unknown detector algorithm in checkpoint: {name!r}")
    return DETECTORS[name].from_state(state)


def _lookup(algorithm: str) -> type[Detector]:
    if algorithm not in DETECTORS:
        raise ConfigError(
            f"detector.algorithm: unknown {algorithm!r} (known: {', '.join(sorted(DETECTORS))})"
        )
    return DETECTORS[algorithm]
