"""Optimiser parameter groups and the epoch LR schedule against the formulas of spec §8."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from engine.config import RunConfig
from engine.training.optim import (
    LR_SCHEDULES,
    OPTIMIZERS,
    create_optimizer,
    effective_lr,
    lr_at_epoch,
    lr_trajectory,
    parameter_groups,
)


class _Toy(nn.Module):
    """Every kind of parameter the spiking models hold."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)
        self.coefficient = nn.ParameterList([nn.Parameter(torch.ones(1)) for _ in range(3)])
        self.threshold = nn.Parameter(torch.tensor(0.5), requires_grad=False)


def test_registries_hold_the_published_names():
    assert OPTIMIZERS.names() == ["adamw", "sgd"]
    assert LR_SCHEDULES.names() == ["cosine", "step"]


def test_no_weight_decay_on_1d_params_biases_norms_and_coefficients():
    model = _Toy()
    groups = {g["group"]: g for g in parameter_groups(model, weight_decay=0.01)}
    decayed = {id(p) for p in groups["decay"]["params"]}
    undecayed = {id(p) for p in groups["no_decay"]["params"]}
    assert decayed == {id(model.conv.weight), id(model.fc.weight)}
    assert undecayed == {id(model.bn.weight), id(model.bn.bias), id(model.fc.bias)} | {
        id(c) for c in model.coefficient
    }
    assert groups["decay"]["weight_decay"] == 0.01 and groups["no_decay"]["weight_decay"] == 0.0
    assert id(model.threshold) not in decayed | undecayed  # frozen: never handed to the optimiser


def test_optimiser_is_adamw_with_configured_internals_at_epoch0_lr():
    config = RunConfig().with_overrides({"optim.eps": 1e-7, "optim.betas": [0.8, 0.99]})
    optimizer = create_optimizer(_Toy(), config)
    assert isinstance(optimizer, torch.optim.AdamW)
    for group in optimizer.param_groups:
        assert group["lr"] == 1e-6  # epoch 0 trains at warmup_lr
        assert group["betas"] == (0.8, 0.99) and group["eps"] == 1e-7
    sgd = create_optimizer(_Toy(), config.with_overrides({"optim.name": "sgd"}))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["nesterov"]


def test_lr_is_scaled_by_batch_over_1024():
    assert effective_lr(RunConfig()) == pytest.approx(5.859375e-4)  # 5e-3 · 120 / 1024 (spec §8)
    omniglot = RunConfig().with_overrides({"optim.lr": 1.2, "batch_size": 16})
    assert effective_lr(omniglot) == pytest.approx(0.01875)
    assert effective_lr(omniglot.with_overrides({"optim.lr_scaling": "none"})) == 1.2


def test_warmup_then_cosine_matches_spec_formula():
    config = RunConfig()  # E = 300, warmup 5 from 1e-6, min_lr 1e-5, B = 120
    peak = 5e-3 * 120 / 1024
    lrs = lr_trajectory(config)
    assert len(lrs) == 300
    assert lrs[0] == 1e-6
    for e in range(5):
        assert lrs[e] == pytest.approx(1e-6 + e * (peak - 1e-6) / 5, rel=1e-12)
    for e in range(5, 300):
        cosine = 1e-5 + 0.5 * (peak - 1e-5) * (1 + math.cos(math.pi * e / 300))
        assert lrs[e] == pytest.approx(cosine, rel=1e-12)
    assert lrs[150] == pytest.approx(1e-5 + 0.5 * (peak - 1e-5), rel=1e-12)
    assert max(lrs) < peak  # no epoch trains at the exact peak: cosine is evaluated at the absolute epoch


def test_step_schedule_matches_spec_formula():
    config = RunConfig().with_overrides(
        {
            "optim.lr": 1.2,
            "batch_size": 16,
            "epochs": 50,
            "schedule.name": "step",
            "schedule.decay_epochs": 40,
            "schedule.decay_rate": 0.1,
        }
    )
    lrs = lr_trajectory(config)
    assert lrs[0] == 1e-6
    assert lrs[1] == pytest.approx(1e-6 + (0.01875 - 1e-6) / 5)
    assert lrs[5:40] == [pytest.approx(0.01875)] * 35
    assert lrs[40:50] == [pytest.approx(0.001875)] * 10


def test_no_warmup_starts_at_the_peak():
    config = RunConfig().with_overrides({"schedule.warmup_epochs": 0, "epochs": 10})
    assert lr_at_epoch(0, config) == pytest.approx(effective_lr(config))
