"""``spikesweep train``: run one training run, or continue an interrupted one.

- ``spikesweep train`` — the ``quick`` preset: a small network on the built-in ``nshapes`` pair, about a
  minute on two CPU cores.
- ``spikesweep train --preset ncaltech101 --set data.root=/data seed=1024`` — a published recipe.
- ``spikesweep train --config run.yaml --set method.beta=0 --out runs/beta0`` — your own YAML.
- ``spikesweep train --resume runs/beta0`` — continue from the run's last checkpoint, bit-for-bit.

The run directory gets ``config.yaml``, ``epochs.parquet`` (one record per epoch), ``checkpoints/last``,
``checkpoints/best`` and ``result.json``. Without ``--out`` it is
``runs/<preset or config name>-<config hash>-seed<seed>``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engine.training.rundir import RunDir
from orchestrator.commands import add_overrides_argument

NAME = "train"
HELP = "Train one run (default: the quick preset on the built-in nshapes data), or resume one."

DEFAULT_PRESET = "quick"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, metavar="FILE", help="run configuration YAML")
    source.add_argument("--preset", metavar="NAME", help=f"a preset (default: {DEFAULT_PRESET})")
    source.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint"
    )
    add_overrides_argument(
        parser,
        "override config keys, e.g. method.beta=0 seed=1024 (with --resume: only device, progress, "
        "paths and workers may change)",
    )
    parser.add_argument("--out", type=Path, metavar="RUN_DIR", help="run directory (default: under runs/)")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration as YAML and exit"
    )


def run(args: argparse.Namespace) -> int:
    from engine.config import RunConfig
    from engine.errors import ConfigError
    from engine.training import train
    from engine.training.checkpoint import resolve_checkpoint

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    resume_from = None
    if args.resume is not None:
        if args.out is not None:
            raise ConfigError("--resume continues a run in its own directory; drop --out")
        if not RunDir(args.resume).has_checkpoints():
            raise ConfigError(f"--resume {args.resume}: not a run directory (it has no checkpoints/)")
        resume_from = resolve_checkpoint(args.resume)
        config = RunConfig.from_yaml(RunDir(resume_from).config)
        run_dir = args.resume
    else:
        if args.config is not None:
            config, name = RunConfig.from_yaml(args.config), args.config.stem
        else:
            name = args.preset or DEFAULT_PRESET
            config = RunConfig.from_preset(name)
        run_dir = None
    if args.overrides:
        config = config.with_overrides(args.overrides)
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    if run_dir is None:
        run_dir = args.out or Path("runs") / f"{name}-{config.config_hash()}-seed{config.seed}"

    try:
        result = train(config, run_dir, resume_from=resume_from)
    except KeyboardInterrupt:
        # every finished epoch is checkpointed: say how to continue from the last one
        import shlex

        if RunDir(run_dir).has_checkpoints():
            print(
                f"\ninterrupted; continue with: spikesweep train --resume {shlex.quote(str(run_dir))}",
                file=sys.stderr,
            )
        raise
    if result.epochs_run == 0:
        print(f"{run_dir}: no epoch completed")
        return 1
    print(
        f"best test top-1 {result.best_test_top1:.2f}% at epoch {result.best_epoch + 1}, "
        f"last {result.last_test_top1:.2f}% after {result.epochs_run} epochs "
        f"({result.wall_time_s:.0f} s)\nrun directory: {result.run_dir}"
    )
    return 0
