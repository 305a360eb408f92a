"""The shipped N-Caltech101 ablation space gives, with one ``report`` call, the paper's ablation table.

The trials are planned by the orchestrator's own planner from ``search_spaces/ncaltech101_ablation.yaml``
(with the three seeds the file suggests for error bars); their accuracies are synthetic and known.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from scipy import stats

from orchestrator.commands import report as report_command
from orchestrator.plan import build_plan, config_for
from orchestrator.space import load_space

SPACE_FILE = Path(__file__).resolve().parent.parent / "search_spaces" / "ncaltech101_ablation.yaml"
SEEDS = (42, 1024, 90210)
BEST = {  # arm → best-epoch accuracy per seed
    "full": (92.64, 92.10, 93.05),
    "no_hsv_no_sliding": (85.20, 86.00, 84.90),
    "no_hsv": (90.57, 90.10, 91.00),
    "no_hsv_reg": (90.90, 90.40, 91.30),
    "no_sliding_reg": (88.00, 88.70, 87.50),
}


def write_ablation_sweep(tmp_path: Path, with_arm_column: bool) -> Path:
    raw = yaml.safe_load(SPACE_FILE.read_text())
    raw["seeds"] = list(SEEDS)
    space_file = tmp_path / "ncaltech101_ablation.yaml"
    space_file.write_text(yaml.safe_dump(raw))
    space = load_space(space_file)
    base = space.base_config()
    rows = []
    for planned in build_plan(space).fixed:
        arm = planned.params["arm"]
        for seed in planned.seeds:
            best = BEST[arm][SEEDS.index(seed)]
            flat = config_for(space, base, planned.overrides, seed).flat()
            row = {
                "trial_id": planned.plan_key,
                "config_hash": planned.config_hash,
                "seed": seed,
                "status": "COMPLETE",
                "pruned": False,
                "epochs_run": 300,
                "best_test_top1": best,
                "best_epoch": 280,
                "last_test_top1": best - 0.4,
                "wall_time_s": 16000.0,
                "stage": "grid",
                **{f"config.{k}": v for k, v in flat.items()},
                "varied": space.varied_keys(),
            }
            if with_arm_column:
                row["arm"] = arm
            rows.append(row)
    sweep_dir = tmp_path / "sweeps" / "ncaltech101_ablation"
    sweep_dir.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), sweep_dir / "trials.parquet")
    (sweep_dir / "space.yaml").write_text(space_file.read_text())
    return sweep_dir


def run_report(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    return report_command.run(parser.parse_args([*argv, "--no-mlflow", "--no-plots"]))


def ablation_rows(markdown: str) -> list[list[str]]:
    section = markdown.split("## Ablation table", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]  # without the header


def test_one_report_call_gives_the_ablation_table(tmp_path):
    sweep_dir = write_ablation_sweep(tmp_path, with_arm_column=True)
    out = tmp_path / "report"
    assert (
        run_report(
            str(sweep_dir), "--baseline", "arm=full", "--baseline-name", "full method", "--out", str(out)
        )
        == 0
    )
    rows = ablation_rows((out / "report.md").read_text())
    assert rows[0][0].startswith("full method: arm=full")
    # The other arms, best first, each named by how it differs from the full method.
    assert [r[0] for r in rows[1:]] == [
        "arm=no_hsv_reg, method.static_channel=blue",
        "arm=no_hsv, method.regularization=false, method.static_channel=blue",
        "arm=no_sliding_reg, method.legacy_nosliding_drops_domain=true, sliding.schedule=step",
        "arm=no_hsv_no_sliding, method.legacy_nosliding_drops_domain=true, method.regularization=false, "
        "method.static_channel=blue, sliding.schedule=step",
    ]
    full = np.array(BEST["full"])
    for row in rows[1:]:
        arm = row[0].split(",")[0].removeprefix("arm=")
        values = np.array(BEST[arm])
        half = stats.t.ppf(0.975, 2) * stats.sem(values)
        assert row[1] == "3"
        assert row[2] == f"{values.mean():.2f} ± {half:.2f}"
        d = values - full
        ci = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
        assert row[3] == f"{d.mean():+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"
    tex = (out / "ablation.tex").read_text()
    assert tex.count(r"\\") == 1 + len(BEST)  # header + one line per arm
    assert "full method: arm=full" in tex


def test_without_the_arm_column_the_config_keys_name_the_arms(tmp_path):
    sweep_dir = write_ablation_sweep(tmp_path, with_arm_column=False)
    out = tmp_path / "report"
    full = ["method.static_channel=v", "sliding.schedule=poly", "method.regularization=true"]
    assert run_report(str(sweep_dir), "--baseline", *full, "--out", str(out)) == 0
    rows = ablation_rows((out / "report.md").read_text())
    assert len(rows) == len(BEST)
    assert rows[1][0] == "method.static_channel=blue"  # no_hsv_reg: only the channel differs


def test_one_seed_per_arm_as_published_says_not_enough_seeds(tmp_path):
    raw = yaml.safe_load(SPACE_FILE.read_text())
    assert raw["seeds"] == [42]  # the shipped file runs the authors' single seed
    sweep_dir = write_ablation_sweep(tmp_path, with_arm_column=True)
    table = pq.read_table(sweep_dir / "trials.parquet")
    seed42 = table.filter(pa.compute.equal(table["seed"], 42))
    pq.write_table(seed42, sweep_dir / "trials.parquet")
    out = tmp_path / "report"
    assert run_report(str(sweep_dir), "--baseline", "arm=full", "--out", str(out)) == 0
    rows = ablation_rows((out / "report.md").read_text())
    assert rows[0][2] == "92.64 (n=1)"
    assert all("not enough seeds (n=1)" in r[3] for r in rows[1:])


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            "arm=fll",
            "matches no configuration (arm takes full, no_hsv, no_hsv_no_sliding, no_hsv_reg, "
            "no_sliding_reg)",
        ),
        ("method.static_channel=blue", "matches 3 configurations; add arm or "),
    ],
)
def test_ablation_baseline_mistakes_list_the_arms(tmp_path, bad, expected):
    from orchestrator.report import ReportInputError

    sweep_dir = write_ablation_sweep(tmp_path, with_arm_column=True)
    with pytest.raises(ReportInputError) as err:
        run_report(str(sweep_dir), "--baseline", bad)
    assert expected in str(err.value)
    assert "  - arm=no_hsv, " in str(err.value)
