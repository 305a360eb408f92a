"""The benchmark preset's splits, the dry-run time estimate, and a reduced data-ratio study end to end."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from engine.config import RunConfig
from engine.data import load_catalog
from orchestrator.estimate import StepCost, count_recordings, estimate_sweep
from orchestrator.plan import build_plan
from orchestrator.space import load_space

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
RATIOS = (0.1, 0.25, 0.5, 1.0)


@pytest.mark.slow
def test_bench_test_split_is_large_fixed_and_disjoint_from_training(tmp_path):
    """≥ 1,000 test recordings, the same files at every traindata_ratio, none of them (nor their static
    images) ever drawn for training. Generates the real preset's data (1,600 recordings, ~20 s)."""
    base = RunConfig.from_preset("nshapes_bench").with_overrides({"data.cache_root": str(tmp_path)})
    catalogs = {r: load_catalog(base.with_overrides({"data.traindata_ratio": r})) for r in RATIOS}
    tests = {r: [(e.path, e.label) for e in c.test] for r, c in catalogs.items()}
    assert len(tests[0.25]) == 1000
    assert all(t == tests[0.25] for t in tests.values())  # identical, in the same order
    test_paths = {p for p, _ in tests[0.25]}
    test_stems = {(e.label, e.key) for e in catalogs[0.25].test}
    for r, catalog in catalogs.items():
        assert not test_paths & {e.path for e in catalog.train}, r
        assert not test_stems & {(s.label, s.key) for s in catalog.static}, r
        # the static pool is the whole training part, whatever fraction of its recordings is kept
        assert len(catalog.static) == 600, r
        assert len(catalog.train) == 10 * int(60 * r), r
        assert count_recordings(base.with_overrides({"data.traindata_ratio": r})) == (
            len(catalog.train),
            1000,
        )
    preset = catalogs[0.25]
    assert len(preset.train) == 150 and len(preset.static) == 4 * len(preset.train)


def test_count_recordings_follows_the_readers_arithmetic():
    config = RunConfig.from_preset("nshapes_bench")
    assert count_recordings(config) == (150, 1000)
    assert count_recordings(config.with_overrides({"data.traindata_ratio": 0.1})) == (60, 1000)
    assert count_recordings(
        config.with_overrides({"data.nshapes_per_class": 40, "data.train_portion": 0.9})
    ) == (
        10 * int(36 * 0.25),
        40,
    )


def test_estimate_lays_runs_over_the_concurrent_slots():
    space = load_space(SPACES / "nshapes_paper_data_ratio.yaml")
    plan = build_plan(space)
    measured = []

    def fake_measure(config, threads):
        measured.append((config.model.name, threads))
        event_only = config.model.name == "vgg_snn"
        return StepCost(train_step_s=0.05 if event_only else 0.1, eval_batch_s=0.02)

    estimate = estimate_sweep(space, plan, concurrency=2, measure=fake_measure)
    # two shapes (baseline, method): the fraction and the seed do not change what a step costs
    assert sorted(measured) == [("transfer_vgg_snn", 1), ("vgg_snn", 1)]
    assert len(estimate.runs) == 40
    by_key = {(r.plan_key, r.seed): r for r in estimate.runs}
    # method at fraction 0.1: 60 recordings → 3 steps of 16; 1,000 test → 63 batches; 20 epochs
    method_01 = next(t for t in plan.fixed if t.params == {"arm": "method", "data.traindata_ratio": 0.1})
    run = by_key[method_01.plan_key, 0]
    assert (run.train_recordings, run.test_recordings, run.steps_per_epoch) == (60, 1000, 3)
    assert run.seconds == pytest.approx(6.0 + 20 * (3 * 0.1 + 63 * 0.02))
    assert estimate.run_seconds == pytest.approx(sum(r.seconds for r in estimate.runs))
    # list scheduling on two slots: never shorter than half the work or the longest run
    assert estimate.wall_s >= estimate.run_seconds / 2
    assert estimate.wall_s <= estimate.run_seconds / 2 + max(r.seconds for r in estimate.runs)


def test_estimate_times_a_real_step():
    from orchestrator.estimate import measure_step

    config = RunConfig.from_preset("nshapes_bench").with_overrides({"batch_size": 4, "T": 2})
    cost = measure_step(config, threads=1, steps=1)
    assert 0 < cost.eval_batch_s < cost.train_step_s


@pytest.mark.slow
def test_reduced_data_ratio_study_end_to_end(tmp_path):
    """2 fractions × 2 arms × 2 seeds with real Ray, Optuna and MLflow, then the data-ratio report."""
    import ray

    from orchestrator.commands import report as report_command
    from orchestrator.tune.driver import run_sweep

    raw = yaml.safe_load((SPACES / "nshapes_paper_data_ratio.yaml").read_text())
    raw.update(name="ratio_e2e", seeds=[0, 1])
    raw["parameters"] = {"data.traindata_ratio": [0.5, 1.0]}
    raw["base"] = {
        "epochs": 2,
        "batch_size": 4,
        "T": 2,
        "data": {"nshapes_classes": 3, "nshapes_per_class": 10, "train_portion": 0.6},
        "model": {"width": 0.0625},
    }
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(raw))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "disabled")
        env.setenv("SPIKESWEEP_CACHE", str(tmp_path / "cache"))
        ray.init(num_cpus=2, include_dashboard=False)
        try:
            outcome = run_sweep(space, storage=tmp_path / "sweeps")
        finally:
            ray.shutdown()
    assert outcome.complete, outcome.statuses

    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    out = tmp_path / "report"
    assert (
        report_command.run(parser.parse_args([str(outcome.sweep_dir), "--out", str(out), "--no-mlflow"])) == 0
    )
    rows = pq.read_table(out / "data_ratio.parquet").to_pylist()
    assert sorted((r["arm"], r["fraction"]) for r in rows) == [
        ("baseline", 0.5),
        ("baseline", 1.0),
        ("method", 0.5),
        ("method", 1.0),
    ]
    assert all(r["n"] == 2 and r["seeds"] == [0, 1] for r in rows)
    assert all(r["delta_n"] == 2 for r in rows if r["arm"] == "method")
    assert (out / "data_ratio.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("data_ratio.md", "data_ratio.tex"):
        assert (out / name).read_text().count("| 0.5 |" if name.endswith(".md") else "0.5 &") == 2, name
