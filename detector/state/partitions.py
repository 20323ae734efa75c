"""Checkpoints per topic-partition: every model's state plus the offset it reflects.

One file per partition (``<topic>~<partition>.npz``) so a partition can move to
another worker with its state. A checkpoint is written only for offsets whose
alerts and dead letters are durable (after delivery, before the offset commit),
and the first one before the partition's first commit, so a committed offset
always has a checkpoint at or behind it. On assignment the daemon restores it and
resumes reading at its offset: events after it are re-scored into the same
alerts (same ids) an uninterrupted run raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detector.config import StateSettings
from detector.errors import CheckpointError
from detector.metrics import Metrics
from detector.modeldefs import ModelSpec
from detector.pipeline import Pipeline
from detector.sources.base import TopicPartitionKey
from detector.state.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


def spec_fingerprint(spec: ModelSpec) -> str:
    """What shapes a model's state: a checkpoint of another shape must not load."""
    shaping = {
        "kind": spec.kind,
        "features": spec.feature_names,
        "detector": spec.detector.model_dump(mode="json"),
        "entities": spec.entities.model_dump(mode="json"),
        "calibration_window": spec.alerts.calibration_window,
    }
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()
    return f"{spec.name}@{spec.version}:{digest[:12]}"


class PartitionCheckpoints:
    """Restores partition state on assignment, saves it after commits and on revocation."""

    def __init__(
        self,
        pipeline: Pipeline,
        settings: StateSettings,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.durable: dict[TopicPartitionKey, int] = {}  # next offset; alerts before it written
        self.scored: dict[TopicPartitionKey, int] = {}  # next offset the runners have seen
        self._saved: set[TopicPartitionKey] = set()  # partitions with a checkpoint on disk
        self._last_save = clock()

    def path(self, tp: TopicPartitionKey) -> Path:
        return self.settings.dir / f"{tp[0]}~{tp[1]}.npz"

    def owner(self, tp: TopicPartitionKey) -> dict[str, str]:
        models = [spec_fingerprint(s) for s in self.pipeline.specs if tp[0] in s.topics] or [
            spec_fingerprint(s) for s in self.pipeline.specs
        ]
        return {"topic": tp[0], "partition": str(tp[1]), "models": ",".join(sorted(models))}

    # -- source hooks -------------------------------------------------------------------

    def on_assigned(self, partitions: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """Restore each partition's checkpoint; the offsets to resume from."""
        resume: dict[TopicPartitionKey, int] = {}
        for tp in partitions:
            self.pipeline.drop_partition(*tp)
            offset = self._restore(tp)
            if offset is not None:
                resume[tp] = offset
                self.durable[tp] = self.scored[tp] = offset
                self._saved.add(tp)
        return resume

    def on_revoked(self, partitions: list[TopicPartitionKey]) -> None:
        """Save what is durable, then forget the partitions (another worker takes them)."""
        for tp in partitions:
            if self._consistent(tp):
                self._save(tp)
            self.pipeline.drop_partition(*tp)
            self.durable.pop(tp, None)
            self.scored.pop(tp, None)
            self._saved.discard(tp)

    # -- daemon hooks -------------------------------------------------------------------

    def scored_up_to(self, offsets: dict[TopicPartitionKey, int]) -> None:
        self.scored.update(offsets)

    def delivered_up_to(self, offsets: dict[TopicPartitionKey, int]) -> None:
        """After the alerts are durable, before the commit: checkpoint a partition the
        first time (so no commit exists without a checkpoint), then every interval."""
        self.durable.update(offsets)
        for tp in sorted(offsets.keys() - self._saved):
            self._save(tp)
        if self.clock() - self._last_save >= self.settings.checkpoint_interval_s:
            self.save_all()

    def save_all(self) -> None:
        """Checkpoint every partition whose state matches its durable offset."""
        for tp in sorted(self.durable):
            if self._consistent(tp):
                self._save(tp)
        self._last_save = self.clock()

    # -- internals ----------------------------------------------------------------------

    def _consistent(self, tp: TopicPartitionKey) -> bool:
        """True when the runners reflect exactly the durable offset (nothing in flight)."""
        return tp in self.durable and self.scored.get(tp) == self.durable[tp]

    def _save(self, tp: TopicPartitionKey) -> None:
        if not self.settings.enabled:
            return
        started = time.perf_counter()
        runners = self.pipeline.partition_runners(*tp)
        state: dict[str, Any] = {
            "offset": self.durable[tp],
            "models": {name: runner.state_dict() for name, runner in runners.items()},
        }
        save_checkpoint(self.path(tp), state, self.owner(tp))
        self._saved.add(tp)
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        self.metrics.checkpoint_offset.labels(tp[0], str(tp[1])).set(self.durable[tp])
        self.metrics.checkpoint_last_success.set_to_current_time()

    def _restore(self, tp: TopicPartitionKey) -> int | None:
        path = self.path(tp)
        if not self.settings.enabled:
            return None
        if not path.exists():
            log.info("%s[%d]: no checkpoint, starting from the committed offset", *tp)
            return None
        try:
            state = load_checkpoint(path, self.owner(tp))
            self.pipeline.restore_partition(tp[0], tp[1], state["models"])
        except (CheckpointError, KeyError, ValueError, TypeError) as exc:
            self._reject(tp, path, exc)
            return None
        offset = int(state["offset"])
        log.info("%s[%d]: restored checkpoint, resuming at offset %d", tp[0], tp[1], offset)
        return offset

    def _reject(self, tp: TopicPartitionKey, path: Path, exc: Exception) -> None:
        self.metrics.checkpoint_rejected.inc()
        self.pipeline.drop_partition(*tp)
        if self.settings.on_invalid != "fresh":
            raise CheckpointError(
                f"{exc}. Refusing to guess: move the file away, or run with --fresh-state"
                " (state.on_invalid = 'fresh') to start this partition with empty state"
            ) from exc
        aside = path.with_name(f"{path.name}.rejected-{int(time.time())}")
        path.replace(aside)
        log.error("%s; moved to %s, starting %s[%d] fresh", exc, aside, *tp)
        return None
