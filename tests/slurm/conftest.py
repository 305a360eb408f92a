"""Fixtures for the Slurm tests: one private one-machine Slurm cluster per test session.

The cluster (munged + slurmctld + one slurmd per simulated node, see ``slurm_cluster.py``) starts on first
use, in a temp dir, and is stopped by pid at the end. Where Slurm cannot start (not installed, or its
daemons fail), the tests that need it are skipped with the reason; the rendering tests run everywhere.
"""

from __future__ import annotations

import os

import pytest
from slurm_cluster import SlurmCluster, SlurmStartError, start_cluster, unavailable_reason


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> SlurmCluster:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except SlurmStartError as exc:
        pytest.skip(f"Slurm cannot start on this machine: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm_env(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The cluster, with this process's environment pointing at it (for in-process ``spikesweep`` calls)."""
    for key in [k for k in os.environ if k.startswith(("SLURM_", "SBATCH_", "SRUN_"))]:
        monkeypatch.delenv(key)
    for key, value in slurm_cluster.env.items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    return slurm_cluster
