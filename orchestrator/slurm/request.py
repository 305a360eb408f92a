"""What a sweep asks of Slurm, checked before a script is written or anything is submitted.

Slurm would accept many bad requests and only fail hours later in the queue (a time limit shorter than
the preemption warning, a trial that needs a GPU on CPU-only nodes), so the request is validated here
with messages that name the flag to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import ConfigError

__all__ = ["SlurmRequest", "parse_slurm_time"]

# Slurm's --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME_FORMATS = (
    "MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS, DAYS-HOURS:MINUTES or "
    "DAYS-HOURS:MINUTES:SECONDS"
)
_MEM_RE = re.compile(r"^\d+[KMGT]?$")
_WORD_RE = re.compile(r"^[A-Za-z0-9_.+:@,=\-]+$")


def parse_slurm_time(text: str) -> int:
    """Seconds in a Slurm time limit (``--time``), e.g. ``"1-12:00:00"`` → 129600.

    Raises:
        ConfigError: for anything Slurm would not read as a time limit (``UNLIMITED`` is refused too: the
            preemption warning is timed from the limit).
    """
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise ConfigError(f"--time {text!r} is not a Slurm time limit; use {_TIME_FORMATS} (e.g. 04:00:00)")
    days, first, second, third = match.groups()
    numbers = [int(part) for part in (first, second, third) if part is not None]
    if days is not None:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = (numbers + [0, 0])[:3]
        total = int(days) * 86400 + hours * 3600 + minutes * 60 + seconds
    elif len(numbers) == 1:  # M
        total = numbers[0] * 60
    elif len(numbers) == 2:  # M:S
        total = numbers[0] * 60 + numbers[1]
    else:  # H:M:S
        total = numbers[0] * 3600 + numbers[1] * 60 + numbers[2]
    if total <= 0:
        raise ConfigError(f"--time {text!r} is zero; give the job a wall-time limit such as 04:00:00")
    return total


@dataclass(frozen=True)
class SlurmRequest:
    """The allocation one sweep job asks for; every node runs one Ray node (head on the first)."""

    nodes: int = 1
    cpus_per_node: int = 2
    gpus_per_node: int = 0
    time: str = "01:00:00"
    partition: str | None = None
    account: str | None = None
    mem: str | None = None
    """Memory per node in Slurm's syntax (``64G``); ``None`` leaves the cluster's default."""
    signal_lead_s: int = 300
    """SIGUSR1 arrives this long before the time limit: enough for the driver to save its state."""
    join_timeout_s: int = 300
    """How long the job waits for every node to join Ray before it fails naming the missing ones."""
    max_requeues: int = 20
    """The job stops requeueing itself after this many restarts (a guard against endless loops)."""
    job_name: str | None = None
    extra_directives: tuple[str, ...] = ()
    """More ``#SBATCH`` options, verbatim (``--qos=high``, ``--constraint=a100``)."""

    @property
    def time_limit_s(self) -> int:
        return parse_slurm_time(self.time)

    def validate(self) -> SlurmRequest:
        """Raise :class:`ConfigError` naming the flag for anything Slurm would misread; return self."""
        for flag, value, least in (
            ("--nodes", self.nodes, 1),
            ("--cpus-per-node", self.cpus_per_node, 1),
            ("--gpus-per-node", self.gpus_per_node, 0),
            ("--signal-lead", self.signal_lead_s, 1),
            ("--join-timeout", self.join_timeout_s, 1),
            ("--max-requeues", self.max_requeues, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"{flag} must be an integer >= {least}, got {value!r}")
        limit = self.time_limit_s
        if self.signal_lead_s >= limit:
            raise ConfigError(
                f"--time {self.time} ({limit} s) is not longer than --signal-lead {self.signal_lead_s} s: "
                f"the stop-and-requeue signal would arrive at once. Raise --time or lower --signal-lead."
            )
        for flag, value in (
            ("--partition", self.partition),
            ("--account", self.account),
            ("--job-name", self.job_name),
        ):
            if value is not None and not _WORD_RE.match(value):
                raise ConfigError(f"{flag} {value!r}: use letters, digits and . _ - + : @ , = only")
        if self.mem is not None and not _MEM_RE.match(self.mem):
            raise ConfigError(
                f"--mem {self.mem!r} is not a Slurm memory size; use e.g. 64G, 500M or 0 (whole node)"
            )
        for directive in self.extra_directives:
            if not directive.startswith("-") or "\n" in directive or "#" in directive:
                raise ConfigError(
                    f"--sbatch {directive!r}: give one sbatch option as written on the command line, "
                    f"e.g. --sbatch=--qos=high"
                )
        return self

    def optional_directives(self) -> list[str]:
        """``#SBATCH`` lines for the options that are only there when asked for (GPUs, partition, ...)."""
        lines = []
        if self.gpus_per_node:
            # --gres rather than --gpus-per-node: understood by every Slurm in use; the node helper reads
            # SLURM_GPUS_ON_NODE, which both set (SLURM_GPUS_PER_TASK stays empty with --gres).
            lines.append(f"#SBATCH --gres=gpu:{self.gpus_per_node}")
        if self.mem is not None:
            lines.append(f"#SBATCH --mem={self.mem}")
        if self.partition:
            lines.append(f"#SBATCH --partition={self.partition}")
        if self.account:
            lines.append(f"#SBATCH --account={self.account}")
        lines.extend(f"#SBATCH {directive}" for directive in self.extra_directives)
        return lines

    def describe(self) -> str:
        """One line for logs and ``jobs.tsv``."""
        parts = [
            f"{self.nodes} node(s) x {self.cpus_per_node} CPU(s), {self.gpus_per_node} GPU(s)",
            f"time {self.time}",
        ]
        parts += [
            f"{key} {value}"
            for key, value in (("partition", self.partition), ("account", self.account), ("mem", self.mem))
            if value
        ]
        return ", ".join(parts)
