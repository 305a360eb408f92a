"""Training and evaluation of one run: the unit every sweep trial executes.

``train(config, run_dir, callbacks=(), resume_from=None) -> RunResult`` is the entry point. It is
resolved lazily so that ``import engine.training.optim`` (which config validation needs for the
optimiser and schedule names) does not import models, data or pyarrow.

Where things are: a run configuration is validated in ``engine.config`` (and :func:`check_config`);
:mod:`~engine.training.trainer` runs the epochs (one epoch: :mod:`~engine.training.loop`; evaluation:
:mod:`~engine.training.evaluation`); :mod:`~engine.training.rundir` is the only place that names a run
directory's files, :mod:`~engine.training.records` the per-epoch metric keys and their schema, and
:mod:`~engine.training.checkpoint` / :mod:`~engine.training.loading` write and read checkpoints.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Callback", "RunResult", "check_config", "evaluate", "evaluate_checkpoint", "train"]

_LAZY = {
    "train": "engine.training.trainer",
    "RunResult": "engine.training.trainer",
    "check_config": "engine.training.trainer",
    "Callback": "engine.training.callbacks",
    "evaluate": "engine.training.evaluation",
    "evaluate_checkpoint": "engine.training.evaluation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine.training' has no attribute {name!r}")
