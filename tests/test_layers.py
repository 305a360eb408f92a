"""Import layering: what must stay light stays light, and the two pruner tables agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("ray", "optuna", "mlflow")
ORCHESTRATOR = Path(__file__).resolve().parent.parent / "orchestrator"
# every module of the two reader packages (report/study.py reads the sweep's optuna.db: Optuna is
# imported inside its functions, when a report asks for the study's figures)
REPORT_MODULES = sorted(f"orchestrator.report.{p.stem}" for p in (ORCHESTRATOR / "report").glob("[!_]*.py"))
SLURM_MODULES = sorted(f"orchestrator.slurm.{p.stem}" for p in (ORCHESTRATOR / "slurm").glob("[!_]*.py"))


@pytest.mark.parametrize(
    ("modules", "absent"),
    [
        # the vocabulary and the Ray-free readers: report and slurm status run where Ray is not installed
        (
            [
                "orchestrator.records",
                "orchestrator.records.journal",
                "orchestrator.records.tables",
                "orchestrator.front",
                "orchestrator.summary",
                *REPORT_MODULES,
                *SLURM_MODULES,
                "orchestrator.space",
                "orchestrator.sweepdir",
                "orchestrator.plan",
                "orchestrator.report",
                "orchestrator.slurm",
                "orchestrator.report.paper",
                "orchestrator.estimate",
                "orchestrator.trust",
            ],
            HEAVY,
        ),
        # reading a config never builds model code
        (["engine.config", "engine.yamlio", "engine.errors"], (*HEAVY, "torch")),
    ],
)
def test_light_modules_import_no_heavy_package(modules, absent):
    code = (
        f"import sys\nfor m in {modules!r}: __import__(m)\nprint([m for m in {absent!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_space_pruner_has_a_constructor_and_no_other():
    from orchestrator.space import PRUNERS
    from orchestrator.tune.pruners import PRUNER_CONSTRUCTORS

    assert set(PRUNER_CONSTRUCTORS) == set(PRUNERS)


def test_the_reader_packages_are_all_listed():
    assert {"orchestrator.report.load", "orchestrator.report.pareto", "orchestrator.report.html"} <= set(
        REPORT_MODULES
    )
    assert {"orchestrator.slurm.status", "orchestrator.slurm.render"} <= set(SLURM_MODULES)


def test_run_directory_files_are_named_in_one_place():
    """A run directory's file names are spelled by engine/training/rundir.py (and the sweep directory's
    own tables by orchestrator/sweepdir.py); everything else imports them."""
    root = ORCHESTRATOR.parent
    names = (
        '"config.yaml"',
        '"epochs.parquet"',
        '"layers.parquet"',
        '"result.json"',
        '"meta.json"',
        '"checkpoints"',
    )
    owners = {root / "engine" / "training" / "rundir.py", root / "orchestrator" / "sweepdir.py"}
    spelled = {
        str(path.relative_to(root))
        for package in ("engine", "orchestrator")
        for path in (root / package).rglob("*.py")
        if path not in owners and any(name in path.read_text() for name in names)
    }
    assert spelled == set()


def test_the_sweep_epochs_table_is_the_engine_epoch_record():
    """One typed epoch record (engine.training.records.epoch_record) defines both tables: a run's
    epochs.parquet and, after the run columns, a sweep's — which differs only in letting alpha_t be null."""
    from engine.training.records import ALPHA_PREFIX, INT_KEYS, epoch_record, epoch_schema
    from orchestrator.records.tables import epochs_schema

    for T in (1, 4, 10):
        run, sweep = epoch_schema(T), epochs_schema(T)
        tail = sweep.names[len(sweep.names) - len(run.names) :]
        assert tail == run.names == [key.name for key in epoch_record(T)]
        for name in run.names:
            alpha = name.startswith(ALPHA_PREFIX)
            assert sweep.field(name).type == run.field(name).type
            assert sweep.field(name).nullable == (run.field(name).nullable or alpha), name
        assert {f.name for f in run if f.type == "int64"} == INT_KEYS
