"""The Triton neuron kernels against the plain-torch neuron, on the CPU under Triton's interpreter.

``TRITON_INTERPRET=1`` runs the kernels' own source with NumPy on CPU tensors, so what is checked here
is the kernel code a GPU compiles (bit manipulation, masks, the time loops, the layouts): spikes and
potentials bit-identical to the autograd neuron in float32, bfloat16 and float64, gradients within the
dtype's tolerance, every neuron kind × surrogate, both memory layouts, PLIF's trained ``w``; and whole
models in float64 (identical outputs, gradients to 1e-12).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest
import torch
from test_models import SMALL, inputs, reference_and_fast, run_and_backprop

from engine import fused_neurons
from engine.config import RunConfig
from engine.errors import ConfigError
from engine.models import create_model, list_models, resolve_neuron_backend
from engine.models.layers import time_major_channels_last
from engine.neurons import BaseNeuron, create_neuron
from engine.surrogates import SURROGATES

pytest.importorskip("triton")

from engine import triton_neurons  # noqa: E402 — after the skip: its kernels need triton

NEURON_NAMES = ["lif", "if", "plif"]
DTYPES = [torch.float32, torch.bfloat16, torch.float64]
LAYOUTS = ["time_major", "batch_major", "channels_last"]
T, B = 4, 3


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    """Kernels on CPU tensors: Triton's interpreter (``tests/conftest.py`` turns it on for the session,
    before triton is imported; this keeps it on for each test here)."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def laid_out(x: torch.Tensor, layout: str) -> torch.Tensor:
    """``x [T, B, C, H, W]`` stored time-major, as the batch-major view of ``[B, T, ...]``, or
    time-major channels-last."""
    if layout == "batch_major":
        return x.transpose(0, 1).contiguous().transpose(0, 1)
    if layout == "channels_last":
        return time_major_channels_last(x)
    return x.contiguous()


def currents(dtype, layout, seed=0, shape=(T, B, 3, 5, 6)):
    """Around the threshold, so that steps both fire and stay silent; exactly representable in bf16."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 1.5).to(dtype)
    return laid_out(x, layout)


def neuron(name, surrogate, backend, dtype, record=True, v_th=0.3):
    node = create_neuron(
        name, surrogate=surrogate, step_mode="m", record_mem=record, backend=backend, v_th=v_th
    )
    if name == "plif":
        with torch.no_grad():
            node.w.fill_(0.3)  # σ(w) ≠ 1/τ
    return node.to(dtype)


def two_calls(node, x, dtype):
    """Two sequences in a row (the second starts from the first's state), a loss through spikes and
    every recorded potential → (forward tensors, gradients of x and of PLIF's w)."""
    x = x.detach().clone().requires_grad_()
    first = node(x)
    mem_first = node.mem_seq
    second = node(x * 0.5)
    w = torch.linspace(-1, 1, first.numel(), dtype=torch.float64).to(dtype).view_as(first)
    loss = (first * w).sum() + (second * 1.3).sum() + (mem_first * 0.7).sum() + node.mem_seq.sum()
    loss.backward()
    grads = [x.grad] + ([node.w.grad] if hasattr(node, "w") else [])
    return [first, mem_first, second, node.mem_seq], grads


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("surrogate", SURROGATES.names())
@pytest.mark.parametrize("name", NEURON_NAMES)
def test_kernels_equal_the_torch_neuron(name, surrogate, dtype):
    layout = LAYOUTS[(NEURON_NAMES.index(name) + SURROGATES.names().index(surrogate)) % 3]
    x = currents(dtype, layout)
    forward_ref, _ = two_calls(neuron(name, surrogate, "autograd", dtype), x, dtype)
    forward_fused, grads_fused = two_calls(neuron(name, surrogate, "fused", dtype), x, dtype)
    forward_triton, grads_triton = two_calls(neuron(name, surrogate, "triton", dtype), x, dtype)
    assert 0.05 < forward_ref[0].float().mean() < 0.95  # both firing and silent lanes
    for ref, fused, kernel in zip(forward_ref, forward_fused, forward_triton, strict=True):
        assert kernel.dtype == dtype
        assert torch.equal(kernel, ref)  # spikes and potentials, bit for bit
        assert kernel.stride() == fused.stride()  # the input's layout, as the torch loops keep it
    if dtype == torch.bfloat16:
        return  # bf16 gradients: test_bf16_gradients_are_as_close_as_torch_ones
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for a, b in zip(grads_triton, grads_fused, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", NEURON_NAMES)
def test_bf16_gradients_are_as_close_as_torch_ones(name):
    """bf16 backward: the kernel accumulates in float32 and rounds once, torch rounds every operation.
    Both against the float64 backward of the same bf16 forward: the kernel within one bf16 unit of the
    largest gradient, and never further off than torch's own bf16 backward."""
    x = currents(torch.bfloat16, "time_major")
    v0 = (currents(torch.float64, "time_major", seed=1)[0] * 0.2).bfloat16()
    k = torch.sigmoid(torch.tensor(0.4)) if name == "plif" else None
    g = torch.Generator().manual_seed(2)
    grad_s, grad_v = (torch.randn(x.shape, generator=g).bfloat16() for _ in range(2))
    for surrogate in SURROGATES.names():
        d = neuron(name, surrogate, "triton", torch.bfloat16).fused_dynamics()
        _, _, h, diff = fused_neurons.forward_loop(x, v0, k, d, True, name == "plif")
        # torch compares bf16 with the threshold rounded to bf16: the float64 truth must use that one
        d64 = replace(d, v_th=torch.tensor(d.v_th).bfloat16().item())
        truth = fused_neurons.backward_loop(
            h.double(), *(t.double() if t is not None else None for t in (k, diff, grad_s, grad_v)), d64, True
        )
        errors = []
        for loops in (fused_neurons, triton_neurons):
            got = loops.backward_loop(h, k, diff, grad_s, grad_v, d, True)
            errors.append(
                max(
                    float((a.double() - b).abs().max() / b.abs().max())
                    for a, b in zip(got, truth, strict=True)
                    if a is not None
                )
            )
        torch_error, kernel_error = errors
        assert kernel_error <= 2**-8, (surrogate, errors)
        assert kernel_error <= torch_error * 1.001, (surrogate, errors)


@pytest.mark.parametrize("layout", [*LAYOUTS, "strided"])
def test_layouts_keep_their_strides_and_state_carries(layout):
    base = currents(torch.float64, "time_major", shape=(T, B, 4, 6, 6))
    x = base[:, :, :, ::2] if layout == "strided" else laid_out(base, layout)  # strided: not dense
    ref, fused, kernel = (
        neuron("lif", "qgate", b, torch.float64, record=False) for b in ("autograd", "fused", "triton")
    )
    for node in (ref, fused, kernel):
        node.mem = torch.full_like(x[0], 0.2).contiguous()  # a carried state in another layout
    out = [node(x) for node in (ref, fused, kernel)]
    assert torch.equal(out[2], out[0]) and torch.equal(kernel.mem, ref.mem)
    if layout != "strided":
        assert out[2].stride() == out[1].stride() == x.stride()


def test_geometry_of_both_layouts():
    x = torch.empty(T, B, 3, 5, 6)
    assert triton_neurons.StepGeometry.of(x) == triton_neurons.StepGeometry(
        n=B * 90, inner=B * 90, stride_t=B * 90, stride_o=T * B * 90, step_strides=(90, 30, 6, 1)
    )
    batch_major = laid_out(x, "batch_major")
    g = triton_neurons.StepGeometry.of(batch_major)
    assert (g.inner, g.stride_t, g.stride_o, g.step_strides) == (90, 90, T * 90, (90, 30, 6, 1))
    assert triton_neurons.StepGeometry.of(x[:, :, :, ::2]) is None
    assert triton_neurons.StepGeometry.of(x.expand(T, B, 3, 5, 6)) is not None
    assert triton_neurons.StepGeometry.of(x[:1].expand(T, B, 3, 5, 6)) is None  # stride 0: overlapping


# ------------------------------------------------------------------------------------------------
# whole models, float64: identical outputs, gradients to 1e-12


def spike_inputs(model) -> list[torch.Tensor]:
    """Collects what every spike-fed convolution receives: the spikes of the neuron before it."""
    seen: list[torch.Tensor] = []
    for module in model.modules():
        if getattr(module, "spike_input", False):
            module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    return seen


@pytest.mark.parametrize("name", list_models())
def test_whole_model_float64_triton_equals_fused(name):
    """The Triton neurons, with the BatchNorm normalised inside the kernel where one precedes them
    (``engine.models.norm_fire``): identical spikes, outputs and gradients to 1e-12, running statistics
    to 1e-12 (the kernel's statistics come from another reduction than the BatchNorm kernel's)."""
    torch.manual_seed(1)
    _, fused = reference_and_fast(name, **SMALL)
    kernel = create_model(name, neuron_backend="triton", **SMALL).double()
    kernel.load_state_dict(fused.state_dict())
    x_static, x_event, labels = inputs(dtype=torch.float64, seed=1)
    spikes_fused, spikes_kernel = spike_inputs(fused), spike_inputs(kernel)
    out_fused = run_and_backprop(fused, x_static, x_event, labels)
    out_kernel = run_and_backprop(kernel, x_static, x_event, labels)
    assert len(spikes_kernel) == len(spikes_fused)
    for a, b in zip(spikes_kernel, spikes_fused, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(out_kernel, out_fused, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for (n, p_kernel), p_fused in zip(kernel.named_parameters(), fused.parameters(), strict=True):
        torch.testing.assert_close(p_kernel.grad, p_fused.grad, rtol=1e-12, atol=1e-14, msg=n)
    fused_state = fused.state_dict()
    for key, value in kernel.state_dict().items():
        torch.testing.assert_close(value, fused_state[key], rtol=1e-12, atol=1e-14, msg=key)
    fused.eval()
    kernel.eval()
    with torch.no_grad():  # evaluation: the running statistics, normalised inside the kernel as well
        torch.testing.assert_close(
            kernel.forward_event(x_event), fused.forward_event(x_event), rtol=1e-12, atol=1e-14
        )


@pytest.mark.parametrize(
    ("name", "neuron_kind", "memory_format"),
    [("transfer_vgg_snn", "lif", "channels_last"), ("transfer_resnet18", "plif", "contiguous")],
)
def test_recompute_and_lean_spikes_compose_with_triton(name, neuron_kind, memory_format):
    """Normalise-and-fire with ``recompute``: the backward reruns the forward kernel for ``h``;
    1-byte spikes feed the convolutions: still the fused model's spikes and numbers."""
    torch.manual_seed(1)
    kw = dict(neuron=neuron_kind, memory_format=memory_format, **SMALL)
    plain = create_model(name, **kw).double()
    lean = create_model(name, neuron_backend="triton", recompute=True, lean_spikes=True, **kw).double()
    if neuron_kind == "plif":
        with torch.no_grad():
            for module in plain.modules():
                if isinstance(module, BaseNeuron):
                    module.w.fill_(0.2)
    lean.load_state_dict(plain.state_dict())
    x_static, x_event, labels = inputs(dtype=torch.float64, seed=1)
    spikes_lean, spikes_plain = spike_inputs(lean), spike_inputs(plain)
    for a, b in zip(
        run_and_backprop(lean, x_static, x_event, labels),
        run_and_backprop(plain, x_static, x_event, labels),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert spikes_lean and all(torch.equal(a, b) for a, b in zip(spikes_lean, spikes_plain, strict=True))
    for (n, p_lean), p_plain in zip(lean.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p_lean.grad, p_plain.grad, rtol=1e-12, atol=1e-14, msg=n)


# ------------------------------------------------------------------------------------------------
# choosing the backend, and refusing it where it cannot run


def test_auto_picks_triton_only_on_cuda():
    assert resolve_neuron_backend("auto", "cpu") == "fused"
    assert resolve_neuron_backend("auto", "cuda") == "triton"  # installed here; no GPU needed to decide
    assert resolve_neuron_backend("autograd", "cuda") == "autograd"
    with pytest.raises(ValueError, match="neuron_backend must be one of"):
        resolve_neuron_backend("cuda", "cpu")


def quick(*overrides: str) -> RunConfig:
    return RunConfig.from_preset("quick").with_overrides(["device=cpu", *overrides])


def test_triton_is_refused_where_it_cannot_run(monkeypatch):
    quick("model.neuron_backend=triton").validate()  # the interpreter counts as a device (the fixture)
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(ConfigError) as caught:
        quick("model.neuron_backend=triton").validate()
    message = str(caught.value)
    assert "model.neuron_backend = 'triton' cannot run here" in message
    assert "Triton kernels run on CUDA devices, and this run's device is 'cpu'" in message
    assert "choose one of auto, fused, autograd" in message
    monkeypatch.setattr(triton_neurons, "triton_importable", lambda: False)
    with pytest.raises(ConfigError, match="the triton package is not installed"):
        quick("model.neuron_backend=triton", "device=cuda").validate()
    quick("model.neuron_backend=auto").validate()  # auto falls back instead


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.neuron_backend=cuda"],
            "model.neuron_backend = 'cuda' must be one of auto, fused, autograd, triton",
        ),
        (["train.compile=graph"], "train.compile = 'graph' must be one of none, blocks, step"),
        (
            ["model.recompute=true", "model.neuron_backend=autograd"],
            "model.recompute = true needs model.neuron_backend fused, triton or auto",
        ),
        (["model.lean_spikes=true", "model.neuron=relu"], "model.lean_spikes = true needs spiking neurons"),
    ],
)
def test_bad_speed_settings_are_refused_at_validation(overrides, message):
    with pytest.raises(ConfigError, match="invalid run configuration") as caught:
        quick(*overrides).validate()
    assert message in str(caught.value)


def test_speed_settings_do_not_change_the_config_hash():
    base = quick()
    fast = quick("model.neuron_backend=triton", "model.lean_spikes=true", "train.compile=blocks")
    assert fast.config_hash() == base.config_hash()


def test_engine_runs_without_triton():
    """No triton package: the engine imports, ``auto`` falls back to the fused torch loops, a model
    trains a step, and ``triton`` is refused with the reason. A run that never asks for the kernels never
    imports triton either."""
    script = textwrap.dedent(
        """
        import sys, importlib.abc

        class NoTriton(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "triton" or name.startswith("triton."):
                    raise ModuleNotFoundError("No module named 'triton'", name=name)
                return None

        sys.meta_path.insert(0, NoTriton())
        import torch
        from engine.config import RunConfig
        from engine.errors import ConfigError
        from engine.models import create_model

        model = create_model("scnn", num_classes=3, T=2, neuron_backend="auto", device="cuda")
        assert {m.backend for m in model.modules() if hasattr(m, "backend")} == {"fused"}
        model(torch.rand(2, 2, 2, 28, 28)).sum().backward()
        try:
            RunConfig.from_preset("quick").with_overrides(["model.neuron_backend=triton"]).validate()
        except ConfigError as error:
            assert "the triton package is not installed" in str(error), error
        else:
            raise AssertionError("triton was not refused")
        assert "triton" not in sys.modules and "engine._triton_kernels" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# ------------------------------------------------------------------------------------------------
# normalise-and-fire: BatchNorm inside the neuron kernel


@pytest.mark.parametrize("layout", ["batch_major", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_norm_fire_equals_batchnorm_then_neuron(layout, dtype):
    """Training (per-step batch statistics and the T running updates) then evaluation (running
    statistics), against ``BatchNorm2d`` followed by the fused neuron: identical spikes, potentials and
    gradients to the dtype's rounding."""
    from engine.models.layers import BatchNorm2d  # noqa: PLC0415
    from engine.models.norm_fire import norm_fire  # noqa: PLC0415

    C = 4
    x = (currents(dtype, layout, seed=3, shape=(T, B, C, 5, 6)) * 2 + 0.4).requires_grad_()
    bns = [BatchNorm2d(C).to(dtype) for _ in range(2)]
    for bn in bns:
        bn.step_mode = "m"
        with torch.no_grad():
            bn.weight.copy_(torch.linspace(0.5, 1.5, C))
            bn.bias.copy_(torch.linspace(-0.2, 0.3, C))
    nodes = [neuron("plif", "atan", backend, dtype) for backend in ("fused", "triton")]
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for training in (True, False):
        results = []
        for bn, node, fused_norm in ((bns[0], nodes[0], False), (bns[1], nodes[1], True)):
            bn.train(training)
            node.reset()
            xx = x.detach().clone().requires_grad_()
            spikes = norm_fire(bn, node, xx) if fused_norm else node(bn(xx))
            (spikes * torch.arange(spikes.numel(), dtype=dtype).view_as(spikes).remainder(7)).sum().add(
                node.mem.sum()
            ).backward()
            results.append((spikes, node.mem, xx.grad, bn.weight.grad, bn.bias.grad, node.w.grad))
            for p in (bn.weight, bn.bias, node.w):
                p.grad = None
        (ref, *ref_rest), (got, *got_rest) = results
        assert torch.equal(got, ref) and 0.05 < float(ref.detach().mean()) < 0.95
        for a, b in zip(got_rest, ref_rest, strict=True):
            torch.testing.assert_close(a, b, **tol)
        for key in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(bns[1], key), getattr(bns[0], key), **tol)


def test_evaluation_takes_auto_where_triton_cannot_run(monkeypatch):
    """A checkpoint trained with Triton neurons stays evaluable on a machine without them (the backend
    is a speed setting); training there is still refused (test_triton_is_refused_where_it_cannot_run)."""
    from engine.training.evaluation import _speed_settings_for_here  # noqa: PLC0415

    trained = quick("model.neuron_backend=triton")
    assert _speed_settings_for_here(trained) is trained  # the interpreter runs it here
    monkeypatch.delenv("TRITON_INTERPRET")
    here = _speed_settings_for_here(trained)
    assert here.model.neuron_backend == "auto" and here.config_hash() == trained.config_hash()
    here.validate()
