"""End to end on a real local Ray cluster, the real engine trainer on built-in data, real Optuna and real
MLflow on SQLite: grid × seeds with a crash-and-retry, Optuna search with median pruning and a
confirmation stage, Ray's ASHA, and seed-aware Wilcoxon pruning.

Trials are tiny (4 nshapes classes, 16 px, T = 2, a few epochs) so the four sweeps share one Ray
cluster and stay within about two minutes on two cores. A learning rate of 3.0 is the "clearly worse"
configuration (its test loss is two orders of magnitude higher) and 1e12 the one that diverges to NaN.
"""

from __future__ import annotations

import collections
import math
import os
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from mlflow import MlflowClient
from scipy import stats

from engine.config import RunConfig
from engine.training.evaluation import evaluate_checkpoint
from engine.training.records import TIMING_KEYS, read_layer_records, read_records
from orchestrator.records.tables import epochs_schema, trials_schema
from orchestrator.space import load_space
from orchestrator.sweepdir import SweepDir
from orchestrator.tune.driver import run_sweep
from orchestrator.tune.trainable import FAULT_ENV

pytestmark = pytest.mark.slow

TINY = {
    "T": 2,
    "epochs": 3,
    "batch_size": 8,
    "model": {"width": 0.125},
    "data": {"nshapes_classes": 4, "nshapes_per_class": 12, "event_size": 16},
    "optim": {"lr_scaling": "none", "lr": 0.01},
}
GOOD, WORSE, DIVERGES = 0.01, 3.0, 1.0e12


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    import ray

    cache = tmp_path_factory.getbasetemp() / "spikesweep-cache"  # shared with test_sweep_resume
    env = {"RAY_AUTH_MODE": "disabled", "SPIKESWEEP_CACHE": str(cache)}
    saved = {k: os.environ.get(k) for k in env}
    for key, value in env.items():
        os.environ.setdefault(key, value)  # workers inherit the driver's environment at ray.init
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)


def sweep(tmp_path: Path, name: str, **space) -> tuple:
    path = tmp_path / f"{name}.yaml"
    doc = {
        "name": name,
        "preset": "quick",
        "base": TINY,
        "max_concurrent_trials": 2,
        "progress": {"interval_s": 60},
    }
    doc.update(space)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    outcome = run_sweep(path, storage=tmp_path / "sweeps")
    return outcome, load_space(path)


def study_of(outcome, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{outcome.sweep_dir / 'optuna.db'}")


def mlflow_runs(outcome, name: str) -> tuple[list, list]:
    client = MlflowClient(f"sqlite:///{outcome.sweep_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("spikesweep.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("spikesweep.role") == "trial"]
    return parents, children


def table(outcome, name: str) -> list[dict]:
    return pq.read_table(outcome.sweep_dir / name).to_pylist()


def test_grid_seeds_retry_mlflow_and_parquet(ray_cluster, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(FAULT_ENV, "g0001s0:1")  # this trial raises once, before reporting epoch 1
    outcome, space = sweep(
        tmp_path,
        "grid",
        parameters={"optim.lr": [GOOD, 0.003]},
        seeds=[0, 1],
        mlflow={"log_checkpoint": "best"},
    )
    assert outcome.complete and outcome.statuses == {"COMPLETE": 4}

    # Exactly N seeds per configuration.
    rows = table(outcome, "trials.parquet")
    seeds_of = collections.defaultdict(list)
    for row in rows:
        seeds_of[row["config_hash"]].append(row["seed"])
    assert sorted(map(sorted, seeds_of.values())) == [[0, 1], [0, 1]]

    # trials.parquet matches Ray's results, with the declared schema.
    assert pq.read_schema(outcome.sweep_dir / "trials.parquet") == trials_schema()
    assert pq.read_schema(outcome.sweep_dir / "epochs.parquet") == epochs_schema(2)
    by_trial = {r["trial_id"]: r for r in rows}
    assert len(outcome.results) == len(rows) == 4
    for result in outcome.results:
        row = by_trial[result.metrics["trial_id"]]
        assert result.error is None
        assert row["status"] == "COMPLETE" and not row["pruned"] and row["stage"] == "grid"
        assert row["best_test_top1"] == result.metrics["best_test_top1"]
        assert row["last_test_top1"] == result.metrics["test_top1"]
        assert row["best_epoch"] == result.metrics["best_epoch"]
        assert row["epochs_run"] == result.metrics["epoch"] + 1 == 3
        assert row["seed"] == result.metrics["seed"] == row["config.seed"]
        assert row["config.optim.lr"] == result.config["params"]["optim.lr"]
        assert row["varied"] == ["optim.lr"] and row["git_commit"] and row["hostname"]

    # The study: one COMPLETE trial per Tune trial, valued by the objective; nothing left RUNNING.
    trials = study_of(outcome, "grid").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert sorted(t.value for t in trials) == sorted(r["best_test_top1"] for r in rows)

    # MLflow: one parent with the space file, one child per trial, params = the flat config,
    # one value per epoch (the retried trial's replayed epoch is not logged twice).
    parents, children = mlflow_runs(outcome, "grid")
    assert len(parents) == 1 and len(children) == 4
    client = MlflowClient(f"sqlite:///{outcome.sweep_dir / 'mlflow.db'}")
    assert [a.path for a in client.list_artifacts(parents[0].info.run_id, "space")] == ["space/space.yaml"]
    assert parents[0].info.status == "FINISHED"
    # The parent carries the sweep's result from the moment it ends (no report needed): MLflow's runs
    # table shows the collapsed parent row with it.
    summary, best = parents[0].data, outcome.best[0]
    seeds_of_best = [r["best_test_top1"] for r in rows if r["config_hash"] == best.config_hash]
    low, high = stats.t.interval(0.95, 1, loc=np.mean(seeds_of_best), scale=stats.sem(seeds_of_best))
    assert summary.metrics["n_complete"] == 4 and summary.metrics["n_failed"] == 0
    assert summary.metrics["best_best_test_top1_n"] == 2
    assert summary.metrics["best_best_test_top1_mean"] == pytest.approx(np.mean(seeds_of_best))
    if seeds_of_best[0] == seeds_of_best[1]:  # no spread: scipy says NaN, the interval is the mean
        low = high = seeds_of_best[0]
    assert summary.metrics["best_best_test_top1_ci_low"] == pytest.approx(low)
    assert summary.metrics["best_best_test_top1_ci_high"] == pytest.approx(high)
    assert summary.tags["spikesweep.best_config_hash"] == best.config_hash
    # and the sweep says where to look: the runs view (MLflow 3.17 otherwise opens its GenAI view)
    experiment_id = parents[0].info.experiment_id
    link = f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    assert link in capsys.readouterr().out
    base = space.base_config()
    for child in children:
        tags = child.data.tags
        row = next(r for r in rows if r["mlflow_run_id"] == child.info.run_id)
        assert child.info.status == "FINISHED"
        assert tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert tags["spikesweep.trial_id"] == row["trial_id"]
        assert tags["spikesweep.seed"] == str(row["seed"])
        assert tags["spikesweep.config_hash"] == row["config_hash"]
        assert tags["spikesweep.status"] == "COMPLETE"
        assert tags["git_commit"] == row["git_commit"]
        config = base.with_overrides({"optim.lr": row["config.optim.lr"], "seed": row["seed"]})
        assert child.data.params == {k: str(v) for k, v in config.flat().items()}
        history = client.get_metric_history(child.info.run_id, "test_loss")
        assert sorted(m.step for m in history) == [0, 1, 2]
        assert child.data.metrics["best_test_top1"] == row["best_test_top1"]
        # mlflow.log_checkpoint: best — the epoch records and the best-epoch weights travel with the run
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"epochs.parquet", "best"} <= artifacts, artifacts
        saved = {a.path for a in client.list_artifacts(child.info.run_id, "best")}
        exported = outcome.sweep_dir / "runs" / row["plan_key"] / f"seed_{row['seed']}" / "best"
        assert saved == {f"best/{p.name}" for p in exported.iterdir()}

    # Someone with only the tracking store downloads a run's weights and gets its best accuracy back.
    row = rows[0]
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=row["mlflow_run_id"],
        artifact_path="best",
        dst_path=str(tmp_path / "downloaded"),
        tracking_uri=f"sqlite:///{outcome.sweep_dir / 'mlflow.db'}",
    )
    assert evaluate_checkpoint(downloaded)["test_top1"] == row["best_test_top1"]

    # The injected crash happened, and the retried trial ends exactly like an undisturbed run (in a
    # reused actor, after other trials: nothing leaked between them either).
    assert (outcome.sweep_dir / ".faults" / "g0001s0-epoch1").is_file()
    retried = [r for r in table(outcome, "epochs.parquet") if r["plan_key"] == "g0001s0"]
    undisturbed = _direct_run(base.with_overrides({"optim.lr": 0.003, "seed": 0}), tmp_path / "direct")
    assert len(retried) == len(undisturbed) == 3
    for swept, direct in zip(sorted(retried, key=lambda r: r["epoch"]), undisturbed, strict=True):
        for key, value in direct.items():
            if key not in TIMING_KEYS:
                assert swept[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    # The engine run's files were exported for the user.
    assert (outcome.sweep_dir / "runs" / "g0001s0" / "seed_0" / "best" / "model.pt").is_file()


def _direct_run(config: RunConfig, run_dir: Path) -> list[dict]:
    from engine.training import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as inside a 1-CPU trial
    try:
        train(config, run_dir)
    finally:
        torch.set_num_threads(threads)
    return read_records(run_dir / "epochs.parquet")


def test_optuna_median_pruning_and_confirmation(ray_cluster, tmp_path) -> None:
    # TPE's random start-up with this seed proposes lr 0.01, 0.01, then 3.0 three times (checked
    # below): the clearly worse runs start after a good one finished, so the median pruner stops them.
    outcome, _ = sweep(
        tmp_path,
        "opt",
        search={"mode": "optuna", "samples": 5, "sampler_seed": 2, "n_startup_trials": 5},
        parameters={"optim.lr": [GOOD, WORSE], "method.beta": {"type": "uniform", "low": 0.0, "high": 1.0}},
        seeds=[0, 1],
        confirm={"top_k": 1},
        pruner={"name": "median", "n_startup_trials": 1},
        objective={"metric": "test_loss", "mode": "min"},
    )
    assert outcome.complete
    study = study_of(outcome, "opt")
    states = collections.Counter(t.state.name for t in study.trials)
    assert "RUNNING" not in states and "WAITING" not in states
    assert states["PRUNED"] >= 1, states
    search = [t for t in study.trials if t.user_attrs["stage"] == "search"]
    assert [t.params["optim.lr"] for t in search] == [GOOD, GOOD, WORSE, WORSE, WORSE]
    assert all(t.state.name == "COMPLETE" for t in search if t.params["optim.lr"] == GOOD)

    rows = {r["plan_key"]: r for r in table(outcome, "trials.parquet")}
    pruned = [r for r in rows.values() if r["status"] == "PRUNED"]
    assert all(r["pruned"] and r["epochs_run"] < 3 for r in pruned)
    assert all(r["epochs_run"] == 3 for r in rows.values() if r["status"] == "COMPLETE")
    # Pruned trials keep the value of their last report, never a NaN.
    assert all(math.isfinite(t.value) for t in study.trials if t.state.name == "PRUNED")

    # Confirmation: the best search configuration, re-run on the seed the search did not use.
    best = min((t for t in search if t.state.name == "COMPLETE"), key=lambda t: t.value)
    confirm = [r for r in rows.values() if r["stage"] == "confirm"]
    assert len(confirm) == 1 and confirm[0]["seed"] == 1 and confirm[0]["status"] == "COMPLETE"
    assert confirm[0]["config_hash"] == best.user_attrs["config_hash"]
    assert outcome.best[0].config_hash == best.user_attrs["config_hash"] and len(outcome.best[0].values) == 2

    # MLflow mirrors the study's verdicts.
    _, children = mlflow_runs(outcome, "opt")
    assert len(children) == len(rows) == 6
    verdict = {r.data.tags["spikesweep.plan_key"]: r.data.tags["spikesweep.status"] for r in children}
    assert verdict == {k: r["status"] for k, r in rows.items()}


def test_asha_stops_are_pruned_and_nan_fails(ray_cluster, tmp_path) -> None:
    outcome, _ = sweep(
        tmp_path,
        "asha",
        parameters={"optim.lr": [GOOD, WORSE, DIVERGES]},
        seeds=[0],
        pruner={"name": "asha", "grace_period": 1, "reduction_factor": 2},
        objective={"metric": "test_loss", "mode": "min"},
        max_concurrent_trials=1,  # ASHA judges a run against the runs that reached its rung before it
    )
    assert outcome.complete
    rows = {r["config.optim.lr"]: r for r in table(outcome, "trials.parquet")}
    # Ray's ASHA stopped the worse run after one epoch: the study says PRUNED (Ray's OptunaSearch
    # would have told it COMPLETE with its one-epoch value).
    assert rows[WORSE]["status"] == "PRUNED" and rows[WORSE]["epochs_run"] == 1
    assert rows[GOOD]["status"] == "COMPLETE" and rows[GOOD]["epochs_run"] == 3
    # A run whose loss became NaN fails; Optuna never saw a NaN and holds no RUNNING trial.
    assert rows[DIVERGES]["status"] == "FAILED" and rows[DIVERGES]["epochs_run"] == 0
    study = study_of(outcome, "asha")
    by_lr = {t.params["optim.lr"]: t for t in study.trials}
    assert by_lr[DIVERGES].state.name == "FAIL" and "non-finite" in by_lr[DIVERGES].user_attrs["fail_reason"]
    assert by_lr[WORSE].state.name == "PRUNED"
    assert all(math.isfinite(v) for t in study.trials for v in t.intermediate_values.values())
    _, children = mlflow_runs(outcome, "asha")
    failed = [c for c in children if c.data.tags["spikesweep.status"] == "FAILED"]
    assert len(children) == 3 and len(failed) == 1 and failed[0].info.status == "FAILED"


def test_wilcoxon_stops_a_worse_configuration_before_all_its_seeds(ray_cluster, tmp_path) -> None:
    outcome, _ = sweep(
        tmp_path,
        "wilcoxon",
        base={**TINY, "epochs": 2},
        parameters={"optim.lr": [GOOD, WORSE]},
        seeds=3,
        # Two seeds all worse give a one-sided p of 1/4; 0.3 lets the pruner act after two of three.
        pruner={"name": "wilcoxon", "p_threshold": 0.3},
        objective={"metric": "test_loss", "mode": "min"},
        max_concurrent_trials=1,
    )
    assert outcome.complete
    rows = table(outcome, "trials.parquet")
    good = sorted((r for r in rows if r["config.optim.lr"] == GOOD), key=lambda r: r["seed"])
    worse = sorted((r for r in rows if r["config.optim.lr"] == WORSE), key=lambda r: r["seed"])
    assert [r["seed"] for r in good] == [0, 1, 2] and {r["status"] for r in good} == {"COMPLETE"}
    # One trial per configuration; the worse one ran two of its three seeds, each to the end.
    assert len({r["trial_id"] for r in worse}) == 1 and [r["seed"] for r in worse] == [0, 1]
    assert {r["status"] for r in worse} == {"PRUNED"} and {r["run_status"] for r in worse} == {"COMPLETE"}
    assert all(r["epochs_run"] == 2 for r in rows)

    study = study_of(outcome, "wilcoxon")
    by_lr = {t.params["optim.lr"]: t for t in study.trials}
    assert by_lr[WORSE].state.name == "PRUNED"
    # Steps are seeds: each seed's final objective, and the trial's value is their mean.
    per_seed = {r["seed_index"]: r["objective"] for r in good}
    assert by_lr[GOOD].intermediate_values == pytest.approx(per_seed)
    assert by_lr[GOOD].value == pytest.approx(sum(per_seed.values()) / 3)
    _, children = mlflow_runs(outcome, "wilcoxon")
    assert len(children) == 5  # one MLflow run per engine run (trial × seed)
    assert {c.data.tags["spikesweep.run_status"] for c in children} == {"COMPLETE"}


def test_pareto_sweep_confirms_the_front_and_reports_it(ray_cluster, tmp_path) -> None:
    """Test loss against energy per inference: T = 1 costs less than T = 2; lr 3.0 does worse at both.
    (These tiny runs stay near chance accuracy, so the loss is the objective that tells them apart; it
    is not a column of trials.parquet, which exercises the objective_values path.)"""
    outcome, space = sweep(
        tmp_path,
        "pareto",
        search={"mode": "grid"},  # the samplers' multi-objective proposals: tests/test_multi_objective.py
        parameters={"T": [1, 2], "optim.lr": [GOOD, WORSE]},
        seeds=[0, 1],
        confirm={},  # the whole front of the search stage
        objective=[
            {"metric": "test_loss", "mode": "min"},
            {"metric": "best_epoch_energy_uj", "mode": "min"},
        ],
    )
    assert outcome.complete
    study = study_of(outcome, "pareto")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert all(t.state.name == "COMPLETE" and len(t.values) == 2 for t in study.trials)

    rows = table(outcome, "trials.parquet")
    epochs = table(outcome, "epochs.parquet")
    for row in rows:  # every objective is in the trial table, in the space's order, as Optuna was told
        last = max((e for e in epochs if e["trial_id"] == row["trial_id"]), key=lambda e: e["epoch"])
        assert row["objective_values"] == [last["test_loss"], row["best_epoch_energy_uj"]]
        assert study.trials[row["optuna_trial"]].values == row["objective_values"]
    # the per-epoch record's best-epoch energy is the energy of the epoch best_test_top1 comes from
    by_run: dict[str, dict[int, dict]] = {}
    for e in epochs:
        by_run.setdefault(e["trial_id"], {})[e["epoch"]] = e
    for run in by_run.values():
        assert all(e["best_epoch_energy_uj"] == run[e["best_epoch"]]["energy_uj"] for e in run.values())

    # per-layer firing rates, epoch by epoch: the sweep's table is each run's own layers.parquet
    layers = table(outcome, "layers.parquet")
    layout = SweepDir(outcome.sweep_dir)
    for row in rows:
        own = read_layer_records(layout.run_export(row["plan_key"], row["seed"]) / "layers.parquet")
        assert len(own) == 3 * len({r["layer"] for r in own}) > 3  # every epoch, every neuron layer
        mine = [r for r in layers if r["trial_id"] == row["trial_id"] and r["seed"] == row["seed"]]
        assert [(r["epoch"], r["layer"], r["firing_rate"]) for r in mine] == [
            (r["epoch"], r["layer"], r["firing_rate"]) for r in own
        ]

    def front_of(selected: list[dict]) -> set[str]:
        values: dict[str, list[list[float]]] = {}
        for r in selected:
            values.setdefault(r["config_hash"], []).append(r["objective_values"])
        means = {h: tuple(np.mean(v, axis=0)) for h, v in values.items()}
        return {
            h
            for h, (loss, energy) in means.items()
            if not any(a <= loss and e <= energy and (a, e) != (loss, energy) for a, e in means.values())
        }

    search = [r for r in rows if r["stage"] == "search"]
    confirm = [r for r in rows if r["stage"] == "confirm"]
    assert len(search) == 4 and {r["seed"] for r in search} == {0} and {r["seed"] for r in confirm} == {1}
    assert len(front_of(search)) >= 2  # a real trade-off, not one configuration beating all
    assert {r["config_hash"] for r in confirm} == front_of(search)  # the front, and only it, confirmed
    assert len(confirm) == len(front_of(search)) and {r["status"] for r in confirm} == {"COMPLETE"}

    # the report draws the space's objectives without being asked, and its front is the trials' front
    from orchestrator.cli import main as cli_main

    assert cli_main(["report", str(outcome.sweep_dir), "--no-mlflow"]) == 0
    report_dir = outcome.sweep_dir / "report"
    pareto = pq.read_table(report_dir / "pareto.parquet").to_pylist()
    assert {p["config_hash"] for p in pareto if p["on_front"]} == front_of(rows)
    assert (report_dir / "pareto.png").is_file()
    assert "## Pareto front" in (report_dir / "report.md").read_text()
    assert "<h2>Pareto front</h2>" in (report_dir / "report.html").read_text()

    # accuracy and energy vs time steps for the best configuration (ranked here by energy: T = 1, lr
    # 0.01), from each seed's exported best checkpoint; at T' = T they are the runs' recorded values
    out = outcome.sweep_dir / "report-time-steps"
    args = ["report", str(outcome.sweep_dir), "--no-mlflow", "--out", str(out), "--time-steps", "1"]
    assert cli_main([*args, "--metric", "best_epoch_energy_uj", "--mode", "min"]) == 0
    cheapest = [r for r in rows if r["config.T"] == 1 and r["config.optim.lr"] == GOOD]
    evaluated = pq.read_table(out / "time_steps.parquet").to_pylist()
    assert sorted((r["seed"], r["time_steps"], r["test_top1"], r["energy_uj"]) for r in evaluated) == sorted(
        (r["seed"], 1, r["best_test_top1"], r["best_epoch_energy_uj"]) for r in cheapest
    )
    assert "## Accuracy and energy vs time steps (best configuration)" in (out / "report.md").read_text()
    assert (out / "time_steps.png").is_file()

    # MLflow: every objective on every run; the parent names them and the front
    parents, children = mlflow_runs(outcome, "pareto")
    assert len(children) == len(rows)
    assert all({"test_loss", "best_epoch_energy_uj"} <= set(c.data.metrics) for c in children)
    client = MlflowClient(f"sqlite:///{outcome.sweep_dir / 'mlflow.db'}")
    child = children[0]
    key = child.data.tags["spikesweep.run_key"]
    expected = [r for r in layers if f"{r['plan_key']}:{r['seed']}" == key]
    for name in {r["layer"] for r in expected}:
        history = client.get_metric_history(child.info.run_id, f"firing_rate/{name}")
        assert sorted((m.step, m.value) for m in history) == [
            (r["epoch"], r["firing_rate"]) for r in expected if r["layer"] == name
        ]
    tags = parents[0].data.tags
    assert tags["spikesweep.objectives"] == "test_loss:min,best_epoch_energy_uj:min"
    assert parents[0].data.metrics["pareto_front_size"] == len(front_of(rows))
