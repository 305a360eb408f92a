"""What the user sees while a sweep runs: a compact trial table every few seconds, one line per ending.

Ray Tune's own reporter prints every config value and Ray bookkeeping column; a sweep here varies a
handful of keys and cares about one objective, so this table shows the plan key, stage, status, seed,
epoch, the objective and only the varied values. Running trials come first, then the latest finished.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ray.tune import Callback

from orchestrator.plan import PlannedTrial
from orchestrator.records import TrialStatus
from orchestrator.records.journal import SweepRecorder
from orchestrator.tune.study import SweepStudy

__all__ = ["ProgressTable", "format_table"]

_MAX_ROWS = 16


class ProgressTable(Callback):
    def __init__(
        self, study: SweepStudy, recorder: SweepRecorder, interval_s: float, stream: TextIO | None = None
    ) -> None:
        self.study = study
        self.recorder = recorder
        self.interval_s = interval_s
        self.stream = stream
        self._last = 0.0
        self._started = time.monotonic()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["stream"] = None
        return state

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def setup(self, **info: Any) -> None:
        self._started = time.monotonic()
        self._last = self._started

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self._print(format_table(self.study, self.recorder, trials, now - self._started))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Ray's own "Restored" line is hidden unless --verbose: say it in the sweep's voice, here in the
        # driver (a worker's print may be lost when the driver exits first).
        if getattr(trial, "checkpoint", None) is not None:
            planned = PlannedTrial.from_config(trial.config)
            self._print(f"[sweep] {planned.plan_key} resumed from its checkpoint")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(self._ending(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(self._ending(trial) + f"  (error file: {trial.error_file})")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        elapsed = time.monotonic() - self._started
        self._print(format_table(self.study, self.recorder, trials, elapsed, stopped=True))

    def _ending(self, trial: Any) -> str:
        planned = PlannedTrial.from_config(trial.config)
        entry = self.study.entry_for_tune_trial(trial.trial_id)
        status = self.study.status_of(entry.number) if entry else TrialStatus.FAILED
        records = self.recorder.runs_of(planned.plan_key)
        epochs = sum(len(r.epochs) for r in records)
        value = _value(records[-1].last(), self.study.space.metric) if records else "-"
        return (
            f"[sweep] {planned.plan_key} {status.lower()} after {epochs} epoch(s): "
            f"{self.study.space.metric} = {value}  ({_params(planned)})"
        )


def format_table(
    study: SweepStudy, recorder: SweepRecorder, trials: list, elapsed_s: float, stopped: bool = False
) -> str:
    space = study.space
    counts: dict[str, int] = {}
    rows = []
    for trial in trials:
        planned = PlannedTrial.from_config(trial.config)
        entry = study.entry_for_tune_trial(trial.trial_id)
        records = recorder.runs_of(planned.plan_key)
        status = TrialStatus.PENDING
        if entry is not None:
            started = trial.status == "RUNNING" and bool(records)
            status = TrialStatus.shown(study.status_of(entry.number), started=started, stopped=stopped)
        counts[status] = counts.get(status, 0) + 1
        current = records[-1] if records else None
        last = current.last() if current else None
        epoch = f"{int(last['epoch']) + 1}/{space.base_config().epochs}" if last else "-"
        seed = str(current.seed) if current else ",".join(str(s) for s in planned.seeds)
        rows.append(
            (
                status,
                planned.plan_key,
                planned.stage,
                seed,
                epoch,
                _value(last, space.metric),
                _params(planned),
            )
        )
    order = {TrialStatus.RUNNING: 0, TrialStatus.INTERRUPTED: 0, TrialStatus.PENDING: 1}
    rows.sort(key=lambda r: (order.get(r[0], 2), r[1]))
    shown = rows[:_MAX_ROWS]
    header = ("status", "trial", "stage", "seed", "epoch", space.metric, "params")
    widths = [max(len(str(r[i])) for r in [header, *shown]) for i in range(len(header) - 1)]
    lines = [
        f"== sweep {study.sweep_dir.name}: {progress_summary(study, recorder, elapsed_s)} — "
        + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    ]
    for row in [header, *shown]:
        lines.append(
            "  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + str(row[-1])
        )
    if len(rows) > len(shown):
        lines.append(f"  … {len(rows) - len(shown)} more")
    return "\n".join(lines)


def progress_summary(study: SweepStudy, recorder: SweepRecorder, elapsed_s: float) -> str:
    """``k of N runs done, 12m elapsed, ETA 30m``: N is the plan's upper bound on engine runs; the ETA
    takes the mean time of the epochs finished so far (this session's and earlier ones') times the
    epochs still to run, spread over the trials running at once."""
    from orchestrator.plan import build_plan  # noqa: PLC0415

    total = build_plan(study.space).max_engine_runs()
    epochs = study.space.base_config().epochs
    records = list(recorder.runs.values())
    done = sum(1 for r in records if r.seed_done)
    times = [e["epoch_time_s"] for r in records for e in r.epochs.values() if e.get("epoch_time_s")]
    text = f"{done} of {total} runs done, {_duration(elapsed_s)} elapsed"
    if times and done < total:
        running = [r for r in records if not r.seed_done]
        left = (total - done - len(running)) * epochs + sum(max(0, epochs - len(r.epochs)) for r in running)
        concurrency = max(1, len(running))
        text += f", ETA {_duration(left * sum(times) / len(times) / concurrency)}"
    return text


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _value(record: dict[str, float] | None, metric: str) -> str:
    if not record or metric not in record:
        return "-"
    return f"{record[metric]:.4g}"


def _params(planned: PlannedTrial) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in planned.params.items())


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
