"""One module per ``spikesweep`` subcommand.

Each module defines ``NAME`` (the subcommand), ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Imports of heavy libraries (torch, ray, mlflow) stay inside ``run`` so that
``spikesweep --help`` and argument errors are instant.
"""

from __future__ import annotations

import argparse


def add_overrides_argument(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """The ``--set KEY=VALUE ...`` option every command that builds a run configuration takes.

    Values are collected as strings into ``args.overrides``; :meth:`engine.config.RunConfig.with_overrides`
    parses them (YAML scalars) and rejects unknown keys with the closest valid names.
    """
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help=help or "override run-config keys, e.g. method.beta=0 seed=1024",
    )


def parse_time_steps(text: str) -> list[int]:
    """``--time-steps 1,2,4``: whole numbers (checked against each model's T where it is loaded)."""
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected whole numbers separated by commas, e.g. 1,2,4,10"
        ) from None
    if not steps:
        raise argparse.ArgumentTypeError("expected at least one number of time steps, e.g. 1,2,4,10")
    return steps
