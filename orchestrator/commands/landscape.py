"""``spikesweep landscape CHECKPOINT``: the loss landscape around a checkpoint (orchestrator.landscape).

CHECKPOINT is anything ``spikesweep eval`` accepts: a run directory, a checkpoint directory, a sweep's run
(``sweeps/x/runs/g0001s42``), or the authors' BrainCog ``.pth.tar`` (with ``--set data.root=...``).

    spikesweep landscape runs/x --dims 2 --points 21 --subset 200         # 2-D, 441 points
    spikesweep landscape runs/x --dims 1 --interpolate runs/y             # the line from x to y
    spikesweep landscape --compare runs/with runs/without --dims 2 --points 21 --out cmp/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.commands import add_overrides_argument

NAME = "landscape"
HELP = "Loss landscape of a checkpoint (filter-normalised directions), evaluated as Ray tasks, resumable."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", type=Path, metavar="CHECKPOINT", help="what `eval` accepts")
    parser.add_argument(
        "--compare",
        nargs="+",
        type=Path,
        metavar="CKPT",
        help="two or more checkpoints side by side, one scale",
    )
    parser.add_argument("--dims", type=int, default=2, help="1 or 2 random directions (default 2)")
    parser.add_argument("--range", default="-1:1", metavar="LOW:HIGH", help="coordinate range (default -1:1)")
    parser.add_argument("--points", type=int, default=51, help="points per axis (default 51)")
    parser.add_argument("--split", default="test", help="test (default) or train: which event split")
    parser.add_argument("--subset", type=int, help="evaluate on this many recordings (seeded choice)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random directions (default 0)")
    parser.add_argument(
        "--include-bias-bn",
        action="store_true",
        help="also move biases, BatchNorm parameters and coefficients (default: left out, --xignore biasbn)",
    )
    parser.add_argument(
        "--interpolate", type=Path, metavar="CKPT_B", help="1-D: the direction is θ_B − θ_A (x=0: A, x=1: B)"
    )
    parser.add_argument("--address", help="evaluate on this Ray cluster (default: a local one)")
    parser.add_argument("--workers", type=int, help="local Ray CPUs (default: all); 0 = no Ray, one process")
    parser.add_argument("--out", type=Path, help="output directory (default: <run>/landscape-<dims>d)")
    parser.add_argument(
        "--mlflow",
        action="store_true",
        help="log the files to the MLflow run of the checkpoint's sweep trial",
    )
    add_overrides_argument(parser, "override config keys of the checkpoint, e.g. data.root=/data")


def _spec(args: argparse.Namespace, checkpoint: Path):
    from orchestrator.landscape import LandscapeSpec, parse_range

    low, high = parse_range(args.range)
    return LandscapeSpec(
        checkpoint=str(checkpoint.absolute()),
        dims=args.dims,
        low=low,
        high=high,
        points=args.points,
        split=args.split,
        subset=args.subset,
        seed=args.seed,
        include_1d=args.include_bias_bn,
        interpolate_to=str(args.interpolate.absolute()) if args.interpolate else None,
        overrides=tuple(args.overrides),
    ).validate()


def _check_loads(spec) -> Path:
    """Fail before any evaluation when a checkpoint does not load into its configured model."""
    from engine.data import load_catalog
    from engine.training.loading import load_weights, restore_model
    from engine.validation import check_config

    loaded = load_weights(spec.checkpoint, list(spec.overrides))
    config = check_config(loaded.config)
    classes = load_catalog(config).num_classes
    model = restore_model(loaded, classes)
    if spec.interpolate_to:
        from engine.landscape import interpolation_direction

        interpolation_direction(
            model, restore_model(load_weights(spec.interpolate_to, list(spec.overrides)), classes)
        )
    return loaded.path


def _compute(spec, out: Path | None, args: argparse.Namespace):
    from orchestrator.landscape import default_out_dir, plot_landscape, run_landscape

    weights = _check_loads(spec)
    out_dir = out or default_out_dir(weights, spec.dims)
    total = len(spec.grid())

    def progress(done: int, of: int) -> None:
        print(f"  {done}/{of} points", file=sys.stderr, flush=True)

    print(f"landscape of {weights}: {total} points → {out_dir}", flush=True)
    result = run_landscape(
        spec,
        out_dir,
        use_ray=args.workers != 0,
        address=args.address,
        num_cpus=args.workers or None,
        on_chunk=progress if sys.stderr.isatty() else None,
    )
    result.plots = plot_landscape(result.rows, spec, out_dir, title=_label(weights))
    centre = min(result.rows, key=lambda r: abs(r["x"]) + abs(r["y"]))
    print(
        f"{result.computed} point(s) evaluated in {result.seconds:.0f} s ({total - result.computed} already "
        f"there); centre: loss {centre['loss']:.4f}, top-1 {centre['top1']:.2f}%\n"
        f"wrote {out_dir}/landscape.parquet and {', '.join(p.name for p in result.plots)}"
    )
    return weights, result


def _label(weights: Path) -> str:
    parts = weights.parts
    return "/".join(parts[-4:-1]) if len(parts) >= 4 else str(weights)


def run(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError

    if args.compare and args.checkpoint:
        raise ConfigError("give either CHECKPOINT or --compare A B, not both")
    if not args.compare and not args.checkpoint:
        raise ConfigError("give a CHECKPOINT (or --compare A B ...)")
    if args.compare:
        return _run_compare(args)
    spec = _spec(args, args.checkpoint)
    weights, result = _compute(spec, args.out, args)
    if args.mlflow:
        _log_to_mlflow(weights, [result.out_dir / "landscape.parquet", *result.plots])
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError
    from orchestrator.landscape import plot_compare

    if len(args.compare) < 2:
        raise ConfigError("--compare needs at least two checkpoints")
    specs = [_spec(args, c) for c in args.compare]  # every argument checked before anything runs
    for spec in specs:
        _check_loads(spec)
    out = args.out or Path.cwd() / "landscape-compare"
    panels = []
    for k, spec in enumerate(specs):
        weights, result = _compute(spec, out / f"{k}-{args.compare[k].name}", args)
        panels.append((_label(weights), spec, result.rows))
    path = plot_compare(panels, out / f"compare_{specs[0].dims}d.png")
    print(f"wrote {path}")
    return 0


def _log_to_mlflow(weights: Path, files: list[Path]) -> None:
    """Attach ``files`` to the MLflow child run of the sweep trial whose exported run holds ``weights``."""
    import pyarrow.parquet as pq

    from engine.errors import ConfigError
    from engine.yamlio import read_yaml_file
    from orchestrator.sweepdir import SweepDir

    seed_dir = weights.parent.parent  # runs/<plan key>/seed_<s>/best/model.pt
    root = seed_dir.parent.parent.parent
    if not (seed_dir.name.startswith("seed_") and (root / "trials.parquet").is_file()):
        raise ConfigError(
            f"--mlflow: {weights} is not a sweep's exported run (runs/<plan key>/seed_<s>/best)"
        )
    plan_key, seed = seed_dir.parent.name, int(seed_dir.name.removeprefix("seed_"))
    rows = [
        r
        for r in pq.read_table(
            root / "trials.parquet", columns=["plan_key", "seed", "mlflow_run_id"]
        ).to_pylist()
        if r["plan_key"] == plan_key and r["seed"] == seed and r["mlflow_run_id"]
    ]
    if not rows:
        raise ConfigError(
            f"--mlflow: no MLflow run recorded for {plan_key} seed {seed} in {root}/trials.parquet"
        )
    space = read_yaml_file(root / "space.yaml", "sweep space") or {}
    uri = (space.get("mlflow") or {}).get("tracking_uri") or SweepDir(root).mlflow_default_uri
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for path in files:
        client.log_artifact(rows[-1]["mlflow_run_id"], str(path), artifact_path="landscape")
    print(f"MLflow: {len(files)} file(s) logged to run {rows[-1]['mlflow_run_id']} under landscape/")
