"""What ``spikesweep sweep`` prints around a sweep: the plan of ``--dry-run`` and the best configurations."""

from __future__ import annotations

import statistics

from orchestrator.plan import ConfigScore, SweepPlan
from orchestrator.preflight import describe_datasets, local_resources, max_concurrent_trials
from orchestrator.space import SweepSpace
from orchestrator.sweepdir import SweepDir

__all__ = ["format_best", "format_front", "format_plan"]


def format_best(space: SweepSpace, ranking: list[ConfigScore], top: int = 5) -> str:
    if not ranking:
        return f"[sweep] no configuration has completed yet ({space.metric})"
    lines = [f"[sweep] best configurations by mean {space.metric} ({space.metric_mode}) over seeds:"]
    for rank, score in enumerate(ranking[:top], start=1):
        spread = f" ± {statistics.stdev(score.values):.3g}" if len(score.values) > 1 else ""
        params = " ".join(f"{k}={_short(v)}" for k, v in score.params.items())
        n = len(score.values)
        lines.append(f"  {rank}. {score.mean:.4g}{spread}  (n={n}, config {score.config_hash})  {params}")
    return "\n".join(lines)


def format_front(space: SweepSpace, front: list[ConfigScore]) -> str:
    """A multi-objective sweep's closing lines: its Pareto front, first objective first."""
    names = " vs ".join(str(o) for o in space.objectives)
    if not front:
        return f"[sweep] no configuration has completed yet ({names})"
    lines = [f"[sweep] Pareto front of the seed means ({names}): {len(front)} configuration(s)"]
    for score in front:
        params = " ".join(f"{k}={_short(v)}" for k, v in score.params.items())
        n, config = len(score.values), score.config_hash
        lines.append(f"  {space.metric} {score.mean:.4g}  (n={n}, config {config})  {params}")
    lines.append("  (every objective with its CI: spikesweep report)")
    return "\n".join(lines)


def format_plan(plan: SweepPlan, sweep_dir: SweepDir, address: str | None = None) -> str:
    """The human-readable plan ``--dry-run`` prints."""
    space = plan.space
    base = space.base_config()
    lines = [f"sweep {space.name!r} → {sweep_dir.root}"]
    if sweep_dir.exists():
        lines.append("  (this directory holds a sweep: running the command resumes it)")
    if space.description:
        lines.append("  " + space.description.replace("\n", "\n  "))
    origin = f"preset {space.preset!r}" if space.preset else "RunConfig defaults"
    lines.append(
        f"base: {origin} + {len(space.base_overrides)} override(s): model {base.model.name} "
        f"(width {base.model.width}), data {base.data.pair} {base.data.event_size}px, T={base.T}, "
        f"{base.epochs} epochs, batch {base.batch_size}"
    )
    if space.parameters:
        lines.append("parameters:")
        lines.extend(f"  {p.key}: {p.describe()}" for p in space.parameters)
    if space.arms:
        lines.append("arms:")
        for arm in space.arms:
            sets = ", ".join(f"{k}={v}" for k, v in arm.overrides.items()) or "(base)"
            lines.append(f"  {arm.name}: {sets}")
    search = space.search
    per = "all seeds in turn (wilcoxon)" if space.pruner.seed_aware else f"seeds {list(search.seeds)}"
    if search.mode == "grid":
        lines.append(f"search: grid of {space.grid_size()} configuration(s), each on {per}")
    else:
        sampler = f"{search.sampler} sampler" if search.mode == "optuna" else "random sampler"
        lines.append(
            f"search: {search.mode} ({sampler}, seed {search.sampler_seed}): {plan.sampled_configs} "
            f"configuration(s), each on {per}"
        )
    if space.confirm:
        seeds = list(plan.confirm_seeds)
        if space.multi_objective:
            cap = "" if space.confirm.top_k is None else f" (at most {space.confirm.top_k} configurations)"
            lines.append(f"confirm: the search stage's Pareto front{cap} re-run on seeds {seeds}")
        else:
            lines.append(f"confirm: the top {plan.confirm_configs} configuration(s) re-run on seeds {seeds}")
    pruner = space.pruner
    options = ", ".join(f"{k}={v}" for k, v in pruner.options.items())
    lines.append(f"pruner: {pruner.name}" + (f" ({options})" if options else ""))
    if space.multi_objective:
        objectives = ", ".join(f"{o.metric} ({o.mode})" for o in space.objectives)
        lines.append(f"objectives: {objectives} — a Pareto search, no pruning")
    else:
        lines.append(f"objective: {space.metric} ({space.metric_mode})")
    runs = plan.max_engine_runs()
    lines.append(f"trials: at most {plan.max_trials()} ({runs} engine run(s) of {base.epochs} epochs)")
    local = local_resources()
    if space.max_concurrent_trials is not None:
        concurrency = str(space.max_concurrent_trials)
    else:
        fits = max_concurrent_trials(space, local)
        here = f"{local['CPU']:g} CPUs, {local['GPU']:g} GPUs"
        concurrency = f"as many as the cluster fits ({fits} on this machine: {here})"

    gpu = space.resources.gpu
    gpu_text = f"{gpu:g} GPU" + (" (memory bounded to that fraction per trial)" if 0 < gpu < 1 else "")
    lines.append(
        f"resources per trial: {space.resources.cpu:g} CPU, {gpu_text}; max concurrent trials: {concurrency}"
    )
    lines.append(f"retries per crashed trial: {space.max_failures}")
    lines.append(f"ray: {'join ' + address if address else 'start a local cluster'}")
    if space.mlflow.enabled:
        uri = space.mlflow.tracking_uri or sweep_dir.mlflow_default_uri
        lines.append(f"mlflow: {uri} (experiment {space.mlflow.experiment or sweep_dir.name!r})")
    else:
        lines.append("mlflow: off")
    lines.append("datasets:")
    lines.extend(describe_datasets(space, plan))
    if plan.fixed:
        lines.append("trial plan:")
        shown = plan.fixed[:50]
        for trial in shown:
            params = " ".join(f"{k}={v}" for k, v in trial.params.items())
            seeds = ",".join(str(s) for s in trial.seeds)
            lines.append(f"  {trial.plan_key:<10} {trial.stage:<7} seed {seeds:<10} {params}")
        if len(plan.fixed) > len(shown):
            lines.append(f"  … {len(plan.fixed) - len(shown)} more")
    return "\n".join(lines)


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
