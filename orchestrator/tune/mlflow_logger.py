"""MLflow records of a sweep, written by the Tune driver alone: one parent run, one child per engine run.

Why not Ray's ``MLflowLoggerCallback`` (orchestration.md): it logs every numeric key one call at a time
(config values and Ray bookkeeping included), records no git commit, and after ``Tuner.restore`` opens
new runs while the old ones stay RUNNING forever. This logger

* finds its runs again by tags (``spikesweep.sweep_id`` + ``spikesweep.run_key``), so a resumed sweep
  continues the same parent and children — never a duplicate — and reopens them as RUNNING;
* syncs MLflow *from the driver's journal* (:class:`orchestrator.records.journal.SweepRecorder`): each child
  remembers the last epoch it holds, so epochs replayed after a resume are not logged twice and epochs
  whose batch was lost with a killed driver are backfilled. The last epoch is read back from the run's
  own ``epoch`` metric as well as the ``spikesweep.last_epoch`` tag: MLflow's SQL store commits a
  ``log_batch`` in separate transactions (params, then metrics, then tags), so a driver killed between
  the two leaves metrics without their tag, and the tag alone would log them again. Each request holds
  whole epochs, so an epoch's ``epoch`` metric commits together with the rest of that epoch;
* batches metrics (``log_batch``, at most every ``flush_interval_s`` per run, and at every run end);
* leaves nothing RUNNING: finished trials end FINISHED/FAILED with their status tag, and when the sweep
  stops early the unfinished ones (and the parent) are marked KILLED until the sweep is resumed;
* never stops a sweep: MLflow is a mirror of the journal, so if the tracking server is unreachable the
  logger warns and catches up from the journal when it answers again (or at the next resume).

A child is one engine run: a trial on one seed. With the seed-aware ``wilcoxon`` pruner a trial runs
several seeds, one child each; ``spikesweep.status`` is the trial's status and
``spikesweep.run_status`` the run's own (a seed that finished before its trial was pruned is COMPLETE).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune.logger import LoggerCallback

from engine.training.records import LAYER_RATE_PREFIX
from engine.training.rundir import LAYERS_FILE, RECORDS_FILE
from orchestrator.plan import PlannedTrial, config_for
from orchestrator.records import TrialStatus
from orchestrator.records.journal import RunRecord, SweepRecorder, run_key
from orchestrator.sweepdir import BEST_EXPORT, SweepMeta
from orchestrator.tune.searcher import TrialPlanner

__all__ = ["MlflowSweepLogger"]

log = logging.getLogger(__name__)

ROLE_TAG = "spikesweep.role"
SWEEP_ID_TAG = "spikesweep.sweep_id"
RUN_KEY_TAG = "spikesweep.run_key"
LAST_EPOCH_TAG = "spikesweep.last_epoch"
STATUS_TAG = "spikesweep.status"
RUN_STATUS_TAG = "spikesweep.run_status"
OBJECTIVES_TAG = "spikesweep.objectives"
"""Every objective of the sweep, ``metric:mode`` comma-separated (the first is ``spikesweep.metric``)."""
PARETO_FRONT_TAG = "spikesweep.pareto_front"
"""A multi-objective sweep's front (seed means over every completed run), one configuration per ``;``."""
_BATCH_METRICS = 1000  # MLflow's per-request limits
_BATCH_PARAMS = 100


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""MLflow 3.17's value for the classic training-runs view (the other, ``genai_development``, is its default
landing page for experiments without the tag)."""


def _tolerant(method: Callable[..., None]) -> Callable[..., None]:
    """Run a Tune hook; an MLflow failure becomes a warning (retried at the next hook), not a crash."""

    @functools.wraps(method)
    def hook(self: MlflowSweepLogger, *args: Any, **kwargs: Any) -> None:
        try:
            if not self._attached:
                self.attach()
            method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 — any store/network error; the journal keeps the data
            self._warn(exc)

    return hook


def _logged_upto(run: Any) -> int:
    """The last epoch an MLflow child run holds: its ``spikesweep.last_epoch`` tag, or the step of its
    ``epoch`` metric where a killed driver committed an epoch's metrics but not the tag after them."""
    tagged = int(run.data.tags.get(LAST_EPOCH_TAG, -1))
    logged = run.data.metrics.get("epoch")
    return tagged if logged is None else max(tagged, int(logged))


def _whole_epochs(per_epoch: list[list[Any]], limit: int) -> list[list[Any]]:
    """The epochs' metrics in requests of at most ``limit``, never splitting an epoch between two (an
    epoch larger than ``limit`` alone is split, its ``epoch`` metric in the last part); at least one
    request, so the bookkeeping tags are written even when there is no finite value."""
    requests: list[list[Any]] = [[]]
    for metrics in per_epoch:
        if len(metrics) > limit:
            ordered = [m for m in metrics if m.key != "epoch"] + [m for m in metrics if m.key == "epoch"]
            parts = [ordered[i : i + limit] for i in range(0, len(ordered), limit)]
            requests = [r for r in requests if r] + parts
            requests.append([])
        elif len(requests[-1]) + len(metrics) > limit:
            requests.append(list(metrics))
        else:
            requests[-1].extend(metrics)
    return [r for r in requests if r] or [[]]


@dataclass
class _ChildRun:
    run_id: str
    logged_upto: int
    """The last epoch MLflow holds for this run (−1: none)."""
    status: str
    last_flush: float = 0.0


TRAINING_RUNS_VIEW = "workflowType=machine_learning"
"""MLflow 3.17's UI picks its view per browser (the "GenAI | Model training" switch, GenAI by default)
and ignores the experiment's ``mlflow.experimentKind`` tag there; this URL parameter opens the runs
table (checked in headless Chromium, ``docs/mlflow_screenshot.py``)."""


def ui_link(tracking_uri: str, experiment_id: str) -> str:
    """How to see the sweep's runs in the MLflow UI: the page, and for a local store the command that
    serves it (``mlflow ui`` listens on 127.0.0.1:5000 by default)."""
    page = f"#/experiments/{experiment_id}/runs?{TRAINING_RUNS_VIEW}"
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/{page}"
    return f"`mlflow ui --backend-store-uri {tracking_uri}`, then http://127.0.0.1:5000/{page}"


class MlflowSweepLogger(LoggerCallback):
    """The sweep's MLflow writer (a Ray Tune callback running in the driver)."""

    def __init__(
        self,
        planner: TrialPlanner,
        recorder: SweepRecorder,
        meta: SweepMeta,
        tracking_uri: str,
        experiment: str,
        artifact_location: str | None,
        space_file: Path,
        flush_interval_s: float = 5.0,
    ) -> None:
        self.planner = planner
        self.study = planner.study
        self.recorder = recorder
        self.meta = meta
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self.space_file = Path(space_file)
        self.flush_interval_s = flush_interval_s
        self._client: Any = None
        self._experiment_id = ""
        self.parent_id = ""
        self._children: dict[str, _ChildRun] = {}
        self._attached = False
        self._last_warning = -math.inf

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None
        state["_children"] = {}
        state["_attached"] = False
        return state

    def _warn(self, exc: Exception) -> None:
        log.debug("MLflow call failed", exc_info=exc)
        now = time.monotonic()
        if now - self._last_warning >= 60:
            self._last_warning = now
            log.warning(
                "MLflow at %s failed (%s: %s); the sweep goes on, and MLflow is brought up to date from "
                "the journal when it answers again (or when the sweep is resumed)",
                self.tracking_uri,
                type(exc).__name__,
                exc,
            )

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient  # noqa: PLC0415 — heavy, driver only

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    # ----------------------------------------------------------------------------------------------
    # Tune hooks
    @_tolerant
    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Attaching happens in the guard (also retried by every later hook until it succeeds)."""

    @_tolerant
    def log_trial_start(self, trial: Any) -> None:
        planned = PlannedTrial.from_config(trial.config)
        for record in self.recorder.runs_of(planned.plan_key):
            child = self._child(record)
            if not record.seed_done and child.status != "RUNNING":
                self.client.update_run(child.run_id, status="RUNNING")
                self.client.set_tag(child.run_id, STATUS_TAG, TrialStatus.RUNNING)
                child.status = "RUNNING"

    @_tolerant
    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        planned = PlannedTrial.from_config(trial.config)
        seed = result.get("seed")
        if seed is None:
            return
        record = self.recorder.runs.get(run_key(planned.plan_key, int(seed)))
        if record is None:
            return
        child = self._child(record)
        if record.seed_done and self.study.space.pruner.seed_aware:
            # One seed of a multi-seed trial is done: close its run now, the trial goes on.
            self._sync(record, child)
            self._finish(record, child, TrialStatus.RUNNING)
        elif time.monotonic() - child.last_flush >= self.flush_interval_s:
            self._sync(record, child)

    @_tolerant
    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        planned = PlannedTrial.from_config(trial.config)
        entry = self.study.entry_for_tune_trial(trial.trial_id)
        status = self.study.status_of(entry.number) if entry is not None else TrialStatus.FAILED
        records = self.recorder.runs_of(planned.plan_key)
        for record in records:
            child = self._child(record)
            self._sync(record, child)
            self._finish(record, child, status)
        if not records:  # failed before its first epoch: still leave a (failed) run behind
            seed = planned.seeds[0]
            record = RunRecord(planned.plan_key, seed, 0, trial.trial_id, planned.stage, planned.config_hash)
            self._finish(record, self._child(record), status)

    @_tolerant
    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        for key, child in self._children.items():
            record = self.recorder.runs.get(key)
            if (
                record is not None
                and child.status == "RUNNING"
                and now - child.last_flush >= self.flush_interval_s
            ):
                self._sync(record, child)

    @_tolerant
    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Flush everything; whatever did not finish is KILLED until the sweep resumes."""
        for key, child in self._children.items():
            record = self.recorder.runs.get(key)
            if record is not None:
                self._sync(record, child)
            if child.status == "RUNNING":
                self.client.set_terminated(child.run_id, status="KILLED")
                child.status = "KILLED"
        complete = self.planner.is_complete()
        self._summarise()
        print(f"[sweep] MLflow: {ui_link(self.tracking_uri, self._experiment_id)}", flush=True)
        self.client.set_tag(
            self.parent_id, STATUS_TAG, TrialStatus.COMPLETE if complete else TrialStatus.INTERRUPTED
        )
        self.client.set_terminated(self.parent_id, status="FINISHED" if complete else "KILLED")

    def _summarise(self) -> None:
        """The sweep's result on its parent run (counts, best configuration, its mean and CI), the same
        names ``report`` writes: MLflow's runs table shows a collapsed parent with these."""
        from orchestrator.report.mlflow_aggregates import log_parent_summary, parent_summary  # noqa: PLC0415
        from orchestrator.report.stats import describe  # noqa: PLC0415

        counts = self.study.status_counts()
        ranking = self.study.ranking()
        best = None
        if ranking:
            top = ranking[0]
            label = " ".join(f"{k}={v}" for k, v in top.params.items()) or "(base)"
            best = (label, top.config_hash, describe(top.values))
        metrics, tags = parent_summary(self.study.space.metric, counts, best)
        if self.study.space.multi_objective:
            front = self.study.front()
            metrics["pareto_front_size"] = float(len(front))
            labels = "; ".join(" ".join(f"{k}={v}" for k, v in s.params.items()) or "(base)" for s in front)
            tags[PARETO_FRONT_TAG] = labels[:5000]
        log_parent_summary(self.client, self.parent_id, metrics, tags)

    # ----------------------------------------------------------------------------------------------
    # runs
    def attach(self) -> None:
        """Find (or create) the experiment and the parent run; index existing children; backfill."""
        client = self.client
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            self._experiment_id = client.create_experiment(
                self.experiment, artifact_location=self.artifact_location
            )
        else:
            self._experiment_id = experiment.experiment_id
        if experiment is None or EXPERIMENT_KIND_TAG not in experiment.tags:
            # MLflow 3 opens an experiment without this tag on its GenAI overview; these are training runs.
            # (3.17's UI goes by its own per-browser switch instead: see ui_link.)
            client.set_experiment_tag(self._experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        parents = self._search(f"tags.`{ROLE_TAG}` = 'sweep'")
        if parents:
            parent = parents[0]
            self.parent_id = parent.info.run_id
            if parent.info.status != "RUNNING":
                client.update_run(self.parent_id, status="RUNNING")
        else:
            self.parent_id = self._create_parent()
        client.set_tag(self.parent_id, STATUS_TAG, TrialStatus.RUNNING)
        self._children = {}
        for run in self._search(f"tags.`{ROLE_TAG}` = 'trial'"):
            key = run.data.tags.get(RUN_KEY_TAG)
            if not key:
                continue
            self._children[key] = _ChildRun(run.info.run_id, _logged_upto(run), run.info.status)
            self.recorder.mlflow_run_ids[key] = run.info.run_id
        self._attached = True
        for key, record in self.recorder.runs.items():
            if key in self._children:
                self._sync(record, self._children[key])

    def _search(self, condition: str) -> list[Any]:
        filter_string = f"tags.`{SWEEP_ID_TAG}` = '{self.meta.sweep_id}' and {condition}"
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self._experiment_id], filter_string=filter_string, max_results=1000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return sorted(runs, key=lambda r: r.info.start_time or 0)

    def _create_parent(self) -> str:
        space = self.study.space
        tags = {
            ROLE_TAG: "sweep",
            SWEEP_ID_TAG: self.meta.sweep_id,
            "spikesweep.sweep": self.meta.name,
            "spikesweep.space_hash": self.meta.space_hash,
            "spikesweep.mode": space.search.mode,
            "spikesweep.pruner": space.pruner.name,
            "spikesweep.metric": space.metric,
            "spikesweep.metric_mode": space.metric_mode,
            OBJECTIVES_TAG: ",".join(str(o) for o in space.objectives),
            "spikesweep.varied": ",".join(space.varied_keys()),
            "spikesweep.seeds": ",".join(str(s) for s in space.seeds),
            "git_commit": self.meta.git_commit,
            "mlflow.source.git.commit": self.meta.git_commit,
        }
        run = self.client.create_run(self._experiment_id, tags=tags, run_name=self.meta.name)
        run_id = run.info.run_id
        self.client.log_artifact(run_id, str(self.space_file), artifact_path="space")
        return run_id

    def _child(self, record: RunRecord) -> _ChildRun:
        """The MLflow run of an engine run, created with its params and tags on first use."""
        key = record.key
        child = self._children.get(key)
        if child is not None:
            return child
        from mlflow.entities import Param  # noqa: PLC0415

        entry = self.study.entry_for_tune_trial(record.trial_id)
        planned = entry.planned if entry is not None else None
        overrides = planned.overrides if planned is not None else {}
        config = config_for(self.study.space, self.study.space.base_config(), overrides, record.seed)
        seed_aware = self.study.space.pruner.seed_aware
        tags = {
            "mlflow.parentRunId": self.parent_id,
            ROLE_TAG: "trial",
            SWEEP_ID_TAG: self.meta.sweep_id,
            "spikesweep.sweep": self.meta.name,
            RUN_KEY_TAG: key,
            "spikesweep.plan_key": record.plan_key,
            "spikesweep.trial_id": record.trial_id,
            "spikesweep.optuna_trial": str(entry.number) if entry is not None else "",
            "spikesweep.config_hash": record.config_hash,
            "spikesweep.seed": str(record.seed),
            "spikesweep.seed_index": str(record.seed_index),
            "spikesweep.stage": record.stage,
            STATUS_TAG: TrialStatus.RUNNING,
            RUN_STATUS_TAG: TrialStatus.RUNNING,
            LAST_EPOCH_TAG: "-1",
            "git_commit": self.meta.git_commit,
            "mlflow.source.git.commit": self.meta.git_commit,
        }
        if planned is not None and "arm" in planned.params:
            tags["spikesweep.arm"] = str(planned.params["arm"])
        name = f"{record.plan_key}-s{record.seed}" if seed_aware else record.plan_key
        run = self.client.create_run(self._experiment_id, tags=tags, run_name=name)
        child = self._children[key] = _ChildRun(run.info.run_id, -1, "RUNNING")
        self.recorder.mlflow_run_ids[key] = run.info.run_id
        params = [Param(k, str(v)) for k, v in config.flat().items()]
        for start in range(0, len(params), _BATCH_PARAMS):
            self.client.log_batch(run.info.run_id, params=params[start : start + _BATCH_PARAMS])
        return child

    def _sync(self, record: RunRecord, child: _ChildRun) -> None:
        """Log the journal's epochs this run does not hold yet, in batches, with the bookkeeping tags."""
        from mlflow.entities import Metric, RunTag  # noqa: PLC0415

        pending = [e for e in sorted(record.epochs) if e > child.logged_upto]
        child.last_flush = time.monotonic()
        if not pending:
            return
        now = int(time.time() * 1000)
        per_epoch = []
        for epoch in pending:
            values = list(record.epochs[epoch].items())
            # firing_rate/<layer>: MLflow's chart view groups them under one heading
            values += [(f"{LAYER_RATE_PREFIX}{k}", v) for k, v in record.layers.get(epoch, {}).items()]
            per_epoch.append(
                [Metric(k, float(v), now, epoch) for k, v in values if v is not None and math.isfinite(v)]
            )
        if not math.isnan(record.wall_time_s):  # the run's wall time so far (pruned runs have one too)
            per_epoch[-1].append(Metric("wall_time_s", record.wall_time_s, now, pending[-1]))
        tags = [
            RunTag(LAST_EPOCH_TAG, str(pending[-1])),
            RunTag("spikesweep.trial_id", record.trial_id),
            RunTag("spikesweep.hostname", record.hostname),
        ]
        requests = _whole_epochs(per_epoch, _BATCH_METRICS)
        for i, metrics in enumerate(requests):
            self.client.log_batch(child.run_id, metrics=metrics, tags=tags if i == len(requests) - 1 else ())
        child.logged_upto = pending[-1]

    def _attach_run_files(self, record: RunRecord, child: _ChildRun) -> None:
        """The run's ``epochs.parquet`` and ``layers.parquet`` (exported to ``runs/<plan key>/seed_<s>/``) as
        child artifacts, and
        its best-epoch checkpoint (``best/``) when the space's ``mlflow.log_checkpoint`` asks for it."""
        exported = self.study.sweep_dir.run_export(record.plan_key, record.seed)
        for name in (RECORDS_FILE, LAYERS_FILE):
            if (exported / name).is_file():
                self.client.log_artifact(child.run_id, str(exported / name))
        best = exported / BEST_EXPORT
        if self.study.space.mlflow.log_checkpoint == "best" and best.is_dir():
            self.client.log_artifacts(child.run_id, str(best), artifact_path=BEST_EXPORT)

    def _finish(self, record: RunRecord, child: _ChildRun, trial_status: str) -> None:
        run_status = record.run_status(trial_status)
        self.client.set_tag(child.run_id, STATUS_TAG, trial_status)
        self.client.set_tag(child.run_id, RUN_STATUS_TAG, run_status)
        if run_status != TrialStatus.FAILED and child.status != "FINISHED":
            self._attach_run_files(record, child)
        # FINISHED also for a finished seed of a still-running multi-seed trial (trial_status RUNNING).
        mlflow_status = "FAILED" if run_status == TrialStatus.FAILED else "FINISHED"
        if child.status != mlflow_status:
            self.client.set_terminated(child.run_id, status=mlflow_status)
            child.status = mlflow_status
