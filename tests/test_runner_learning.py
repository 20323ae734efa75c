"""What the runner learns from: the per-entity cap keeps one entity's burst from
becoming the model's idea of normal."""

import numpy as np
from factories import access_event
from sklearn.metrics import roc_auc_score

from detector.modeldefs import ModelSpec
from detector.runner import ModelRunner, limit_per_entity

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
