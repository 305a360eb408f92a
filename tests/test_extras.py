"""The package without its ``[sweep]`` extra (Ray, Optuna, MLflow): the engine's commands and the report
of a sweep directory work; a command that needs the extra says so, with the install line, and writes
nothing. The extra's packages are made unimportable in a subprocess (``sys.modules[name] = None``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from report_synthetic import two_config_sweep

REPO = Path(__file__).resolve().parent.parent
WITHOUT_SWEEP_EXTRA = (
    "import sys\n"
    "for name in ('ray', 'optuna', 'mlflow'):\n"
    "    sys.modules[name] = None\n"
    "from orchestrator.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def spikesweep_without_extra(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPIKESWEEP_CACHE": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SWEEP_EXTRA, *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_sweep_without_the_extra_names_it_and_writes_nothing(tmp_path) -> None:
    storage = tmp_path / "sweeps"
    done = spikesweep_without_extra(
        "sweep", str(REPO / "search_spaces" / "smoke.yaml"), "--storage", str(storage), cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "part of the [sweep] extra" in done.stderr and "pip install 'spikesweep[sweep]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not storage.exists()
    assert not (tmp_path / "cache").exists()  # refused at once, before the space's datasets were built
    # planning needs none of the extra
    smoke = str(REPO / "search_spaces" / "smoke.yaml")
    planned = spikesweep_without_extra("sweep", smoke, "--dry-run", "--storage", str(storage), cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "g0001s1024" in planned.stdout and not storage.exists()


def test_train_and_report_run_without_the_extra(tmp_path) -> None:
    run = spikesweep_without_extra(
        "train", "--preset", "quick", "--out", str(tmp_path / "run"),
        "--set", "epochs=1", "T=2", "batch_size=8", "model.width=0.0625", "data.nshapes_classes=4",
        "data.nshapes_per_class=8", "data.event_size=16",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "run" / "epochs.parquet").is_file() and (tmp_path / "run" / "layers.parquet").is_file()

    sweep_dir = two_config_sweep().write_dir(tmp_path / "sweeps")
    (sweep_dir / "mlflow.db").touch()  # a sweep that recorded to MLflow, read where MLflow is not installed
    report = spikesweep_without_extra("report", str(sweep_dir), "--no-plots", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (sweep_dir / "report" / "report.md").is_file()
    assert "MLflow: not installed (the [sweep] extra" in report.stdout
