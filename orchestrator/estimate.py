"""How long a grid sweep will take, measured rather than guessed: ``sweep SPACE --dry-run --estimate``.

Why measure: a step's cost depends on the model, T, frame size, batch, precision and the cores a trial
gets, and a rule of thumb is wrong by factors. So for every distinct run shape of the plan (the
configuration minus the seed and the data fractions, which change how many steps a run takes but not
what one step costs) the estimate times real training steps — the model the trainer builds, both
streams, the loss, backward and the optimiser step — and evaluation batches, on random frames of the
right shape, with as many threads as one trial gets (``resources.cpu``). Each run then costs

    epochs × (⌊train recordings / B⌋ × step + ⌈test recordings / B⌉ × eval batch) + start-up

and the runs are laid out in plan order over ``max_concurrent_trials`` slots (first free slot first).

What it leaves out, and says so: building the dataset and frame caches (once per sweep), Ray's start
(a few seconds), and trials competing for memory bandwidth when they share a machine — the studies in
the README measured their wall time to compare against.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass

from engine.config import RunConfig
from orchestrator.plan import SweepPlan, config_for
from orchestrator.space import SweepSpace

__all__ = ["RunEstimate", "SweepEstimate", "count_recordings", "estimate_sweep", "format_estimate"]

STARTUP_S = 6.0
"""Per trial: a Ray actor, imports, reading the frame cache and building the model (measured ~4–8 s)."""
_FRACTION_KEYS = ("seed", "data.traindata_ratio", "data.rgbdata_ratio")


@dataclass(frozen=True)
class StepCost:
    train_step_s: float
    eval_batch_s: float


@dataclass(frozen=True)
class RunEstimate:
    plan_key: str
    seed: int
    train_recordings: int
    test_recordings: int
    steps_per_epoch: int
    epochs: int
    seconds: float


@dataclass(frozen=True)
class SweepEstimate:
    runs: list[RunEstimate]
    concurrency: int
    threads_per_trial: int
    wall_s: float
    shapes: int

    @property
    def run_seconds(self) -> float:
        return sum(r.seconds for r in self.runs)


def count_recordings(config: RunConfig) -> tuple[int, int]:
    """``(train recordings kept, test recordings)`` of a run, without generating or decoding anything.

    The built-in pair is counted from its parameters (the same per-class arithmetic as the reader);
    other pairs are listed by their reader (file names only).
    """
    data = config.data
    if data.pair == "nshapes" and data.root is None:
        from engine.data.catalog import split_counts  # noqa: PLC0415

        n_train, kept = split_counts(data.nshapes_per_class, data.train_portion, data.traindata_ratio)
        classes = data.nshapes_classes
        return classes * max(kept, 1), classes * (data.nshapes_per_class - n_train)
    from engine.data import load_catalog  # noqa: PLC0415

    catalog = load_catalog(config)
    return len(catalog.train), len(catalog.test)


def _shape_key(config: RunConfig) -> str:
    flat = {k: v for k, v in config.flat().items() if k not in _FRACTION_KEYS}
    return repr(sorted(flat.items(), key=lambda kv: kv[0]))


def measure_step(config: RunConfig, threads: int, steps: int = 3) -> StepCost:
    """Median seconds of one training step and one evaluation batch of ``config`` on random frames."""
    import torch  # noqa: PLC0415

    from engine.losses import LossSettings, compute_loss, domain_term_enabled  # noqa: PLC0415
    from engine.static_channel import static_stream  # noqa: PLC0415
    from engine.training.loading import build_model  # noqa: PLC0415
    from engine.training.optim import create_optimizer  # noqa: PLC0415
    from engine.training.runtime import autocast, resolve_device  # noqa: PLC0415

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        device = resolve_device(config.device)
        torch.manual_seed(0)
        classes = 10
        model = build_model(config, classes, device).to(device)
        optimizer = create_optimizer(model, config)
        settings = LossSettings.from_config(config)
        add_domain = domain_term_enabled(config)
        B, T, size = config.batch_size, config.T, config.data.event_size
        frames = torch.rand(B, T, 2, size, size, device=device)
        images = torch.rand(B, size, size, device=device)
        labels = torch.arange(B, device=device) % classes
        transfer = bool(getattr(model, "is_transfer", False))

        def train_step() -> None:
            if transfer:
                with autocast(device, config.precision):
                    output = model(static_stream(images, T), frames)
                alpha = model.alpha() if settings.regularization else None
                terms = compute_loss(output, labels, alpha, settings=settings, add_domain=add_domain)
            else:
                with autocast(device, config.precision):
                    logits = model.forward_event(frames)
                terms = compute_loss(logits, labels, settings=settings)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()

        @torch.no_grad()
        def eval_batch() -> None:
            with autocast(device, config.precision):
                model.forward_event(frames)

        return StepCost(_median_time(train_step, steps, device), _median_time(eval_batch, steps, device))
    finally:
        torch.set_num_threads(previous)


def _median_time(fn, repeats: int, device) -> float:
    import torch  # noqa: PLC0415

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def estimate_sweep(
    space: SweepSpace, plan: SweepPlan, concurrency: int, measure=measure_step
) -> SweepEstimate:
    """Time every planned run of a grid/fixed plan; ``measure(config, threads)`` gives a step's cost."""
    base = space.base_config()
    threads = max(1, int(space.resources.cpu))
    costs: dict[str, StepCost] = {}
    runs: list[RunEstimate] = []
    for planned in plan.fixed:
        for seed in planned.seeds:
            config = config_for(space, base, planned.overrides, seed)
            key = _shape_key(config)
            if key not in costs:
                costs[key] = measure(config, threads)
            cost = costs[key]
            train, test = count_recordings(config)
            steps = train // config.batch_size
            eval_batches = math.ceil(test / config.batch_size)
            seconds = STARTUP_S + config.epochs * (
                steps * cost.train_step_s + eval_batches * cost.eval_batch_s
            )
            runs.append(RunEstimate(planned.plan_key, seed, train, test, steps, config.epochs, seconds))
    slots = [0.0] * max(1, concurrency)
    heapq.heapify(slots)
    for run in runs:
        heapq.heappush(slots, heapq.heappop(slots) + run.seconds)
    return SweepEstimate(runs, max(1, concurrency), threads, max(slots), len(costs))


def format_estimate(estimate: SweepEstimate) -> str:
    if not estimate.runs:
        return "time estimate: nothing planned up front (sampled search: the sweep decides as it goes)"
    per = sorted(r.seconds for r in estimate.runs)
    return "\n".join(
        [
            f"time estimate (measured: {estimate.shapes} run shape(s) timed on this machine with "
            f"{estimate.threads_per_trial} thread(s) each):",
            f"  {len(estimate.runs)} runs, {per[0]:.0f}–{per[-1]:.0f} s each, "
            f"{estimate.run_seconds / 60:.1f} min of trial time",
            f"  ≈ {estimate.wall_s / 60:.0f} min of wall time at {estimate.concurrency} concurrent trial(s)",
            "  not included: building the dataset and frame caches once, Ray's start, and concurrent trials "
            "slowing each other on shared cores",
        ]
    )
