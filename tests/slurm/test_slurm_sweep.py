"""End to end: ``spikesweep slurm submit search_spaces/smoke.yaml`` on a real Slurm, preempted mid-sweep.

The job is preempted by a job in the higher-priority ``urgent`` partition (``PreemptMode=REQUEUE``:
Slurm sends SIGTERM to every process of the job, SIGKILL 5 s later, and requeues it). The restarted job
must resume the same sweep and finish it with exactly the planned runs, and everything it recorded —
trials, per-epoch curves, MLflow runs — must equal a local, uninterrupted ``spikesweep sweep`` of the same
space: the engine is deterministic on CPU, and a trial cut short resumes from its last epoch checkpoint.
The local run goes at the same time as the Slurm job, to keep the test short; both run the smoke space
with 4 epochs per trial instead of 8, on half the nshapes recordings at 24 px instead of 32 (the same
sweep otherwise: 4 trials, 2 at a time), which keeps every step of the preemption — a trial finished,
others cut mid-run, a requeued job resuming them — at a fraction of the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from slurm_cluster import SlurmCluster

from orchestrator.slurm.status import read_events

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "search_spaces" / "smoke.yaml"
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
# Columns that legitimately differ between two runs of the same sweep.
RUN_SPECIFIC = {"trial_id", "optuna_trial", "mlflow_run_id", "wall_time_s", "hostname"}
TIMINGS = {"trial_id", "epoch_time_s", "samples_per_s", "peak_mem_mb", "wall_time_s"}
EPOCHS = 4


def cut_mid_run(sweep_dir: Path) -> bool:
    """A trial has finished and another has reported its second epoch, with two to go: preempting now
    stops that one mid-run with a checkpoint to resume from (Tune registers an epoch's checkpoint a step
    after the result, so the first epoch alone may have none yet)."""
    try:
        rows = pq.read_table(sweep_dir / "trials.parquet").to_pylist()
        done = {r["plan_key"] for r in rows if r["status"] == "COMPLETE"}
        lines = (sweep_dir / "journal.jsonl").read_text().splitlines()
    except (OSError, ValueError):  # not written yet
        return False
    latest: dict[str, int] = {}
    for line in lines:
        if line.strip().endswith("}"):
            event = json.loads(line)
            latest[event["plan_key"]] = max(latest.get(event["plan_key"], -1), event["epoch"])
    return bool(done) and any(epoch == 1 and key not in done for key, epoch in latest.items())


def spikesweep(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args], env=env, cwd=cwd, capture_output=True, text=True
    )


def rows_by_run(path: Path, drop: set[str]) -> dict[tuple, dict]:
    table = pq.read_table(path).to_pylist()
    keyed = {}
    for row in table:
        key = (row["plan_key"], row["seed"]) + ((row["epoch"],) if "epoch" in row else ())
        assert key not in keyed, f"duplicate row {key} in {path}"
        keyed[key] = {k: v for k, v in row.items() if k not in drop}
    return keyed


def mlflow_records(sweep_dir: Path) -> dict[str, dict]:
    """Per run key: status, params, tags that matter, and every metric's full history."""
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    client = MlflowClient(f"sqlite:///{sweep_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(sweep_dir.name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    records = {}
    for run in runs:
        role = run.data.tags.get("spikesweep.role")
        key = run.data.tags.get("spikesweep.run_key", role)
        assert key not in records, f"two MLflow runs for {key} in {sweep_dir}"
        history = {
            name: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, name)]
            for name in run.data.metrics
            if name not in TIMINGS
        }
        tags = {k: v for k, v in run.data.tags.items() if k.startswith("spikesweep.") and "trial" not in k}
        tags.pop("spikesweep.sweep_id", None)
        tags.pop("spikesweep.hostname", None)
        records[key] = {"status": run.info.status, "role": role, "params": run.data.params, "tags": tags}
        if role == "trial":
            records[key]["metrics"] = history
    return records


def short_smoke(tmp_path: Path) -> Path:
    """``search_spaces/smoke.yaml`` with 4 epochs per trial on half the recordings at 24 px (the file is
    copied, not changed): an epoch costs about a quarter of the smoke space's."""
    text = SMOKE.read_text()
    assert text.count("\n  epochs: 8 ") == 1
    path = tmp_path / "smoke.yaml"
    short = f"\n  epochs: {EPOCHS}\n  data: {{nshapes_per_class: 20, event_size: 24}}  "
    path.write_text(text.replace("\n  epochs: 8 ", short))
    return path


def test_preempted_slurm_sweep_resumes_and_equals_a_local_run(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    env = {**slurm_cluster.env, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    space = short_smoke(tmp_path)
    local = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "sweep", str(space), "--storage", str(tmp_path / "local")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        submitted = spikesweep(
            "slurm", "submit", str(space), "--storage", str(tmp_path / "cluster"),
            "--nodes", "1", "--cpus-per-node", "2", "--time", "30:00", "--join-timeout", "120",
            env=env, cwd=tmp_path,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.split()[2].rstrip(":")
        sweep_dir = tmp_path / "cluster" / "smoke"
        job_log = sweep_dir / "slurm" / f"slurm-{job_id}.out"

        # preempt once the sweep is under way: some trial has finished, not all of them
        def under_way(fields: dict) -> bool:
            return cut_mid_run(sweep_dir) or fields.get("JobState") in FINAL_STATES

        fields = slurm_cluster.wait_for(
            job_id, under_way, timeout=240, poll=1, what="a finished trial and another one mid-run"
        )
        assert fields["JobState"] == "RUNNING", job_log.read_text()
        done_before = pq.read_table(sweep_dir / "trials.parquet").column("status").to_pylist()
        urgent = subprocess.run(
            ["sbatch", "--parsable", "--partition=urgent", f"--nodelist={fields['NodeList']}",
             "--cpus-per-task=2", f"--output={tmp_path / 'urgent.out'}", "--wrap=sleep 3"],
            env=slurm_cluster.env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        slurm_cluster.restart_requeued(job_id)
        slurm_cluster.wait_for_state(urgent, FINAL_STATES, timeout=30)
        fields = slurm_cluster.wait_for_state(job_id, FINAL_STATES, timeout=300)
        assert fields["JobState"] == "COMPLETED" and fields["Restarts"] == "1", job_log.read_text()
        local_out, _ = local.communicate(timeout=300)
        assert local.returncode == 0, local_out
    finally:
        if local.poll() is None:
            local.kill()
            local.wait()

    # it was really cut mid-sweep, and the restarted job resumed rather than started over
    assert 0 < done_before.count("COMPLETE") < 4, done_before
    runs = {}
    for event in read_events(sweep_dir / "slurm"):
        runs.setdefault(event.restart, []).append(event.message)
    assert sorted(runs) == [0, 1]
    assert runs[1][-1] == "completed: the sweep finished"
    assert "[sweep] resuming smoke" in job_log.read_text()
    assert "resumed from its checkpoint" in job_log.read_text()  # the trial cut mid-run

    # the same runs with the same results, epoch by epoch, as the local run — and no duplicates
    local_dir = tmp_path / "local" / "smoke"
    trials = rows_by_run(sweep_dir / "trials.parquet", RUN_SPECIFIC)
    assert trials == rows_by_run(local_dir / "trials.parquet", RUN_SPECIFIC)
    assert len(trials) == 4 and {row["status"] for row in trials.values()} == {"COMPLETE"}
    assert rows_by_run(sweep_dir / "epochs.parquet", TIMINGS) == rows_by_run(
        local_dir / "epochs.parquet", TIMINGS
    )

    # MLflow: one run per trial (none opened twice by the restart), none left RUNNING, same records
    cluster_mlflow, local_mlflow = mlflow_records(sweep_dir), mlflow_records(local_dir)
    assert {key: r["status"] for key, r in cluster_mlflow.items()} == dict.fromkeys(
        cluster_mlflow, "FINISHED"
    )
    assert sum(r["role"] == "trial" for r in cluster_mlflow.values()) == 4
    assert cluster_mlflow == local_mlflow

    status = spikesweep(
        "slurm", "status", "smoke", "--storage", str(tmp_path / "cluster"), env=env, cwd=tmp_path
    )
    assert status.returncode == 0, status.stderr
    assert (
        f"job {job_id}: COMPLETED" in status.stdout
        and "progress: 4/4 runs finished (COMPLETE 4)" in status.stdout
    )
    assert not [
        line
        for line in os.popen("ps -eo args").read().splitlines()
        if str(slurm_cluster.ray_tmp_root) in line
    ]
