"""``spikesweep sweep SPACE.yaml``: run, resume or plan a sweep (see :mod:`orchestrator.tune.driver`).

Rerunning the same command on an existing sweep resumes it; ``--resume`` only makes that explicit (and
fails if there is nothing to resume). ``--address`` joins an existing Ray cluster (the Slurm templates
start one inside the allocation). The exit status is 0 for a complete sweep and 75 for one that was
interrupted (SIGINT, SIGTERM, SIGUSR1) with its state saved, so a batch script can requeue it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.commands import add_overrides_argument

NAME = "sweep"
HELP = "Run a hyperparameter/seed sweep of the engine (Ray Tune + Optuna + MLflow), or resume one."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", type=Path, help="search-space YAML (see search_spaces/)")
    parser.add_argument("--name", help="sweep name (default: the space file's `name`)")
    parser.add_argument(
        "--storage", type=Path, help="directory holding sweeps (default ./sweeps); shared across nodes"
    )
    parser.add_argument("--address", help="join this Ray cluster instead of starting a local one")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="insist on resuming an existing sweep (the default if one exists)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the space, print the trial plan and resources, run nothing",
    )
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="with --dry-run: time real training steps of each run shape here and estimate the sweep's "
        "wall time (imports torch; a few seconds per shape)",
    )

    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show Ray's and MLflow's own banners, hints and info lines",
    )
    add_overrides_argument(
        parser,
        "change the space's base config, e.g. epochs=2 (part of the space and its hash: another sweep, so "
        "give it another --name)",
    )


def run(args: argparse.Namespace) -> int:
    if not (args.dry_run or args.estimate):  # a plan needs none of the [sweep] extra; a launch all of it
        from orchestrator.cli import require_sweep_extra  # noqa: PLC0415

        require_sweep_extra()
    from orchestrator.tune.driver import run_sweep  # noqa: PLC0415 — Ray, Optuna and MLflow load only here

    outcome = run_sweep(
        args.space,
        name=args.name,
        storage=args.storage,
        address=args.address,
        resume=True if args.resume else None,
        dry_run=args.dry_run or args.estimate,
        estimate=args.estimate,
        overrides=args.overrides,
        verbose=args.verbose,
    )
    return outcome.exit_code
