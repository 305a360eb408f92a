"""Turn a checkpoint on disk — ours or the authors' — into a run configuration and model weights.

Two formats are read:

* **ours**: a checkpoint directory (``model.pt`` + ``config.yaml`` …, :mod:`engine.training.checkpoint`),
  or a run directory, meaning its best checkpoint (its last when no best exists);
* **BrainCog / timm**: the single file timm's ``CheckpointSaver`` writes (``model_best.pth.tar``): a
  dict with ``state_dict``, and usually ``args`` (the original argparse namespace), ``arch``,
  ``epoch``, ``metric``. Keys are mapped onto our modules by
  :func:`engine.models.legacy_keys.map_braincog_state_dict`; the run configuration is rebuilt from
  ``args`` where it says something (model, T, dataset, neuron, surrogate, threshold, τ, event size),
  and ``--set`` overrides fill in the rest (``data.root`` at least).

The file is read with ``torch.load(weights_only=True)``, allowing only ``argparse.Namespace`` besides
tensors and plain containers, so evaluating a downloaded checkpoint cannot execute code from it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.config import RunConfig
from engine.errors import TrainingError
from engine.training.checkpoint import (
    BEST_MODEL_FILE,
    MODEL_FILE,
    load_model_state,
    resolve_checkpoint,
)
from engine.training.records import BEST_TEST_TOP1
from engine.training.rundir import CONFIG_FILE, META_FILE, RunDir

__all__ = [
    "LoadedWeights",
    "braincog_config_overrides",
    "build_model",
    "load_model_weights",
    "load_weights",
    "restore_model",
]

# The original command-line values (spec §1, §7, §9) → our registry names.
_ORIGINAL_DATASETS = {"NCALTECH101": "ncaltech101", "CEPDVS": "cepdvs", "nomni": "nomniglot"}
_ORIGINAL_NEURONS = {"LIFNode": "lif", "IFNode": "if", "PLIFNode": "plif"}
_ORIGINAL_SURROGATES = {
    "QGateGrad": "qgate",
    "BackEIGateGrad": "backei_gate",
    "GateGrad": "gate",
    "AtanGrad": "atan",
    "SigmoidGrad": "sigmoid",
}


@dataclass
class LoadedWeights:
    """What evaluation needs from a checkpoint."""

    config: RunConfig
    state_dict: dict[str, torch.Tensor]
    """Keys already in our layout."""
    source: str
    """``"spikesweep"`` or ``"braincog"``."""
    path: Path
    info: dict[str, Any]
    """Format-specific facts worth printing (epoch, the metric saved with it, …)."""


def build_model(config: RunConfig, num_classes: int, device: str | torch.device | None = None) -> nn.Module:
    """The model a run configuration describes, built on the CPU.

    ``model.step_mode = auto`` picks the faster step mode for ``device`` (default: the device
    ``config.device`` names — for ``auto``, CUDA when available), see
    ``engine.models.resolve_step_mode``.
    """
    from engine.models import create_model  # noqa: PLC0415

    m = config.model
    if device is None and config.device != "auto":
        device = config.device
    model = create_model(
        m.name,
        num_classes=num_classes,
        T=config.T,
        width=m.width,
        neuron=m.neuron_spec(),
        input_size=config.data.event_size,
        step_mode=m.step_mode,
        neuron_backend=m.neuron_backend,
        recompute=m.recompute,
        lean_spikes=m.lean_spikes,
        device=device,
    )
    if getattr(model, "is_transfer", False):
        model.static_bn_stats = config.method.static_bn_stats
        source, ratio = config.method.mixup_source_weight > 0, config.method.mixup_ratio_weight > 0
        if source or ratio:
            model.add_mixup_heads(_feature_dim(model, config), source=source, ratio=ratio)
    return model


def _feature_dim(model: torch.nn.Module, config: RunConfig) -> int:
    """Size of one step's flattened transfer feature, from one forward pass on zeros (eval mode, so no
    running statistic moves)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(2, config.T, 2, config.data.event_size, config.data.event_size)
            return int(model(x, x).feat_static.flatten(2).shape[-1])
    finally:
        model.train(was_training)


def restore_model(loaded: LoadedWeights, num_classes: int) -> nn.Module:
    """Build the model ``loaded.config`` describes and load the checkpoint's weights into it strictly."""
    model = build_model(loaded.config, num_classes)
    load_model_weights(model, loaded.state_dict, source=f"{loaded.path} ({loaded.source})")
    return model


def load_weights(path: str | Path, overrides: list[str] | dict[str, Any] | None = None) -> LoadedWeights:
    """Read a checkpoint of either format; ``overrides`` (``--set``) apply to its configuration."""
    path = Path(path)
    if not path.exists():
        raise TrainingError(f"checkpoint {str(path)!r} does not exist")
    if path.is_dir():
        return _load_ours(path, overrides or [])
    return _load_braincog(path, overrides or [])


def load_model_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "") -> None:
    """``model.load_state_dict(state_dict)`` strictly, with an error that lists what did not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", mismatched),
        ):
            if items:
                shown = ", ".join(items[:8]) + (f", … ({len(items)} in all)" if len(items) > 8 else "")
                parts.append(f"{label}: {shown}")
        hint = " (check model.name, model.width, T, data.event_size and the dataset's class count)"
        raise TrainingError(f"checkpoint {source} does not fit the model{hint}: " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=True)


def braincog_config_overrides(args: Mapping[str, Any] | argparse.Namespace | None) -> dict[str, Any]:
    """Config keys implied by the original run's argparse namespace (only those it sets)."""
    if args is None:
        return {}
    a = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    out: dict[str, Any] = {}
    if isinstance(a.get("model"), str):
        out["model.name"] = a["model"].lower()
    if isinstance(a.get("step"), int):
        out["T"] = a["step"]
    if a.get("target_dataset") in _ORIGINAL_DATASETS:
        out["data.pair"] = _ORIGINAL_DATASETS[a["target_dataset"]]
    if a.get("node_type") in _ORIGINAL_NEURONS:
        out["model.neuron"] = _ORIGINAL_NEURONS[a["node_type"]]
    if a.get("act_fun") in _ORIGINAL_SURROGATES:
        out["model.surrogate"] = _ORIGINAL_SURROGATES[a["act_fun"]]
    for original, ours in (("threshold", "model.v_th"), ("tau", "model.tau")):
        if isinstance(a.get(original), int | float) and not isinstance(a.get(original), bool):
            out[ours] = float(a[original])
    if isinstance(a.get("event_size"), int):
        out["data.event_size"] = a["event_size"]
    if isinstance(a.get("train_portion"), int | float):
        out["data.train_portion"] = float(a["train_portion"])
    for original, ours in (("seed", "seed"), ("batch_size", "batch_size")):
        if isinstance(a.get(original), int) and not isinstance(a.get(original), bool):
            out[ours] = a[original]
    return out


# --------------------------------------------------------------------------------------------------


def _sweep_run_checkpoint(path: Path) -> Path | None:
    """A sweep's exported run: ``runs/<plan key>/seed_<s>/best`` (a checkpoint directory), named by the
    seed directory, or by the plan-key directory when it holds one seed."""
    if (path / "best" / META_FILE).is_file():
        return path / "best"
    seeds = sorted(p for p in path.glob("seed_*") if (p / "best" / META_FILE).is_file())
    if len(seeds) == 1:
        return seeds[0] / "best"
    if len(seeds) > 1:
        raise TrainingError(
            f"{str(path)!r} holds the runs of {len(seeds)} seeds; name one: "
            + ", ".join(str(p) for p in seeds)
        )
    return None


def _load_ours(path: Path, overrides: list[str] | dict[str, Any]) -> LoadedWeights:
    """A checkpoint directory → its own weights; a run directory → its best weights; a sweep's run
    directory (``runs/<plan key>`` or ``runs/<plan key>/seed_<s>``) → its exported best checkpoint."""
    exported = None if (path / META_FILE).is_file() else _sweep_run_checkpoint(path)
    if exported is not None:
        path = exported
    if RunDir(path).has_checkpoints():
        best = RunDir(path).best
        directory = resolve_checkpoint(best if best.is_dir() else path)
        weights = directory / MODEL_FILE if best.is_dir() else directory / BEST_MODEL_FILE
    else:
        directory = resolve_checkpoint(path)
        weights = directory / MODEL_FILE
    meta = json.loads((directory / META_FILE).read_text())
    config = RunConfig.from_yaml(directory / CONFIG_FILE)
    if overrides:
        config = config.with_overrides(overrides)
    info = {"epoch": meta["epoch"] if weights.name == MODEL_FILE else meta["best_epoch"]}
    info[BEST_TEST_TOP1] = meta[BEST_TEST_TOP1]
    return LoadedWeights(config, load_model_state(weights), "spikesweep", weights, info)


def _load_braincog(path: Path, overrides: list[str] | dict[str, Any]) -> LoadedWeights:
    from engine.models.legacy_keys import braincog_neuron_constants, map_braincog_state_dict  # noqa: PLC0415

    if path.suffix == ".pt" and (path.parent / META_FILE).is_file():  # model.pt of one of ours
        return _load_ours(path.parent, overrides)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(
            f"{str(path)!r} is not a readable checkpoint (expected a spikesweep checkpoint directory or a "
            f"BrainCog/timm .pth(.tar) file holding tensors and plain values): {exc}"
        ) from exc
    if not isinstance(blob, Mapping):
        raise TrainingError(f"{str(path)!r} holds a {type(blob).__name__}, not a checkpoint dict")
    args = blob.get("args")
    raw = blob["state_dict"] if isinstance(blob.get("state_dict"), Mapping) else blob
    if not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise TrainingError(
            f"{str(path)!r}: no state_dict of tensors found (keys: {', '.join(list(blob)[:10])})"
        )
    implied = braincog_config_overrides(args)
    if "model.name" not in implied and isinstance(blob.get("arch"), str):
        implied["model.name"] = blob["arch"].lower()
    try:
        constants = braincog_neuron_constants(raw)
    except ValueError as exc:
        raise TrainingError(f"{str(path)!r}: {exc}") from None
    if "v_th" in constants:
        implied.setdefault("model.v_th", constants["v_th"])
    config = RunConfig().with_overrides(implied, source=f"{path.name} (args)")
    if overrides:
        config = config.with_overrides(overrides)
    try:
        state_dict = map_braincog_state_dict(config.model.name, raw)
    except ValueError as exc:
        raise TrainingError(f"{str(path)!r}: {exc}; set the model with --set model.name=NAME") from None
    info = {
        k: blob[k]
        for k in ("epoch", "metric", "arch")
        if k in blob and isinstance(blob[k], int | float | str)
    }
    return LoadedWeights(config, state_dict, "braincog", path, info)
