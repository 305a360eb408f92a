"""The orchestrator's shared words and records, in one layer that imports no Ray, Optuna or MLflow.

* here: the trial statuses and the keys the sweep trainable adds to a Tune result;
* :mod:`~orchestrator.records.journal`: the append-only journal of every run's epochs (the run record
  and run key);
* :mod:`~orchestrator.records.tables`: the Parquet tables derived from it (schemas and rows).

The driver's adapters (:mod:`orchestrator.tune`) and the light readers (``report/``, ``slurm/``,
``commands/``) all speak of these. Defined here once, so the readers never import an adapter to learn a
word and never re-spell one; the mappings to Optuna's and MLflow's own states stay with their adapters.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE_STATUSES",
    "COMPLETE_KEY",
    "EPOCHS_DONE_KEY",
    "FAILED_KEY",
    "FINISHED_STATUSES",
    "HOSTNAME_KEY",
    "SEED_DONE_KEY",
    "SEED_INDEX_KEY",
    "SEED_KEY",
    "STORED_STATUSES",
    "TrialStatus",
    "WALL_TIME_KEY",
]


class TrialStatus(StrEnum):
    """Statuses used in ``trials.parquet``, the MLflow ``spikesweep.status`` tag and every table a user
    reads (a ``str``: members compare equal to, and are stored as, their names)."""

    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAILED = "FAILED"
    RUNNING = "RUNNING"
    PENDING = "PENDING"
    INTERRUPTED = "INTERRUPTED"
    """Shown, never stored: a trial still RUNNING in the study once its sweep has stopped (Ctrl-C,
    preemption). The same word the MLflow parent run gets; the next run of the command resumes it."""

    @staticmethod
    def shown(status: str, *, started: bool, stopped: bool) -> str:
        """The one word a user reads for a trial, the same in the live table, in its last print and in the
        driver's closing line: the study says RUNNING from the moment a trial is asked for until it is told,
        so a trial Tune has not started yet (or that has no epoch yet) is shown PENDING, and one that was
        running when the sweep stopped is shown INTERRUPTED rather than PENDING or RUNNING."""
        if status != TrialStatus.RUNNING:
            return status
        if stopped:
            return TrialStatus.INTERRUPTED
        return TrialStatus.RUNNING if started else TrialStatus.PENDING


STORED_STATUSES: tuple[TrialStatus, ...] = (
    TrialStatus.COMPLETE,
    TrialStatus.PRUNED,
    TrialStatus.FAILED,
    TrialStatus.RUNNING,
    TrialStatus.PENDING,
)
"""The statuses ``trials.parquet`` and MLflow hold, in the order tables list them."""
FINISHED_STATUSES = frozenset({TrialStatus.COMPLETE, TrialStatus.PRUNED, TrialStatus.FAILED})
ACTIVE_STATUSES = frozenset({TrialStatus.RUNNING, TrialStatus.PENDING})


# --------------------------------------------------------------------------------------------------
# Keys the sweep trainable adds to every Ray Tune result, besides the engine's per-epoch metrics: the
# worker side (the trainable) and the driver side (the Optuna study, the journal, the MLflow logger)
# both read them.

SEED_KEY = "seed"
SEED_INDEX_KEY = "seed_index"
EPOCHS_DONE_KEY = "spikesweep_epochs_done"
"""Epochs trained by the trial so far, over all its seeds (ASHA's time attribute)."""
SEED_DONE_KEY = "spikesweep_seed_done"
"""True on the last epoch of a seed."""
COMPLETE_KEY = "spikesweep_complete"
"""True on the last epoch of the trial's last seed: the trial ran to the end (it was not stopped)."""
FAILED_KEY = "spikesweep_failed"
"""The reason, on the report of a trial that ended with a training error (e.g. a non-finite loss)."""
HOSTNAME_KEY = "hostname"
WALL_TIME_KEY = "run_wall_time_s"
"""Wall time of the engine run so far, summed over resumes."""
