"""Where a Slurm sweep stands: its job(s) as Slurm sees them, what the job script recorded, and progress.

Three sources, because each one alone misses something:

* Slurm (``scontrol show job``, then ``sacct`` if accounting is on) — the live state, but a finished job
  leaves ``scontrol`` after ``MinJobAge`` and many test/small clusters have no accounting;
* ``<sweep>/slurm/events.tsv`` — written by the job script itself (start, cluster up, signal, requeue,
  completed/failed with the reason), so the history survives the job;
* ``<sweep>/trials.parquet`` against the plan of ``<sweep>/space.yaml`` — how far the sweep is.
"""

from __future__ import annotations

import datetime as _dt
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.records import FINISHED_STATUSES, TrialStatus
from orchestrator.slurm.request import SlurmRequest
from orchestrator.slurm.submit import SlurmError, find_program

__all__ = [
    "JobEvent",
    "JobState",
    "SweepProgress",
    "format_status",
    "query_job",
    "read_events",
    "read_submissions",
    "record_submission",
    "sweep_progress",
]

SUBMISSIONS = "jobs.tsv"
EVENTS = "events.tsv"


# --- what the job directory records -------------------------------------------------------------------
def record_submission(job_dir: Path, job_id: str, script: Path, request: SlurmRequest) -> None:
    """Append the submitted job to ``jobs.tsv`` so ``status`` knows which job ids belong to the sweep."""
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    with (job_dir / SUBMISSIONS).open("a") as handle:
        handle.write(f"{stamp}\t{job_id}\t{script}\t{request.describe()}\n")


def read_submissions(job_dir: Path) -> list[tuple[str, str, str]]:
    """``(time, job_id, request)`` per submission, oldest first."""
    path = job_dir / SUBMISSIONS
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        parts = line.split("\t")
        if len(parts) >= 4:
            rows.append((parts[0], parts[1], parts[3]))
    return rows


@dataclass(frozen=True)
class JobEvent:
    time: str
    job_id: str
    restart: int
    message: str


def read_events(job_dir: Path) -> list[JobEvent]:
    path = job_dir / EVENTS
    events = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        parts = line.split("\t", 3)
        if len(parts) == 4 and parts[2].isdigit():
            events.append(JobEvent(parts[0], parts[1], int(parts[2]), parts[3]))
    return events


# --- what Slurm says ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str
    reason: str = ""
    restarts: int = 0
    run_time: str = ""
    time_limit: str = ""
    nodes: str = ""
    exit_code: str = ""
    source: str = "scontrol"

    def describe(self) -> str:
        text = f"job {self.job_id}: {self.state}"
        if self.state == "PENDING" and self.reason and self.reason != "None":
            text += f" ({self.reason})"
        if self.run_time and self.state not in ("PENDING",):
            text += f", ran {self.run_time}" + (f" of {self.time_limit}" if self.time_limit else "")
        if self.nodes and self.nodes != "(null)":
            text += f" on {self.nodes}"
        if self.restarts:
            text += f", restarts {self.restarts}"
        if self.exit_code and self.state not in ("PENDING", "RUNNING"):
            text += f", exit code {self.exit_code}"
        return text + f"  [{self.source}]"


def _fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def query_job(job_id: str, env: Mapping[str, str] | None = None) -> JobState | None:
    """The job's state from ``scontrol``, else ``sacct``; ``None`` if Slurm no longer knows it."""
    result = subprocess.run(
        [find_program("scontrol", env), "show", "job", "-o", job_id], capture_output=True, text=True, env=env
    )
    if result.returncode == 0 and "JobState=" in result.stdout:
        f = _fields(result.stdout)
        return JobState(
            job_id=job_id,
            state=f.get("JobState", "UNKNOWN"),
            reason=f.get("Reason", ""),
            restarts=int(f.get("Restarts", "0") or 0),
            run_time=f.get("RunTime", ""),
            time_limit=f.get("TimeLimit", ""),
            nodes=f.get("NodeList", ""),
            exit_code=f.get("ExitCode", ""),
        )
    try:
        sacct = find_program("sacct", env)
    except SlurmError:  # no sacct: Slurm simply has nothing more to say
        return None
    result = subprocess.run(
        [sacct, "-j", job_id, "-X", "-n", "-P", "-o", "JobID,State,Elapsed,Timelimit,NodeList,ExitCode"],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()] if result.returncode == 0 else []
    if not lines:
        return None
    jid, state, elapsed, limit, nodes, exit_code = (lines[-1].split("|") + [""] * 6)[:6]
    return JobState(jid, state.split()[0], "", 0, elapsed, limit, nodes, exit_code, source="sacct")


# --- how far the sweep is -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepProgress:
    started: bool
    statuses: dict[str, int] = field(default_factory=dict)
    planned_runs: int | None = None
    metric: str | None = None
    best: float | None = None

    @property
    def finished_runs(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in FINISHED_STATUSES)

    def describe(self) -> str:
        if not self.started:
            return "progress: the sweep has not started yet (no sweep.json)"
        if not self.statuses:
            return "progress: started, no trial has finished yet (no trials.parquet)"
        of = f"/{self.planned_runs}" if self.planned_runs else ""
        counts = ", ".join(f"{status} {n}" for status, n in sorted(self.statuses.items()))
        text = f"progress: {self.finished_runs}{of} runs finished ({counts})"
        if self.best is not None:
            text += f"; best {self.metric} {self.best:.2f}"
        return text


def sweep_progress(sweep_dir: Path) -> SweepProgress:
    from orchestrator.sweepdir import SweepDir  # noqa: PLC0415

    layout = SweepDir(sweep_dir)
    if not layout.exists():
        return SweepProgress(started=False)
    planned, metric, mode = None, None, "max"
    try:
        from orchestrator.plan import build_plan  # noqa: PLC0415
        from orchestrator.space import load_space  # noqa: PLC0415

        space = load_space(layout.space_path)
        planned, metric, mode = build_plan(space).max_engine_runs(), space.metric, space.metric_mode
    except Exception:  # noqa: BLE001 — progress without a total is still progress
        pass
    if not layout.trials_parquet.is_file():
        return SweepProgress(started=True, planned_runs=planned, metric=metric)
    import pyarrow.parquet as pq  # noqa: PLC0415

    table = pq.read_table(layout.trials_parquet)
    # A row is one engine run; a seed-aware (wilcoxon) trial's finished seeds are COMPLETE in
    # `run_status` while the trial's own `status` is still RUNNING (or PRUNED).
    status_column = "run_status" if "run_status" in table.column_names else "status"
    run_statuses = table.column(status_column).to_pylist()
    statuses = Counter(run_statuses)
    best = None
    if metric and metric in table.column_names:
        done = [
            value
            for value, status in zip(table.column(metric).to_pylist(), run_statuses, strict=True)
            if value is not None and status == TrialStatus.COMPLETE
        ]
        if done:
            best = max(done) if mode == "max" else min(done)
    return SweepProgress(True, dict(statuses), planned, metric, best)


def format_status(sweep_dir: Path, env: Mapping[str, str] | None = None, last_events: int = 8) -> str:
    """The report ``spikesweep slurm status`` prints."""
    job_dir = sweep_dir / "slurm"
    lines = [f"sweep {sweep_dir.name} ({sweep_dir})"]
    events = read_events(job_dir)
    job_ids = list(dict.fromkeys([row[1] for row in read_submissions(job_dir)] + [e.job_id for e in events]))
    if not job_ids:
        lines.append("no Slurm job has been submitted for this sweep (spikesweep slurm submit ...)")
    for job_id in job_ids:
        try:
            state = query_job(job_id, env)
        except SlurmError as exc:
            lines.append(f"job {job_id}: cannot ask Slurm ({exc})")
            continue
        if state is not None:
            lines.append(state.describe())
        else:
            own = [e for e in events if e.job_id == job_id]
            last = f"; its last record: {own[-1].message}" if own else ""
            lines.append(f"job {job_id}: no longer known to Slurm (finished; no accounting){last}")
    if events:
        lines.append("job record (events.tsv):")
        lines += [f"  {e.time}  job {e.job_id} run {e.restart}: {e.message}" for e in events[-last_events:]]
    lines.append(sweep_progress(sweep_dir).describe())
    return "\n".join(lines)
