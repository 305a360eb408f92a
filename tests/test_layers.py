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
