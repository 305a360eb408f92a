"""``spikesweep compare``: the same configurations across sweeps, on synthetic sweeps."""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow.parquet as pq
import pytest
from report_synthetic import SyntheticTrial, two_config_sweep
from scipy import stats

from orchestrator.commands import compare as compare_command
from orchestrator.report import ReportInputError, load_sweep_dir
from orchestrator.report.compare import compare_sweeps
from orchestrator.report.stats import holm

SHIFT = {42: 0.3, 1024: 0.7, 90210: 0.2}


def reproduction(tmp_path):
    """The same sweep on two 'clusters': cluster B is cluster A plus a known per-seed shift; B also
    ran one extra configuration (β = 1) that A lacks."""
    a = two_config_sweep("smoke")
    b = two_config_sweep("smoke")
    for t in b.trials:
        t.best += SHIFT.get(t.seed, 0.0)
        t.last += SHIFT.get(t.seed, 0.0)
    b.trials += [SyntheticTrial({"method.beta": 1.0}, s, 70.0 + s % 3, 69.0, 2) for s in SHIFT]
    return load_sweep_dir(a.write_dir(tmp_path / "clusterA")), load_sweep_dir(
        b.write_dir(tmp_path / "clusterB")
    )


def test_same_config_on_two_clusters_is_paired_by_seed(tmp_path):
    a, b = reproduction(tmp_path)
    comp = compare_sweeps([a, b])
    assert comp.names == ["clusterA/smoke", "clusterB/smoke"]  # both sweeps are called smoke
    diffs = [d for d in comp.diffs if d.metric == "best_test_top1"]
    assert len(diffs) == 2 and all(d.method == "paired" and d.n == 3 for d in diffs)
    for d in diffs:
        group_a = next(s.group for s in comp.reports[0].summaries if s.group.config_hash == d.config_hash)
        group_b = next(s.group for s in comp.reports[1].summaries if s.group.config_hash == d.config_hash)
        va, vb = group_a.seed_values("best_test_top1"), group_b.seed_values("best_test_top1")
        seeds = sorted(va)
        assert d.mean_diff == pytest.approx(np.mean(list(SHIFT.values())))
        assert d.p == pytest.approx(stats.ttest_rel([vb[s] for s in seeds], [va[s] for s in seeds]).pvalue)
    assert [d.p_holm for d in diffs] == pytest.approx(list(holm([d.p for d in diffs])))
    # The configuration only cluster B ran is listed, without a difference.
    assert len(comp.order) == 3
    assert comp.labels[comp.order[-1]] == "method.beta=1"


def test_without_shared_seeds_the_difference_is_welch(tmp_path):
    a = two_config_sweep("x")
    b = two_config_sweep("y")
    for t in b.trials:
        t.seed += 1
    comp = compare_sweeps([load_sweep_dir(a.write_dir(tmp_path)), load_sweep_dir(b.write_dir(tmp_path))])
    d = next(d for d in comp.diffs if d.metric == "best_test_top1")
    assert d.method == "welch"
    va = comp.reports[0].summaries[0].group.seed_values("best_test_top1")
    vb = comp.reports[1].summaries[0].group.seed_values("best_test_top1")
    assert d.p == pytest.approx(stats.ttest_ind(list(vb.values()), list(va.values()), equal_var=False).pvalue)


def test_compare_writes_tables_and_parquet(tmp_path, capsys):
    reproduction(tmp_path)
    parser = argparse.ArgumentParser()
    compare_command.add_arguments(parser)
    out = tmp_path / "cmp"
    args = parser.parse_args(
        [str(tmp_path / "clusterA" / "smoke"), str(tmp_path / "clusterB" / "smoke"), "--out", str(out)]
    )
    assert compare_command.run(args) == 0
    printed = capsys.readouterr().out
    assert "method.beta=0.5" in printed and "paired (n=3)" in printed
    text = (out / "compare.md").read_text()
    assert "## best-epoch test top-1" in text and "## last-epoch test top-1" in text
    summary = pq.read_table(out / "compare_summary.parquet").to_pylist()
    assert {r["sweep"] for r in summary} == {"clusterA/smoke", "clusterB/smoke"}
    diffs = pq.read_table(out / "compare_differences.parquet").to_pylist()
    assert len(diffs) == 4 and all(r["method"] == "paired" for r in diffs)


def test_compare_bad_input(tmp_path):
    a, b = reproduction(tmp_path)
    with pytest.raises(ReportInputError, match="at least two sweeps"):
        compare_sweeps([a])
    other = two_config_sweep("other")
    for t in other.trials:
        t.overrides = {**t.overrides, "T": 4}
    with pytest.raises(ReportInputError, match="share no configuration"):
        compare_sweeps([a, load_sweep_dir(other.write_dir(tmp_path))])
    with pytest.raises(ReportInputError, match="metric 'nope' does not exist"):
        compare_sweeps([a, b], metric="nope")
