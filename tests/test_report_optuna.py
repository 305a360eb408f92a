"""Optuna figures of a searched sweep, from a real study in the sweep directory's ``optuna.db``."""

from __future__ import annotations

import argparse

import optuna
import pytest
import yaml
from report_synthetic import two_config_sweep

from orchestrator.commands import report as report_command
from orchestrator.report.study import find_study, plot_study


def make_study(sweep_dir, name: str, complete: int, pruned: int) -> None:
    """A study as the orchestrator keeps it: SQLite ``optuna.db``, named after the space."""
    study = optuna.create_study(
        storage=f"sqlite:///{sweep_dir / 'optuna.db'}", study_name=name, direction="maximize"
    )
    for i in range(complete + pruned):
        trial = study.ask(
            {
                "method.beta": optuna.distributions.FloatDistribution(0.0, 1.0),
                "optim.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
            }
        )
        value = 70.0 + 20.0 * trial.params["method.beta"] - 0.2 * i
        trial.report(value - 5.0, 0)
        if i < complete:
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def write_space(sweep_dir, mode: str) -> None:
    space = {
        "name": "searched",
        "search": {"mode": mode, "samples": 8},
        "parameters": {"method.beta": [0.0, 0.5]},
    }
    (sweep_dir / "space.yaml").write_text(yaml.safe_dump(space))


def run_report(sweep_dir, out):
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    return report_command.run(parser.parse_args([str(sweep_dir), "--out", str(out), "--no-mlflow"]))


@pytest.fixture(scope="module")
def searched_dir(tmp_path_factory):
    sweep_dir = two_config_sweep("searched").write_dir(tmp_path_factory.mktemp("optuna"))
    write_space(sweep_dir, "optuna")
    make_study(sweep_dir, "searched", complete=6, pruned=2)
    return sweep_dir


def test_optuna_sweep_report_draws_history_and_importances(searched_dir, tmp_path):
    out = tmp_path / "report"
    assert run_report(searched_dir, out) == 0
    for name in ("optuna_history", "optuna_importances"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({name}.png)" in (out / "report.md").read_text()


def test_importances_are_deterministic(searched_dir, tmp_path):
    study = find_study(searched_dir, {"name": "searched", "search": {"mode": "optuna"}})
    assert study.study_name == "searched" and len(study.trials) == 8
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, _ = plot_study(study, tmp_path / "a")
    second, _ = plot_study(study, tmp_path / "b")
    assert first["optuna_importances"].read_bytes() == second["optuna_importances"].read_bytes()


def test_grid_sweeps_and_thin_studies_get_no_optuna_figures(tmp_path):
    sweep_dir = two_config_sweep("grid").write_dir(tmp_path)
    write_space(sweep_dir, "grid")
    make_study(sweep_dir, "searched", complete=3, pruned=0)
    assert find_study(sweep_dir, yaml.safe_load((sweep_dir / "space.yaml").read_text())) is None
    (tmp_path / "no-study").mkdir()
    assert find_study(tmp_path / "no-study", None) is None

    thin = two_config_sweep("thin").write_dir(tmp_path)
    write_space(thin, "optuna")
    make_study(thin, "searched", complete=1, pruned=1)
    out = tmp_path / "thin-report"
    assert run_report(thin, out) == 0
    assert (out / "optuna_history.png").is_file()
    assert not (out / "optuna_importances.png").exists()
    assert "need at least 2 complete trials, the study has 1" in (out / "report.md").read_text()
