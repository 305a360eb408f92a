"""The fast paths against the plain-torch ones (SpikingJelly's way): fused neurons vs autograd neurons,
batch-major and channels-last layouts vs the step-by-step reference, forward and every gradient.

Float64 throughout: forward results must be bit-identical, gradients equal to float rounding.
"""

from __future__ import annotations

import pytest
import torch

from engine.config import RunConfig
from engine.errors import ConfigError
from engine.losses import compute_loss
from engine.models import (
    create_model,
    resolve_memory_format,
    resolve_step_mode,
    set_memory_format,
    set_neuron_backend,
)
from engine.models.layers import BatchNorm2d, fold_time, is_time_major, time_major_channels_last
from engine.neurons import BaseNeuron, create_neuron
from engine.surrogates import SURROGATES
from engine.training.loading import build_model

NEURON_NAMES = ["lif", "if", "plif"]
SURROGATE_NAMES = SURROGATES.names()
T, B = 5, 4


def currents(seed: int = 0, shape=(T, B, 3, 6)) -> torch.Tensor:
    """Inputs around the threshold, so that steps both fire and stay silent."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 1.6 - 0.3).requires_grad_()


def pair(name: str, surrogate: str, record: bool) -> tuple[BaseNeuron, BaseNeuron]:
    kw = dict(surrogate=surrogate, step_mode="m", record_mem=record)
    reference = create_neuron(name, backend="autograd", **kw).double()
    fused = create_neuron(name, backend="fused", **kw).double()
    if name == "plif":  # a w away from its initial value, so σ(w) ≠ 1/τ
        with torch.no_grad():
            reference.w.fill_(0.3)
            fused.w.fill_(0.3)
    return reference, fused


def objective(node: BaseNeuron, spikes: torch.Tensor, weights: list[torch.Tensor], record: bool):
    """A loss that sends gradients through the spikes, the last potential and (recorded) every potential."""
    loss = (spikes * weights[0]).sum() + (node.mem * weights[1][0]).sum()
    if record:
        loss = loss + (node.mem_seq * weights[1]).sum()
    return loss


def assert_same_run(reference, fused, x, record, v0=None):
    if v0 is not None:  # a state carried over from an earlier call (it must receive gradients too)
        reference.mem = v0
        fused.mem = v0
    out_ref, out_fused = reference(x), fused(x)
    assert 0.0 < out_ref.mean().item() < 1.0  # the comparison covers firing and silent steps
    assert torch.equal(out_fused, out_ref)
    assert torch.equal(fused.mem, reference.mem)
    if record:
        assert torch.equal(fused.mem_seq, reference.mem_seq)
    g = torch.Generator().manual_seed(7)
    weights = [torch.randn(out_ref.shape, generator=g, dtype=torch.float64) for _ in range(2)]
    inputs = [x] + ([v0] if v0 is not None else []) + list(reference.parameters())
    inputs_fused = [x] + ([v0] if v0 is not None else []) + list(fused.parameters())
    grads_ref = torch.autograd.grad(objective(reference, out_ref, weights, record), inputs)
    grads_fused = torch.autograd.grad(objective(fused, out_fused, weights, record), inputs_fused)
    for a, b in zip(grads_fused, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("record", [False, True], ids=["spikes", "mem_seq"])
@pytest.mark.parametrize("surrogate", SURROGATE_NAMES)
@pytest.mark.parametrize("name", NEURON_NAMES)
def test_fused_equals_autograd(name, surrogate, record):
    reference, fused = pair(name, surrogate, record)
    assert_same_run(reference, fused, currents(), record)


@pytest.mark.parametrize("name", NEURON_NAMES)
def test_fused_equals_autograd_from_a_carried_state(name):
    reference, fused = pair(name, "atan", record=True)
    v0 = (torch.rand(B, 3, 6, dtype=torch.float64) * 0.4).requires_grad_()
    assert_same_run(reference, fused, currents(1), True, v0=v0)


@pytest.mark.parametrize("name", NEURON_NAMES)
def test_fused_keeps_the_input_layout(name):
    """Batch-major and channels-last inputs give outputs in the same layout, values unchanged."""
    base = currents(2, shape=(T, B, 3, 4, 5)).detach()
    layouts = {
        "batch_major": base.transpose(0, 1).contiguous().transpose(0, 1),
        "channels_last": time_major_channels_last(base),
    }
    reference, fused = pair(name, "qgate", record=True)
    expected = reference(base)
    for label, x in layouts.items():
        fused.reset()
        out = fused(x.requires_grad_())
        assert out.stride() == x.stride(), label
        assert fused.mem_seq.stride() == x.stride(), label
        assert torch.equal(out, expected), label
        assert torch.equal(fused.mem_seq, reference.mem_seq), label
        (grad,) = torch.autograd.grad((out * torch.arange(float(T))[:, None, None, None, None]).sum(), x)
        assert grad.stride() == x.stride(), label


def saved_bytes(fn) -> int:
    """Bytes of the tensors autograd keeps for the backward pass while ``fn()`` runs."""
    total = 0

    def pack(t: torch.Tensor):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def test_fused_lif_saves_one_sequence_tensor():
    x = currents(3, shape=(T, B, 64))
    per_sequence = x.numel() * x.element_size()
    fused = create_neuron("lif", step_mode="m", record_mem=True, backend="fused").double()
    reference = create_neuron("lif", step_mode="m", record_mem=True, backend="autograd").double()
    assert saved_bytes(lambda: fused(x)) == per_sequence  # h [T, ...] only
    # the reference keeps h − V_th and a one-byte mask per step
    assert saved_bytes(lambda: reference(x)) == per_sequence + x.numel()
    with torch.no_grad():
        assert saved_bytes(lambda: fused(x)) == 0


def test_fused_forward_without_grad_equals_reference():
    x = currents(4).detach()
    reference, fused = pair("plif", "sigmoid", record=True)
    with torch.no_grad():
        assert torch.equal(fused(x), reference(x))
        assert torch.equal(fused.mem_seq, reference.mem_seq)


def test_fused_bfloat16_spikes_equal_autograd():
    x = currents(5).detach().to(torch.bfloat16).requires_grad_()
    reference = create_neuron("lif", step_mode="m", record_mem=True, backend="autograd")
    fused = create_neuron("lif", step_mode="m", record_mem=True, backend="fused")
    out_ref, out_fused = reference(x), fused(x)
    assert out_fused.dtype == torch.bfloat16
    assert torch.equal(out_fused, out_ref) and torch.equal(fused.mem_seq, reference.mem_seq)
    (g_ref,) = torch.autograd.grad(out_ref.float().sum() + reference.mem_seq.float().sum(), x)
    (g_fused,) = torch.autograd.grad(out_fused.float().sum() + fused.mem_seq.float().sum(), x)
    torch.testing.assert_close(g_fused.float(), g_ref.float(), rtol=2e-2, atol=2e-2)


def test_backend_is_validated_and_switchable():
    with pytest.raises(ValueError, match="backend"):
        create_neuron("lif", backend="cuda")
    with pytest.raises(ValueError, match="neuron_backend"):
        create_model("scnn", num_classes=3, T=2, neuron_backend="cuda")
    model = create_model("scnn", num_classes=3, T=2)
    assert {m.backend for m in model.modules() if isinstance(m, BaseNeuron)} == {"fused"}
    set_neuron_backend(model, "autograd")
    assert {m.backend for m in model.modules() if isinstance(m, BaseNeuron)} == {"autograd"}


# ------------------------------------------------------------------------------------------------
# layouts and BatchNorm


def test_fold_time_is_a_view_for_both_layouts():
    x = torch.randn(B, T, 3, 4, 4)
    batch_major = x.transpose(0, 1)
    folded, time_major = fold_time(batch_major)
    assert not time_major and folded.data_ptr() == x.data_ptr() and folded.is_contiguous()
    channels_last = time_major_channels_last(batch_major)
    folded, time_major = fold_time(channels_last)
    assert time_major and folded.is_contiguous(memory_format=torch.channels_last)
    assert is_time_major(torch.randn(T, B, 3))


@pytest.mark.parametrize("layout", ["batch_major", "channels_last"])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_multi_step_batchnorm_layouts_equal_t_sequential_calls(layout, momentum):
    torch.manual_seed(0)
    C = 3
    scale = torch.arange(1.0, T + 1)[:, None, None, None, None]
    base = torch.randn(T, B, C, 4, 4, dtype=torch.float64) * scale
    x = (
        base.transpose(0, 1).contiguous().transpose(0, 1)
        if layout == "batch_major"
        else time_major_channels_last(base)
    ).requires_grad_()
    fast = BatchNorm2d(C, momentum=momentum).double()
    fast.step_mode = "m"
    ref = torch.nn.BatchNorm2d(C, momentum=momentum).double()
    with torch.no_grad():
        fast.weight.uniform_(0.5, 1.5)
        fast.bias.uniform_(-0.5, 0.5)
        fast.running_var.uniform_(0.5, 2)
    ref.load_state_dict(fast.state_dict())
    y_fast = fast(x)
    y_ref = torch.stack([ref(x[t]) for t in range(T)])
    assert y_fast.stride() == x.stride()  # the layout survives the layer
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(y_ref)
    g_fast = torch.autograd.grad((y_fast * w).sum(), [x, fast.weight, fast.bias])
    g_ref = torch.autograd.grad((y_ref * w).sum(), [x, ref.weight, ref.bias])
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(fast, key), getattr(ref, key), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------------------
# whole models: every fast combination against the step-by-step autograd reference

SMALL = dict(num_classes=5, T=3, width=0.125)


def model_inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    static = torch.rand(4, 1, 1, 48, 48, generator=g, dtype=torch.float64).expand(-1, 3, 2, -1, -1)
    event = torch.poisson(torch.full((4, 3, 2, 48, 48), 0.5, dtype=torch.float64), generator=g)
    return static, event, torch.tensor([0, 1, 2, 3])


@pytest.mark.parametrize(
    ("name", "backend", "memory_format"),
    [
        ("transfer_vgg_snn", "fused", "contiguous"),
        ("transfer_vgg_snn", "autograd", "channels_last"),
        ("transfer_resnet18", "fused", "contiguous"),
        ("transfer_resnet18", "autograd", "contiguous"),
    ],
)
def test_model_fast_combinations_equal_reference(name, backend, memory_format):
    """The combinations ``test_models`` does not cover (it runs the default: fused, and channels-last
    on CPU); the CKA loss sends gradients into the recorded membrane feature as well."""
    torch.manual_seed(1)
    fast = create_model(name, neuron_backend=backend, memory_format=memory_format, **SMALL).double()
    reference = create_model(name, step_mode="s", neuron_backend="autograd", **SMALL).double()
    reference.load_state_dict(fast.state_dict())
    x_static, x_event, labels = model_inputs()
    outputs = []
    for model in (reference, fast):
        out = model(x_static, x_event)
        compute_loss(out, labels, model.alpha()).total.backward()
        outputs.append([out.feat_static, out.feat_event, out.logits_static, out.logits_event])
    for a, b in zip(outputs[1], outputs[0], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for (n, p_fast), p_ref in zip(fast.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=1e-9, atol=1e-12, msg=n)


# ------------------------------------------------------------------------------------------------
# choosing the step mode


def test_auto_choices_per_device():
    assert resolve_step_mode("auto", "cpu") == "m" and resolve_step_mode("s", "cuda") == "s"
    assert resolve_memory_format("auto", "m", "cpu") == "channels_last"
    assert resolve_memory_format("auto", "s", "cpu") == "contiguous"
    assert resolve_memory_format("contiguous", "m", "cpu") == "contiguous"
    with pytest.raises(ValueError, match="step_mode"):
        resolve_step_mode("fast", "cpu")
    with pytest.raises(ValueError, match="memory_format"):
        resolve_memory_format("nhwc", "m", "cpu")
    model = create_model("scnn", step_mode="auto", device="cpu", num_classes=3, T=2)
    assert model.step_mode == "m" and model.channels_last
    set_memory_format(model, "contiguous")
    assert not model.channels_last and model.feature[0].weight.is_contiguous()


def test_config_step_mode_knob():
    config = RunConfig.from_preset("quick")
    assert config.model.step_mode == "auto"
    assert build_model(config, 10, device="cpu").step_mode == "m"
    reference = config.with_overrides(["model.step_mode=s"])
    model = build_model(reference, 10, device="cpu")
    assert model.step_mode == "s" and not model.channels_last
    # the step mode changes speed, not results: it is not part of the configuration's identity
    assert reference.config_hash() == config.config_hash()
    with pytest.raises(ConfigError, match=r"model.step_mode = 'fast' must be auto, m .* or s"):
        config.with_overrides(["model.step_mode=fast"]).validate()


# ------------------------------------------------------------------------------------------------
# recomputing BatchNorm outputs and membrane potentials in the backward pass


@pytest.mark.parametrize(
    ("name", "neuron", "memory_format"),
    [
        ("transfer_vgg_snn", "lif", "channels_last"),
        ("transfer_resnet18", "plif", "contiguous"),  # downsample blocks, a trained w
    ],
)
def test_recompute_equals_reference(name, neuron, memory_format):
    torch.manual_seed(1)
    fast = create_model(name, neuron=neuron, memory_format=memory_format, recompute=True, **SMALL).double()
    if neuron == "plif":
        with torch.no_grad():
            for module in fast.modules():
                if isinstance(module, BaseNeuron):
                    module.w.fill_(0.2)
    reference = create_model(name, neuron=neuron, step_mode="s", neuron_backend="autograd", **SMALL).double()
    reference.load_state_dict(fast.state_dict())
    x_static, x_event, labels = model_inputs()
    outputs = []
    for model in (reference, fast):
        out = model(x_static, x_event)
        compute_loss(out, labels, model.alpha()).total.backward()
        outputs.append([out.feat_static, out.feat_event, out.logits_static, out.logits_event])
    for a, b in zip(outputs[1], outputs[0], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for (n, p_fast), p_ref in zip(fast.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=1e-9, atol=1e-12, msg=n)
    ref_state = reference.state_dict()  # running statistics updated once per step, not again in backward
    for key, value in fast.state_dict().items():
        torch.testing.assert_close(value, ref_state[key], rtol=1e-12, atol=1e-14, msg=key)


def test_recompute_keeps_a_third_less():
    torch.manual_seed(0)
    x_static, x_event, labels = model_inputs()
    x_static, x_event = x_static.float(), x_event.float()
    saved = {}
    for recompute in (False, True):
        model = create_model("transfer_vgg_snn", recompute=recompute, **SMALL)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        storages: dict[int, int] = {}

        def pack(t, params=params, storages=storages):
            if t.untyped_storage().data_ptr() not in params:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = compute_loss(model(x_static, x_event), labels, model.alpha()).total
        loss.backward()
        saved[recompute] = sum(storages.values())
    assert saved[True] < 0.75 * saved[False]
    model.eval()  # evaluation and no-grad passes take the plain path
    with torch.no_grad():
        model.forward_event(x_event)


def test_strided_1x1_conv_on_channels_last_cpu_matches_nn_conv():
    """The oneDNN NHWC strided 1×1 backward-weights bug (a segfault for 8 input channels here) is
    routed around by subsampling first; values and gradients stay those of ``nn.Conv2d``."""
    from engine.models.layers import Conv2d

    torch.manual_seed(0)
    reference = torch.nn.Conv2d(8, 16, 1, stride=2, bias=False)
    conv = Conv2d(8, 16, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
    conv.load_state_dict(reference.state_dict())
    x = torch.randn(12, 8, 48, 48)
    x_ref = x.clone().requires_grad_()
    x_cl = x.to(memory_format=torch.channels_last).requires_grad_()
    y_ref, y = reference(x_ref), conv(x_cl)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    y.backward(g.to(memory_format=torch.channels_last))
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_cl.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad, reference.weight.grad, rtol=1e-4, atol=1e-3)
