"""Load the authors' BrainCog checkpoints: map their state-dict keys onto ours.

Our modules keep BrainCog's names (``feature.{i}.conv``, ``layer{s}.{b}.bn1``, ``fc1``, ...), so the
mapping is short; each model's module docstring lists it in full. What differs:

* heads: the original VGG heads are ``Sequential(Flatten, Linear)`` (``rgb_fc.1.weight``); ours are
  plain linear layers (``rgb_fc.weight``).
* neurons: BrainCog stores each node's threshold (``*.threshold``) and surrogate α
  (``*.act_fun.alpha``) as frozen parameters. Here they are constructor numbers (``v_th``,
  ``surrogate_alpha``), so those keys are dropped — after checking that they agree with each other;
  :func:`braincog_neuron_constants` returns them so the caller can build the model to match.
* PLIF's learnable ``w`` keeps its name.
* wrappers: a full timm checkpoint (``{"state_dict": ...}``) and DataParallel's ``module.`` prefix
  are unwrapped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from engine.models.factory import MODELS

__all__ = ["braincog_neuron_constants", "map_braincog_state_dict"]

_NEURON_CONSTANT = re.compile(r"(^|\.)(threshold|act_fun\.alpha)$")
_SEQUENTIAL_HEAD = re.compile(r"^(rgb_fc|dvs_fc|fc)\.1\.(weight|bias)$")


def _unwrap(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]
    out = {}
    for key, value in state_dict.items():
        out[key[len("module.") :] if key.startswith("module.") else key] = value
    return out


def braincog_neuron_constants(state_dict: Mapping[str, Any]) -> dict[str, float]:
    """The (single) threshold and surrogate α stored in a BrainCog state dict.

    Returns ``{"v_th": ..., "surrogate_alpha": ...}`` (a key is missing when the checkpoint has none).
    Raises ``ValueError`` when the nodes disagree, since our models use one value for every neuron.
    """
    found: dict[str, set[float]] = {"v_th": set(), "surrogate_alpha": set()}
    for key, value in _unwrap(state_dict).items():
        match = _NEURON_CONSTANT.search(key)
        if match:
            name = "v_th" if match.group(2) == "threshold" else "surrogate_alpha"
            found[name].add(round(float(value), 7))
    for name, values in found.items():
        if len(values) > 1:
            raise ValueError(f"the checkpoint's neurons use different {name} values {sorted(values)}")
    return {name: values.pop() for name, values in found.items() if values}


def map_braincog_state_dict(model_name: str, state_dict: Mapping[str, Any]) -> dict[str, Tensor]:
    """Rename a BrainCog state dict so ``create_model(model_name, ...).load_state_dict(out)`` is strict.

    Args:
        model_name: our registry name (``transfer_vgg_snn``, ...); an unknown name raises ``ValueError``.
        state_dict: the original ``model.state_dict()``, or a timm checkpoint holding one.
    """
    MODELS.get(model_name)
    sd = _unwrap(state_dict)
    braincog_neuron_constants(sd)  # refuse checkpoints whose neurons disagree
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        if _NEURON_CONSTANT.search(key):
            continue
        out[_SEQUENTIAL_HEAD.sub(r"\1.\2", key)] = value
    return out
