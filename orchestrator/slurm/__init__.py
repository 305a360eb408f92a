"""Run a sweep on a Slurm allocation as one Ray cluster, and survive preemption.

The moving parts, one module each:

* :mod:`~orchestrator.slurm.request` — what the sweep asks of Slurm (nodes, CPUs, GPUs, time, ...), typed
  and validated before anything is written or submitted.
* :mod:`~orchestrator.slurm.render` — fills ``slurm/sweep.sbatch`` and copies ``slurm/ray_node.sh`` into
  ``<sweep>/slurm/``: a readable script that plain ``sbatch`` can run again.
* :mod:`~orchestrator.slurm.submit` — ``sbatch`` with Slurm's own error, plus what to change.
* :mod:`~orchestrator.slurm.join` — run inside the job: wait until every node has joined Ray.
* :mod:`~orchestrator.slurm.status` — job state (scontrol/sacct) and sweep progress (trials.parquet).

The shell side (Ray head/worker bootstrap, the signal trap, the requeue) lives in ``slurm/`` so that a
user reads exactly what runs.
"""
