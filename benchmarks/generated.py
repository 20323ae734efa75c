"""auditwatch's own generated traffic (``detector.synth``), as its models see it.

The messages are parsed by the daemon's parser and turned into feature rows by the
model's own ``ModelRunner`` featurizer and feature columns, so a peer detector gets
exactly the rows auditwatch's detector scores. Labels are the injected attack events.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from detector.app import parse_options
from detector.config import Settings
from detector.events import Event
from detector.modeldefs import ModelSpec, load_models
from detector.parsers import parse_message
from detector.runner import ModelRunner, bursting_rows, stored_entity_key
from detector.synth import Message, generate

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
FULL_DAYS = 14.0  # the generator's default timeline: ~283k messages, attacks in the last 20 %
EVENTS_PER_DAY = 20_000
# Attacks add a fixed ~3,500 inference messages, so short streams would be mostly attack.
MIN_DAYS = 2.0
FEATURIZE_BATCH = 2_048
SMALLEST_TOPIC_SHARE = 0.26  # ECS; CloudTrail is 43 %, inference 31 % of the 14-day stream


def days_for(max_events: int | None) -> float:
    """Simulated days so that every topic holds at least ``max_events`` messages
    (one length for all topics, so the three streams share one generation).

    >>> days_for(None), days_for(2_000), days_for(20_000)
    (14.0, 2.0, 4.81)
    """
    if max_events is None:
        return FULL_DAYS
    days = 1.25 * max_events / (EVENTS_PER_DAY * SMALLEST_TOPIC_SHARE)
    return round(min(FULL_DAYS, max(MIN_DAYS, days)), 2)


@functools.lru_cache(maxsize=2)
def messages(days: float, seed: int = 0) -> tuple[Message, ...]:
    """The generated stream (all topics, time-ordered); cached, it takes seconds."""
    return tuple(generate(seed=seed, days=days, events_per_day=EVENTS_PER_DAY))


def model_for(topic: str) -> ModelSpec:
    """The shipped model that reads ``topic``."""
    specs = [s for s in load_models(MODELS_DIR) if topic in s.topics]
    if not specs:
        raise LookupError(f"no model in {MODELS_DIR} reads topic {topic!r}")
    return specs[0]


def parse_all(msgs: tuple[Message, ...] | list[Message]) -> tuple[list[Event], np.ndarray]:
    """Events in stream order and, per event, 1 if it belongs to an injected attack."""
    options = parse_options(Settings())
    events: list[Event] = []
    labels: list[int] = []
    for msg in msgs:
        parsed, _rejected = parse_message(msg.value, options)
        events.extend(parsed)
        labels.extend([int(msg.label is not None)] * len(parsed))
    return events, np.asarray(labels, dtype=np.int8)


def feature_matrix(spec: ModelSpec, events: list[Event]) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``spec``'s detector scores, featurized exactly as ``ModelRunner`` does, and
    which of them the runner counts as bursting (for ``alerts.max_learned_per_entity``)."""
    runner = ModelRunner(spec)
    parts, bursting = [], []
    for lo in range(0, len(events), FEATURIZE_BATCH):
        batch = events[lo : lo + FEATURIZE_BATCH]
        keys = [getattr(ev, spec.entity_key) or "(unknown)" for ev in batch]
        X_all, _contexts = runner.featurizer.featurize(batch, keys)
        parts.append(X_all[:, runner.columns])
        bursting.append(bursting_rows(X_all, spec.kind))
    if not parts:
        return np.empty((0, len(runner.columns))), np.zeros(0, dtype=bool)
    return np.concatenate(parts), np.concatenate(bursting)


def topic_matrix(
    topic: str, max_events: int | None, strided: bool = False, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray], str]:
    """(X, y, (entity codes, bursting), description) for one topic's model, capped to
    ``max_events`` rows: every k-th row with ``strided``, else the *last* rows (attacks
    are injected in the last 20 % of the timeline). Features are always computed over the
    whole generated stream.
    """
    days = days_for(max_events)
    spec = model_for(topic)
    events, y = parse_all([m for m in messages(days, seed) if m.topic == topic])
    X, bursting = feature_matrix(spec, events)
    entities = entity_codes(spec, events)
    total = len(events)
    kept = f"{total:,} events"
    if max_events is not None and max_events < total:
        step = total // max_events if strided else 1
        rows = slice(0, step * max_events, step) if strided else slice(total - max_events, total)
        X, y, entities, bursting = X[rows], y[rows], entities[rows], bursting[rows]
        kept = f"1 in {step} of {total:,} events" if strided else f"last {len(y):,} of {kept}"
    source = (
        f"detector.synth seed={seed}, {days:g} days x {EVENTS_PER_DAY:,}/day, topic {topic}, "
        f"model {spec.name} features ({len(spec.feature_names)}); {kept}, "
        f"{int(y.sum())} attack events"
    )
    return np.ascontiguousarray(X, dtype=np.float64), y, (entities, bursting), source


def entity_codes(spec: ModelSpec, events: list[Event]) -> np.ndarray:
    """Each event's entity (the runner's stored key) as an integer code."""
    keys = [stored_entity_key(getattr(ev, spec.entity_key)) for ev in events]
    _names, codes = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    return codes.astype(np.int64)
