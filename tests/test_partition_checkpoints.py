"""Per-partition checkpoints: saved after delivery, restored on assignment, refused when
corrupt or foreign unless the operator asks to start fresh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.app import build_pipeline
from detector.config import Settings, StateSettings
from detector.errors import CheckpointError
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec, load_models
from detector.pipeline import Pipeline, RawMessage
from detector.sources.base import next_offsets
from detector.state.partitions import PartitionCheckpoints
from detector.synth import generate

REPO = Path(__file__).resolve().parents[1]
TP = ("ecs", 0)


def ecs_messages(n: int) -> list[RawMessage]:
    values = [m.value for m in generate(seed=3, days=1.0, events_per_day=n, formats=("ecs",))]
    return [RawMessage("ecs", 0, i, v) for i, v in enumerate(values[:n])]


def make(tmp_path: Path, specs: list[ModelSpec] | None = None, **state: object):
    settings = Settings(state=StateSettings(dir=tmp_path, **state))  # type: ignore[arg-type]
    metrics = Metrics()
    pipeline = build_pipeline(settings, specs or load_models(REPO / "models"), metrics)
    return pipeline, PartitionCheckpoints(pipeline, settings.state, metrics), metrics


def feed(pipeline: Pipeline, cp: PartitionCheckpoints, batch: list[RawMessage]) -> np.ndarray:
    """What the daemon does per batch: score, (deliver), then report the durable offsets."""
    result = pipeline.process(batch)
    offsets = next_offsets(batch)
    cp.scored_up_to(offsets)
    cp.delivered_up_to(offsets)
    return np.array([s for _, _, s in result.scores])


def test_restored_partition_scores_like_the_uninterrupted_one(tmp_path: Path) -> None:
    msgs = ecs_messages(1_500)
    ref_pipeline, ref_cp, _ = make(tmp_path / "ref")
    ref_cp.on_assigned([TP])
    reference = np.concatenate([feed(ref_pipeline, ref_cp, msgs[i : i + 250]) for i in (0, 250)])
    reference = np.concatenate([reference, feed(ref_pipeline, ref_cp, msgs[500:])])

    pipeline, cp, _ = make(tmp_path / "run", checkpoint_interval_s=1e9)
    assert cp.on_assigned([TP]) == {}  # nothing on disk: the committed offset applies
    head = feed(pipeline, cp, msgs[:250])  # first delivery always checkpoints
    feed(pipeline, cp, msgs[250:500])  # within the interval: not saved
    # a crash here: the new process resumes from the first checkpoint and re-scores
    pipeline2, cp2, _ = make(tmp_path / "run")
    assert cp2.on_assigned([TP]) == {TP: 250}
    tail = feed(pipeline2, cp2, msgs[250:])
    assert np.array_equal(np.concatenate([head, tail]), reference)


def test_corrupt_checkpoint_is_refused_with_the_way_out(tmp_path: Path) -> None:
    pipeline, cp, _ = make(tmp_path)
    cp.on_assigned([TP])
    feed(pipeline, cp, ecs_messages(300))
    path = cp.path(TP)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    _, fresh_cp, _ = make(tmp_path)
    with pytest.raises(CheckpointError, match="--fresh-state"):
        fresh_cp.on_assigned([TP])
    assert path.exists()  # refused, left in place for the operator


def test_fresh_state_moves_a_bad_checkpoint_aside_and_counts_it(tmp_path: Path) -> None:
    pipeline, cp, _ = make(tmp_path)
    cp.on_assigned([TP])
    feed(pipeline, cp, ecs_messages(300))
    cp.path(TP).write_bytes(b"not a zip file")

    pipeline2, cp2, metrics = make(tmp_path, on_invalid="fresh")
    assert cp2.on_assigned([TP]) == {}
    assert not cp2.path(TP).exists()
    assert len(list(tmp_path.glob("ecs~0.npz.rejected-*"))) == 1
    assert pipeline2.partition_runners(*TP) == {}
    assert metrics.registry.get_sample_value("auditwatch_checkpoints_rejected_total") == 1


def test_checkpoint_of_a_differently_shaped_model_is_foreign(tmp_path: Path) -> None:
    specs = load_models(REPO / "models")
    pipeline, cp, _ = make(tmp_path, specs)
    cp.on_assigned([TP])
    feed(pipeline, cp, ecs_messages(300))
    changed = [
        s.model_copy(update={"detector": s.detector.model_copy(update={"seed": 99})})
        if s.name == "ecs-access"
        else s
        for s in specs
    ]
    _, cp2, _ = make(tmp_path, changed)
    with pytest.raises(CheckpointError, match="belongs to"):
        cp2.on_assigned([TP])


def test_revocation_saves_only_state_whose_alerts_are_durable(tmp_path: Path) -> None:
    pipeline, cp, _ = make(tmp_path, checkpoint_interval_s=1e9)
    cp.on_assigned([TP])
    msgs = ecs_messages(600)
    feed(pipeline, cp, msgs[:200])
    pipeline.process(msgs[200:400])  # scored, delivery still being retried when revoked
    cp.scored_up_to(next_offsets(msgs[200:400]))
    cp.on_revoked([TP])
    assert pipeline.partition_runners(*TP) == {}

    _, cp2, _ = make(tmp_path)
    assert cp2.on_assigned([TP]) == {TP: 200}  # not 400: those alerts were never written
