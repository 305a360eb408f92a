"""spikesweep's orchestration half: sweeps on Ray Tune + Optuna, MLflow records, Parquet results,
Slurm bootstrap, multi-seed reports, and the ``spikesweep`` command line.

Where things are (pure below, adapters above; ``tests/test_layers.py`` checks that the pure modules
import no Ray, Optuna or MLflow):

* a sweep file is validated in :mod:`~orchestrator.space` (the YAML schema; every planned point also
  through the engine's own ``engine.config``) and planned in :mod:`~orchestrator.plan` (plan keys);
* statuses, result keys, the journal and the Parquet schemas: :mod:`orchestrator.records`;
* a sweep directory's files are named in :mod:`~orchestrator.sweepdir` (a run directory's in
  ``engine.training.rundir``);
* the adapters to Ray Tune, Optuna and MLflow: :mod:`orchestrator.tune`;
* readers that run without Ray: :mod:`orchestrator.report` (statistics, tables, plots, HTML) and
  :mod:`orchestrator.slurm` (job scripts, submission, status);
* the command line: :mod:`orchestrator.cli` dispatching to :mod:`orchestrator.commands`.
"""
