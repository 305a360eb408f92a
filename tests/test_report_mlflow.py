"""MLflow side of the report, on a real SQLite tracking store: reading a sweep from its runs gives the
same summary as reading its Parquet files, and seed aggregates go back in idempotently."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient
from report_synthetic import two_config_sweep

from orchestrator.commands import report as report_command
from orchestrator.report import ReportInputError, build_report, load_mlflow, load_sweep_dir
from orchestrator.report.mlflow_aggregates import aggregate_metrics, log_aggregates
from orchestrator.report.outputs import comparison_records, summary_records
from orchestrator.report.write import write_report

SWEEP = "synthetic"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The same synthetic sweep as Parquet files and as MLflow runs in the sweep's mlflow.db."""
    root = tmp_path_factory.mktemp("mlflow")
    sweep = two_config_sweep(SWEEP)
    sweep_dir = sweep.write_dir(root)
    uri = f"sqlite:///{sweep_dir / 'mlflow.db'}"
    parent_id = sweep.write_mlflow(uri, root / "artifacts")
    return sweep_dir, uri, parent_id


def assert_same_records(a: list[dict], b: list[dict]) -> None:
    """Equal record by record; floats to 1e-9, NaN equal to NaN."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra:
            va, vb = ra[key], rb[key]
            if isinstance(va, float) or isinstance(vb, float):
                assert (math.isnan(va) and math.isnan(vb)) or va == pytest.approx(vb, abs=1e-9), key
            elif key == "config_json":
                assert json.loads(va) == json.loads(vb)
            else:
                assert va == vb, key


def test_mlflow_and_parquet_give_the_same_summary(store):
    sweep_dir, uri, parent_id = store
    from_parquet = build_report(load_sweep_dir(sweep_dir), baseline=["method.beta=0"])
    data = load_mlflow(uri, SWEEP)
    assert data.parent_run_id == parent_id
    from_mlflow = build_report(data, baseline=["method.beta=0"])
    # Params come back typed, so even the full configs (config_json) agree key by key.
    assert_same_records(summary_records(from_mlflow), summary_records(from_parquet))
    assert_same_records(comparison_records(from_mlflow), comparison_records(from_parquet))


def test_mlflow_curves_equal_the_epochs_parquet_curves(store):
    sweep_dir, uri, _ = store
    parquet, mlflow = load_sweep_dir(sweep_dir), load_mlflow(uri, SWEEP)
    assert set(mlflow.curves.metric_keys()) == set(parquet.curves.metric_keys())
    for trial in parquet.trials:
        for key in ("test_top1", "sliding_p", "alpha_2"):
            pe, pv = parquet.curves.get(trial.key, key)
            me, mv = mlflow.curves.get(trial.key, key)
            np.testing.assert_array_equal(pe, me)
            np.testing.assert_allclose(pv, mv)


def test_unknown_experiment_lists_the_experiments(store):
    _, uri, _ = store
    with pytest.raises(ReportInputError, match=rf"no experiment 'nope'; experiments there: .*{SWEEP}"):
        load_mlflow(uri, "nope")


def test_aggregates_nest_under_the_parent_and_are_idempotent(store, tmp_path):
    sweep_dir, uri, parent_id = store
    client = MlflowClient(tracking_uri=uri)
    report = build_report(load_sweep_dir(sweep_dir), baseline=["method.beta=0"])
    written = write_report(report, tmp_path / "out", plots=False)

    first = log_aggregates(report, uri, files=written.files)
    assert first.parent_run_id == parent_id and first.created == 2
    exp_id = client.get_experiment_by_name(SWEEP).experiment_id
    aggregates = client.search_runs([exp_id], "tags.`spikesweep.role` = 'aggregate'")
    assert len(aggregates) == 2
    for run in aggregates:
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.info.status == "FINISHED"
        summary = report.summary_of(run.data.tags["spikesweep.config_hash"])
        assert run.data.tags["spikesweep.label"] == summary.group.label
        assert run.data.tags["spikesweep.seeds"] == "42,1024,90210"
        assert run.data.params["method.beta"] == str(summary.group.config["method.beta"])
        assert "seed" not in run.data.params
        est = summary.estimates["best_test_top1"]
        m = run.data.metrics
        assert m["best_test_top1_mean"] == pytest.approx(est.mean)
        assert m["best_test_top1_std"] == pytest.approx(est.std)
        assert m["best_test_top1_ci_low"] == pytest.approx(est.ci_low)
        assert m["best_test_top1_ci_high"] == pytest.approx(est.ci_high)
        assert m["best_test_top1_n"] == 3 and m["n_complete"] == 3
        assert m["best_test_top1"] == pytest.approx(est.mean)  # lines up with the trials' column
        assert m == pytest.approx(aggregate_metrics(report, summary))
    key = f"report/baseline-{report.baseline.config_hash}"
    names = {a.path for a in client.list_artifacts(parent_id, key)}
    assert {f"{key}/report.md", f"{key}/summary.parquet", f"{key}/comparisons.parquet"} <= names
    parent = client.get_run(parent_id).data
    assert parent.metrics["n_complete"] == 6 and parent.metrics["best_best_test_top1_n"] == 3
    assert parent.tags["spikesweep.best_configuration"] == report.summaries[0].group.label

    # Re-running changes nothing: the same two runs, no metric value logged again.
    again = log_aggregates(report, uri, files=written.files)
    assert again.run_ids == first.run_ids and again.created == 0 and again.updated_metrics == 0
    assert len(client.search_runs([exp_id], "tags.`spikesweep.role` = 'aggregate'")) == 2

    # A different confidence level would change recorded numbers: refused unless replace=True, which
    # then updates the interval metrics in place.
    wider = build_report(load_sweep_dir(sweep_dir), baseline=["method.beta=0"], confidence=0.99)
    with pytest.raises(ReportInputError, match=r"other numbers:(.|\n)*best_test_top1_ci_low(.|\n)*--replace"):
        log_aggregates(wider, uri)
    third = log_aggregates(wider, uri, replace=True)
    assert third.run_ids == first.run_ids and third.created == 0 and third.updated_metrics > 0
    run = client.get_run(first.run_ids[wider.summaries[0].group.config_hash])
    assert run.data.metrics["best_test_top1_ci_low"] == pytest.approx(
        wider.summaries[0].estimates["best_test_top1"].ci_low
    )
    assert run.data.tags["spikesweep.confidence"] == "0.99"
    log_aggregates(report, uri, replace=True)  # back to the first report
    # Another baseline is another report: its own aggregate runs, the first report's left intact.
    other = build_report(load_sweep_dir(sweep_dir), baseline=["method.beta=0.5"])
    fourth = log_aggregates(other, uri, files=written.files)
    assert fourth.created == 2 and set(fourth.run_ids.values()).isdisjoint(first.run_ids.values())
    assert len(client.search_runs([exp_id], "tags.`spikesweep.role` = 'aggregate'")) == 4
    new_base = client.get_run(fourth.run_ids[other.baseline.config_hash])
    assert new_base.data.tags["spikesweep.is_baseline"] == "true"
    compared = client.get_run(first.run_ids[other.baseline.config_hash])  # in the first report
    assert compared.data.metrics["delta_best_test_top1_mean"] == pytest.approx(
        report.comparisons_for("best_test_top1")[0].result.mean_diff
    )
    assert compared.data.tags["spikesweep.baseline"] == report.baseline.config_hash
    other_key = f"report/baseline-{other.baseline.config_hash}"
    assert {a.path for a in client.list_artifacts(parent_id, other_key)} >= {f"{other_key}/report.md"}
    assert {f"{key}/report.md"} <= {a.path for a in client.list_artifacts(parent_id, key)}

    # The reader still sees exactly the trials, not the aggregates; no run is left RUNNING.
    assert len(load_mlflow(uri, SWEEP).trials) == len(two_config_sweep().trials)
    assert all(r.info.status != "RUNNING" for r in client.search_runs([exp_id]))


def test_report_command_from_mlflow_writes_files_and_aggregates(store, tmp_path, capsys):
    _, uri, parent_id = store
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    out = tmp_path / "from-mlflow"
    args = parser.parse_args(
        ["--mlflow-uri", uri, "--experiment", SWEEP, "--baseline", "method.beta=0", "--out", str(out)]
    )
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.get_experiment_by_name(SWEEP).experiment_id
    before = {r.info.run_id for r in client.search_runs([exp_id], "tags.`spikesweep.role` = 'aggregate'")}
    assert report_command.run(args) == 0
    printed = capsys.readouterr().out
    assert f"aggregate runs under parent run {parent_id}" in printed
    assert (out / "report.md").is_file() and (out / "learning_curves.png").is_file()
    # the same report (same baseline) from the other source: the same two aggregate runs, updated in place
    after = client.search_runs([exp_id], "tags.`spikesweep.role` = 'aggregate'")
    assert {r.info.run_id for r in after} == before
    same_key = [r for r in after if r.data.tags["spikesweep.baseline"] != "none"]
    assert len({r.data.tags["spikesweep.config_hash"] for r in same_key}) == 2


def test_sweep_dir_uses_the_space_mlflow_section_and_a_missing_experiment_only_warns(store, tmp_path, capsys):
    sweep_dir, uri, _ = store
    other = two_config_sweep("renamed").write_dir(tmp_path)
    (other / "space.yaml").write_text(f"name: renamed\nmlflow: {{tracking_uri: '{uri}', experiment: nope}}\n")
    data = load_sweep_dir(other)
    assert (data.tracking_uri, data.experiment) == (uri, "nope")
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    assert report_command.run(parser.parse_args([str(other), "--no-plots"])) == 0
    captured = capsys.readouterr()
    assert (
        "MLflow: aggregates not logged: MLflow at" in captured.err and "no experiment 'nope'" in captured.err
    )
    assert (other / "report" / "report.md").is_file()


def test_aggregates_go_only_under_this_sweeps_parent(store, tmp_path, capsys):
    """Another sweep logged to the same experiment: its sweep id does not match the parent's."""
    _, uri, _ = store
    other = two_config_sweep("elsewhere").write_dir(tmp_path)
    (other / "space.yaml").write_text(
        f"name: elsewhere\nmlflow: {{tracking_uri: '{uri}', experiment: {SWEEP}}}\n"
    )
    (other / "sweep.json").write_text('{"sweep_id": "0123456789ab"}')
    assert load_sweep_dir(other).sweep_id == "0123456789ab"
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    assert report_command.run(parser.parse_args([str(other), "--no-plots"])) == 0
    assert (
        "no parent run tagged spikesweep.role=sweep with spikesweep.sweep_id=0123456789ab"
        in capsys.readouterr().err
    )


def test_compare_a_sweep_directory_with_its_own_mlflow_records(store, tmp_path, capsys):
    from orchestrator.commands import compare as compare_command

    sweep_dir, uri, _ = store
    parser = argparse.ArgumentParser()
    compare_command.add_arguments(parser)
    out = tmp_path / "cmp"
    args = parser.parse_args([str(sweep_dir), "--mlflow-uri", uri, "--experiment", SWEEP, "--out", str(out)])
    assert compare_command.run(args) == 0
    diffs = pq.read_table(out / "compare_differences.parquet").to_pylist()
    assert len(diffs) == 4  # 2 configurations x (best, last)
    assert all(d["method"] == "paired" and d["n"] == 3 and d["mean_diff"] == 0.0 for d in diffs)
    assert {d["sweep"] for d in diffs} == {f"{SWEEP}#2"}
    assert "identical on every seed" in diffs[0]["notes"]


def test_a_partial_report_leaves_the_running_sweeps_store_alone(store, tmp_path, capsys):
    _, uri, _ = store
    sweep = two_config_sweep("running")
    sweep.trials[0].status = "RUNNING"
    running = sweep.write_dir(tmp_path)
    (running / "space.yaml").write_text(
        f"name: running\nmlflow: {{tracking_uri: '{uri}', experiment: {SWEEP}}}\n"
    )
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    assert report_command.run(parser.parse_args([str(running), "--partial", "--no-plots"])) == 0
    assert "MLflow: not updated while the sweep is still running" in capsys.readouterr().out
