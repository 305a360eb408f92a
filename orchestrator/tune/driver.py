"""``run_sweep``: validate a space, then build (or restore) the Ray Tune experiment and run it.

The order is the point: the space is validated — every planned point through the engine's own config
checks — before a directory is created or Ray is started; an existing sweep directory is resumed only
if its stored space hash matches; the Tune driver then runs with one study, one MLflow writer and one
journal, and stops gracefully on SIGINT, SIGUSR1 (Tune's own handlers) and SIGTERM (translated to
SIGINT here, because Tune ignores it), leaving its experiment state saved for the next run.

Resuming and untrusted files: Ray Tune's ``Tuner.restore`` unpickles the experiment state
(``tuner.pkl``, the searcher's state), and unpickling runs code. Sweeps live on shared storage, so the
design is OpenSSH's StrictModes (:mod:`orchestrator.trust`): before anything of an existing sweep is
read, every file and directory under it must be owned by the user resuming and writable by nobody else,
or the resume is refused with the offending paths; the driver creates sweeps under a umask without
group/other write so this holds by default. A sweep that never started a trial (it failed before Ray
Tune ran, e.g. on a GPU request without a GPU) holds only ``sweep.json`` and ``space.yaml``, so it may be
rerun with an edited space, with a note.

Exit semantics used by the CLI: a complete sweep returns 0; an interrupted one returns
:data:`EXIT_INTERRUPTED` (75, "try again"), and rerunning the same command resumes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from engine.errors import ConfigError
from orchestrator.plan import ConfigScore, build_plan
from orchestrator.preflight import check_cluster_fits, check_datasets, local_resources, max_concurrent_trials
from orchestrator.space import SweepSpace, load_space
from orchestrator.summary import format_best, format_front, format_plan
from orchestrator.sweepdir import SweepDir, SweepMeta
from orchestrator.trust import check_state_trusted

__all__ = ["EXIT_INTERRUPTED", "SweepOutcome", "run_sweep"]

EXIT_INTERRUPTED = 75
log = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    """What ``run_sweep`` did."""

    sweep_dir: Path
    dry_run: bool = False
    complete: bool = False
    resumed: bool = False
    statuses: dict[str, int] = field(default_factory=dict)
    best: list[ConfigScore] = field(default_factory=list)
    results: Any = None
    """Ray Tune's ``ResultGrid`` of this run (None for a dry run)."""
    problems: list[str] = field(default_factory=list)
    """Why the real run could not start (a dry run's findings): a non-empty list exits 1."""

    @property
    def exit_code(self) -> int:
        if self.problems:
            return 1
        return 0 if self.dry_run or self.complete else EXIT_INTERRUPTED


def run_sweep(
    space_path: str | Path,
    name: str | None = None,
    storage: str | Path | None = None,
    address: str | None = None,
    resume: bool | None = None,
    dry_run: bool = False,
    out: TextIO | None = None,
    estimate: bool = False,
    overrides: Sequence[str] = (),
    verbose: bool = False,
) -> SweepOutcome:
    """Run (or resume, or only plan) the sweep a space file describes.

    Args:
        space_path: the search-space YAML (``search_spaces/*.yaml``).
        name: sweep name (default: the space's ``name``); the sweep lives in ``<storage>/<name>/``.
        storage: parent directory of sweeps (default ``./sweeps``); must be shared storage when trials
            run on several nodes.
        address: an existing Ray cluster to join (``ray://`` or ``host:port``); default: start a local
            one (or use the one this process already started).
        resume: ``None`` resumes an existing sweep or starts a new one; ``True`` insists on resuming.
        dry_run: print the plan and resources, start nothing.
        estimate: with ``dry_run``, also time the plan's run shapes and print a wall-time estimate
            (:mod:`orchestrator.estimate`).
        verbose: keep Ray's and MLflow's own banners and hints (:func:`quiet_ray`).
        overrides: ``--set KEY=VALUE`` changes to the space's base config; they become part of the space
            (its hash and the ``space.yaml`` kept in the sweep directory), so they name another sweep.
        out: where to print (default stdout).
    """
    stream = out or sys.stdout
    space = load_space(space_path, overrides)
    sweep_dir = SweepDir.for_space(space, storage, name)
    plan = build_plan(space)
    if dry_run:
        print(format_plan(plan, sweep_dir, address), file=stream)
        problems = dry_run_problems(space, plan, address)
        if estimate:
            from orchestrator.estimate import estimate_sweep, format_estimate  # noqa: PLC0415

            concurrency = space.max_concurrent_trials or max_concurrent_trials(space, local_resources())
            print(format_estimate(estimate_sweep(space, plan, concurrency)), file=stream)
        if problems:
            print("the real run could not start:\n  - " + "\n  - ".join(problems), file=stream)
        return SweepOutcome(sweep_dir=sweep_dir.root, dry_run=True, problems=problems)
    existing = sweep_dir.exists()
    if resume and not existing:
        raise ConfigError(
            f"--resume: there is no sweep at {sweep_dir.root} to resume (no {sweep_dir.meta_path.name})"
        )
    if existing and sweep_dir.never_started():
        print(
            f"[sweep] note: {sweep_dir.root} holds a sweep that never started a trial; starting it again "
            f"from {space.path} (edits to the space are allowed until a trial has run)",
            file=stream,
        )
        existing = False
    meta = sweep_dir.check_resumable(space) if existing else None
    if existing:
        # A resume unpickles Ray Tune's saved state, and unpickling runs whatever the file says: first
        # make sure nobody but us could have written anything in the sweep directory (orchestrator.trust).
        check_state_trusted(sweep_dir.root)
        from orchestrator.tune.searcher import TrialPlanner  # noqa: PLC0415
        from orchestrator.tune.study import SweepStudy  # noqa: PLC0415

        if sweep_dir.optuna_db.is_file() and TrialPlanner(SweepStudy(space, sweep_dir)).is_complete():
            print(f"[sweep] {sweep_dir.name} is complete; nothing to run (Ray not started)", file=stream)
            return _conclude(space, sweep_dir, None, True, stream)
    check_datasets(space, plan)  # a missing dataset fails here, not in every trial on the cluster
    if address is None and not _ray_running():
        check_cluster_fits(space, local_resources())  # before anything is written
    _private_umask()
    quiet_ray(verbose)
    meta = meta or sweep_dir.create(space)
    # Ray installs its own SIGTERM handler (which aborts the driver) in ray.init: ours goes on after it.
    with _ray_cluster(address, stream), _interrupt_on_sigterm():
        import ray  # noqa: PLC0415

        check_cluster_fits(space, ray.cluster_resources())
        tuner, resumed = _tuner(space, sweep_dir, meta, stream)
        print(
            f"[sweep] {'resuming' if resumed else 'starting'} {space.name} in {sweep_dir.root} "
            f"(up to {plan.max_trials()} trials)",
            file=stream,
            flush=True,
        )
        results = tuner.fit()
    resume = ["spikesweep", "sweep", str(space_path), "--storage", str(sweep_dir.storage)]
    resume += ["--name", sweep_dir.name] if name else []
    resume += [arg for o in overrides for arg in ("--set", o)]
    return _conclude(space, sweep_dir, results, resumed or existing, stream, shlex.join(resume))


def dry_run_problems(space: SweepSpace, plan: Any, address: str | None) -> list[str]:
    """What would stop the real run on the target: datasets not ready, trials the cluster cannot place."""
    from orchestrator.preflight import describe_datasets  # noqa: PLC0415

    problems = list(
        dict.fromkeys(line.strip() for line in describe_datasets(space, plan) if "NOT READY" in line)
    )
    if address is None:
        try:
            check_cluster_fits(space, local_resources())
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def quiet_ray(verbose: bool) -> None:
    """Ray's and MLflow's banners, hints and info lines off unless ``--verbose``.

    Off: the local-instance and token banners (token authentication itself stays on), Tune's
    configuration box (which claims 2**63 trials: the searcher, not Tune, ends the plan), its
    TensorBoard and ``Tuner.restore`` hints (the resume command is printed by this driver instead), and
    MLflow's database-migration info lines. Warnings and errors that concern the user still print.
    """
    if verbose:
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter prints nothing at verbose=0
    import mlflow  # noqa: F401, PLC0415 — both set their loggers' levels on import: import first, then quiet
    import ray  # noqa: F401, PLC0415

    for name in ("ray", "ray.tune", "ray.train", "ray.air", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    tune_logger = logging.getLogger("ray.tune.tune")
    if not any(isinstance(f, _PythonResumeHint) for f in tune_logger.filters):
        tune_logger.addFilter(_PythonResumeHint())


class _PythonResumeHint(logging.Filter):
    """Drops Tune's "Resume experiment with: Tuner.restore(...)" (Python, for Tune's own users); the driver
    prints the spikesweep command that resumes instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def _private_umask() -> None:
    """No group/other write bit on anything the driver (and a local Ray it starts) creates, so the resume
    check (:func:`orchestrator.trust.check_state_trusted`) holds for sweeps made here by default."""
    os.umask(os.umask(0) | 0o022)


# --------------------------------------------------------------------------------------------------
# building the experiment


def _tuner(space: SweepSpace, sweep_dir: SweepDir, meta: SweepMeta, stream: TextIO) -> tuple[Any, bool]:
    from ray import tune  # noqa: PLC0415

    from engine.training.records import metric_keys  # noqa: PLC0415
    from orchestrator.records.journal import SweepRecorder  # noqa: PLC0415
    from orchestrator.tune.callback import ResultsCallback  # noqa: PLC0415
    from orchestrator.tune.progress import ProgressTable  # noqa: PLC0415
    from orchestrator.tune.schedulers import build_scheduler  # noqa: PLC0415
    from orchestrator.tune.searcher import OptunaSearcher, TrialPlanner  # noqa: PLC0415
    from orchestrator.tune.study import SweepStudy  # noqa: PLC0415
    from orchestrator.tune.trainable import FaultSpec, TrialSetup, run_trial  # noqa: PLC0415

    setup = TrialSetup(
        base=space.base_config().to_dict(),
        sweep_dir=str(sweep_dir.root),
        metric=space.metric,
        cpus=space.resources.cpu,
        gpu_fraction=space.resources.gpu,
        fault=FaultSpec.from_env(),
    )
    # Snapshotting after every checkpoint is deliberate (num_to_keep=1 keeps the state and the newest
    # checkpoint in step, so a killed driver loses at most one epoch); Tune warns about it, loudly.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup), space.resources.as_ray())
    root = str(sweep_dir.root)
    if tune.Tuner.can_restore(root):
        # Searcher, scheduler and callbacks come back from Tune's own pickle (tuner.pkl); the space hash
        # check guarantees they were built from this same space, and run_sweep's trust check that
        # nobody else could have written them.
        tuner = tune.Tuner.restore(root, trainable, resume_unfinished=True, resume_errored=True)
        return tuner, True

    study = SweepStudy(space, sweep_dir)
    planner = TrialPlanner(study)
    recorder = SweepRecorder(sweep_dir.journal, metric_keys(space.max_T()))
    callbacks: list[Any] = [ResultsCallback(study, recorder, sweep_dir, meta)]
    if space.mlflow.enabled:
        from orchestrator.tune.mlflow_logger import MlflowSweepLogger  # noqa: PLC0415

        uri = space.mlflow.tracking_uri or sweep_dir.mlflow_default_uri
        artifacts = sweep_dir.mlflow_artifacts.as_uri() if space.mlflow.tracking_uri is None else None
        callbacks.append(
            MlflowSweepLogger(
                planner,
                recorder,
                meta,
                tracking_uri=uri,
                experiment=space.mlflow.experiment or meta.name,
                artifact_location=artifacts,
                space_file=sweep_dir.space_path,
            )
        )
    callbacks.append(ProgressTable(study, recorder, space.progress_interval_s))
    tune_config = tune.TuneConfig(
        search_alg=OptunaSearcher(planner),
        scheduler=build_scheduler(study),
        num_samples=-1,  # the searcher decides when the plan is exhausted
        max_concurrent_trials=max_concurrent_trials(space),
        reuse_actors=True,
        trial_name_creator=trial_name,
        trial_dirname_creator=trial_dirname,
    )
    run_config = tune.RunConfig(
        name=sweep_dir.name,
        storage_path=str(sweep_dir.storage),
        failure_config=tune.FailureConfig(max_failures=space.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        # Trials keep their files in node-local scratch (orchestrator.tune.trainable.scratch_dir); what a
        # resume needs travels in Tune's checkpoints and finished runs are exported to <sweep>/runs/,
        # so there are no trial "artifacts" worth copying.
        sync_config=tune.SyncConfig(sync_artifacts=False, sync_artifacts_on_checkpoint=False),
        callbacks=callbacks,
        verbose=0,
    )
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config), False


def trial_name(trial: Any) -> str:
    return str(trial.config.get("plan_key", trial.trial_id))


def trial_dirname(trial: Any) -> str:
    return f"{trial.config.get('plan_key', 'trial')}_{trial.trial_id}"


@contextlib.contextmanager
def _ray_cluster(address: str | None, stream: TextIO) -> Iterator[None]:
    """Join ``address``, reuse this process's Ray, or start a private local cluster (stopped after)."""
    import ray  # noqa: PLC0415

    if ray.is_initialized():
        yield
        return
    level = logging.getLogger("ray").getEffectiveLevel()  # WARNING unless --verbose (quiet_ray)
    if address:
        ray.init(address=address, log_to_driver=True, logging_level=level)
    else:
        # "local": never attach to a cluster someone else started on this machine.
        ray.init(address="local", include_dashboard=False, logging_level=level)
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM → SIGINT, which Tune turns into a graceful stop with the experiment state saved.

    SIGUSR1 before Tune has installed its own handler (while the experiment is built) would kill the
    process; it is mapped to the same interrupt, which is harmless then and resumable later.
    """

    def to_sigint(signum: int, frame: Any) -> None:
        signal.raise_signal(signal.SIGINT)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        with contextlib.suppress(ValueError):  # not the main thread: leave signals to the caller
            previous[sig] = signal.signal(sig, to_sigint)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------------------------------
# the end


def _conclude(
    space: SweepSpace,
    sweep_dir: SweepDir,
    results: Any,
    resumed: bool,
    stream: TextIO,
    resume_command: str = "",
) -> SweepOutcome:
    from orchestrator.records import TrialStatus  # noqa: PLC0415
    from orchestrator.tune.searcher import TrialPlanner  # noqa: PLC0415
    from orchestrator.tune.study import SweepStudy  # noqa: PLC0415

    study = SweepStudy(space, sweep_dir)  # a fresh read of the study: the state on disk is the truth
    complete = TrialPlanner(study).is_complete()
    statuses: dict[str, int] = {}
    for status, n in study.status_counts().items():
        shown = TrialStatus.shown(status, started=True, stopped=not complete)
        statuses[shown] = statuses.get(shown, 0) + n
    best = study.ranking()
    if space.multi_objective:
        print(format_front(space, study.front()), file=stream)
    else:
        print(format_best(space, best), file=stream)
    summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(statuses.items()))
    if complete:
        print(f"[sweep] {space.name} complete: {summary}. Results: {sweep_dir.trials_parquet}", file=stream)
    else:
        print(
            f"[sweep] {sweep_dir.name} stopped before the end ({summary}); "
            f"its state is saved — resume with:\n  {resume_command or 'the same command'}",
            file=stream,
        )
    return SweepOutcome(
        sweep_dir=sweep_dir.root,
        complete=complete,
        resumed=resumed,
        statuses=statuses,
        best=best,
        results=results,
    )
