"""Submit the rendered script with ``sbatch``; on refusal, Slurm's own message plus what to change.

``sbatch`` accepts some requests it can never run (more CPUs or nodes than any partition has: the job
just pends forever with reason ``PartitionConfig``), so the script goes through ``sbatch --test-only``
first, which refuses those with "Requested node configuration is not available". A time limit above the
partition's ``MaxTime`` is checked here as well, because with Slurm's default ``EnforcePartLimits=NO``
it is also accepted and then pends forever (``PartitionTimeLimit``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import SpikesweepError
from orchestrator.slurm.request import SlurmRequest, parse_slurm_time

__all__ = ["PartitionInfo", "SlurmError", "find_program", "partitions", "submit_script"]


class SlurmError(SpikesweepError):
    """Slurm is missing, refused a request, or could not be queried."""


def find_program(name: str, env: Mapping[str, str] | None = None) -> str:
    """Absolute path of a Slurm command, or a :class:`SlurmError` that says how to get one."""
    path = shutil.which(name, path=(env or os.environ).get("PATH"))
    if path is None:
        raise SlurmError(
            f"`{name}` is not on PATH: run this on a machine with the Slurm client commands (a cluster's "
            f"login node; there, often `module load slurm`). `spikesweep slurm submit --dry-run` writes the "
            f"script without submitting it."
        )
    return path


def _run(argv: list[str], env: Mapping[str, str] | None, timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(
            f"`{' '.join(argv)}` did not answer within {timeout:g} s (is slurmctld up?)"
        ) from exc


@dataclass(frozen=True)
class PartitionInfo:
    name: str
    default: bool
    nodes: int
    cpus_per_node: str
    memory_mb: str
    gres: str
    max_time: str

    def describe(self) -> str:
        gpus = "no GPUs" if self.gres in ("", "(null)") else f"gres {self.gres}"
        return (
            f"{self.name}{' (default)' if self.default else ''}: {self.nodes} node(s), {self.cpus_per_node} "
            f"CPUs and {self.memory_mb} MB per node, {gpus}, time limit {self.max_time}"
        )


def partitions(env: Mapping[str, str] | None = None) -> list[PartitionInfo]:
    """The cluster's partitions as ``sinfo`` shows them (empty if ``sinfo`` fails)."""
    result = _run([find_program("sinfo", env), "-h", "-o", "%P|%D|%c|%m|%G|%l"], env)
    if result.returncode != 0:
        return []
    found = []
    for line in result.stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 6:
            continue
        name, nodes, cpus, mem, gres, max_time = fields
        found.append(
            PartitionInfo(name.rstrip("*"), name.endswith("*"), int(nodes or 0), cpus, mem, gres, max_time)
        )
    return found


def _capacity(env: Mapping[str, str] | None) -> str:
    found = partitions(env)
    if not found:
        return "(`sinfo` lists no partitions)"
    return "partitions here: " + "; ".join(p.describe() for p in found)


def _hint(message: str, request: SlurmRequest, env: Mapping[str, str] | None) -> str:
    low = message.lower()
    if "invalid partition" in low:
        names = ", ".join(p.name for p in partitions(env)) or "none listed"
        return f"--partition {request.partition!r} does not exist here; partitions: {names}."
    if "invalid account" in low or "invalid qos" in low or "association" in low:
        return "check --account (your accounts: `sacctmgr show associations user=$USER format=account`)."
    if "gres" in low or "generic resource" in low:
        return (
            f"--gpus-per-node {request.gpus_per_node} asks for GPUs (--gres=gpu:N); {_capacity(env)}. "
            f"Pick a GPU partition with --partition, or use --gpus-per-node 0."
        )
    if "node configuration is not available" in low or "memory specification" in low or "node count" in low:
        return (
            f"no partition can give {request.nodes} node(s) with {request.cpus_per_node} CPU(s)"
            f"{f', {request.gpus_per_node} GPU(s)' if request.gpus_per_node else ''}"
            f"{f' and {request.mem} memory' if request.mem else ''} each; {_capacity(env)}. Lower --nodes, "
            f"--cpus-per-node, --gpus-per-node or --mem, or choose another --partition."
        )
    if "time limit" in low or "--time" in low:
        return f"lower --time {request.time}; {_capacity(env)}."
    return f"{_capacity(env)}."


def _check_time_limit(request: SlurmRequest, env: Mapping[str, str] | None) -> None:
    found = partitions(env)
    target = next(
        (p for p in found if (p.name == request.partition if request.partition else p.default)), None
    )
    if target is None or target.max_time in ("infinite", "UNLIMITED", "n/a", ""):
        return
    try:
        max_s = parse_slurm_time(target.max_time)
    except SpikesweepError:
        return
    if request.time_limit_s > max_s:
        raise SlurmError(
            f"--time {request.time} exceeds partition {target.name}'s limit of {target.max_time}: Slurm "
            f"would queue the job and never start it (reason PartitionTimeLimit). Lower --time (the sweep "
            f"requeues itself and resumes when the time is up) or choose another --partition."
        )


def submit_script(script: Path, request: SlurmRequest, env: Mapping[str, str] | None = None) -> str:
    """``sbatch`` the script (after ``--test-only``); return the job id.

    Raises:
        SlurmError: ``sbatch`` missing, or Slurm refused the request — with Slurm's message and the
            flag to change.
    """
    sbatch = find_program("sbatch", env)
    _check_time_limit(request, env)
    for argv in ([sbatch, "--test-only", str(script)], [sbatch, "--parsable", str(script)]):
        result = _run(argv, env)
        if result.returncode != 0:
            slurm_says = result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}"
            raise SlurmError(
                f"Slurm refused the job:\n  {slurm_says.replace(chr(10), chr(10) + '  ')}\n"
                f"  What to change: {_hint(slurm_says, request, env)}\n"
                f"  The script is at {script}."
            )
    match = re.match(r"\s*(\d+)", result.stdout)
    if not match:
        raise SlurmError(f"sbatch printed no job id: {result.stdout.strip()!r} {result.stderr.strip()!r}")
    return match.group(1)
