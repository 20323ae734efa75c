"""ML-inference traffic in auditwatch's inference-event format (docs/input-formats.md).

Natural inputs come from a few Gaussian clusters per model (real data is
clumpy); the model is confident on them. Attack scenarios draw inputs
elsewhere (uniform over the input box, near-duplicates) via the same builder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.synth.access import iso_millis
from detector.synth.population import Entity

INPUT_BOX = 4.0  # natural cluster centres lie in [-3, 3]; the "input space" is [-4, 4]^d


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A served model. ``dim`` 0 means a text model (tokens, no input vector)."""

    name: str
    version: str
    dim: int
    n_classes: int
    latency_ms: float  # median
    centres: np.ndarray  # (k, dim) natural-data cluster centres
    spread: float = 0.45


def build_models(seed: int) -> dict[str, ModelSpec]:
    """The served models, with seeded cluster centres."""
    rng = np.random.default_rng([seed, 7])
    shapes = (
        ("fraud-scorer", "3", 16, 2, 12.0),
        ("churn-predictor", "7", 12, 2, 8.0),
        ("image-tagger", "12", 32, 50, 45.0),
        ("support-chat", "2024-10", 0, 1, 850.0),
    )
    return {
        name: ModelSpec(name, version, dim, classes, lat, rng.uniform(-3, 3, size=(6, dim)))
        for name, version, dim, classes, lat in shapes
    }


def entropy_of(confidence: float, n_classes: int) -> float:
    """Entropy (nats) when the rest of the mass is spread evenly over the other classes.

    >>> round(entropy_of(0.5, 2), 4)
    0.6931
    """
    if n_classes < 2 or confidence >= 1.0:
        return 0.0
    rest = 1.0 - confidence
    return -confidence * math.log(confidence) - rest * math.log(rest / (n_classes - 1))


def inference_record(
    ent: Entity,
    model: ModelSpec,
    ts: float,
    event_id: str,
    ip: str,
    agent: str,
    *,
    vector: np.ndarray | None,
    confidence: float,
    latency_ms: float,
    tokens: tuple[int, int] = (0, 0),
    failed: bool = False,
) -> dict[str, Any]:
    """One inference event; ``vector`` is None for text models (tokens given instead).

    ``vector`` is written as given: round it first (3 decimals keeps messages short).
    """
    rec: dict[str, Any] = {
        "@timestamp": iso_millis(ts),
        "event": {
            "id": event_id,
            "outcome": "failure" if failed else "success",
            "duration": int(latency_ms * 1e6),
        },
        "gen_ai": {"request": {"model": model.name}},
        "user": {"id": ent.user_id},
        "source": {"ip": ip},
        "user_agent": {"original": agent},
        "auditwatch": {"inference": _details(ent, model, vector, confidence, tokens)},
    }
    if model.dim == 0:  # text model: token usage instead of a class distribution
        rec["gen_ai"]["usage"] = {"input_tokens": tokens[0], "output_tokens": tokens[1]}
    return rec


def _details(
    ent: Entity,
    model: ModelSpec,
    vector: np.ndarray | None,
    confidence: float,
    tokens: tuple[int, int],
) -> dict[str, Any]:
    """The ``auditwatch.inference`` object: key, version, input and output summaries."""
    out: dict[str, Any] = {"api_key_id": ent.key, "model_version": model.version}
    if vector is not None:
        out["input"] = {"vector": vector, "size_bytes": 64 + 4 * model.dim}
    else:
        out["input"] = {"size_bytes": 4 * tokens[0] + 40}
    if model.dim:
        out["output"] = {
            "confidence": round(confidence, 4),
            "entropy": round(entropy_of(confidence, model.n_classes), 4),
        }
    return out
