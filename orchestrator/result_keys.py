"""Keys the sweep trainable adds to every Ray Tune result, besides the engine's per-epoch metrics.

A module of its own (no Ray, no Optuna) because the worker side (the trainable) and the driver side
(the Optuna bridge, the journal, the MLflow logger) both read them, and the worker should not import
the driver's machinery to learn a few names.
"""

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
