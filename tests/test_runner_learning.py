"""What the runner learns and calibrates from: the per-entity cap keeps one entity's
burst from becoming the model's idea of normal, or the severity scale's."""

from pathlib import Path

import numpy as np
from factories import access_event
from sklearn.metrics import roc_auc_score

from detector.app import parse_options
from detector.config import Settings
from detector.modeldefs import ModelSpec, load_models
from detector.parsers import parse_message
from detector.runner import ModelRunner, limit_per_entity
from detector.synth import generate

MODELS = Path(__file__).resolve().parents[1] / "models"

LATE = slice(4_000, 4_400)


def test_limit_per_entity_stops_learning_a_bursting_entity_at_the_cap() -> None:
    keep = np.array([True, True, False, True, True, True, True, True])
    keys = ["a", "a", "a", "a", "b", "b", "b", "c"]
    bursting = np.array([True, True, True, True, True, False, True, False])
    learned = {"b": 1, "c": 5}  # rows learned earlier in this block
    limit_per_entity(keep, keys, bursting, learned, cap=2)
    # a: third row refused; b: a calm row is learned even past the cap, a bursting one not;
    # c: over the cap but not bursting, still learned
    assert keep.tolist() == [True, True, False, False, True, True, False, True]
    assert learned == {"a": 2, "b": 3, "c": 6}


def burst_auc(cap: int) -> float:
    """ROC AUC of a bulk export (one new entity, every 10th event from event 3,000) against
    the routine traffic of 300 users it runs among, over events 4,000-4,400: late in the
    export's first day, while its rate is still far above any baseline (after a day the
    export is its own baseline and no longer bursting). The severity gate is off
    (learn_below_severity 100), so only the cap refuses the export."""
    spec = ModelSpec(
        name="m",
        kind="access",
        topics=["t"],
        detector={"block_size": 64, "warmup_events": 256},
        alerts={"learn_below_severity": 100, "max_learned_per_entity": cap},
    )
    user = [f"u{(i * 7919) % 300}" for i in range(7_000)]
    events = [access_event(i, entity=user[i], user_name=user[i]) for i in range(3_000)]
    export = np.zeros(7_000, dtype=bool)
    export[3_000::10] = True
    for i in range(3_000, 7_000):
        who = "mallory" if export[i] else user[i]
        big = {"bytes_out": 5e9, "rows": 1e6} if export[i] else {}
        events.append(access_event(i, entity=who, user_name=who, **big))
    severity = ModelRunner(spec).process(events, [None] * len(events), now=0.0).severity
    return float(roc_auc_score(export[LATE], severity[LATE]))


def test_a_one_entity_burst_stays_anomalous_under_the_per_entity_cap() -> None:
    learned_freely, capped = burst_auc(0), burst_auc(2)
    assert capped > learned_freely + 0.1, (capped, learned_freely)


def extraction_alerted(calibrate_every_score: bool) -> list[float]:
    """Share of a generated model extraction's queries (2,587, about 5 minutes at ~9/s, on
    the third day of inference traffic) that the shipped inference model alerts on, per
    fifth of the attack. ``calibrate_every_score`` restores the runner as it was before
    the per-entity cap also applied to the calibrator."""
    msgs = generate(seed=5, days=3, formats=("inference",), attacks=["model_extraction"])
    options = parse_options(Settings())
    events, attack = [], []
    for msg in msgs:
        parsed, _rejected = parse_message(msg.value, options)
        events += parsed
        attack += [msg.label is not None] * len(parsed)
    spec = next(s for s in load_models(MODELS) if s.name == "inference")
    assert spec.alerts.max_learned_per_entity > 0
    runner = ModelRunner(spec)
    if calibrate_every_score:
        runner._for_calibration = lambda raw, who: raw.copy()  # type: ignore[method-assign]
    severity = np.concatenate(
        [
            runner.process(events[lo : lo + 2_000], [None] * 2_000, now=0.0).severity
            for lo in range(0, len(events), 2_000)
        ]
    )
    rows = np.flatnonzero(attack)
    assert len(rows) > 2_000
    return [float(np.mean(severity[part] >= runner.threshold)) for part in np.array_split(rows, 5)]


def test_a_long_extraction_keeps_alerting_when_its_burst_stays_out_of_the_calibrator() -> None:
    # Calibrated on every score, the attack becomes the severity scale's normal: it
    # alerts at first, then falls silent while the queries go on.
    assert extraction_alerted(calibrate_every_score=True)[-1] < 0.5
    assert min(extraction_alerted(calibrate_every_score=False)) > 0.9
