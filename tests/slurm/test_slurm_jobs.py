"""The job script on a real (one-machine, multi-slurmd) Slurm: Ray bootstrap, signals, requeue, bad input.

The driver here is ``probe_driver.py`` — a real Ray program called exactly like ``spikesweep sweep`` —
so that what the bootstrap built (which nodes joined, with which resources and auth) and which process
the trap signalled can be checked directly. ``test_slurm_sweep.py`` runs the real sweep.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster

from orchestrator.cli import main
from orchestrator.slurm.render import SweepJob, render_sweep_script, write_job_files
from orchestrator.slurm.request import SlurmRequest
from orchestrator.slurm.status import read_events

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

PROBE = Path(__file__).with_name("probe_driver.py")
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
TINY_SPACE = """\
name: tiny
preset: quick
seeds: [1]
parameters:
  method.beta: [0.0, 0.5]
resources: {cpu: 1}
"""


def probe_job(tmp_path: Path, request: SlurmRequest, name: str) -> Path:
    """Write the real job files, with the probe as the driver; return the script."""
    space = tmp_path / f"{name}.yaml"
    space.write_text(f"name: {name}\n")  # the probe never reads it
    storage = tmp_path / "sweeps"
    files = write_job_files(request, space_path=space, name=name, storage=storage)
    driver = tmp_path / f"{name}-driver"
    # exec keeps the pid: the process the trap signals is the Python driver itself
    driver.write_text(f'#!/bin/sh\nexec {sys.executable} {PROBE} "$@"\n')
    driver.chmod(0o755)
    job = SweepJob(name, storage, files.space, Path(sys.executable), tmp_path, driver=driver)
    files.script.write_text(render_sweep_script(request, job))
    return files.script


def sbatch(cluster: SlurmCluster, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["sbatch", "--parsable", *args], env=env or cluster.env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip().split(";")[0]


def ray_processes_of(cluster: SlurmCluster, job_id: str) -> list[str]:
    """Command lines of live processes using the job's Ray temp dirs (there should be none after it)."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if f"{cluster.ray_tmp_root}/ray-{job_id}-" in line]


def test_three_node_job_boots_ray_then_usr1_saves_requeues_and_resumes(
    slurm_env: SlurmCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    never_joining_job: tuple[str, Path],  # submitted first, so that it runs alongside this job
) -> None:
    request = SlurmRequest(nodes=3, cpus_per_node=1, time="10:00", join_timeout_s=150)
    script = probe_job(tmp_path, request, "probe3")
    job_dir = script.parent
    # plain sbatch runs the rendered script as it is
    job_id = sbatch(slurm_env, str(script), env={**slurm_env.env, "PROBE_WAIT_FOR_USR1": "1"})
    first = tmp_path / "sweeps" / "probe3" / "probe-0.json"
    slurm_env.wait_for(
        job_id, lambda f: first.exists() or f.get("JobState") in FINAL_STATES, 200, what="driver"
    )
    assert first.exists(), (job_dir / f"slurm-{job_id}.out").read_text()

    # what Slurm does ahead of the time limit (--signal=B:USR1@lead): signal the batch shell only
    slurm_env.run("scancel", "--batch", "--signal=USR1", job_id)
    slurm_env.restart_requeued(job_id)
    fields = slurm_env.wait_for_state(job_id, FINAL_STATES, timeout=200)
    log = (job_dir / f"slurm-{job_id}.out").read_text()
    assert fields["JobState"] == "COMPLETED" and fields["Restarts"] == "1", log

    for restart in (0, 1):
        report = json.loads((tmp_path / "sweeps" / "probe3" / f"probe-{restart}.json").read_text())
        # every Slurm node joined as its own Ray node, with the CPUs Slurm allocated (1 of the node's 2)
        assert report["nodes"] == {name: {"cpus": 1.0, "gpus": 0.0} for name in ("n1", "n2", "n3")}
        # a task placed on each Ray node ran on that Slurm node, under token authentication
        assert report["tasks"] == [{"slurm_node": name, "auth": "token"} for name in ("n1", "n2", "n3")]
    interrupted = json.loads(first.read_text())
    assert interrupted["signal"] == 10  # SIGUSR1, received by the Python driver process itself

    events = {0: [], 1: []}
    for event in read_events(job_dir):
        events[event.restart].append(event.message)
    assert events[0][0].startswith("start on 3 node(s) n[1-3] (restart 0); Ray head n1, port ")
    assert re.match(r"ray cluster up at [\d.]+:\d+: 3 node\(s\) joined in \d+ s \(n1, n2, n3\)", events[0][1])
    assert f"to the sweep driver (pid {interrupted['pid']}) so it saves its state" in events[0][3]
    assert events[0][4].startswith("requeue: the sweep stopped early with its state saved")
    assert events[1][0].startswith("start on 3 node(s) n[1-3] (restart 1)")
    assert events[1][-1] == "completed: the sweep finished"  # and, ending normally, not requeued again
    for node in ("n1", "n2", "n3"):  # each node logged under its Slurm name; Ray was stopped by SIGTERM
        node_log = (job_dir / f"ray-{job_id}-{node}.log").read_text()
        assert node_log.count("received SIGTERM") == 2, node_log[-2000:]
    assert not list(job_dir.glob("ray-token-*"))  # the job's auth token is removed at the end
    assert ray_processes_of(slurm_env, job_id) == []

    monkeypatch.chdir(tmp_path)
    (job_dir / "jobs.tsv").write_text(f"2026-01-01 00:00:00\t{job_id}\t{script}\t3 node(s)\n")
    status = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "slurm", "status", "probe3", "--storage", "sweeps"],
        env=slurm_env.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"job {job_id}: COMPLETED" in status and "restarts 1" in status and "on n[1-3]" in status
    assert f"job {job_id} run 1: completed: the sweep finished" in status


@pytest.fixture(scope="module")
def never_joining_job(
    slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """A 2-node job whose worker on n2 cannot start Ray, submitted when the module starts.

    It runs alongside the other jobs of this module (it needs 1 CPU on n1 and n2), so its join timeout
    does not add to the test time; its test only collects the result.
    """
    tmp_path = tmp_path_factory.mktemp("nojoin")
    request = SlurmRequest(nodes=2, cpus_per_node=1, time="10:00", join_timeout_s=25)
    script = probe_job(tmp_path, request, "nojoin")
    job_id = sbatch(slurm_cluster, "--hold", str(script))
    # n2's Ray temp dir cannot be created (a file is in the way): its `ray start` fails, it never joins
    (slurm_cluster.ray_tmp_root / f"ray-{job_id}-n2").write_text("in the way")
    slurm_cluster.run("scontrol", "release", job_id)
    return job_id, script


def test_a_worker_that_never_joins_fails_the_job_naming_its_node(
    slurm_cluster: SlurmCluster, never_joining_job: tuple[str, Path]
) -> None:
    job_id, script = never_joining_job
    fields = slurm_cluster.wait_for_state(job_id, FINAL_STATES, timeout=150)
    job_dir = script.parent
    assert fields["JobState"] == "FAILED" and fields["ExitCode"] == "1:0"
    failure = read_events(job_dir)[-1].message
    assert failure.startswith("failed: Ray node(s) n2 did not join the cluster at ")
    assert f"within 25 s (joined: n1); see {job_dir}/ray-{job_id}-n2.log" in failure
    assert "cannot create Ray's temp dir" in (job_dir / f"ray-{job_id}-n2.log").read_text()
    assert not (job_dir.parent / "probe-0.json").exists()  # the driver never started
    assert fields["Restarts"] == "0"
    assert ray_processes_of(slurm_cluster, job_id) == []


@pytest.mark.parametrize(
    ("flags", "slurm_says", "advice"),
    [
        (["--partition", "nope"], "invalid partition specified: nope", "partitions: debug, urgent, short"),
        (
            ["--cpus-per-node", "64"],
            "Requested node configuration is not available",
            "no partition can give 1 node(s) with 64 CPU(s) each; partitions here: debug (default): "
            "3 node(s), 2 CPUs and 4000 MB per node, no GPUs",
        ),
        (["--nodes", "5"], "Requested node configuration is not available", "Lower --nodes"),
        (["--gpus-per-node", "1"], "Invalid generic resource (gres) specification", "Pick a GPU partition"),
    ],
)
def test_refused_requests_show_slurms_message_and_what_to_change(
    slurm_env: SlurmCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    flags: list[str],
    slurm_says: str,
    advice: str,
) -> None:
    space = tmp_path / "tiny.yaml"
    # GPUs are requested only for a space whose trials use them (a CPU-only space drops --gpus-per-node)
    space.write_text(
        TINY_SPACE.replace("{cpu: 1}", "{cpu: 1, gpu: 1}") if "--gpus-per-node" in flags else TINY_SPACE
    )
    before = slurm_env.run("squeue", "-h", "-o", "%i").stdout.split()
    code = main(["slurm", "submit", str(space), "--storage", str(tmp_path / "s"), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert "Slurm refused the job" in err and slurm_says in err and advice in err
    assert slurm_env.run("squeue", "-h", "-o", "%i").stdout.split() == before  # nothing was queued


def test_a_time_limit_above_the_partitions_is_refused_before_submission(
    slurm_env: SlurmCluster, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Slurm itself would accept it and leave it pending forever (reason PartitionTimeLimit)
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    before = slurm_env.run("squeue", "-h", "-o", "%i").stdout.split()
    code = main(
        ["slurm", "submit", str(space), "--storage", str(tmp_path / "s"), "-p", "short", "--time", "10:00"]
    )
    assert code == 2
    assert "--time 10:00 exceeds partition short's limit of 5:00" in capsys.readouterr().err
    assert slurm_env.run("squeue", "-h", "-o", "%i").stdout.split() == before
