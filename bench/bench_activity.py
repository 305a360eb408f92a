"""What counting activity and energy costs an evaluation: ``evaluate`` with and without the meter.

The same model, the same batches, in one process: the baseline is the plain evaluation, the variant
adds ``engine.activity``'s hooks (``evaluate(..., energy=config.energy)``, what the trainer runs every
epoch). Each is timed ``--repeats`` times, alternating, and the medians and their ratio are printed.
The target is a ratio under 1.05. Batches are made once, in memory, so the data pipeline is not timed.

Run: ``python bench/bench_activity.py [--model transfer_vgg_snn --width 0.25 --size 48 --T 10]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from engine.config import EnergyConfig
from engine.models import create_model
from engine.training.evaluation import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="transfer_vgg_snn")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--T", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = create_model(
        args.model, num_classes=10, T=args.T, width=args.width, input_size=args.size, device=device
    ).to(device)
    shape = (args.batch, args.T, 2, args.size, args.size)
    loader = [
        (
            (torch.rand(shape) < 0.3).float().mul(4.0).to(device),
            torch.randint(0, 10, (args.batch,), device=device),
        )
        for _ in range(args.batches)
    ]
    variants = {"plain": None, "with activity": EnergyConfig()}
    evaluate(model, loader[:1], device)  # warm-up: kernels, allocator
    evaluate(model, loader[:1], device, energy=EnergyConfig())
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, energy in variants.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            metrics = evaluate(model, loader, device, energy=energy)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["plain"])
    samples = args.batch * args.batches
    print(f"{args.model} width {args.width} {args.size}px T={args.T}, {samples} samples on {device}:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<14} {median * 1e3:8.1f} ms  ({median / base:.3f}× plain)")
    print(
        f"  last activity: firing rate {metrics['test_firing_rate']:.4f}, {metrics['test_acs']:.4g} ACs + "
        f"{metrics['test_macs']:.4g} MACs per sample → {metrics['energy_uj']:.4g} µJ"
    )


if __name__ == "__main__":
    main()
