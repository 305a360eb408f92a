"""Which data a transfer model's BatchNorm running statistics describe: the static-pass switch and the
evaluation-time recalibration diagnostic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.config import RunConfig
from engine.models import create_model
from engine.training.evaluation import recalibrate_batchnorm
from engine.training.loading import build_model


def _norms(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _stats(model):
    return [(m.running_mean.clone(), m.running_var.clone()) for m in _norms(model)]


def _pair(step_mode):
    torch.manual_seed(0)
    a = create_model("transfer_vgg_snn", num_classes=4, T=3, width=0.0625, input_size=32, step_mode=step_mode)
    b = create_model("transfer_vgg_snn", num_classes=4, T=3, width=0.0625, input_size=32, step_mode=step_mode)
    b.load_state_dict(a.state_dict())
    return a.train(), b.train()


@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_frozen_static_pass_leaves_exactly_the_event_pass_statistics(step_mode):
    a, b = _pair(step_mode)
    torch.manual_seed(1)
    static = torch.rand(6, 3, 2, 32, 32)
    events = torch.rand(6, 3, 2, 32, 32) * 3
    a.static_bn_stats = False
    a(static, events)
    b.forward_event(events)  # what the statistics should be: the event pass alone
    for (ma, va), (mb, vb) in zip(_stats(a), _stats(b), strict=True):
        torch.testing.assert_close(ma, mb, rtol=0, atol=0)
        torch.testing.assert_close(va, vb, rtol=0, atol=0)
    # the momentum is restored afterwards, and the default (the original) mixes both passes
    assert all(m.momentum == 0.1 for m in _norms(a))
    c, _ = _pair(step_mode)
    c(static, events)
    assert not torch.equal(_stats(c)[0][0], _stats(b)[0][0])


def test_static_bn_stats_comes_from_the_config():
    config = RunConfig.from_preset("nshapes_bench").with_overrides({"method.static_bn_stats": False})
    assert build_model(config, 10).static_bn_stats is False
    assert build_model(RunConfig.from_preset("nshapes_bench"), 10).static_bn_stats is True
    # non-default → part of the configuration's identity
    assert config.config_hash() != RunConfig.from_preset("nshapes_bench").config_hash()


def test_recalibration_recovers_event_statistics_after_static_contamination():
    torch.manual_seed(2)
    events = torch.rand(8, 3, 2, 32, 32) * 3
    loader = [(events, torch.zeros(8, dtype=torch.long))]
    a, b = _pair("m")
    for _ in range(60):  # b: event statistics only, converged
        b.forward_event(events)
    a(torch.rand(8, 3, 2, 32, 32), events)  # contaminated by a static pass
    used = recalibrate_batchnorm(a, loader, torch.device("cpu"), batches=60)
    assert used == 60 and a.training  # cycles the loader; the mode is restored
    for (ma, va), (mb, vb) in zip(_stats(a), _stats(b), strict=True):
        torch.testing.assert_close(ma, mb, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(va, vb, rtol=1e-5, atol=1e-6)
    assert recalibrate_batchnorm(a, loader, torch.device("cpu"), batches=0) == 0
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_batchnorm(a, [], torch.device("cpu"), batches=1)
