"""Engine step time: the fast multi-step path against the reference step-by-step path.

One training step = static pass + event pass + the full objective (TET, regularization, CKA domain
loss) + backward. Both paths start from the same weights and see the same batches; each is warmed up
first, then timed over ``--iters`` steps in the same process. Prints both times and the speed-up
(reference / fast), plus peak memory on CUDA.

    python bench/bench_engine.py                               # small CPU run (width 0.25, B 8)
    python bench/bench_engine.py --device cuda --width 1 --batch 120 --T 10   # the paper's N-Caltech101 step
"""

from __future__ import annotations

import argparse
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


def time_steps(model, batches, settings, args, device) -> tuple[float, float]:
    """Mean seconds per training step and peak CUDA memory in MiB (0 on CPU)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(xs, xe, y):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            out = model(xs, xe) if model.is_transfer else model(xe)
            alpha = model.alpha() if model.is_transfer else None
            terms = compute_loss(out, y, alpha, settings=settings)
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        opt.step()

    for xs, xe, y in batches[: args.warmup]:
        step(xs, xe, y)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for xs, xe, y in batches[args.warmup :]:
        step(xs, xe, y)
    _sync(device)
    elapsed = (time.perf_counter() - start) / args.iters
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    return elapsed, peak


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
    t_ref, m_ref = time_steps(reference, batches, settings, args, device)
    t_fast, m_fast = time_steps(fast, batches, settings, args, device)
    print(
        f"{args.model} width={args.width} B={args.batch} T={args.T} {S}x{S} on {device}"
        f"{' bf16' if args.bf16 else ''}: {args.iters} steps after {args.warmup} warm-up"
    )
    print(
        f"  reference (step_mode='s'): {t_ref * 1e3:9.1f} ms/step"
        + (f"  peak {m_ref:8.0f} MiB" if m_ref else "")
    )
    print(
        f"  fast      (step_mode='m'): {t_fast * 1e3:9.1f} ms/step"
        + (f"  peak {m_fast:8.0f} MiB" if m_fast else "")
    )
    print(f"  speed-up reference/fast: {t_ref / t_fast:.2f}x")


if __name__ == "__main__":
    main()
