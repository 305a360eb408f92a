"""Optuna pruners by the name a sweep space gives them: one table, beside the space's own.

``orchestrator.space.PRUNERS`` holds each name's options and defaults (checked at validation, before
anything launches); :data:`PRUNER_CONSTRUCTORS` turns a validated name and its options into the study's
pruner. ``tests/test_layers.py`` checks that the two list the same names.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna

__all__ = ["PRUNER_CONSTRUCTORS"]


def _hyperband(options: dict[str, Any], epochs: int) -> optuna.pruners.BasePruner:
    if options.get("max_resource") is None:
        options["max_resource"] = epochs
    return optuna.pruners.HyperbandPruner(**options)


def _wilcoxon(options: dict[str, Any], epochs: int) -> optuna.pruners.BasePruner:
    with warnings.catch_warnings():  # "experimental" since Optuna 3.6; we pin Optuna 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.WilcoxonPruner(**options)


PRUNER_CONSTRUCTORS: dict[str, Any] = {
    "none": lambda options, epochs: optuna.pruners.NopPruner(),
    "median": lambda options, epochs: optuna.pruners.MedianPruner(**options),
    "successive_halving": lambda options, epochs: optuna.pruners.SuccessiveHalvingPruner(**options),
    "hyperband": _hyperband,
    "wilcoxon": _wilcoxon,
    # ASHA is Ray Tune's scheduler (build_scheduler); the study itself then prunes nothing.
    "asha": lambda options, epochs: optuna.pruners.NopPruner(),
}
"""Space pruner name (``orchestrator.space.PRUNERS``, with its defaults) → ``(options, epochs) -> pruner``."""
