"""The report on synthetic sweeps with known per-seed numbers: grouping, statistics, comparisons,
outputs, and the messages bad input gets."""

from __future__ import annotations

import argparse
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_synthetic import SyntheticSweep, SyntheticTrial, two_config_sweep
from scipy import stats

from orchestrator.commands import report as report_command
from orchestrator.report import ReportInputError, build_report, load_sweep_dir
from orchestrator.report.stats import holm
from orchestrator.report.tables import ablation_table
from orchestrator.report.write import write_report

# The per-seed numbers of two_config_sweep(), written down independently of it.
BASE_BEST = {42: 80.0, 1024: 81.5, 90210: 79.0}
BASE_LAST = {42: 79.0, 1024: 80.0, 90210: 78.5}
FULL_BEST = {42: 83.0, 1024: 83.5, 90210: 82.5}
FULL_LAST = {42: 82.0, 1024: 81.0, 90210: 82.5}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return two_config_sweep().write_dir(tmp_path_factory.mktemp("sweeps"))


@pytest.fixture(scope="module")
def report(sweep_dir):
    return build_report(load_sweep_dir(sweep_dir), baseline=["method.beta=0"])


def t_interval(values):
    values = np.asarray(values)
    return stats.t.interval(0.95, values.size - 1, loc=values.mean(), scale=stats.sem(values))


def test_groups_by_config_hash_and_labels_by_the_varied_key(report):
    assert [s.group.label for s in report.summaries] == ["method.beta=0.5", "method.beta=0"]
    assert report.keys == ["method.beta"]
    assert [s.rank for s in report.summaries] == [1, 2]
    assert report.baseline.label == "method.beta=0"


def test_failed_and_pruned_trials_are_counted_but_excluded(report):
    full, base = report.summaries
    assert full.counts["COMPLETE"] == 3 and full.counts["FAILED"] == 1 and full.counts["PRUNED"] == 0
    assert base.counts["COMPLETE"] == 3 and base.counts["PRUNED"] == 1 and base.counts["FAILED"] == 0
    assert full.seeds == base.seeds == [42, 1024, 90210]
    assert full.estimates["best_test_top1"].n == 3  # the failed trial's 99.0 is not in the mean


@pytest.mark.parametrize(
    ("rank", "metric", "values"),
    [
        (0, "best_test_top1", FULL_BEST),
        (0, "last_test_top1", FULL_LAST),
        (1, "best_test_top1", BASE_BEST),
        (1, "last_test_top1", BASE_LAST),
    ],
)
def test_summary_statistics_equal_scipy(report, rank, metric, values):
    est = report.summaries[rank].estimates[metric]
    v = list(values.values())
    assert est.mean == pytest.approx(np.mean(v))
    assert est.std == pytest.approx(np.std(v, ddof=1))
    assert est.sem == pytest.approx(stats.sem(v))
    assert (est.ci_low, est.ci_high) == pytest.approx(t_interval(v))


def test_median_best_epoch(report):
    assert report.summaries[0].median_best_epoch == 2.0  # best epochs 2, 2, 3
    assert report.summaries[1].median_best_epoch == 2.0  # 2, 1, 2
    from orchestrator.report.tables import summary_table

    # people read epochs counted from 1, like the trainer's "epoch 3/4" lines
    table = summary_table(report)
    column = table.headers.index("median best epoch")
    assert [row[column] for row in table.rows] == ["3.0", "3.0"]


@pytest.mark.parametrize(
    ("metric", "full", "base"),
    [("best_test_top1", FULL_BEST, BASE_BEST), ("last_test_top1", FULL_LAST, BASE_LAST)],
)
def test_paired_comparison_equals_scipy_on_the_seed_aligned_numbers(report, metric, full, base):
    (c,) = report.comparisons_for(metric)
    seeds = [42, 1024, 90210]
    a = [full[s] for s in seeds]
    b = [base[s] for s in seeds]
    d = np.subtract(a, b)
    assert c.seeds == seeds and c.result.n == 3
    assert c.result.mean_diff == pytest.approx(d.mean())
    assert (c.result.ci_low, c.result.ci_high) == pytest.approx(t_interval(d))
    assert c.result.p_ttest == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert c.result.p_wilcoxon == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert c.p_ttest_holm == pytest.approx(c.result.p_ttest)  # a family of one
    assert c.delta_label == "method.beta=0.5"


def three_config_sweep() -> SyntheticSweep:
    seeds = (42, 1024, 90210, 7, 11)
    best = {
        0.0: [80.0, 81.5, 79.0, 80.2, 79.8],
        0.25: [81.0, 81.0, 80.5, 80.9, 80.1],
        0.5: [83.0, 83.5, 82.5, 82.0, 84.0],
        1.0: [78.0, 80.5, 81.0, 79.1, 79.0],
    }
    trials = [
        SyntheticTrial({"method.beta": beta}, seed, best=v, last=v - 1.0, best_epoch=2)
        for beta, values in best.items()
        for seed, v in zip(seeds, values, strict=True)
    ]
    return SyntheticSweep("three", trials, varied=["method.beta"]), best


def test_holm_is_applied_across_the_family_of_comparisons(tmp_path):
    sweep, best = three_config_sweep()
    report = build_report(load_sweep_dir(sweep.write_dir(tmp_path)), baseline={"method.beta": 0.0})
    comparisons = report.comparisons_for("best_test_top1")
    assert len(comparisons) == 3
    raw = {c.group.config["method.beta"]: c.result.p_ttest for c in comparisons}
    for beta, p in raw.items():
        assert p == pytest.approx(stats.ttest_rel(best[beta], best[0.0]).pvalue)
    # Holm by its definition, written out for three p-values.
    order = sorted(raw, key=raw.get)
    expected, running = {}, 0.0
    for j, beta in enumerate(order):
        running = max(running, min(1.0, (3 - j) * raw[beta]))
        expected[beta] = running
    for c in comparisons:
        assert c.p_ttest_holm == pytest.approx(expected[c.group.config["method.beta"]])
    wil = [c.result.p_wilcoxon for c in comparisons]
    assert [c.p_wilcoxon_holm for c in comparisons] == pytest.approx(list(holm(wil)))


def test_seeds_without_a_partner_are_left_out_of_the_pairing(tmp_path):
    sweep = two_config_sweep("extra")
    sweep.trials.append(SyntheticTrial({"method.beta": 0.5}, 5, best=90.0, last=90.0, best_epoch=1))
    report = build_report(load_sweep_dir(sweep.write_dir(tmp_path)), baseline=["method.beta=0"])
    (c,) = report.comparisons_for("best_test_top1")
    assert c.seeds == [42, 1024, 90210] and c.unpaired_seeds == [5]
    assert any("without a completed partner" in n and "5" in n for n in c.notes)
    assert report.summaries[0].estimates["best_test_top1"].n == 4  # the summary still uses all four


def test_one_seed_per_arm_reports_not_enough_seeds(tmp_path):
    trials = [
        SyntheticTrial({}, 42, best=90.0, last=89.0, best_epoch=2),
        SyntheticTrial({"sliding.schedule": "step"}, 42, best=85.0, last=84.0, best_epoch=2),
        SyntheticTrial({"method.static_channel": "blue", "sliding.schedule": "step"}, 42, 84.0, 83.0, 2),
    ]
    sweep = SyntheticSweep("ablation", trials, varied=["method.static_channel", "sliding.schedule"])
    report = build_report(
        load_sweep_dir(sweep.write_dir(tmp_path)),
        baseline={"sliding.schedule": "poly"},
        baseline_name="full method",
    )
    arms = {c.delta_label: c for c in report.comparisons_for("best_test_top1")}
    assert set(arms) == {"sliding.schedule=step", "method.static_channel=blue, sliding.schedule=step"}
    step = arms["sliding.schedule=step"]
    assert step.result.mean_diff == pytest.approx(-5.0) and math.isnan(step.result.p_ttest)
    out = write_report(report, tmp_path / "out", plots=False)
    text = out.file("report.md").read_text()
    assert "| full method: method.static_channel=v, sliding.schedule=poly | 1 | 90.00 (n=1) |" in text
    assert "-5.00, not enough seeds (n=1)" in text
    tex = out.file("ablation.tex").read_text()
    assert r"\toprule" in tex and "full method" in tex and "not enough seeds (n=1)" in tex


def test_ablation_arms_are_named_and_usable_as_baseline(tmp_path):
    arms = {
        "full": ({}, [90.0, 91.0, 89.5]),
        "no_hsv": ({"method.static_channel": "blue"}, [88.0, 89.5, 88.0]),
        "no_sliding": ({"sliding.schedule": "step"}, [85.0, 86.0, 84.0]),
    }
    trials = [
        SyntheticTrial(overrides, seed, best=v, last=v - 0.5, best_epoch=1, arm=name)
        for name, (overrides, values) in arms.items()
        for seed, v in zip((42, 1024, 90210), values, strict=True)
    ]
    sweep = SyntheticSweep("ablation", trials, varied=["arm", "method.static_channel", "sliding.schedule"])
    report = build_report(
        load_sweep_dir(sweep.write_dir(tmp_path)), baseline=["arm=full"], baseline_name="full method"
    )
    assert report.baseline.label == "arm=full, method.static_channel=v, sliding.schedule=poly"
    arms_by_label = {c.delta_label: c for c in report.comparisons_for("best_test_top1")}
    assert set(arms_by_label) == {
        "arm=no_hsv, method.static_channel=blue",
        "arm=no_sliding, sliding.schedule=step",
    }
    c = arms_by_label["arm=no_sliding, sliding.schedule=step"]
    assert c.result.mean_diff == pytest.approx(np.mean([85.0 - 90.0, 86.0 - 91.0, 84.0 - 89.5]))
    table = ablation_table(report)
    assert [r[0] for r in table.rows] == [
        "full method: arm=full, method.static_channel=v, sliding.schedule=poly",
        "arm=no_hsv, method.static_channel=blue",
        "arm=no_sliding, sliding.schedule=step",
    ]
    assert (
        table.rows[2][2]
        == f"{np.mean([85.0, 86.0, 84.0]):.2f} ± {np.diff(t_interval([85.0, 86.0, 84.0]))[0] / 2:.2f}"
    )


def test_a_searched_float_can_be_picked_by_the_value_its_label_shows(tmp_path):
    trials = [
        SyntheticTrial({"method.beta": beta}, seed, best=80.0 + i + seed % 3, last=79.0, best_epoch=1)
        for i, beta in enumerate((0.7151893663724195, 0.2))
        for seed in (1, 2)
    ]
    report = build_report(load_sweep_dir(SyntheticSweep("floats", trials).write_dir(tmp_path)))
    labels = sorted(s.group.label for s in report.summaries)
    assert labels == ["method.beta=0.2", "method.beta=0.715189"]
    picked = build_report(report.sweep, baseline=[labels[1]])
    assert picked.baseline.config["method.beta"] == 0.7151893663724195


def test_duplicate_seed_of_one_config_counts_once(tmp_path):
    sweep = two_config_sweep("dup")
    short = SyntheticTrial({"method.beta": 0.5}, 42, best=70.0, last=70.0, best_epoch=1, epochs=2)
    sweep.trials.append(short)  # the same config and seed again, shorter: the 4-epoch run wins
    rows = sweep.trial_rows()
    rows[-1]["trial_id"] += "_again"
    rows[-1]["config_hash"] = rows[3]["config_hash"]  # epochs differ, but treat it as one config
    sweep_dir = tmp_path / "dup"
    sweep_dir.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), sweep_dir / "trials.parquet")
    report = build_report(load_sweep_dir(sweep_dir))
    full = next(s for s in report.summaries if s.group.config["method.beta"] == 0.5)
    assert full.estimates["best_test_top1"].mean == pytest.approx(np.mean(list(FULL_BEST.values())))
    assert any("more than once" in n for n in full.group.notes)


# ------------------------------------------------------------------------------------------------
# outputs


def test_report_files_hold_the_same_numbers(report, tmp_path):
    out = write_report(report, tmp_path / "out")
    for name in ("report.md", "summary.parquet", "comparisons.parquet", "ablation.tex"):
        assert out.file(name).is_file(), name
    # both configurations share one sliding schedule: a P figure would show one line twice
    assert set(out.plots) == {"learning_curves", "ablation", "alpha"}
    assert "sliding_p.png not drawn: `sliding_p` is the same in every configuration" in out.notes
    for path in out.plots.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = pq.read_table(out.file("summary.parquet")).to_pylist()
    assert [r["label"] for r in summary] == ["method.beta=0.5", "method.beta=0"]
    assert summary[0]["best_test_top1_mean"] == pytest.approx(np.mean(list(FULL_BEST.values())))
    assert summary[0]["n_failed"] == 1 and summary[1]["n_pruned"] == 1
    assert summary[1]["is_baseline"] and summary[0]["seeds"] == [42, 1024, 90210]
    assert summary[0]["config.method.beta"] == "0.5"

    comparisons = pq.read_table(out.file("comparisons.parquet")).to_pylist()
    assert {r["metric"] for r in comparisons} == {"best_test_top1", "last_test_top1"}
    best = next(r for r in comparisons if r["metric"] == "best_test_top1")
    assert best["mean_diff"] == pytest.approx(np.mean([3.0, 2.0, 3.5]))
    assert best["n_pairs"] == 3 and best["enough_seeds"]

    text = out.file("report.md").read_text()
    half = (t_interval(list(FULL_BEST.values()))[1] - t_interval(list(FULL_BEST.values()))[0]) / 2
    assert f"{np.mean(list(FULL_BEST.values())):.2f} ± {half:.2f}" in text
    for name in out.plots:
        assert f"({name}.png)" in text


def test_no_baseline_means_no_comparisons_and_a_hint(sweep_dir, tmp_path):
    report = build_report(load_sweep_dir(sweep_dir))
    assert report.baseline is None and report.comparisons == []
    out = write_report(report, tmp_path / "out", plots=False)
    assert "--baseline method.beta=0.5" in out.file("report.md").read_text()
    assert pq.read_table(out.file("comparisons.parquet")).num_rows == 0
    assert not out.file("ablation.tex").exists()


def test_metric_choice_and_mode(sweep_dir):
    report = build_report(load_sweep_dir(sweep_dir), metric="wall_time_s")
    assert report.mode == "min" and "wall_time_s" in report.metrics
    ranked = [s.estimates["wall_time_s"].mean for s in report.summaries]
    assert ranked == sorted(ranked)
    report = build_report(load_sweep_dir(sweep_dir), metric="last_test_top1", mode="min")
    assert [s.group.label for s in report.summaries] == ["method.beta=0", "method.beta=0.5"]


# ------------------------------------------------------------------------------------------------
# bad input


def test_unknown_metric_lists_the_available_ones(sweep_dir):
    with pytest.raises(ReportInputError, match="metric 'test_acc' does not exist") as err:
        build_report(load_sweep_dir(sweep_dir), metric="test_acc")
    assert "best_test_top1" in str(err.value) and "last_test_top1" in str(err.value)


def test_baseline_matching_nothing_lists_the_configurations(sweep_dir):
    with pytest.raises(ReportInputError, match="matches no configuration") as err:
        build_report(load_sweep_dir(sweep_dir), baseline=["method.beta=0.25"])
    message = str(err.value)
    assert "method.beta takes 0, 0.5" in message
    assert "method.beta=0.5" in message and "method.beta=0 " in message


def test_baseline_matching_several_names_the_separating_key(sweep_dir):
    with pytest.raises(ReportInputError, match="matches 2 configurations") as err:
        build_report(load_sweep_dir(sweep_dir), baseline=["model.width=0.25"])
    assert "add method.beta" in str(err.value)


def test_baseline_with_an_unknown_key_lists_the_varied_keys(sweep_dir):
    with pytest.raises(ReportInputError, match="'method.bta' is not a config key") as err:
        build_report(load_sweep_dir(sweep_dir), baseline=["method.bta=0"])
    assert "keys that vary here: method.beta" in str(err.value)
    with pytest.raises(ReportInputError, match="expected KEY=VALUE"):
        build_report(load_sweep_dir(sweep_dir), baseline=["method.beta"])


def test_empty_unfinished_and_missing_sweeps(tmp_path):
    with pytest.raises(ReportInputError, match="does not exist"):
        load_sweep_dir(tmp_path / "nope")
    (tmp_path / "notasweep").mkdir()
    (tmp_path / "notasweep" / "space.yaml").write_text("name: x\n")
    with pytest.raises(ReportInputError, match="no trials.parquet.*contains: space.yaml"):
        load_sweep_dir(tmp_path / "notasweep")

    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    schema_only = pa.Table.from_pylist(two_config_sweep().trial_rows()).slice(0, 0)
    pq.write_table(schema_only, empty_dir / "trials.parquet")
    with pytest.raises(ReportInputError, match="has no trials yet"):
        build_report(load_sweep_dir(empty_dir))

    sweep = two_config_sweep("running")
    sweep.trials[0].status = "RUNNING"
    sweep.trials[1].status = "PENDING"
    data = load_sweep_dir(sweep.write_dir(tmp_path))
    with pytest.raises(
        ReportInputError,
        match=r"unfinished \(4 COMPLETE, 1 PRUNED, 1 FAILED, 1 RUNNING, 1 PENDING\).*--partial",
    ):
        build_report(data)
    partial = build_report(data, allow_partial=True)
    assert partial.summaries[-1].estimates["best_test_top1"].n == 1
    assert any("1 trials RUNNING and 1 PENDING" in n for n in partial.notes)

    sweep = two_config_sweep("allfailed")
    for t in sweep.trials:
        t.status = "FAILED"
    with pytest.raises(ReportInputError, match=r"no COMPLETE trial \(8 FAILED\)"):
        build_report(load_sweep_dir(sweep.write_dir(tmp_path)))


# ------------------------------------------------------------------------------------------------
# the command


def run_command(argv):
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    return report_command.run(parser.parse_args(argv))


def test_report_command_prints_the_ranked_table(sweep_dir, tmp_path, capsys):
    out = tmp_path / "cmd"
    assert run_command([str(sweep_dir), "--baseline", "method.beta=0", "--out", str(out), "--no-mlflow"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("1  method.beta=0.5"))
    assert lines[first + 1].startswith("2  method.beta=0 (baseline)")
    assert re.search(r"\+2\.83 \[\+0\.94, \+4\.73\]", printed)
    assert (out / "report.md").is_file() and (out / "learning_curves.png").is_file()


def test_report_command_needs_a_source(monkeypatch):
    from engine.errors import SpikesweepError

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(SpikesweepError, match="give a sweep directory, or --experiment"):
        run_command([])
    with pytest.raises(SpikesweepError, match="needs --mlflow-uri"):
        run_command(["--experiment", "x"])
    with pytest.raises(SpikesweepError, match="not both"):
        run_command(["somewhere", "--experiment", "x"])


def test_cli_prints_bad_input_without_a_traceback(sweep_dir, capsys):
    from orchestrator.cli import main

    assert main(["report", str(sweep_dir), "--baseline", "method.beta=0.3", "--no-mlflow", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spikesweep report: error: --baseline method.beta=0.3 matches no configuration")
    assert "Traceback" not in err
    assert main(["compare", str(sweep_dir)]) == 2
    assert "compare needs at least two sweeps" in capsys.readouterr().err
