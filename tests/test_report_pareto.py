"""The accuracy–energy Pareto front of a report (orchestrator.report.pareto) against brute force."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_report_paper import ratio_value, run_report, write_sweep

from orchestrator.report import ReportInputError
from orchestrator.report.pareto import pareto_mask, parse_objectives


def _dominates(a, b, modes) -> bool:
    better_or_equal = all((x >= y) if m == "max" else (x <= y) for x, y, m in zip(a, b, modes, strict=True))
    strictly = any((x > y) if m == "max" else (x < y) for x, y, m in zip(a, b, modes, strict=True))
    return better_or_equal and strictly


def _brute_force(points, modes) -> list[bool]:
    return [not any(_dominates(q, p, modes) for q in points) for p in points]


@pytest.mark.parametrize("modes", [("max", "min"), ("min", "min"), ("max", "max", "min")])
def test_pareto_mask_equals_brute_force_with_ties(modes):
    rng = np.random.default_rng(7)
    for _ in range(50):
        points = rng.integers(0, 5, size=(12, len(modes))).astype(float)  # small integers: many ties
        assert pareto_mask(points, modes).tolist() == _brute_force(points.tolist(), modes)


def test_report_draws_the_front_of_a_synthetic_sweep(tmp_path):
    sweep_dir = write_sweep(tmp_path, "nshapes_paper_data_ratio", ratio_value)
    table = pq.read_table(sweep_dir / "trials.parquet").to_pylist()
    for row in table:  # made up so that the baseline at fraction 1 dominates several configurations
        ratio, seed = row["config.data.traindata_ratio"], row["seed"]
        energy = 2.3 + 3.0 * ratio if row["arm"] == "method" else 6.0 - 3.0 * ratio
        row["best_epoch_energy_uj"] = energy + 0.01 * seed
    pq.write_table(pa.Table.from_pylist(table), sweep_dir / "trials.parquet")
    out = tmp_path / "report"
    objectives = "best_test_top1:max,best_epoch_energy_uj:min"
    assert run_report(str(sweep_dir), "--out", str(out), "--pareto", objectives, plots=True) == 0

    rows = pq.read_table(out / "pareto.parquet").to_pylist()
    by_config: dict[str, list[dict]] = {}
    for row in table:
        by_config.setdefault(row["config_hash"], []).append(row)
    means = {
        h: (np.mean([r["best_test_top1"] for r in rs]), np.mean([r["best_epoch_energy_uj"] for r in rs]))
        for h, rs in by_config.items()
    }
    hashes = sorted(means)
    expected = dict(zip(hashes, _brute_force([means[h] for h in hashes], ("max", "min")), strict=True))
    assert {r["config_hash"]: r["on_front"] for r in rows} == expected
    assert sum(expected.values()) == 3  # baseline at 1, method at 0.1 (cheapest), method at 1 (best)
    for row in rows:
        values = [r["best_epoch_energy_uj"] for r in by_config[row["config_hash"]]]
        assert row["best_epoch_energy_uj_mean"] == pytest.approx(np.mean(values))
        assert row["best_epoch_energy_uj_n"] == 5
    assert (out / "pareto.png").stat().st_size > 10_000
    assert "## Pareto front" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("best_test_top1:max", "two or more different metrics"),
        ("best_test_top1:max,best_test_top1:max", "two or more different metrics"),
        ("best_test_top1:up,energy:min", "METRIC:max or METRIC:min"),
    ],
)
def test_bad_pareto_requests_are_refused(text, message):
    with pytest.raises(ReportInputError, match=message):
        parse_objectives(text)


def test_a_pareto_metric_the_sweep_lacks_names_what_it_has(tmp_path):
    sweep_dir = write_sweep(tmp_path, "nshapes_paper_data_ratio", ratio_value)
    with pytest.raises(ReportInputError, match="no per-trial energy_uj; available: best_test_top1"):
        run_report(
            str(sweep_dir), "--out", str(tmp_path / "r"), "--pareto", "best_test_top1:max,energy_uj:min"
        )
    assert not (tmp_path / "r").exists()
