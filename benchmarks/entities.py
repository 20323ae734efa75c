"""Section e: cost per event and memory of the access model as distinct entities grow.

Each scale runs in a fresh process (``python -m benchmarks.entities E N BASE``) so its
RSS is not polluted by other sections: generated CloudTrail events are parsed once,
then replayed N times in order (later rounds shifted in time) with the entity of each
event drawn uniformly from E names. The CloudTrail ``ModelRunner`` (featurizer +
online forest + calibration + alerts) processes them in Kafka-sized batches.
Memory = VmRSS after - VmRSS before building the runner (JIT warmed up before).
"""

from __future__ import annotations

import dataclasses
import gc
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.sections import Section, num

REPO = Path(__file__).resolve().parents[1]
BATCH = 2_000
SEED = 5


def replayed_events(n_entities: int, n_events: int, base: int) -> list[Any]:
    """``n_events`` parsed CloudTrail events over ``n_entities`` names, each name used at
    least once (``n_events >= n_entities``), the rest drawn uniformly, in random order."""
    from benchmarks.generated import parse_all
    from benchmarks.pipeline_bench import cloudtrail_lines
    from detector.synth import Message

    lines = cloudtrail_lines(base)
    events, _labels = parse_all([Message("cloudtrail", b"", v, 0.0, None, "") for v in lines])
    span = events[-1].timestamp - events[0].timestamp + 1.0
    rng = np.random.default_rng(SEED)
    extra = rng.integers(n_entities, size=max(n_events - n_entities, 0))
    ids = rng.permutation(np.concatenate([np.arange(n_entities), extra]))
    out = []
    for i, ent in enumerate(ids.tolist()):
        ev = events[i % len(events)]
        shift = (i // len(events)) * span
        out.append(dataclasses.replace(ev, timestamp=ev.timestamp + shift, entity=f"e{ent:07d}"))
    return out


def run_scale(n_entities: int, n_events: int, base: int) -> dict[str, float]:
    """One scale, in this process: seconds, features seconds, RSS delta, entities."""
    from benchmarks.generated import model_for
    from benchmarks.measure import reset_rss_peak, rss_kib, rss_peak_kib
    from detector.runner import ModelRunner

    events = replayed_events(n_entities, n_events, base)
    spec = model_for("cloudtrail")
    ModelRunner(spec).process(events[:BATCH], [None] * BATCH)  # JIT/caches before baseline
    gc.collect()
    before = reset_rss_peak()
    runner = ModelRunner(spec)
    featurize, feat_s = runner.featurizer.featurize, [0.0]

    def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return featurize(*args)
        finally:
            feat_s[0] += time.perf_counter() - t0

    runner.featurizer.featurize = timed
    alerts = 0
    started = time.perf_counter()
    for lo in range(0, len(events), BATCH):
        batch = events[lo : lo + BATCH]
        alerts += len(runner.process(batch, [None] * len(batch)).alerts)
    seconds = time.perf_counter() - started
    return {
        "events": len(events),
        "seconds": seconds,
        "features_s": feat_s[0],
        "rss_mib": (rss_kib() - before) / 1024,
        "rss_peak_mib": (rss_peak_kib() - before) / 1024,
        "state_mib": runner.featurizer.table_bytes() / 2**20,
        "tracked": runner.entities_tracked(),
        "evicted": runner.featurizer.evicted,
        "alerts": alerts,
    }


COLUMNS = (
    "entities",
    "events",
    "tracked",
    "µs/event (all)",
    "µs/event (features)",
    "RSS Δ MiB",
    "peak RSS Δ MiB",
    "tables MiB",
    "evicted",
    "alerts",
)


def measure(
    section: Section, scales: list[int], n_events: int, base: int, per_entity: int = 2
) -> None:
    section.intro.append(
        f"CloudTrail access model (shipped `models/cloudtrail.toml`), {base:,} generated "
        "records replayed in order, each event's entity one of E names (every name used, the "
        "rest drawn uniformly); each scale in a fresh process."
    )
    for n_entities in scales:
        events = max(n_events, per_entity * n_entities)  # every entity is seen at least once
        argv = [sys.executable, "-m", "benchmarks.entities", str(n_entities), str(events)]
        try:
            done = subprocess.run(
                [*argv, str(base)], cwd=REPO, capture_output=True, check=True, timeout=1800
            )
            r = orjson.loads(done.stdout.splitlines()[-1])
        except Exception as exc:  # one scale failing keeps the others
            detail = getattr(exc, "stderr", b"") or b""
            section.unavailable(f"{n_entities:,}", RuntimeError(f"{exc} {detail[-300:]!r}"))
            continue
        section.add_row(
            f"{n_entities:,}",
            f"{r['events']:,}",
            f"{r['tracked']:,}",
            num(r["seconds"] / r["events"] * 1e6, 1),
            num(r["features_s"] / r["events"] * 1e6, 1),
            num(r["rss_mib"], 1),
            num(r["rss_peak_mib"], 1),
            num(r["state_mib"], 1),
            f"{r['evicted']:,}",
            f"{r['alerts']:,}",
        )
    section.notes.append(
        "- µs/event (all) = `ModelRunner.process` (features + detector + calibration + alert "
        "documents) wall time / events; features = the featurizer's share. RSS Δ = VmRSS "
        "after - before building the runner, in a fresh process after a warm-up run (so "
        "numba's compiled code is not counted); peak = VmHWM (reset via clear_refs) - before. "
        "RSS Δ is low when the runner reuses heap that parsing the events freed. tables = "
        "the featurizer's numpy tables at their capacity (entity rows grow by doubling, peer "
        "rows, sketches): the memory the model holds whatever the allocator reuses; the "
        "slot dict of entity keys comes on top (about 80 bytes plus the key per entity)."
    )


if __name__ == "__main__":
    result = run_scale(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print(orjson.dumps(result).decode())
