"""Smoke and contract tests for the detector benchmark harness (``python -m benchmarks``)."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from benchmarks.__main__ import main
from benchmarks.detectors_bench import (
    ALERT_BUDGET_PER_10K,
    BLOCK,
    Pass,
    capped_rows,
    evaluate,
    quality,
    recall_at_budget,
    run_block_pass,
    run_event_pass,
)
from benchmarks.generated import model_for
from benchmarks.peers import REGISTRY_PATH, Adapter, PeerSpec, RunningZ, select
from benchmarks.streams import STREAMS, Stream, StreamUnavailable, drifting_stream, load_odds
from detector.modeldefs import embedded_models

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def table_rows(markdown: str, stream: str) -> dict[str, list[str]]:
    """Results-table rows for ``stream``, keyed by detector name."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] == stream:
            rows[cells[1]] = cells
    return rows


def test_quick_run_writes_table_with_numeric_aucs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable() -> Stream:
        raise StreamUnavailable("no such data here")

    monkeypatch.setitem(STREAMS, "gone", unavailable)
    out = tmp_path / "BENCH.md"
    detectors = ["river HST", "sklearn IF"]
    if REGISTRY_PATH.exists():  # ours join as soon as the registry is written
        detectors.append("auditwatch half_space_trees")
    argv = ["detectors", "--quick", "--streams", "drift", "gone"]
    argv += ["--max-events", "3000", "--out", str(out), "--detectors", *detectors]
    assert main(argv) == 0
    text = out.read_text()
    rows = table_rows(text, "drift")
    assert set(rows) == set(detectors)
    for cells in rows.values():
        auc, ap, recall = float(cells[2]), float(cells[3]), float(cells[4])
        assert 0.0 <= auc <= 1.0 and 0.0 <= ap <= 1.0 and 0.0 <= recall <= 1.0
        assert auc > 0.6, cells  # drift anomalies are 4-8 sigma: any detector beats random
    assert int(rows["river HST"][5].replace(",", "")) == 3000
    if REGISTRY_PATH.exists():
        assert rows["auditwatch half_space_trees"][6] == f"blocks of {BLOCK}"
    assert int(rows["sklearn IF"][5].replace(",", "")) == 2700  # 10% prefix used to fit
    assert "| CPU |" in text and "| cores |" in text and "| river |" in text
    assert "`gone`: unavailable — no such data here" in text


def test_unknown_stream_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["detectors", "--streams", "nope", "--out", str(tmp_path / "x.md")]) == 2


class Recorder(Adapter):
    """Scores each row with how many rows it has learned so far."""

    def __init__(self) -> None:
        self.learned = 0

    def process_one(self, x: np.ndarray) -> float:
        s = float(self.learned)
        self.learned += 1
        return s

    def process_block(self, X: np.ndarray) -> np.ndarray:
        s = np.full(X.shape[0], float(self.learned))
        self.learned += X.shape[0]
        return s


def test_passes_score_before_learning() -> None:
    X = np.zeros((600, 2))
    event = run_event_pass(Recorder(), X, budget_s=60)
    assert np.array_equal(event.scores, np.arange(600))
    block = run_block_pass(Recorder(), X, budget_s=60)
    expected = np.repeat(np.arange(0, 600, BLOCK), BLOCK)[:600]
    assert np.array_equal(block.scores, expected)


def test_pass_stops_at_budget() -> None:
    p = run_event_pass(Recorder(), np.zeros((5 * BLOCK, 1)), budget_s=0.0)
    assert isinstance(p, Pass) and p.n == BLOCK


def test_failing_peer_becomes_a_row_with_the_error() -> None:
    def broken(d: int, seed: int) -> Adapter:
        raise ModuleNotFoundError("No module named 'nothere'")

    res = evaluate(PeerSpec("broken", broken), drifting_stream(500), budget_s=5)
    assert math.isnan(res.auc)
    assert any("No module named 'nothere'" in n for n in res.notes)


def test_capped_rows_prefix_or_strided_in_order() -> None:
    assert capped_rows(10, None, strided=True).tolist() == list(range(10))
    assert capped_rows(10, 4, strided=False).tolist() == [0, 1, 2, 3]
    rows = capped_rows(567_498, 20_000, strided=True)
    assert rows.size == 20_000 and np.all(np.diff(rows) == rows[1]) and rows[-1] > 500_000


def test_quality_is_nan_for_one_class() -> None:
    auc, ap, recall, note = quality(np.zeros(10, dtype=np.int8), np.arange(10.0))
    assert math.isnan(auc) and math.isnan(ap) and math.isnan(recall) and "one class" in note
    auc, _, recall, _ = quality(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.9]))
    assert auc == 1.0 and recall == 1.0


def test_recall_at_budget_is_the_shipped_models_alert_line() -> None:
    """The benchmark's recall column is taken at the budget the shipped models alert at;
    a detector that ranks every anomaly just below the line gets 0 whatever its AUC."""
    assert {m.alerts.budget_per_10k for m in embedded_models()} == {ALERT_BUDGET_PER_10K}
    y = np.zeros(10_000, dtype=np.int8)
    y[:20] = 1
    scores = np.linspace(0.0, 1.0, 10_000)
    scores[:20] = scores[-31]  # every anomaly right below the top 30
    assert roc_auc_score(y, scores) > 0.99 and recall_at_budget(y, scores) == 0.0
    scores[:20] = 2.0
    assert recall_at_budget(y, scores) == 1.0


def test_running_z_uses_only_past_rows() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, size=(50, 3))
    z = RunningZ(3)
    out = [z.scale_then_update(x) for x in X]
    past = X[:10]
    assert np.allclose(out[10], (X[10] - past.mean(axis=0)) / past.std(axis=0))


def test_drifting_stream_is_seeded_with_about_one_percent_anomalies() -> None:
    a, b = drifting_stream(20_000, seed=3), drifting_stream(20_000, seed=3)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert a.X.shape == (20_000, 6)
    assert 0.007 < a.y.mean() < 0.013
    assert not np.array_equal(a.X, drifting_stream(20_000, seed=4).X)


def test_odds_stream_loads_in_file_order() -> None:
    s = load_odds("smtp", DATA)
    with np.load(DATA / "odds" / "34_smtp.npz", allow_pickle=False) as raw:
        assert np.array_equal(s.X, raw["X"])
    assert s.y.sum() == 30 and s.head(100).n_events == 100


def test_select_matches_substrings() -> None:
    names = [s.name for s in select(["river", "isotree"])]
    assert names == ["river HST", "isotree IF"]


def section_rows(markdown: str, title_prefix: str) -> dict[str, list[str]]:
    """Table rows of the section whose heading starts with ``title_prefix``, by first cell."""
    body = markdown.split(f"\n## {title_prefix}", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and not set(cells[1]) <= {"-"}:
            rows[cells[0]] = cells
    return rows


def number(cell: str) -> float:
    return float(cell.replace(",", "").split()[0])


def test_all_quick_writes_one_report_with_every_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchmarks.generated

    monkeypatch.setattr(benchmarks.generated, "MIN_DAYS", 0.5)  # a short generated stream
    out = tmp_path / "ALL.md"
    argv = ["all", "--quick", "--out", str(out), "--streams", "drift", "auditwatch_audit"]
    argv += ["--detectors", "online_iforest", "river HST", "--max-events", "1500"]
    argv += ["--pass-seconds", "60", "--capped-pass-seconds", "60"]  # no pass cut short
    argv += ["--pipeline-events", "3000", "--stage-events", "1500", "--backends", "kafka-python"]
    # history past the models' warm-up and calibration, so the live events can alert
    # (4,000 live events hold the generator's first exfiltration; 2,000 only inference probes)
    argv += ["--latency-seconds", "4", "--latency-rate", "1000", "--history-events", "6000"]
    argv += ["--entity-scales", "1000", "--entity-events", "2000", "--entity-base", "1000"]
    assert main(argv) == 0
    text = out.read_text()
    for label in ("CPU", "cores", "RAM", "Python", "numpy", "numba", "kafka-python", "command"):
        assert f"| {label} |" in text
    assert "python -m benchmarks all --quick" in text
    assert number(text.split("| wall time | ")[1]) > 0
    assert "unavailable" not in text

    for stream in ("drift", "auditwatch_audit"):  # both classes present: AUC is defined
        rows = table_rows(text, stream)
        assert set(rows) == {"auditwatch online_iforest", "river HST"}
        assert all(0.0 <= number(c[2]) <= 1.0 for c in rows.values()), rows
    # detection quality is the benchmark's to report; here only that the easy stream is easy
    assert number(table_rows(text, "drift")["auditwatch online_iforest"][2]) > 0.6

    pipeline = section_rows(text, "b.")
    score = next(c for k, c in pipeline.items() if k.startswith("`auditwatch score`"))
    assert number(score[1]) == 3000 and number(score[2]) > 0
    assert score[-1].startswith("median of 3 runs (range ")
    daemon = pipeline["daemon via Kafka (kafka-python)"]
    assert number(daemon[1]) == 3000 and number(daemon[2]) > 0 and number(daemon[3]) > 0
    alone = pipeline["Kafka consumer alone (kafka-python)"]  # the client's ceiling, same messages
    assert number(alone[1]) == 3000 and number(alone[2]) > 0 and number(alone[5]) > 0

    stages = section_rows(text, "c.")
    assert len(stages["total"]) == 4 and all(number(c) > 0 for c in stages["total"][1:])
    assert all(number(c) > 0 for c in stages["parse (bytes -> Event)"][1:])

    latency = section_rows(text, "d.")["kafka-python"]
    assert number(latency[4]) > 0  # alerts measured
    assert 0 < number(latency[5]) <= number(latency[6]) <= number(latency[7])  # p50 <= p99 <= max

    scaling = section_rows(text, "e.")["1,000"]  # every entity tracked, cost and memory shown
    assert scaling[2] == "1,000" and number(scaling[3]) > 0 and number(scaling[5]) >= 0
    from detector.features.access_kernel import ProfileTable

    row = ProfileTable(64).nbytes_per_row()  # the shipped max_keys_per_entity
    assert number(scaling[7]) >= 1_000 * row / 2**20  # the tables hold every entity's row


def test_full_run_times_each_section_in_a_fresh_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full mode isolates sections (the JVM section a may start must not slow the daemon
    timed later); the child's section comes back whole, rows and time included."""
    import dataclasses

    import benchmarks.entities
    from benchmarks.suite import Plan, run_here, run_isolated

    assert Plan.full().isolate and not Plan.quick().isolate
    plan = dataclasses.replace(
        Plan.quick(), entity_scales=(1_000,), entity_events=2_000, entity_base=1_000
    )
    real_columns = benchmarks.entities.COLUMNS
    # a change to this process's state: seen in-process, not by a fresh interpreter
    monkeypatch.setattr(benchmarks.entities, "COLUMNS", ("patched", *real_columns[1:]))
    assert run_here(plan, "e", tmp_path / "here").columns[0] == "patched"
    section = run_isolated(plan, "e", tmp_path / "child")
    assert section.columns == real_columns
    assert section.title == "e. Entity scaling" and section.seconds > 0
    assert [r[0] for r in section.rows] == ["1,000"] and section.rows[0][2] == "1,000"


def test_parse_ceiling_reports_decode_parse_and_score_rates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmarks import parse_ceiling

    assert parse_ceiling.main(["--events", "2000", "--repeats", "1"]) == 0
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| ") and "CloudTrail" in line
    ]
    assert [r[0].split()[0] for r in rows] == ["real", "generated"]
    for row in rows:
        assert row[1] == "2,000"
        rates = [float(c.replace(",", "")) for c in row[3:]]
        assert len(rates) == 4 and all(r > 0 for r in rates), row


def test_oif_seeds_runs_generated_streams_with_their_models_params(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmarks import oif_seeds
    from benchmarks.generated import model_for

    argv = ["--streams", "auditwatch_ecs", "--seeds", "0", "1", "--gated-only"]
    assert oif_seeds.main([*argv, "--max-events", "3000"]) == 0
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| auditwatch_ecs")
    ]
    assert len(rows) == 1  # gated only
    params = model_for("ecs").detector.params
    assert rows[0][1] == ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    aucs = [float(a) for a in rows[0][6].split()]
    assert len(aucs) == 2 and all(0.5 < a <= 1.0 for a in aucs)
    assert float(rows[0][3]) == pytest.approx(np.mean(aucs), abs=1e-3)


def test_oif_seeds_runs_another_of_our_detectors_without_the_forests_params(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--algorithm: the shipped params belong to the forest, so another detector gets its
    defaults and the --param overrides only."""
    from benchmarks import oif_seeds

    argv = ["--streams", "auditwatch_ecs", "--seeds", "0", "--gated-only"]
    argv += ["--max-events", "3000", "--algorithm", "sliding_iforest"]
    assert oif_seeds.main([*argv, "--param", "refit_every=512"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sliding_iforest, seeds [0];")
    (row,) = _oif_seeds_rows(out, "auditwatch_ecs")
    assert row[1] == "refit_every=512" and 0.0 <= float(row[3]) <= 1.0
    with pytest.raises(SystemExit):
        oif_seeds.main([*argv[:-1], "no_such_detector"])


def _oif_seeds_rows(out: str, stream: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith(f"| {stream}")
    ]


def test_oif_seeds_compares_with_loda_on_held_out_generated_traffic(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LODA row is computed per seed on the very stream the forest ran on. PySAD is a
    benchmark-only requirement, so a stand-in scorer (row norm) plays LODA here; the
    full benchmark runs the real one."""
    from benchmarks import oif_seeds
    from benchmarks.streams import build_stream

    def row_norm(X: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.nan_to_num(X), axis=1)

    seeds_seen: list[int] = []

    def stand_in(X: np.ndarray, seed: int) -> np.ndarray:
        seeds_seen.append(seed)
        return row_norm(X)

    monkeypatch.setattr(oif_seeds, "loda_scores", stand_in)
    argv = ["--streams", "auditwatch_audit", "--seeds", "0", "1", "--gated-only", "--fuse"]
    argv += ["--max-events", "3000", "--generator-seed", "1", "--param", "n_trees=16"]
    assert oif_seeds.main(argv) == 0
    out = capsys.readouterr().out
    rows = _oif_seeds_rows(out, "auditwatch_audit")
    assert [r[2] for r in rows] == [
        "as the daemon runs it",
        "per event",
        "severity, as the daemon reports it",
        "severity, the same calibration",
        "mean of the two severities",
        "that mean, calibrated again",
    ]
    assert rows[0][1] == "learn_gate=0, n_trees=16"  # the model's params, then the override
    assert rows[1][1] == rows[3][1] == oif_seeds.LODA
    assert 0.5 < float(rows[0][3]) <= 1.0
    # 3,000 rows: the warm-up's zero severities cover many attack rows, so no floor here
    assert all(0.0 <= float(r[3]) <= 1.0 for r in rows[1:])
    assert seeds_seen == [0, 1]
    held_out = build_stream("auditwatch_audit", 3000, generator_seed=1)
    norms = row_norm(held_out.X)
    assert float(rows[1][3]) == pytest.approx(roc_auc_score(held_out.y, norms), abs=1e-3)
    calibrated = oif_seeds.daemon_severity(norms)
    assert float(rows[3][3]) == pytest.approx(roc_auc_score(held_out.y, calibrated), abs=1e-3)
    assert float(rows[1][7]) == pytest.approx(recall_at_budget(held_out.y, norms), abs=1e-3)
    assert "- auditwatch_audit: detector.synth seed=1," in out  # held-out traffic, not seed 0


def test_daemon_severity_is_zero_through_warm_up_then_ranks_like_the_scores() -> None:
    from benchmarks import oif_seeds
    from detector.modeldefs import DetectorSpec

    warmup = DetectorSpec().warmup_events
    raw = np.random.default_rng(0).random(warmup + 4 * 256 + 256)
    raw[-1] = 10.0  # far beyond anything seen
    severity = oif_seeds.daemon_severity(raw)
    assert not severity[: warmup + 2 * 256].any()  # warm-up, then the calibrator fills up
    assert severity[-1] == severity.max() > 60  # beyond 1 in 1,000
    assert ((severity >= 0) & (severity <= 100)).all()


def test_oif_seeds_says_why_without_pysad(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import oif_seeds

    monkeypatch.setitem(sys.modules, "pysad", None)  # import pysad -> ImportError
    argv = ["--streams", "auditwatch_ecs", "--seeds", "0", "--gated-only", "--loda"]
    assert oif_seeds.main([*argv, "--max-events", "3000"]) == 0
    rows = _oif_seeds_rows(capsys.readouterr().out, "auditwatch_ecs")
    assert rows[1][1] == oif_seeds.LODA
    assert rows[1][3].startswith("unavailable: ")
    assert "pip install -r benchmarks/requirements.txt" in rows[1][3]


@pytest.mark.parametrize(
    "argv",
    [
        ["--streams", "http", "--generator-seed", "1"],  # a fixed data set has no generator
        ["--param", "max_leaf_samples"],  # no value
        ["--param", "max_leaf_samples=eight"],
    ],
)
def test_oif_seeds_refuses_bad_arguments(argv: list[str]) -> None:
    from benchmarks import oif_seeds

    with pytest.raises(SystemExit) as exc:
        oif_seeds.main(argv)
    assert exc.value.code == 2


def test_oif_seeds_doctests() -> None:
    import doctest

    from benchmarks import oif_seeds

    assert doctest.testmod(oif_seeds).failed == 0


def test_stratus_reports_alerts_and_auc_after_the_warm_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmarks import stratus

    assert stratus.main([]) == 0
    first, second = capsys.readouterr().out.splitlines()[:2]
    assert re.fullmatch(r"2,900 events, 214 attack events \(Stratus SDK calls\); \d+ alerts", first)
    found = re.fullmatch(
        r"after the warm-up \(([\d,]+) events\): ([\d,]+) events, (\d+) attack events, "
        r"ROC AUC ([\d.]+)",
        second,
    )
    assert found, second
    warm_up, scored = (int(found[k].replace(",", "")) for k in (1, 2))
    assert warm_up + scored == 2_900 and warm_up >= model_for("cloudtrail").detector.warmup_events
    assert 0 < int(found[3]) < 214 and 0.0 <= float(found[4]) <= 1.0


def test_severity_peer_reports_what_the_daemon_alerts_on() -> None:
    """The table's severity row is the same run as ours, scored by the calibrated
    severity: 0 through the warm-up, then the calibrator as oif_seeds emulates it."""
    from benchmarks import oif_seeds
    from benchmarks.peers import SEVERITY_PEER, Ours

    X = drifting_stream(4000, seed=3).X
    blocks = range(0, len(X), BLOCK)
    raw_run, severity_run = (
        Ours("online_iforest", X.shape[1], 0, True, None, s) for s in (False, True)
    )
    raw = np.concatenate([raw_run.process_block(X[i : i + BLOCK]) for i in blocks])
    severity = np.concatenate([severity_run.process_block(X[i : i + BLOCK]) for i in blocks])
    np.testing.assert_array_equal(severity, oif_seeds.daemon_severity(raw))
    assert severity[:1024].max() == 0.0 and severity.max() > 50.0
    assert [s.name for s in select([SEVERITY_PEER])] == [SEVERITY_PEER]


def test_severity_peer_keeps_a_capped_burst_out_of_the_calibrator_as_the_runner() -> None:
    """With the runner's per-entity cap, the rows of a bursting entity past the cap are
    neither learned nor calibrated, in the benchmark adapter and in oif_seeds alike."""
    from benchmarks import oif_seeds
    from benchmarks.peers import Ours

    stream = drifting_stream(4000, seed=3)
    X = stream.X
    entities = np.arange(len(X)) % 7
    bursting = stream.y.astype(bool) | (np.arange(len(X)) % 3 == 0)
    blocks = range(0, len(X), BLOCK)
    runs = [Ours("online_iforest", X.shape[1], 0, True, None, s) for s in (False, True)]
    for run in runs:
        run.limit_learning_per_entity(entities, bursting, 2)
    raw, severity = (
        np.concatenate([run.process_block(X[i : i + BLOCK]) for i in blocks]) for run in runs
    )
    capped = oif_seeds.daemon_severity(raw, None, (entities, bursting), 2)
    np.testing.assert_array_equal(severity, capped)
    assert not np.array_equal(capped, oif_seeds.daemon_severity(raw))  # the cap mattered
