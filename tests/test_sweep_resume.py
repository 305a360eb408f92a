"""Stopping and resuming the real ``spikesweep sweep`` command (a subprocess running its own local Ray
cluster): a graceful stop (SIGUSR1, then SIGTERM, which Tune itself ignores) and a hard kill (SIGKILL)
mid-sweep; rerunning the same command finishes the sweep with exactly the planned trials, one MLflow
run each and nothing left RUNNING anywhere. A rerun with a changed space is refused."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
import yaml
from mlflow import MlflowClient

from engine.errors import ConfigError
from orchestrator.tune.driver import run_sweep

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SPACE = {
    "name": "resume",
    "preset": "quick",
    "base": {
        "T": 2,
        "epochs": 4,
        "batch_size": 8,
        "model": {"width": 0.125},
        "data": {"nshapes_classes": 4, "nshapes_per_class": 12, "event_size": 16},
        "optim": {"lr_scaling": "none"},
    },
    "parameters": {"optim.lr": [0.01, 0.003]},
    "seeds": [0, 1],
    "max_concurrent_trials": 2,
    "progress": {"interval_s": 60},
}
PLAN_KEYS = {f"g{i:04d}s{s}" for i in range(2) for s in (0, 1)}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One data cache for the session's sweep tests (nshapes is generated once)."""
    return Path(os.environ.get("SPIKESWEEP_CACHE") or tmp_path_factory.getbasetemp() / "spikesweep-cache")


class SweepCommand:
    """``python -m orchestrator.cli sweep SPACE --storage DIR`` in its own session (process group)."""

    def __init__(self, root: Path, cache: Path, **space: object) -> None:
        self.root = root
        self.space = root / "space.yaml"
        self.space.write_text(yaml.safe_dump({**SPACE, **space}, sort_keys=False))
        self.storage = root / "sweeps"
        self.sweep_dir = self.storage / "resume"
        extra = {"RAY_AUTH_MODE": "disabled", "SPIKESWEEP_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
        self.env = {**os.environ, **extra}
        self.runs = 0

    def start(self) -> subprocess.Popen:
        self.runs += 1
        log = (self.root / f"run{self.runs}.log").open("w")
        argv = ["-m", "orchestrator.cli", "sweep", str(self.space), "--storage", str(self.storage)]
        return subprocess.Popen(
            [sys.executable, *argv],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run(self, timeout: float = 300) -> subprocess.CompletedProcess:
        process = self.start()
        try:
            process.wait(timeout=timeout)
        finally:
            _kill_group(process)
        return subprocess.CompletedProcess(process.args, process.returncode, self.log(self.runs))

    def log(self, run: int) -> str:
        return (self.root / f"run{run}.log").read_text()

    def wait_until(self, process: subprocess.Popen, ready, what: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the sweep ended before {what}:\n{self.log(self.runs)}"
            if ready():
                return
            time.sleep(0.2)
        raise AssertionError(f"not {what} within {timeout}s:\n{self.log(self.runs)}")

    def completed(self) -> int:
        """Trials COMPLETE in ``trials.parquet`` (rewritten whenever a trial ends)."""
        try:
            rows = pq.read_table(self.sweep_dir / "trials.parquet").to_pylist()
        except (OSError, ValueError):  # not written yet
            return 0
        return sum(r["status"] == "COMPLETE" for r in rows)

    def started(self, epoch: int = 0) -> int:
        """Trials that reported ``epoch`` (the driver journals every result as it arrives).

        Tune registers a result's checkpoint a step *after* the callbacks see the result, so a stop
        right after a trial's first epoch may find no checkpoint yet (the trial then reruns that epoch,
        and the records keep one copy): tests that need a checkpoint to resume from wait for epoch 1.
        """
        journal = self.sweep_dir / "journal.jsonl"
        if not journal.is_file():
            return 0
        lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip().endswith("}")]
        return len({e["plan_key"] for e in lines if e["epoch"] == epoch})

    def mlflow(self) -> tuple[MlflowClient, list, list]:
        client = MlflowClient(f"sqlite:///{self.sweep_dir / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("resume")
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        parents = [r for r in runs if r.data.tags.get("spikesweep.role") == "sweep"]
        children = [r for r in runs if r.data.tags.get("spikesweep.role") == "trial"]
        return client, parents, children

    def study(self) -> optuna.Study:
        return optuna.load_study(study_name="resume", storage=f"sqlite:///{self.sweep_dir / 'optuna.db'}")


def _kill_group(process: subprocess.Popen) -> None:
    """Stop whatever the command left behind (a SIGKILLed driver orphans its Ray helper processes)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def assert_finished_exactly_once(command: SweepCommand) -> None:
    rows = pq.read_table(command.sweep_dir / "trials.parquet").to_pylist()
    assert {r["plan_key"] for r in rows} == PLAN_KEYS and len(rows) == len(PLAN_KEYS)
    assert {r["status"] for r in rows} == {"COMPLETE"} and {r["epochs_run"] for r in rows} == {4}
    epochs = pq.read_table(command.sweep_dir / "epochs.parquet").to_pylist()
    assert sorted(collections.Counter((r["plan_key"], r["epoch"]) for r in epochs).values()) == [1] * 16

    trials = command.study().trials
    assert len(trials) == len(PLAN_KEYS), [t.user_attrs["plan_key"] for t in trials]
    assert {t.state.name for t in trials} == {"COMPLETE"}

    client, parents, children = command.mlflow()
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    keys = [c.data.tags["spikesweep.run_key"] for c in children]
    assert sorted(keys) == sorted(f"{k}:{k[-1]}" for k in PLAN_KEYS)  # one run per trial, no duplicates
    assert {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "test_top1")]
        assert sorted(steps) == [0, 1, 2, 3], (child.data.tags["spikesweep.run_key"], steps)
    by_run = {r["mlflow_run_id"]: r for r in rows}
    assert set(by_run) == {c.info.run_id for c in children}


def test_graceful_stops_resume_without_duplicates(tmp_path, cache) -> None:
    # One trial at a time, so "the next trial reported its second epoch" is a moment at which a trial is
    # mid-run with a checkpoint and two epochs to go: the stop always interrupts it, never races its end.
    command = SweepCommand(tmp_path, cache, max_concurrent_trials=1)

    # SIGUSR1 (what Slurm sends before preemption): Tune stops and saves its state.
    first = command.start()
    try:
        command.wait_until(first, lambda: command.started(epoch=1) >= 2, "a second trial's second epoch")
        first.send_signal(signal.SIGUSR1)
        assert first.wait(timeout=120) == 75, command.log(1)
    finally:
        _kill_group(first)
    resume = (
        f"its state is saved — resume with:\n  spikesweep sweep {command.space} --storage {command.storage}"
    )
    assert resume in command.log(1)
    assert command.completed() == 1
    # One word for the trial that was stopped, in the last progress table and in the closing line alike
    # (the table used to call it pending and the closing line running).
    stopped = command.log(1)
    assert "stopped before the end (1 complete, 1 interrupted)" in stopped
    last_table = stopped[stopped.rindex("== sweep resume:") :].splitlines()
    assert "1 complete, 1 interrupted" in last_table[0], last_table[0]
    assert any(row.strip().startswith("INTERRUPTED") for row in last_table[2:]), last_table
    _, parents, children = command.mlflow()
    assert parents[0].info.status == "KILLED" and parents[0].data.tags["spikesweep.status"] == "INTERRUPTED"
    assert {c.info.status for c in children} == {"FINISHED", "KILLED"}, "no MLflow run is left dangling"
    assert {t.state.name for t in command.study().trials} == {"COMPLETE", "RUNNING"}  # paused, not lost

    # A changed space is refused before anything starts (here in-process: the CLI prints the same).
    changed = tmp_path / "changed" / "space.yaml"
    changed.parent.mkdir()
    changed.write_text(yaml.safe_dump({**SPACE, "parameters": {"optim.lr": [0.01, 0.02]}}, sort_keys=False))
    with pytest.raises(ConfigError) as refused:
        run_sweep(changed, storage=command.storage)
    assert "refusing to resume" in str(refused.value) and "parameters.optim.lr" in str(refused.value)

    # SIGTERM (what `scancel` and most schedulers send): translated into the same graceful stop. The
    # interrupted trial resumes from its checkpoint, finishes, and the third one starts.
    second = command.start()
    try:
        command.wait_until(second, lambda: command.started(epoch=1) >= 3, "a third trial's second epoch")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=120) == 75, command.log(command.runs)
    finally:
        _kill_group(second)
    assert "resuming resume" in command.log(command.runs)
    assert command.completed() == 2

    final = command.run()
    assert final.returncode == 0, final.stdout
    assert "resume complete: 4 complete" in final.stdout
    assert_finished_exactly_once(command)
    resumed = command.log(2) + command.log(3)
    assert "resumed from its checkpoint" in resumed, "interrupted trials resume from their checkpoints"
    # quiet by default: none of Ray's banners and hints, progress as k of N runs
    for noise in ("Configuration for experiment", "TensorBoard", "Tuner.restore", "Started a local Ray"):
        assert noise not in final.stdout + resumed, noise
    assert "of 4 runs done" in final.stdout + resumed
    # rerunning a finished sweep prints its summary without starting Ray
    again = command.run()
    assert again.returncode == 0 and "is complete; nothing to run (Ray not started)" in again.stdout
    assert "resume complete: 4 complete" in again.stdout


def test_killed_driver_resumes_without_duplicates(tmp_path, cache) -> None:
    command = SweepCommand(tmp_path, cache)
    first = command.start()
    try:
        command.wait_until(first, lambda: command.completed() >= 2, "two trials finished")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        _kill_group(first)
    assert first.returncode == -signal.SIGKILL

    final = command.run()
    assert final.returncode == 0, final.stdout
    assert "resuming resume" in final.stdout
    assert_finished_exactly_once(command)
