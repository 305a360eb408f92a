"""``spikesweep landscape``: a checkpoint's loss landscape, its grid evaluated as Ray tasks, resumable.

The grid (1-D: ``points`` values of x; 2-D: ``points²`` (x, y) pairs over ``--range``) is split into
chunks; each chunk is one Ray task (locally, or on the cluster ``--address`` names) that loads the
checkpoint, the evaluation batches and the seeded directions itself — the same on every worker — and
evaluates its points with :func:`engine.landscape.evaluate_points`. Finished chunks are appended to
``landscape.parquet`` (rewritten atomically) as they arrive, so a killed run keeps them and a rerun
computes only the missing points; ``landscape.json`` records what the grid is, and a rerun that asks for
a different one is refused instead of mixing two grids. Each task evaluates with one thread, so a point
gives the same numbers whichever worker computes it, and a distributed grid equals a single-process one.

Outputs: ``landscape.parquet`` (one row per point: indices, coordinates, loss, top-1, top-5), and PNGs
— the 1-D curve, or the 2-D contour, filled contour and 3-D surface of the loss (and accuracy).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import ConfigError
from engine.training.records import write_table_atomic
from engine.training.rundir import RunDir

__all__ = [
    "LandscapeSpec",
    "default_out_dir",
    "parse_range",
    "plot_compare",
    "plot_landscape",
    "read_landscape",
    "run_landscape",
]

TABLE = "landscape.parquet"
MANIFEST = "landscape.json"
SPLITS = ("test", "train")
_SCHEMA = pa.schema(
    [
        pa.field("i", pa.int64()),
        pa.field("j", pa.int64()),
        pa.field("x", pa.float64()),
        pa.field("y", pa.float64()),
        pa.field("loss", pa.float64()),
        pa.field("top1", pa.float64()),
        pa.field("top5", pa.float64()),
    ]
)


def parse_range(text: str) -> tuple[float, float]:
    """``"-1:1"`` → ``(-1.0, 1.0)``; anything else is a :class:`ConfigError` saying the form."""
    low, sep, high = str(text).partition(":")
    try:
        values = (float(low), float(high))
    except ValueError:
        values = None
    if not sep or values is None or not all(map(math.isfinite, values)) or values[0] >= values[1]:
        raise ConfigError(f"--range {text!r}: expected LOW:HIGH with LOW < HIGH, e.g. -1:1")
    return values


@dataclass(frozen=True)
class LandscapeSpec:
    """What one landscape is: which weights, which directions, which grid, on which data."""

    checkpoint: str
    dims: int = 2
    low: float = -1.0
    high: float = 1.0
    points: int = 51
    split: str = "test"
    subset: int | None = None
    """Evaluate on this many recordings of the split (a seeded choice), instead of all of them."""
    seed: int = 0
    include_1d: bool = False
    """Also move biases, BatchNorm parameters and coefficients (the original: ``--xignore biasbn``, off)."""
    interpolate_to: str | None = None
    """A second checkpoint: the 1-D direction is θ_B − θ_A instead of a random one."""
    overrides: tuple[str, ...] = ()

    def validate(self) -> LandscapeSpec:
        problems = []
        if self.dims not in (1, 2):
            problems.append(f"--dims {self.dims}: allowed 1 or 2")
        if self.points < 2:
            problems.append(f"--points {self.points}: at least 2 (the grid's two ends)")
        if self.points > 1001:
            problems.append(f"--points {self.points}: at most 1001")
        if self.split not in SPLITS:
            problems.append(f"--split {self.split!r}: allowed {', '.join(SPLITS)}")
        if self.subset is not None and self.subset < 1:
            problems.append(f"--subset {self.subset}: at least 1 recording")
        if self.interpolate_to is not None and self.dims != 1:
            problems.append("interpolating between two checkpoints is one direction: use --dims 1")
        if not self.low < self.high:
            problems.append(f"--range {self.low}:{self.high}: LOW must be below HIGH")
        if problems:
            raise ConfigError("landscape: " + "; ".join(problems))
        return self

    def axis(self) -> np.ndarray:
        return np.linspace(self.low, self.high, self.points)

    def grid(self) -> list[tuple[int, int, float, float]]:
        """``(i, j, x, y)`` of every point (``j = 0``, ``y = 0`` for 1-D), row-major."""
        axis = self.axis()
        if self.dims == 1:
            return [(i, 0, float(x), 0.0) for i, x in enumerate(axis)]
        return [(i, j, float(x), float(y)) for i, x in enumerate(axis) for j, y in enumerate(axis)]


def default_out_dir(weights_path: Path, dims: int) -> Path:
    """Next to the run the weights belong to: ``<run>/landscape-<dims>d``."""
    parent = weights_path.parent
    if RunDir.of_checkpoint(parent):
        run = parent.parent.parent
    elif parent.name == "best":
        run = parent.parent  # a sweep's exported run: runs/<plan key>/seed_<s>/best
    else:
        return Path.cwd() / f"landscape-{weights_path.stem}-{dims}d"
    return run / f"landscape-{dims}d"


# --------------------------------------------------------------------------------------------------
# one chunk of points (the Ray task body; also the single-process path)


def _batches(dataset, subset: int | None, seed: int, batch_size: int):
    count = len(dataset)
    if subset is not None and subset < count:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.permutation(count)[:subset])
    else:
        rows = np.arange(count)
    return [dataset[rows[k : k + batch_size].tolist()] for k in range(0, len(rows), batch_size)]


def evaluate_chunk(spec: dict[str, Any], points: Sequence[tuple[int, int, float, float]]) -> list[dict]:
    """Load everything from ``spec`` (a :class:`LandscapeSpec` as a dict) and evaluate ``points``."""
    import torch  # noqa: PLC0415

    from engine.landscape import evaluate_points, interpolation_direction, random_direction  # noqa: PLC0415
    from engine.training.evaluation import load_evaluable  # noqa: PLC0415
    from engine.training.loading import load_weights, restore_model  # noqa: PLC0415

    s = LandscapeSpec(**{**spec, "overrides": tuple(spec.get("overrides") or ())})
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the same numbers on every worker (reduction order)
    try:
        e = load_evaluable(s.checkpoint, list(s.overrides))
        config, device, bundle, model = e.config, e.device, e.bundle, e.model
        if s.interpolate_to is not None:
            other = restore_model(load_weights(s.interpolate_to, list(s.overrides)), bundle.num_classes)
            directions = [interpolation_direction(model, other.to(device))]
        else:
            directions = [
                random_direction(model, s.seed + k, ignore_1d=not s.include_1d) for k in range(s.dims)
            ]
        loader = bundle.test_loader if s.split == "test" else bundle.train_loader
        batches = _batches(loader.dataset, s.subset, s.seed, config.batch_size)
        coords = [(x,) if s.dims == 1 else (x, y) for _, _, x, y in points]
        results = evaluate_points(model, directions, coords, batches, device, config.precision)
    finally:
        torch.set_num_threads(previous)
    return [
        {"i": i, "j": j, "x": x, "y": y, "loss": r.loss, "top1": r.top1, "top5": r.top5}
        for (i, j, x, y), r in zip(points, results, strict=True)
    ]


# --------------------------------------------------------------------------------------------------
# the store


def read_landscape(out_dir: Path) -> list[dict]:
    path = Path(out_dir) / TABLE
    return pq.read_table(path).to_pylist() if path.is_file() else []


def _write(out_dir: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: (r["i"], r["j"]))
    write_table_atomic(pa.Table.from_pylist(rows, schema=_SCHEMA), out_dir / TABLE)


def _check_manifest(out_dir: Path, spec: LandscapeSpec) -> None:
    manifest = out_dir / MANIFEST
    wanted = json.loads(json.dumps(asdict(spec)))
    if manifest.is_file():
        stored = json.loads(manifest.read_text())
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            raise ConfigError(
                f"{out_dir} holds a landscape of another grid (differs in {', '.join(changed)}); "
                "choose another --out, or delete it to start over"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(wanted, indent=2) + "\n")


@dataclass
class LandscapeRun:
    out_dir: Path
    rows: list[dict]
    computed: int
    """Points evaluated by this call (the rest were already in the table)."""
    seconds: float
    plots: list[Path] = field(default_factory=list)


def run_landscape(
    spec: LandscapeSpec,
    out_dir: Path,
    *,
    use_ray: bool = True,
    address: str | None = None,
    num_cpus: int | None = None,
    chunk_size: int | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> LandscapeRun:
    """Evaluate every point of ``spec``'s grid not yet in ``out_dir``'s table, then return them all.

    ``on_chunk(done, total)`` is called after each chunk is stored (progress; tests stop a run with it).
    """
    spec.validate()
    out_dir = Path(out_dir)
    _check_manifest(out_dir, spec)
    rows = read_landscape(out_dir)
    done = {(r["i"], r["j"]) for r in rows}
    pending = [p for p in spec.grid() if (p[0], p[1]) not in done]
    started = time.perf_counter()
    workers = max(1, num_cpus or os.cpu_count() or 1)
    size = chunk_size or max(1, math.ceil(len(pending) / (4 * workers)))
    chunks = [pending[k : k + size] for k in range(0, len(pending), size)]
    payload = json.loads(json.dumps(asdict(spec)))
    computed = 0

    def store(new_rows: list[dict]) -> None:
        nonlocal computed
        rows.extend(new_rows)
        computed += len(new_rows)
        _write(out_dir, rows)
        if on_chunk is not None:
            on_chunk(len(rows), len(spec.grid()))

    if chunks and use_ray:
        import ray  # noqa: PLC0415

        started_here = not ray.is_initialized()
        if started_here:
            import logging  # noqa: PLC0415

            quiet = {"log_to_driver": False, "logging_level": logging.WARNING}  # no banners between points
            if address:
                ray.init(address=address, **quiet)
            else:
                ray.init(address="local", num_cpus=workers, include_dashboard=False, **quiet)
        try:
            task = ray.remote(num_cpus=1)(evaluate_chunk)
            waiting = [task.remote(payload, chunk) for chunk in chunks]
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                store(ray.get(ready[0]))
        finally:
            if started_here:
                ray.shutdown()
    else:
        for chunk in chunks:
            store(evaluate_chunk(payload, chunk))
    return LandscapeRun(
        out_dir, sorted(rows, key=lambda r: (r["i"], r["j"])), computed, time.perf_counter() - started
    )


# --------------------------------------------------------------------------------------------------
# plots


def _levels(low: float, high: float, count: int = 21) -> np.ndarray:
    """Contour levels over [low, high]; a flat landscape (an untrained or saturated network) gets a small
    band around its value, since contour levels must increase."""
    if not high > low:
        pad = max(abs(low) * 1e-3, 1e-6)
        low, high = low - pad, high + pad
    return np.linspace(low, high, count)


def _grid_values(rows: list[dict], points: int, key: str) -> np.ndarray:
    z = np.full((points, points), np.nan)
    for r in rows:
        z[r["j"], r["i"]] = r[key]  # rows are y, columns x
    return z


def plot_landscape(
    rows: list[dict], spec: LandscapeSpec, out_dir: Path, title: str = "", limits: dict | None = None
) -> list[Path]:
    """The 1-D curve, or the 2-D contour, filled contour and 3-D surface, as PNGs in ``out_dir``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    written = []
    name = title or Path(spec.checkpoint).parent.name
    xlabel = "x (interpolation: 0 = A, 1 = B)" if spec.interpolate_to else "x (direction 1)"

    def save(fig, filename):
        FigureCanvasAgg(fig)
        path = Path(out_dir) / filename
        fig.savefig(path, dpi=120, bbox_inches="tight")
        written.append(path)

    if spec.dims == 1:
        rows = sorted(rows, key=lambda r: r["i"])
        fig = Figure(figsize=(6.4, 4.2))
        ax = fig.add_subplot(1, 1, 1)
        x = [r["x"] for r in rows]
        ax.plot(x, [r["loss"] for r in rows], "o-", color="C0", markersize=3, label="loss")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test loss" if spec.split == "test" else "train loss", color="C0")
        if limits:
            ax.set_ylim(*limits["loss"])
        twin = ax.twinx()
        twin.plot(x, [r["top1"] for r in rows], "s--", color="C1", markersize=3, label="top-1")
        twin.set_ylabel("top-1 (%)", color="C1")
        twin.set_ylim(0, 100)
        ax.set_title(f"1-D landscape: {name}")
        ax.grid(alpha=0.3)
        save(fig, "landscape_1d.png")
        return written

    axis = spec.axis()
    X, Y = np.meshgrid(axis, axis)
    Z = _grid_values(rows, spec.points, "loss")
    levels = _levels(*(limits["loss"] if limits else (float(np.nanmin(Z)), float(np.nanmax(Z)))))
    for filename, filled in (("landscape_2d_contour.png", False), ("landscape_2d_filled.png", True)):
        fig = Figure(figsize=(5.6, 4.8))
        ax = fig.add_subplot(1, 1, 1)
        drawn = (ax.contourf if filled else ax.contour)(X, Y, Z, levels=levels, cmap="viridis")
        if not filled:
            ax.clabel(drawn, inline=True, fontsize=6, fmt="%.2f")
        fig.colorbar(drawn, ax=ax, label="loss")
        ax.plot([0], [0], "r+", markersize=10)
        ax.set_xlabel("direction 1")
        ax.set_ylabel("direction 2")
        ax.set_title(f"{'Filled contour' if filled else 'Contour'} of the loss: {name}", fontsize="small")
        save(fig, filename)
    fig = Figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot(1, 1, 1, projection="3d")
    ax.plot_surface(X, Y, Z, cmap="viridis", linewidth=0, antialiased=True)
    if limits:
        ax.set_zlim(*limits["loss"])
    ax.set_xlabel("direction 1")
    ax.set_ylabel("direction 2")
    ax.set_zlabel("loss")
    ax.set_title(f"Loss surface: {name}", fontsize="small")
    save(fig, "landscape_2d_surface.png")
    return written


def plot_compare(landscapes: Sequence[tuple[str, LandscapeSpec, list[dict]]], out_path: Path) -> Path:
    """Two (or more) landscapes side by side on one scale: the same loss range and colour levels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    losses = np.array([r["loss"] for _, _, rows in landscapes for r in rows], dtype=float)
    low, high = float(np.nanmin(losses)), float(np.nanmax(losses))
    dims = {spec.dims for _, spec, _ in landscapes}
    if len(dims) != 1:
        raise ConfigError("--compare: the landscapes must have the same --dims")
    n = len(landscapes)
    fig = Figure(figsize=(5.2 * n, 4.4))
    for k, (label, spec, rows) in enumerate(landscapes):
        ax = fig.add_subplot(1, n, k + 1)
        if spec.dims == 1:
            rows = sorted(rows, key=lambda r: r["i"])
            ax.plot([r["x"] for r in rows], [r["loss"] for r in rows], "o-", markersize=3)
            levels = _levels(low, high)
            ax.set_ylim(
                levels[0] - 0.02 * (levels[-1] - levels[0]), levels[-1] + 0.02 * (levels[-1] - levels[0])
            )
            ax.set_xlabel("x")
            ax.set_ylabel("loss")
            ax.grid(alpha=0.3)
        else:
            axis = spec.axis()
            X, Y = np.meshgrid(axis, axis)
            drawn = ax.contourf(X, Y, _grid_values(rows, spec.points, "loss"), levels=_levels(low, high))
            ax.plot([0], [0], "r+", markersize=10)
            ax.set_xlabel("direction 1")
            ax.set_ylabel("direction 2")
            if k == n - 1:
                fig.colorbar(drawn, ax=ax, label="loss (same scale in every panel)")
        centre = min(rows, key=lambda r: abs(r["x"]) + abs(r["y"]))
        ax.set_title(
            f"{label}\nloss {centre['loss']:.3f}, top-1 {centre['top1']:.1f}% at the centre", fontsize="small"
        )
    FigureCanvasAgg(fig)
    fig.savefig(out_path, dpi=120, bbox_inches="tight")
    return out_path
