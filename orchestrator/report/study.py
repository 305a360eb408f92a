"""The Optuna study of an Optuna-searched sweep: where it is, and its two standard figures.

The orchestrator keeps one study per sweep, named after the sweep, in the sweep directory's ``optuna.db``.
The report draws the optimisation history (every trial's value, pruned ones marked, and the best so far)
and the parameter importances (Optuna's fANOVA evaluator with a fixed seed, so the figure does not
change between two report runs).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from orchestrator.sweepdir import SweepDir

__all__ = ["find_study", "plot_importances", "plot_history", "plot_study"]

SEARCHED_MODES = ("optuna", "random")


def find_study(sweep_dir: Path, space: dict | None = None):
    """Load the sweep's study, or return ``None`` when the sweep did not search.

    A grid sweep keeps a study too (the orchestrator enqueues grid points in it), but its history and
    importances say nothing a grid table does not, so they are drawn for ``optuna`` and ``random``
    search modes only (or whenever the space file is unknown).
    """
    search = (space or {}).get("search")
    mode = search.get("mode", "grid") if isinstance(search, dict) else "grid"
    if space is not None and mode not in SEARCHED_MODES:
        return None
    layout = SweepDir(sweep_dir.resolve())
    if not layout.optuna_db.is_file():
        return None
    import optuna  # the [sweep] extra: only a searched sweep's report reads its study
    from optuna.storages import RDBStorage

    storage = RDBStorage(layout.optuna_url, skip_compatibility_check=True)
    summaries = optuna.get_all_study_summaries(storage=storage)
    if not summaries:
        return None
    names = [s.study_name for s in summaries]
    name = layout.name if layout.name in names else names[-1]
    return optuna.load_study(study_name=name, storage=storage)


def plot_study(study, out_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """Draw ``optuna_history.png`` and ``optuna_importances.png``; say why either is missing."""
    written: dict[str, Path] = {}
    notes: list[str] = []
    path = plot_history(study, out_dir / "optuna_history.png")
    if path is None:
        notes.append("optuna_history.png not drawn: the study has no finished trial with a value")
    else:
        written["optuna_history"] = path
    path, why = plot_importances(study, out_dir / "optuna_importances.png")
    if path is None:
        notes.append(f"optuna_importances.png not drawn: {why}")
    else:
        written["optuna_importances"] = path
    return written, notes


def _values(study):
    import optuna

    complete, pruned = [], []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == optuna.trial.TrialState.COMPLETE and trial.values:
            complete.append((trial.number, trial.values[0]))
        elif trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values:
            last_step = max(trial.intermediate_values)
            pruned.append((trial.number, trial.intermediate_values[last_step]))
    return complete, pruned


def plot_history(study, path: Path) -> Path | None:
    import optuna

    complete, pruned = _values(study)
    if not complete:
        return None
    # a multi-objective study: its first objective (the Pareto front is the report's own figure)
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    numbers, values = np.array(complete).T
    ax.scatter(numbers, values, color="C0", s=18, label="complete")
    if pruned:
        pn, pv = np.array(pruned).T
        ax.scatter(pn, pv, color="0.6", marker="x", s=18, label="pruned (last reported value)")
    running = np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)
    ax.step(numbers, running, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial number")
    ax.set_ylabel("objective" if len(study.directions) == 1 else "first objective")
    ax.set_title(
        f"Optuna optimisation history ({study.study_name}, {'maximize' if maximize else 'minimize'})"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_importances(study, path: Path) -> tuple[Path | None, str]:
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return None, f"parameter importances need at least 2 complete trials, the study has {len(complete)}"
    try:
        first = None if len(study.directions) == 1 else (lambda t: t.values[0])  # of the first objective
        importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0), target=first)
    except (RuntimeError, ValueError) as exc:
        return None, f"Optuna could not compute importances ({exc})"
    importances = {k: v for k, v in importances.items() if math.isfinite(v)}
    if not importances:
        return None, "no searched parameter varies across the complete trials"
    names = list(importances)[::-1]
    fig = Figure(figsize=(7, 1.2 + 0.4 * len(names)))
    ax = fig.add_subplot()
    ax.barh(names, [importances[n] for n in names], color="C0")
    ax.set_xlabel("importance (fANOVA, normalised)")
    ax.set_title(f"Optuna parameter importances ({len(complete)} complete trials)")
    ax.grid(axis="x", alpha=0.3)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path, ""
