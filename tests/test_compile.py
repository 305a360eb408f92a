"""``train.compile`` on the CPU with the real Inductor: compiled blocks and the compiled step equal the
uncompiled ones. Compilation takes 10–25 s per model on two cores, so these use the SCNN (one compiled
unit) and carry the ``slow`` marker."""

from __future__ import annotations

import sys

import pytest
import torch
from test_models import SMALL, inputs, reference_and_fast, run_and_backprop
from test_training_run import TINY

from engine.config import RunConfig
from engine.models import create_model
from engine.training import train
from engine.training.checkpoint import load_checkpoint
from engine.training.compile import compile_blocks
from engine.training.records import read_records
from engine.training.rundir import RunDir

pytestmark = pytest.mark.slow


def test_compiled_blocks_equal_the_model_float64():
    """Fused neurons stay opaque calls between the compiled parts (``engine.compile_boundary``):
    outputs, gradients and running statistics bit-identical, and no graph break inside a neuron."""
    torch.manual_seed(1)
    _, plain = reference_and_fast("transfer_scnn", **SMALL)
    compiled = create_model("transfer_scnn", **SMALL).double()
    compiled.load_state_dict(plain.state_dict())
    compile_blocks(compiled)
    x_static, x_event, labels = inputs(dtype=torch.float64, seed=1)
    counters = sys.modules["torch._dynamo"].utils.counters  # compile_blocks has imported it
    counters.clear()
    for _ in range(2):  # the second call runs the compiled code without compiling again
        for model in (plain, compiled):
            model.zero_grad(set_to_none=True)
        out_plain = run_and_backprop(plain, x_static, x_event, labels)
        out_compiled = run_and_backprop(compiled, x_static, x_event, labels)
    for a, b in zip(out_compiled, out_plain, strict=True):
        assert torch.equal(a, b)
    for (n, p_compiled), p_plain in zip(compiled.named_parameters(), plain.parameters(), strict=True):
        assert torch.equal(p_compiled.grad, p_plain.grad), n
    assert list(compiled.state_dict()) == list(plain.state_dict())  # in place: checkpoints unchanged
    breaks = torch._dynamo.utils.counters["graph_break"]
    assert breaks and all("torch.compiler.disable" in reason or "disable" in reason for reason in breaks), (
        breaks
    )


def test_compiled_step_trains_like_the_eager_step(tmp_path):
    """A whole run with the step's forward and loss compiled (the autograd neuron, whose time loop
    Inductor fuses) against the same run uncompiled: float32 losses to 1e-4 (measured: 1e-6)."""
    config = RunConfig().with_overrides(
        {
            **TINY,
            "epochs": 1,
            "model.name": "transfer_scnn",
            "model.neuron_backend": "autograd",
            "data.cache_root": str(tmp_path / "cache"),
        }
    )
    train(config, tmp_path / "eager")
    train(config.with_overrides({"train.compile": "step"}), tmp_path / "step")
    rows = [read_records(RunDir(tmp_path / name).records) for name in ("step", "eager")]
    for a, b in zip(*rows, strict=True):
        for key in ("train_loss", "train_loss_domain", "test_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key
    state_compiled, state_eager = (load_checkpoint(tmp_path / name).model_state for name in ("step", "eager"))
    # Adam divides by √v: a weight whose gradients are all float noise (fc1.bias while node1 is nearly
    # silent) moves a whole learning-rate step either way, so weights agree to two steps at most
    step = config.optim.lr * config.batch_size / 1024
    for key, value in state_eager.items():
        torch.testing.assert_close(state_compiled[key], value, rtol=1e-3, atol=2 * step)
