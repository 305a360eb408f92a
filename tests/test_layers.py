"""Import layering: what must stay light stays light, and the two pruner tables agree."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("ray", "optuna", "mlflow")


@pytest.mark.parametrize(
    ("modules", "absent"),
    [
        # the vocabulary and the Ray-free readers: report and slurm status run where Ray is not installed
        (
            [
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
    from orchestrator.optuna_bridge import PRUNER_CONSTRUCTORS
    from orchestrator.space import PRUNERS

    assert set(PRUNER_CONSTRUCTORS) == set(PRUNERS)
