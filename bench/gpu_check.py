"""One-shot GPU check of the engine: correctness of every fast path on CUDA, then training-step speed
and memory of the step modes, neuron backends, frame layouts and precisions at the paper's sizes.

Needs only torch, numpy and pyyaml (no tonic, Ray, MLflow): it imports ``engine.models``,
``engine.losses``, ``engine.neurons``, ``engine.sliding``, ``engine.static_channel`` and
``engine.config`` and checks that tonic was not pulled in. Run from the repository root:

    python bench/gpu_check.py --json gpu_check.json            # CUDA, the full check (< 5 min on an H200)
    python bench/gpu_check.py --device cpu --quick --json /tmp/gpu_check.json   # smoke test of the script

(a) Checks, on the device:
    * fused vs autograd neurons (LIF, IF, PLIF × every surrogate, float64): spikes and potentials
      bit-identical, gradients (through spikes and through the recorded membrane) to 1e-12;
    * whole models (VGG, ResNet18, SCNN, float64): the multi-step path — fused neurons, NCHW
      batch-major and NHWC time-major frames, the BN → neuron recomputation — against the step-by-step
      autograd reference: outputs, every gradient, BatchNorm running statistics;
    * a bf16-autocast training step is finite;
    * a training step (forward both streams, CKA + TET loss, backward, AdamW) makes no host
      synchronisation: ``torch.cuda.set_sync_debug_mode("error")`` around it.
    * the Triton neurons (``engine.triton_neurons``) against the autograd neuron on the device, float32,
      bfloat16 and float64, both layouts: spikes and potentials bit-identical, gradients to tolerance;
      whole models with Triton neurons (BatchNorm normalised inside the kernel), 1-byte saved spikes
      and compiled blocks against the reference, float64.
(b) Transfer VGG-SNN, width 1.0, T = 10, B = 120, 48×48 (the published N-Caltech101 run; the paper
    reports ~0.83 s/iteration and ~38 GB on an A100 40GB), and (c) Transfer ResNet18, T = 6, B = 120:
    one full training step per variant — step mode s (the reference) vs m; autograd, fused or Triton
    neurons; NCHW vs channels-last frames; keeping vs recomputing (``rc``) the BN outputs and membrane
    potentials; 1-byte saved spikes (``lean``); ``torch.compile`` of the blocks (``cb``) or of the
    step (``cs``; ``cg`` with CUDA graphs); fp32 vs bf16 — warmed up, then timed over several steps with
    CUDA events (no sync inside), with ``torch.cuda.max_memory_allocated`` during the step (and the same
    minus what the model and optimiser hold before it: activations and gradients). Each variant also
    gets samples/s, achieved TFLOP/s (convolution and matmul FLOPs of one step counted by
    ``torch.utils.flop_counter``) and the share of the device's dense peak for its precision
    (``PEAK_TFLOPS``, or ``--peak-tflops``).
(d) ``--pack 1,2,4``: the same step in 1, 2 and 4 processes sharing the GPU at once (trials packed on
    one card): each process's ms/iter and peak memory, and the samples/s of all together.
(e) ``--profile``: device time of one step by kind of work — convolution, normalisation, neuron, other.

Prints a compact table with ratios against the reference step (s, fp32) and writes everything as JSON
to ``--json`` (rewritten after every section, so an interrupted run still leaves its results); keep it
under ``bench/results/``, and ``python bench/gpu_table.py bench/results/<file>.json`` prints the README's
table from it. ``--only`` times a subset of variants (labels as printed, comma-separated). The compiled
variants compile for about a minute each, so they run only with ``--with-compile`` (or ``--only``): the
default run fits one 10-minute device command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, engine not installed

import torch  # noqa: E402

from engine.config import RunConfig  # noqa: E402
from engine.losses import LossSettings, compute_loss  # noqa: E402
from engine.models import create_model  # noqa: E402
from engine.neurons import create_neuron  # noqa: E402
from engine.sliding import replace_static  # noqa: E402
from engine.static_channel import static_stream  # noqa: E402
from engine.surrogates import SURROGATES  # noqa: E402
from engine.training.compile import compile_blocks, compile_function  # noqa: E402
from engine.triton_neurons import triton_importable  # noqa: E402


@dataclass(frozen=True)
class Workload:
    label: str
    model: str
    width: float
    T: int
    batch: int
    size: int
    classes: int


PAPER_WORKLOADS = (
    Workload("vgg N-Caltech101", "transfer_vgg_snn", 1.0, 10, 120, 48, 101),
    Workload("resnet18 CEP-DVS", "transfer_resnet18", 1.0, 6, 120, 48, 50),
)
QUICK_WORKLOADS = (
    Workload("vgg (quick)", "transfer_vgg_snn", 0.125, 3, 4, 48, 101),
    Workload("resnet18 (quick)", "transfer_resnet18", 0.125, 3, 4, 48, 50),
)
"""Timed by (b) and (c); the first one is also profiled with ``--profile``."""


COMPILE_TAGS = {"none": "", "blocks": "/cb", "step": "/cs", "graphs": "/cg"}
"""How a variant label spells its ``torch.compile`` mode; ``graphs`` is ``step`` with CUDA graphs."""


@dataclass(frozen=True)
class Variant:
    step_mode: str
    backend: str
    memory_format: str
    precision: str
    recompute: bool = False
    lean: bool = False
    compile: str = "none"

    @property
    def label(self) -> str:
        fmt = "cl" if self.memory_format == "channels_last" else "nchw"
        extras = (
            ("/rc" if self.recompute else "") + ("/lean" if self.lean else "") + COMPILE_TAGS[self.compile]
        )
        return f"{self.step_mode}/{self.backend}/{fmt}{extras}/{self.precision}"


REFERENCE = "s/autograd/nchw/fp32"
VARIANTS = [
    Variant(mode, backend, fmt, precision, recompute, lean, compile_mode)
    for precision in ("fp32", "bf16")
    for mode, backend, fmt, recompute, lean, compile_mode in (
        ("s", "autograd", "contiguous", False, False, "none"),
        ("m", "autograd", "contiguous", False, False, "none"),
        ("m", "fused", "contiguous", False, False, "none"),
        ("m", "fused", "channels_last", False, False, "none"),
        ("m", "fused", "channels_last", True, False, "none"),
        ("m", "triton", "channels_last", False, False, "none"),
        ("m", "triton", "channels_last", False, True, "none"),
        ("m", "triton", "channels_last", True, True, "none"),
        ("m", "triton", "channels_last", False, True, "blocks"),
        ("m", "autograd", "channels_last", False, True, "step"),
        ("m", "autograd", "channels_last", False, True, "graphs"),
    )
]
"""Every timed variant, in the order of the table."""

PEAK_TFLOPS = {  # dense tensor-core peak per precision (fp32 runs use TF32 convolutions, cuDNN's default)
    "H200": {"bf16": 989.0, "fp32": 494.7},  # NVIDIA H200 SXM datasheet, without sparsity
    "H100": {"bf16": 989.0, "fp32": 494.7},  # NVIDIA H100 SXM datasheet, without sparsity
    "A100": {"bf16": 312.0, "fp32": 156.0},  # NVIDIA A100 datasheet, without sparsity
}
"""Used for "% of peak" unless ``--peak-tflops`` names the device's own figure."""


@dataclass
class Report:
    env: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    timings: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of this script, CPU ok)")
    p.add_argument("--iters", type=int, default=None, help="timed steps per variant (default 6, quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per variant (default 3, quick 1)")
    p.add_argument("--skip-checks", action="store_true")
    p.add_argument("--skip-timing", action="store_true")
    p.add_argument(
        "--profile", action="store_true", help="also profile one VGG step per precision (where the time goes)"
    )
    p.add_argument(
        "--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark (trainer: off)"
    )
    p.add_argument(
        "--only", default=None, help="comma-separated variant labels to time (default: all uncompiled ones)"
    )
    p.add_argument(
        "--with-compile",
        action="store_true",
        help="also time the torch.compile variants (cb, cs, cg): about a minute of compiling each",
    )
    p.add_argument("--workloads", default=None, help="comma-separated workload labels (default: all)")
    p.add_argument("--pack", default=None, help="e.g. 1,2,4: time the --pack-variant in N processes at once")
    p.add_argument("--pack-variant", default="m/triton/cl/lean/bf16")
    p.add_argument("--profile-variant", default="m/triton/cl/lean", help="profiled per precision")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak for %% of peak")
    return p.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------------------
# the training step


class TrainStep:
    """What the trainer does per iteration: sliding replacement, both passes, objective, AdamW."""

    def __init__(
        self, model: torch.nn.Module, precision: str, device: torch.device, compile_mode: str = "none"
    ) -> None:
        self.model = model
        self.precision = precision
        self.device = device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
        self.settings = LossSettings.from_config(RunConfig())  # the paper's full method
        self.generator = torch.Generator(device=device).manual_seed(0)
        self.objective = self._objective
        if compile_mode == "blocks":
            compile_blocks(model)
        elif compile_mode in ("step", "graphs"):  # train.compile: step, ± CUDA graphs
            mode = "reduce-overhead" if compile_mode == "graphs" else None
            self.objective = compile_function(self._objective, mode=mode)

    def _objective(self, static: torch.Tensor, frames: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.model(static, frames)
        return compute_loss(out, labels, self.model.alpha(), settings=self.settings, add_domain=True).total

    def __call__(self, images: torch.Tensor, frames: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        T = frames.shape[1]
        static, _ = replace_static(static_stream(images, T), frames, 0.5, self.generator)
        loss = self.objective(static, frames, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def make_batch(w: Workload, device: torch.device, seed: int, dtype=torch.float32):
    g = torch.Generator(device=device).manual_seed(seed)
    images = torch.rand(w.batch, w.size, w.size, device=device, generator=g, dtype=dtype)
    rates = torch.full((w.batch, w.T, 2, w.size, w.size), 0.5, device=device, dtype=dtype)
    frames = torch.poisson(rates, generator=g)
    labels = torch.randint(0, w.classes, (w.batch,), device=device, generator=g)
    return images, frames, labels


# --------------------------------------------------------------------------------------------------
# (a) checks


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max()) if a.numel() else 0.0


def check_imports() -> dict[str, Any]:
    loaded = sorted(m for m in ("tonic", "ray", "mlflow", "optuna") if m in sys.modules)
    return {
        "name": "imports without tonic/ray/mlflow/optuna",
        "ok": not loaded,
        "detail": f"loaded: {loaded}",
    }


def check_neurons(device: torch.device) -> dict[str, Any]:
    worst_fwd = worst_grad = 0.0
    cases = 0
    for name in ("lif", "if", "plif"):
        for surrogate in SURROGATES.names():
            g = torch.Generator(device=device).manual_seed(cases)
            x = torch.rand(6, 8, 3, 16, 16, device=device, dtype=torch.float64, generator=g) * 1.6 - 0.3
            x = x.transpose(0, 1).contiguous().transpose(0, 1).requires_grad_()  # batch-major, as models feed
            nodes = [
                create_neuron(name, surrogate=surrogate, step_mode="m", record_mem=True, backend=b)
                .double()
                .to(device)
                for b in ("autograd", "fused")
            ]
            weights = torch.randn(2, *x.shape, device=device, dtype=torch.float64, generator=g)
            outs, grads = [], []
            for node in nodes:
                spikes = node(x)
                loss = (spikes * weights[0]).sum() + (node.mem_seq * weights[1]).sum()
                grads.append(torch.autograd.grad(loss, [x, *node.parameters()]))
                outs.append((spikes, node.mem_seq))
            worst_fwd = max(worst_fwd, *(max_diff(a, b) for a, b in zip(*outs, strict=True)))
            worst_grad = max(worst_grad, *(max_diff(a, b) for a, b in zip(*grads, strict=True)))
            cases += 1
    return {
        "name": f"fused == autograd neurons, float64 ({cases} neuron x surrogate cases)",
        "ok": worst_fwd == 0.0 and worst_grad < 1e-12,
        "detail": f"max |forward diff| {worst_fwd:.1e}, max |grad diff| {worst_grad:.1e}",
    }


def against_reference(
    reference: torch.nn.Module, fast: torch.nn.Module, device: torch.device
) -> tuple[float, float, float, bool]:
    """One float64 training step of both models on the same batch → relative errors of ``fast``'s
    outputs, gradients and BatchNorm state against ``reference``'s, and whether the counters agree."""
    reference.to(device)
    fast.to(device)
    size = reference.input_size
    g = torch.Generator(device=device).manual_seed(1)
    static = static_stream(torch.rand(4, size, size, device=device, dtype=torch.float64, generator=g), 3)
    event = torch.poisson(torch.full((4, 3, 2, size, size), 0.5, device=device, dtype=torch.float64), g)
    labels = torch.arange(4, device=device) % 5
    outs = []
    for model in (reference, fast):
        out = model(static, event)
        compute_loss(out, labels, model.alpha()).total.backward()
        outs.append([out.feat_static, out.feat_event, out.logits_static, out.logits_event])
    rel = lambda a, b: max_diff(a, b) / max(float(b.double().abs().max()), 1e-30)  # noqa: E731
    out_err = max(rel(a, b) for a, b in zip(outs[1], outs[0], strict=True))
    grad_err = max(
        rel(a.grad, b.grad) for a, b in zip(fast.parameters(), reference.parameters(), strict=True)
    )
    ref_state = reference.state_dict()
    state_err = max(
        rel(v.double(), ref_state[k].double()) for k, v in fast.state_dict().items() if v.is_floating_point()
    )
    counts_equal = all(
        torch.equal(v, ref_state[k])
        for k, v in fast.state_dict().items()
        if k.endswith("num_batches_tracked")
    )
    return out_err, grad_err, state_err, counts_equal


def check_models(device: torch.device) -> list[dict[str, Any]]:
    results = []
    kw = dict(num_classes=5, T=3, width=0.125)
    for name in ("transfer_vgg_snn", "transfer_resnet18", "transfer_scnn"):
        for memory_format, recompute in (
            ("contiguous", False),
            ("channels_last", False),
            ("channels_last", True),
        ):
            torch.manual_seed(1)
            reference = create_model(name, step_mode="s", neuron_backend="autograd", **kw).double()
            if "scnn" in name:  # a silent SCNN would compare nothing: larger weights make it spike
                with torch.no_grad():
                    for p in reference.parameters():
                        p.mul_(3.0)
            fast = create_model(
                name, step_mode="m", memory_format=memory_format, recompute=recompute, **kw
            ).double()
            fast.load_state_dict(reference.state_dict())
            out_err, grad_err, state_err, counts_equal = against_reference(reference, fast, device)
            layout = memory_format + ("/recompute" if recompute else "")
            results.append(
                {
                    "name": f"{name} m/fused/{layout} == s/autograd, float64",
                    "ok": out_err < 1e-9 and grad_err < 1e-8 and state_err < 1e-10 and counts_equal,
                    "detail": f"rel err: outputs {out_err:.1e}, grads {grad_err:.1e}, BN {state_err:.1e}",
                }
            )
    return results


def check_triton_neurons(device: torch.device) -> list[dict[str, Any]]:
    """Triton neurons vs the autograd neuron on the device: every kind × surrogate, three dtypes, both
    layouts; forward bit for bit, gradients to the dtype's tolerance (bf16: :func:`bf16_grad_error`)."""
    reason = runnable(Variant("m", "triton", "channels_last", "fp32"), device)
    if reason:
        return [{"name": "triton neurons", "ok": True, "detail": f"skipped: {reason}"}]
    results = []
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5), (torch.bfloat16, 2**-8)):
        worst_fwd = worst_grad = 0.0
        cases = 0
        for name in ("lif", "if", "plif"):
            for surrogate in SURROGATES.names():
                g = torch.Generator(device=device).manual_seed(cases)
                x = (
                    torch.randn(6, 8, 3, 16, 16, device=device, dtype=torch.float64, generator=g)
                    .mul(1.5)
                    .to(dtype)
                )
                if cases % 2:
                    x = x.transpose(0, 1).contiguous().transpose(0, 1)  # batch-major
                else:
                    x = x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)  # channels-last
                weights = torch.randn(2, *x.shape, device=device, generator=g).to(dtype)
                outs, grads = [], []
                for backend in ("autograd", "triton"):
                    node = create_neuron(
                        name, surrogate=surrogate, step_mode="m", record_mem=True, backend=backend
                    )
                    node = node.to(device=device, dtype=dtype)
                    xx = x.detach().requires_grad_()
                    spikes = node(xx)
                    loss = (spikes * weights[0]).float().sum() + (node.mem_seq * weights[1]).float().sum()
                    grads.append(torch.autograd.grad(loss, [xx, *node.parameters()]))
                    outs.append((spikes, node.mem_seq))
                worst_fwd = max(worst_fwd, *(max_diff(a, b) for a, b in zip(*outs, strict=True)))
                if dtype == torch.bfloat16:  # torch's own bf16 backward is no reference: see bf16_grad_error
                    worst_grad = max(worst_grad, bf16_grad_error(node, x, g))
                else:
                    scale = max(float(grads[0][0].double().abs().max()), 1e-30)
                    worst_grad = max(
                        worst_grad, *(max_diff(a, b) / scale for a, b in zip(*grads, strict=True))
                    )
                cases += 1
        results.append(
            {
                "name": f"triton == autograd neurons, {str(dtype).removeprefix('torch.')} ({cases} cases)",
                "ok": worst_fwd == 0.0 and worst_grad < tol,
                "detail": f"max |forward diff| {worst_fwd:.1e}, max rel grad diff {worst_grad:.1e}",
            }
        )
    return results


def bf16_grad_error(node, x: torch.Tensor, g: torch.Generator) -> float:
    """The kernel's bf16 backward against the float64 backward of the same bf16 forward (the threshold
    rounded to bf16, as torch compares): relative to the largest gradient; ``inf`` when it is further
    off than torch's own bf16 backward (as ``tests/test_triton_neurons.py`` checks on the CPU)."""
    from dataclasses import replace  # noqa: PLC0415

    from engine import fused_neurons, triton_neurons  # noqa: PLC0415

    d = node.fused_dynamics()
    k = node.fused_factor().detach() if hasattr(node, "w") else None
    _, _, h, diff = fused_neurons.forward_loop(x.detach(), None, k, d, True, k is not None)
    grad_s, grad_v = (torch.randn(x.shape, device=x.device, generator=g).bfloat16() for _ in range(2))
    d64 = replace(d, v_th=torch.tensor(d.v_th).bfloat16().item())
    wide = [t.double() if t is not None else None for t in (k, diff, grad_s, grad_v)]
    truth = fused_neurons.backward_loop(h.double(), *wide, d64, False)
    errors = []
    for loops in (fused_neurons, triton_neurons):
        got = loops.backward_loop(h, k, diff, grad_s, grad_v, d, False)
        errors.append(
            max(
                max_diff(a, b) / max(float(b.abs().max()), 1e-30)
                for a, b in zip(got, truth, strict=True)
                if a is not None
            )
        )
    torch_error, kernel_error = errors
    return kernel_error if kernel_error <= torch_error * 1.001 else math.inf


def check_fast_models(device: torch.device) -> list[dict[str, Any]]:
    """Triton neurons (BN inside the kernel), 1-byte spikes, compiled blocks: whole models in float64
    against the step-by-step reference."""
    results = []
    kw = dict(num_classes=5, T=3, width=0.125)
    for name in ("transfer_vgg_snn", "transfer_resnet18"):
        for backend, lean, compiled in (("triton", True, False), ("fused", True, True)):
            if runnable(Variant("m", backend, "channels_last", "fp32"), device):
                continue
            torch.manual_seed(1)
            reference = create_model(name, step_mode="s", neuron_backend="autograd", **kw).double()
            fast = create_model(name, neuron_backend=backend, lean_spikes=lean, **kw).double()
            fast.load_state_dict(reference.state_dict())
            fast.to(device)
            if compiled:
                compile_blocks(fast)
            out_err, grad_err, _, _ = against_reference(reference, fast, device)
            label = f"m/{backend}/cl{'/lean' if lean else ''}{'/cb' if compiled else ''}"
            results.append(
                {
                    "name": f"{name} {label} == s/autograd, float64",
                    "ok": out_err < 1e-9 and grad_err < 1e-8,
                    "detail": f"rel err: outputs {out_err:.1e}, grads {grad_err:.1e}",
                }
            )
    return results


def check_bf16_and_sync(device: torch.device) -> list[dict[str, Any]]:
    results = []
    w = Workload("check", "transfer_vgg_snn", 0.25, 4, 8, 48, 10)
    batch = make_batch(w, device, seed=3)
    setups = [
        ("contiguous", "fused", False),
        ("channels_last", "fused", False),
        ("channels_last", "triton", True),  # Triton neurons, BN in the kernel, 1-byte spikes
    ]
    for memory_format, backend, lean in setups:
        if runnable(Variant("m", backend, memory_format, "fp32"), device):
            continue
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = create_model(
                w.model,
                num_classes=w.classes,
                T=w.T,
                width=w.width,
                memory_format=memory_format,
                neuron_backend=backend,
                lean_spikes=lean,
            )
            step = TrainStep(model.to(device), precision, device)
            for _ in range(2):
                loss = step(*batch)
            finite = bool(torch.isfinite(loss)) and all(
                bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None
            )
            label = f"m/{backend}/{memory_format}{'/lean' if lean else ''}/{precision}"
            results.append(
                {"name": f"training step finite ({label})", "ok": finite, "detail": f"loss {float(loss):.4f}"}
            )
            if device.type != "cuda":
                continue
            sync(device)
            ok, detail = True, "no synchronisation"
            torch.cuda.set_sync_debug_mode("error")
            try:
                step(*batch)
            except RuntimeError as exc:
                ok, detail = False, str(exc).splitlines()[0][:300]
            finally:
                torch.cuda.set_sync_debug_mode(0)
            sync(device)
            results.append({"name": f"no host sync in a training step ({label})", "ok": ok, "detail": detail})
    return results


# --------------------------------------------------------------------------------------------------
# (b), (c) timing


def build_variant(w: Workload, v: Variant, state: dict | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(
        w.model,
        num_classes=w.classes,
        T=w.T,
        width=w.width,
        input_size=w.size,
        step_mode=v.step_mode,
        neuron_backend=v.backend,
        memory_format=v.memory_format,
        recompute=v.recompute,
        lean_spikes=v.lean,
    )
    if state is not None:
        model.load_state_dict(state)
    return model


def step_flops(w: Workload, device: torch.device) -> float:
    """Convolution and matmul FLOPs of one training step per sample (forward and backward, both streams),
    counted by ``torch.utils.flop_counter`` on a batch of 2 (FLOPs grow linearly with the batch)."""
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    small = Workload(w.label, w.model, w.width, w.T, 2, w.size, w.classes)
    model = build_variant(small, Variant("m", "fused", "channels_last", "fp32")).to(device)
    step = TrainStep(model, "fp32", device)
    batch = make_batch(small, device, seed=0)
    with FlopCounterMode(display=False) as counter:
        step(*batch)
    return counter.get_total_flops() / small.batch


def peak_tflops(device: torch.device, precision: str, override: float | None) -> float | None:
    if override is not None:
        return override
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            return peaks[precision]
    return None


def runnable(v: Variant, device: torch.device) -> str | None:
    """Why ``v`` cannot run here, or ``None``."""
    if v.backend == "triton" and not triton_importable():
        return "triton is not installed"
    if v.backend == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") == "0":
        return "Triton kernels need CUDA (or TRITON_INTERPRET=1 for a smoke test)"
    if v.compile == "graphs" and device.type != "cuda":
        return "CUDA graphs need CUDA"
    return None


def time_variant(w: Workload, v: Variant, device: torch.device, state: dict, iters: int, warmup: int):
    model = build_variant(w, v, state).to(device)
    step = TrainStep(model, v.precision, device, v.compile)
    batches = [make_batch(w, device, seed=s) for s in range(2)]
    for i in range(warmup):
        step(*batches[i % 2])
    sync(device)
    held = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(iters):
            step(*batches[i % 2])
        end.record()
        sync(device)
        seconds = start.elapsed_time(end) / 1e3 / iters
        peak = torch.cuda.max_memory_allocated(device)
    else:
        t0 = time.perf_counter()
        for i in range(iters):
            step(*batches[i % 2])
        seconds = (time.perf_counter() - t0) / iters
        peak = 0
    result = {
        "workload": w.label,
        "variant": v.label,
        **asdict(v),
        "ms_per_iter": seconds * 1e3,
        "samples_per_s": w.batch / seconds,
        "peak_mib": peak / 2**20,
        "peak_above_model_mib": (peak - held) / 2**20,
    }
    del step, model, batches
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def timing_section(
    w: Workload, device: torch.device, iters: int, warmup: int, report: Report, save, args: argparse.Namespace
) -> None:
    torch.manual_seed(0)
    state = create_model(w.model, num_classes=w.classes, T=w.T, width=w.width, input_size=w.size).state_dict()
    wanted = set(args.only.split(",")) if args.only else None
    variants = [
        v
        for v in VARIANTS
        if (v.label in wanted if wanted is not None else args.with_compile or v.compile == "none")
    ]
    flops = step_flops(w, device)
    log(f"\n{w.label}: {w.model} width {w.width} T {w.T} B {w.batch} {w.size}x{w.size}, {iters} timed steps")
    log(f"  {flops / 1e9:.1f} GFLOP per sample per training step (convolutions and matmuls)")
    for v in variants:
        reason = runnable(v, device)
        if reason:
            log(f"  {v.label:28s} skipped: {reason}")
            continue
        try:
            r = time_variant(w, v, device, state, iters, warmup)
            r["gflop_per_sample"] = flops / 1e9
            r["tflops"] = flops * r["samples_per_s"] / 1e12
            peak = peak_tflops(device, v.precision, args.peak_tflops)
            r["peak_tflops"] = peak
            r["pct_of_peak"] = 100 * r["tflops"] / peak if peak else None
        except Exception as exc:  # keep going: one failing variant must not cost the others
            report.errors.append(f"{w.label} {v.label}: {exc!r}")
            log(f"  {v.label:28s} FAILED: {exc!r}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        report.timings.append(r)
        log(
            f"  {v.label:28s} {r['ms_per_iter']:9.1f} ms/iter {r['samples_per_s']:8.0f} samples/s"
            f" {r['tflops']:7.1f} TFLOP/s  peak {r['peak_mib']:9.0f} MiB"
        )
        save()


PROFILE_KINDS = {
    "convolution": (
        "convolution",
        "conv2d",
        "cudnn",
        "mkldnn",
        "implicit_gemm",
        "wgrad",
        "dgrad",
        "sm90_xmma",
    ),
    "normalisation": ("batch_norm", "batchnorm", "bn_fw", "bn_bw", "var_mean", "welford"),
    "neuron": ("neuron_forward", "neuron_backward", "_multistepneuron", "_normfire", "_normspike"),
}
"""Kind of work → substrings of kernel names (lower case); a kernel matching none is "other". The
profile reads device kernels (leaf events), so each microsecond is counted once."""


def kind_of(kernel: str) -> str:
    name = kernel.lower()
    for kind, needles in PROFILE_KINDS.items():
        if any(n in name for n in needles):
            return kind
    return "other"


def profile_section(w: Workload, device: torch.device, report: Report, base_label: str) -> None:
    """One profiled training step of ``base_label`` per precision: device time per kind of work."""
    from torch.profiler import ProfilerActivity, profile  # noqa: PLC0415

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    by_label = {v.label: v for v in VARIANTS}
    for precision in ("fp32", "bf16"):
        v = by_label[f"{base_label}/{precision}"]
        reason = runnable(v, device)
        if reason:
            log(f"\nprofile {v.label} skipped: {reason}")
            continue
        model = build_variant(w, v).to(device)
        step = TrainStep(model, precision, device, v.compile)
        batch = make_batch(w, device, seed=0)
        for _ in range(2):
            step(*batch)
        sync(device)
        with profile(activities=activities) as prof:
            step(*batch)
            sync(device)
        events = prof.key_averages()
        self_attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
        kernels = [e for e in events if getattr(e, self_attr) > 0]
        total = sum(getattr(e, self_attr) for e in kernels)
        groups = dict.fromkeys((*PROFILE_KINDS, "other"), 0.0)
        for e in kernels:
            groups[kind_of(e.key)] += getattr(e, self_attr)
        where = "device" if device.type == "cuda" else "CPU"
        log(f"\nprofile {w.label} {v.label}: {total / 1e3:.1f} ms of {where} time")
        for group, micros in groups.items():
            log(f"  {group:24s}{micros / 1e3:9.1f} ms {100 * micros / max(total, 1e-9):5.1f} %")
        top = sorted(kernels, key=lambda e: getattr(e, self_attr), reverse=True)[:15]
        for e in top:
            log(f"    {getattr(e, self_attr) / 1e3:8.1f} ms  {e.count:5d}x  [{kind_of(e.key)}] {e.key[:80]}")
        report.timings.append(
            {
                "workload": w.label,
                "variant": f"profile/{v.label}",
                "total_ms": total / 1e3,
                "groups_ms": {k: v / 1e3 for k, v in groups.items()},
                "top": [(e.key, getattr(e, self_attr) / 1e3, e.count, kind_of(e.key)) for e in top],
            }
        )
        del step, model
        if device.type == "cuda":
            torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------------
# (d) packed trials


def _packed_worker(rank, w, v, device_name, iters, warmup, barrier, results) -> None:
    """One of N trials sharing the device: warm up, wait for the others, time ``iters`` steps. A failure
    (out of memory, say) is reported, and breaks the barrier so that the others stop waiting."""
    try:
        device = torch.device(device_name)
        model = build_variant(w, v).to(device)
        step = TrainStep(model, v.precision, device, v.compile)
        batch = make_batch(w, device, seed=rank)
        for _ in range(warmup):
            step(*batch)
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        barrier.wait(timeout=600)
        start = time.perf_counter()
        for _ in range(iters):
            step(*batch)
        sync(device)
        seconds = (time.perf_counter() - start) / iters
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
        results.put({"rank": rank, "ms_per_iter": seconds * 1e3, "peak_mib": peak / 2**20})
    except Exception as exc:  # noqa: BLE001 — reported to the parent, which records it
        barrier.abort()
        results.put({"rank": rank, "error": repr(exc)[:300]})


def packed_section(w: Workload, device: torch.device, args, iters: int, warmup: int, report: Report) -> None:
    """``--pack 1,2,4``: N processes train at once on one device (module docstring, (d))."""
    import torch.multiprocessing as mp  # noqa: PLC0415

    v = {x.label: x for x in VARIANTS}[args.pack_variant]
    reason = runnable(v, device)
    if reason:
        log(f"\npacked {v.label} skipped: {reason}")
        return
    context = mp.get_context("spawn")
    log(f"\npacked trials, {w.label} {v.label}")
    for n in (int(x) for x in args.pack.split(",")):
        barrier, results = context.Barrier(n), context.Queue()
        procs = [
            context.Process(
                target=_packed_worker, args=(r, w, v, str(device), iters, warmup, barrier, results)
            )
            for r in range(n)
        ]
        for proc in procs:
            proc.start()
        found = [results.get(timeout=900) for _ in procs]
        for proc in procs:
            proc.join()
        failed = [r["error"] for r in found if "error" in r]
        if failed:
            report.errors.append(f"packed {n} x {v.label}: {failed}")
            log(f"  {n} trial(s): FAILED {failed}")
            continue
        total = sum(w.batch / (r["ms_per_iter"] / 1e3) for r in found)
        slowest = max(r["ms_per_iter"] for r in found)
        peaks = [r["peak_mib"] for r in found]
        log(
            f"  {n} trial(s): {total:8.0f} samples/s together,"
            f" slowest {slowest:7.1f} ms/iter, peaks {peaks} MiB"
        )
        report.timings.append(
            {
                "workload": w.label,
                "variant": f"packed{n}/{v.label}",
                "trials": n,
                "samples_per_s": total,
                "per_trial": found,
            }
        )


def summarise(report: Report) -> list[str]:
    lines = []
    by = {(r["workload"], r["variant"]): r for r in report.timings if "ms_per_iter" in r}
    for workload in dict.fromkeys(w for w, _ in by):
        base = by.get((workload, REFERENCE))
        lines.append(f"\n{workload}")
        lines.append(f"  {'variant':28s}{'ms/iter':>10}{'x vs s/fp32':>13}{'peak MiB':>11}{'act. MiB':>10}")
        for (wl, label), r in by.items():
            if wl != workload:
                continue
            speed = base["ms_per_iter"] / r["ms_per_iter"] if base else math.nan
            lines.append(
                f"  {label:28s}{r['ms_per_iter']:10.1f}{speed:13.2f}{r['peak_mib']:11.0f}"
                f"{r['peak_above_model_mib']:10.0f}"
            )
        for precision in ("fp32", "bf16"):

            def get(v: str, workload: str = workload, precision: str = precision) -> dict | None:
                return by.get((workload, f"{v}/{precision}"))

            pairs = {
                "m vs s (fused nchw)": (get("s/autograd/nchw"), get("m/fused/nchw")),
                "fused vs autograd (m nchw)": (get("m/autograd/nchw"), get("m/fused/nchw")),
                "channels_last vs nchw (m fused)": (get("m/fused/nchw"), get("m/fused/cl")),
                "recompute vs keep (m fused cl)": (get("m/fused/cl"), get("m/fused/cl/rc")),
                "triton vs fused (m cl)": (get("m/fused/cl"), get("m/triton/cl")),
                "lean spikes vs not (m triton cl)": (get("m/triton/cl"), get("m/triton/cl/lean")),
                "compiled blocks vs not (m triton cl lean)": (
                    get("m/triton/cl/lean"),
                    get("m/triton/cl/lean/cb"),
                ),
                "compiled step vs triton (m cl lean)": (
                    get("m/triton/cl/lean"),
                    get("m/autograd/cl/lean/cs"),
                ),
            }
            for what, (a, b) in pairs.items():
                if a and b:
                    lines.append(
                        f"  {precision} {what}: speed x{a['ms_per_iter'] / b['ms_per_iter']:.2f}, "
                        f"peak memory x{b['peak_mib'] / max(a['peak_mib'], 1e-9):.2f}"
                    )
        lines.extend(target_lines(workload, by, base))
    return lines


TARGETS = {"vgg N-Caltech101": (1700.0, 10 * 1024.0), "resnet18 CEP-DVS": (None, None)}
"""Issue #18's targets per workload: (samples/s, peak MiB) for the bf16 step, and ≥ 4× the reference."""


def target_lines(workload: str, by: dict, base: dict | None) -> list[str]:
    """The fastest bf16 variant against the targets (``TARGETS``): met or not, as measured."""
    bf16 = [r for (wl, label), r in by.items() if wl == workload and label.endswith("/bf16")]
    if not bf16 or not base:
        return []
    best = min(bf16, key=lambda r: r["ms_per_iter"])
    speedup = base["ms_per_iter"] / best["ms_per_iter"]
    samples, memory = TARGETS.get(workload, (None, None))
    lines = [
        f"  fastest bf16: {best['variant']}, x{speedup:.2f} the reference"
        f" ({'met' if speedup >= 4 else 'NOT met'}: >= 4x)"
    ]
    if samples:
        met = "met" if best["samples_per_s"] >= samples else "NOT met"
        lines.append(f"  {best['samples_per_s']:.0f} samples/s ({met}: >= {samples:.0f})")
    if memory:
        met = "met" if best["peak_mib"] <= memory else "NOT met"
        lines.append(f"  peak {best['peak_mib'] / 1024:.1f} GiB ({met}: <= {memory / 1024:.0f} GiB)")
    return lines


# --------------------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        log("no CUDA device: run with --device cpu --quick to smoke-test the script")
        return 2
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    iters = args.iters or (2 if args.quick else 6)
    warmup = args.warmup or (1 if args.quick else 3)
    report = Report()
    report.env = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "quick": args.quick,
        "cudnn_benchmark": args.cudnn_benchmark,
        "iters": iters,
        "warmup": warmup,
    }
    log(json.dumps(report.env))

    def save() -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(asdict(report), indent=1))

    wall = time.perf_counter()
    if not args.skip_checks:
        checks: list[Callable[[], Any]] = [
            check_imports,
            lambda: check_neurons(device),
            lambda: check_models(device),
            lambda: check_triton_neurons(device),
            lambda: check_fast_models(device),
            lambda: check_bf16_and_sync(device),
        ]
        log("\nchecks")
        for check in checks:
            try:
                found = check()
            except Exception as exc:
                report.errors.append(traceback.format_exc(limit=3))
                found = {"name": getattr(check, "__name__", "check"), "ok": False, "detail": repr(exc)}
            for item in found if isinstance(found, list) else [found]:
                report.checks.append(item)
                log(f"  [{'ok' if item['ok'] else 'FAIL'}] {item['name']}: {item['detail']}")
            save()
    workloads = QUICK_WORKLOADS if args.quick else PAPER_WORKLOADS
    if args.workloads:
        workloads = tuple(w for w in workloads if w.label in args.workloads.split(","))
    if not args.skip_timing:
        for w in workloads:
            timing_section(w, device, iters, warmup, report, save, args)
    if args.pack:
        try:
            packed_section(workloads[0], device, args, iters, warmup, report)
        except Exception as exc:
            report.errors.append(f"packed: {exc!r}")
            log(f"packed FAILED: {exc!r}")
        save()
    if args.profile:
        try:
            profile_section(workloads[0], device, report, args.profile_variant)
        except Exception as exc:
            report.errors.append(f"profile: {exc!r}")
            log(f"profile FAILED: {exc!r}")
        save()
    lines = summarise(report)
    failed = [c["name"] for c in report.checks if not c["ok"]]
    lines.append(
        f"\nchecks: {len(report.checks) - len(failed)} ok, {len(failed)} failed {failed if failed else ''}"
    )
    lines.append(f"errors: {len(report.errors)}; wall time {time.perf_counter() - wall:.0f} s")
    for line in lines:
        log(line)
    report.env["summary"] = lines
    save()
    return 1 if failed or report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
