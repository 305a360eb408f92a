"""Light commands: median wall time of each, against importing everything, in the same run.

A command a user types many times (help, version, a dry run, a typo, a report of a finished sweep, the
status of a Slurm sweep) should cost what it does, not what the heaviest import costs. The baseline is
a Python process that imports torch, Ray, Optuna and MLflow and does nothing else; every command runs
as a fresh process (``python -m orchestrator.cli``), ``--repeats`` times, and the median is printed with
its ratio to the baseline's median. On a loaded machine all numbers grow; the ratios are what to read.

Run: ``python bench/bench_cli.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "search_spaces" / "smoke.yaml"


def _seconds(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from report_synthetic import two_config_sweep  # a finished sweep directory, written in a second

    with tempfile.TemporaryDirectory() as tmp:
        sweep = two_config_sweep().write_dir(Path(tmp))
        cli = [sys.executable, "-m", "orchestrator.cli"]
        cases = {
            "import torch, ray, optuna, mlflow (baseline)": [
                sys.executable,
                "-c",
                "import torch, ray, optuna, mlflow",
            ],
            "spikesweep --help": [*cli, "--help"],
            "spikesweep --version": [*cli, "--version"],
            "sweep smoke.yaml --set epoch=1 (a typo)": [*cli, "sweep", str(SMOKE), "--set", "epoch=1"],
            "sweep smoke.yaml --dry-run": [*cli, "sweep", str(SMOKE), "--dry-run", "--storage", tmp],
            "report of a finished sweep (no plots, no MLflow)": [
                *cli,
                "report",
                str(sweep),
                "--no-plots",
                "--no-mlflow",
                "--out",
                f"{tmp}/r",
            ],
            "slurm status of a sweep": [*cli, "slurm", "status", str(sweep)],
        }
        results = {name: _seconds(argv, args.repeats) for name, argv in cases.items()}
    baseline = next(iter(results.values()))
    width = max(map(len, results))
    print(f"median of {args.repeats} fresh processes each; ratio to importing everything\n")
    for name, seconds in results.items():
        print(f"{name:<{width}}  {seconds:6.2f} s  {seconds / baseline:5.2f}×")


if __name__ == "__main__":
    main()
