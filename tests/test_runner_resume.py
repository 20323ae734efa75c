"""A runner checkpointed mid-stream (through the safe file format) and restored gives
exactly the scores and alerts of an uninterrupted run: the basis of crash recovery."""

from pathlib import Path

import numpy as np
import pytest
from factories import access_event, inference_event

from detector.modeldefs import ModelSpec
from detector.runner import ModelRunner
from detector.state.checkpoint import load_checkpoint, save_checkpoint

OWNER = {"model": "m", "topic": "t", "partition": "0"}


def spec(kind: str, max_learned_per_entity: int = 0) -> ModelSpec:
    return ModelSpec(
        name="m",
        kind=kind,
        topics=["t"],
        detector={"block_size": 64, "warmup_events": 128},
        # a generous budget: the short stream must alert with and without the cap
        alerts={"max_learned_per_entity": max_learned_per_entity, "budget_per_10k": 300},
    )


def stream(kind: str, n: int) -> list:
    make = access_event if kind == "access" else inference_event
    events = [make(i, entity=f"u{i % 17}") for i in range(n)]
    odd: dict = {"bytes_out": 5e9, "network": "185.220.101.0/24"}
    if kind == "inference":
        odd["input_vector"] = (9.0, -9.0, 9.0)
    for i in range(300, n, 97):  # something to alert on
        events[i] = make(i, entity=f"u{i % 17}", **odd)
    return events


@pytest.mark.parametrize("kind", ["access", "inference"])
@pytest.mark.parametrize("cut", [200, 333])  # at and between learning blocks
@pytest.mark.parametrize("cap", [0, 3])  # 17 entities, ~3.8 events each per block of 64
def test_resume_from_checkpoint_matches_uninterrupted_run(
    kind: str, cut: int, cap: int, tmp_path: Path
) -> None:
    events = stream(kind, 900)
    origins = [None] * len(events)
    reference = ModelRunner(spec(kind, cap)).process(events, origins, now=0.0)

    first = ModelRunner(spec(kind, cap))
    head = first.process(events[:cut], origins[:cut], now=0.0)
    save_checkpoint(tmp_path / "ck.npz", first.state_dict(), OWNER)
    resumed = ModelRunner(spec(kind, cap))
    resumed.load_state(load_checkpoint(tmp_path / "ck.npz", OWNER))
    tail = resumed.process(events[cut:], origins[cut:], now=0.0)

    assert np.array_equal(np.concatenate([head.severity, tail.severity]), reference.severity)
    ids = [a["event"]["id"] for a in head.alerts + tail.alerts]
    assert ids == [a["event"]["id"] for a in reference.alerts]
    assert reference.alerts, "the stream should raise alerts"
