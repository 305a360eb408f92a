"""``spikesweep slurm submit|status``: run a sweep on a Slurm allocation as one Ray cluster.

``submit`` validates the space and the request, renders ``slurm/sweep.sbatch`` into
``<storage>/<name>/slurm/sweep.sbatch`` (readable, and runnable again with plain ``sbatch``), submits it and
prints the job id. The job boots Ray on its nodes, runs ``spikesweep sweep`` against it, and on the
time-limit warning saves the sweep's state and requeues itself; the restarted job resumes the sweep.
``status`` shows the sweep's job(s), what the job script recorded, and the sweep's progress.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.slurm.request import SlurmRequest
    from orchestrator.space import SweepSpace

NAME = "slurm"
HELP = "Run a sweep on a Slurm allocation (Ray cluster in the job, preemption-safe), or show its status."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="slurm_command", metavar="ACTION", required=True)

    submit = sub.add_parser("submit", help="render the sbatch script into the sweep directory and submit it")
    submit.add_argument("space", type=Path, help="search-space YAML (see search_spaces/)")
    submit.add_argument("--name", help="sweep name (default: the space file's `name`)")
    submit.add_argument(
        "--storage",
        type=Path,
        help="directory holding sweeps (default ./sweeps); must be on a shared filesystem",
    )
    submit.add_argument("-N", "--nodes", type=int, default=1, help="nodes; one Ray node each (default 1)")
    submit.add_argument("--cpus-per-node", type=int, default=2, help="CPUs per node (default 2)")
    submit.add_argument(
        "--gpus-per-node", type=int, default=0, help="GPUs per node, as --gres=gpu:G (default 0)"
    )
    submit.add_argument(
        "-t", "--time", default="01:00:00", help="wall time per run of the job (default 01:00:00)"
    )
    submit.add_argument("-p", "--partition", help="Slurm partition (default: the cluster's default)")
    submit.add_argument("-A", "--account", help="Slurm account to charge")
    submit.add_argument("--mem", help="memory per node, Slurm syntax (64G); default: the cluster's default")
    submit.add_argument(
        "--signal-lead",
        type=int,
        default=300,
        metavar="S",
        help="seconds before the time limit at which the sweep saves its state and requeues (default 300)",
    )
    submit.add_argument(
        "--join-timeout",
        type=int,
        default=300,
        metavar="S",
        help="seconds to wait for every node to join Ray before failing (default 300)",
    )
    submit.add_argument(
        "--max-requeues", type=int, default=20, help="stop requeueing after this many restarts (default 20)"
    )
    submit.add_argument("--job-name", help="Slurm job name (default sweep-<name>)")
    submit.add_argument(
        "--sbatch",
        action="append",
        default=[],
        metavar="OPTION",
        help="extra sbatch option for the script, e.g. --sbatch=--qos=high (repeatable)",
    )
    submit.add_argument(
        "--setup",
        type=Path,
        metavar="FILE",
        help="shell lines sourced on every node before Ray starts (module load ..., conda activate ...)",
    )
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="print the script and where it would go; write and submit nothing",
    )

    status = sub.add_parser("status", help="the sweep's Slurm job(s) and progress")
    status.add_argument("name", help="sweep name (or the sweep directory)")
    status.add_argument("--storage", type=Path, help="directory holding sweeps (default ./sweeps)")


def run(args: argparse.Namespace) -> int:
    if args.slurm_command == "submit":
        return _submit(args)
    return _status(args)


def _fit_gpus(space: SweepSpace, request: SlurmRequest) -> tuple[SlurmRequest, str | None]:
    """A space whose trials use no GPU requests none, whatever --gpus-per-node says."""
    import dataclasses  # noqa: PLC0415

    if space.resources.gpu == 0 and request.gpus_per_node:
        note = f"the space's trials use no GPU (resources.gpu: 0): not requesting the {request.gpus_per_node}"
        return dataclasses.replace(request, gpus_per_node=0), note + " of --gpus-per-node"
    return request, None


def _check_fits(space: SweepSpace, request: SlurmRequest) -> str:
    """Refuse a request on which no trial of the space can run; describe the room it gives."""
    from engine.errors import ConfigError  # noqa: PLC0415

    need = space.resources
    if need.cpu > request.cpus_per_node:
        raise ConfigError(
            f"{space.path}: a trial needs {need.cpu:g} CPU(s) (resources.cpu) but --cpus-per-node is "
            f"{request.cpus_per_node}; raise --cpus-per-node or lower resources.cpu"
        )
    if need.gpu > request.gpus_per_node:
        raise ConfigError(
            f"{space.path}: a trial needs {need.gpu:g} GPU(s) (resources.gpu) but --gpus-per-node is "
            f"{request.gpus_per_node}; raise --gpus-per-node or set resources.gpu: 0"
        )
    per_node = math.floor(request.cpus_per_node / need.cpu) if need.cpu else math.inf
    if need.gpu:
        per_node = min(per_node, math.floor(request.gpus_per_node / need.gpu + 1e-9))
    room = per_node * request.nodes
    text = f"room for {room} concurrent trial(s) ({request.nodes} node(s) x {per_node})"
    cap = space.max_concurrent_trials
    if cap is not None and cap < room:
        text += f"; the space runs at most {cap} at once (max_concurrent_trials)"
    return text


def _submit(args: argparse.Namespace) -> int:
    from orchestrator.plan import build_plan  # noqa: PLC0415
    from orchestrator.slurm.render import write_job_files  # noqa: PLC0415
    from orchestrator.slurm.request import SlurmRequest  # noqa: PLC0415
    from orchestrator.slurm.status import record_submission  # noqa: PLC0415
    from orchestrator.slurm.submit import submit_script  # noqa: PLC0415
    from orchestrator.space import load_space  # noqa: PLC0415
    from orchestrator.sweepdir import SweepDir  # noqa: PLC0415

    request = SlurmRequest(
        nodes=args.nodes,
        cpus_per_node=args.cpus_per_node,
        gpus_per_node=args.gpus_per_node,
        time=args.time,
        partition=args.partition,
        account=args.account,
        mem=args.mem,
        signal_lead_s=args.signal_lead,
        join_timeout_s=args.join_timeout,
        max_requeues=args.max_requeues,
        job_name=args.job_name,
        extra_directives=tuple(args.sbatch),
    ).validate()
    space = load_space(args.space)  # a bad YAML fails here, on the login node, not in the queue
    sweep_dir = SweepDir.for_space(space, args.storage, args.name)
    resuming = sweep_dir.exists()
    if resuming:
        sweep_dir.check_resumable(space)
    request, gpu_note = _fit_gpus(space, request)
    room = _check_fits(space, request)
    files = write_job_files(
        request,
        space_path=args.space,
        name=sweep_dir.name,
        storage=sweep_dir.storage,
        setup=args.setup,
        dry_run=args.dry_run,
    )
    runs = build_plan(space).max_engine_runs()
    state = "resumes the existing sweep" if resuming else "new"
    lines = [
        f"sweep {sweep_dir.name!r} ({state}, up to {runs} runs) → {sweep_dir.root}",
        f"  request: {request.describe()}; {room}",
        f"  script: {files.script}",
    ]
    if gpu_note:
        lines.append(f"  note: {gpu_note}")
    summary = "\n".join(lines)
    if args.dry_run:
        print(files.text)
        print(
            f"# dry run: nothing written or submitted; the script would go to {files.script}. {summary}",
            file=sys.stderr,
        )
        return 0
    job_id = submit_script(files.script, request)
    record_submission(files.script.parent, job_id, files.script, request)
    print(f"submitted job {job_id}: {summary}")
    print(f"  follow it with: spikesweep slurm status {sweep_dir.name} --storage {sweep_dir.storage}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError  # noqa: PLC0415
    from orchestrator.slurm.status import format_status  # noqa: PLC0415

    candidate = Path(args.name)
    if args.storage is None and (candidate / "slurm").is_dir():
        sweep_dir = candidate.resolve()
    else:
        sweep_dir = (Path(args.storage or "sweeps").expanduser() / args.name).resolve()
    if not sweep_dir.is_dir():
        raise ConfigError(f"no sweep directory {sweep_dir} (check the name and --storage)")
    print(format_status(sweep_dir))
    return 0
