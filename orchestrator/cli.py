"""The ``spikesweep`` console command: a thin dispatcher over :mod:`orchestrator.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SWEEP_EXTRA = frozenset({"ray", "optuna", "mlflow"})
"""Top-level packages of the ``[sweep]`` extra (pyproject.toml): a command that needs one that is not
installed says so, with the install line, instead of a traceback."""


def require_sweep_extra() -> None:
    """Raise ``ModuleNotFoundError`` (which :func:`main` turns into the install line) unless every package
    of the ``[sweep]`` extra can be imported. Checked without importing them, before a command spends
    seconds validating a space or building its datasets only to find Ray missing at launch."""
    import importlib.util  # noqa: PLC0415

    for name in sorted(SWEEP_EXTRA):
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


# Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "orchestrator.commands.train",
    "orchestrator.commands.eval",
    "orchestrator.commands.data",
    "orchestrator.commands.sweep",
    "orchestrator.commands.slurm",
    "orchestrator.commands.report",
    "orchestrator.commands.compare",
    "orchestrator.commands.landscape",
    "orchestrator.commands.completion",
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("spikesweep")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikesweep",
        description="Static→event knowledge transfer for spiking networks, and the sweeps that test it.",
    )
    parser.add_argument("--version", action="version", version=f"spikesweep {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from engine.errors import SpikesweepError

    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except SpikesweepError as exc:
        print(f"spikesweep {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        package = (exc.name or "").partition(".")[0]
        if package not in SWEEP_EXTRA:
            raise
        print(
            f"spikesweep {args.command}: error: this needs {package}, part of the [sweep] extra, which is "
            "not installed: pip install 'spikesweep[sweep]' (in a checkout: pip install -e '.[sweep]')",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
