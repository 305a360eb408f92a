"""Checks before a sweep launches: its datasets exist, its trials fit the cluster, how many run at once.

A sweep that cannot run should fail in the first seconds with a message, not hours later in every
trial: a missing dataset root, or a GPU request on a cluster without GPUs (Ray Tune would wait for it
forever), is caught here, before the sweep directory or any trial exists.
"""

from __future__ import annotations

import math
import os
from typing import Any

from engine.errors import ConfigError
from orchestrator.plan import SweepPlan
from orchestrator.space import SweepSpace

__all__ = [
    "check_cluster_fits",
    "check_datasets",
    "data_configs",
    "describe_datasets",
    "local_resources",
    "max_concurrent_trials",
]


def data_configs(space: SweepSpace, plan: SweepPlan) -> list[Any]:
    """One run config per distinct ``data`` section the sweep can use (base, arms, data.* values)."""
    base = space.base_config()
    candidates: list[dict[str, Any]] = [{}]
    candidates += [arm.overrides for arm in space.arms]
    candidates += [t.overrides for t in plan.fixed]
    for param in space.parameters:
        if param.key.startswith("data.") and param.kind in ("grid", "choice"):
            candidates += [{param.key: v} for v in param.values]
    seen: dict[str, Any] = {}
    for overrides in candidates:
        data_only = {k: v for k, v in overrides.items() if k.startswith("data.")}
        config = base.with_overrides(data_only)
        seen.setdefault(repr(config.data), config)
    return list(seen.values())


def check_datasets(space: SweepSpace, plan: SweepPlan) -> None:
    """List every dataset the sweep reads (no decoding); :class:`DatasetError` says what is missing."""
    from engine.data import load_catalog  # noqa: PLC0415

    for config in data_configs(space, plan):
        load_catalog(config)


def describe_datasets(space: SweepSpace, plan: SweepPlan) -> list[str]:
    """``--dry-run``'s dataset lines: found (with sizes), generated on first use, or what is missing."""
    from engine.data import load_catalog  # noqa: PLC0415
    from engine.errors import DatasetError  # noqa: PLC0415

    lines = []
    for config in data_configs(space, plan):
        data = config.data
        if data.pair == "nshapes" and data.root is None:
            lines.append(f"  nshapes ({data.nshapes_classes} classes × {data.nshapes_per_class}): built in")
            continue
        try:
            catalog = load_catalog(config)
        except DatasetError as exc:
            first = str(exc).splitlines()[0]
            lines.append(
                f"  {data.pair}: NOT READY — {first} (`spikesweep data check --pair {data.pair}` explains)"
            )
            continue
        lines.append(
            f"  {data.pair} at {data.root}: {catalog.num_classes} classes, {len(catalog.train)} train / "
            f"{len(catalog.test)} test recordings"
        )
    return lines


def max_concurrent_trials(space: SweepSpace, cluster: dict[str, float] | None = None) -> int:
    """The space's value, else as many trials as the cluster's CPUs (and GPUs) fit — never unset."""
    if space.max_concurrent_trials is not None:
        return space.max_concurrent_trials
    if cluster is None:
        import ray  # noqa: PLC0415

        cluster = ray.cluster_resources() if ray.is_initialized() else {"CPU": float(os.cpu_count() or 1)}
    fits = math.floor(cluster.get("CPU", 1.0) / space.resources.cpu)
    if space.resources.gpu > 0:
        fits = min(fits, math.floor(cluster.get("GPU", 0.0) / space.resources.gpu + 1e-9))
    return max(1, fits)


def local_resources() -> dict[str, float]:
    import torch  # noqa: PLC0415

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {"CPU": float(os.cpu_count() or 1), "GPU": float(gpus)}


def check_cluster_fits(space: SweepSpace, cluster: dict[str, float]) -> None:
    """Refuse to launch trials the cluster can never place (Tune would wait for them forever)."""
    need = space.resources
    if cluster.get("CPU", 0.0) + 1e-9 < need.cpu or cluster.get("GPU", 0.0) + 1e-9 < need.gpu:
        raise ConfigError(
            f"{space.path}: resources: a trial needs {need.cpu:g} CPU and {need.gpu:g} GPU, but the Ray "
            f"cluster has {cluster.get('CPU', 0.0):g} CPU and {cluster.get('GPU', 0.0):g} GPU in total; "
            f"lower `resources` or run on a cluster with GPUs (--address)"
        )
