"""Packing sweep trials on one GPU: N engine runs side by side, each bounded to 1/N of the device memory
the way the sweep trainable bounds a trial with ``resources: {gpu: 1/N}``, against the same N runs one
after the other on the whole GPU. Same process tree, same configs; the data cache is built first.

Prints each variant's wall time, the packed/sequential throughput ratio, each run's peak memory against
its bound, and checks that a bounded process cannot allocate beyond its share (it must get an OOM).

    python bench/bench_sweep_packing.py                      # quick preset, 2 runs at gpu 0.5
    python bench/bench_sweep_packing.py --runs 4 --set model.width=0.25 epochs=3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import torch

from engine.config import RunConfig


def _config(args: argparse.Namespace, seed: int) -> RunConfig:
    config = RunConfig.from_preset(args.preset).with_overrides(args.overrides)
    return config.with_overrides({"seed": seed, "device": "cuda", "progress": False})


def _one_run(args: argparse.Namespace, seed: int, fraction: float, out: str, results: mp.Queue) -> None:
    from engine.training import train
    from orchestrator.tune.trainable import TrialSetup, _bound_resources

    _bound_resources(
        TrialSetup(base={}, sweep_dir=out, metric="best_test_top1", cpus=1, gpu_fraction=fraction)
    )
    started = time.perf_counter()
    result = train(_config(args, seed), Path(out) / f"seed_{seed}")
    peak = torch.cuda.max_memory_reserved() / 2**20
    results.put((seed, time.perf_counter() - started, result.best_test_top1, peak))


def _bound_holds(fraction: float, results: mp.Queue) -> None:
    from orchestrator.tune.trainable import TrialSetup, _bound_resources

    _bound_resources(TrialSetup(base={}, sweep_dir="", metric="x", cpus=1, gpu_fraction=fraction))
    total = torch.cuda.get_device_properties(0).total_memory
    inside = torch.empty(int(total * fraction * 0.8), dtype=torch.uint8, device="cuda")
    del inside
    torch.cuda.empty_cache()
    try:
        torch.empty(int(total * fraction * 1.2), dtype=torch.uint8, device="cuda")
        results.put("allocated beyond the bound")
    except torch.OutOfMemoryError:
        results.put("ok")


def _variant(args: argparse.Namespace, packed: bool, out: str) -> tuple[float, list]:
    ctx = mp.get_context("spawn")  # CUDA in child processes needs spawn
    results: mp.Queue = ctx.Queue()
    fraction = 1.0 / args.runs if packed else 1.0
    seeds = list(range(args.runs))
    started = time.perf_counter()
    groups = [seeds] if packed else [[s] for s in seeds]
    for group in groups:
        procs = [ctx.Process(target=_one_run, args=(args, s, fraction, out, results)) for s in group]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise SystemExit(f"a run failed (exit {p.exitcode})")
    wall = time.perf_counter() - started
    return wall, sorted(results.get() for _ in seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--runs", type=int, default=2, help="runs packed on the GPU (each gets 1/runs)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device")
    from engine.data import build_data

    build_data(_config(args, 0).with_overrides({"device": "cpu"}))  # frames cached before timing

    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    check = ctx.Process(target=_bound_holds, args=(1.0 / args.runs, queue))
    check.start()
    check.join()
    print(f"memory bound at 1/{args.runs} of the device: {queue.get()}")

    with tempfile.TemporaryDirectory() as tmp:
        seq_wall, seq = _variant(args, packed=False, out=str(Path(tmp) / "seq"))
        pack_wall, pack = _variant(args, packed=True, out=str(Path(tmp) / "pack"))
    total_mb = torch.cuda.get_device_properties(0).total_memory / 2**20
    print(f"{args.runs} runs of {args.preset} {' '.join(args.overrides)} on {torch.cuda.get_device_name(0)}")
    print(f"  sequential (whole GPU each): {seq_wall:7.1f} s")
    print(
        f"  packed (1/{args.runs} GPU each):     {pack_wall:7.1f} s   throughput ×{seq_wall / pack_wall:.2f}"
    )
    for (seed, t_seq, acc_seq, _), (_, t_pack, acc_pack, peak) in zip(seq, pack, strict=True):
        print(
            f"  seed {seed}: {t_seq:6.1f} s → {t_pack:6.1f} s packed, best top-1 {acc_seq:.2f} / "
            f"{acc_pack:.2f}, peak reserved {peak:.0f} MB of a {total_mb / args.runs:.0f} MB bound"
        )


if __name__ == "__main__":
    main()
