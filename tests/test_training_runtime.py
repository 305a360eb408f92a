"""Run-level switches that change how, not what, a run computes: determinism and recomputation."""

from __future__ import annotations

import torch
from torch import nn

from engine.config import RunConfig
from engine.models.layers import AdaptiveAvgPool2d
from engine.models.recompute import uses_recompute
from engine.training.loading import build_model
from engine.training.runtime import configure_determinism


def test_determinism_switch_sets_cudnn_and_torch_flags(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    try:
        configure_determinism(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        import os

        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        configure_determinism(False)
        assert not torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


def test_determinism_and_recompute_are_not_part_of_the_config_hash():
    base = RunConfig()
    changed = base.with_overrides(["deterministic=false", "model.recompute=true"])
    assert changed.config_hash() == base.config_hash()


def test_recompute_knob_reaches_the_model():
    config = RunConfig().with_overrides(["model.width=0.0625", "T=2", "data.event_size=16"])
    assert not uses_recompute(build_model(config, num_classes=3, device="cpu"))
    config = config.with_overrides(["model.recompute=true"])
    assert uses_recompute(build_model(config, num_classes=3, device="cpu"))


def test_global_average_pool_equals_adaptive_pooling_for_any_leading_dims():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    ours = AdaptiveAvgPool2d(1)
    reference = nn.AdaptiveAvgPool2d(1)
    for step_mode, inp, expected_input in (("s", x[0], x[0]), ("m", x, x.flatten(0, 1))):
        ours.step_mode = step_mode
        got = ours(inp)
        want = reference(expected_input).reshape(got.shape)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        (g_got,) = torch.autograd.grad(got.sum(), x)
        (g_want,) = torch.autograd.grad(want.sum(), x)
        torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-12)
