"""spikesweep's orchestration half: sweeps on Ray Tune + Optuna, MLflow records, Parquet results,
Slurm bootstrap, multi-seed reports, and the ``spikesweep`` command line."""
