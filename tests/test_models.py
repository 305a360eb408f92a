"""Models: published parameter counts, registry-wide shape/gradient checks, fast path == reference path,
BrainCog checkpoint keys, clear errors, and one full training step."""

import json
from pathlib import Path

import pytest
import torch

import engine
from engine.config import RunConfig
from engine.losses import LossSettings, compute_loss
from engine.models import (
    MODELS,
    EventModel,
    TransferModel,
    TransferOutput,
    create_model,
    list_models,
    set_step_mode,
)
from engine.models.layers import BatchNorm2d
from engine.models.legacy_keys import braincog_neuron_constants, map_braincog_state_dict
from engine.models.resnet import _ResNetBody
from engine.models.scnn import _SCNNBody
from engine.models.vgg import _VGGBody
from engine.neuron_spec import DEFAULT_NEURON, NeuronSpec
from engine.neurons import BaseNeuron
from engine.sliding import replace_static
from engine.static_channel import static_stream

ALL_MODELS = [
    "resnet18",
    "scnn",
    "transfer_resnet18",
    "transfer_resnet34",
    "transfer_scnn",
    "transfer_vgg_snn",
    "vgg_snn",
]
SMALL = dict(num_classes=5, T=3, width=0.125, input_size=16)
B = 4


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def inputs(T=3, size=16, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_static = static_stream(torch.rand(B, size, size, generator=g, dtype=dtype), T)
    x_event = torch.poisson(torch.full((B, T, 2, size, size), 0.6, dtype=dtype), generator=g)
    labels = torch.randint(0, 5, (B,), generator=g)
    return x_static, x_event, labels


# ------------------------------------------------------------------------------------------------
# registry and published sizes


def test_registry_names_and_patterns():
    assert list_models() == ALL_MODELS
    assert engine.list_models("transfer_*") == [n for n in ALL_MODELS if n.startswith("transfer_")]
    assert engine.create_model is create_model


@pytest.mark.parametrize(
    ("name", "K", "T", "expected"),
    [
        ("transfer_vgg_snn", 101, 10, 10_153_684),
        ("transfer_vgg_snn", 20, 10, 9_407_026),
        ("transfer_resnet18", 20, 6, 11_187_886),
        ("transfer_scnn", 1623, 12, 696_585),
    ],
)
def test_trainable_parameter_counts_match_the_original(name, K, T, expected):
    assert trainable(create_model(name, num_classes=K, T=T)) == expected


FAMILIES = {  # name → (body, kind, trainable parameters at K = 101, T = 10, width 1)
    "resnet18": (_ResNetBody, EventModel, 11_219_173),
    "scnn": (_SCNNBody, EventModel, 238_451),
    "transfer_resnet18": (_ResNetBody, TransferModel, 11_270_996),
    "transfer_resnet34": (_ResNetBody, TransferModel, 21_379_156),
    "transfer_scnn": (_SCNNBody, TransferModel, 238_461),
    "transfer_vgg_snn": (_VGGBody, TransferModel, 10_153_684),
    "vgg_snn": (_VGGBody, EventModel, 9_688_165),
}


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_is_a_family_body_and_a_kind(name):
    """Registry entries are empty subclasses: SpikingModel's one constructor builds the kind's
    parameters, the family's body and the kind's heads. The counts are the authors' modules' (their key
    shapes are loaded strictly in test_braincog_state_dict_loads_strictly)."""
    body, kind, count = FAMILIES[name]
    cls = MODELS.get(name)
    assert issubclass(cls, body) and issubclass(cls, kind)
    assert "__init__" not in vars(cls) and "__init__" not in vars(body)
    assert trainable(create_model(name, num_classes=101, T=10)) == count


def test_one_neuron_spec_builds_every_neuron_and_holds_the_defaults():
    spec = NeuronSpec.of("plif", tau=3.0, v_th=0.25, surrogate="atan")
    model = create_model("scnn", num_classes=3, T=2, neuron=spec)
    neurons = [m for m in model.modules() if isinstance(m, BaseNeuron)]
    assert len(neurons) == 3 and {type(n).__name__ for n in neurons} == {"PLIFNode"}
    assert {n.v_th for n in neurons} == {0.25}
    assert all(torch.allclose(torch.sigmoid(n.w), torch.tensor(1 / 3)) for n in neurons)
    # the shorthand and the spec build the same model
    shorthand = create_model("scnn", num_classes=3, T=2, neuron="plif", tau=3.0, v_th=0.25, surrogate="atan")
    assert str(shorthand) == str(model)
    with pytest.raises(TypeError, match="unknown neuron field"):
        NeuronSpec.of("lif", threshold=0.5)
    # a run config's neuron is the same spec, with the same defaults
    assert RunConfig().model.neuron_spec() == DEFAULT_NEURON == NeuronSpec()


def test_neuron_defaults_are_written_once():
    """τ = 2 and V_th = 0.5 as defaults appear in engine/neuron_spec.py only; the config, the neuron
    classes and the factory read DEFAULT_NEURON."""
    root = Path(__file__).resolve().parent.parent / "engine"
    literals = ("tau: float = 2.0", "v_th: float = 0.5", "tau=2.0", "v_th=0.5", 'surrogate: str = "qgate"')
    spelled = {
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if any(literal in path.read_text() for literal in literals)
    }
    assert spelled == {"neuron_spec.py"}


def test_scnn_honours_num_classes():
    model = create_model("transfer_scnn", num_classes=7, T=2)
    assert model.fc2.out_features == 7
    assert trainable(model) == 696_585 - 12 - 1616 * 301 + 2


def test_default_input_sizes_and_transfer_flags():
    sizes = {n: MODELS.get(n).default_input_size for n in ALL_MODELS}
    assert sizes == {
        "resnet18": 48,
        "scnn": 28,
        "transfer_resnet18": 48,
        "transfer_resnet34": 48,
        "transfer_scnn": 28,
        "transfer_vgg_snn": 48,
        "vgg_snn": 48,
    }
    assert {n for n in ALL_MODELS if MODELS.get(n).is_transfer} == {n for n in ALL_MODELS if "transfer" in n}


def test_vgg_head_follows_input_size_and_width():
    model = create_model("transfer_vgg_snn", num_classes=3, T=2, width=0.25, input_size=32)
    assert model.dvs_fc.in_features == 128 * 2 * 2
    assert model.feature[0].conv.out_channels == 16


# ------------------------------------------------------------------------------------------------
# every registered model


@pytest.mark.parametrize("name", ALL_MODELS)
def test_shapes_per_step_outputs_and_gradients(name):
    torch.manual_seed(0)
    model = create_model(name, **SMALL)
    x_static, x_event, labels = inputs()
    if model.is_transfer:
        out = model(x_static, x_event)
        assert isinstance(out, TransferOutput)
        assert out.logits_static.shape == out.logits_event.shape == (3, B, 5)
        assert out.feat_static.shape == out.feat_event.shape
        assert out.feat_static.shape[:2] == (3, B)
        assert [out.logits_event[t].shape for t in range(3)] == [(B, 5)] * 3
        assert model.alpha().shape == (3,)
        assert torch.allclose(model.alpha(), torch.sigmoid(torch.tensor(1.0)).expand(3))
        terms = compute_loss(out, labels, model.alpha(), settings=LossSettings())
        loss = terms.total
    else:
        logits = model(x_event)
        assert logits.shape == (3, B, 5)
        loss = compute_loss(logits, labels).total
    assert torch.isfinite(loss)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    if model.is_transfer:
        grads = torch.cat([c.grad for c in model.coefficient])
        assert (grads != 0).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_event_runs_only_the_event_branch(name):
    torch.manual_seed(0)
    model = create_model(name, **SMALL)
    x_static, x_event, _ = inputs()
    logits = model.forward_event(x_event)
    assert logits.shape == (3, B, 5)
    logits.sum().backward()
    if model.is_transfer and hasattr(model, "rgb_fc"):
        assert model.rgb_fc.weight.grad is None  # the static head is never touched
    if model.is_transfer:
        # State is reset before each pass: the event pass of a two-stream forward equals forward_event.
        torch.testing.assert_close(model(x_static, x_event).logits_event, logits)


def reference_and_fast(name, **kw):
    fast = create_model(name, **kw).double()
    if "scnn" in name:
        # Without BatchNorm the small SCNN is nearly silent at initialisation (node1 never fires);
        # larger weights make every layer spike, so the comparison covers the spiking paths.
        with torch.no_grad():
            for p in fast.parameters():
                p.mul_(3.0)
    reference = create_model(name, step_mode="s", **kw).double()
    reference.load_state_dict(fast.state_dict())
    return reference, fast


def record_firing_rates(model) -> list[float]:
    rates: list[float] = []
    for module in model.modules():
        if isinstance(module, BaseNeuron):
            module.register_forward_hook(lambda m, i, out: rates.append(out.detach().mean().item()))
    return rates


def run_and_backprop(model, x_static, x_event, labels):
    if model.is_transfer:
        out = model(x_static, x_event)
        loss = compute_loss(out, labels, model.alpha()).total
        tensors = [out.feat_static, out.feat_event, out.logits_static, out.logits_event]
    else:
        out = model(x_event)
        loss = compute_loss(out, labels).total
        tensors = [out]
    loss.backward()
    return tensors


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fast_path_equals_reference_path(name):
    """Outputs, transfer features, every gradient and the BN running statistics (float64)."""
    torch.manual_seed(1)
    reference, fast = reference_and_fast(name, **SMALL)
    x_static, x_event, labels = inputs(dtype=torch.float64, seed=1)
    rates = record_firing_rates(reference)
    out_ref = run_and_backprop(reference, x_static, x_event, labels)
    out_fast = run_and_backprop(fast, x_static, x_event, labels)
    # the comparison is not between silent or saturated networks: every neuron layer fires somewhere
    assert rates and all(0.0 < r < 1.0 for r in rates), rates
    assert all(o.std(dim=-2).sum() > 0 for o in out_ref)  # outputs differ across the batch
    for a, b in zip(out_fast, out_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for (n, p_fast), p_ref in zip(fast.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=1e-9, atol=1e-12, msg=n)
    ref_state = reference.state_dict()
    for key, value in fast.state_dict().items():
        torch.testing.assert_close(value, ref_state[key], rtol=1e-12, atol=1e-14, msg=key)
    # in evaluation mode too (running statistics, folded BatchNorm)
    reference.eval()
    fast.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast.forward_event(x_event), reference.forward_event(x_event))


def test_set_step_mode_switches_every_layer():
    model = create_model("transfer_resnet18", **SMALL)
    set_step_mode(model, "s")
    modes = {m.step_mode for m in model.modules() if hasattr(m, "step_mode")}
    assert modes == {"s"}
    with pytest.raises(ValueError, match="step_mode"):
        create_model("scnn", num_classes=3, T=2, step_mode="fast")


def test_reference_path_updates_running_stats_once_per_step_and_stream():
    for mode in ("s", "m"):
        model = create_model("transfer_vgg_snn", step_mode=mode, **SMALL)
        x_static, x_event, _ = inputs()
        model(x_static, x_event)
        counts = {int(m.num_batches_tracked) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
        assert counts == {2 * 3}


@pytest.mark.parametrize("momentum", [0.1, 0.37, None])
def test_multi_step_batchnorm_equals_t_sequential_calls(momentum):
    torch.manual_seed(0)
    T, C = 4, 3
    x = (
        torch.randn(T, 5, C, 4, 4, dtype=torch.float64) * torch.arange(1.0, T + 1)[:, None, None, None, None]
    ).requires_grad_()
    fast = BatchNorm2d(C, momentum=momentum).double()
    fast.step_mode = "m"
    ref = torch.nn.BatchNorm2d(C, momentum=momentum).double()
    with torch.no_grad():
        fast.weight.uniform_(0.5, 1.5)
        fast.bias.uniform_(-0.5, 0.5)
        fast.running_mean.uniform_(-1, 1)
        fast.running_var.uniform_(0.5, 2)
    ref.load_state_dict(fast.state_dict())
    y_fast = fast(x)
    y_ref = torch.stack([ref(x[t]) for t in range(T)])
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(y_ref)
    g_fast = torch.autograd.grad((y_fast * w).sum(), [x, fast.weight, fast.bias])
    g_ref = torch.autograd.grad((y_ref * w).sum(), [x, ref.weight, ref.bias])
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(fast, key), getattr(ref, key), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------------------
# bad input


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid model names: resnet18, scnn, transfer_resnet18"):
        create_model("transfer_vgg", num_classes=3, T=2)
    with pytest.raises(ValueError, match="valid neuron names"):
        create_model("scnn", num_classes=3, T=2, neuron="lifx")
    with pytest.raises(ValueError, match="valid surrogate names"):
        create_model("scnn", num_classes=3, T=2, surrogate="qgat")


def test_shape_errors_name_both_shapes():
    model = create_model("transfer_vgg_snn", **SMALL)
    x_static, x_event, _ = inputs()
    small = x_event[..., :8, :8]
    with pytest.raises(ValueError, match=r"static \(4, 3, 2, 16, 16\) and event \(4, 3, 2, 8, 8\)"):
        model(x_static, small)
    with pytest.raises(ValueError, match=r"static \(4, 2, 2, 16, 16\) and event \(4, 3, 2, 16, 16\)"):
        model(x_static[:, :2], x_event)
    with pytest.raises(ValueError, match=r"T=3.*got \(4, 2, 2, 16, 16\)"):
        model(x_static[:, :2], x_event[:, :2])
    with pytest.raises(ValueError, match="input_size=16"):
        model.forward_event(torch.zeros(B, 3, 2, 24, 24))
    with pytest.raises(ValueError, match="input_size"):
        create_model("vgg_snn", num_classes=3, T=2, input_size=8)


# ------------------------------------------------------------------------------------------------
# BrainCog checkpoints

BRAINCOG = json.loads((Path(__file__).parent / "data" / "braincog_state_dict_keys.json").read_text())


@pytest.mark.parametrize("name", ALL_MODELS)
def test_braincog_state_dict_loads_strictly(name):
    spec = BRAINCOG[name]
    g = torch.Generator().manual_seed(0)
    original = {}
    for key, shape in spec["keys"].items():
        if key.endswith(".threshold"):
            original[key] = torch.tensor(0.5)
        elif key.endswith(".act_fun.alpha"):
            original[key] = torch.tensor(2.0)
        elif key.endswith("num_batches_tracked"):
            original[key] = torch.tensor(7)
        else:
            original[key] = torch.randn(shape, generator=g)
    model = create_model(name, num_classes=spec["num_classes"], T=spec["T"])
    wrapped = {"state_dict": {f"module.{k}": v for k, v in original.items()}, "epoch": 3}
    result = model.load_state_dict(map_braincog_state_dict(name, wrapped), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    ours = model.state_dict()
    for key, value in original.items():
        mapped = key.replace("_fc.1.", "_fc.").replace("fc.1.", "fc.")
        if key.endswith((".threshold", ".act_fun.alpha")):
            continue
        assert torch.equal(ours[mapped], value), key
    # the frozen neuron constants are dropped but reported
    assert braincog_neuron_constants(original) == {"v_th": 0.5, "surrogate_alpha": 2.0}
    # the original's trainable parameters are exactly ours
    original_trainable = sum(
        v.numel()
        for k, v in original.items()
        if not k.endswith(
            (".threshold", ".act_fun.alpha", "running_mean", "running_var", "num_batches_tracked")
        )
    )
    assert original_trainable == trainable(model)


def test_braincog_checkpoint_with_mixed_thresholds_is_refused():
    sd = {"feature.0.node.threshold": torch.tensor(0.5), "feature.1.node.threshold": torch.tensor(0.3)}
    with pytest.raises(ValueError, match="different v_th"):
        map_braincog_state_dict("transfer_vgg_snn", sd)
    with pytest.raises(ValueError, match="valid model names"):
        map_braincog_state_dict("Transfer_VGG_SNN", {})


# ------------------------------------------------------------------------------------------------
# one full training step


def test_full_training_step_on_cpu():
    """Both streams (sliding replacement), CKA domain loss, TET, regularization, AdamW step."""
    torch.manual_seed(0)
    model = create_model("transfer_vgg_snn", **SMALL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    x_static, x_event, labels = inputs()
    x_static, mask = replace_static(x_static, x_event, 0.5, torch.Generator().manual_seed(1))
    assert 0 < int(mask.sum()) < B
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = model(x_static, x_event)
    settings = LossSettings(beta=0.5, regularization=True, tet=True, tet_lambda=1e-3, tet_phi=0.5)
    terms = compute_loss(out, labels, model.alpha(), settings=settings, add_domain=True)
    for value in (terms.total, terms.static, terms.event, terms.domain):
        assert value.dim() == 0 and torch.isfinite(value)
    assert terms.cka_distance.shape == (3,)
    assert torch.allclose(terms.total, terms.static + terms.event + 0.5 * terms.domain)
    optimizer.zero_grad()
    terms.total.backward()
    assert all((c.grad != 0).all() for c in model.coefficient)
    optimizer.step()
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "coefficient.0" in changed and "dvs_fc.weight" in changed and "rgb_fc.weight" in changed
    assert "feature.0.conv.weight" in changed and "feature.0.bn.running_mean" in changed
    assert all(torch.isfinite(v.float()).all() for v in after.values())


@pytest.mark.parametrize("neuron", ["if", "plif"])
def test_other_neurons_build_and_train(neuron):
    model = create_model("transfer_scnn", neuron=neuron, surrogate="atan", **SMALL)
    x_static, x_event, labels = inputs()
    compute_loss(model(x_static, x_event), labels, model.alpha()).total.backward()
    if neuron == "plif":
        assert model.node1.w.grad is not None


def test_bf16_autocast_training_step_is_finite():
    model = create_model("transfer_vgg_snn", **SMALL)
    x_static, x_event, labels = inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x_static, x_event)
    terms = compute_loss(out, labels, model.alpha())
    assert terms.total.dtype == torch.float32 and torch.isfinite(terms.total)
    terms.total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["transfer_vgg_snn", "transfer_resnet18", "transfer_scnn"])
def test_fast_path_equals_reference_path_on_cuda(name):
    torch.manual_seed(1)
    reference, fast = (m.cuda() for m in reference_and_fast(name, **SMALL))
    x_static, x_event, labels = (t.cuda() for t in inputs(dtype=torch.float64, seed=1))
    out_ref = run_and_backprop(reference, x_static, x_event, labels)
    out_fast = run_and_backprop(fast, x_static, x_event, labels)
    for a, b in zip(out_fast, out_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    for p_fast, p_ref in zip(fast.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=1e-8, atol=1e-11)
    ref_state = reference.state_dict()
    for key, value in fast.state_dict().items():
        torch.testing.assert_close(value, ref_state[key], rtol=1e-10, atol=1e-12, msg=key)
