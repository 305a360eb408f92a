"""End to end: a real sweep (Ray Tune, Optuna, MLflow on SQLite, the engine on built-in data) of
2 configurations × 3 seeds, then ``spikesweep report`` on it.

One sweep is shared by every test in this module (it is the slow part); each test reads it.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from mlflow.tracking import MlflowClient
from scipy import stats

from orchestrator.commands import report as report_command
from orchestrator.report import build_report, load_mlflow, load_sweep_dir
from orchestrator.report.outputs import comparison_records, summary_records

pytestmark = pytest.mark.slow

SEEDS = [0, 1, 2]
SMOKE = Path(__file__).resolve().parent.parent / "search_spaces" / "smoke.yaml"
# The shipped smoke sweep (quick preset, β ∈ {0, 0.5}, grid), with three seeds and a smaller network
# and dataset: about a second per run on a CPU, yet a test split of 24 so that seeds differ.
FAST_BASE = {
    "epochs": 4,
    "batch_size": 8,
    "data": {"nshapes_classes": 4, "nshapes_per_class": 12, "train_portion": 0.5},
    "model": {"name": "transfer_scnn", "width": 0.5},
    "optim": {"lr": 0.01, "lr_scaling": "none"},
}


def smoke_space() -> dict:
    space = yaml.safe_load(SMOKE.read_text())
    assert space["parameters"] == {"method.beta": [0.0, 0.5]} and space["search"]["mode"] == "grid"
    space.update(name="report_smoke", seeds=SEEDS, base=FAST_BASE)
    return space


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    import ray

    from orchestrator.tune.driver import run_sweep

    root = tmp_path_factory.mktemp("real")
    space = root / "space.yaml"
    space.write_text(yaml.safe_dump(smoke_space()))
    with pytest.MonkeyPatch.context() as env:
        # Ray's workers inherit this environment: no auth token, and a private frame cache.
        env.setenv("RAY_AUTH_MODE", "disabled")
        env.setenv("SPIKESWEEP_CACHE", str(root / "cache"))
        ray.init(num_cpus=2, include_dashboard=False)
        try:
            outcome = run_sweep(space, storage=root / "sweeps")
        finally:
            ray.shutdown()
    assert outcome.complete, outcome.statuses
    return outcome.sweep_dir


@pytest.fixture(scope="module")
def reported(sweep_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    assert (
        report_command.run(
            parser.parse_args([str(sweep_dir), "--baseline", "method.beta=0", "--out", str(out)])
        )
        == 0
    )
    return out


def test_report_writes_markdown_parquet_and_figures(reported):
    for name in ("report.md", "summary.parquet", "comparisons.parquet", "ablation.tex"):
        assert (reported / name).is_file(), name
    for name in ("learning_curves", "ablation", "alpha"):
        assert (reported / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    # β is all that varies: P is the same curve in both configurations, so it is not drawn (and said so)
    assert not (reported / "sliding_p.png").exists()
    assert (
        "sliding_p.png not drawn: `sliding_p` is the same in every configuration"
        in (reported / "report.md").read_text()
    )
    summary = pq.read_table(reported / "summary.parquet").to_pylist()
    assert sorted(r["label"] for r in summary) == ["method.beta=0", "method.beta=0.5"]
    assert all(r["n_complete"] == 3 and r["seeds"] == SEEDS for r in summary)


def table_row(markdown: str, label: str) -> list[str]:
    """The cells of the ranked-configuration table row of ``label``."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 6 and cells[1] in (label, f"{label} (baseline)") and re.fullmatch(r"\d+", cells[0]):
            return cells
    raise AssertionError(f"no row for {label!r}")


def test_report_md_numbers_equal_those_recomputed_from_trials_parquet(sweep_dir, reported):
    """Recompute each configuration's statistics from trials.parquet with numpy/scipy alone."""
    rows = pq.read_table(sweep_dir / "trials.parquet").to_pylist()
    text = (reported / "report.md").read_text()
    by_beta: dict[float, dict[str, dict[int, float]]] = {}
    for row in rows:
        if row["run_status"] != "COMPLETE":
            continue
        per = by_beta.setdefault(row["config.method.beta"], {"best": {}, "last": {}})
        per["best"][row["seed"]] = row["best_test_top1"]
        per["last"][row["seed"]] = row["last_test_top1"]
    assert set(by_beta) == {0.0, 0.5}
    spread = [np.std(list(per["best"].values())) for per in by_beta.values()]
    assert max(spread) > 0, "every seed scored the same: the CI arithmetic would go untested"
    for beta, per in by_beta.items():
        label = f"method.beta={beta:g}"
        cells = table_row(text, label)
        assert cells[3:6] == ["3", "0", "0"]  # done, failed, pruned
        for values, mean_cell, std_cell in (
            (per["best"], cells[6], cells[7]),
            (per["last"], cells[8], cells[9]),
        ):
            v = np.array([values[s] for s in SEEDS])
            sem = stats.sem(v)
            half = 0.0 if sem == 0 else stats.t.ppf(0.975, len(v) - 1) * sem
            assert mean_cell == f"{v.mean():.2f} ± {half:.2f}"
            assert std_cell == f"{v.std(ddof=1):.2f}"
    # The paired difference of β = 0.5 against β = 0, by seed.
    diff = np.array([by_beta[0.5]["best"][s] - by_beta[0.0]["best"][s] for s in SEEDS])
    cells = table_row(text, "method.beta=0.5")
    assert cells[-2].startswith(f"{diff.mean():+.2f}")


def test_mlflow_and_parquet_give_the_same_summary(sweep_dir):
    parquet = load_sweep_dir(sweep_dir)
    mlflow = load_mlflow(parquet.tracking_uri, parquet.experiment)
    assert sorted((t.trial_id, t.seed, t.status) for t in mlflow.trials) == sorted(
        (t.trial_id, t.seed, t.status) for t in parquet.trials
    )
    a = build_report(parquet, baseline=["method.beta=0"])
    b = build_report(mlflow, baseline=["method.beta=0"])
    for ra, rb in [
        *zip(summary_records(a), summary_records(b), strict=True),
        *zip(comparison_records(a), comparison_records(b), strict=True),
    ]:
        assert ra.keys() == rb.keys()
        for key, va in ra.items():
            vb = rb[key]
            if isinstance(va, float):
                assert (math.isnan(va) and math.isnan(vb)) or va == pytest.approx(vb, abs=1e-9), key
            elif key != "sweep":
                assert va == vb, key
    for trial in parquet.trials:
        pe, pv = parquet.curves.get(trial.key, "test_top1")
        me, mv = mlflow.curves.get(trial.key, "test_top1")
        np.testing.assert_array_equal(pe, me)
        np.testing.assert_allclose(pv, mv)


def test_aggregates_sit_under_the_sweep_parent_once(sweep_dir, reported):
    data = load_sweep_dir(sweep_dir)
    client = MlflowClient(tracking_uri=data.tracking_uri)
    exp = client.get_experiment_by_name(data.experiment)
    parent = client.search_runs([exp.experiment_id], "tags.`spikesweep.role` = 'sweep'")[0]
    aggregates = client.search_runs([exp.experiment_id], "tags.`spikesweep.role` = 'aggregate'")
    assert len(aggregates) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in aggregates} == {parent.info.run_id}
    assert {r.data.tags["spikesweep.sweep_id"] for r in aggregates} == {
        parent.data.tags["spikesweep.sweep_id"]
    }
    key = aggregates[0].data.tags["spikesweep.report_key"]  # report files go under the report's own key
    assert key == f"baseline-{aggregates[0].data.tags['spikesweep.baseline']}"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, f"report/{key}")}
    assert f"report/{key}/report.md" in artifacts and f"report/{key}/learning_curves.png" in artifacts
    # Reporting again (here from MLflow itself) updates the same two runs.
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    args = ["--mlflow-uri", data.tracking_uri, "--experiment", data.experiment, "--baseline", "method.beta=0"]
    assert (
        report_command.run(parser.parse_args([*args, "--out", str(sweep_dir / "again"), "--no-plots"])) == 0
    )
    again = client.search_runs([exp.experiment_id], "tags.`spikesweep.role` = 'aggregate'")
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in aggregates)
    assert all(r.info.status == "FINISHED" for r in client.search_runs([exp.experiment_id]))


def test_landscapes_of_sweep_runs_reach_mlflow_and_the_report(sweep_dir, tmp_path):
    """`spikesweep landscape <sweep run> --mlflow` attaches its files to the trial's MLflow child run, and
    the next report shows the figures."""
    from orchestrator.commands import landscape as landscape_command

    seed_dir = sorted((sweep_dir / "runs").glob("*/seed_0"))[0]
    parser = argparse.ArgumentParser()
    landscape_command.add_arguments(parser)
    argv = [
        str(seed_dir.parent),
        "--dims",
        "1",
        "--points",
        "3",
        "--subset",
        "8",
        "--workers",
        "0",
        "--mlflow",
    ]
    assert landscape_command.run(parser.parse_args(argv)) == 0
    out = seed_dir / "landscape-1d"
    assert {p.name for p in out.iterdir()} >= {"landscape.parquet", "landscape_1d.png", "landscape.json"}

    rows = pq.read_table(sweep_dir / "trials.parquet").to_pylist()
    (row,) = [r for r in rows if r["plan_key"] == seed_dir.parent.name and r["seed"] == 0]
    client = MlflowClient(tracking_uri=f"sqlite:///{sweep_dir / 'mlflow.db'}")
    names = {Path(a.path).name for a in client.list_artifacts(row["mlflow_run_id"], "landscape")}
    assert names == {"landscape.parquet", "landscape_1d.png"}

    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    report_dir = tmp_path / "report"
    argv = [str(sweep_dir), "--baseline", "method.beta=0", "--out", str(report_dir), "--no-mlflow"]
    assert report_command.run(parser.parse_args(argv)) == 0
    text = (report_dir / "report.md").read_text()
    assert "## Loss landscapes" in text
    link = re.search(r"!\[landscape_1d\]\(([^)]+)\)", text).group(1)
    assert (report_dir / link).resolve() == (out / "landscape_1d.png").resolve()


def test_a_second_report_from_mlflow_keeps_the_first(sweep_dir, reported, tmp_path):
    """The README's two report commands in a row: the MLflow one recovers the space's baseline from the
    parent run, so it is the same report (same aggregate runs, Δ metrics intact), not a clobbering one."""
    uri = f"sqlite:///{sweep_dir / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.get_experiment_by_name("report_smoke").experiment_id
    before = {
        r.info.run_id: r.data.metrics
        for r in client.search_runs([exp_id], "tags.`spikesweep.role` = 'aggregate'")
    }
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    out = tmp_path / "from-mlflow"
    assert (
        report_command.run(
            parser.parse_args(["--mlflow-uri", uri, "--experiment", "report_smoke", "--out", str(out)])
        )
        == 0
    )
    assert "- baseline: method.beta=0" in (out / "report.md").read_text()  # from the parent's space file
    after = client.search_runs([exp_id], "tags.`spikesweep.role` = 'aggregate'")
    assert {r.info.run_id for r in after} == set(before)
    for run in after:
        assert run.data.tags["spikesweep.baseline"] != "none"
        assert run.data.metrics == pytest.approx(before[run.info.run_id])
    compared = [r for r in after if r.data.tags["spikesweep.is_baseline"] == "false"]
    assert compared and all(math.isfinite(r.data.metrics["delta_best_test_top1_mean"]) for r in compared)
    parent_id = after[0].data.tags["mlflow.parentRunId"]
    key = after[0].data.tags["spikesweep.report_key"]
    assert f"report/{key}/report.md" in {a.path for a in client.list_artifacts(parent_id, f"report/{key}")}
    experiment = client.get_experiment(exp_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # every trial's child run carries its epochs.parquet
    trials = client.search_runs([exp_id], "tags.`spikesweep.role` = 'trial'")
    assert trials and all(
        "epochs.parquet" in {a.path for a in client.list_artifacts(r.info.run_id)} for r in trials
    )
