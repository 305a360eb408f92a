"""Engine step time: the fast multi-step path against the reference step-by-step path.

One training step = static pass + event pass + the full objective (TET, regularization, CKA domain
loss) + backward. Both paths start from the same weights and see the same batches; each is warmed up
first, then the two are timed alternately, step by step, over ``--iters`` steps in the same process
(so that load from other processes hits both alike). Prints the median step times and the speed-up
(reference / fast), plus peak memory on CUDA.

    python bench/bench_engine.py                               # small CPU run (width 0.25, B 8)
    python bench/bench_engine.py --model transfer_scnn --T 12 --batch 16 --classes 1623
    python bench/bench_engine.py --device cuda --width 1 --batch 120 --T 10   # the paper's N-Caltech101 step
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from engine.losses import LossSettings, compute_loss
from engine.models import create_model


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
    p.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (CUDA)")
    return p.parse_args()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """One model, its optimiser and its training step (forward both streams, objective, backward, step)."""

    def __init__(self, model, settings, bf16: bool) -> None:
        self.model, self.settings, self.bf16 = model, settings, bf16
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(self, xs, xe, y) -> None:
        device_type = xe.device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(xs, xe) if self.model.is_transfer else self.model(xe)
            alpha = self.model.alpha() if self.model.is_transfer else None
            terms = compute_loss(out, y, alpha, settings=self.settings)
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        self.optimizer.step()


def timed(trainer: Trainer, batch, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    trainer.step(*batch)
    _sync(device)
    return time.perf_counter() - start


def peak_memory_mib(trainer: Trainer, batch, device: torch.device) -> float:
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
    fast = create_model(
        args.model, num_classes=args.classes, T=args.T, width=args.width, input_size=args.input_size
    ).to(device)
    reference = create_model(
        args.model,
        num_classes=args.classes,
        T=args.T,
        width=args.width,
        input_size=args.input_size,
        step_mode="s",
    ).to(device)
    reference.load_state_dict(fast.state_dict())
    S = fast.input_size
    gen = torch.Generator(device=device).manual_seed(0)
    batches = [
        (
            torch.rand(args.batch, 1, 1, S, S, device=device, generator=gen).expand(-1, args.T, 2, -1, -1),
            torch.poisson(torch.full((args.batch, args.T, 2, S, S), 0.5, device=device), generator=gen),
            torch.randint(0, args.classes, (args.batch,), device=device, generator=gen),
        )
        for _ in range(args.warmup + args.iters)
    ]
    settings = LossSettings()
    trainers = {
        "reference": Trainer(reference, settings, args.bf16),
        "fast": Trainer(fast, settings, args.bf16),
    }
    for batch in batches[: args.warmup]:
        for trainer in trainers.values():
            trainer.step(*batch)
    # Alternate the two paths step by step so that load from other processes hits both alike.
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for batch in batches[args.warmup :]:
        for name, trainer in trainers.items():
            times[name].append(timed(trainer, batch, device))
    median = {name: statistics.median(values) for name, values in times.items()}
    peak = {name: peak_memory_mib(trainer, batches[0], device) for name, trainer in trainers.items()}
    print(
        f"{args.model} width={args.width} B={args.batch} T={args.T} {S}x{S} on {device}"
        f"{' bf16' if args.bf16 else ''}: median of {args.iters} training steps after {args.warmup} warm-up"
    )
    for name, mode in (("reference", "s"), ("fast", "m")):
        memory = f"  peak {peak[name]:8.0f} MiB" if peak[name] else ""
        print(f"  {name:9s} (step_mode={mode!r}): {median[name] * 1e3:9.1f} ms/step{memory}")
    print(f"  speed-up reference/fast: {median['reference'] / median['fast']:.2f}x")


if __name__ == "__main__":
    main()
