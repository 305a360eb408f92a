"""1-byte saved spikes (``engine.models.lean_conv``): the same numbers, exactly the promised bytes less."""

from __future__ import annotations

import pytest
import torch
from test_models import SMALL, inputs, reference_and_fast, run_and_backprop

from engine.models import create_model, list_models, set_lean_spikes
from engine.models.lean_conv import uses_lean_spikes

SPIKE_CONVS = {  # convolutions that read a neuron's spikes directly (no pool in between)
    "resnet18": 19,
    "transfer_resnet18": 19,
    "transfer_resnet34": 35,
    "vgg_snn": 4,
    "transfer_vgg_snn": 4,
    "scnn": 0,
    "transfer_scnn": 0,
}


def saved_bytes_and_spike_inputs(model, x_static, x_event, labels):
    """Bytes autograd keeps for the backward pass, and the element counts of the spike convs' inputs."""
    spike_elements: list[int] = []

    def count(conv, args):
        x = args[0].flatten(0, 1)  # [T, B, ...] → the frames the convolution runs on
        if conv.kernel_size == (1, 1) and x.is_contiguous(memory_format=torch.channels_last):
            x = x[:, :, :: conv.stride[0], :: conv.stride[1]]  # what a CPU channels-last 1×1 conv keeps
        spike_elements.append(x.numel())

    hooks = [m.register_forward_pre_hook(count) for m in model.modules() if getattr(m, "spike_input", False)]
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        tensors = run_and_backprop(model, x_static, x_event, labels)
    for h in hooks:
        h.remove()
    return total, spike_elements, tensors


@pytest.mark.parametrize("name", list_models())
def test_lean_spikes_same_numbers_fewer_bytes(name):
    torch.manual_seed(1)
    _, plain = reference_and_fast(name, **SMALL)
    lean = set_lean_spikes(create_model(name, **SMALL).double(), True)
    lean.load_state_dict(plain.state_dict())
    assert sum(getattr(m, "lean", False) for m in lean.modules()) == SPIKE_CONVS[name]
    assert uses_lean_spikes(lean) == (SPIKE_CONVS[name] > 0)
    x_static, x_event, labels = inputs(dtype=torch.float64, seed=1)
    plain_bytes, elements, plain_out = saved_bytes_and_spike_inputs(plain, x_static, x_event, labels)
    lean_bytes, _, lean_out = saved_bytes_and_spike_inputs(lean, x_static, x_event, labels)
    for a, b in zip(lean_out, plain_out, strict=True):
        assert torch.equal(a, b)
    for (n, p_lean), p_plain in zip(lean.named_parameters(), plain.parameters(), strict=True):
        assert torch.equal(p_lean.grad, p_plain.grad), n
    # each spike input kept as uint8 instead of float64: 7 bytes less per element, nothing else moves
    assert plain_bytes - lean_bytes == 7 * sum(elements)


@pytest.mark.parametrize("name", ["resnet18", "transfer_resnet18"])
def test_lean_spikes_under_bf16_autocast(name):
    """Outputs bit-identical. Weight gradients too for one stream; with two streams (a transfer model)
    autocast casts each weight once and sums the two streams' gradients in bf16 before widening, while
    the lean convolution casts per use and sums them in float32: equal to bf16 rounding."""
    torch.manual_seed(1)
    plain = create_model(name, **SMALL)
    lean = set_lean_spikes(create_model(name, **SMALL), True)
    lean.load_state_dict(plain.state_dict())
    x_static, x_event, labels = inputs(seed=1)
    outputs = []
    for model in (plain, lean):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs.append(run_and_backprop(model, x_static, x_event, labels))
    for a, b in zip(*outputs, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
    for (n, p_lean), p_plain in zip(lean.named_parameters(), plain.parameters(), strict=True):
        assert p_lean.grad.dtype == p_plain.grad.dtype == torch.float32, n
        if name == "resnet18":
            assert torch.equal(p_lean.grad, p_plain.grad), n
        else:
            torch.testing.assert_close(
                p_lean.grad, p_plain.grad, rtol=2**-7, atol=2**-7 * p_plain.grad.abs().max()
            )


def test_lean_spikes_refuse_a_relu_twin():
    twin = create_model("transfer_vgg_snn", neuron="relu", **SMALL)
    with pytest.raises(ValueError, match="lean_spikes needs spiking neurons"):
        set_lean_spikes(twin, True)
    with pytest.raises(ValueError, match="lean_spikes needs spiking neurons"):
        create_model("transfer_vgg_snn", neuron="relu", lean_spikes=True, **SMALL)
