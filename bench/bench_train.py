"""Benchmark of one training iteration: our step against the original's way of doing it, same process.

Variants (same model weights, same batches, same random streams; each warmed up first):

* ``optimised``      — the trainer's step: the model as ``model.step_mode: auto`` builds it on this
                       device (layer by layer, fused neurons, channels-last frames), static images drawn
                       on the device, metrics summed on the device, no host synchronisation;
* ``+ .item()``      — the same step, plus what the original logs every iteration: ``.item()`` on each
                       loss part and the accuracy (a host sync each), and ``cuda.synchronize()`` on GPU;
* ``autograd LIF``   — the optimised loop, layer by layer, with the plain-torch neurons and NCHW frames
                       (the multi-step path before the fused neurons);
* ``step-by-step``   — the optimised loop with the reference step-by-step model path (the original
                       BrainCog order: the whole stack called T times per pass; ``model.step_mode: s``);
* ``original-style`` — all of the original's per-iteration habits together: step-by-step model, the
                       static batch gathered on the CPU with a Python loop over the samples and copied to
                       the device, and the per-iteration ``.item()`` logging.

Prints ms/iteration, samples/s, the ratio to ``optimised``, and the achieved FLOP rate from
``torch.utils.flop_counter`` (an MFU when ``--peak-tflops`` is given).

    python bench/bench_train.py                              # the quick preset on nshapes
    python bench/bench_train.py --set model.width=0.25 T=10  # bigger
    python bench/bench_train.py --preset ncaltech101 --set data.root=/data --device cuda --peak-tflops 989
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch

from engine.config import RunConfig
from engine.data import build_data
from engine.losses import compute_loss
from engine.models import set_memory_format, set_neuron_backend
from engine.sliding import replace_static
from engine.static_channel import static_stream
from engine.training.loading import build_model
from engine.training.loop import TrainLoop, batch_sums
from engine.training.optim import create_optimizer
from engine.training.rng import epoch_generators, seed_everything
from engine.training.runtime import autocast, resolve_device
from engine.training.trainer import check_config


def parse_args() -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="K=V")
    parser.add_argument("--rounds", type=int, default=3, help="timed blocks per variant")
    parser.add_argument("--block", type=int, default=2, help="consecutive iterations per block")
    parser.add_argument("--warmup", type=int, default=1, help="untimed blocks per variant")
    parser.add_argument("--device", default=None, help="override the config's device")
    parser.add_argument("--peak-tflops", type=float, default=None, help="hardware peak, for an MFU figure")
    return parser.parse_args()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    args = parse_args()
    config = RunConfig.from_preset(args.preset).with_overrides(args.overrides + ["progress=false"])
    if args.device:
        config = config.with_overrides({"device": args.device})
    check_config(config)
    device = resolve_device(config.device)
    bundle = build_data(config)
    seed_everything(config.seed)
    model = build_model(config, bundle.num_classes, device).to(device)
    initial_model = {k: v.clone() for k, v in model.state_dict().items()}
    batches = []
    for frames, labels in bundle.train_loader:
        batches.append((frames.to(device), labels.to(device)))
        if len(batches) == args.block:
            break
    cpu_pool = bundle.static_pool
    pool_lists = [
        cpu_pool.pool_index[o : o + n].tolist()
        for o, n in zip(cpu_pool.pool_offset.tolist(), cpu_pool.pool_count.tolist(), strict=True)
    ]

    def fresh_loop(step_mode: str) -> TrainLoop:
        """A loop over its own copy of the model, from the same initial weights.

        ``step_mode``: ``auto`` or ``s`` (the config knob), or ``m-autograd`` (layer by layer with the
        plain-torch neurons and NCHW frames).
        """
        seed_everything(config.seed)
        mode = "m" if step_mode == "m-autograd" else step_mode
        own = build_model(config.with_overrides({"model.step_mode": mode}), bundle.num_classes, device)
        if step_mode == "m-autograd":
            set_neuron_backend(set_memory_format(own, "contiguous"), "autograd")
        own.to(device).load_state_dict(initial_model)
        return TrainLoop(own, create_optimizer(own, config), bundle, config, device)

    def optimised(loop: TrainLoop, sums: torch.Tensor, i: int, gens) -> None:
        frames, labels = batches[i]
        terms, logits = loop.step(frames, labels, i, gens)
        sums += batch_sums(terms, logits, labels, labels.shape[0])

    def with_item(loop: TrainLoop, sums: torch.Tensor, i: int, gens) -> None:
        frames, labels = batches[i]
        terms, logits = loop.step(frames, labels, i, gens)
        _sync(device)
        logged = [terms.total.item(), terms.static.item(), terms.event.item(), terms.domain.item()]
        logged.append((logits.mean(0).argmax(-1) == labels).float().mean().item())

    def original_style(loop: TrainLoop, sums: torch.Tensor, i: int, gens) -> None:
        frames, labels = batches[i]
        frames = bundle.augment(frames, gens.augmentation)
        # the original: python `random` per sample, a CPU gather, a copy to the device
        picks = [random.choice(pool_lists[y]) for y in labels.tolist()]
        static_img = torch.stack([cpu_pool.images[j] for j in picks]).to(device)
        static = static_stream(static_img, config.T)
        static, _ = replace_static(static, frames, loop.replacement_p(i), gens.replacement)
        model = loop.model
        with autocast(device, config.precision):
            output = model(static, frames) if loop.transfer else model.forward_event(frames)
        alpha = model.alpha() if loop.transfer and loop.settings.regularization else None
        terms = compute_loss(output, labels, alpha, settings=loop.settings, add_domain=loop.add_domain)
        loop.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        loop.optimizer.step()
        _sync(device)
        logits = output.logits_event if loop.transfer else output
        logged = [terms.total.item(), terms.static.item(), terms.event.item(), terms.domain.item()]
        logged.append((logits.mean(0).argmax(-1) == labels).float().mean().item())

    variants: list[tuple[str, str, Callable]] = [
        ("optimised", "auto", optimised),
        ("+ .item()", "auto", with_item),
        ("autograd LIF", "m-autograd", optimised),
        ("step-by-step", "s", optimised),
        ("original-style", "s", original_style),
    ]
    flops = _flops_per_iteration(fresh_loop("auto"), batches[0], epoch_generators(config.seed, 0, device))
    del model
    print(
        f"{config.model.name} width {config.model.width} T {config.T} B {config.batch_size} "
        f"{config.data.event_size}px on {device} ({torch.get_num_threads()} threads), {config.precision}; "
        f"median of {args.rounds} blocks of {args.block} iterations per variant, after {args.warmup} warm-up"
    )
    # Round-robin over blocks of consecutive iterations: load from other processes on a shared machine
    # hits every variant alike, and inside a block the optimised step runs without any host sync, as in
    # training (the device is synchronised only at block ends). The median block time is reported.
    states = [(fresh_loop(mode), epoch_generators(config.seed, 0, device)) for _, mode, _ in variants]
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for r in range(args.warmup + args.rounds):
        block = range(r * args.block, (r + 1) * args.block)
        for (name, _, fn), (loop, gens) in zip(variants, states, strict=True):
            sums = torch.zeros(6, dtype=torch.float64, device=device)
            _sync(device)
            start = time.perf_counter()
            for i in block:
                fn(loop, sums, i % len(batches), gens)
            sums.tolist()  # the one read-back the trainer does per epoch
            _sync(device)
            if r >= args.warmup:
                times[name].append((time.perf_counter() - start) / args.block)
    results = {name: statistics.median(values) for name, values in times.items()}
    base = results["optimised"]
    print(f"{'variant':<16}{'ms/iter':>10}{'samples/s':>12}{'time ÷ optimised':>18}")
    for name, seconds in results.items():
        print(f"{name:<16}{seconds * 1e3:>10.1f}{config.batch_size / seconds:>12.1f}{seconds / base:>18.2f}")
    achieved = flops / base / 1e12
    line = f"optimised step: {flops / 1e9:.2f} GFLOP per iteration, {achieved * 1e3:.1f} GFLOP/s achieved"
    if args.peak_tflops:
        line += f", MFU {100 * achieved / args.peak_tflops:.1f}% of {args.peak_tflops} TFLOP/s"
    print(line)


def _flops_per_iteration(loop: TrainLoop, batch, gens) -> float:
    """Forward + backward FLOPs of one training iteration, counted by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    frames, labels = batch
    with FlopCounterMode(display=False) as counter:
        loop.step(frames, labels, 0, gens)
    return float(counter.get_total_flops())


if __name__ == "__main__":
    main()
