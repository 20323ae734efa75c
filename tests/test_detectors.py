"""Contract suite run against every detector in the registry."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from detector.errors import CheckpointError, ConfigError
from detector.scoring.base import Detector
from detector.scoring.online_iforest import OnlineIsolationForest
from detector.scoring.registry import DETECTORS, detector_from_state, make_detector
from detector.state.checkpoint import load_checkpoint, save_checkpoint

N_FEATURES = 4
BLOCK = 200
# Small but real settings, so the whole suite stays fast.
PARAMS: dict[str, dict[str, int]] = {
    "online_iforest": {"n_trees": 16, "window_size": 1024},
    "half_space_trees": {"n_trees": 8, "height": 6, "window_size": 200},
    "sliding_iforest": {"n_estimators": 25, "window_size": 1000, "refit_every": 400},
}
ALGORITHMS = sorted(DETECTORS)


def stream(n: int = 3000, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Correlated Gaussian rows with 2 % outliers scattered far from the bulk."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(N_FEATURES, N_FEATURES))
    X = rng.normal(size=(n, N_FEATURES)) @ mix
    y = np.zeros(n, dtype=int)
    bad = rng.choice(np.arange(600, n), size=n // 50, replace=False)
    X[bad] = rng.uniform(-12, 12, size=(bad.size, N_FEATURES))
    y[bad] = 1
    return X, y


def prequential(det: Detector, X: np.ndarray) -> np.ndarray:
    """Score each block, then learn it."""
    scores = np.empty(len(X))
    for i in range(0, len(X), BLOCK):
        scores[i : i + BLOCK] = det.score(X[i : i + BLOCK])
        det.learn(X[i : i + BLOCK])
    return scores


def build(algorithm: str, seed: int = 3) -> Detector:
    return make_detector(algorithm, N_FEATURES, dict(PARAMS[algorithm]), seed)


def through_npz(state: dict) -> dict:
    buf = io.BytesIO()
    np.savez(buf, **state)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_same_seed_same_scores(algorithm: str) -> None:
    X, _ = stream(1600)
    a, b = prequential(build(algorithm), X), prequential(build(algorithm), X)
    np.testing.assert_array_equal(a, b)
    assert np.unique(a[600:]).size > 10  # scores carry information after warm-up


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("via_npz", [False, True])
def test_state_round_trip_gives_identical_scores(algorithm: str, via_npz: bool) -> None:
    X, _ = stream(2200)
    det = build(algorithm)
    prequential(det, X[:1400])
    state = det.state_dict()
    for key, value in state.items():
        assert isinstance(value, np.ndarray | int | float | str | bool), key
        assert not isinstance(value, np.ndarray) or value.dtype != object, key
    restored = detector_from_state(through_npz(state) if via_npz else state)
    assert type(restored) is type(det)
    np.testing.assert_array_equal(prequential(restored, X[1400:]), prequential(det, X[1400:]))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_feature_width_raises(algorithm: str) -> None:
    det = build(algorithm)
    det.learn(stream(1000)[0][:300])
    with pytest.raises(ValueError, match="expected shape"):
        det.score(np.zeros((3, N_FEATURES + 1)))
    with pytest.raises(ValueError, match="expected shape"):
        det.learn(np.zeros((3, N_FEATURES - 1)))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_better_than_random_on_synthetic_stream(algorithm: str) -> None:
    X, y = stream()
    scores = prequential(build(algorithm), X)
    auc = roc_auc_score(y[600:], scores[600:])
    assert auc > 0.8, auc


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_obvious_outlier_scores_higher(algorithm: str) -> None:
    X, _ = stream(2000)
    det = build(algorithm)
    prequential(det, X)
    centre, far = np.zeros((1, N_FEATURES)), np.full((1, N_FEATURES), 40.0)
    assert det.score_one(far[0]) > det.score_one(centre[0])
    assert det.score(far).dtype == np.float64 and det.score(centre).shape == (1,)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_corrupt_state_raises_checkpoint_error(algorithm: str) -> None:
    det = build(algorithm)
    prequential(det, stream(1200)[0])
    state = det.state_dict()
    key = next(k for k, v in state.items() if isinstance(v, np.ndarray) and v.ndim == 2)
    with pytest.raises(CheckpointError):
        detector_from_state({**state, key: state[key][:, :-1]})
    with pytest.raises(CheckpointError):
        detector_from_state({**state, "version": 99})
    with pytest.raises(CheckpointError, match="unknown detector"):
        detector_from_state({**state, "algorithm": "nope"})


@pytest.mark.parametrize("algorithm", ["online_iforest", "half_space_trees"])
def test_missing_values_give_finite_scores(algorithm: str) -> None:
    X, _ = stream(1600)
    X[::5, 1] = np.nan
    scores = prequential(build(algorithm), X)
    assert np.isfinite(scores).all()
    assert np.unique(scores[800:]).size > 10


def test_make_detector_validates_config() -> None:
    with pytest.raises(ConfigError, match="unknown 'isolation'"):
        make_detector("isolation", 3, {}, 0)
    with pytest.raises(ConfigError, match="n_tree"):
        make_detector("online_iforest", 3, {"n_tree": 8}, 0)
    with pytest.raises(ConfigError, match="window_size: expected an integer"):
        make_detector("online_iforest", 3, {"window_size": "big"}, 0)
    with pytest.raises(ConfigError, match="must be >= 1"):
        make_detector("sliding_iforest", 3, {"refit_every": 0}, 0)
    det = make_detector("online_iforest", 3, {"n_trees": 5}, 11)
    assert isinstance(det, OnlineIsolationForest) and det.n_trees == 5 and det.seed == 11


def test_online_iforest_forgets_beyond_window() -> None:
    """Counts track exactly the window rows; the old region empties after drift."""
    det = OnlineIsolationForest(2, seed=1, n_trees=4, window_size=500, max_leaf_samples=8)
    rng = np.random.default_rng(0)
    det.learn(rng.normal(size=(800, 2)))
    assert det.size == 500
    old_centre = np.zeros((1, 2))
    before = det.score(old_centre)[0]
    for _ in range(6):
        det.learn(rng.normal(loc=50.0, size=(97, 2)))  # drift: the old region empties out
        assert_window_invariants(det)
    assert det.score(old_centre)[0] > before
    assert det.score(np.full((1, 2), 50.0))[0] < det.score(old_centre)[0]


def test_online_iforest_does_not_learn_a_burst_of_anomalies() -> None:
    """A dense burst beyond the normal data is refused by the learning gate, so it keeps
    scoring as anomalous; with the gate off it is learned as normal within the burst."""
    rng = np.random.default_rng(5)
    normal = rng.normal(size=(6000, 3))
    burst = normal[4000:].copy()
    burst[::3] = rng.normal(loc=12.0, scale=0.1, size=(len(burst[::3]), 3))  # a third: attack
    X = np.vstack([normal[:4000], burst])
    late_attack = np.full((1, 3), 12.0)
    scores = {}
    for gate in (0.75, 0.0):
        det = OnlineIsolationForest(3, seed=2, n_trees=16, window_size=4096, learn_gate=gate)
        prequential(det, X)
        assert_window_invariants(det)
        scores[gate] = (det.score(late_attack)[0], det.score(np.zeros((1, 3)))[0], det.gated)
    gated_attack, gated_centre, refused = scores[0.75]
    open_attack = scores[0.0][0]
    assert refused >= 600  # most of the ~667 attack rows were not learned
    assert gated_attack > 1.0 > 0.5 > gated_centre  # still beyond everything learned
    assert open_attack < 0.6  # learned as normal without the gate


def assert_window_invariants(det: OnlineIsolationForest) -> None:
    """Every window row sits in the leaf it routes to; counts are exact window counts."""
    rows = det.window[det._slots()]
    for t in range(det.n_trees):
        node = np.zeros(len(rows), np.int64)
        for _ in range(det.feature.shape[1]):
            f = det.feature[t, node]
            go = np.where(f >= 0, rows[np.arange(len(rows)), np.maximum(f, 0)], 0.0)
            node = np.where(f >= 0, 2 * node + 1 + (go >= det.threshold[t, node]), node)
        np.testing.assert_array_equal(node, det.member[t, det._slots()])
        leaves = det.feature[t] < 0
        counts = np.bincount(node, minlength=det.feature.shape[1])
        np.testing.assert_array_equal(det.count[t, leaves], counts[leaves])
        inner = np.flatnonzero(~leaves)
        kids = det.count[t, 2 * inner + 1] + det.count[t, 2 * inner + 2]
        np.testing.assert_array_equal(det.count[t, inner], kids)
    np.testing.assert_array_equal(det.count[:, 0], det.size)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_learning_from_the_score_memo_equals_learning_afresh(algorithm: str) -> None:
    """The runner learns a block's normal rows with the work its scoring already did;
    that must change nothing, also for a subset of the scored rows."""
    X, _ = stream(2400)
    fresh, reused = build(algorithm), build(algorithm)
    for i in range(0, len(X), BLOCK):
        block = X[i : i + BLOCK]
        scores, memo = reused.score_memo(block)
        np.testing.assert_array_equal(scores, fresh.score(block))
        rank = np.argsort(np.argsort(-scores, kind="stable"), kind="stable")
        keep = rank >= BLOCK // 10  # the runner drops the suspicious rows: here the top 10 %
        fresh.learn(block[keep])
        reused.learn_memo(block[keep], None if memo is None else memo[keep])
    np.testing.assert_array_equal(reused.score(X), fresh.score(X))
    assert np.unique(fresh.score(X)).size > 100  # it did learn
    if algorithm == "online_iforest":
        assert memo is not None and memo.shape == (BLOCK, PARAMS[algorithm]["n_trees"] + 1)


def test_online_iforest_redraws_dead_splits() -> None:
    """A range the window no longer holds (a wide start, then a narrow regime) leaves
    splits with an empty side; with ``redraw_dead_splits`` none survive forgetting."""
    rng = np.random.default_rng(0)
    wide, narrow = rng.uniform(0, 100, (2048, 3)), rng.uniform(0, 1, (8192, 3))

    def dead_splits(det: OnlineIsolationForest) -> int:
        half = det.feature.shape[1] // 2
        split = det.feature[:, :half] >= 0
        left, right = det.count[:, 1 : 2 * half : 2], det.count[:, 2 : 2 * half + 1 : 2]
        return int((split & ((left == 0) | (right == 0))).sum())

    counts = {}
    for redraw in (False, True):
        det = OnlineIsolationForest(3, seed=1, window_size=1024, redraw_dead_splits=redraw)
        for X in (wide, narrow):
            for i in range(0, len(X), 256):
                det.learn(X[i : i + 256])
        counts[redraw] = dead_splits(det)
    assert counts[False] > 0 and counts[True] == 0


def test_make_detector_checks_boolean_params(tmp_path: Path) -> None:
    det = make_detector("online_iforest", 3, {"redraw_dead_splits": True}, 0)
    assert det.redraw_dead_splits is True
    save_checkpoint(tmp_path / "c.npz", {"detector": det.state_dict()}, {"model": "m"})
    state = load_checkpoint(tmp_path / "c.npz", {"model": "m"})["detector"]
    assert detector_from_state(state).redraw_dead_splits is True
    with pytest.raises(ConfigError):
        make_detector("online_iforest", 3, {"redraw_dead_splits": 1}, 0)


def test_river_and_sklearn_are_imported_only_by_the_detectors_that_use_them() -> None:
    """Each costs about a second to import; the shipped models use neither, so the
    daemon and `auditwatch score` must not pay for them at start-up."""
    code = (
        "import sys, detector.daemon, detector.offline, detector.scoring.registry as r\n"
        "import numpy as np\n"
        "assert not {'river', 'sklearn'} & set(sys.modules), 'imported at start-up'\n"
        "r.make_detector('sliding_iforest', 2, {}, 0).learn(np.zeros((2048, 2)))\n"
        "assert 'sklearn' in sys.modules and 'river' not in sys.modules\n"
        "r.make_detector('half_space_trees', 2, {}, 0)\n"
        "assert 'river' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
