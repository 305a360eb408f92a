"""The sbatch script as text, the request checks and the CLI paths that need no running Slurm."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ConfigError
from orchestrator.cli import main
from orchestrator.slurm.join import JoinResult, joined_nodes
from orchestrator.slurm.render import SweepJob, render_sweep_script, render_template, template_dir
from orchestrator.slurm.request import SlurmRequest, parse_slurm_time
from orchestrator.slurm.status import format_status, read_events

TINY_SPACE = """\
name: tiny
preset: quick
seeds: [1, 2]
parameters:
  method.beta: [0.0, 0.5]
resources: {cpu: 1}
"""


@pytest.fixture
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


def big_job(tmp_path: Path) -> tuple[SlurmRequest, SweepJob]:
    request = SlurmRequest(
        nodes=4,
        cpus_per_node=64,
        gpus_per_node=8,
        time="2-00:00:00",
        partition="gpu",
        account="snn-lab",
        mem="480G",
        signal_lead_s=600,
    )
    job = SweepJob(
        name="paper",
        storage=tmp_path / "sweeps",
        space=tmp_path / "sweeps" / "paper" / "slurm" / "paper.yaml",
        python=Path(sys.executable),
        workdir=tmp_path,
    )
    return request, job


def _bash(script: str, env: dict[str, str]) -> str:
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True).stdout


# --- time limits and requests ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 5400),
        ("90:30", 5430),
        ("04:00:00", 14400),
        ("1-12", 129600),
        ("1-12:30", 131400),
        ("2-00:00:01", 172801),
    ],
)
def test_parse_slurm_time_reads_every_slurm_format(text: str, seconds: int) -> None:
    assert parse_slurm_time(text) == seconds


@pytest.mark.parametrize("text", ["", "1h", "UNLIMITED", "1:2:3:4", "0", "-5"])
def test_parse_slurm_time_refuses_what_slurm_would_not_read(text: str) -> None:
    with pytest.raises(ConfigError, match="--time"):
        parse_slurm_time(text)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"nodes": 0}, "--nodes must be an integer >= 1"),
        ({"cpus_per_node": 0}, "--cpus-per-node"),
        ({"gpus_per_node": -1}, "--gpus-per-node"),
        ({"time": "00:04:00", "signal_lead_s": 300}, "Raise --time or lower --signal-lead"),
        ({"mem": "lots"}, "--mem 'lots' is not a Slurm memory size"),
        ({"partition": "gpu nodes"}, "--partition 'gpu nodes'"),
        ({"extra_directives": ("qos=high",)}, "--sbatch 'qos=high'"),
    ],
)
def test_request_errors_name_the_flag_to_change(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        SlurmRequest(**fields).validate()


def test_template_placeholders_must_all_be_given_and_all_used() -> None:
    assert render_template("a={{ a }} b={{b}}", {"a": "1", "b": "2"}) == "a=1 b=2"
    with pytest.raises(KeyError, match="has no value"):
        render_template("{{ a }} {{ c }}", {"a": "1"})
    with pytest.raises(KeyError, match="never used"):
        render_template("{{ a }}", {"a": "1", "b": "2"})


# --- the rendered script for a 4-node, 8-GPU-per-node request -------------------------------------------
def test_four_node_eight_gpu_script_requests_the_resources(tmp_path: Path) -> None:
    script = render_sweep_script(*big_job(tmp_path))
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives == [
        "#SBATCH --job-name=sweep-paper",
        "#SBATCH --nodes=4",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=64",
        "#SBATCH --time=2-00:00:00",
        "#SBATCH --gres=gpu:8",
        "#SBATCH --mem=480G",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=snn-lab",
        f"#SBATCH --output={tmp_path}/sweeps/paper/slurm/slurm-%j.out",
        "#SBATCH --open-mode=append",
        f"#SBATCH --chdir={tmp_path}",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR1@600",
    ]
    # sbatch stops reading directives at the first command: all of them must come before it.
    lines = script.splitlines()
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    assert max(i for i, line in enumerate(lines) if line.startswith("#SBATCH")) < first_command
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_four_node_script_derives_ports_from_the_job_id(tmp_path: Path) -> None:
    script = render_sweep_script(*big_job(tmp_path))
    port_lines = "\n".join(line for line in script.splitlines() if line.startswith(("RAY_PORT=", "RAY_DASH")))
    ports = {}
    for job_id in (123456, 123457, 128456, 5000):
        out = _bash(port_lines + '\necho "$RAY_PORT $RAY_DASHBOARD_PORT"', {"SLURM_JOB_ID": str(job_id)})
        gcs, dashboard = map(int, out.split())
        assert gcs == 20000 + 2 * (job_id % 5000) and dashboard == gcs + 1
        assert 20000 <= gcs < 30000  # below Linux's ephemeral range, above the well-known ports
        ports[job_id] = gcs
    assert ports[123456] != ports[123457]  # neighbouring jobs sharing a node do not collide
    # the head binds the derived port on its IP; workers join that address; the dashboard stays local
    assert '"$RAY_NODE" head "$PYTHON" "$HEAD_IP" "$RAY_PORT" "$RAY_DASHBOARD_PORT" &' in script
    assert 'RAY_ADDRESS="$HEAD_IP:$RAY_PORT"' in script
    assert '"$RAY_NODE" worker "$PYTHON" "$RAY_ADDRESS" &' in script
    helper = (template_dir() / "ray_node.sh").read_text()
    assert "--include-dashboard=false --dashboard-host=127.0.0.1" in helper


def test_four_node_script_forwards_signals_to_the_driver_and_requeues(tmp_path: Path) -> None:
    script = render_sweep_script(*big_job(tmp_path))
    for signal_name in ("USR1", "TERM", "INT"):
        assert f"trap 'on_stop_signal {signal_name}' {signal_name}" in script
    # the driver is the python process itself, started in the background so that the trap runs while
    # the script waits; the trap signals that pid, not a wrapper
    assert re.search(
        r'^    "\$SPIKESWEEP" sweep .* --address "\$RAY_ADDRESS" &\n    DRIVER_PID=\$!', script, re.M
    )
    assert 'kill -USR1 "$DRIVER_PID"' in script
    # requeue only after a USR1 that stopped the sweep early (exit 75); never after a normal end
    requeue = script.index('scontrol requeue "$SLURM_JOB_ID"')
    guard = script.rindex("if ((DRIVER_RC == EXIT_INTERRUPTED)) && [[ $STOP_SIGNAL == USR1 ]]", 0, requeue)
    completed = script.index('event "completed: the sweep finished"')
    assert completed < guard < requeue
    assert "exit 0\nfi" in script[completed : completed + 60]
    assert "ray stop" not in script.replace("never `ray stop`", "")
    # every node gets the job's token; workers start with srun on all nodes but the head, one task each
    assert "export RAY_AUTH_MODE=token" in script and 'export RAY_AUTH_TOKEN_PATH="$LOG_DIR/' in script
    assert (
        'srun --nodes="$NUM_WORKERS" --ntasks="$NUM_WORKERS" --ntasks-per-node=1 --exclude="$HEAD_NODE"'
        in script
    )
    # ... asking for the job's whole share of each node: a step's defaults can be smaller
    worker_step = script[script.index('srun --nodes="$NUM_WORKERS"') :]
    worker_step = worker_step[: worker_step.index("&\n")]
    for flag in (
        '--cpus-per-task="$SLURM_CPUS_PER_TASK"',
        "--mem=0",
        '"${WORKER_GPUS[@]}"',
    ):
        assert flag in worker_step
    assert 'WORKER_GPUS=(--gres="gpu:$SLURM_GPUS_ON_NODE")' in script


def test_node_helper_takes_cpus_gpus_and_memory_from_the_allocation(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "SLURMD_NODENAME": "gpu017",
        "SLURM_JOB_ID": "123456",
        "SLURM_CPUS_ON_NODE": "64",
        "SLURM_MEM_PER_NODE": "480000",
        "SPIKESWEEP_RAY_TMP_ROOT": "/tmp",
    }
    helper = str(template_dir() / "ray_node.sh")

    def command(*args: str, **extra: str) -> list[str]:
        result = subprocess.run(
            ["bash", helper, "--dry-run", *args], env={**env, **extra}, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    worker = command("worker", sys.executable, "10.1.2.3:26912", SLURM_GPUS_ON_NODE="8")
    assert worker[0] == str(Path(sys.executable).parent / "ray")
    assert worker[1:3] == ["start", "--block"]
    assert "--num-cpus=64" in worker and "--num-gpus=8" in worker
    assert "--address=10.1.2.3:26912" in worker and "--head" not in worker
    assert "--temp-dir=/tmp/ray-123456-gpu017" in worker and "--labels=slurm-node=gpu017" in worker
    store = 480000 * 1024 * 1024 * 3 // 10
    assert f"--object-store-memory={store}" in worker and f"--memory={480000 * 1024 * 1024 - store}" in worker
    # with --gres only CUDA_VISIBLE_DEVICES may be set: count it; no GPUs at all means 0
    assert "--num-gpus=4" in command("worker", sys.executable, "h:1", CUDA_VISIBLE_DEVICES="0,1,2,3")
    head = command("head", sys.executable, "10.1.2.3", "26912", "26913")
    assert "--num-gpus=0" in head
    assert {"--head", "--node-ip-address=10.1.2.3", "--port=26912", "--dashboard-port=26913"} <= set(head)
    # a temp dir too long for Ray's 107-byte socket paths falls back to /tmp
    long_root = "/scratch/slurm_tmpdir/job_123456/a/very/long/path"
    assert "--temp-dir=/tmp/ray-123456-gpu017" in command(
        "head", sys.executable, "ip", "1", "2", TMPDIR=long_root
    )


def test_node_helper_refuses_to_run_outside_a_job() -> None:
    result = subprocess.run(
        ["bash", str(template_dir() / "ray_node.sh"), "worker", sys.executable, "h:1"],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "must run inside a Slurm job" in result.stderr


# --- the CLI without a Slurm cluster ---------------------------------------------------------------------
def test_dry_run_prints_the_script_and_writes_nothing(
    tiny_space: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    storage = tmp_path / "sweeps"
    code = main(["slurm", "submit", str(tiny_space), "--storage", str(storage), "--nodes", "2", "--dry-run"])
    out, err = capsys.readouterr()
    job_dir = storage / "tiny" / "slurm"
    assert code == 0
    assert "#SBATCH --nodes=2" in out and "nothing written or submitted" in err
    assert f"the script would go to {job_dir / 'sweep.sbatch'}" in err
    helper = job_dir / "ray_node.sh"
    assert f"RAY_NODE={helper}" in out and f"SPACE={job_dir / 'tiny.yaml'}" in out
    assert not storage.exists()  # nothing written: not the script, not the sweep directory


def test_submit_writes_the_script_with_a_snapshot_of_the_space(tiny_space: Path, tmp_path: Path) -> None:
    from orchestrator.slurm.render import write_job_files
    from orchestrator.slurm.request import SlurmRequest

    storage = tmp_path / "sweeps"
    request = SlurmRequest(nodes=2, cpus_per_node=2, time="1:00:00").validate()
    files = write_job_files(request, space_path=tiny_space, name="tiny", storage=storage)
    job_dir = storage / "tiny" / "slurm"
    assert files.script.read_text() == files.text and "#SBATCH --nodes=2" in files.text
    assert (job_dir / "tiny.yaml").read_text() == TINY_SPACE  # the job runs a snapshot of the space
    helper = job_dir / "ray_node.sh"
    assert helper.read_text() == (template_dir() / "ray_node.sh").read_text()
    assert helper.stat().st_mode & stat.S_IXUSR
    assert not (job_dir / "jobs.tsv").exists()
    assert not (storage / "tiny" / "sweep.json").exists()  # the sweep itself starts only in the job


def test_the_script_fits_the_space(tiny_space: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No GPU request for a CPU-only space, the concurrency the space allows, the site's set-up lines."""
    setup = tmp_path / "site.sh"
    setup.write_text("export SITE_READY=yes\n")
    tiny_space.write_text(TINY_SPACE + "max_concurrent_trials: 2\n")
    argv = ["slurm", "submit", str(tiny_space), "--storage", str(tmp_path / "s"), "--gpus-per-node", "4"]
    code = main([*argv, "--cpus-per-node", "16", "--setup", str(setup), "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "--gres" not in "\n".join(line for line in out.splitlines() if line.startswith("#SBATCH"))
    assert "not requesting the 4 of --gpus-per-node" in err
    assert "room for 16 concurrent trial(s)" in err and "the space runs at most 2 at once" in err
    assert f"SETUP={tmp_path / 's' / 'tiny' / 'slurm' / 'setup.sh'}" in out
    # the set-up runs before Ray, in the batch script and (through SPIKESWEEP_SETUP) on the other nodes
    assert out.index('source "$SETUP"') < out.index('"$RAY_NODE" head')
    assert "SPIKESWEEP_SETUP" in (template_dir() / "ray_node.sh").read_text()
    missing = main([*argv, "--setup", str(tmp_path / "nope.sh"), "--dry-run"])
    assert missing == 2 and "--setup" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_submit_without_sbatch_says_where_to_run_it(
    tiny_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code = main(["slurm", "submit", str(tiny_space), "--storage", str(tmp_path / "sweeps")])
    err = capsys.readouterr().err
    assert code == 2
    assert "`sbatch` is not on PATH" in err and "login node" in err and "--dry-run" in err


def test_bad_space_fails_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    space = tmp_path / "bad.yaml"
    space.write_text(TINY_SPACE.replace("method.beta", "method.betta"))
    code = main(["slurm", "submit", str(space), "--storage", str(tmp_path / "sweeps"), "--dry-run"])
    assert code == 2
    assert "bad.yaml" in capsys.readouterr().err
    assert not (tmp_path / "sweeps").exists()


def test_a_request_without_room_for_one_trial_is_refused(
    tiny_space: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tiny_space.write_text(TINY_SPACE.replace("{cpu: 1}", "{cpu: 1, gpu: 0.5}"))
    code = main(["slurm", "submit", str(tiny_space), "--storage", str(tmp_path / "s"), "--dry-run"])
    assert code == 2
    assert "needs 0.5 GPU(s) (resources.gpu) but --gpus-per-node is 0" in capsys.readouterr().err


# --- join verdicts and the status report ----------------------------------------------------------------
def test_join_names_the_missing_nodes_and_their_logs() -> None:
    nodes = [
        {"Alive": True, "Labels": {"slurm-node": "n1"}},
        {"Alive": False, "Labels": {"slurm-node": "n3"}},
        {"Alive": True, "Labels": {"slurm-node": "n2"}},
        {"Alive": True, "Labels": {}},
    ]
    assert joined_nodes(nodes) == ("n1", "n2")
    result = JoinResult(expected=("n1", "n2", "n3", "n4"), joined=("n1", "n2"), waited_s=30.0)
    assert not result.ok and result.missing == ("n3", "n4")
    message = result.message("10.0.0.1:20002", 30, logs="/s/ray-7-<node>.log")
    assert message == (
        "Ray node(s) n3, n4 did not join the cluster at 10.0.0.1:20002 within 30 s (joined: n1, n2); "
        "see /s/ray-7-n3.log, /s/ray-7-n4.log"
    )
    no_head = JoinResult(("n1", "n2"), (), 30.0, head_reachable=False)
    assert not no_head.ok and "the Ray head on n1 did not listen" in no_head.message("a:1", 30)


def test_status_reads_the_job_record_even_without_slurm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = tmp_path / "tiny"
    (sweep / "slurm").mkdir(parents=True)
    (sweep / "slurm" / "events.tsv").write_text(
        "2026-01-01 10:00:00\t41\t0\tstart on 1 node(s) n1 (restart 0); Ray head n1, port 20082\n"
        "2026-01-01 11:00:00\t41\t0\trequeue: the sweep stopped early with its state saved; requeueing\n"
        "garbage line\n"
    )
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol here
    assert [e.message[:5] for e in read_events(sweep / "slurm")] == ["start", "reque"]
    report = format_status(sweep)
    assert "job 41: cannot ask Slurm" in report
    assert "job 41 run 0: requeue: the sweep stopped early" in report
    assert "the sweep has not started yet" in report


def test_progress_counts_runs_by_their_own_status(tmp_path: Path) -> None:
    """A seed-aware trial still RUNNING has finished seeds: they are finished runs, and count for best."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from orchestrator.slurm.status import sweep_progress
    from orchestrator.sweepdir import SweepDir

    layout = SweepDir(tmp_path / "seedaware")
    layout.root.mkdir()
    layout.meta_path.write_text("{}")
    table = pa.table(
        {
            "status": ["RUNNING", "RUNNING", "PRUNED", "COMPLETE"],
            "run_status": ["COMPLETE", "RUNNING", "COMPLETE", "COMPLETE"],
            "best_test_top1": [71.0, None, 40.0, 55.0],
        }
    )
    pq.write_table(table, layout.trials_parquet)
    progress = sweep_progress(layout.root)
    assert progress.statuses == {"COMPLETE": 3, "RUNNING": 1}
    assert progress.finished_runs == 3
