"""Engine step time and activation memory: every execution variant against the step-by-step reference.

One training step = static pass + event pass + the full objective (TET, regularization, CKA domain
loss) + backward + AdamW. Variants (same weights, same batches, each warmed up first):

* ``s/autograd/nchw`` — the reference: the original step-by-step order, plain-torch neurons;
* ``m/autograd/nchw`` — layer by layer, plain-torch neurons (the multi-step loop through autograd);
* ``m/fused/nchw``    — layer by layer, fused neurons (hand-written BPTT), batch-major NCHW frames;
* ``m/fused/cl``      — layer by layer, fused neurons, time-major channels-last frames (``auto``);
* ``m/fused/cl/rc``   — the same, recomputing BatchNorm outputs and membrane potentials in the
                        backward pass (``create_model(..., recompute=True)``): less activation memory;
* ``m/fused/cl/lean`` (and ``/rc/lean``) — convolutions fed by spikes keep them as 1 byte
                        (``create_model(..., lean_spikes=True)``): less activation memory, same numbers;
* ``m/triton/cl/lean`` — Triton neurons with the BatchNorm inside the kernel (CUDA; on a CPU only under
                        ``TRITON_INTERPRET=1``, far slower: a correctness run, not a timing);
* ``m/fused/cl/cb``   — ``train.compile: blocks`` (``torch.compile`` of each block; compiling takes
                        minutes on a CPU, so not in the default list);
* ``m/autograd/cl/cs`` — ``train.compile: step`` with plain-torch neurons, whose time loop Inductor
                        fuses (not in the default list either).

The variants are timed alternately, step by step, in the same process (load from other processes
hits all alike); the median step time and the speed-up over the reference are printed. Activation
memory is the bytes autograd keeps for the backward pass during one step (counted with
``torch.autograd.graph.saved_tensors_hooks``, each storage once, parameters excluded — works on any
device), and on CUDA also ``torch.cuda.max_memory_allocated`` of the step.

    python bench/bench_engine.py                          # small CPU run (width 0.25, B 8)
    python bench/bench_engine.py --memory-only --width 1 --batch 16 --T 10    # activation memory
    python bench/bench_engine.py --model transfer_resnet18 --T 6
    python bench/bench_engine.py --device cuda --width 1 --batch 120 --T 10 --bf16
    python bench/gpu_check.py                             # the full GPU table (both models)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass

import torch

from engine.losses import LossSettings, compute_loss
from engine.models import create_model
from engine.training.compile import compile_blocks, compile_function

VARIANTS = {  # step mode, neuron backend, frame layout, recompute, lean spikes, train.compile
    "s/autograd/nchw": ("s", "autograd", "contiguous", False, False, "none"),
    "m/autograd/nchw": ("m", "autograd", "contiguous", False, False, "none"),
    "m/fused/nchw": ("m", "fused", "contiguous", False, False, "none"),
    "m/fused/cl": ("m", "fused", "channels_last", False, False, "none"),
    "m/fused/cl/rc": ("m", "fused", "channels_last", True, False, "none"),
    "m/fused/cl/lean": ("m", "fused", "channels_last", False, True, "none"),
    "m/fused/cl/rc/lean": ("m", "fused", "channels_last", True, True, "none"),
    "m/triton/cl/lean": ("m", "triton", "channels_last", False, True, "none"),
    "m/fused/cl/cb": ("m", "fused", "channels_last", False, False, "blocks"),
    "m/autograd/cl/cs": ("m", "autograd", "channels_last", False, False, "step"),
}
DEFAULT_VARIANTS = [name for name, v in VARIANTS.items() if v[5] == "none" and v[1] != "triton"]
"""What runs without ``--variants``: everything but the compiled and the Triton variants."""
REFERENCE = "s/autograd/nchw"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="transfer_vgg_snn")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true", help="autocast to bfloat16")
    p.add_argument("--memory-only", action="store_true", help="only the activation memory of one step")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS)
    return p.parse_args()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Trainer:
    """One model, its optimiser and its training step (forward both streams, objective, backward, step)."""

    model: torch.nn.Module
    settings: LossSettings
    bf16: bool
    compile: str = "none"

    def __post_init__(self) -> None:
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        if self.compile == "blocks":
            compile_blocks(self.model)
        elif self.compile == "step":
            self.forward_loss = compile_function(self._forward_loss)  # type: ignore[method-assign]

    def forward_loss(self, xs, xe, y) -> torch.Tensor:
        return self._forward_loss(xs, xe, y)

    def _forward_loss(self, xs, xe, y) -> torch.Tensor:
        with torch.autocast(xe.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(xs, xe) if self.model.is_transfer else self.model(xe)
        alpha = self.model.alpha() if self.model.is_transfer else None
        return compute_loss(out, y, alpha, settings=self.settings).total

    def step(self, xs, xe, y) -> None:
        loss = self.forward_loss(xs, xe, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def timed(trainer: Trainer, batch, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    trainer.step(*batch)
    _sync(device)
    return time.perf_counter() - start


def saved_activation_bytes(trainer: Trainer, batch) -> int:
    """Bytes autograd saves for backward during one forward (each storage once, no parameters)."""
    params = {p.untyped_storage().data_ptr() for p in trainer.model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = trainer.forward_loss(*batch)
    total = sum(storages.values())
    loss.backward()  # free the graph
    trainer.optimizer.zero_grad(set_to_none=True)
    return total


def peak_cuda_mib(trainer: Trainer, batch, device: torch.device) -> float:
    if device.type != "cuda":
        return 0.0
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    trainer.step(*batch)
    _sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    common = dict(num_classes=args.classes, T=args.T, width=args.width, input_size=args.input_size)
    state = create_model(args.model, **common).state_dict()
    trainers: dict[str, Trainer] = {}
    for name in args.variants:
        step_mode, backend, memory_format, recompute, lean, compile_mode = VARIANTS[name]
        model = create_model(
            args.model,
            step_mode=step_mode,
            neuron_backend=backend,
            memory_format=memory_format,
            recompute=recompute,
            lean_spikes=lean,
            **common,
        )
        model.load_state_dict(state)
        trainers[name] = Trainer(model.to(device), LossSettings(), args.bf16, compile_mode)
    S = next(iter(trainers.values())).model.input_size
    gen = torch.Generator(device=device).manual_seed(0)
    batches = [
        (
            torch.rand(args.batch, 1, 1, S, S, device=device, generator=gen).expand(-1, args.T, 2, -1, -1),
            torch.poisson(torch.full((args.batch, args.T, 2, S, S), 0.5, device=device), generator=gen),
            torch.randint(0, args.classes, (args.batch,), device=device, generator=gen),
        )
        for _ in range(max(1, args.warmup + args.iters))
    ]
    title = (
        f"{args.model} width={args.width} B={args.batch} T={args.T} {S}x{S} on {device}"
        f"{' bf16' if args.bf16 else ''} ({torch.get_num_threads()} threads)"
    )
    # compiled code keeps what Inductor decides to keep, out of reach of saved-tensor hooks
    saved = {
        name: saved_activation_bytes(trainer, batches[0]) if trainer.compile == "none" else math.nan
        for name, trainer in trainers.items()
    }
    median: dict[str, float] = {}
    if not args.memory_only:
        for batch in batches[: args.warmup]:
            for trainer in trainers.values():
                trainer.step(*batch)
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for batch in batches[args.warmup :]:
            for name, trainer in trainers.items():
                times[name].append(timed(trainer, batch, device))
        median = {name: statistics.median(values) for name, values in times.items()}
        title += f": median of {args.iters} training steps after {args.warmup} warm-up, interleaved"
    peak = {name: peak_cuda_mib(trainer, batches[0], device) for name, trainer in trainers.items()}
    print(title)
    base = REFERENCE if REFERENCE in trainers else next(iter(trainers))
    header = f"  {'variant':18s}{'ms/step':>10}{'speed-up':>10}{'saved act. MiB':>16}{'ratio':>7}"
    print(header + (f"{'peak MiB':>10}" if device.type == "cuda" else ""))
    for name in trainers:
        row = f"  {name:18s}"
        row += f"{median[name] * 1e3:10.1f}{median[base] / median[name]:9.2f}x" if median else f"{'':20s}"
        row += f"{saved[name] / 2**20:16.1f}{saved[name] / saved[base]:7.2f}"
        if device.type == "cuda":
            row += f"{peak[name]:10.0f}"
        print(row)
    pairs = {
        "m vs s (fused, nchw)": (REFERENCE, "m/fused/nchw"),
        "fused vs autograd neurons (m, nchw)": ("m/autograd/nchw", "m/fused/nchw"),
        "channels-last vs nchw (m, fused)": ("m/fused/nchw", "m/fused/cl"),
        "fastest fast path vs reference": (REFERENCE, "m/fused/cl"),
        "recompute vs keep (m, fused, channels-last)": ("m/fused/cl", "m/fused/cl/rc"),
        "recompute vs reference": (REFERENCE, "m/fused/cl/rc"),
        "lean spikes vs not (m, fused, channels-last)": ("m/fused/cl", "m/fused/cl/lean"),
        "lean spikes + recompute vs neither": ("m/fused/cl", "m/fused/cl/rc/lean"),
        "triton (BN in the kernel) vs fused (both lean)": ("m/fused/cl/lean", "m/triton/cl/lean"),
        "compiled blocks vs not (m, fused, channels-last)": ("m/fused/cl", "m/fused/cl/cb"),
        "compiled step, autograd neurons vs fused": ("m/fused/cl", "m/autograd/cl/cs"),
    }
    for what, (a, b) in pairs.items():
        if a in trainers and b in trainers:
            speed = f"speed x{median[a] / median[b]:.2f}, " if median else ""
            print(f"  {what}: {speed}saved activations x{saved[b] / saved[a]:.2f}")


if __name__ == "__main__":
    main()
